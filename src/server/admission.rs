//! Admission: a global cap on open connections and a cap per client address
//! (IPv6 addresses counted per /64, [`crate::addr::bucket`]), so no
//! unauthenticated peer can make the server hold an unbounded number of
//! sockets; and a global cap on requests in flight, which bounds the memory
//! their heads and bodies hold. A refused connection is closed at once (the
//! accept loop never waits for room); a refused request is answered 503.

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

/// The caps, from the settings current when a connection or request
/// arrives (a reload applies from the next one).
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// `server.max_connections`.
    pub max_total: usize,
    /// `server.max_connections_per_address`.
    pub max_per_address: usize,
    /// `server.max_requests_in_flight`.
    pub max_requests: usize,
    /// Addresses that count only towards the total (trusted proxies).
    pub exempt: Vec<IpNet>,
}

/// The connection counters.
#[derive(Debug)]
pub struct Admission {
    total: AtomicUsize,
    requests: AtomicUsize,
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
    /// Counters with nothing open.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            total: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            hasher: Default::default(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }

    /// Takes a place for a connection from `ip`, or says why there is none.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, limits: &Limits) -> Result<Admitted, Refused> {
        if self.total.fetch_add(1, Ordering::AcqRel) >= limits.max_total {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::Total);
        }
        let address = if crate::addr::in_any(&limits.exempt, ip) {
            None
        } else {
            let ip = crate::addr::bucket(ip);
            let mut shard = self.shard(ip);
            let count = shard.entry(ip).or_insert(0);
            if *count >= limits.max_per_address {
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

    /// Takes a place for a request, or `None` when `max_requests` are in
    /// flight.
    pub fn try_begin(self: &Arc<Self>, limits: &Limits) -> Option<Request> {
        if self.requests.fetch_add(1, Ordering::AcqRel) >= limits.max_requests {
            self.requests.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Request(self.clone()))
    }

    fn shard(&self, ip: IpAddr) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        let i = self.hasher.hash_one(ip) as usize % SHARDS;
        self.shards[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A request in flight; dropping it frees its place.
#[derive(Debug)]
pub struct Request(Arc<Admission>);

impl Drop for Request {
    fn drop(&mut self) {
        self.0.requests.fetch_sub(1, Ordering::AcqRel);
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

    fn limits(
        max_total: usize,
        max_per_address: usize,
        max_requests: usize,
        exempt: Vec<IpNet>,
    ) -> Limits {
        Limits {
            max_total,
            max_per_address,
            max_requests,
            exempt,
        }
    }

    #[test]
    fn caps_hold_and_places_come_back() {
        let a = Admission::new();
        let l = limits(5, 2, 10, vec!["10.0.0.0/8".parse().unwrap()]);
        let x: IpAddr = "192.0.2.1".parse().unwrap();
        let y: IpAddr = "192.0.2.2".parse().unwrap();
        let proxy: IpAddr = "10.1.1.1".parse().unwrap();
        let x1 = a.admit(x, &l).unwrap();
        let _x2 = a.admit("::ffff:192.0.2.1".parse().unwrap(), &l).unwrap();
        assert_eq!(a.admit(x, &l).unwrap_err(), Refused::PerAddress);
        let _y1 = a.admit(y, &l).unwrap();
        let _p1 = a.admit(proxy, &l).unwrap();
        let _p2 = a.admit(proxy, &l).unwrap();
        assert_eq!(a.open(), 5);
        assert_eq!(a.admit(proxy, &l).unwrap_err(), Refused::Total);
        drop(x1);
        assert_eq!(a.open(), 4);
        let _x3 = a.admit(x, &l).unwrap();
        assert_eq!(a.admit(y, &l).unwrap_err(), Refused::Total);
    }

    #[test]
    fn per_address_entries_are_removed_when_closed() {
        let a = Admission::new();
        let l = limits(100, 100, 2, vec![]);
        let guards: Vec<_> = (0..50u8)
            .map(|i| a.admit(IpAddr::from([192, 0, 2, i]), &l).unwrap())
            .collect();
        drop(guards);
        assert_eq!(a.open(), 0);
        let entries: usize = a.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert_eq!(entries, 0);
        // Requests in flight.
        let (r1, r2) = (a.try_begin(&l).unwrap(), a.try_begin(&l).unwrap());
        assert!(a.try_begin(&l).is_none());
        drop(r1);
        assert!(a.try_begin(&l).is_some());
        drop(r2);
    }

    #[test]
    fn an_ipv6_64_is_one_address() {
        let a = Admission::new();
        let l = limits(100, 2, 10, vec![]);
        let _one = a.admit("2001:db8::1".parse().unwrap(), &l).unwrap();
        let _two = a.admit("2001:db8::ffff:2".parse().unwrap(), &l).unwrap();
        assert_eq!(
            a.admit("2001:db8::3".parse().unwrap(), &l).unwrap_err(),
            Refused::PerAddress
        );
        assert!(a.admit("2001:db8:0:1::1".parse().unwrap(), &l).is_ok());
    }
}
