//! A replica's view of the shared list: every live entry loaded at start
//! (`ZRANGE … BYSCORE`, pages of [`LOAD_PAGE`]), then the change log followed with
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
use super::{Keys, scan_set, trim_script};
use crate::keys::unix_now;
use crate::revocation::Freshness;
use crate::revocation::log::retained_from;
use crate::revocation::record::{Key, Kind, Record, valid_id};
use crate::revocation::table::Table;

/// Entries asked for per `XREAD`.
pub(crate) const PAGE: usize = 10_000;

/// Entries asked for per page of the set, and inserted into the table at
/// once.
pub(crate) const LOAD_PAGE: usize = 50_000;

/// A stream entry id: milliseconds and sequence.
type Id = (u64, u64);

fn parse_id(text: &str) -> Option<Id> {
    let (ms, seq) = text.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// The key and expiry of a set member (`<kind> <id>`) with its score.
pub(crate) fn parse_entry(member: &str, expires: &str, table: &Table) -> Option<(Key, u64)> {
    let (kind, id) = member.split_once(' ')?;
    let kind = Kind::parse(kind)?;
    let expires = expires.parse::<f64>().ok().filter(|e| *e >= 0.0)? as u64;
    if !valid_id(id) {
        return None;
    }
    if matches!(kind, Kind::Client | Kind::User)
        && let Some(record) = Record::new(kind, id, expires)
    {
        table.note(&record);
    }
    Some((Key::new(kind, id), expires))
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
    /// The last log entry applied, and how many entries the log had ever
    /// had up to it; `None` until a first load.
    position: Option<(Id, u64)>,
}

/// What `XINFO STREAM` says of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LogInfo {
    last: Id,
    /// Entries in it now.
    length: u64,
    /// Entries ever added (Redis 7.0 and later); `None`: not said.
    added: Option<u64>,
}

/// KEYS: the log. What `XINFO STREAM` says of it, as name/value pairs
/// (none if it does not exist yet); a script, so that a missing stream is
/// not an error in the reader's pipeline.
const LOG_INFO: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local out = {}
for i = 1, #info, 2 do
  local k = info[i]
  if k == 'last-generated-id' or k == 'length' or k == 'entries-added' then
    table.insert(out, k)
    table.insert(out, info[i + 1])
  end
end
return out
"#;

/// Why the log, as `info` describes it, no longer holds every entry after
/// `position` (an entry id and how many entries the log had ever had up
/// to it), so the set must be loaded again; `None` if it does. Trimming
/// removes the oldest entries, so entries after the position are gone
/// exactly when more entries were removed than there were up to it.
pub(crate) fn gap(info: &LogInfo, position: Option<(Id, u64)>) -> Option<&'static str> {
    let Some((id, ordinal)) = position else {
        return Some("first load");
    };
    let Some(added) = info.added else {
        return Some("this Redis does not count its change log's entries (7.0 or later is needed)");
    };
    if info.last < id || added < ordinal {
        return Some(
            "Redis's change log is behind this replica (restarted without its data, or replaced?)",
        );
    }
    if added.saturating_sub(info.length) > ordinal {
        return Some("the change log was trimmed past this replica's position");
    }
    None
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

    /// Connects to the primary and brings the set up to date: a full
    /// load the first time and after a gap; otherwise the log is read
    /// from the last id.
    pub(crate) fn catch_up(&mut self) -> RedisResult<Connection> {
        let mut c = self
            .connector
            .blocking(self.heartbeat + self.connector.timeout)?;
        let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut c)?;
        primary(&role)?;
        let info = log_info(
            redis::cmd("EVAL")
                .arg(LOG_INFO)
                .arg(1)
                .arg(&self.keys.log)
                .query(&mut c)?,
        );
        if info.added.is_none() {
            return Err(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "this Redis does not count its stream entries: Redis 7.0 or later (or Valkey) is needed",
            )));
        }
        if let Some(why) = gap(&info, self.position) {
            self.reload(&mut c, why)?;
        }
        Ok(c)
    }

    /// Loads the whole set, then follows the log from where it stood.
    fn reload(&mut self, c: &mut Connection, why: &str) -> RedisResult<()> {
        let again = self.position.is_some();
        if again {
            tracing::warn!(redis = %self.connector.shown, why, "revocation list: reloading the whole set from Redis (every entry this replica holds is kept)");
        }
        let started = Instant::now();
        let at = self.fresh.now();
        let info = log_info(
            redis::cmd("EVAL")
                .arg(LOG_INFO)
                .arg(1)
                .arg(&self.keys.log)
                .query(c)?,
        );
        let loaded = self.load(c)?;
        self.position = Some((info.last, info.added.unwrap_or(0)));
        self.fresh.heard(at);
        crate::metrics::view_reloaded();
        let ms = started.elapsed().as_millis() as u64;
        if again {
            tracing::info!(loaded, ms, "revocation list: reloaded from Redis");
        }
        Ok(())
    }

    /// Reads every live entry of the set into the table.
    fn load(&self, c: &mut Connection) -> RedisResult<usize> {
        let cutoff = retained_from(unix_now());
        let mut batch = Vec::with_capacity(LOAD_PAGE);
        let mut loaded = 0;
        scan_set(
            c,
            &self.keys,
            LOAD_PAGE,
            &cutoff.to_string(),
            |member, score| {
                if let Some(entry) =
                    parse_entry(member, score, &self.table).filter(|(_, e)| *e >= cutoff)
                {
                    batch.push(entry);
                }
                if batch.len() >= LOAD_PAGE {
                    self.table.insert_all(&batch);
                    loaded += batch.len();
                    batch.clear();
                }
            },
        )?;
        self.table.insert_all(&batch);
        Ok(loaded + batch.len())
    }

    /// One pipeline: the log's state, then a blocking read of it from
    /// the position, then the server's role. Redis runs one client's
    /// pipelined commands back to back, so the read starts where the
    /// state was taken: no gap then means the read misses nothing. What
    /// came is applied; the set counts as having everything Redis had when
    /// the pipeline was sent unless the reply was cut short by `COUNT`.
    fn read(&mut self, c: &mut Connection) -> RedisResult<()> {
        let at = self.fresh.now();
        let ((ms, seq), mut ordinal) = self.position.unwrap_or(((0, 0), 0));
        type Entries = Option<Vec<(String, Vec<(String, Vec<String>)>)>>;
        let (info, reply, role): (redis::Value, Entries, Vec<redis::Value>) = redis::pipe()
            .cmd("EVAL")
            .arg(LOG_INFO)
            .arg(1)
            .arg(&self.keys.log)
            .cmd("XREAD")
            .arg("COUNT")
            .arg(PAGE)
            .arg("BLOCK")
            .arg(self.heartbeat.as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.keys.log)
            .arg(format!("{ms}-{seq}"))
            .cmd("ROLE")
            .query(c)?;
        primary(&role)?;
        if let Some(why) = gap(&log_info(info), self.position) {
            return self.reload(c, why);
        }
        let mut batch = Vec::new();
        let mut entries = 0;
        for (id, fields) in reply.into_iter().flatten().flat_map(|(_, entries)| entries) {
            entries += 1;
            ordinal += 1;
            let field = |name: &str| {
                fields
                    .chunks_exact(2)
                    .find(|kv| kv[0] == name)
                    .map(|kv| kv[1].as_str())
            };
            match (field("m"), field("e")) {
                (Some(m), Some(e)) => batch.extend(parse_entry(m, e, &self.table)),
                _ => {
                    tracing::debug!(%id, "revocation list: a change-log entry that is not a record, skipped")
                }
            }
            if let Some(id) = parse_id(&id) {
                self.position = Some((id, ordinal));
            }
        }
        self.table.insert_all(&batch);
        if entries < PAGE {
            self.fresh.heard(at);
        }
        Ok(())
    }

    fn trim(&self, c: &mut Connection) -> RedisResult<()> {
        let (_before, removed): (u64, u64) = trim_script(&self.keys).invoke(c)?;
        let purged = self.table.purge(retained_from(unix_now()));
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

/// The state [`LOG_INFO`] returned.
fn log_info(reply: redis::Value) -> LogInfo {
    let fields: Vec<redis::Value> = redis::from_redis_value(reply).unwrap_or_default();
    if fields.is_empty() {
        // No stream yet: nothing was ever added.
        return LogInfo {
            last: (0, 0),
            length: 0,
            added: Some(0),
        };
    }
    let mut info = LogInfo {
        last: (0, 0),
        length: 0,
        added: None,
    };
    for pair in fields.chunks_exact(2) {
        let name: String = redis::from_redis_value_ref(&pair[0]).unwrap_or_default();
        let text: String = redis::from_redis_value_ref(&pair[1]).unwrap_or_default();
        match name.as_str() {
            "last-generated-id" => info.last = parse_id(&text).unwrap_or((0, 0)),
            "length" => info.length = text.parse().unwrap_or(0),
            "entries-added" => info.added = text.parse().ok(),
            _ => {}
        }
    }
    info
}

/// An error unless `ROLE` says this server is a primary (after a
/// failover the old primary may still answer, as a replica).
fn primary(role: &[redis::Value]) -> RedisResult<()> {
    let name: String = role
        .first()
        .and_then(|v| redis::from_redis_value_ref(v).ok())
        .unwrap_or_default();
    if name == "master" {
        Ok(())
    } else {
        Err(redis::RedisError::from(std::io::Error::other(format!(
            "this Redis is a {name}, not the primary"
        ))))
    }
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
    use crate::revocation::redis::{member, parse_member};

    #[test]
    fn members_round_trip_and_foreign_ones_are_skipped() {
        let r = Record::new(Kind::Family, "f-1_x", 1_767_225_600).unwrap();
        let m = member(&r);
        assert_eq!(m, "family f-1_x");
        assert_eq!(parse_member(&m, "1767225600"), Some(r.clone()));
        let table = Table::new();
        assert_eq!(
            parse_entry(&m, "1767225600", &table),
            Some((r.key(), r.expires))
        );
        for (member, score) in [
            ("family", "1"),
            ("token x", "1"),
            ("jti a b", "1"),
            ("jti x", "-1"),
            ("jti x", "soon"),
        ] {
            assert_eq!(parse_entry(member, score, &table), None, "{member} {score}");
        }
    }

    #[test]
    fn a_reload_is_needed_exactly_when_the_log_may_miss_something() {
        // 100 entries ever added, 40 kept: the first 60 were trimmed.
        let now = LogInfo {
            last: (10, 0),
            length: 40,
            added: Some(100),
        };
        assert_eq!(gap(&now, None), Some("first load"));
        assert_eq!(gap(&now, Some(((9, 0), 90))), None);
        assert_eq!(
            gap(&now, Some(((6, 0), 60))),
            None,
            "trimmed up to it, not past"
        );
        assert!(gap(&now, Some(((5, 9), 59))).is_some(), "trimmed past it");
        assert!(gap(&now, Some(((11, 0), 101))).is_some(), "Redis lost data");
        assert!(
            gap(&now, Some(((9, 0), 120))).is_some(),
            "the log was replaced"
        );
        let old_redis = LogInfo { added: None, ..now };
        assert!(
            gap(&old_redis, Some(((9, 0), 90))).is_some(),
            "unknown: assume a gap"
        );
        let empty = log_info(redis::Value::Array(Vec::new()));
        assert_eq!(gap(&empty, Some(((0, 0), 0))), None);
        assert!(gap(&empty, Some(((3, 0), 4))).is_some());
    }

    #[test]
    fn only_a_primary_is_followed() {
        let role = |name: &str| vec![redis::Value::BulkString(name.as_bytes().to_vec())];
        assert!(primary(&role("master")).is_ok());
        assert!(primary(&role("slave")).is_err());
        assert!(primary(&[]).is_err());
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
