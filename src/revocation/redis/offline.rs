//! `certbound revocations list|stats|compact|import` against the Redis
//! backend: the same set the replicas read, through one blocking
//! connection. Safe while replicas run (every write goes through the same
//! script they use).

use redis::Connection;

use super::connect::Connector;
use super::{Keys, RECORD, member, parse_member, scan_set, trim_script};
use crate::config::RedisConfig;
use crate::revocation::log::{Compacted, retained_from};
use crate::revocation::record::Record;
use crate::revocation::table::stored;

/// Records sent per pipeline by [`import`].
const CHUNK: usize = 1000;

fn connect(config: &RedisConfig) -> Result<(Connection, Keys, String), String> {
    let connector = Connector::new(config)?;
    let c = connector
        .blocking(connector.timeout * 5)
        .map_err(|e| format!("{}: {e}", connector.shown))?;
    Ok((c, Keys::new(&config.prefix), connector.shown))
}

/// Calls `each` for every entry of the set, expired or not; returns how
/// many members were not certbound records.
pub fn read(config: &RedisConfig, mut each: impl FnMut(Record)) -> Result<u64, String> {
    let (mut c, keys, shown) = connect(config)?;
    let mut foreign = 0;
    scan_set(
        &mut c,
        &keys,
        super::follow::LOAD_PAGE,
        "-inf",
        |member, score| match parse_member(member, score) {
            Some(record) => each(record),
            None => foreign += 1,
        },
    )
    .map_err(|e| format!("{shown}: {e}"))?;
    Ok(foreign)
}

/// What [`import`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Imported {
    /// New in Redis (or with a later expiry than there).
    pub recorded: u64,
    /// Already there.
    pub present: u64,
    /// Expired, not sent.
    pub expired: u64,
}

/// Records `records` in Redis as the replicas would (each reaches them
/// through the change log).
pub fn import(
    config: &RedisConfig,
    records: impl IntoIterator<Item = Record>,
    now: u64,
) -> Result<Imported, String> {
    let (mut c, keys, shown) = connect(config)?;
    let failed = |e: redis::RedisError| format!("{shown}: {e}");
    let script = redis::Script::new(RECORD);
    script.prepare_invoke().load(&mut c).map_err(failed)?;
    let mut done = Imported::default();
    let mut pipe = redis::pipe();
    let mut pending = 0;
    let mut flush = |pipe: &mut redis::Pipeline, pending: &mut usize, done: &mut Imported| {
        if *pending == 0 {
            return Ok(());
        }
        let answers: Vec<i64> = pipe.query(&mut c).map_err(failed)?;
        for n in answers {
            if n == 1 {
                done.recorded += 1;
            } else {
                done.present += 1;
            }
        }
        pipe.clear();
        *pending = 0;
        Ok::<(), String>(())
    };
    for record in records {
        if record.expires < retained_from(now) {
            done.expired += 1;
            continue;
        }
        pipe.cmd("EVALSHA")
            .arg(script.get_hash())
            .arg(3)
            .arg(&keys.live)
            .arg(&keys.log)
            .arg(&keys.acks)
            .arg(member(&record))
            .arg(stored(record.expires))
            .arg(config.log_length)
            .arg(0);
        pending += 1;
        if pending == CHUNK {
            flush(&mut pipe, &mut pending, &mut done)?;
        }
    }
    flush(&mut pipe, &mut pending, &mut done)?;
    Ok(done)
}

/// Drops expired entries now, by Redis's clock (the replicas do this
/// themselves).
pub fn trim(config: &RedisConfig) -> Result<Compacted, String> {
    let (mut c, keys, shown) = connect(config)?;
    let (before, removed): (u64, u64) = trim_script(&keys)
        .invoke(&mut c)
        .map_err(|e| format!("{shown}: {e}"))?;
    Ok(Compacted {
        before,
        after: before.saturating_sub(removed),
        bytes: 0,
    })
}
