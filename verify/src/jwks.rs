//! Verification keys from a JWKS (RFC 7517), each pinned to one algorithm
//! (RFC 8725 §3.1): the JWK's `alg`, else the one its curve allows
//! (`P-256`: ES256, `Ed25519`: EdDSA); an RSA key without `alg` is used
//! only when the allow-list names exactly one RSA algorithm. Keys for
//! encryption, symmetric keys and keys outside the allow-list are skipped.

use std::collections::HashMap;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::jws::KeyLookup;

/// Algorithms a certbound server signs with.
pub const CERTBOUND_ALGORITHMS: &[Algorithm] = &[
    Algorithm::ES256,
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::EdDSA,
];

/// Keys by `kid`.
pub struct Jwks {
    keys: HashMap<String, (Algorithm, DecodingKey)>,
    skipped: Vec<String>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kids: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        f.debug_struct("Jwks")
            .field("kids", &kids)
            .field("skipped", &self.skipped)
            .finish()
    }
}

/// Why a JWKS gives no keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// Not JSON with a `keys` array.
    #[error("not a JWKS: {0}")]
    NotJwks(String),
    /// No key could verify a token (each skipped key says why).
    #[error("no usable signing key ({})", .0.join("; "))]
    NoKey(Vec<String>),
}

impl Jwks {
    /// The keys of a JWKS document that may sign with one of `allowed`
    /// (empty: [`CERTBOUND_ALGORITHMS`]).
    pub fn from_json(json: &[u8], allowed: &[Algorithm]) -> Result<Self, JwksError> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let doc: Document =
            serde_json::from_slice(json).map_err(|e| JwksError::NotJwks(e.to_string()))?;
        let allowed = if allowed.is_empty() {
            CERTBOUND_ALGORITHMS
        } else {
            allowed
        };
        let mut keys = HashMap::new();
        let mut skipped = Vec::new();
        let mut twice = std::collections::HashSet::new();
        for (i, value) in doc.keys.into_iter().enumerate() {
            match key(value, allowed) {
                Ok((kid, alg, decoding)) => {
                    if keys.insert(kid.clone(), (alg, decoding)).is_some() {
                        twice.insert(kid);
                    }
                }
                Err(why) => skipped.push(format!("keys[{i}]: {why}")),
            }
        }
        // A kid named twice is ambiguous: neither entry is used.
        for kid in twice {
            keys.remove(&kid);
            skipped.push(format!("{kid}: more than one key with this kid"));
        }
        if keys.is_empty() {
            return Err(JwksError::NoKey(skipped));
        }
        Ok(Self { keys, skipped })
    }

    /// How many keys can verify.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether none can (never true of a value [`Self::from_json`] made).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Keys left out, and why.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }
}

impl KeyLookup for Jwks {
    fn key(&self, kid: &str) -> Option<(Algorithm, &DecodingKey)> {
        self.keys.get(kid).map(|(alg, key)| (*alg, key))
    }
}

/// One JWK's `kid`, algorithm and key, or why it is left out.
fn key(
    value: serde_json::Value,
    allowed: &[Algorithm],
) -> Result<(String, Algorithm, DecodingKey), String> {
    let jwk: Jwk = serde_json::from_value(value).map_err(|e| e.to_string())?;
    let kid = jwk.common.key_id.clone().ok_or("no kid")?;
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return Err(format!("{kid}: not a signing key (use)"));
    }
    if let Some(ops) = &jwk.common.key_operations
        && !ops.contains(&KeyOperations::Verify)
    {
        return Err(format!("{kid}: not a verification key (key_ops)"));
    }
    strong_enough(&jwk).map_err(|why| format!("{kid}: {why}"))?;
    let alg = algorithm(&jwk, allowed).ok_or_else(|| format!("{kid}: no allowed algorithm"))?;
    let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| format!("{kid}: {e}"))?;
    Ok((kid, alg, decoding))
}

/// RSA keys of at least 2048 bits; EC coordinates of the curve's size.
fn strong_enough(jwk: &Jwk) -> Result<(), &'static str> {
    let bytes = |b64: &str| {
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, b64)
            .map(|v| v.len())
            .unwrap_or(0)
    };
    match &jwk.algorithm {
        AlgorithmParameters::RSA(p) if bytes(&p.n) < 256 => Err("RSA modulus under 2048 bits"),
        AlgorithmParameters::EllipticCurve(p) => {
            let size = match p.curve {
                EllipticCurve::P256 => 32,
                EllipticCurve::P384 => 48,
                _ => return Err("unsupported curve"),
            };
            if bytes(&p.x) == size && bytes(&p.y) == size {
                Ok(())
            } else {
                Err("EC coordinates of the wrong size")
            }
        }
        _ => Ok(()),
    }
}

fn algorithm(jwk: &Jwk, allowed: &[Algorithm]) -> Option<Algorithm> {
    let fits = |alg: Algorithm| match (&jwk.algorithm, alg) {
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => p.curve == EllipticCurve::P256,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES384) => p.curve == EllipticCurve::P384,
        (AlgorithmParameters::OctetKeyPair(p), Algorithm::EdDSA) => {
            p.curve == EllipticCurve::Ed25519
        }
        (
            AlgorithmParameters::RSA(_),
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
        ) => true,
        _ => false,
    };
    if let Some(named) = jwk.common.key_algorithm {
        let alg = Algorithm::try_from(named).ok()?;
        return (allowed.contains(&alg) && fits(alg)).then_some(alg);
    }
    let mut candidates = allowed.iter().copied().filter(|a| fits(*a));
    let first = candidates.next()?;
    candidates.next().is_none().then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ec_jwk(kid: &str, extra: serde_json::Value) -> serde_json::Value {
        let pair = rcgen::KeyPair::generate().unwrap();
        // The uncompressed point: 0x04 || x || y.
        let raw = pair.public_key_raw();
        let b64 =
            |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, b);
        let mut jwk = json!({"kty": "EC", "crv": "P-256", "kid": kid,
            "x": b64(&raw[1..33]), "y": b64(&raw[33..65])});
        for (k, v) in extra.as_object().unwrap() {
            jwk[k] = v.clone();
        }
        jwk
    }

    /// An RSA modulus of `bytes` bytes (its value does not matter here).
    fn modulus(bytes: usize) -> String {
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            vec![0xc5u8; bytes],
        )
    }

    #[test]
    fn keys_are_pinned_and_unusable_ones_skipped() {
        let doc = json!({"keys": [
            ec_jwk("named", json!({"alg": "ES256", "use": "sig"})),
            ec_jwk("inferred", json!({})),
            ec_jwk("encryption", json!({"use": "enc"})),
            ec_jwk("lying", json!({"alg": "RS256"})),
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "rsa-no-alg", "n": modulus(256), "e": "AQAB"},
            {"kty": "RSA", "kid": "rsa-1024", "alg": "RS256", "n": modulus(128), "e": "AQAB"},
            ec_jwk("not-for-verifying", json!({"key_ops": ["encrypt"]})),
            ec_jwk("dup", json!({})),
            ec_jwk("dup", json!({})),
            {"kty": "EC", "crv": "P-256"},
            "junk"
        ]});
        let jwks = Jwks::from_json(doc.to_string().as_bytes(), &[]).unwrap();
        assert_eq!(jwks.len(), 2, "{jwks:?}");
        assert_eq!(jwks.key("named").map(|k| k.0), Some(Algorithm::ES256));
        assert_eq!(jwks.key("inferred").map(|k| k.0), Some(Algorithm::ES256));
        for kid in [
            "encryption",
            "lying",
            "hmac",
            "rsa-no-alg",
            "rsa-1024",
            "not-for-verifying",
            "dup",
        ] {
            assert!(jwks.key(kid).is_none(), "{kid}");
        }
        assert_eq!(jwks.skipped().len(), 9, "{:?}", jwks.skipped());
        let skipped = jwks.skipped().join("\n");
        for why in [
            "under 2048 bits",
            "key_ops",
            "more than one key with this kid",
        ] {
            assert!(skipped.contains(why), "{why}: {skipped}");
        }
        // An RSA key without alg, when only one RSA algorithm is allowed.
        let only = Jwks::from_json(
            json!({"keys": [{"kty": "RSA", "kid": "r", "n": modulus(256), "e": "AQAB"}]})
                .to_string()
                .as_bytes(),
            &[Algorithm::PS256],
        )
        .unwrap();
        assert_eq!(only.key("r").map(|k| k.0), Some(Algorithm::PS256));
    }

    #[test]
    fn nothing_usable_is_an_error_saying_why() {
        for doc in ["", "{}", "[]", "{\"keys\": 1}"] {
            assert!(
                matches!(
                    Jwks::from_json(doc.as_bytes(), &[]),
                    Err(JwksError::NotJwks(_))
                ),
                "{doc}"
            );
        }
        let err = Jwks::from_json(br#"{"keys": [{"kty": "oct", "kid": "h", "k": "eA"}]}"#, &[])
            .unwrap_err();
        assert!(err.to_string().contains("no allowed algorithm"), "{err}");
    }
}
