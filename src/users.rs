//! Users who log in at the authorization endpoint (RFC 6749 §4.1.1), with
//! argon2id password hashes (RFC 9106) in PHC string format, and their OIDC
//! standard claims (OpenID Connect Core §5.1).
//!
//! Verification takes the same time whether or not the user exists: an
//! unknown name is checked against a real stored hash and then refused.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;

use crate::config::{UserConfig, UsersFile};

/// A user.
#[derive(Clone)]
pub struct User {
    /// Login name, also the `sub` of their tokens.
    pub username: String,
    password: Verifier,
    /// `email`, `email_verified`, `name`, `given_name`, `family_name`.
    pub claims: UserClaims,
    /// Permissions (`introspection.permissions` names the ones that allow
    /// introspection).
    pub permissions: Vec<String>,
}

impl User {
    /// Identifies the stored password (a hash of its salt and argon2
    /// output, never the password): it changes whenever the password does.
    pub fn password_id(&self) -> [u8; 32] {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(&self.password.salt);
        h.update([0]);
        h.update(&self.password.hash);
        h.finalize().into()
    }

    /// Whether the user holds any of `permissions`.
    pub fn holds_any(&self, permissions: &[String]) -> bool {
        self.permissions.iter().any(|p| permissions.contains(p))
    }
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// OIDC standard claims a user may have.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserClaims {
    /// `email` (scope `email`).
    pub email: Option<String>,
    /// `email_verified` (scope `email`).
    pub email_verified: Option<bool>,
    /// `name` (scope `profile`).
    pub name: Option<String>,
    /// `given_name` (scope `profile`).
    pub given_name: Option<String>,
    /// `family_name` (scope `profile`).
    pub family_name: Option<String>,
}

/// A parsed argon2id hash: parameters, salt and expected output.
#[derive(Clone)]
struct Verifier {
    params: Params,
    version: Version,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl Verifier {
    fn parse(phc: &str) -> Result<Self, &'static str> {
        let not_phc = "password_hash is not a PHC string (certbound users hash-password)";
        let parsed = PasswordHash::new(phc).map_err(|_| not_phc)?;
        if parsed.algorithm != Algorithm::Argon2id.ident() {
            return Err("password_hash must be argon2id");
        }
        let hash = parsed.hash.ok_or(not_phc)?.as_bytes().to_vec();
        let mut salt_buf = [0u8; 64];
        let salt = parsed
            .salt
            .ok_or(not_phc)?
            .decode_b64(&mut salt_buf)
            .map_err(|_| not_phc)?
            .to_vec();
        let base = Params::try_from(&parsed).map_err(|_| not_phc)?;
        let params = Params::new(
            base.m_cost(),
            base.t_cost(),
            base.p_cost(),
            Some(hash.len()),
        )
        .map_err(|_| not_phc)?;
        let version = match parsed.version {
            None | Some(0x13) => Version::V0x13,
            Some(0x10) => Version::V0x10,
            Some(_) => return Err(not_phc),
        };
        if params.block_count() > MAX_BLOCKS {
            return Err("password_hash uses more than 256 MiB (m)");
        }
        Ok(Self {
            params,
            version,
            salt,
            hash,
        })
    }

    /// Hashes `password` in `memory` (grown to this hash's size, then kept
    /// by the caller for the next check) and compares in constant time.
    fn check(&self, password: &str, memory: &mut Vec<Block>) -> bool {
        let blocks = self.params.block_count();
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        let mut out = vec![0u8; self.hash.len()];
        Argon2::new(Algorithm::Argon2id, self.version, self.params.clone())
            .hash_password_into_with_memory(
                password.as_bytes(),
                &self.salt,
                &mut out,
                &mut memory[..blocks],
            )
            .is_ok()
            && bool::from(out.ct_eq(&self.hash))
    }

    /// Memory one check takes, in bytes.
    fn memory_bytes(&self) -> usize {
        self.params.block_count() * Block::SIZE
    }
}

/// Longest username, in bytes.
pub const MAX_USERNAME_LEN: usize = 256;

/// argon2 memory per check is bounded (m ≤ 256 MiB) so a users file cannot
/// make each hashing worker hold more.
const MAX_BLOCKS: usize = 256 * 1024;

/// The user registry.
#[derive(Debug, Default)]
pub struct Users {
    by_name: HashMap<String, Arc<User>>,
    /// The user an unknown name is checked against, so it costs the same.
    decoy: Option<Arc<User>>,
}

impl Users {
    /// Whether there is no user at all.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Builds the registry from `[[users]]` and the users file; a bad entry
    /// is an error naming it.
    pub fn new(configs: &[UserConfig], file: Option<&Path>) -> Result<Self, String> {
        let from_file = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read users file {}: {e}", path.display()))?;
                toml_users(&text).map_err(|e| format!("users file {}: {e}", path.display()))?
            }
            None => Vec::new(),
        };
        let mut by_name = HashMap::new();
        for c in configs.iter().chain(&from_file) {
            let user = build(c).map_err(|e| format!("user {:?}: {e}", c.username))?;
            if by_name.insert(c.username.clone(), Arc::new(user)).is_some() {
                return Err(format!("user {:?} is defined twice", c.username));
            }
        }
        // The costliest hash: an unknown name never answers faster.
        let decoy = by_name
            .values()
            .max_by_key(|u| (u.password.memory_bytes(), u.password.params.t_cost()))
            .cloned();
        Ok(Self { by_name, decoy })
    }

    /// A user by name.
    pub fn get(&self, username: &str) -> Option<&Arc<User>> {
        self.by_name.get(username)
    }

    /// Every user's name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// Whether any user holds one of `permissions`.
    pub fn any_holds(&self, permissions: &[String]) -> bool {
        self.by_name.values().any(|u| u.holds_any(permissions))
    }

    /// Memory the costliest password check takes, in bytes.
    pub fn max_check_bytes(&self) -> usize {
        self.decoy.as_ref().map_or(0, |u| u.password.memory_bytes())
    }

    /// Checks a password in `memory`, which the caller keeps between checks
    /// (so memory is allocated once per hashing worker, not per check).
    /// Slow by design (argon2id): call it off the async runtime. Unknown
    /// users cost one verification too, and fail.
    pub fn verify(
        &self,
        username: &str,
        password: &str,
        memory: &mut Vec<Block>,
    ) -> Option<Arc<User>> {
        match self.by_name.get(username) {
            Some(user) => user.password.check(password, memory).then(|| user.clone()),
            None => {
                if let Some(decoy) = &self.decoy {
                    let _ = decoy.password.check(password, memory);
                }
                None
            }
        }
    }
}

fn toml_users(text: &str) -> Result<Vec<UserConfig>, String> {
    use figment::providers::{Format, Toml};
    figment::Figment::from(Toml::string(text))
        .extract::<UsersFile>()
        .map(|f| f.users)
        .map_err(|e| e.to_string())
}

fn build(c: &UserConfig) -> Result<User, String> {
    if c.username.is_empty()
        || c.username.len() > MAX_USERNAME_LEN
        || c.username.chars().any(char::is_control)
    {
        return Err("username must be 1 to 256 characters without control characters".into());
    }
    Ok(User {
        username: c.username.clone(),
        password: Verifier::parse(&c.password_hash)?,
        claims: UserClaims {
            email: c.email.clone(),
            email_verified: c.email_verified,
            name: c.name.clone(),
            given_name: c.given_name.clone(),
            family_name: c.family_name.clone(),
        },
        permissions: c.permissions.clone(),
    })
}

/// An argon2id PHC hash of `password` with the RFC 9106 / OWASP default
/// parameters (19 MiB, 2 passes, 1 lane) and a random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| "random source failed".to_string())?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, password: &str) -> UserConfig {
        UserConfig {
            username: name.into(),
            password_hash: hash_password(password).unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn verify_and_refuse() {
        let users = Users::new(
            &[user("alice@example.com", "correct horse"), user("bob", "b")],
            None,
        )
        .unwrap();
        let mut memory = Vec::new();
        let mut verify = |u: &str, p: &str| users.verify(u, p, &mut memory);
        assert!(verify("alice@example.com", "correct horse").is_some());
        assert!(verify("alice@example.com", "wrong").is_none());
        assert!(verify("alice", "correct horse").is_none());
        assert!(verify("nobody", "b").is_none());
        // The memory is kept for the next check: 19 MiB, allocated once.
        assert_eq!(memory.len() * Block::SIZE, 19 * 1024 * 1024);
        assert_eq!(users.max_check_bytes(), 19 * 1024 * 1024);
        assert!(format!("{:?}", users.get("bob").unwrap()).contains("bob"));
        assert!(!format!("{:?}", users.get("bob").unwrap()).contains("argon2"));
    }

    #[test]
    fn bad_entries_are_named() {
        let mut bad = user("carol", "x");
        bad.password_hash = "plaintext".into();
        assert!(Users::new(&[bad], None).unwrap_err().contains("carol"));
        let argon2i = UserConfig {
            username: "dave".into(),
            password_hash: "$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$2d7Vq3Ko8Gd9s4T4oyWbHg".into(),
            ..Default::default()
        };
        assert!(
            Users::new(&[argon2i], None)
                .unwrap_err()
                .contains("argon2id")
        );
        assert!(
            Users::new(&[user("e", "1"), user("e", "2")], None)
                .unwrap_err()
                .contains("twice")
        );
    }

    #[test]
    fn users_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let hash = hash_password("pw").unwrap();
        std::fs::write(
            &path,
            format!("[[users]]\nusername = \"f\"\npassword_hash = \"{hash}\"\nemail = \"f@x\"\n"),
        )
        .unwrap();
        let users = Users::new(&[], Some(&path)).unwrap();
        assert_eq!(users.get("f").unwrap().claims.email.as_deref(), Some("f@x"));
        std::fs::write(&path, "[[users]]\nusername = \"f\"\nshoe = 1\n").unwrap();
        assert!(Users::new(&[], Some(&path)).is_err());
    }
}
