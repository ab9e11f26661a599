//! JWT access tokens (RFC 9068) and refresh tokens bound to a client
//! certificate (RFC 8705 §3): minting and verification. Time is always a
//! parameter.
//!
//! A refresh token is a JWS of its own `typ` ([`REFRESH_TOKEN_TYP`]) and
//! audience (the token endpoint), so it is never accepted as an access token
//! (RFC 8725 §3.11). Tokens minted from one authorization share a family id
//! (`fid`): revoking the family revokes them all (RFC 9700 §4.14.2).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use certbound_verify::access::{Failure, Window};
use certbound_verify::jws::JwsError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::OAuthError;
use crate::keys::{KeySet, SigningKey};

/// RFC 9068 §2.1 `typ` of access tokens.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// `typ` of refresh tokens.
pub const REFRESH_TOKEN_TYP: &str = "rt+jwt";

/// Longest token we try to verify; anything longer is inactive.
pub use certbound_verify::jws::MAX_TOKEN_LEN;

/// Seconds an `iat` may lie in the future (clocks of replicas that share
/// keys differ a little).
pub const MAX_CLOCK_SKEW: u64 = 60;

/// The server's validity window ([`Window::check`], the one resource
/// servers use too): no leeway on `exp` and `nbf` (the server's clock is
/// the one that issued), and `iat` at most [`MAX_CLOCK_SKEW`] ahead.
const WINDOW: Window = Window {
    leeway: 0,
    max_iat_ahead: Some(MAX_CLOCK_SKEW),
};

use crate::revocation::record::valid_id;

/// Confirmation claim (RFC 8705 §3.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, poem_openapi::Object)]
pub struct Confirmation {
    /// base64url SHA-256 thumbprint of the client certificate.
    #[serde(rename = "x5t#S256")]
    #[oai(rename = "x5t#S256")]
    pub x5t_s256: String,
}

/// Access-token claims (RFC 9068 §2.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// Subject: the client id for `client_credentials`.
    pub sub: String,
    /// Audience (string or array).
    pub aud: serde_json::Value,
    /// The client the token was issued to.
    pub client_id: String,
    /// Granted scope, space-separated.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// Issued at.
    pub iat: u64,
    /// Not before.
    #[serde(default)]
    pub nbf: u64,
    /// Expiry.
    pub exp: u64,
    /// Unique token id.
    pub jti: String,
    /// Certificate binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// The user the token acts for (user tokens, or a client's owner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Family id shared with the refresh token it came with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fid: Option<String>,
    /// When the user authenticated (RFC 9068 §2.2.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<u64>,
}

/// Refresh-token claims.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshClaims {
    /// Issuer.
    pub iss: String,
    /// The token endpoint: no resource server accepts it.
    pub aud: String,
    /// The user.
    pub sub: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// Granted scope, space-separated.
    #[serde(default)]
    pub scope: String,
    /// Issued at.
    pub iat: u64,
    /// Not before.
    pub nbf: u64,
    /// Expiry.
    pub exp: u64,
    /// Unique token id: recorded on the revocation list when it is used.
    pub jti: String,
    /// Family id: every token descending from one authorization code.
    pub fid: String,
    /// When the user authenticated.
    pub auth_time: u64,
    /// Login session id (OIDC `sid`).
    pub sid: String,
    /// Certificate binding: only the same certificate may use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// What is needed to mint a refresh token.
#[derive(Debug, Clone, Copy)]
pub struct RefreshGrant<'a> {
    /// The user.
    pub username: &'a str,
    /// Client id.
    pub client_id: &'a str,
    /// Granted scope.
    pub scope: &'a str,
    /// `x5t#S256` to bind to.
    pub binding: Option<&'a str>,
    /// Family id.
    pub fid: &'a str,
    /// When the user authenticated.
    pub auth_time: u64,
    /// Login session id.
    pub sid: &'a str,
}

/// What is needed to mint an access token.
#[derive(Debug, Clone, Copy)]
pub struct AccessGrant<'a> {
    /// Subject.
    pub sub: &'a str,
    /// Client id.
    pub client_id: &'a str,
    /// Granted scope.
    pub scope: &'a str,
    /// `x5t#S256` to bind to.
    pub binding: Option<&'a str>,
    /// The user the token acts for.
    pub username: Option<&'a str>,
    /// Family id (user tokens).
    pub fid: Option<&'a str>,
    /// When the user authenticated.
    pub auth_time: Option<u64>,
}

#[derive(Serialize)]
struct ClaimsRef<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    client_id: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    scope: &'a str,
    iat: u64,
    nbf: u64,
    exp: u64,
    jti: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<CnfRef<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_time: Option<u64>,
}

#[derive(Serialize)]
struct CnfRef<'a> {
    #[serde(rename = "x5t#S256")]
    x5t_s256: &'a str,
}

#[derive(Serialize)]
struct HeaderRef<'a> {
    alg: &'a str,
    kid: &'a str,
    typ: &'a str,
}

/// Issues and checks access tokens for one issuer.
#[derive(Debug, Clone)]
pub struct TokenService {
    /// `iss`
    pub issuer: String,
    /// `aud`
    pub audience: String,
    /// Lifetime in seconds.
    pub lifetime: u64,
    /// `aud` of refresh tokens: the token endpoint.
    pub refresh_audience: String,
    /// Refresh-token lifetime in seconds.
    pub refresh_lifetime: u64,
}

/// Why a token is not active. Never sent to clients: introspection answers
/// `{"active": false}` for all of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Inactive {
    /// Not a JWS, bad base64 or JSON, or too long.
    #[error("malformed token")]
    Malformed,
    /// Wrong or missing `typ`, or wrong audience for a refresh token.
    #[error("wrong token type")]
    WrongType,
    /// `kid` missing or unknown.
    #[error("unknown key")]
    UnknownKey,
    /// `alg` differs from the key's pinned algorithm (`none` included).
    #[error("algorithm not allowed for this key")]
    AlgorithmMismatch,
    /// Signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// Issued by someone else.
    #[error("foreign issuer")]
    ForeignIssuer,
    /// `exp` has passed.
    #[error("expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("not yet valid")]
    NotYetValid,
    /// `iat` is further in the future than clock skew explains.
    #[error("issued in the future")]
    IssuedInFuture,
    /// `aud` does not name this server's audience.
    #[error("wrong audience")]
    WrongAudience,
    /// The header has `crit`: an extension this server does not implement
    /// (RFC 7515 §4.1.11).
    #[error("critical header extension")]
    CriticalExtension,
    /// On the revocation list.
    #[error("revoked")]
    Revoked,
    /// Not an answer: the revocation list cannot say whether the token is
    /// revoked now (a replica out of touch with Redis). Always a 503
    /// ([`crate::AppState::fail_closed`]), never `active: false`.
    #[error("the revocation list may be out of date")]
    RevocationsStale,
}

impl Inactive {
    /// The reason as a metric label (`certbound_introspections_total`).
    pub fn label(&self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::WrongType => "wrong_type",
            Self::UnknownKey => "unknown_key",
            Self::AlgorithmMismatch => "algorithm_mismatch",
            Self::BadSignature => "bad_signature",
            Self::ForeignIssuer => "foreign_issuer",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::IssuedInFuture => "issued_in_future",
            Self::WrongAudience => "wrong_audience",
            Self::CriticalExtension => "critical_extension",
            Self::Revoked => "revoked",
            Self::RevocationsStale => "revocations_stale",
        }
    }
}

impl TokenService {
    /// Mints a signed access token at `now`.
    pub fn mint(
        &self,
        keys: &KeySet,
        grant: AccessGrant<'_>,
        now: u64,
    ) -> Result<String, OAuthError> {
        let mut jti_buf = [0u8; 22];
        let jti = new_jti(&mut jti_buf)?;
        let claims = ClaimsRef {
            iss: &self.issuer,
            sub: grant.sub,
            aud: &self.audience,
            client_id: grant.client_id,
            scope: grant.scope,
            iat: now,
            nbf: now,
            exp: now + self.lifetime,
            jti,
            cnf: grant.binding.map(|x5t_s256| CnfRef { x5t_s256 }),
            username: grant.username,
            fid: grant.fid,
            auth_time: grant.auth_time,
        };
        sign(keys, ACCESS_TOKEN_TYP, &claims, now)
    }

    /// Mints a signed refresh token at `now`.
    pub fn mint_refresh(
        &self,
        keys: &KeySet,
        grant: RefreshGrant<'_>,
        now: u64,
    ) -> Result<String, OAuthError> {
        let mut jti_buf = [0u8; 22];
        let claims = RefreshClaims {
            iss: self.issuer.clone(),
            aud: self.refresh_audience.clone(),
            sub: grant.username.into(),
            client_id: grant.client_id.into(),
            scope: grant.scope.into(),
            iat: now,
            nbf: now,
            exp: now + self.refresh_lifetime,
            jti: new_jti(&mut jti_buf)?.into(),
            fid: grant.fid.into(),
            auth_time: grant.auth_time,
            sid: grant.sid.into(),
            cnf: grant.binding.map(|x5t_s256| Confirmation {
                x5t_s256: x5t_s256.into(),
            }),
        };
        sign(keys, REFRESH_TOKEN_TYP, &claims, now)
    }

    /// Verifies a refresh token at `now`, as [`Self::verify`] does access
    /// tokens, and checks its audience.
    pub fn verify_refresh(
        &self,
        keys: &KeySet,
        token: &str,
        now: u64,
    ) -> Result<RefreshClaims, Inactive> {
        let claims: RefreshClaims = verify_jws(keys, token, &[REFRESH_TOKEN_TYP])?;
        if claims.aud != self.refresh_audience {
            return Err(Inactive::WrongType);
        }
        if !valid_id(&claims.jti) || !valid_id(&claims.fid) {
            return Err(Inactive::Malformed);
        }
        self.check_window(&claims.iss, claims.iat, claims.nbf, claims.exp, now)?;
        Ok(claims)
    }

    /// Verifies an access token at `now`: known `kid`, that key's algorithm
    /// only, no `crit`, signature, `typ`, issuer, audience (RFC 9068 §4),
    /// ids usable on the revocation list, and the validity window.
    pub fn verify(&self, keys: &KeySet, token: &str, now: u64) -> Result<AccessClaims, Inactive> {
        let claims: AccessClaims =
            verify_jws(keys, token, &[ACCESS_TOKEN_TYP, "application/at+jwt"])?;
        let audience_ok = match &claims.aud {
            serde_json::Value::String(aud) => *aud == self.audience,
            serde_json::Value::Array(list) => list.iter().any(|a| *a == *self.audience),
            _ => false,
        };
        if !audience_ok {
            return Err(Inactive::WrongAudience);
        }
        if !valid_id(&claims.jti) || claims.fid.as_deref().is_some_and(|f| !valid_id(f)) {
            return Err(Inactive::Malformed);
        }
        self.check_window(&claims.iss, claims.iat, claims.nbf, claims.exp, now)?;
        Ok(claims)
    }

    fn check_window(
        &self,
        iss: &str,
        iat: u64,
        nbf: u64,
        exp: u64,
        now: u64,
    ) -> Result<(), Inactive> {
        if iss != self.issuer {
            return Err(Inactive::ForeignIssuer);
        }
        WINDOW
            .check(exp, Some(nbf), iat, now)
            .map_err(|failure| match failure {
                Failure::Expired => Inactive::Expired,
                Failure::NotYetValid => Inactive::NotYetValid,
                _ => Inactive::IssuedInFuture,
            })
    }
}

/// A fresh `jti`: 128 random bits from aws-lc's userspace DRBG (no syscall
/// per token), base64url into `buf`.
fn new_jti(buf: &mut [u8; 22]) -> Result<&str, OAuthError> {
    let mut random = [0u8; 16];
    aws_lc_rs::rand::fill(&mut random).map_err(OAuthError::internal)?;
    URL_SAFE_NO_PAD
        .encode_slice(random, buf)
        .ok()
        .and_then(|n| std::str::from_utf8(&buf[..n]).ok())
        .ok_or_else(|| OAuthError::internal("jti encoding"))
}

/// Verifies a JWS ([`certbound_verify::jws::verify`], the one
/// implementation resource servers use too): one of `types` as `typ`, a
/// known `kid`, that key's algorithm only, and the signature. Claims are
/// checked by the caller.
fn verify_jws<T: DeserializeOwned>(
    keys: &KeySet,
    token: &str,
    types: &[&str],
) -> Result<T, Inactive> {
    certbound_verify::jws::verify(keys, token, types).map_err(Inactive::from)
}

impl From<JwsError> for Inactive {
    fn from(e: JwsError) -> Self {
        match e {
            JwsError::Malformed | JwsError::Claims(_) => Inactive::Malformed,
            JwsError::WrongType => Inactive::WrongType,
            JwsError::UnknownKey => Inactive::UnknownKey,
            JwsError::AlgorithmMismatch => Inactive::AlgorithmMismatch,
            JwsError::BadSignature => Inactive::BadSignature,
            JwsError::CriticalExtension => Inactive::CriticalExtension,
        }
    }
}

/// JWS compact serialisation with the key that signs at `now`.
pub(crate) fn sign<T: Serialize>(
    keys: &KeySet,
    typ: &str,
    claims: &T,
    now: u64,
) -> Result<String, OAuthError> {
    let key = keys.signing(now);
    let header = serde_json::to_vec(&HeaderRef {
        alg: key.alg.name(),
        kid: &key.kid,
        typ,
    })
    .map_err(OAuthError::internal)?;
    let payload = serde_json::to_vec(claims).map_err(OAuthError::internal)?;
    sign_segments(key, &header, &payload)
}

/// JWS compact serialisation of `header` and `payload` exactly as given,
/// signed with `key`. Tests and the fuzzer use it to make tokens only this
/// server could have made.
pub fn sign_segments(
    key: &SigningKey,
    header: &[u8],
    payload: &[u8],
) -> Result<String, OAuthError> {
    let mut out = String::with_capacity(64 + (header.len() + payload.len()) * 4 / 3 + 128);
    URL_SAFE_NO_PAD.encode_string(header, &mut out);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut out);
    let signature = key.sign(out.as_bytes()).map_err(OAuthError::internal)?;
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(&signature, &mut out);
    Ok(out)
}

#[cfg(test)]
#[path = "token/tests.rs"]
mod tests;
