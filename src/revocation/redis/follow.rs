//! A replica's view of the shared list: every live entry loaded at start
//! (`ZSCAN`, pages of [`PAGE`]), then the change log followed with
//! blocking `XREAD` from the last id applied, on a thread of its own.
//!
//! Each answer, even an empty one after the heartbeat, tells the replica
//! that it had everything Redis had when it asked: that moment is what
//! [`Freshness`] measures staleness from. After a disconnect the reader
//! resumes from its last id, or reloads the set when the log no longer
//! holds everything since (trimmed past it, or Redis lost data).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis::{Connection, RedisResult};

use super::connect::Connector;
use super::{Keys, trim_pipeline};
use crate::keys::unix_now;
use crate::revocation::Freshness;
use crate::revocation::log::retained_from;
use crate::revocation::record::{Key, Kind, valid_id};
use crate::revocation::table::Table;

/// Entries asked for per `ZSCAN` or `XREAD`.
pub(crate) const PAGE: usize = 10_000;

/// A stream entry id: milliseconds and sequence.
type Id = (u64, u64);

fn parse_id(text: &str) -> Option<Id> {
    let (ms, seq) = text.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// The key and expiry of a set member (`<kind> <id>`) with its score.
pub(crate) fn parse_entry(member: &str, expires: &str) -> Option<(Key, u64)> {
    let (kind, id) = member.split_once(' ')?;
    let kind = Kind::parse(kind)?;
    let expires = expires.parse::<f64>().ok().filter(|e| *e >= 0.0)? as u64;
    valid_id(id).then(|| (Key::new(kind, id), expires))
}

/// The change-log reader.
pub(crate) struct Follower {
    connector: Arc<Connector>,
    keys: Keys,
    table: Arc<Table>,
    fresh: Arc<Freshness>,
    heartbeat: Duration,
    trim_every: Duration,
    stop: Arc<AtomicBool>,
    /// The last log entry applied; `None` until a first load.
    position: Option<Id>,
}

/// What `XINFO STREAM` says of the log.
struct LogInfo {
    last: Id,
    /// `None`: this Redis does not say (before 7.0): assume a gap.
    max_deleted: Option<Id>,
}

impl Follower {
    pub(crate) fn new(
        connector: Arc<Connector>,
        keys: Keys,
        table: Arc<Table>,
        fresh: Arc<Freshness>,
        heartbeat: Duration,
        trim_every: Duration,
        stop: Arc<AtomicBool>,
    ) -> Self {
        Self {
            connector,
            keys,
            table,
            fresh,
            heartbeat: heartbeat.max(Duration::from_millis(100)),
            trim_every,
            stop,
            position: None,
        }
    }

    /// Connects and brings the set up to date: a full load the first time
    /// and after a gap; otherwise the log is read from the last id.
    pub(crate) fn catch_up(&mut self) -> RedisResult<Connection> {
        let mut c = self
            .connector
            .blocking(self.heartbeat + self.connector.timeout)?;
        let at = self.fresh.now();
        let info = log_info(&mut c, &self.keys.log)?;
        let reload = match self.position {
            None => true,
            Some(position) if info.last < position => {
                tracing::warn!(redis = %self.connector.shown,
                    "revocation list: Redis's change log is behind this replica (restarted without its data?); reloading, keeping every entry this replica holds");
                true
            }
            Some(position) => info.max_deleted.is_none_or(|deleted| deleted > position),
        };
        if reload {
            let started = Instant::now();
            let loaded = self.load(&mut c)?;
            self.position = Some(info.last);
            self.fresh.heard(at);
            tracing::debug!(
                loaded,
                ms = started.elapsed().as_millis() as u64,
                "revocation list: full load from Redis"
            );
        }
        Ok(c)
    }

    /// Reads every live entry of the set into the table.
    fn load(&self, c: &mut Connection) -> RedisResult<usize> {
        let cutoff = retained_from(unix_now());
        let mut cursor = 0u64;
        let mut batch = Vec::with_capacity(PAGE);
        let mut loaded = 0;
        loop {
            let (next, items): (u64, Vec<String>) = redis::cmd("ZSCAN")
                .arg(&self.keys.live)
                .arg(cursor)
                .arg("COUNT")
                .arg(PAGE)
                .query(c)?;
            batch.extend(
                items
                    .chunks_exact(2)
                    .filter_map(|pair| parse_entry(&pair[0], &pair[1]))
                    .filter(|(_, expires)| *expires >= cutoff),
            );
            self.table.insert_all(&batch);
            loaded += batch.len();
            batch.clear();
            cursor = next;
            if cursor == 0 {
                return Ok(loaded);
            }
        }
    }

    /// One blocking read of the log: applies what came, then records that
    /// the set had everything Redis had when the read was sent.
    fn read(&mut self, c: &mut Connection) -> RedisResult<()> {
        let at = self.fresh.now();
        let (ms, seq) = self.position.unwrap_or((0, 0));
        type Reply = Option<Vec<(String, Vec<(String, Vec<String>)>)>>;
        let reply: Reply = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(PAGE)
            .arg("BLOCK")
            .arg(self.heartbeat.as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.keys.log)
            .arg(format!("{ms}-{seq}"))
            .query(c)?;
        let mut batch = Vec::new();
        for (id, fields) in reply.into_iter().flatten().flat_map(|(_, entries)| entries) {
            let field = |name: &str| {
                fields
                    .chunks_exact(2)
                    .find(|kv| kv[0] == name)
                    .map(|kv| kv[1].as_str())
            };
            match (field("m"), field("e")) {
                (Some(m), Some(e)) => batch.extend(parse_entry(m, e)),
                _ => {
                    tracing::debug!(%id, "revocation list: a change-log entry that is not a record, skipped")
                }
            }
            if let Some(id) = parse_id(&id) {
                self.position = Some(id);
            }
        }
        self.table.insert_all(&batch);
        self.fresh.heard(at);
        Ok(())
    }

    fn trim(&self, c: &mut Connection) -> RedisResult<()> {
        let cutoff = retained_from(unix_now());
        let (_before, removed): (u64, u64) = trim_pipeline(&self.keys, cutoff).query(c)?;
        let purged = self.table.purge(cutoff);
        if removed > 0 || purged > 0 {
            tracing::debug!(removed, purged, "revocation list: expired entries dropped");
        }
        Ok(())
    }

    /// Follows the log until the store is dropped, reconnecting (with
    /// backoff up to 1 s) whenever Redis is lost.
    pub(crate) fn run(mut self, mut connection: Option<Connection>) {
        let mut down: Option<(Instant, Instant)> = None;
        let mut backoff = Duration::from_millis(50);
        let mut next_trim = Instant::now() + self.trim_every;
        while !self.stop.load(Ordering::Acquire) {
            let mut c = match connection.take() {
                Some(c) => c,
                None => match self.catch_up() {
                    Ok(c) => {
                        if let Some((since, _)) = down.take() {
                            tracing::info!(redis = %self.connector.shown,
                                down_ms = since.elapsed().as_millis() as u64,
                                entries = self.table.len(),
                                "revocation list: Redis is back; this replica is up to date");
                        }
                        backoff = Duration::from_millis(50);
                        c
                    }
                    Err(error) => {
                        self.complain(&mut down, &error);
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(1));
                        continue;
                    }
                },
            };
            match self.read(&mut c) {
                Ok(()) => {
                    if Instant::now() >= next_trim {
                        next_trim = Instant::now() + self.trim_every;
                        if let Err(error) = self.trim(&mut c) {
                            tracing::warn!(%error, "revocation list: cannot drop expired entries from Redis");
                        }
                    }
                    connection = Some(c);
                }
                Err(error) => self.complain(&mut down, &error),
            }
        }
    }

    /// Logs a lost connection once, then every 30 s while it lasts.
    fn complain(&self, down: &mut Option<(Instant, Instant)>, error: &redis::RedisError) {
        let now = Instant::now();
        match down {
            None => {
                *down = Some((now, now));
                tracing::error!(redis = %self.connector.shown, %error,
                    "revocation list: lost Redis; reads of the list answer 503 once this replica has not heard from it for revocation.redis.max_staleness");
            }
            Some((since, last)) if now.duration_since(*last) >= Duration::from_secs(30) => {
                *last = now;
                tracing::warn!(redis = %self.connector.shown, %error,
                    down_s = since.elapsed().as_secs(), "revocation list: Redis still unreachable");
            }
            Some(_) => {}
        }
    }
}

/// The log's last id and the highest id trimmed from it.
fn log_info(c: &mut Connection, log: &str) -> RedisResult<LogInfo> {
    let reply: RedisResult<Vec<redis::Value>> = redis::cmd("XINFO").arg("STREAM").arg(log).query(c);
    let fields = match reply {
        Ok(fields) => fields,
        Err(e) if e.to_string().contains("no such key") => {
            return Ok(LogInfo {
                last: (0, 0),
                max_deleted: Some((0, 0)),
            });
        }
        Err(e) => return Err(e),
    };
    let mut info = LogInfo {
        last: (0, 0),
        max_deleted: None,
    };
    for pair in fields.chunks_exact(2) {
        let name: String = redis::from_redis_value_ref(&pair[0]).unwrap_or_default();
        let value: Option<Id> = redis::from_redis_value_ref::<String>(&pair[1])
            .ok()
            .and_then(|v| parse_id(&v));
        match name.as_str() {
            "last-generated-id" => info.last = value.unwrap_or((0, 0)),
            "max-deleted-entry-id" => info.max_deleted = value,
            _ => {}
        }
    }
    Ok(info)
}

/// Logs what Redis says of its own durability (when it lets us ask).
pub(crate) fn describe_durability(c: &mut Connection, shown: &str) {
    let get = |c: &mut Connection, name: &str| -> Option<String> {
        let pair: Vec<String> = redis::cmd("CONFIG").arg("GET").arg(name).query(c).ok()?;
        pair.get(1).cloned()
    };
    match (get(c, "appendonly"), get(c, "appendfsync")) {
        (Some(aof), Some(fsync)) if aof == "yes" => {
            tracing::info!(redis = %shown, appendonly = %aof, appendfsync = %fsync, "revocation list: Redis durability");
        }
        (Some(_), _) => tracing::warn!(redis = %shown,
            "revocation list: Redis runs without appendonly: acknowledged records are lost if it restarts (see the README, Running several replicas)"),
        _ => tracing::debug!("revocation list: Redis does not let us read its configuration"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revocation::record::Record;
    use crate::revocation::redis::{member, parse_member};

    #[test]
    fn members_round_trip_and_foreign_ones_are_skipped() {
        let r = Record::new(Kind::Family, "f-1_x", 1_767_225_600).unwrap();
        let m = member(&r);
        assert_eq!(m, "family f-1_x");
        assert_eq!(parse_member(&m, "1767225600"), Some(r.clone()));
        assert_eq!(parse_entry(&m, "1767225600"), Some((r.key(), r.expires)));
        for (member, score) in [
            ("family", "1"),
            ("token x", "1"),
            ("jti a b", "1"),
            ("jti x", "-1"),
            ("jti x", "soon"),
        ] {
            assert_eq!(parse_entry(member, score), None, "{member} {score}");
        }
    }

    #[test]
    fn stream_ids_order_by_time_then_sequence() {
        assert_eq!(parse_id("1700000000000-3"), Some((1_700_000_000_000, 3)));
        assert!(parse_id("1-2") < parse_id("1-10"));
        assert!(parse_id("2-0") > parse_id("1-99"));
        assert_eq!(parse_id("17"), None);
        assert_eq!(parse_id("a-b"), None);
    }
}
