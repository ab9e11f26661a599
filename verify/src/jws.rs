//! The JWS part of verifying a token (RFC 7515, RFC 8725): a `typ` from the
//! caller's list, no `crit`, a known `kid`, that key's algorithm only (the
//! algorithm comes from the key, never from the token: `alg: none`, or
//! HS256 keyed with a public key, cannot pass), and the signature. The
//! claims are the caller's to check.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Longest token looked at; longer ones are malformed.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Verification keys by `kid`, each pinned to one algorithm.
pub trait KeyLookup {
    /// The key with this `kid` and the algorithm it is pinned to.
    fn key(&self, kid: &str) -> Option<(Algorithm, &DecodingKey)>;
}

/// Why a JWS does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    /// Not a compact JWS, bad base64 or JSON, or too long.
    #[error("malformed token")]
    Malformed,
    /// The claims are not JSON of the expected shape (a required claim is
    /// missing or of the wrong type); says which.
    #[error("claims: {0}")]
    Claims(String),
    /// `typ` missing or not one of those accepted.
    #[error("wrong token type")]
    WrongType,
    /// `kid` missing or unknown.
    #[error("unknown key")]
    UnknownKey,
    /// `alg` is not the key's algorithm (`none` included).
    #[error("algorithm not allowed for this key")]
    AlgorithmMismatch,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// The header has `crit`: an extension not implemented here (RFC 7515
    /// §4.1.11).
    #[error("critical header extension")]
    CriticalExtension,
}

/// Verifies `token` as a JWS of one of `types` (compared
/// case-insensitively) signed by a key of `keys`; its claims as `T`.
pub fn verify<T: DeserializeOwned>(
    keys: &impl KeyLookup,
    token: &str,
    types: &[&str],
) -> Result<T, JwsError> {
    use_aws_lc();
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwsError::Malformed);
    }
    let encoded = token.split('.').next().ok_or(JwsError::Malformed)?;
    let mut buf = [0u8; 512];
    let len = URL_SAFE_NO_PAD
        .decode_slice(encoded, &mut buf)
        .map_err(|_| JwsError::Malformed)?;
    let header: JoseHeader<'_> =
        serde_json::from_slice(&buf[..len]).map_err(|_| JwsError::Malformed)?;
    if header.crit {
        return Err(JwsError::CriticalExtension);
    }
    let typ_ok = header
        .typ
        .as_deref()
        .is_some_and(|t| types.iter().any(|want| t.eq_ignore_ascii_case(want)));
    if !typ_ok {
        return Err(JwsError::WrongType);
    }
    let (alg, key) = header
        .kid
        .as_deref()
        .and_then(|kid| keys.key(kid))
        .ok_or(JwsError::UnknownKey)?;
    if header.alg.parse::<Algorithm>().ok() != Some(alg) {
        return Err(JwsError::AlgorithmMismatch);
    }
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<T>(token, key, &validation)
        .map(|data| data.claims)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => JwsError::BadSignature,
            jsonwebtoken::errors::ErrorKind::Json(e) => JwsError::Claims(e.to_string()),
            _ => JwsError::Malformed,
        })
}

/// The `kid` of `token`'s header, if it is a JWS that names one (read
/// without verifying anything: for choosing which keys to look in).
pub fn kid(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Kid {
        kid: Option<String>,
    }
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let mut buf = [0u8; 512];
    let len = URL_SAFE_NO_PAD
        .decode_slice(token.split('.').next()?, &mut buf)
        .ok()?;
    serde_json::from_slice::<Kid>(&buf[..len]).ok()?.kid
}

/// jsonwebtoken verifies with the provider installed for the process, or
/// one chosen by its enabled features, and panics when both of its
/// backends are enabled (another crate of the build may enable
/// `rust_crypto`): install aws-lc's first, unless the application already
/// chose one.
fn use_aws_lc() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    });
}

/// The JOSE header fields verification looks at (RFC 7515 §4.1).
#[derive(Deserialize)]
struct JoseHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    typ: Option<Cow<'a, str>>,
    /// Present at all (even `null`): refused.
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

/// `true` for a field that is there, whatever its value.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::EncodingKey;
    use proptest::prelude::*;
    use serde_json::json;
    use std::collections::HashMap;

    struct Keys(HashMap<String, (Algorithm, DecodingKey)>);

    impl KeyLookup for Keys {
        fn key(&self, kid: &str) -> Option<(Algorithm, &DecodingKey)> {
            self.0.get(kid).map(|(alg, key)| (*alg, key))
        }
    }

    struct Fixture {
        keys: Keys,
        signing: EncodingKey,
        public_pem: String,
    }

    fn fixture() -> Fixture {
        let pair = rcgen::KeyPair::generate().unwrap();
        let public_pem = pair.public_key_pem();
        let decoding = DecodingKey::from_ec_pem(public_pem.as_bytes()).unwrap();
        let signing = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
        let keys = Keys(HashMap::from([(
            "k1".to_string(),
            (Algorithm::ES256, decoding),
        )]));
        Fixture {
            keys,
            signing,
            public_pem,
        }
    }

    fn b64(v: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    /// A JWS over exactly this header and these claims.
    fn signed(f: &Fixture, header: &serde_json::Value, claims: &serde_json::Value) -> String {
        let input = format!("{}.{}", b64(header), b64(claims));
        let sig =
            jsonwebtoken::crypto::sign(input.as_bytes(), &f.signing, Algorithm::ES256).unwrap();
        format!("{input}.{sig}")
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Claims {
        sub: String,
    }

    const AT: &[&str] = &["at+jwt", "application/at+jwt"];

    #[test]
    fn a_good_token_and_each_refusal() {
        let f = fixture();
        let claims = json!({"sub": "svc"});
        let header = |typ: &str| json!({"alg": "ES256", "kid": "k1", "typ": typ});
        let ok = |t: &str| verify::<Claims>(&f.keys, t, AT);
        for typ in ["at+jwt", "AT+JWT", "application/at+jwt"] {
            assert_eq!(
                ok(&signed(&f, &header(typ), &claims)),
                Ok(Claims { sub: "svc".into() })
            );
        }
        let refused = |h: serde_json::Value| ok(&signed(&f, &h, &claims)).unwrap_err();
        assert_eq!(refused(header("JWT")), JwsError::WrongType);
        assert_eq!(
            refused(json!({"alg": "ES256", "kid": "k1"})),
            JwsError::WrongType
        );
        assert_eq!(
            refused(json!({"alg": "ES256", "kid": "k1", "typ": "at+jwt", "crit": ["exp"]})),
            JwsError::CriticalExtension
        );
        assert_eq!(
            refused(json!({"alg": "ES256", "kid": "k1", "typ": "at+jwt", "crit": null})),
            JwsError::CriticalExtension
        );
        assert_eq!(
            refused(json!({"alg": "ES256", "kid": "k2", "typ": "at+jwt"})),
            JwsError::UnknownKey
        );
        assert_eq!(
            refused(json!({"alg": "ES256", "typ": "at+jwt"})),
            JwsError::UnknownKey
        );
        // A missing claim says which.
        let t = signed(&f, &header("at+jwt"), &json!({"client_id": "svc"}));
        assert!(matches!(ok(&t), Err(JwsError::Claims(m)) if m.contains("sub")));
        // Changed claims under the old signature.
        let good = signed(&f, &header("at+jwt"), &claims);
        let parts: Vec<&str> = good.split('.').collect();
        let changed = format!(
            "{}.{}.{}",
            parts[0],
            b64(&json!({"sub": "admin"})),
            parts[2]
        );
        assert_eq!(ok(&changed), Err(JwsError::BadSignature));
        for junk in ["", "a", "a.b", "...", &"a".repeat(MAX_TOKEN_LEN + 1)] {
            assert!(ok(junk).is_err(), "{junk}");
            assert_eq!(kid(junk), None);
        }
        assert_eq!(kid(&good).as_deref(), Some("k1"));
    }

    /// RFC 8725 §2.1: the algorithm is the key's, never the token's.
    #[test]
    fn none_and_hs256_keyed_with_the_public_key_are_refused() {
        let f = fixture();
        let claims = json!({"sub": "svc"});
        let none = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "kid": "k1", "typ": "at+jwt"})),
            b64(&claims)
        );
        assert_eq!(
            verify::<Claims>(&f.keys, &none, AT),
            Err(JwsError::AlgorithmMismatch)
        );
        let hmac = EncodingKey::from_secret(f.public_pem.as_bytes());
        let input = format!(
            "{}.{}",
            b64(&json!({"alg": "HS256", "kid": "k1", "typ": "at+jwt"})),
            b64(&claims)
        );
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &hmac, Algorithm::HS256).unwrap();
        let forged = format!("{input}.{sig}");
        assert_eq!(
            verify::<Claims>(&f.keys, &forged, AT),
            Err(JwsError::AlgorithmMismatch)
        );
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,400}") {
            let f = fixture();
            let _ = verify::<Claims>(&f.keys, &s, AT);
        }

        #[test]
        fn never_panics_on_near_tokens(header in "[A-Za-z0-9_-]{0,80}", claims in "[A-Za-z0-9_-]{0,80}", sig in "[A-Za-z0-9_-]{0,90}") {
            let f = fixture();
            let _ = verify::<Claims>(&f.keys, &format!("{header}.{claims}.{sig}"), AT);
            let _ = verify::<Claims>(&f.keys, &format!("eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiYXQrand0In0.{claims}.{sig}"), AT);
        }
    }
}
