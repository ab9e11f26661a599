//! OpenID Connect Core 1.0: the ID token (§2, §3.1.3.6 `at_hash`,
//! §3.3.2.11 `c_hash`) and the claims the UserInfo endpoint (§5.3) returns
//! for the granted scopes (§5.4).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use sha2::{Digest, Sha256, Sha512};

use crate::error::OAuthError;
use crate::keys::{Alg, KeySet};
use crate::users::User;

/// The scope that makes a request an OpenID Connect request.
pub const OPENID: &str = "openid";

/// `amr` (RFC 8176) of a password login.
pub const AMR_PASSWORD: &str = "pwd";

/// Claims the server can return, for discovery's `claims_supported`.
pub const CLAIMS_SUPPORTED: [&str; 17] = [
    "iss",
    "sub",
    "aud",
    "azp",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "at_hash",
    "c_hash",
    "amr",
    "sid",
    "name",
    "given_name",
    "family_name",
    "email",
    "email_verified",
];

/// What goes into an ID token.
#[derive(Debug, Clone, Copy)]
pub struct IdGrant<'a> {
    /// The user (`sub`).
    pub username: &'a str,
    /// The client (`aud`, `azp`).
    pub client_id: &'a str,
    /// The authorization request's `nonce`; absent on refresh (§12.2).
    pub nonce: Option<&'a str>,
    /// When the user authenticated.
    pub auth_time: u64,
    /// Login session id.
    pub sid: &'a str,
    /// The access token issued with it (`at_hash`).
    pub access_token: &'a str,
    /// The code it was redeemed with (`c_hash`); absent on refresh.
    pub code: Option<&'a str>,
}

#[derive(Serialize)]
struct IdClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    azp: &'a str,
    exp: u64,
    iat: u64,
    auth_time: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    at_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    c_hash: Option<String>,
    amr: [&'a str; 1],
    sid: &'a str,
}

/// Mints an ID token signed with the current key.
pub fn mint_id_token(
    keys: &KeySet,
    issuer: &str,
    lifetime: u64,
    grant: IdGrant<'_>,
    now: u64,
) -> Result<String, OAuthError> {
    let alg = keys.signing(now).alg;
    let claims = IdClaims {
        iss: issuer,
        sub: grant.username,
        aud: grant.client_id,
        azp: grant.client_id,
        exp: now + lifetime,
        iat: now,
        auth_time: grant.auth_time,
        nonce: grant.nonce,
        at_hash: half_hash(alg, grant.access_token),
        c_hash: grant.code.map(|c| half_hash(alg, c)),
        amr: [AMR_PASSWORD],
        sid: grant.sid,
    };
    crate::token::sign(keys, "JWT", &claims, now)
}

/// §3.1.3.6: base64url of the left half of the hash of `value`, with the
/// hash of the signing algorithm (SHA-512 for Ed25519).
pub fn half_hash(alg: Alg, value: &str) -> String {
    match alg {
        Alg::EdDSA => URL_SAFE_NO_PAD.encode(&Sha512::digest(value.as_bytes())[..32]),
        Alg::ES256 | Alg::RS256 | Alg::PS256 => {
            URL_SAFE_NO_PAD.encode(&Sha256::digest(value.as_bytes())[..16])
        }
    }
}

/// UserInfo response (§5.3.2): `sub`, plus the §5.4 claims of the granted
/// scopes that the user has.
#[derive(
    Debug, Default, Clone, PartialEq, serde::Deserialize, serde::Serialize, poem_openapi::Object,
)]
#[oai(skip_serializing_if_is_none)]
pub struct UserInfo {
    /// Subject: the username.
    pub sub: String,
    /// Full name (scope `profile`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Given name (scope `profile`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    /// Family name (scope `profile`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    /// Email address (scope `email`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Whether the email address was verified (scope `email`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

impl UserInfo {
    /// The claims of `user` that `scope` grants.
    pub fn for_scope(user: &User, scope: &str) -> Self {
        let profile = crate::scope::contains(scope, "profile");
        let email = crate::scope::contains(scope, "email");
        let c = &user.claims;
        Self {
            sub: user.username.clone(),
            name: c.name.clone().filter(|_| profile),
            given_name: c.given_name.clone().filter(|_| profile),
            family_name: c.family_name.clone().filter(|_| profile),
            email: c.email.clone().filter(|_| email),
            email_verified: c.email_verified.filter(|_| email),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_hashes_match_an_independent_computation() {
        // Expected values computed with Python's hashlib:
        // urlsafe_b64encode(sha256(v).digest()[:16]) and sha512(v)[:32].
        assert_eq!(
            half_hash(Alg::RS256, "jHkWEdUXMU1BwAsC4vtUsZwnPH0ubyzq"),
            "8e9h2ri601fD9iD8DXCCVw"
        );
        assert_eq!(
            half_hash(Alg::ES256, "jHkWEdUXMU1BwAsC4vtUsZwnPH0ubyzq"),
            "8e9h2ri601fD9iD8DXCCVw"
        );
        assert_eq!(
            half_hash(Alg::EdDSA, "x"),
            "pKvURIxJVi2CgRXROh_M6pJ_UrTVRZKX-LQ-QtqJI4s"
        );
    }
}
