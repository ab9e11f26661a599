//! Recently verified user credentials, so a user who calls introspection
//! with HTTP Basic does not cost an argon2id check on every call. Bounded,
//! short-lived, and keyed by an HMAC (with a key made at start and never
//! stored) of the exact username, password and stored password: the
//! password itself is never kept, and a changed password misses. Emptied
//! on every reload.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use aws_lc_rs::hmac;

use crate::users::User;

/// Credentials remembered at most.
pub const CAPACITY: usize = 1024;

/// A remembered verification: the user (of the settings it was verified
/// under) and when it expires.
type Entry = (Arc<User>, u64);

/// The cache.
pub struct Verified {
    key: hmac::Key,
    entries: Mutex<HashMap<[u8; 32], Entry>>,
    /// Checks running now, one per credentials: others with the same
    /// credentials wait for it instead of checking again. An entry lives
    /// only while a check runs.
    running: Mutex<HashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>>,
}

/// The turn to check one set of credentials; others wait until it ends.
pub struct Turn<'a> {
    cache: &'a Verified,
    id: [u8; 32],
    lock: Arc<tokio::sync::Mutex<()>>,
    _held: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut running = self
            .cache
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // The map, this turn and its guard hold the lock; anyone more waits.
        if Arc::strong_count(&self.lock) <= 3 {
            running.remove(&self.id);
        }
    }
}

impl std::fmt::Debug for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verified(..)")
    }
}

impl Verified {
    /// An empty cache with a fresh random key.
    pub fn new() -> Result<Self, String> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng)
            .map_err(|_| "random source failed".to_string())?;
        Ok(Self {
            key,
            entries: Mutex::new(HashMap::new()),
            running: Mutex::new(HashMap::new()),
        })
    }

    fn id(&self, user: &User, username: &str, password: &str) -> [u8; 32] {
        self.hmac(&[
            username.as_bytes(),
            password.as_bytes(),
            &user.password_id(),
        ])
    }

    fn hmac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.key);
        for part in parts {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        let mut id = [0u8; 32];
        id.copy_from_slice(ctx.sign().as_ref());
        id
    }

    /// `user` if these exact credentials were verified for it and the entry
    /// has not expired at `now`.
    pub fn get(&self, user: &Arc<User>, username: &str, password: &str, now: u64) -> bool {
        let id = self.id(user, username, password);
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(&id)
            .is_some_and(|(cached, expires)| *expires > now && Arc::ptr_eq(cached, user))
    }

    /// Waits for the turn to check these credentials (a resource server's
    /// parallel calls with one password make one check, not one each).
    /// Taken for any name, a user's or not, so that waiting tells nothing
    /// of who exists.
    pub async fn turn(&self, username: &str, password: &str) -> Turn<'_> {
        let id = self.hmac(&[b"turn", username.as_bytes(), password.as_bytes()]);
        let lock = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(id)
            .or_default()
            .clone();
        let held = lock.clone().lock_owned().await;
        Turn {
            cache: self,
            id,
            lock,
            _held: held,
        }
    }

    /// Remembers verified credentials until `expires`.
    pub fn put(&self, user: &Arc<User>, username: &str, password: &str, expires: u64, now: u64) {
        let id = self.id(user, username, password);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= CAPACITY {
            entries.retain(|_, (_, e)| *e > now);
            if entries.len() >= CAPACITY
                && let Some(victim) = entries.keys().next().copied()
            {
                entries.remove(&victim);
            }
        }
        entries.insert(id, (user.clone(), expires));
    }

    /// Forgets everything (a reload: users or passwords may have changed).
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UserConfig;
    use crate::users::Users;

    fn user(password: &str) -> Arc<User> {
        let users = Users::new(
            &[UserConfig {
                username: "alice".into(),
                password_hash: crate::users::hash_password(password).unwrap(),
                ..Default::default()
            }],
            None,
        )
        .unwrap();
        users.get("alice").unwrap().clone()
    }

    #[test]
    fn only_the_exact_credentials_of_the_same_stored_password_hit() {
        let cache = Verified::new().unwrap();
        let alice = user("pw");
        cache.put(&alice, "alice", "pw", 100, 0);
        assert!(cache.get(&alice, "alice", "pw", 50));
        assert!(!cache.get(&alice, "alice", "pw", 100), "expired");
        assert!(!cache.get(&alice, "alice", "pw2", 50));
        // The password changed (a new stored hash): a miss, even with the
        // old password.
        let changed = user("new");
        assert!(!cache.get(&changed, "alice", "pw", 50));
        cache.clear();
        assert!(!cache.get(&alice, "alice", "pw", 50));
        for i in 0..(CAPACITY + 10) {
            cache.put(&alice, "alice", &i.to_string(), 100, 0);
        }
        assert!(cache.entries.lock().unwrap().len() <= CAPACITY);
    }
}
