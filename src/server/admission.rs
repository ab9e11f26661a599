//! Connection admission: a global cap on open connections and a cap per
//! client address, so no unauthenticated peer can make the server hold an
//! unbounded number of sockets. A refused connection is closed at once; the
//! accept loop never waits for room.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ipnet::IpNet;

const SHARDS: usize = 16;

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `server.max_connections` are open.
    Total,
    /// `server.max_connections_per_address` are open from this address.
    PerAddress,
}

/// The connection counters.
#[derive(Debug)]
pub struct Admission {
    max_total: usize,
    max_per_address: usize,
    exempt: Vec<IpNet>,
    total: AtomicUsize,
    hasher: std::collections::hash_map::RandomState,
    shards: Vec<Mutex<HashMap<IpAddr, usize>>>,
}

/// An admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Admitted {
    admission: Arc<Admission>,
    address: Option<IpAddr>,
}

impl Admission {
    /// Caps of `max_total` connections and `max_per_address` per address;
    /// addresses in `exempt` count only towards the total.
    pub fn new(max_total: usize, max_per_address: usize, exempt: Vec<IpNet>) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_address,
            exempt,
            total: AtomicUsize::new(0),
            hasher: Default::default(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }

    /// Takes a place for a connection from `ip`, or says why there is none.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Refused> {
        if self.total.fetch_add(1, Ordering::AcqRel) >= self.max_total {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::Total);
        }
        let ip = crate::addr::canonical(ip);
        let address = if crate::addr::in_any(&self.exempt, ip) {
            None
        } else {
            let mut shard = self.shard(ip);
            let count = shard.entry(ip).or_insert(0);
            if *count >= self.max_per_address {
                drop(shard);
                self.total.fetch_sub(1, Ordering::AcqRel);
                return Err(Refused::PerAddress);
            }
            *count += 1;
            Some(ip)
        };
        Ok(Admitted {
            admission: self.clone(),
            address,
        })
    }

    fn shard(&self, ip: IpAddr) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        let i = self.hasher.hash_one(ip) as usize % SHARDS;
        self.shards[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(ip) = self.address {
            let mut shard = self.admission.shard(ip);
            if let Some(count) = shard.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    shard.remove(&ip);
                }
            }
        }
        self.admission.total.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_and_places_come_back() {
        let a = Admission::new(5, 2, vec!["10.0.0.0/8".parse().unwrap()]);
        let x: IpAddr = "192.0.2.1".parse().unwrap();
        let y: IpAddr = "192.0.2.2".parse().unwrap();
        let proxy: IpAddr = "10.1.1.1".parse().unwrap();
        let x1 = a.admit(x).unwrap();
        let _x2 = a.admit("::ffff:192.0.2.1".parse().unwrap()).unwrap();
        assert_eq!(a.admit(x).unwrap_err(), Refused::PerAddress);
        let _y1 = a.admit(y).unwrap();
        let _p1 = a.admit(proxy).unwrap();
        let _p2 = a.admit(proxy).unwrap();
        assert_eq!(a.open(), 5);
        assert_eq!(a.admit(proxy).unwrap_err(), Refused::Total);
        drop(x1);
        assert_eq!(a.open(), 4);
        let _x3 = a.admit(x).unwrap();
        assert_eq!(a.admit(y).unwrap_err(), Refused::Total);
    }

    #[test]
    fn per_address_entries_are_removed_when_closed() {
        let a = Admission::new(100, 100, vec![]);
        let guards: Vec<_> = (0..50u8)
            .map(|i| a.admit(IpAddr::from([192, 0, 2, i])).unwrap())
            .collect();
        drop(guards);
        assert_eq!(a.open(), 0);
        let entries: usize = a.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert_eq!(entries, 0);
    }
}
