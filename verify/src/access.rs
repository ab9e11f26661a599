//! An access token as a resource server checks it (RFC 9068 §4, RFC 8705
//! §3): the JWS ([`crate::jws`]), then `iss`, `aud`, `exp` and `nbf` (with
//! a leeway), the required claims, and the certificate binding.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::binding::{self, BindingError, Unbound};
use crate::jws::{self, JwsError, KeyLookup};

/// RFC 9068 §2.1 `typ` values of access tokens (compared
/// case-insensitively).
pub const ACCESS_TOKEN_TYPES: &[&str] = &["at+jwt", "application/at+jwt"];

/// What a resource server accepts.
#[derive(Debug, Clone)]
pub struct Expect {
    /// The authorization server's issuer, exactly.
    pub issuer: String,
    /// Audiences accepted: the token's `aud` must name one.
    pub audiences: Vec<String>,
    /// Seconds of clock difference allowed on `exp` and `nbf`.
    pub leeway: u64,
    /// Whether tokens without `cnf` are accepted.
    pub unbound: Unbound,
}

impl Expect {
    /// Tokens of `issuer` for `audience`, 30 s of leeway, bound tokens only.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audiences: vec![audience.into()],
            leeway: 30,
            unbound: Unbound::Refused,
        }
    }
}

/// `aud`: one audience or several (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl Audience {
    /// Whether `aud` names `audience`.
    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Self::One(a) => a == audience,
            Self::Many(list) => list.iter().any(|a| a == audience),
        }
    }
}

/// `cnf` (RFC 8705 §3.1).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Confirmation {
    /// base64url SHA-256 thumbprint of the client certificate.
    #[serde(rename = "x5t#S256")]
    pub x5t_s256: String,
}

/// A verified access token's claims; `E` holds the application's own.
#[derive(Debug, Clone, Deserialize)]
pub struct AccessToken<E = Extra> {
    /// Issuer.
    pub iss: String,
    /// Subject: a user, or the client itself.
    pub sub: String,
    /// Audience.
    pub aud: Audience,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Not before, Unix seconds.
    #[serde(default)]
    pub nbf: Option<u64>,
    /// Token id.
    pub jti: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// Granted scopes, space-separated (RFC 9068 §2.2.3).
    #[serde(default)]
    pub scope: String,
    /// The user the token acts for, if any.
    #[serde(default)]
    pub username: Option<String>,
    /// Certificate binding.
    #[serde(default)]
    pub cnf: Option<Confirmation>,
    /// The application's own claims.
    #[serde(flatten)]
    pub extra: E,
}

/// No claims beyond the standard ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Extra {}

impl<E> AccessToken<E> {
    /// Whether the token was granted `scope` (never an empty one).
    pub fn has_scope(&self, scope: &str) -> bool {
        !scope.is_empty() && self.scope.split(' ').any(|s| s == scope)
    }
}

/// Which check a token failed. For logs: on the wire, RFC 6750 allows no
/// more than `invalid_token`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The JWS (signature, key, algorithm, `typ`, `crit`, shape).
    #[error(transparent)]
    Jws(#[from] JwsError),
    /// `iss` is not the expected issuer.
    #[error("issued by another issuer")]
    Issuer,
    /// `aud` names no accepted audience.
    #[error("for another audience")]
    Audience,
    /// `exp` has passed (beyond the leeway).
    #[error("expired")]
    Expired,
    /// `nbf` is still ahead (beyond the leeway).
    #[error("not yet valid")]
    NotYetValid,
    /// The certificate binding.
    #[error(transparent)]
    Binding(#[from] BindingError),
    /// Introspection says the token is no longer active (revoked).
    #[error("revoked (introspection: not active)")]
    Revoked,
    /// The keys cannot be had: not a fault of the token (503).
    #[error(transparent)]
    Keys(#[from] crate::remote::KeysError),
    /// Introspection gave no answer: not a fault of the token (503).
    #[error(transparent)]
    Introspection(#[from] crate::introspection::IntrospectionError),
}

impl Failure {
    /// Whether the token could not be checked because the authorization
    /// server (its keys or its introspection) cannot be reached: answer
    /// 503, not 401.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Keys(_) | Self::Introspection(_))
    }
}

/// Verifies `token` with `keys` for `expect` at `now` (Unix seconds),
/// presented with the client certificate of thumbprint `presented`
/// ([`binding::thumbprint`] of its DER), if any.
pub fn verify<E: DeserializeOwned>(
    keys: &impl KeyLookup,
    token: &str,
    expect: &Expect,
    presented: Option<&str>,
    now: u64,
) -> Result<AccessToken<E>, Failure> {
    let claims: AccessToken<E> = jws::verify(keys, token, ACCESS_TOKEN_TYPES)?;
    if claims.iss != expect.issuer {
        return Err(Failure::Issuer);
    }
    if !expect.audiences.iter().any(|a| claims.aud.contains(a)) {
        return Err(Failure::Audience);
    }
    if claims.exp.saturating_add(expect.leeway) <= now {
        return Err(Failure::Expired);
    }
    if claims
        .nbf
        .is_some_and(|nbf| nbf > now.saturating_add(expect.leeway))
    {
        return Err(Failure::NotYetValid);
    }
    binding::check(
        claims.cnf.as_ref().map(|c| c.x5t_s256.as_str()),
        presented,
        expect.unbound,
    )?;
    Ok(claims)
}
