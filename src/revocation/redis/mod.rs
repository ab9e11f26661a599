//! The revocation list in Redis (or Valkey), shared by replicas.
//!
//! Two keys under one hash tag, so a Cluster slot or a proxy keeps them
//! together:
//! - `{prefix}:revocations`, a sorted set: member `<kind> <id>`, score the
//!   expiry. The live entries: read in full at start ([`follow`], `ZRANGE … BYSCORE`,
//!   bounded pages) and trimmed by score.
//! - `{prefix}:revocations:log`, a stream with one entry per new record.
//!   Every replica reads it from the id it last applied, so unlike pub/sub
//!   nothing is lost over a disconnect; capped at `log_length` entries (a
//!   replica further behind reloads the set).
//!
//! One Lua script ([`RECORD`]) writes both atomically. A record already
//! present with the same or a later expiry is not written again: of any
//! number of concurrent attempts on any replicas exactly one is
//! [`Outcome::Recorded`], which is what makes a code or a refresh token
//! single-use across replicas.

mod connect;
mod follow;
pub mod offline;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use redis::aio::MultiplexedConnection;
use redis::{RedisError, RedisResult};

use self::connect::{Connector, timed_out};
use self::follow::Follower;
use super::log::{Compacted, RETAIN_AFTER_EXPIRY, retained_from};
use super::record::{Kind, Record};
use super::table::{Table, stored};
use super::writer::Counters;
use super::{Freshness, Outcome, RevocationError};
use crate::config::RedisConfig;

/// KEYS: the set, the log, the acknowledgement counter. ARGV: member,
/// expiry, log length, whether the caller will `WAIT`. 1: recorded, 0:
/// already there (same or later expiry). A caller that waits gets a write
/// either way, so that its `WAIT` also covers a record another connection
/// made.
pub(crate) const RECORD: &str = r#"
local old = redis.call('ZSCORE', KEYS[1], ARGV[1])
if old and tonumber(old) >= tonumber(ARGV[2]) then
  if ARGV[4] == '1' then redis.call('INCR', KEYS[3]) end
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'm', ARGV[1], 'e', ARGV[2])
return 1
"#;

/// KEYS: the set. ARGV: seconds kept past expiry. Drops entries expired
/// by Redis's clock (one clock for all replicas); returns (entries before,
/// removed).
const TRIM: &str = r#"
local now = tonumber(redis.call('TIME')[1])
local before = redis.call('ZCARD', KEYS[1])
local removed = redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[1])))
return {before, removed}
"#;

static TRIM_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(TRIM));

/// The trim of `keys`' set, ready to invoke.
pub(crate) fn trim_script(keys: &Keys) -> redis::ScriptInvocation<'static> {
    let mut invocation = TRIM_SCRIPT.key(&keys.live);
    invocation.arg(RETAIN_AFTER_EXPIRY);
    invocation
}

/// Calls `each` with every (member, score) of the set scored `min` or
/// more, in score order, in pages of `count` (`ZRANGE … BYSCORE LIMIT`,
/// a page starting at the last page's last score, past the entries of that
/// score already seen). An entry present throughout is seen: only
/// trimming removes entries, and it removes every entry of a score at
/// once, so removals never shift a page past an entry that stays.
pub(crate) fn scan_set(
    c: &mut redis::Connection,
    keys: &Keys,
    count: usize,
    min: &str,
    mut each: impl FnMut(&str, &str),
) -> RedisResult<()> {
    let mut from = min.to_string();
    let mut skip = 0usize;
    loop {
        let page: Vec<String> = redis::cmd("ZRANGE")
            .arg(&keys.live)
            .arg(&from)
            .arg("+inf")
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(skip)
            .arg(count)
            .arg("WITHSCORES")
            .query(c)?;
        let entries = page.len() / 2;
        for pair in page.chunks_exact(2) {
            each(&pair[0], &pair[1]);
        }
        if entries < count {
            return Ok(());
        }
        let last = &page[page.len() - 1];
        let tied = page
            .chunks_exact(2)
            .rev()
            .take_while(|p| p[1] == *last)
            .count();
        if *last == from {
            skip += tied;
        } else {
            from.clone_from(last);
            skip = tied;
        }
    }
}

/// certbound's key names.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub(crate) live: String,
    pub(crate) log: String,
    pub(crate) acks: String,
    /// `{prefix}`: what other shared state (the login throttle) starts with.
    pub(crate) tag: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            live: format!("{{{prefix}}}:revocations"),
            log: format!("{{{prefix}}}:revocations:log"),
            acks: format!("{{{prefix}}}:revocations:acks"),
            tag: format!("{{{prefix}}}"),
        }
    }
}

/// A record's member in the set: `<kind> <id>`.
pub(crate) fn member(record: &Record) -> String {
    format!("{} {}", record.kind.name(), record.id)
}

/// The record of a member and its expiry; `None` if it is not ours.
pub(crate) fn parse_member(member: &str, expires: &str) -> Option<Record> {
    let (kind, id) = member.split_once(' ')?;
    let expires = expires.parse::<f64>().ok().filter(|e| *e >= 0.0)? as u64;
    Record::new(Kind::parse(kind)?, id, expires)
}

/// The shared list, seen from one replica.
pub(crate) struct RedisStore {
    shared: Arc<Shared>,
}

/// One replica's connection to Redis, for the list and for other shared
/// state (the login throttle).
pub struct Shared {
    connector: Arc<Connector>,
    keys: Keys,
    script: redis::Script,
    log_length: u64,
    wait: Option<(u32, Duration)>,
    connection: ArcSwapOption<MultiplexedConnection>,
    reconnecting: tokio::sync::Mutex<()>,
    epoch: Instant,
    /// Milliseconds after `epoch` before which no new connection is tried
    /// (requests fail at once instead of queueing on a dead address).
    retry_at: AtomicU64,
    last_complaint: AtomicU64,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("redis", &self.connector.shown)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("redis", &self.shared.connector.shown)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
    }
}

/// How long a failed connection attempt makes requests fail at once.
const RETRY_AFTER_FAILURE: Duration = Duration::from_millis(250);

impl RedisStore {
    /// Connects, loads every live entry into `table`, and starts the
    /// change-log reader. Redis down at start is not fatal (the replica
    /// answers 503 until it is back); a refused password or a bad address is.
    pub(crate) fn open(
        config: &RedisConfig,
        table: &Arc<Table>,
        fresh: &Arc<Freshness>,
        trim_every: Duration,
    ) -> Result<Self, String> {
        let started = Instant::now();
        let connector = Arc::new(Connector::new(config)?);
        let keys = Keys::new(&config.prefix);
        let stop = Arc::new(AtomicBool::new(false));
        let max_staleness = Duration::from_secs(config.max_staleness);
        let mut follower = Follower::new(
            connector.clone(),
            keys.clone(),
            table.clone(),
            fresh.clone(),
            (max_staleness / 4).min(Duration::from_secs(1)),
            trim_every,
            stop.clone(),
        );
        let first = match follower.catch_up() {
            Ok(mut connection) => {
                tracing::info!(redis = %connector.shown, entries = table.len(),
                    ms = started.elapsed().as_millis() as u64, "revocation list loaded from Redis");
                follow::describe_durability(&mut connection, &connector.shown);
                Some(connection)
            }
            Err(e) if fatal(&e) => {
                return Err(format!("{}: {e}", connector.shown));
            }
            Err(e) => {
                tracing::error!(redis = %connector.shown, error = %e,
                    "revocation list: Redis is unreachable; requests that need the list answer 503 until it is back");
                None
            }
        };
        std::thread::Builder::new()
            .name("certbound-redis-log".into())
            .spawn(move || follower.run(first))
            .map_err(|e| format!("cannot start the change-log reader: {e}"))?;
        Ok(Self {
            shared: Arc::new(Shared {
                connector,
                keys,
                script: redis::Script::new(RECORD),
                log_length: config.log_length,
                wait: (config.wait_replicas > 0).then(|| {
                    (
                        config.wait_replicas,
                        Duration::from_secs(config.wait_timeout),
                    )
                }),
                connection: ArcSwapOption::empty(),
                reconnecting: tokio::sync::Mutex::new(()),
                epoch: Instant::now(),
                retry_at: AtomicU64::new(0),
                last_complaint: AtomicU64::new(0),
                counters: Arc::new(Counters::default()),
                stop,
            }),
        })
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Records `record` in Redis (then in `table`, so this replica sees it
    /// at once); acknowledged only once Redis (and `wait_replicas` of its
    /// replicas) accepted it.
    pub(crate) async fn record(
        &self,
        record: &Record,
        table: &Table,
    ) -> Result<Outcome, RevocationError> {
        let s = &self.shared;
        let expires = stored(record.expires);
        let started = Instant::now();
        let written = s
            .with_connection(async |c| {
                let mut invocation = s.script.key(&s.keys.live);
                invocation
                    .key(&s.keys.log)
                    .key(&s.keys.acks)
                    .arg(member(record))
                    .arg(expires)
                    .arg(s.log_length)
                    .arg(u8::from(s.wait.is_some()));
                let n: i64 = within(s.connector.timeout, invocation.invoke_async(c)).await?;
                if let Some((replicas, wait)) = s.wait {
                    let acked: i64 = within(
                        s.connector.timeout + wait,
                        redis::cmd("WAIT")
                            .arg(replicas)
                            .arg(wait.as_millis() as u64)
                            .query_async(c),
                    )
                    .await?;
                    if acked < i64::from(replicas) {
                        return Err(RedisError::from(std::io::Error::other(format!(
                            "WAIT: {acked} of {replicas} Redis replicas have the record"
                        ))));
                    }
                }
                Ok(n)
            })
            .await
            .map_err(|e| s.failed(&e))?;
        crate::metrics::commit(None, started.elapsed());
        table.note(record);
        table.insert_all(&[(record.key(), record.expires)]);
        s.counters.syncs.fetch_add(1, Ordering::Relaxed);
        if written == 1 {
            s.counters.written.fetch_add(1, Ordering::Relaxed);
            Ok(Outcome::Recorded)
        } else {
            Ok(Outcome::AlreadyRecorded)
        }
    }

    /// Drops entries expired (past the retention) from Redis and `table`.
    pub(crate) async fn trim(&self, table: &Table) -> Result<Compacted, RevocationError> {
        let s = &self.shared;
        let (before, removed): (u64, u64) = s
            .with_connection(async |c| {
                within(s.connector.timeout, trim_script(&s.keys).invoke_async(c)).await
            })
            .await
            .map_err(|e| s.failed(&e))?;
        table.purge(retained_from(crate::keys::unix_now()));
        s.counters.compactions.fetch_add(1, Ordering::Relaxed);
        Ok(Compacted {
            before,
            after: before.saturating_sub(removed),
            bytes: 0,
        })
    }
}

impl Shared {
    /// Runs `f` on the connection; any error drops the connection (the next
    /// request makes a new one, asking Sentinel again).
    async fn with_connection<T>(
        &self,
        f: impl AsyncFnOnce(&mut MultiplexedConnection) -> RedisResult<T>,
    ) -> RedisResult<T> {
        let connection = self.connection().await?;
        let mut c = (*connection).clone();
        let result = f(&mut c).await;
        if let Err(e) = &result
            && connection_lost(e)
        {
            self.connection
                .compare_and_swap(&Some(connection), None::<Arc<_>>);
        }
        result
    }

    /// Runs `script` on `keys` (named under this list's hash tag:
    /// `{prefix}:<key>`) with `args`, within the timeout.
    pub async fn eval(
        &self,
        script: &redis::Script,
        keys: &[&str],
        args: &[u64],
    ) -> RedisResult<i64> {
        self.with_connection(async |c| {
            let mut invocation = script.prepare_invoke();
            for key in keys {
                invocation.key(format!("{}:{key}", self.keys.tag));
            }
            for arg in args {
                invocation.arg(*arg);
            }
            within(self.connector.timeout, invocation.invoke_async(c)).await
        })
        .await
    }

    /// Whether a write would be tried now: connected, or past the pause
    /// after a failed connection attempt.
    pub(crate) fn writable(&self) -> bool {
        self.connection.load().is_some() || self.now() >= self.retry_at.load(Ordering::Acquire)
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The multiplexed connection, made if there is none (one attempt at a
    /// time; none for a moment after a failed one).
    async fn connection(&self) -> RedisResult<Arc<MultiplexedConnection>> {
        if let Some(c) = self.connection.load_full() {
            return Ok(c);
        }
        let _one = self.reconnecting.lock().await;
        if let Some(c) = self.connection.load_full() {
            return Ok(c);
        }
        if self.now() < self.retry_at.load(Ordering::Acquire) {
            return Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "Redis was unreachable a moment ago",
            )));
        }
        // Boxed: connecting is a large future, and every request future
        // that may write to Redis (token, revoke, login) would otherwise
        // carry it inline and be copied with it.
        match Box::pin(within(
            self.connector.timeout * 2,
            self.connector.multiplexed(),
        ))
        .await
        {
            Ok(c) => {
                let c = Arc::new(c);
                self.connection.store(Some(c.clone()));
                Ok(c)
            }
            Err(e) => {
                self.retry_at.store(
                    self.now() + RETRY_AFTER_FAILURE.as_millis() as u64,
                    Ordering::Release,
                );
                Err(e)
            }
        }
    }

    /// Counts and logs (at most every 5 s) a failed write; the caller
    /// answers 503.
    fn failed(&self, error: &RedisError) -> RevocationError {
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        crate::metrics::write_failed();
        let now = self.now() + 1;
        let last = self.last_complaint.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= 5000)
            && self
                .last_complaint
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::error!(redis = %self.connector.shown, %error,
                failed = self.counters.failed.load(Ordering::Relaxed),
                "revocation list: Redis did not take a record; it was refused (503)");
        }
        RevocationError::Unavailable
    }
}

/// `future`'s answer, or a timeout error after `limit`.
pub(crate) async fn within<T>(
    limit: Duration,
    future: impl std::future::Future<Output = RedisResult<T>>,
) -> RedisResult<T> {
    tokio::time::timeout(limit, future)
        .await
        .map_err(|_| timed_out())?
}

/// Errors after which the connection is not used again: it is broken, or
/// its server is no longer (or not yet) the primary.
fn connection_lost(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || ["READONLY", "LOADING", "MASTERDOWN"]
            .iter()
            .any(|code| error.to_string().contains(code))
}

/// Errors that retrying will not fix: bad credentials, bad address.
fn fatal(error: &RedisError) -> bool {
    use redis::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::AuthenticationFailed | ErrorKind::InvalidClientConfig
    ) || error.to_string().contains("WRONGPASS")
        || error.to_string().contains("NOAUTH")
        || error.to_string().contains("NOPERM")
}
