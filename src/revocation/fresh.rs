//! How fresh a replica's in-memory set is: the time its change-log reader
//! last heard from Redis. Reads of the set fail closed once that is longer
//! ago than `revocation.redis.max_staleness`; a file-backed set is always
//! fresh (it is the only writer).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::RevocationError;

/// Last contact with the source of truth.
#[derive(Debug)]
pub(crate) struct Freshness {
    epoch: Instant,
    /// Milliseconds after `epoch` of the last contact, plus one (0: never).
    heard: AtomicU64,
    /// Longest silence allowed, in milliseconds; `None`: always fresh.
    max: Option<u64>,
}

impl Freshness {
    pub(crate) fn new(max: Option<Duration>) -> Self {
        Self {
            epoch: Instant::now(),
            heard: AtomicU64::new(0),
            max: max.map(|m| m.as_millis() as u64),
        }
    }

    /// Now, on this set's clock.
    pub(crate) fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Everything Redis had at `at` (from [`Self::now`]) is in the set.
    pub(crate) fn heard(&self, at: u64) {
        self.heard.fetch_max(at, Ordering::AcqRel);
    }

    /// Milliseconds since the last contact (`None`: never).
    pub(crate) fn silence(&self) -> Option<u64> {
        match self.heard.load(Ordering::Acquire) {
            0 => None,
            at => Some(self.now().saturating_sub(at)),
        }
    }

    /// `Err(Stale)` when the set may be missing records.
    pub(crate) fn check(&self) -> Result<(), RevocationError> {
        let Some(max) = self.max else { return Ok(()) };
        match self.silence() {
            Some(silence) if silence <= max => Ok(()),
            _ => Err(RevocationError::Stale),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_until_heard_and_after_silence() {
        let f = Freshness::new(Some(Duration::from_millis(50)));
        assert_eq!(f.check(), Err(RevocationError::Stale));
        f.heard(f.now());
        assert_eq!(f.check(), Ok(()));
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(f.check(), Err(RevocationError::Stale));
        // An older contact never moves the clock back.
        let now = f.now();
        f.heard(now);
        f.heard(1);
        assert_eq!(f.check(), Ok(()));
        assert!(Freshness::new(None).check().is_ok());
    }
}
