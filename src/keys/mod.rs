//! Signing keys, the JWKS (RFC 7517) and key rotation.
//!
//! Each key is a PKCS#8 PEM file `keys/signing/<activates>-<ALG>.pem`
//! ([`files`]); the number is the Unix time the key starts signing, so
//! replicas that share `keys/` switch at the same instant without talking
//! to each other ([`lifecycle`]). The `kid` is the RFC 7638 JWK thumbprint.
//! Every key in the directory is published; the one whose time has come most
//! recently signs. Keys are parsed once when loaded and kept ready to sign:
//! nothing is parsed per token.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as sig, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Supported JWS algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Alg {
    /// ECDSA P-256 SHA-256 (the default: fastest to sign).
    ES256,
    /// RSASSA-PKCS1-v1_5 SHA-256.
    RS256,
    /// RSASSA-PSS SHA-256.
    PS256,
    /// Ed25519.
    EdDSA,
}

impl Alg {
    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            Alg::ES256 => "ES256",
            Alg::RS256 => "RS256",
            Alg::PS256 => "PS256",
            Alg::EdDSA => "EdDSA",
        }
    }

    /// Parses a JOSE name.
    pub fn parse(s: &str) -> Option<Self> {
        [Alg::ES256, Alg::RS256, Alg::PS256, Alg::EdDSA]
            .into_iter()
            .find(|a| a.name() == s)
    }

    fn jsonwebtoken(self) -> Algorithm {
        match self {
            Alg::ES256 => Algorithm::ES256,
            Alg::RS256 => Algorithm::RS256,
            Alg::PS256 => Algorithm::PS256,
            Alg::EdDSA => Algorithm::EdDSA,
        }
    }
}

/// A key-handling failure (startup or CLI).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A key file that cannot be used.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Key generation failed.
    #[error("key generation failed")]
    Generate,
    /// The crypto library refused to sign.
    #[error("signing failed")]
    Sign,
}

enum Signer {
    Ecdsa(sig::EcdsaKeyPair),
    Ed25519(sig::Ed25519KeyPair),
    Rsa(sig::RsaKeyPair, &'static dyn sig::RsaEncoding),
}

/// One signing key, parsed and ready.
pub struct SigningKey {
    /// RFC 7638 thumbprint.
    pub kid: String,
    /// The algorithm this key is pinned to.
    pub alg: Alg,
    /// Unix time the key starts signing (from its file name).
    pub activates: u64,
    /// The file it was read from.
    pub path: PathBuf,
    /// Public JWK (with `kid`, `alg`, `use`).
    pub jwk: serde_json::Value,
    /// Verification key, built once.
    pub decoding: DecodingKey,
    /// Algorithm as jsonwebtoken names it.
    pub jwt_alg: Algorithm,
    signer: Signer,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Signs `message` (the JWS signing input).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Ecdsa(kp) => kp
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Sign),
            Signer::Ed25519(kp) => Ok(kp.sign(message).as_ref().to_vec()),
            Signer::Rsa(kp, enc) => {
                let mut out = vec![0; kp.public_modulus_len()];
                kp.sign(*enc, &rng, message, &mut out)
                    .map_err(|_| KeyError::Sign)?;
                Ok(out)
            }
        }
    }

    /// Parses a PKCS#8 key for `alg`.
    pub fn from_pkcs8(
        der: &[u8],
        alg: Alg,
        activates: u64,
        path: PathBuf,
    ) -> Result<Self, KeyError> {
        let invalid = |reason: &str| KeyError::Invalid {
            path: path.clone(),
            reason: reason.to_string(),
        };
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let (signer, members) = match alg {
            Alg::ES256 => {
                let kp = sig::EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|_| invalid("not a P-256 PKCS#8 key"))?;
                let point = kp.public_key().as_ref().to_vec();
                if point.len() != 65 {
                    return Err(invalid("unexpected P-256 public key encoding"));
                }
                let members = vec![
                    ("crv", "P-256".to_string()),
                    ("kty", "EC".into()),
                    ("x", b64(&point[1..33])),
                    ("y", b64(&point[33..65])),
                ];
                (Signer::Ecdsa(kp), members)
            }
            Alg::EdDSA => {
                let kp = sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                    .map_err(|_| invalid("not an Ed25519 PKCS#8 key"))?;
                let members = vec![
                    ("crv", "Ed25519".to_string()),
                    ("kty", "OKP".into()),
                    ("x", b64(kp.public_key().as_ref())),
                ];
                (Signer::Ed25519(kp), members)
            }
            Alg::RS256 | Alg::PS256 => {
                let kp = sig::RsaKeyPair::from_pkcs8(der)
                    .map_err(|_| invalid("not an RSA PKCS#8 key"))?;
                if kp.public_modulus_len() < 256 {
                    return Err(invalid("RSA keys must be at least 2048 bits"));
                }
                let comps = sig::RsaPublicKeyComponents::<Vec<u8>>::from(kp.public_key());
                let members = vec![
                    ("e", b64(&comps.e)),
                    ("kty", "RSA".into()),
                    ("n", b64(&comps.n)),
                ];
                let enc: &'static dyn sig::RsaEncoding = if alg == Alg::RS256 {
                    &sig::RSA_PKCS1_SHA256
                } else {
                    &sig::RSA_PSS_SHA256
                };
                (Signer::Rsa(kp, enc), members)
            }
        };
        let kid = jwk_thumbprint(&members);
        let mut jwk = serde_json::Map::new();
        for (k, v) in &members {
            jwk.insert((*k).into(), v.clone().into());
        }
        jwk.insert("kid".into(), kid.clone().into());
        jwk.insert("alg".into(), alg.name().into());
        jwk.insert("use".into(), "sig".into());
        let get = |k: &str| {
            members
                .iter()
                .find(|(m, _)| *m == k)
                .map(|(_, v)| v.as_str())
                .unwrap_or("")
        };
        let decoding = match alg {
            Alg::ES256 => DecodingKey::from_ec_components(get("x"), get("y")),
            Alg::EdDSA => DecodingKey::from_ed_components(get("x")),
            Alg::RS256 | Alg::PS256 => DecodingKey::from_rsa_components(get("n"), get("e")),
        }
        .map_err(|e| invalid(&e.to_string()))?;
        Ok(Self {
            kid,
            alg,
            activates,
            path,
            jwk: jwk.into(),
            decoding,
            jwt_alg: alg.jsonwebtoken(),
            signer,
        })
    }
}

/// RFC 7638 §3: SHA-256 over the required members, sorted, no whitespace.
fn jwk_thumbprint(members: &[(&str, String)]) -> String {
    let sorted: std::collections::BTreeMap<&str, &str> =
        members.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let canonical = serde_json::to_string(&sorted).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// All keys: all are published and verify; the one activated most
/// recently signs.
#[derive(Debug)]
pub struct KeySet {
    keys: Vec<SigningKey>,
    by_kid: HashMap<String, usize>,
    jwks: Vec<u8>,
}

impl KeySet {
    /// Builds from keys (any order); fails when empty.
    pub fn new(mut keys: Vec<SigningKey>) -> Result<Self, String> {
        if keys.is_empty() {
            return Err("no signing key".into());
        }
        keys.sort_by(|a, b| Self::order((a.activates, &a.kid), (b.activates, &b.kid)));
        let by_kid = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.kid.clone(), i))
            .collect();
        let jwks = serde_json::to_vec(&serde_json::json!({
            "keys": keys.iter().map(|k| &k.jwk).collect::<Vec<_>>()
        }))
        .map_err(|e| e.to_string())?;
        Ok(Self { keys, by_kid, jwks })
    }

    /// Loads `dir/signing/*.pem`; when there is none and `generate` is set,
    /// creates one with `alg` first.
    pub fn load(dir: &Path, generate: Option<Alg>) -> Result<Self, KeyError> {
        let mut keys = read_dir_keys(dir)?;
        if keys.is_empty()
            && let Some(alg) = generate
        {
            let path = generate_key(dir, alg, unix_now())?;
            tracing::info!(path = %path.display(), alg = alg.name(), "generated a signing key");
            keys = read_dir_keys(dir)?;
        }
        Self::new(keys).map_err(|reason| KeyError::Invalid {
            path: dir.join("signing"),
            reason: format!("{reason} (run `certbound keys generate`)"),
        })
    }

    /// The key that signs at `now`: the one activated most recently. If
    /// none has activated yet (a clock set back), the first to activate.
    pub fn signing(&self, now: u64) -> &SigningKey {
        self.keys
            .iter()
            .find(|k| k.activates <= now)
            .unwrap_or(&self.keys[self.keys.len() - 1])
    }

    /// The key that signs now.
    pub fn current(&self) -> &SigningKey {
        self.signing(unix_now())
    }

    /// A key by `kid`.
    pub fn get(&self, kid: &str) -> Option<&SigningKey> {
        self.by_kid.get(kid).map(|&i| &self.keys[i])
    }

    /// Every key, latest activation first.
    pub fn all(&self) -> &[SigningKey] {
        &self.keys
    }

    /// Identifies the key set: each key's `kid`, algorithm and activation
    /// time.
    pub fn fingerprint(&self) -> Vec<(&str, Alg, u64)> {
        self.keys
            .iter()
            .map(|k| (k.kid.as_str(), k.alg, k.activates))
            .collect()
    }

    /// Every key's activation time, in key order (latest first).
    pub fn activations(&self) -> Vec<u64> {
        self.keys.iter().map(|k| k.activates).collect()
    }

    /// The order keys are kept in, everywhere: latest activation first,
    /// ties by `kid` (so every server and `keys rotate` agree on which of two
    /// keys activated at the same second signs).
    pub fn order(a: (u64, &str), b: (u64, &str)) -> std::cmp::Ordering {
        b.cmp(&a)
    }

    /// The JWKS document, serialised once.
    pub fn jwks_json(&self) -> &[u8] {
        &self.jwks
    }
}

/// Seconds since the Unix epoch (the clock resource servers read too).
pub use certbound_verify::verifier::unix_now;

pub mod files;
pub mod lifecycle;

pub use files::{generate_key, generate_sealing_key, read_dir_keys, sealing_files};

/// Token verification ([`certbound_verify::jws`]) finds keys here, each
/// pinned to its algorithm.
impl certbound_verify::jws::KeyLookup for KeySet {
    fn key(&self, kid: &str) -> Option<(Algorithm, &DecodingKey)> {
        self.get(kid).map(|k| (k.jwt_alg, &k.decoding))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kid_is_the_rfc7638_thumbprint() {
        // RFC 7638 §3.1 example RSA key.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let members = [
            ("n", n.to_string()),
            ("kty", "RSA".into()),
            ("e", "AQAB".into()),
        ];
        assert_eq!(
            jwk_thumbprint(&members),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
