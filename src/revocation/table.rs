//! The in-memory revocation set: 64 shards of `RwLock<HashMap>`, keyed by a
//! record's 96-bit [`Key`]. A lookup takes one uncontended read lock; only
//! the writer thread takes write locks, once per committed batch.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::record::{Key, Kind, Record};

const SHARDS: usize = 64;

/// Keys are already uniform (SHA-256 output), so the hash is their first 8
/// bytes as they are.
#[derive(Default)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Shard = HashMap<Key, u32, BuildHasherDefault<KeyHasher>>;

/// (kind, subject) → (latest cutoff, latest expiry) of "not before" records.
type Cutoffs = HashMap<(Kind, [u8; 16]), (u64, u64)>;

/// Expiry as stored: Unix seconds, saturating at 2106.
pub(crate) fn stored(expires: u64) -> u32 {
    u32::try_from(expires).unwrap_or(u32::MAX)
}

/// Key → expiry of every revocation in force; and the cutoffs of the
/// "not before" records (client and user revocations, few), by subject.
pub(crate) struct Table {
    shards: Box<[RwLock<Shard>]>,
    cutoffs: RwLock<Cutoffs>,
    /// `cutoffs` is not empty: lookups skip its lock and the hashing
    /// while it is.
    any_cutoff: AtomicBool,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table").field("len", &self.len()).finish()
    }
}

impl Table {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            cutoffs: RwLock::default(),
            any_cutoff: AtomicBool::new(false),
        }
    }

    /// Indexes `record`'s cutoff if it is a "not before" record (call it
    /// for every record inserted).
    pub(crate) fn note(&self, record: &Record) {
        let Some((subject, cutoff)) = record.cutoff() else {
            return;
        };
        let mut cutoffs = self
            .cutoffs
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let slot = cutoffs
            .entry((record.kind, subject))
            .or_insert((cutoff, record.expires));
        *slot = (slot.0.max(cutoff), slot.1.max(record.expires));
        self.any_cutoff.store(true, Ordering::Release);
    }

    /// Whether any "not before" record is in force.
    pub(crate) fn any_cutoff(&self) -> bool {
        self.any_cutoff.load(Ordering::Acquire)
    }

    /// The latest cutoff for `subject` of `kind`.
    pub(crate) fn cutoff(&self, kind: Kind, subject: &[u8; 16]) -> Option<u64> {
        self.cutoffs
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&(kind, *subject))
            .map(|(cutoff, _)| *cutoff)
    }

    fn shard(&self, key: &Key) -> usize {
        usize::from(key.0[11]) % SHARDS
    }

    fn read(&self, i: usize) -> RwLockReadGuard<'_, Shard> {
        // A poisoned shard still holds a consistent map: writers only insert
        // or remove whole entries.
        self.shards[i]
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self, i: usize) -> RwLockWriteGuard<'_, Shard> {
        self.shards[i]
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The stored expiry of `key`.
    pub(crate) fn get(&self, key: &Key) -> Option<u32> {
        self.read(self.shard(key)).get(key).copied()
    }

    /// Inserts many entries, taking each shard's lock once.
    pub(crate) fn insert_all(&self, entries: &[(Key, u64)]) {
        for i in 0..SHARDS {
            let mut shard = None;
            for (key, expires) in entries.iter().filter(|(k, _)| self.shard(k) == i) {
                let shard = shard.get_or_insert_with(|| self.write(i));
                let expires = stored(*expires);
                let slot = shard.entry(*key).or_insert(expires);
                *slot = (*slot).max(expires);
            }
        }
    }

    /// Drops entries that expired before `cutoff`; returns how many.
    pub(crate) fn purge(&self, cutoff: u64) -> usize {
        {
            let mut cutoffs = self
                .cutoffs
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            cutoffs.retain(|_, (_, expires)| stored(*expires) >= stored(cutoff));
            self.any_cutoff
                .store(!cutoffs.is_empty(), Ordering::Release);
        }
        let cutoff = stored(cutoff);
        (0..SHARDS)
            .map(|i| {
                let mut shard = self.write(i);
                let before = shard.len();
                shard.retain(|_, e| *e >= cutoff);
                before - shard.len()
            })
            .sum()
    }

    /// Entries, expired or not.
    pub(crate) fn len(&self) -> usize {
        (0..SHARDS).map(|i| self.read(i).len()).sum()
    }

    /// Entries still in force at `cutoff` (expiry at or after it).
    pub(crate) fn live(&self, cutoff: u64) -> usize {
        let cutoff = stored(cutoff);
        (0..SHARDS)
            .map(|i| self.read(i).values().filter(|e| **e >= cutoff).count())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoffs_keep_the_latest_and_expire_with_their_records() {
        let t = Table::new();
        assert!(!t.any_cutoff());
        let subject = super::super::record::subject("https://a.test", "svc");
        for (cutoff, expires) in [(100, 3700), (90, 3690)] {
            t.note(&Record::not_before(
                Kind::Client,
                "https://a.test",
                "svc",
                cutoff,
                expires,
            ));
        }
        t.note(&Record::new(Kind::Jti, "1:00", 5).unwrap());
        assert!(t.any_cutoff());
        assert_eq!(t.cutoff(Kind::Client, &subject), Some(100));
        assert_eq!(t.cutoff(Kind::User, &subject), None, "kinds are apart");
        t.purge(3700);
        assert_eq!(t.cutoff(Kind::Client, &subject), Some(100));
        t.purge(3701);
        assert_eq!(t.cutoff(Kind::Client, &subject), None);
        assert!(!t.any_cutoff());
    }

    #[test]
    fn insert_keeps_later_expiry_and_purge_drops_old() {
        let t = Table::new();
        let a = Key::new(Kind::Jti, "a");
        let b = Key::new(Kind::Jti, "b");
        t.insert_all(&[(a, 100), (a, 50)]);
        t.insert_all(&[(b, 10), (a, 200)]);
        assert_eq!(t.get(&a), Some(200));
        assert_eq!(t.get(&b), Some(10));
        assert_eq!(t.live(11), 1);
        assert_eq!(t.purge(11), 1);
        assert_eq!(t.get(&b), None);
        assert_eq!(t.len(), 1);
        t.insert_all(&[(b, u64::MAX)]);
        assert_eq!(t.get(&b), Some(u32::MAX));
    }
}
