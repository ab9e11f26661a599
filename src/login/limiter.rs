//! Failed-login throttling (RFC 6819 §5.1.4.2.3, online guessing): failures
//! are counted per username and per client address over a fixed window; once
//! either count reaches its limit, logins for it are refused, without
//! checking the password, until the window ends.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::Mutex;

const SHARDS: usize = 16;
/// Entries kept per shard before expired ones are swept; past it the oldest
/// windows are dropped, so memory stays bounded under a flood of names.
const SHARD_CAPACITY: usize = 8192;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Address(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: u64,
    failures: u32,
}

/// The throttle.
#[derive(Debug)]
pub struct Limiter {
    window: u64,
    max_per_user: u32,
    max_per_address: u32,
    hasher: std::collections::hash_map::RandomState,
    shards: Vec<Mutex<HashMap<Key, Window>>>,
}

impl Limiter {
    /// A throttle allowing `max_per_user` and `max_per_address` failures per
    /// `window` seconds.
    pub fn new(window: u64, max_per_user: u32, max_per_address: u32) -> Self {
        Self {
            window,
            max_per_user,
            max_per_address,
            hasher: Default::default(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Seconds until a login for `username` from `address` may be tried, or
    /// `None` if it may be tried now.
    pub fn blocked(&self, username: &str, address: Option<IpAddr>, now: u64) -> Option<u64> {
        let user = self.remaining(&Key::User(username.to_string()), self.max_per_user, now);
        let addr =
            address.and_then(|a| self.remaining(&Key::Address(a), self.max_per_address, now));
        user.max(addr)
    }

    /// Counts a failed login.
    pub fn fail(&self, username: &str, address: Option<IpAddr>, now: u64) {
        self.bump(Key::User(username.to_string()), now);
        if let Some(a) = address {
            self.bump(Key::Address(a), now);
        }
    }

    /// Forgets the username's failures after a successful login (the
    /// address keeps its count).
    pub fn succeeded(&self, username: &str) {
        let key = Key::User(username.to_string());
        self.shard(&key).remove(&key);
    }

    fn shard(&self, key: &Key) -> std::sync::MutexGuard<'_, HashMap<Key, Window>> {
        let i = self.hasher.hash_one(key) as usize % SHARDS;
        self.shards[i]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn remaining(&self, key: &Key, max: u32, now: u64) -> Option<u64> {
        let shard = self.shard(key);
        let w = shard.get(key)?;
        let end = w.start + self.window;
        (w.failures >= max && now < end).then_some(end - now)
    }

    fn bump(&self, key: Key, now: u64) {
        let window = self.window;
        let mut shard = self.shard(&key);
        if shard.len() >= SHARD_CAPACITY && !shard.contains_key(&key) {
            shard.retain(|_, w| now < w.start + window);
            if shard.len() >= SHARD_CAPACITY {
                let oldest = shard.values().map(|w| w.start).min().unwrap_or(now);
                shard.retain(|_, w| w.start > oldest);
            }
        }
        let w = shard.entry(key).or_insert(Window {
            start: now,
            failures: 0,
        });
        if now >= w.start + window {
            *w = Window {
                start: now,
                failures: 0,
            };
        }
        w.failures = w.failures.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_user_and_per_address() {
        let l = Limiter::new(300, 3, 5);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(l.blocked("alice", Some(a), 1000), None);
            l.fail("alice", Some(a), 1000);
        }
        assert_eq!(l.blocked("alice", Some(b), 1100), Some(200));
        assert_eq!(l.blocked("bob", Some(a), 1100), None);
        assert_eq!(l.blocked("alice", Some(b), 1300), None, "window over");
        // Address limit across usernames.
        l.fail("c", Some(a), 1000);
        l.fail("d", Some(a), 1000);
        assert_eq!(l.blocked("e", Some(a), 1001), Some(299));
        assert_eq!(l.blocked("e", Some(b), 1001), None);
        l.succeeded("alice");
        assert_eq!(l.blocked("alice", None, 1001), None);
    }

    #[test]
    fn memory_is_bounded() {
        let l = Limiter::new(300, 3, 5);
        for i in 0..(SHARDS * SHARD_CAPACITY * 2) {
            l.fail(&format!("u{i}"), None, 1000 + (i as u64 / 1000));
        }
        let total: usize = l.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(total <= SHARDS * SHARD_CAPACITY, "{total}");
    }
}
