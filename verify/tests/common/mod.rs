//! Signing keys and tokens for the crate's tests.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use certbound_verify::verifier::unix_now;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

pub const ISSUER: &str = "https://as.test";

/// A signing key and its JWK.
pub struct Key {
    pub signing: EncodingKey,
    pub jwk: serde_json::Value,
}

pub fn key(kid: &str) -> Key {
    let pair = rcgen::KeyPair::generate().unwrap();
    let raw = pair.public_key_raw();
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    Key {
        signing: EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap(),
        jwk: serde_json::json!({"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256",
            "use": "sig", "x": b64(&raw[1..33]), "y": b64(&raw[33..65])}),
    }
}

/// An unbound token of `ISSUER` for `api`, header `kid`, a fresh `jti`.
pub fn token(key: &Key, kid: &str) -> String {
    static JTI: AtomicU64 = AtomicU64::new(0);
    let now = unix_now();
    let jti = format!("j-{kid}-{}", JTI.fetch_add(1, Ordering::Relaxed));
    let claims = serde_json::json!({"iss": ISSUER, "sub": "svc", "aud": "api", "exp": now + 600,
        "iat": now, "jti": jti, "client_id": "svc", "scope": "read"});
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.into());
    header.typ = Some("at+jwt".into());
    jsonwebtoken::encode(&header, &claims, &key.signing).unwrap()
}
