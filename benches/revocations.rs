//! `just bench-revocations [--quick]`: the revocation list at scale.
//!
//! In this process, on real files under `target/bench/revocations/`:
//! 1. load a list of 1,000,000 live entries (the startup path,
//!    `Revocations::open`): time, and resident memory before and after;
//! 2. look entries up, present and absent, on one and on two threads;
//! 3. record new revocations at several concurrencies, each answered only
//!    after its batch is `fdatasync`ed: revocations/s, records per sync, mean
//!    latency;
//! 4. compact a 1,000,000-record list of which half has expired, online.
//!
//! Prints a markdown table and the targets (load < 1 s, < 100 MB), and
//! writes `target/bench/revocations.json`. `--quick` shortens step 3; it
//! asserts only that every operation succeeded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use certbound::keys::unix_now;
use certbound::revocation::{Kind, Outcome, Record, Revocations};
use serde_json::json;

const ENTRIES: u64 = 1_000_000;

/// A jti-shaped identifier (22 base64url characters) for index `i`.
fn id(prefix: char, i: u64) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i >> 7);
    let mut s = String::with_capacity(22);
    s.push(prefix);
    for _ in 0..21 {
        s.push(ALPHABET[(x & 63) as usize] as char);
        x = x.rotate_right(6) ^ i;
    }
    s
}

/// Writes a list of `n` records; `expired(i)` chooses which have expired.
fn write_list(path: &Path, n: u64, now: u64, expired: impl Fn(u64) -> bool) {
    let _ = std::fs::remove_file(path);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    out.write_all(b"# certbound revocation list v1\n").unwrap();
    let mut line = Vec::with_capacity(64);
    for i in 0..n {
        let expires = if expired(i) {
            now - 86_400
        } else {
            now + 86_400
        };
        line.clear();
        Record::new(Kind::Jti, &id('L', i), expires)
            .unwrap()
            .encode(&mut line);
        out.write_all(&line).unwrap();
    }
    out.into_inner().unwrap().sync_all().unwrap();
}

fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() -> ExitCode {
    let quick = std::env::args().any(|a| a == "--quick");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench/revocations");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let now = unix_now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // 1. Load.
    let path = dir.join("live.log");
    write_list(&path, ENTRIES, now, |_| false);
    let file_mb = std::fs::metadata(&path).unwrap().len() as f64 / 1e6;
    let rss_before = status_kb("VmRSS");
    let started = Instant::now();
    let list = Arc::new(Revocations::open_file(&path, Duration::from_secs(3600)).unwrap());
    let load_s = started.elapsed().as_secs_f64();
    let rss_after = status_kb("VmRSS");
    let hwm = status_kb("VmHWM");
    let rss_mb = (rss_after.saturating_sub(rss_before)) as f64 / 1024.0;
    assert_eq!(list.stats().entries as u64, ENTRIES);

    // 2. Lookups.
    let probes: Vec<String> = (0..200_000u64)
        .map(|i| {
            if i % 2 == 0 {
                id('L', i * 5)
            } else {
                id('X', i)
            }
        })
        .collect();
    let started = Instant::now();
    let mut hits = 0u64;
    for _ in 0..5 {
        hits += probes
            .iter()
            .filter(|p| list.contains(Kind::Jti, p).unwrap())
            .count() as u64;
    }
    let lookups = 5 * probes.len() as u64;
    let lookup_ns = started.elapsed().as_nanos() as f64 / lookups as f64;
    assert_eq!(hits, lookups / 2, "every present id found, no absent one");
    let probes = Arc::new(probes);
    let started = Instant::now();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (list, probes) = (list.clone(), probes.clone());
            std::thread::spawn(move || {
                (0..5)
                    .map(|_| {
                        probes
                            .iter()
                            .filter(|p| list.contains(Kind::Jti, p).unwrap())
                            .count()
                    })
                    .sum::<usize>()
            })
        })
        .collect();
    let found: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(found as u64, lookups);
    let lookups_2t = 2.0 * lookups as f64 / started.elapsed().as_secs_f64();

    // 3. Durable revocations with group commit.
    let secs = if quick { 0.5 } else { 3.0 };
    let counter = Arc::new(AtomicU64::new(0));
    let mut commit_rows = Vec::new();
    for concurrency in [1u64, 8, 64, 512] {
        let before = list.stats();
        let stop = Arc::new(AtomicBool::new(false));
        let latency_ns = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let (list, stop, counter, latency_ns) = (
                    list.clone(),
                    stop.clone(),
                    counter.clone(),
                    latency_ns.clone(),
                );
                runtime.spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let i = counter.fetch_add(1, Ordering::Relaxed);
                        let r = Record::new(Kind::Jti, &id('N', i), now + 3600).unwrap();
                        let t = Instant::now();
                        assert_eq!(list.record(r).await, Ok(Outcome::Recorded));
                        latency_ns.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Ordering::Relaxed);
        runtime.block_on(async {
            for t in tasks {
                t.await.unwrap();
            }
        });
        let elapsed = started.elapsed().as_secs_f64();
        let after = list.stats();
        let written = after.written - before.written;
        let syncs = after.syncs - before.syncs;
        assert_eq!(after.failed, 0);
        commit_rows.push(json!({
            "concurrency": concurrency,
            "revocations_per_s": written as f64 / elapsed,
            "syncs_per_s": syncs as f64 / elapsed,
            "records_per_sync": written as f64 / syncs.max(1) as f64,
            "mean_latency_ms": latency_ns.load(Ordering::Relaxed) as f64 / written.max(1) as f64 / 1e6,
        }));
    }
    drop(list);

    // 4. Online compaction of a list that is half expired.
    let half = dir.join("half.log");
    write_list(&half, ENTRIES, now, |i| i % 2 == 0);
    let list = Revocations::open_file(&half, Duration::from_secs(3600)).unwrap();
    let started = Instant::now();
    let done = runtime.block_on(list.compact()).unwrap();
    let compact_s = started.elapsed().as_secs_f64();
    assert_eq!((done.before, done.after), (ENTRIES, ENTRIES / 2));
    drop(list);

    let load_met = load_s < 1.0;
    let rss_met = rss_mb < 100.0;
    println!("\n## Revocation list (1,000,000 live entries, {file_mb:.0} MB file)\n");
    println!("| measure | value | target |");
    println!("|---|---|---|");
    println!(
        "| load at startup | {:.0} ms | < 1 s: {} |",
        load_s * 1e3,
        if load_met { "met" } else { "NOT MET" }
    );
    println!(
        "| resident memory added by the load | {rss_mb:.1} MB (process peak {:.1} MB) | < 100 MB: {} |",
        hwm as f64 / 1024.0,
        if rss_met { "met" } else { "NOT MET" }
    );
    println!("| lookup, one thread | {lookup_ns:.0} ns | O(1) |");
    println!("| lookups, two threads | {:.1} M/s | |", lookups_2t / 1e6);
    println!(
        "| online compaction, 1M records, half expired | {:.0} ms | |",
        compact_s * 1e3
    );
    println!(
        "\n| concurrent revokers | revocations/s (each fsync'd) | records per fsync | mean latency |"
    );
    println!("|---|---|---|---|");
    for row in &commit_rows {
        println!(
            "| {} | {:.0} | {:.1} | {:.2} ms |",
            row["concurrency"],
            row["revocations_per_s"].as_f64().unwrap(),
            row["records_per_sync"].as_f64().unwrap(),
            row["mean_latency_ms"].as_f64().unwrap()
        );
    }
    let results = json!({
        "entries": ENTRIES,
        "file_mb": file_mb,
        "load_ms": load_s * 1e3,
        "rss_added_mb": rss_mb,
        "peak_rss_mb": hwm as f64 / 1024.0,
        "lookup_ns": lookup_ns,
        "lookups_per_s_two_threads": lookups_2t,
        "compaction_ms": compact_s * 1e3,
        "group_commit": commit_rows,
        "quick": quick,
    });
    std::fs::write(
        dir.parent().unwrap().join("revocations.json"),
        serde_json::to_vec_pretty(&results).unwrap(),
    )
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    println!("\nbench-revocations: all operations succeeded");
    ExitCode::SUCCESS
}
