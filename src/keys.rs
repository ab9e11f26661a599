//! Signing keys on disk, the JWKS (RFC 7517) and key rotation.
//!
//! Each key is a PKCS#8 PEM file `keys/signing/<created>-<ALG>.pem`. The
//! `kid` is the RFC 7638 JWK thumbprint. Every key is published; the newest
//! signs. Keys are parsed once at startup and kept ready to sign: nothing is
//! parsed per token.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self as sig, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
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
    /// Unix time the key was created (from its file name).
    pub created: u64,
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
    pub fn from_pkcs8(der: &[u8], alg: Alg, created: u64, path: PathBuf) -> Result<Self, KeyError> {
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
            created,
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

/// All keys: the newest signs, all verify, all are published.
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
        keys.sort_by(|a, b| (b.created, &b.kid).cmp(&(a.created, &a.kid)));
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

    /// The key that signs new tokens.
    pub fn current(&self) -> &SigningKey {
        &self.keys[0]
    }

    /// A key by `kid`.
    pub fn get(&self, kid: &str) -> Option<&SigningKey> {
        self.by_kid.get(kid).map(|&i| &self.keys[i])
    }

    /// Every key, newest first.
    pub fn all(&self) -> &[SigningKey] {
        &self.keys
    }

    /// The JWKS document, serialised once.
    pub fn jwks_json(&self) -> &[u8] {
        &self.jwks
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads every `<created>-<ALG>.pem` in `dir/signing`.
pub fn read_dir_keys(dir: &Path) -> Result<Vec<SigningKey>, KeyError> {
    let signing = dir.join("signing");
    if !signing.exists() {
        return Ok(Vec::new());
    }
    let mut keys = Vec::new();
    for entry in fs::read_dir(&signing).map_err(io(&signing))? {
        let path = entry.map_err(io(&signing))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = name.strip_suffix(".pem") else {
            continue;
        };
        let invalid = |reason: &str| KeyError::Invalid {
            path: path.clone(),
            reason: reason.into(),
        };
        let (created, alg) = stem
            .split_once('-')
            .and_then(|(t, a)| Some((t.parse::<u64>().ok()?, Alg::parse(a)?)))
            .ok_or_else(|| invalid("name must be <unix-time>-<ES256|RS256|PS256|EdDSA>.pem"))?;
        let der = match PrivateKeyDer::from_pem_file(&path) {
            Ok(PrivateKeyDer::Pkcs8(der)) => der.secret_pkcs8_der().to_vec(),
            Ok(_) => return Err(invalid("key must be PKCS#8 (BEGIN PRIVATE KEY)")),
            Err(e) => return Err(invalid(&e.to_string())),
        };
        keys.push(SigningKey::from_pkcs8(&der, alg, created, path.clone())?);
    }
    Ok(keys)
}

/// Generates a key for `alg` into `dir/signing/<created>-<ALG>.pem`
/// (mode 0600) and returns its path.
pub fn generate_key(dir: &Path, alg: Alg, created: u64) -> Result<PathBuf, KeyError> {
    let der = match alg {
        Alg::ES256 => sig::EcdsaKeyPair::generate(&sig::ECDSA_P256_SHA256_FIXED_SIGNING)
            .and_then(|kp| kp.to_pkcs8v1())
            .map(|d| d.as_ref().to_vec()),
        Alg::EdDSA => sig::Ed25519KeyPair::generate()
            .and_then(|kp| kp.to_pkcs8v1())
            .map(|d| d.as_ref().to_vec()),
        Alg::RS256 | Alg::PS256 => sig::RsaKeyPair::generate(KeySize::Rsa2048)
            .and_then(|kp| AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&kp))
            .map(|d| d.as_ref().to_vec()),
    }
    .map_err(|_| KeyError::Generate)?;
    let signing = dir.join("signing");
    fs::create_dir_all(&signing).map_err(io(&signing))?;
    // The new key must be the newest, even when another was made this second.
    let newest = fs::read_dir(&signing)
        .map_err(io(&signing))?
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .split('-')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .max();
    let created = newest.map_or(created, |n| created.max(n + 1));
    let path = signing.join(format!("{created}-{}.pem", alg.name()));
    let pem = crate::dev::pem("PRIVATE KEY", &der);
    crate::dev::write_private(&path, pem.as_bytes()).map_err(io(&path))?;
    Ok(path)
}

/// Moves every key but the newest `keep` into `dir/retired/`; returns the
/// moved paths.
pub fn retire(dir: &Path, keep: usize) -> Result<Vec<PathBuf>, KeyError> {
    let mut keys = read_dir_keys(dir)?;
    keys.sort_by_key(|k| std::cmp::Reverse(k.created));
    let retired_dir = dir.join("retired");
    let mut moved = Vec::new();
    for key in keys.iter().skip(keep.max(1)) {
        fs::create_dir_all(&retired_dir).map_err(io(&retired_dir))?;
        let Some(name) = key.path.file_name() else {
            continue;
        };
        let to = retired_dir.join(name);
        fs::rename(&key.path, &to).map_err(io(&key.path))?;
        moved.push(to);
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_generates_loads_and_publishes() {
        let dir = tempfile::tempdir().unwrap();
        for (i, alg) in [Alg::ES256, Alg::RS256, Alg::PS256, Alg::EdDSA]
            .into_iter()
            .enumerate()
        {
            generate_key(dir.path(), alg, 1000 + i as u64).unwrap();
        }
        let set = KeySet::load(dir.path(), None).unwrap();
        assert_eq!(set.all().len(), 4);
        assert_eq!(set.current().alg, Alg::EdDSA, "newest signs");
        let jwks: serde_json::Value = serde_json::from_slice(set.jwks_json()).unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 4);
        for key in set.all() {
            assert!(set.get(&key.kid).is_some());
            assert!(!key.jwk.to_string().contains("\"d\""), "no private member");
        }
        let moved = retire(dir.path(), 2).unwrap();
        assert_eq!(moved.len(), 2);
        assert_eq!(KeySet::load(dir.path(), None).unwrap().all().len(), 2);
    }

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
