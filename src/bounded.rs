//! What the bounded in-memory caches share (verified tokens, chain
//! verdicts, decoded certificate headers): a lock that survives a
//! poisoning panic, and an insert that keeps a map at its bound.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};

/// Locks `m`. A poisoned lock only means another request panicked
/// mid-insert; the map itself is still consistent, so keep using it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Inserts into `map`, first dropping an arbitrary entry (O(1)) if it
/// holds `bound` already.
pub fn insert<K: Hash + Eq + Clone, V>(map: &mut HashMap<K, V>, bound: usize, key: K, value: V) {
    if map.len() >= bound
        && let Some(victim) = map.keys().next().cloned()
    {
        map.remove(&victim);
    }
    map.insert(key, value);
}
