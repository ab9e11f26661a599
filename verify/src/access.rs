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
    /// The time window's rules.
    pub window: Window,
    /// Whether tokens without `cnf` are accepted.
    pub unbound: Unbound,
}

impl Expect {
    /// Tokens of `issuer` for `audience`, 30 s of leeway, bound tokens only.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audiences: vec![audience.into()],
            window: Window::RESOURCE_SERVER,
            unbound: Unbound::Refused,
        }
    }
}

/// The validity window (RFC 7519 §4.1.4 `exp`, §4.1.5 `nbf`, §4.1.6
/// `iat`): one implementation for resource servers and certbound itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Seconds of clock difference allowed on `exp` and `nbf`.
    pub leeway: u64,
    /// When set, an `iat` more than this many seconds ahead is refused.
    pub max_iat_ahead: Option<u64>,
}

impl Window {
    /// A resource server's: 30 s of leeway, `iat` not looked at.
    pub const RESOURCE_SERVER: Self = Self {
        leeway: 30,
        max_iat_ahead: None,
    };

    /// Checks `exp`, `nbf` (if any) and `iat` at `now` (Unix seconds).
    pub fn check(&self, exp: u64, nbf: Option<u64>, iat: u64, now: u64) -> Result<(), Failure> {
        if exp.saturating_add(self.leeway) <= now {
            return Err(Failure::Expired);
        }
        if nbf.is_some_and(|nbf| nbf > now.saturating_add(self.leeway)) {
            return Err(Failure::NotYetValid);
        }
        if self
            .max_iat_ahead
            .is_some_and(|ahead| iat > now.saturating_add(ahead))
        {
            return Err(Failure::IssuedInFuture);
        }
        Ok(())
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
    /// `iat` is further ahead than [`Window::max_iat_ahead`] allows.
    #[error("issued in the future")]
    IssuedInFuture,
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
    expect
        .window
        .check(claims.exp, claims.nbf, claims.iat, now)?;
    binding::check(
        claims.cnf.as_ref().map(|c| c.x5t_s256.as_str()),
        presented,
        expect.unbound,
    )?;
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwks::Jwks;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use proptest::prelude::*;
    use serde_json::json;
    use std::sync::OnceLock;

    const NOW: u64 = 1_800_000_000;

    fn fixture() -> &'static (Jwks, EncodingKey) {
        static KEYS: OnceLock<(Jwks, EncodingKey)> = OnceLock::new();
        KEYS.get_or_init(|| {
            let pair = rcgen::KeyPair::generate().unwrap();
            let raw = pair.public_key_raw();
            let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
            let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256",
                "x": b64(&raw[1..33]), "y": b64(&raw[33..65])}]});
            (
                Jwks::from_json(jwks.to_string().as_bytes(), &[]).unwrap(),
                EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap(),
            )
        })
    }

    fn sign(claims: &serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("k1".into());
        header.typ = Some("at+jwt".into());
        jsonwebtoken::encode(&header, claims, &fixture().1).unwrap()
    }

    /// What the claims and the presented certificate make of a token, as
    /// a model independent of [`verify`]'s code.
    #[allow(clippy::too_many_arguments)]
    fn model(
        iss_ok: bool,
        aud: &serde_json::Value,
        exp: i64,
        nbf: Option<i64>,
        cnf: Option<&str>,
        presented: Option<&str>,
        unbound: Unbound,
    ) -> Result<(), Failure> {
        let names_api = match aud {
            serde_json::Value::String(a) => a == "api",
            serde_json::Value::Array(list) => list.iter().any(|a| a == "api"),
            _ => false,
        };
        if !iss_ok {
            Err(Failure::Issuer)
        } else if !names_api {
            Err(Failure::Audience)
        } else if exp + 30 <= 0 {
            Err(Failure::Expired)
        } else if nbf.is_some_and(|n| n > 30) {
            Err(Failure::NotYetValid)
        } else {
            match (cnf, presented) {
                (None, _) if unbound == Unbound::Accepted => Ok(()),
                (None, _) => Err(BindingError::Unbound.into()),
                (Some(_), None) => Err(BindingError::NoCertificate.into()),
                (Some(a), Some(b)) if a == b => Ok(()),
                _ => Err(BindingError::OtherCertificate.into()),
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Every combination of the claims a resource server checks gives
        /// what the model says, and the first failing check is named.
        #[test]
        fn claims_are_checked_as_the_model_says(
            iss_ok in any::<bool>(),
            aud in prop_oneof![
                Just(json!("api")), Just(json!("other")), Just(json!(["x", "api"])),
                Just(json!(["x", "y"])), Just(json!([])),
            ],
            exp in -100i64..100,
            nbf in proptest::option::of(-100i64..100),
            cnf in proptest::option::of(prop_oneof![Just("T1"), Just("T2")]),
            presented in proptest::option::of(prop_oneof![Just("T1"), Just("T2")]),
            accept_unbound in any::<bool>(),
        ) {
            let at = |offset: i64| NOW.checked_add_signed(offset).unwrap();
            let mut claims = json!({
                "iss": if iss_ok { "https://as" } else { "https://as/" },
                "sub": "svc", "aud": aud, "exp": at(exp), "iat": NOW, "jti": "j1",
                "client_id": "svc", "scope": "read",
            });
            if let Some(n) = nbf {
                claims["nbf"] = at(n).into();
            }
            if let Some(c) = cnf {
                claims["cnf"] = json!({"x5t#S256": c});
            }
            let unbound = if accept_unbound { Unbound::Accepted } else { Unbound::Refused };
            let mut expect = Expect::new("https://as", "api");
            expect.unbound = unbound;
            let got = verify::<Extra>(&fixture().0, &sign(&claims), &expect, presented, NOW).map(|_| ());
            prop_assert_eq!(got, model(iss_ok, &aud, exp, nbf, cnf, presented, unbound));
        }

        /// Claims of any JSON shape never panic, and are refused unless
        /// they have every required claim with its type.
        #[test]
        fn odd_claims_are_refused_not_panicked_on(
            value in proptest::arbitrary::any::<u8>().prop_map(|n| n as u64),
            missing in 0usize..7,
        ) {
            let names = ["iss", "sub", "aud", "exp", "iat", "jti", "client_id"];
            let mut claims = json!({"iss": "https://as", "sub": "svc", "aud": "api",
                "exp": NOW + 60, "iat": NOW, "jti": "j", "client_id": "svc", "scope": "x"});
            claims.as_object_mut().unwrap().remove(names[missing]);
            claims["scope"] = value.into();
            let expect = Expect { unbound: Unbound::Accepted, ..Expect::new("https://as", "api") };
            let got = verify::<Extra>(&fixture().0, &sign(&claims), &expect, None, NOW);
            prop_assert!(matches!(got, Err(Failure::Jws(JwsError::Claims(_)))), "{:?}", got);
        }
    }

    #[test]
    fn the_window() {
        let w = Window::RESOURCE_SERVER;
        assert_eq!(w.check(NOW - 29, None, NOW, NOW), Ok(()));
        assert_eq!(w.check(NOW - 30, None, NOW, NOW), Err(Failure::Expired));
        assert_eq!(w.check(NOW + 60, Some(NOW + 30), NOW, NOW), Ok(()));
        assert_eq!(
            w.check(NOW + 60, Some(NOW + 31), NOW, NOW),
            Err(Failure::NotYetValid)
        );
        assert_eq!(
            w.check(NOW + 60, None, u64::MAX, NOW),
            Ok(()),
            "iat not looked at"
        );
        let strict = Window {
            leeway: 0,
            max_iat_ahead: Some(60),
        };
        assert_eq!(strict.check(NOW, None, NOW, NOW), Err(Failure::Expired));
        assert_eq!(
            strict.check(NOW + 1, None, NOW + 61, NOW),
            Err(Failure::IssuedInFuture)
        );
        // No overflow at the ends.
        assert_eq!(strict.check(u64::MAX, Some(0), 0, u64::MAX - 1), Ok(()));
        assert_eq!(
            w.check(u64::MAX, Some(u64::MAX), u64::MAX, u64::MAX),
            Err(Failure::Expired)
        );
    }
}
