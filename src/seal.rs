//! Sealed values: AES-256-GCM (authenticated encryption) with keys kept in
//! `keys/sealing.key` and `keys/sealing/<activates>.key` (rotated like
//! signing keys, [`crate::keys::lifecycle`]: new values are sealed with the
//! key activated most recently, and values sealed with an older key still
//! open until that key is retired). Authorization codes (RFC 6749 §4.1.2), login
//! sessions, consent decisions and pending authorization requests are sealed
//! so the user agent can carry them but neither read nor forge them; the
//! server keeps no table of them.
//!
//! Each value is sealed for one [`Purpose`], which is bound as associated
//! data: a session cookie can never be replayed as a code. The sealed form is
//! base64url(nonce ‖ ciphertext ‖ tag), with a fresh random 96-bit nonce.

use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::Digest;

/// Longest sealed value opened when no other limit is set.
pub const DEFAULT_MAX_SEALED_LEN: usize = 4096;

/// The length of a sealed value whose JSON is `json_len` bytes.
pub const fn sealed_len(json_len: usize) -> usize {
    (NONCE_LEN + json_len + 16).div_ceil(3) * 4
}

/// What a sealed value is for; bound as associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// An authorization code.
    Code,
    /// A login session cookie.
    Session,
    /// An "Approve always" consent cookie.
    Consent,
    /// A pending authorization request carried by the login and consent forms.
    Form,
}

impl Purpose {
    fn aad(self) -> &'static [u8] {
        match self {
            Self::Code => b"certbound code v1",
            Self::Session => b"certbound session v1",
            Self::Consent => b"certbound consent v1",
            Self::Form => b"certbound form v1",
        }
    }
}

/// The sealing keys (latest activation first), and the longest sealed
/// value they open.
#[derive(Clone)]
pub struct Sealer {
    keys: std::sync::Arc<Vec<(u64, LessSafeKey)>>,
    ids: std::sync::Arc<Vec<(u64, [u8; 32])>>,
    /// Bound into every seal beside the purpose: a tenant's domain, so a
    /// value sealed for one tenant never opens for another (empty for the
    /// default tenant).
    context: std::sync::Arc<str>,
    max_len: usize,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// A sealer from 32 key bytes.
    pub fn new(key: &[u8; 32]) -> Result<Self, String> {
        Self::with_keys(&[(0, *key)])
    }

    /// A sealer from keys and their activation times (any order, at least
    /// one).
    pub fn with_keys(keys: &[(u64, [u8; 32])]) -> Result<Self, String> {
        let mut keys = keys.to_vec();
        if keys.is_empty() {
            return Err("no sealing key".into());
        }
        keys.sort_by_key(|k| std::cmp::Reverse(k.0));
        let mut built = Vec::with_capacity(keys.len());
        let mut ids = Vec::with_capacity(keys.len());
        for (activates, key) in &keys {
            let unbound =
                UnboundKey::new(&AES_256_GCM, key).map_err(|_| "bad sealing key".to_string())?;
            built.push((*activates, LessSafeKey::new(unbound)));
            let mut h = sha2::Sha256::new();
            h.update(b"certbound sealing key id\0");
            h.update(key);
            ids.push((*activates, h.finalize().into()));
        }
        Ok(Self {
            keys: std::sync::Arc::new(built),
            ids: std::sync::Arc::new(ids),
            context: "".into(),
            max_len: DEFAULT_MAX_SEALED_LEN,
        })
    }

    /// The same keys, binding every seal to `context` (a tenant's domain).
    pub fn bound_to(&self, context: &str) -> Self {
        Self {
            context: context.into(),
            ..self.clone()
        }
    }

    fn aad(&self, purpose: Purpose) -> Vec<u8> {
        let mut aad = purpose.aad().to_vec();
        if !self.context.is_empty() {
            aad.push(0);
            aad.extend_from_slice(self.context.as_bytes());
        }
        aad
    }

    /// Every key's activation time, latest first.
    pub fn activations(&self) -> Vec<u64> {
        self.keys.iter().map(|(t, _)| *t).collect()
    }

    /// The key that seals at `now`.
    fn sealing_key(&self, now: u64) -> &LessSafeKey {
        let (_, key) = self
            .keys
            .iter()
            .find(|(t, _)| *t <= now)
            .unwrap_or(&self.keys[self.keys.len() - 1]);
        key
    }

    /// Opens values up to the sealed length of `max_json` bytes of JSON:
    /// the largest value the server itself seals, sized from its limits.
    pub fn with_max_json(mut self, max_json: usize) -> Self {
        self.set_max_json(max_json);
        self
    }

    /// As [`Self::with_max_json`], in place.
    pub fn set_max_json(&mut self, max_json: usize) {
        self.max_len = sealed_len(max_json);
    }

    /// Identifies the key set: activation times and a hash of each key
    /// (never the key itself).
    pub fn fingerprint(&self) -> &[(u64, [u8; 32])] {
        &self.ids
    }

    /// Reads every sealing key in `dir` ([`crate::keys::sealing_files`]);
    /// `None` when there is none. Every server that shares a revocation
    /// list must share them.
    pub fn load(dir: &Path) -> Result<Option<Self>, String> {
        let files = crate::keys::sealing_files(dir).map_err(|e| e.to_string())?;
        if files.is_empty() {
            return Ok(None);
        }
        let mut keys = Vec::with_capacity(files.len());
        for (activates, path) in files {
            let name = path.display();
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read sealing key {name}: {e}"))?;
            let mut key = [0u8; 32];
            hex::decode_to_slice(text.trim(), &mut key)
                .map_err(|_| format!("sealing key {name} must hold 64 hex characters"))?;
            keys.push((activates, key));
        }
        Self::with_keys(&keys).map(Some)
    }

    /// A sealer with a fresh random key, and the key file's contents.
    pub fn generate() -> Result<(Self, Vec<u8>), String> {
        let mut key = [0u8; 32];
        aws_lc_rs::rand::fill(&mut key).map_err(|_| "random source failed".to_string())?;
        Ok((Self::new(&key)?, hex::encode(key).into_bytes()))
    }

    /// Seals `value` for `purpose`.
    pub fn seal<T: Serialize>(&self, purpose: Purpose, value: &T) -> Result<String, String> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| "random source failed".to_string())?;
        let mut data = serde_json::to_vec(value).map_err(|e| e.to_string())?;
        self.sealing_key(crate::keys::unix_now())
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(self.aad(purpose).as_slice()),
                &mut data,
            )
            .map_err(|_| "sealing failed".to_string())?;
        let mut out = Vec::with_capacity(NONCE_LEN + data.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&data);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens a value sealed for `purpose`; `None` if it is too long,
    /// malformed, forged, or sealed for another purpose or with another key.
    pub fn open<T: DeserializeOwned>(&self, purpose: Purpose, sealed: &str) -> Option<T> {
        if sealed.len() > self.max_len {
            return None;
        }
        let mut raw = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if raw.len() < NONCE_LEN {
            return None;
        }
        let sealed = raw.split_off(NONCE_LEN);
        // Each key gets its own copy: a failed open may leave the buffer
        // changed. The latest key is tried first; there are only a few.
        let aad = self.aad(purpose);
        for (_, key) in self.keys.iter() {
            let nonce = Nonce::try_assume_unique_for_key(&raw).ok()?;
            let mut data = sealed.clone();
            if let Ok(plain) = key.open_in_place(nonce, Aad::from(aad.as_slice()), &mut data) {
                return serde_json::from_slice(plain).ok();
            }
        }
        None
    }
}

/// Random URL-safe identifier of 128 bits (22 characters).
pub fn random_id() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| "random source failed".to_string())?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct V {
        a: String,
        n: u64,
    }

    #[test]
    fn a_rotated_key_seals_and_older_keys_still_open() {
        let old = Sealer::new(&[1; 32]).unwrap();
        let sealed_before = old.seal(Purpose::Code, &7u8).unwrap();
        let now = crate::keys::unix_now();
        // The new key activates in the future: the old one still seals.
        let pending = Sealer::with_keys(&[(0, [1; 32]), (now + 3600, [2; 32])]).unwrap();
        let still_old = pending.seal(Purpose::Code, &8u8).unwrap();
        assert_eq!(old.open::<u8>(Purpose::Code, &still_old), Some(8));
        // Once it is active, the new key seals; both keys open.
        let rotated = Sealer::with_keys(&[(0, [1; 32]), (now, [2; 32])]).unwrap();
        let sealed_after = rotated.seal(Purpose::Code, &9u8).unwrap();
        assert_eq!(old.open::<u8>(Purpose::Code, &sealed_after), None);
        assert_eq!(rotated.open::<u8>(Purpose::Code, &sealed_after), Some(9));
        assert_eq!(rotated.open::<u8>(Purpose::Code, &sealed_before), Some(7));
        // Without the old key, its values no longer open.
        let only_new = Sealer::with_keys(&[(now, [2; 32])]).unwrap();
        assert_eq!(only_new.open::<u8>(Purpose::Code, &sealed_before), None);
    }

    #[test]
    fn a_value_sealed_for_one_tenant_never_opens_for_another() {
        let default = Sealer::new(&[3; 32]).unwrap();
        let acme = default.bound_to("acme.com");
        let other = default.bound_to("other.org");
        let sealed = acme.seal(Purpose::Session, &1u8).unwrap();
        assert_eq!(acme.open::<u8>(Purpose::Session, &sealed), Some(1));
        assert_eq!(other.open::<u8>(Purpose::Session, &sealed), None);
        assert_eq!(default.open::<u8>(Purpose::Session, &sealed), None);
        let sealed = default.seal(Purpose::Session, &2u8).unwrap();
        assert_eq!(acme.open::<u8>(Purpose::Session, &sealed), None);
    }

    #[test]
    fn round_trip_and_purpose_binding() {
        let s = Sealer::new(&[7; 32]).unwrap();
        let v = V {
            a: "alice".into(),
            n: 5,
        };
        let sealed = s.seal(Purpose::Code, &v).unwrap();
        assert_eq!(s.open::<V>(Purpose::Code, &sealed), Some(v));
        assert_eq!(s.open::<V>(Purpose::Session, &sealed), None);
        let other = Sealer::new(&[8; 32]).unwrap();
        assert_eq!(other.open::<V>(Purpose::Code, &sealed), None);
        // Any flipped character is refused.
        let bytes = sealed.as_bytes();
        for i in 0..bytes.len() {
            let mut t = bytes.to_vec();
            t[i] = if t[i] == b'A' { b'B' } else { b'A' };
            let t = String::from_utf8(t).unwrap();
            assert_eq!(s.open::<V>(Purpose::Code, &t), None, "position {i}");
        }
        assert_eq!(s.open::<V>(Purpose::Code, ""), None);
        assert_eq!(s.open::<V>(Purpose::Code, "!!"), None);
        assert_eq!(
            s.open::<V>(Purpose::Code, &"A".repeat(DEFAULT_MAX_SEALED_LEN + 1)),
            None
        );
        // The limit follows the largest value sealed.
        let big = V {
            a: "x".repeat(6000),
            n: 1,
        };
        let sealed = s.seal(Purpose::Code, &big).unwrap();
        assert_eq!(s.open::<V>(Purpose::Code, &sealed), None);
        let s = s.with_max_json(6100);
        assert!(sealed.len() <= sealed_len(6100));
        assert_eq!(s.open::<V>(Purpose::Code, &sealed), Some(big));
        // Two seals of one value differ (fresh nonce).
        assert_ne!(
            s.seal(Purpose::Code, &1u8).unwrap(),
            s.seal(Purpose::Code, &1u8).unwrap()
        );
    }

    /// Found by the `sealed` fuzz target: 534 bytes, mostly NULs, escape
    /// to 3 KB of JSON and seal to 4,128 characters, past the default cap.
    #[test]
    fn the_cap_follows_what_is_sealed() {
        let text = format!("a{}b", "\0".repeat(532));
        let s = Sealer::new(&[7; 32]).unwrap();
        let sealed = s.seal(Purpose::Form, &text).unwrap();
        assert!(sealed.len() > DEFAULT_MAX_SEALED_LEN);
        assert_eq!(s.open::<String>(Purpose::Form, &sealed), None);
        let s = s.with_max_json(6 * text.len() + 2);
        assert_eq!(s.open::<String>(Purpose::Form, &sealed), Some(text));
    }

    #[test]
    fn key_file_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("sub");
        let path = keys.join("sealing.key");
        assert!(Sealer::load(&keys).unwrap().is_none());
        let (a, contents) = Sealer::generate().unwrap();
        let sealed = a.seal(Purpose::Form, &3u8).unwrap();
        let unsaved = crate::settings::Unsaved {
            path: path.clone(),
            contents,
        };
        crate::settings::save(Some(unsaved)).unwrap();
        let b = Sealer::load(&keys).unwrap().unwrap();
        assert_eq!(b.open::<u8>(Purpose::Form, &sealed), Some(3));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "short").unwrap();
        assert!(Sealer::load(&keys).unwrap_err().contains("64 hex"));
    }
}
