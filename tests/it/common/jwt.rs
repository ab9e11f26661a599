//! Forms, PEM and JWT helpers.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use certbound::keys::KeySet;
use serde_json::Value;

use super::Api;

/// Form-encodes pairs (repeats allowed, so tests can send duplicates).
pub fn serde_urlencoded(form: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form {
        s.append_pair(k, v);
    }
    s.finish()
}

pub fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

/// Decodes a JWT segment without verifying.
pub fn jwt_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// Verifies a JWT with the published JWKS only, as a resource server would
/// (ES256, issuer `https://certbound.test`, `audience`); returns its claims.
pub async fn verify_with_jwks(api: &Api, token: &str, audience: &str) -> Value {
    verify_jwt(api, token, audience, true).await
}

/// As [`verify_with_jwks`], for a JWT that carries no `exp` (an RFC 9701
/// introspection answer is for immediate use).
pub async fn verify_unexpiring_with_jwks(api: &Api, token: &str, audience: &str) -> Value {
    verify_jwt(api, token, audience, false).await
}

async fn verify_jwt(api: &Api, token: &str, audience: &str, expiring: bool) -> Value {
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_slice(&api.jwks_bytes().await).unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("kid is published");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&[audience]);
    validation.set_issuer(&["https://certbound.test"]);
    if !expiring {
        validation.required_spec_claims.remove("exp");
        validation.validate_exp = false;
    }
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .expect("verifies with the JWKS")
        .claims
}

/// A JWS over `header` and `claims` exactly as given, signed with the
/// server's current key: a token only the server could have made.
pub fn forge(keys: &KeySet, header: &Value, claims: &Value) -> String {
    certbound::token::sign_segments(
        keys.current(),
        header.to_string().as_bytes(),
        claims.to_string().as_bytes(),
    )
    .unwrap()
}

/// The header the server's current key signs access tokens with.
pub fn access_header(keys: &KeySet) -> Value {
    let key = keys.current();
    serde_json::json!({"alg": key.alg.name(), "kid": key.kid, "typ": "at+jwt"})
}
