//! Failed-login throttling (RFC 6819 §5.1.4.2.3, online guessing).
//!
//! - Per (username, address): after `max_failures_per_user` failures, each
//!   further attempt waits 1 s, then 2 s, 4 s … up to `failure_window`
//!   after the last failure. Another address is not slowed down, so nobody
//!   can lock a user out by failing on purpose.
//! - Per address: `max_failures_per_address` failures within
//!   `failure_window` refuse every login from it until the window ends.
//! - In flight: one check of a username per address, at most
//!   [`MAX_IN_FLIGHT_PER_USER`] of one username and
//!   [`MAX_IN_FLIGHT_PER_ADDRESS`] from one address run at once.
//!
//! Addresses are counted per [`crate::addr::bucket`] (IPv6 by /64).
//!
//! An attempt is counted as a failure *before* its password is checked, in
//! the same critical section as the limit check ([`Limiter::begin`]), so
//! parallel attempts cannot slip past the limit; a success takes the count
//! back. Usernames are kept as 128-bit hashes, and the table is bounded.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sha2::{Digest, Sha256};

use super::shared::SharedThrottle;

/// Password checks of one username running at once (from all addresses).
pub const MAX_IN_FLIGHT_PER_USER: u32 = 4;
/// Password checks from one address running at once.
pub const MAX_IN_FLIGHT_PER_ADDRESS: u32 = 4;
/// Entries kept at most; past it, entries with nothing in flight are dropped.
const CAPACITY: usize = 50_000;

type UserHash = [u8; 16];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    UserAddress(UserHash, IpAddr),
    Address(IpAddr),
    User(UserHash),
}

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    /// Start of the address window.
    start: u64,
    failures: u32,
    last_failure: u64,
    in_flight: u32,
}

/// The throttle.
#[derive(Debug)]
pub struct Limiter {
    policy: Mutex<Policy>,
    table: Mutex<HashMap<Key, Entry>>,
}

/// The limits, changed on reload (`login.failure_window`,
/// `login.max_failures_per_user`, `login.max_failures_per_address`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Seconds over which failures count.
    pub window: u64,
    /// Failures per (user, address) before delays begin.
    pub free_per_user: u32,
    /// Failures per address per window.
    pub max_per_address: u32,
}

/// A counted attempt. Dropping it ends the attempt as a failure unless
/// [`Attempt::succeeded`] or [`Attempt::not_checked`] was called.
#[derive(Debug)]
pub struct Attempt<'a> {
    limiter: &'a Limiter,
    user: UserHash,
    address: IpAddr,
    /// Also counted in Redis, under these keys.
    shared: Option<(Arc<SharedThrottle>, [String; 2])>,
    ended: bool,
}

impl Limiter {
    /// A throttle: `free_per_user` failures per (user, address) before
    /// delays begin, `max_per_address` failures per address per `window`
    /// seconds.
    pub fn new(policy: Policy) -> Self {
        Self {
            policy: Mutex::new(policy),
            table: Mutex::new(HashMap::new()),
        }
    }

    /// Applies new limits from now on; counts so far are kept.
    pub fn set_policy(&self, policy: Policy) {
        *self.policy.lock().unwrap_or_else(PoisonError::into_inner) = policy;
    }

    /// The limits in force.
    pub fn current_policy(&self) -> Policy {
        *self.policy.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn table(&self) -> MutexGuard<'_, HashMap<Key, Entry>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts an attempt for `username` from `address` at `now` (Unix
    /// milliseconds: a delay of 1 s is one second, not "until the next
    /// second"), counting it as a failure until it succeeds; or the seconds
    /// to wait (rounded up).
    pub fn begin(
        &self,
        username: &str,
        address: Option<IpAddr>,
        now: u64,
    ) -> Result<Attempt<'_>, u64> {
        let user = hash_user(username);
        let address = address.map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), crate::addr::bucket);
        let policy = self.current_policy();
        let window = policy.window.saturating_mul(1000);
        let mut table = self.table();
        if table.len() + 3 > CAPACITY {
            evict(&mut table, now, window);
        }
        let pair = fresh(&mut table, Key::UserAddress(user, address), now, window);
        let addr = fresh(&mut table, Key::Address(address), now, window);
        let by_user = table.get(&Key::User(user)).copied().unwrap_or_default();
        let wait = [
            (pair.failures >= policy.free_per_user).then(|| {
                let delay = 1u64
                    .checked_shl(pair.failures - policy.free_per_user)
                    .and_then(|s| s.checked_mul(1000))
                    .unwrap_or(u64::MAX)
                    .min(window);
                (pair.last_failure + delay).saturating_sub(now)
            }),
            (addr.failures >= policy.max_per_address)
                .then(|| (addr.start + window).saturating_sub(now)),
            (pair.in_flight > 0 || by_user.in_flight >= MAX_IN_FLIGHT_PER_USER).then_some(1000),
            (addr.in_flight >= MAX_IN_FLIGHT_PER_ADDRESS).then_some(1000),
        ]
        .into_iter()
        .flatten()
        .max()
        .filter(|w| *w > 0);
        if let Some(wait) = wait {
            return Err(wait.div_ceil(1000));
        }
        for key in [Key::UserAddress(user, address), Key::Address(address)] {
            let e = table.entry(key).or_insert(Entry {
                start: now,
                ..Entry::default()
            });
            e.failures = e.failures.saturating_add(1);
            e.last_failure = now;
            e.in_flight += 1;
        }
        table.entry(Key::User(user)).or_default().in_flight += 1;
        Ok(Attempt {
            limiter: self,
            user,
            address,
            shared: None,
            ended: false,
        })
    }

    fn end(&self, attempt: &Attempt<'_>, outcome: Outcome) {
        let mut table = self.table();
        for key in [
            Key::UserAddress(attempt.user, attempt.address),
            Key::Address(attempt.address),
            Key::User(attempt.user),
        ] {
            let Some(e) = table.get_mut(&key) else {
                continue;
            };
            e.in_flight = e.in_flight.saturating_sub(1);
            match (outcome, key) {
                (Outcome::Failed, _) | (_, Key::User(_)) => {}
                (Outcome::Succeeded, Key::UserAddress(..)) => {
                    e.failures = 0;
                }
                (Outcome::Succeeded | Outcome::NotChecked, _) => {
                    e.failures = e.failures.saturating_sub(1);
                }
            }
            if e.in_flight == 0 && e.failures == 0 {
                table.remove(&key);
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Failed,
    Succeeded,
    NotChecked,
}

/// The entry for `key` with its window restarted if it is over: the
/// address window `window` milliseconds after it began, the (user,
/// address) delays `window` after the last failure.
fn fresh(table: &mut HashMap<Key, Entry>, key: Key, now: u64, window: u64) -> Entry {
    let Some(e) = table.get_mut(&key) else {
        return Entry::default();
    };
    let over = match key {
        Key::Address(_) => now >= e.start + window,
        _ => now >= e.last_failure + window,
    };
    if over {
        *e = Entry {
            start: now,
            in_flight: e.in_flight,
            ..Entry::default()
        };
    }
    *e
}

/// Drops expired entries; if that is not enough, entries with nothing
/// in flight, until a quarter of the table is free.
fn evict(table: &mut HashMap<Key, Entry>, now: u64, window: u64) {
    table.retain(|_, e| e.in_flight > 0 || now < e.last_failure.max(e.start) + window);
    let mut excess = table.len().saturating_sub(CAPACITY * 3 / 4);
    table.retain(|_, e| {
        if excess > 0 && e.in_flight == 0 {
            excess -= 1;
            false
        } else {
            true
        }
    });
}

impl Attempt<'_> {
    /// The password was right: the user's failures from this address are
    /// forgotten, and this attempt is not counted against the address.
    pub fn succeeded(mut self) {
        self.end(Outcome::Succeeded);
    }

    /// The password could not be checked (the server was busy): the
    /// attempt is not counted.
    pub fn not_checked(mut self) {
        self.end(Outcome::NotChecked);
    }

    /// Its keys in the shared counters.
    pub(crate) fn shared_keys(&self) -> [String; 2] {
        super::shared::keys(&self.user, &self.address)
    }

    /// Counted in the shared counters too: ending it ends it there.
    pub(crate) fn shared_with(mut self, shared: Arc<SharedThrottle>, keys: [String; 2]) -> Self {
        self.shared = Some((shared, keys));
        self
    }

    fn end(&mut self, outcome: Outcome) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        self.limiter.end(self, outcome);
        if outcome == Outcome::Failed {
            crate::metrics::login_failed();
        }
        if let Some((shared, keys)) = self.shared.take()
            && outcome != Outcome::Failed
        {
            shared.end(keys, outcome == Outcome::Succeeded);
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        self.end(Outcome::Failed);
    }
}

fn hash_user(username: &str) -> UserHash {
    let digest = Sha256::digest(username.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn progressive_delay_per_user_and_address() {
        let l = Limiter::new(Policy {
            window: 300,
            free_per_user: 3,
            max_per_address: 100,
        });
        let a = ip("10.0.0.1");
        for _ in 0..3 {
            drop(l.begin("alice", a, 1_000_000).unwrap());
        }
        // Fourth failure waits 1 s, then 2 s, 4 s.
        assert_eq!(l.begin("alice", a, 1_000_000).unwrap_err(), 1);
        drop(l.begin("alice", a, 1_001_000).unwrap());
        assert_eq!(l.begin("alice", a, 1_002_000).unwrap_err(), 1);
        drop(l.begin("alice", a, 1_003_000).unwrap());
        assert_eq!(l.begin("alice", a, 1_003_000).unwrap_err(), 4);
        // Another address is not slowed down: no lockout by failing on purpose.
        l.begin("alice", ip("10.0.0.2"), 1_003_000)
            .unwrap()
            .succeeded();
        // The delay is capped at the window; the count ends a window after
        // the last failure.
        drop(l.begin("alice", a, 1_007_000).unwrap());
        assert!(l.begin("alice", a, 1_008_000).is_err());
        assert!(l.begin("alice", a, 1_007_000 + 300_000).is_ok());
    }

    #[test]
    fn a_one_second_delay_is_one_second_whatever_the_clock_reads() {
        let l = Limiter::new(Policy {
            window: 300,
            free_per_user: 1,
            max_per_address: 100,
        });
        let a = ip("10.0.0.1");
        // The failure late in one second, the next try early in the next:
        // 200 ms later, it still waits.
        drop(l.begin("gil", a, 1_000_900).unwrap());
        assert_eq!(l.begin("gil", a, 1_001_100).unwrap_err(), 1);
        assert!(l.begin("gil", a, 1_001_900).is_ok());
    }

    #[test]
    fn success_forgets_the_pair() {
        let l = Limiter::new(Policy {
            window: 300,
            free_per_user: 2,
            max_per_address: 100,
        });
        let a = ip("10.0.0.1");
        drop(l.begin("bob", a, 1_000_000).unwrap());
        drop(l.begin("bob", a, 1_000_000).unwrap());
        assert!(l.begin("bob", a, 1_000_000).is_err());
        l.begin("bob", a, 1_001_000).unwrap().succeeded();
        drop(l.begin("bob", a, 1_001_000).unwrap());
        assert!(l.begin("bob", a, 1_001_000).is_ok());
    }

    #[test]
    fn per_address_cap_across_usernames() {
        let l = Limiter::new(Policy {
            window: 300,
            free_per_user: 100,
            max_per_address: 5,
        });
        let a = ip("10.0.0.1");
        for i in 0..5 {
            drop(l.begin(&format!("u{i}"), a, 1_000_000).unwrap());
        }
        assert_eq!(l.begin("other", a, 1_001_000).unwrap_err(), 299);
        assert!(l.begin("other", ip("10.0.0.2"), 1_001_000).is_ok());
        assert!(l.begin("other", a, 1_300_000).is_ok(), "window over");
    }

    #[test]
    fn parallel_attempts_are_counted_before_checking() {
        let l = Limiter::new(Policy {
            window: 300,
            free_per_user: 5,
            max_per_address: 100,
        });
        let a = ip("10.0.0.1");
        // Attempts held open (their password being checked) count already:
        // one per user and address, four of one user at once.
        let first = l.begin("carol", a, 1_000_000).unwrap();
        assert_eq!(l.begin("carol", a, 1_000_000).unwrap_err(), 1);
        let others: Vec<_> = (2..5)
            .map(|i| {
                l.begin("carol", ip(&format!("10.0.0.{i}")), 1_000_000)
                    .unwrap()
            })
            .collect();
        assert_eq!(l.begin("carol", ip("10.0.0.9"), 1_000_000).unwrap_err(), 1);
        drop((first, others));
        let mut held = None;
        for _ in 0..30 {
            match l.begin("dave", a, 1_000_000) {
                Ok(attempt) => held = Some(attempt),
                Err(_) => held = None,
            }
        }
        drop(held);
        // 30 tries in the same second: only the 5 free ones were admitted.
        assert!(l.begin("dave", a, 1_000_000).is_err());
        let table = l.table();
        assert_eq!(
            table[&Key::UserAddress(hash_user("dave"), a.unwrap())].failures,
            5
        );
    }

    #[test]
    fn an_unchecked_attempt_is_not_counted() {
        let l = Limiter::new(Policy {
            window: 300,
            free_per_user: 1,
            max_per_address: 100,
        });
        let a = ip("10.0.0.1");
        l.begin("erin", a, 1_000_000).unwrap().not_checked();
        assert!(l.begin("erin", a, 1_000_000).is_ok());
    }

    #[test]
    fn memory_is_bounded_and_names_are_hashed() {
        let l = Limiter::new(Policy {
            window: 300,
            free_per_user: 3,
            max_per_address: u32::MAX,
        });
        let long = "x".repeat(1024);
        for i in 0..(CAPACITY * 2) {
            drop(l.begin(&format!("{long}{i}"), ip("10.0.0.1"), 1_000_000));
        }
        assert!(l.table().len() <= CAPACITY);
    }
}
