//! The revocation list: the only state certbound keeps (RFC 7009 revoked
//! tokens; used authorization codes and revoked refresh-token families,
//! RFC 6749 §4.1.2 and RFC 9700 §4.14.2).
//!
//! An append-only text file ([`record`] has the line format), loaded into an
//! in-memory set at start ([`table`]), written by one thread that batches
//! concurrent requests into one `fdatasync` ([`writer`]) and compacts the
//! file when most of it has expired ([`log`]). A request is answered only
//! after its record is on disk.
//!
//! With `backend = "redis"` ([`redis`]) replicas share one list: records
//! are written to Redis atomically (exactly one of concurrent attempts
//! wins) and reach every replica's set through a change log; reads stay in
//! memory while the replica's view is fresh ([`fresh`]).

mod fresh;
mod log;
pub mod record;
pub mod redis;
mod table;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, TrySendError};
use std::time::Duration;

use tokio::sync::oneshot;

use self::fresh::Freshness;
pub use self::log::{Compacted, HEADER, OpenError, RETAIN_AFTER_EXPIRY, Scan, retained_from};
pub use self::record::{Kind, Record};
use self::table::Table;
use self::writer::{Counters, Message, Writer};
use crate::config::{Backend, RevocationConfig};

/// Requests that may wait for the writer before new ones are refused.
const QUEUE: usize = 16 * 1024;

/// What recording did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Written and synced now.
    Recorded,
    /// Was already on disk (with the same or a later expiry).
    AlreadyRecorded,
}

/// Why a record was not written. The caller must not report success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RevocationError {
    /// The file could not be written or synced (disk full, permissions,
    /// removed); logged by the writer.
    #[error("the revocation list cannot be written")]
    Unavailable,
    /// Too many requests are already waiting for the disk.
    #[error("the revocation list is busy")]
    Busy,
    /// This replica has not heard from Redis for longer than
    /// `revocation.redis.max_staleness`: its set may be missing records.
    #[error("the revocation list may be out of date")]
    Stale,
}

/// A client's and a user's "not before" times (revoke-all), if any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotBefore {
    /// Tokens of the client issued at or before this are revoked.
    pub client: Option<u64>,
    /// Tokens of the user issued, or signed in for, at or before this are
    /// revoked.
    pub user: Option<u64>,
}

impl NotBefore {
    /// Whether a token issued at `iat`, for a sign-in at `auth_time` (a
    /// user's token: kept across refresh rotations), is revoked.
    pub fn revokes(&self, iat: u64, auth_time: Option<u64>) -> bool {
        let signed_in = auth_time.map_or(iat, |a| a.min(iat));
        self.client.is_some_and(|c| iat <= c) || self.user.is_some_and(|u| signed_in <= u)
    }
}

/// Commit counters since start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Entries in memory.
    pub entries: usize,
    /// Successful batch syncs.
    pub syncs: u64,
    /// Records written by them.
    pub written: u64,
    /// Batches that failed.
    pub failed: u64,
    /// Compactions finished.
    pub compactions: u64,
}

/// The open revocation list, shared by every request: the in-memory set
/// and where its records are kept.
#[derive(Debug)]
pub struct Revocations {
    table: Arc<Table>,
    fresh: Arc<Freshness>,
    store: Store,
}

#[derive(Debug)]
enum Store {
    File {
        tx: mpsc::SyncSender<Message>,
        counters: Arc<Counters>,
    },
    Redis(redis::RedisStore),
}

impl Revocations {
    /// Opens the list `config` names: the file, or Redis (loading every
    /// live entry first).
    pub fn open(config: &RevocationConfig) -> Result<Self, OpenError> {
        let interval = Duration::from_secs(config.compaction_check_interval);
        match config.backend {
            Backend::File => Self::open_file(&config.file, interval),
            Backend::Redis => {
                let table = Arc::new(Table::new());
                let fresh = Arc::new(Freshness::new(Some(Duration::from_secs(
                    config.redis.max_staleness,
                ))));
                let store = redis::RedisStore::open(&config.redis, &table, &fresh, interval)
                    .map_err(OpenError::Redis)?;
                Ok(Self {
                    table,
                    fresh,
                    store: Store::Redis(store),
                })
            }
        }
    }

    /// Opens (or creates) the list file at `path`, loads it and starts the
    /// writer thread. `check_interval`: how often to consider compacting.
    pub fn open_file(path: &Path, check_interval: Duration) -> Result<Self, OpenError> {
        let started = std::time::Instant::now();
        let table = Arc::new(Table::new());
        let (log, scan) = log::Log::open(path, &table, crate::keys::unix_now())?;
        tracing::info!(
            file = %path.display(),
            entries = table.len(),
            records = scan.records,
            ms = started.elapsed().as_millis() as u64,
            "revocation list loaded"
        );
        let counters = Arc::new(Counters::default());
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let writer = Writer::new(log, table.clone(), counters.clone(), check_interval);
        std::thread::Builder::new()
            .name("certbound-revocations".into())
            .spawn(move || writer.run(rx))
            .map_err(log::io_err(path, "cannot start the writer thread"))?;
        Ok(Self {
            table,
            fresh: Arc::new(Freshness::new(None)),
            store: Store::File { tx, counters },
        })
    }

    /// Whether `id` of `kind` is revoked: one read lock on one shard. A
    /// replica that has not heard from Redis for longer than
    /// `max_staleness` cannot tell ([`RevocationError::Stale`]).
    pub fn contains(&self, kind: Kind, id: &str) -> Result<bool, RevocationError> {
        self.fresh.check()?;
        Ok(self.table.get(&record::Key::new(kind, id)).is_some())
    }

    /// The "not before" times recorded for `client_id` and `user` at
    /// `issuer` ([`crate::revoke_all`]). Costs one flag read while no such
    /// record exists.
    pub fn not_before(
        &self,
        issuer: &str,
        client_id: Option<&str>,
        user: Option<&str>,
    ) -> Result<NotBefore, RevocationError> {
        self.fresh.check()?;
        if !self.table.any_cutoff() {
            return Ok(NotBefore::default());
        }
        let cutoff = |kind, name| self.table.cutoff(kind, &record::subject(issuer, name));
        Ok(NotBefore {
            client: client_id.and_then(|c| cutoff(Kind::Client, c)),
            user: user.and_then(|u| cutoff(Kind::User, u)),
        })
    }

    /// Records `record` durably; resolves once it is synced to disk (or
    /// accepted by Redis, and by `wait_replicas` of its replicas). With
    /// Redis, of any number of concurrent calls for one record on any
    /// replicas exactly one is [`Outcome::Recorded`].
    pub async fn record(&self, record: Record) -> Result<Outcome, RevocationError> {
        let kind = record.kind;
        let outcome = match &self.store {
            Store::File { tx, .. } => {
                let (reply, answer) = oneshot::channel();
                send(tx, Message::Record(record, reply))?;
                answer.await.map_err(|_| RevocationError::Unavailable)?
            }
            Store::Redis(redis) => redis.record(&record, &self.table).await,
        };
        if outcome == Ok(Outcome::Recorded) {
            crate::metrics::revocations(kind.name(), 1);
        }
        outcome
    }

    /// Whether records can be written and the set is current: `Err` with
    /// the reason otherwise (for `/readyz`; reads flags only).
    pub fn ready(&self) -> Result<(), String> {
        match &self.store {
            Store::File { counters, .. } => {
                if counters.failing.load(Ordering::Relaxed) {
                    return Err("the revocation list file cannot be written".into());
                }
            }
            Store::Redis(redis) => {
                if !redis.shared().writable() {
                    return Err("Redis cannot be reached for writes".into());
                }
            }
        }
        self.fresh.check().map_err(|_| {
            "this replica has not heard from Redis within revocation.redis.max_staleness".into()
        })
    }

    /// The list file's size (file backend) and the age of this replica's
    /// view (Redis backend), for the metrics.
    pub fn gauges(&self) -> (Option<u64>, Option<Duration>) {
        match &self.store {
            Store::File { counters, .. } => {
                (Some(counters.file_bytes.load(Ordering::Relaxed)), None)
            }
            Store::Redis(_) => (None, self.fresh.silence().map(Duration::from_millis)),
        }
    }

    /// Compacts now (beside appends); resolves when the new file is in
    /// place. With Redis: drops expired entries now.
    pub async fn compact(&self) -> Result<Compacted, RevocationError> {
        match &self.store {
            Store::File { tx, .. } => {
                let (reply, answer) = oneshot::channel();
                send(tx, Message::Compact(reply))?;
                answer.await.map_err(|_| RevocationError::Unavailable)?
            }
            Store::Redis(redis) => redis.trim(&self.table).await,
        }
    }

    /// The Redis connection, when the list is there (for other shared
    /// state: the login throttle).
    pub fn redis(&self) -> Option<Arc<redis::Shared>> {
        match &self.store {
            Store::File { .. } => None,
            Store::Redis(redis) => Some(redis.shared().clone()),
        }
    }

    /// Counters since start.
    pub fn stats(&self) -> Stats {
        let counters = match &self.store {
            Store::File { counters, .. } => counters,
            Store::Redis(redis) => redis.counters(),
        };
        Stats {
            entries: self.table.len(),
            syncs: counters.syncs.load(Ordering::Relaxed),
            written: counters.written.load(Ordering::Relaxed),
            failed: counters.failed.load(Ordering::Relaxed),
            compactions: counters.compactions.load(Ordering::Relaxed),
        }
    }
}

fn send(tx: &mpsc::SyncSender<Message>, message: Message) -> Result<(), RevocationError> {
    tx.try_send(message).map_err(|e| match e {
        TrySendError::Full(_) => RevocationError::Busy,
        TrySendError::Disconnected(_) => RevocationError::Unavailable,
    })
}

/// Reads every record of the file at `path` without locking it (for
/// `certbound revocations list|stats`).
pub fn read(path: &Path, each: impl FnMut(Record)) -> Result<Scan, OpenError> {
    let file = std::fs::File::open(path).map_err(log::io_err(path, "cannot open"))?;
    let meta = file.metadata().map_err(log::io_err(path, "cannot stat"))?;
    if !meta.is_file() {
        return Err(OpenError::NotAFile(path.to_path_buf()));
    }
    log::scan(&file, meta.len(), each).map_err(log::io_err(path, "cannot read"))
}

/// Compacts the file at `path` while no server holds it
/// (`certbound revocations compact`).
pub fn compact_offline(path: &Path, now: u64) -> Result<Compacted, OpenError> {
    let table = Table::new();
    let (mut log, _) = log::Log::open(path, &table, now)?;
    let prepared =
        log::prepare(&log.snapshot(), &table, now).map_err(log::io_err(path, "cannot compact"))?;
    log.finish(prepared)
        .map_err(log::io_err(path, "cannot compact"))
}

#[cfg(test)]
mod tests;
