//! Users who log in at the authorization endpoint (RFC 6749 §4.1.1), with
//! argon2id password hashes (RFC 9106) in PHC string format, and their OIDC
//! standard claims (OpenID Connect Core §5.1).
//!
//! Verification takes the same time whether or not the user exists: an
//! unknown name is checked against a real stored hash and then refused.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2};

use crate::config::{UserConfig, UsersFile};

/// A user.
#[derive(Clone)]
pub struct User {
    /// Login name, also the `sub` of their tokens.
    pub username: String,
    password_hash: String,
    /// `email`, `email_verified`, `name`, `given_name`, `family_name`.
    pub claims: UserClaims,
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

/// The user registry.
#[derive(Debug, Default)]
pub struct Users {
    by_name: HashMap<String, Arc<User>>,
    /// The hash an unknown name is checked against, so it costs the same.
    decoy: Option<String>,
}

impl Users {
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
        let decoy = by_name.values().map(|u| &u.password_hash).min().cloned();
        Ok(Self { by_name, decoy })
    }

    /// A user by name.
    pub fn get(&self, username: &str) -> Option<&Arc<User>> {
        self.by_name.get(username)
    }

    /// Checks a password. Slow by design (argon2id): call it off the async
    /// runtime. Unknown users cost one verification too, and fail.
    pub fn verify(&self, username: &str, password: &str) -> Option<Arc<User>> {
        match self.by_name.get(username) {
            Some(user) => check(&user.password_hash, password).then(|| user.clone()),
            None => {
                if let Some(decoy) = &self.decoy {
                    let _ = check(decoy, password);
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
    if c.username.is_empty() || c.username.len() > 256 || c.username.chars().any(char::is_control) {
        return Err("username must be 1 to 256 characters without control characters".into());
    }
    let parsed = PasswordHash::new(&c.password_hash)
        .map_err(|_| "password_hash is not a PHC string (certbound users hash-password)")?;
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return Err("password_hash must be argon2id".into());
    }
    Ok(User {
        username: c.username.clone(),
        password_hash: c.password_hash.clone(),
        claims: UserClaims {
            email: c.email.clone(),
            email_verified: c.email_verified,
            name: c.name.clone(),
            given_name: c.given_name.clone(),
            family_name: c.family_name.clone(),
        },
    })
}

fn check(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
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
        assert!(users.verify("alice@example.com", "correct horse").is_some());
        assert!(users.verify("alice@example.com", "wrong").is_none());
        assert!(users.verify("alice", "correct horse").is_none());
        assert!(users.verify("nobody", "b").is_none());
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
