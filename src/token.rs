//! JWT access tokens (RFC 9068) bound to a client certificate
//! (RFC 8705 §3): minting and verification. Time is always a parameter.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Validation;
use serde::{Deserialize, Serialize};

use crate::error::OAuthError;
use crate::keys::KeySet;

/// RFC 9068 §2.1 `typ` of access tokens.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Longest token we try to verify; anything longer is inactive.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

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
}

/// Why a token is not active. Never sent to clients: introspection answers
/// `{"active": false}` for all of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Inactive {
    /// Not a JWS, bad base64 or JSON, or too long.
    #[error("malformed token")]
    Malformed,
    /// Wrong or missing `typ`.
    #[error("not an access token")]
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
    /// On the revocation list.
    #[error("revoked")]
    Revoked,
}

impl TokenService {
    /// Mints a signed access token at `now`.
    pub fn mint(
        &self,
        keys: &KeySet,
        grant: AccessGrant<'_>,
        now: u64,
    ) -> Result<String, OAuthError> {
        // 128 random bits from aws-lc's userspace DRBG: no syscall per token.
        let mut random = [0u8; 16];
        aws_lc_rs::rand::fill(&mut random).map_err(OAuthError::internal)?;
        let mut jti_buf = [0u8; 22];
        let jti = URL_SAFE_NO_PAD
            .encode_slice(random, &mut jti_buf)
            .ok()
            .and_then(|n| std::str::from_utf8(&jti_buf[..n]).ok())
            .ok_or_else(|| OAuthError::internal("jti encoding"))?;
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
        };
        sign(keys, ACCESS_TOKEN_TYP, &claims)
    }

    /// Verifies an access token at `now`: known `kid`, that key's algorithm
    /// only, signature, `typ`, issuer and validity window.
    pub fn verify(&self, keys: &KeySet, token: &str, now: u64) -> Result<AccessClaims, Inactive> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Inactive::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| Inactive::Malformed)?;
        let typ_ok = header.typ.as_deref().is_some_and(|t| {
            t.eq_ignore_ascii_case(ACCESS_TOKEN_TYP) || t.eq_ignore_ascii_case("application/at+jwt")
        });
        if !typ_ok {
            return Err(Inactive::WrongType);
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| keys.get(kid))
            .ok_or(Inactive::UnknownKey)?;
        if header.alg != key.jwt_alg {
            return Err(Inactive::AlgorithmMismatch);
        }
        let mut validation = Validation::new(key.jwt_alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => Inactive::BadSignature,
                _ => Inactive::Malformed,
            })?;
        let claims = data.claims;
        if claims.iss != self.issuer {
            return Err(Inactive::ForeignIssuer);
        }
        if claims.exp <= now {
            return Err(Inactive::Expired);
        }
        if claims.nbf > now {
            return Err(Inactive::NotYetValid);
        }
        Ok(claims)
    }
}

/// JWS compact serialisation with the current key.
fn sign<T: Serialize>(keys: &KeySet, typ: &str, claims: &T) -> Result<String, OAuthError> {
    let key = keys.current();
    let header = serde_json::to_vec(&HeaderRef {
        alg: key.alg.name(),
        kid: &key.kid,
        typ,
    })
    .map_err(OAuthError::internal)?;
    let payload = serde_json::to_vec(claims).map_err(OAuthError::internal)?;
    let mut out = String::with_capacity(64 + (header.len() + payload.len()) * 4 / 3 + 128);
    URL_SAFE_NO_PAD.encode_string(&header, &mut out);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut out);
    let signature = key.sign(out.as_bytes()).map_err(OAuthError::internal)?;
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(&signature, &mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Alg, KeySet, generate_key};

    fn setup(alg: Alg) -> (tempfile::TempDir, KeySet, TokenService) {
        let dir = tempfile::tempdir().unwrap();
        generate_key(dir.path(), alg, 1).unwrap();
        let keys = KeySet::load(dir.path(), None).unwrap();
        let svc = TokenService {
            issuer: "https://as.example".into(),
            audience: "https://as.example".into(),
            lifetime: 60,
        };
        (dir, keys, svc)
    }

    const GRANT: AccessGrant<'static> = AccessGrant {
        sub: "c",
        client_id: "c",
        scope: "read",
        binding: Some("thumb"),
    };

    #[test]
    fn round_trip_every_algorithm() {
        for alg in [Alg::ES256, Alg::RS256, Alg::PS256, Alg::EdDSA] {
            let (_d, keys, svc) = setup(alg);
            let token = svc.mint(&keys, GRANT, 1000).unwrap();
            let claims = svc.verify(&keys, &token, 1001).unwrap();
            assert_eq!(claims.cnf.unwrap().x5t_s256, "thumb");
            assert_eq!(claims.exp, 1060);
            assert_eq!(svc.verify(&keys, &token, 1060), Err(Inactive::Expired));
            assert_eq!(svc.verify(&keys, &token, 999), Err(Inactive::NotYetValid));
        }
    }

    #[test]
    fn jti_is_128_random_bits() {
        let (_d, keys, svc) = setup(Alg::ES256);
        let jtis: std::collections::HashSet<String> = (0..200)
            .map(|_| {
                svc.verify(&keys, &svc.mint(&keys, GRANT, 1000).unwrap(), 1001)
                    .unwrap()
                    .jti
            })
            .collect();
        assert_eq!(jtis.len(), 200);
        assert!(jtis.iter().all(|j| j.len() == 22));
    }

    #[test]
    fn confusion_and_tampering_are_inactive() {
        let (_d, keys, svc) = setup(Alg::ES256);
        let token = svc.mint(&keys, GRANT, 1000).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        let with_header = |h: serde_json::Value| {
            format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode(h.to_string()),
                parts[1],
                parts[2]
            )
        };
        let mut none = header.clone();
        none["alg"] = "none".into();
        assert!(
            svc.verify(
                &keys,
                &format!("{}.{}.", URL_SAFE_NO_PAD.encode(none.to_string()), parts[1]),
                1001
            )
            .is_err()
        );
        let mut hs = header.clone();
        hs["alg"] = "HS256".into();
        assert_eq!(
            svc.verify(&keys, &with_header(hs), 1001),
            Err(Inactive::AlgorithmMismatch)
        );
        let mut rs = header.clone();
        rs["alg"] = "RS256".into();
        assert_eq!(
            svc.verify(&keys, &with_header(rs), 1001),
            Err(Inactive::AlgorithmMismatch)
        );
        let mut kid = header.clone();
        kid["kid"] = "other".into();
        assert_eq!(
            svc.verify(&keys, &with_header(kid), 1001),
            Err(Inactive::UnknownKey)
        );
        let mut typ = header.clone();
        typ["typ"] = "JWT".into();
        assert_eq!(
            svc.verify(&keys, &with_header(typ), 1001),
            Err(Inactive::WrongType)
        );
        let mut claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        claims["scope"] = "admin".into();
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            parts[2]
        );
        assert_eq!(
            svc.verify(&keys, &tampered, 1001),
            Err(Inactive::BadSignature)
        );
        let foreign = TokenService {
            issuer: "https://evil".into(),
            ..svc.clone()
        };
        assert_eq!(
            foreign.verify(&keys, &token, 1001),
            Err(Inactive::ForeignIssuer)
        );
        assert_eq!(
            svc.verify(&keys, "not.a.jwt", 1001),
            Err(Inactive::Malformed)
        );
        assert_eq!(
            svc.verify(&keys, &"a".repeat(MAX_TOKEN_LEN + 1), 1001),
            Err(Inactive::Malformed)
        );
    }
}
