//! Signing keys on disk: `keys/signing/<activates>-<ALG>.pem` (PKCS#8,
//! mode 0600), generated, read, and moved to `keys/retired/`.

use std::fs;
use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature as sig;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;

use super::{Alg, KeyError, SigningKey};

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads every `<activates>-<ALG>.pem` in `dir/signing`.
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
        let (activates, alg) = stem
            .split_once('-')
            .and_then(|(t, a)| Some((t.parse::<u64>().ok()?, Alg::parse(a)?)))
            .ok_or_else(|| invalid("name must be <unix-time>-<ES256|RS256|PS256|EdDSA>.pem"))?;
        let der = match PrivateKeyDer::from_pem_file(&path) {
            Ok(PrivateKeyDer::Pkcs8(der)) => der.secret_pkcs8_der().to_vec(),
            Ok(_) => return Err(invalid("key must be PKCS#8 (BEGIN PRIVATE KEY)")),
            Err(e) => return Err(invalid(&e.to_string())),
        };
        keys.push(SigningKey::from_pkcs8(&der, alg, activates, path.clone())?);
    }
    Ok(keys)
}

/// Generates a key for `alg` that activates at `activates` (or later, so
/// that it is the latest) into `dir/signing/<activates>-<ALG>.pem` (mode
/// 0600) and returns its path.
pub fn generate_key(dir: &Path, alg: Alg, activates: u64) -> Result<PathBuf, KeyError> {
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
    // The new key must be the latest, even when another was made this
    // second: past the latest, and never over another file.
    let latest = fs::read_dir(&signing)
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
    let pem = crate::dev::pem("PRIVATE KEY", &der);
    write_latest(
        &signing,
        activates,
        latest,
        |t| format!("{t}-{}.pem", alg.name()),
        pem.as_bytes(),
    )
}

/// Writes `contents` as the key file named `name(t)` for the first free
/// `t` from `activates` (and past `latest`); its path.
fn write_latest(
    dir: &Path,
    activates: u64,
    latest: Option<u64>,
    name: impl Fn(u64) -> String,
    contents: &[u8],
) -> Result<PathBuf, KeyError> {
    let too_late = || KeyError::Invalid {
        path: dir.to_path_buf(),
        reason: "no activation time is left after the latest key's".into(),
    };
    let mut t = match latest {
        Some(n) => activates.max(n.checked_add(1).ok_or_else(too_late)?),
        None => activates,
    };
    for _ in 0..100 {
        let path = dir.join(name(t));
        match crate::dev::write_new_private(&path, contents) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                t = t.checked_add(1).ok_or_else(too_late)?;
            }
            Err(e) => return Err(io(&path)(e)),
        }
    }
    Err(too_late())
}

/// Moves `paths` into `dir/retired/` (a sealing key's name gains a
/// `sealing-` prefix there); returns where they went.
pub fn retire(dir: &Path, paths: &[PathBuf]) -> Result<Vec<PathBuf>, KeyError> {
    let retired_dir = dir.join("retired");
    let mut moved = Vec::new();
    for path in paths {
        fs::create_dir_all(&retired_dir).map_err(io(&retired_dir))?;
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let sealing = path.parent().and_then(|p| p.file_name()) == Some("sealing".as_ref());
        let to = retired_dir.join(if sealing {
            format!("sealing-{name}")
        } else {
            name.to_string()
        });
        fs::rename(path, &to).map_err(io(path))?;
        moved.push(to);
    }
    Ok(moved)
}

/// What the key files in `dir` look like (name, size, inode, change
/// time): cheap to take, and different whenever a key is added, replaced
/// (even by a file of the same size) or retired.
pub fn stamp(dir: &Path) -> Vec<(PathBuf, u64, u64, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut add = |path: PathBuf| {
        if let Ok(m) = fs::metadata(&path) {
            out.push((path, m.len(), m.ino(), m.ctime(), m.ctime_nsec()));
        }
    };
    add(dir.join(FIRST_SEALING_KEY));
    for sub in ["signing", "sealing"] {
        if let Ok(entries) = fs::read_dir(dir.join(sub)) {
            for entry in entries.flatten() {
                add(entry.path());
            }
        }
    }
    out.sort();
    out
}

/// The first sealing key, made on first start: active since ever.
pub const FIRST_SEALING_KEY: &str = "sealing.key";

/// Sealing keys: `dir/sealing/<activates>.key`, and the first one,
/// `dir/sealing.key` (activates at 0); as (activates, path), latest first.
pub fn sealing_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, KeyError> {
    let mut found = Vec::new();
    let first = dir.join(FIRST_SEALING_KEY);
    if first.exists() {
        found.push((0, first));
    }
    let sealing = dir.join("sealing");
    if sealing.exists() {
        for entry in fs::read_dir(&sealing).map_err(io(&sealing))? {
            let path = entry.map_err(io(&sealing))?.path();
            let Some(stem) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".key"))
            else {
                continue;
            };
            let activates = stem.parse::<u64>().map_err(|_| KeyError::Invalid {
                path: path.clone(),
                reason: "name must be <unix-time>.key".into(),
            })?;
            found.push((activates, path));
        }
    }
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    Ok(found)
}

/// Writes a new random sealing key (64 hex characters, mode 0600) that
/// activates at `activates` (later than any other) into `dir/sealing/`.
pub fn generate_sealing_key(dir: &Path, activates: u64) -> Result<PathBuf, KeyError> {
    let latest = sealing_files(dir)?.first().map(|(t, _)| *t);
    let sealing = dir.join("sealing");
    fs::create_dir_all(&sealing).map_err(io(&sealing))?;
    let mut key = [0u8; 32];
    aws_lc_rs::rand::fill(&mut key).map_err(|_| KeyError::Generate)?;
    write_latest(
        &sealing,
        activates,
        latest,
        |t| format!("{t}.key"),
        hex::encode(key).as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeySet;

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
        let old: Vec<PathBuf> = set.all()[2..].iter().map(|k| k.path.clone()).collect();
        let moved = retire(dir.path(), &old).unwrap();
        assert_eq!(moved.len(), 2);
        assert_eq!(KeySet::load(dir.path(), None).unwrap().all().len(), 2);
    }
}
