//! The list file under damage, compaction and reloads; the writer's group
//! commit. Real files in a temporary directory.

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;

use super::log::{self, Log, Prepared, retained_from};
use super::record::{Kind, LineError, Record};
use super::table::{Table, stored};
use super::*;

const NOW: u64 = 1_800_000_000;

fn rec(kind: Kind, id: &str, expires: u64) -> Record {
    Record::new(kind, id, expires).unwrap()
}

fn append(log: &mut Log, table: &Table, records: &[Record]) {
    let mut lines = Vec::new();
    for r in records {
        r.encode(&mut lines);
    }
    log.append(&lines, records.len() as u64).unwrap();
    let entries: Vec<_> = records.iter().map(|r| (r.key(), r.expires)).collect();
    table.insert_all(&entries);
}

fn has(table: &Table, kind: Kind, id: &str) -> bool {
    table.get(&record::Key::new(kind, id)).is_some()
}

#[test]
fn creates_directory_and_header_then_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data/sub/revocations.log");
    let table = Table::new();
    let (mut log, scan) = Log::open(&path, &table, NOW).unwrap();
    assert_eq!(scan.records, 0);
    append(
        &mut log,
        &table,
        &[
            rec(Kind::Jti, "a", NOW + 60),
            rec(Kind::Family, "f", NOW + 60),
        ],
    );
    drop(log);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("# certbound revocation list v1"));
    assert_eq!(text.lines().count(), 3);
    let table = Table::new();
    let (_log, scan) = Log::open(&path, &table, NOW).unwrap();
    assert_eq!(scan.records, 2);
    assert!(has(&table, Kind::Jti, "a"));
    assert!(has(&table, Kind::Family, "f"));
    assert!(!has(&table, Kind::Family, "a"));
}

#[test]
fn torn_last_line_is_skipped_and_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.log");
    let table = Table::new();
    let (mut log, _) = Log::open(&path, &table, NOW).unwrap();
    append(&mut log, &table, &[rec(Kind::Jti, "kept", NOW + 60)]);
    drop(log);
    let mut torn = Vec::new();
    rec(Kind::Jti, "torn", NOW + 60).encode(&mut torn);
    let intact = std::fs::metadata(&path).unwrap().len();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut f, &torn[..20]).unwrap();
    drop(f);
    let table = Table::new();
    let (mut log, scan) = Log::open(&path, &table, NOW).unwrap();
    assert_eq!(scan.torn, Some(3));
    assert!(has(&table, Kind::Jti, "kept"));
    assert!(!has(&table, Kind::Jti, "torn"));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), intact);
    // The next record starts on its own line and survives a reload.
    append(&mut log, &table, &[rec(Kind::Jti, "next", NOW + 60)]);
    drop(log);
    let table = Table::new();
    let (_log, scan) = Log::open(&path, &table, NOW).unwrap();
    assert_eq!((scan.records, scan.skipped.len(), scan.torn), (2, 0, None));
    assert!(has(&table, Kind::Jti, "next"));
}

#[test]
fn garbled_lines_are_reported_by_number_and_the_rest_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.log");
    let mut text = log::HEADER.to_vec();
    rec(Kind::Jti, "one", NOW + 60).encode(&mut text);
    let mut bad = Vec::new();
    rec(Kind::Jti, "two", NOW + 60).encode(&mut bad);
    bad[4] = b'X'; // id changed, checksum no longer matches
    text.extend_from_slice(&bad);
    text.extend_from_slice(b"\0\0\0\0 garbage\n");
    rec(Kind::Code, "three", NOW + 60).encode(&mut text);
    text.extend_from_slice(b"jti last-but-garbled 1\n");
    std::fs::write(&path, &text).unwrap();
    let table = Table::new();
    let (_log, scan) = Log::open(&path, &table, NOW).unwrap();
    assert_eq!(scan.records, 2);
    let lines: Vec<_> = scan
        .skipped
        .iter()
        .map(|s| (s.line, s.reason.clone()))
        .collect();
    assert_eq!(
        lines,
        vec![
            (3, LineError::Checksum),
            (4, LineError::Malformed),
            (6, LineError::Malformed)
        ]
    );
    assert_eq!(scan.last_line, 6);
    assert!(has(&table, Kind::Jti, "one"));
    assert!(has(&table, Kind::Code, "three"));
}

#[test]
fn expired_entries_are_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.log");
    let table = Table::new();
    let (mut log, _) = Log::open(&path, &table, NOW).unwrap();
    append(
        &mut log,
        &table,
        &[
            rec(Kind::Jti, "old", NOW - log::RETAIN_AFTER_EXPIRY - 1),
            rec(Kind::Jti, "recent", NOW - 1),
            rec(Kind::Jti, "live", NOW + 1),
        ],
    );
    drop(log);
    let table = Table::new();
    Log::open(&path, &table, NOW).unwrap();
    assert!(!has(&table, Kind::Jti, "old"));
    assert!(has(&table, Kind::Jti, "recent"));
    assert!(has(&table, Kind::Jti, "live"));
}

#[test]
fn compaction_keeps_appends_made_while_it_ran() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.log");
    let table = Table::new();
    let (mut log, _) = Log::open(&path, &table, NOW).unwrap();
    let expired: Vec<_> = (0..100)
        .map(|i| rec(Kind::Jti, &format!("expired-{i}"), NOW - 1000))
        .collect();
    append(&mut log, &table, &expired);
    append(&mut log, &table, &[rec(Kind::Jti, "live", NOW + 100)]);
    // Re-recorded with a later expiry: only the later line is kept.
    append(&mut log, &table, &[rec(Kind::Jti, "live", NOW + 200)]);
    let prepared = log::prepare(&log.snapshot(), &table, NOW).unwrap();
    append(&mut log, &table, &[rec(Kind::Family, "during", NOW + 100)]);
    let cut = prepared.cutoff;
    let done = log.finish(prepared).unwrap();
    assert_eq!(table.purge(cut), 100);
    assert_eq!((done.before, done.after), (103, 2));
    append(&mut log, &table, &[rec(Kind::Code, "after", NOW + 100)]);
    drop(log);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("expired-"), "{text}");
    assert!(!dir.path().join("r.log.compact").exists());
    let table = Table::new();
    let (_log, scan) = Log::open(&path, &table, NOW).unwrap();
    assert_eq!(scan.records, 3);
    assert_eq!(
        table.get(&record::Key::new(Kind::Jti, "live")),
        Some(stored(NOW + 200))
    );
    assert!(has(&table, Kind::Family, "during"));
    assert!(has(&table, Kind::Code, "after"));
}

#[test]
fn open_refuses_a_held_list_a_directory_and_an_impossible_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.log");
    let table = Table::new();
    let held = Log::open(&path, &table, NOW).unwrap();
    let err = Log::open(&path, &table, NOW).unwrap_err();
    assert!(matches!(err, OpenError::InUse(_)), "{err}");
    assert!(compact_offline(&path, NOW).is_err());
    drop(held);
    assert!(compact_offline(&path, NOW).is_ok());
    std::fs::create_dir(dir.path().join("dir.log")).unwrap();
    let err = Log::open(&dir.path().join("dir.log"), &table, NOW).unwrap_err();
    assert!(err.to_string().contains("dir.log"), "{err}");
    std::fs::write(dir.path().join("file"), "x").unwrap();
    let err = Log::open(&dir.path().join("file/r.log"), &table, NOW).unwrap_err();
    assert!(err.to_string().contains("cannot create directory"), "{err}");
}

#[test]
fn a_failed_append_leaves_no_garbage_before_the_next_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.log");
    let table = Table::new();
    let (mut log, _) = Log::open(&path, &table, NOW).unwrap();
    append(&mut log, &table, &[rec(Kind::Jti, "a", NOW + 60)]);
    // The file disappears: the append fails and is not acknowledged.
    let saved = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let mut line = Vec::new();
    rec(Kind::Jti, "lost", NOW + 60).encode(&mut line);
    assert!(log.append(&line, 1).is_err());
    // Restored (with a partial line after it, as a cut-short write leaves).
    let mut damaged = saved.clone();
    damaged.extend_from_slice(&line[..10]);
    std::fs::write(&path, &damaged).unwrap();
    append(&mut log, &table, &[rec(Kind::Jti, "b", NOW + 60)]);
    drop(log);
    let table = Table::new();
    let (_log, scan) = Log::open(&path, &table, NOW).unwrap();
    assert_eq!((scan.records, scan.skipped.len()), (2, 0));
    assert!(has(&table, Kind::Jti, "b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_records_share_syncs_and_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.log");
    let list =
        std::sync::Arc::new(Revocations::open_file(&path, Duration::from_secs(3600)).unwrap());
    let far = crate::keys::unix_now() + 3600;
    let tasks: Vec<_> = (0..500)
        .map(|i| {
            let list = list.clone();
            tokio::spawn(async move { list.record(rec(Kind::Jti, &format!("t{i}"), far)).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), Ok(Outcome::Recorded));
    }
    let stats = list.stats();
    assert_eq!(stats.written, 500);
    assert!(stats.syncs < 500, "no batching: {stats:?}");
    assert_eq!(
        list.record(rec(Kind::Jti, "t7", far)).await,
        Ok(Outcome::AlreadyRecorded)
    );
    assert!(list.contains(Kind::Jti, "t499").unwrap());
    assert!(!list.contains(Kind::Jti, "t500").unwrap());
    // A removed file fails closed: the record is refused and not in memory.
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        list.record(rec(Kind::Jti, "x", far)).await,
        Err(RevocationError::Unavailable)
    );
    assert!(!list.contains(Kind::Jti, "x").unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_compaction_with_concurrent_records_keeps_every_live_entry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.log");
    let now = crate::keys::unix_now();
    {
        // 20,000 expired records, so the compaction takes a moment.
        let table = Table::new();
        let (mut log, _) = Log::open(&path, &table, now).unwrap();
        let expired: Vec<_> = (0..20_000)
            .map(|i| rec(Kind::Jti, &format!("old{i}"), now - 10_000))
            .collect();
        append(&mut log, &table, &expired);
    }
    let list =
        std::sync::Arc::new(Revocations::open_file(&path, Duration::from_secs(3600)).unwrap());
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let list = list.clone();
            tokio::spawn(async move {
                for i in 0..300 {
                    let r = rec(Kind::Jti, &format!("w{w}-{i}"), now + 3600);
                    assert_eq!(list.record(r).await, Ok(Outcome::Recorded));
                }
            })
        })
        .collect();
    let done = list.compact().await.unwrap();
    assert!(done.after < 2000, "{done:?}");
    for w in writers {
        w.await.unwrap();
    }
    drop(list);
    // Reload: every acknowledged live record is there; the expired are gone.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let table = Table::new();
    let (_log, _) = loop {
        match Log::open(&path, &table, now) {
            Err(OpenError::InUse(_)) => tokio::time::sleep(Duration::from_millis(20)).await,
            other => break other.unwrap(),
        }
    };
    assert_eq!(table.live(retained_from(now)), 1200);
    assert!(!has(&table, Kind::Jti, "old0"));
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<(u8, u8, u16)>),
    Begin,
    Finish,
    Reload,
    Advance(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::collection::vec((0u8..3, 0u8..20, 0u16..1200), 1..6).prop_map(Op::Append),
        1 => Just(Op::Begin),
        1 => Just(Op::Finish),
        1 => Just(Op::Reload),
        1 => (0u16..900).prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any interleaving of appends, compaction halves, reloads (crashes
    /// included: a reload drops a compaction in progress) and time ends with
    /// exactly the live, acknowledged entries.
    #[test]
    fn any_interleaving_keeps_exactly_the_live_acknowledged_entries(ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.log");
        let mut now = NOW;
        let mut table = Table::new();
        let mut log = Some(Log::open(&path, &table, now).unwrap().0);
        let mut pending: Option<Prepared> = None;
        let mut model: HashMap<(Kind, String), u64> = HashMap::new();
        for op in ops {
            match op {
                Op::Append(batch) => {
                    let records: Vec<_> = batch
                        .iter()
                        .map(|&(k, id, exp)| rec(Kind::ALL[k as usize], &format!("id{id}"), now - 600 + u64::from(exp)))
                        .collect();
                    append(log.as_mut().unwrap(), &table, &records);
                    for r in records {
                        let e = model.entry((r.kind, r.id)).or_insert(0);
                        *e = (*e).max(r.expires);
                    }
                }
                Op::Begin => {
                    if pending.is_none() {
                        pending = Some(log::prepare(&log.as_ref().unwrap().snapshot(), &table, now).unwrap());
                    }
                }
                Op::Finish => {
                    if let Some(p) = pending.take() {
                        let cut = p.cutoff;
                        log.as_mut().unwrap().finish(p).unwrap();
                        table.purge(cut);
                    }
                }
                Op::Reload => {
                    pending = None;
                    drop(log.take());
                    table = Table::new();
                    log = Some(Log::open(&path, &table, now).unwrap().0);
                }
                Op::Advance(d) => now += u64::from(d),
            }
        }
        drop(pending);
        drop(log);
        let table = Table::new();
        let (_log, scan) = Log::open(&path, &table, now).unwrap();
        prop_assert!(scan.skipped.is_empty() && scan.torn.is_none());
        let keep = stored(retained_from(now));
        let live: Vec<_> = model.iter().filter(|(_, e)| stored(**e) >= keep).collect();
        for ((kind, id), expires) in &live {
            prop_assert_eq!(table.get(&record::Key::new(*kind, id)), Some(stored(**expires)));
        }
        prop_assert_eq!(table.live(retained_from(now)), live.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacts_by_itself_when_more_than_half_has_expired() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.log");
    let now = crate::keys::unix_now();
    {
        let table = Table::new();
        let (mut log, _) = Log::open(&path, &table, now).unwrap();
        let mut records: Vec<_> = (0..100)
            .map(|i| rec(Kind::Jti, &format!("old{i}"), now - 10_000))
            .collect();
        records.extend((0..10).map(|i| rec(Kind::Code, &format!("new{i}"), now + 3600)));
        append(&mut log, &table, &records);
    }
    let list = Revocations::open_file(&path, Duration::from_secs(1)).unwrap();
    for _ in 0..100 {
        if list.stats().compactions > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(list.stats().compactions, 1);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().filter(|l| l.starts_with("code ")).count(), 10);
    assert!(!text.contains("old"), "{text}");
    // Less than half expired now: the next checks leave it alone.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(list.stats().compactions, 1);
    assert!(list.contains(Kind::Code, "new3").unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_records_of_one_id_are_recorded_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let list = std::sync::Arc::new(
        Revocations::open_file(&dir.path().join("r.log"), Duration::from_secs(3600)).unwrap(),
    );
    let far = crate::keys::unix_now() + 60;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let list = list.clone();
            tokio::spawn(async move { list.record(rec(Kind::Code, "same", far)).await })
        })
        .collect();
    let mut recorded = 0;
    for t in tasks {
        if t.await.unwrap().unwrap() == Outcome::Recorded {
            recorded += 1;
        }
    }
    assert_eq!(recorded, 1);
    assert_eq!(list.stats().written, 1);
}
