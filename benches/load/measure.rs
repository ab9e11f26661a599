//! Measuring: server CPU and RSS from /proc, one scenario's record, the cryptographic floor, the machine.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{self as sig, KeyPair};
use certbound::keys::KeySet;
use serde_json::{Value, json};

use super::*;

/// Measured floor primitives, µs each: the cryptography a request cannot
/// avoid. A scenario's floor is this plus the cheapest request over its
/// transport at its concurrency, measured in the same run.
pub(crate) struct Floor {
    pub(crate) sign: f64,
    pub(crate) verify: f64,
    pub(crate) thumbprint: f64,
    /// SHA-256 of an access token: a warm introspection's cache key.
    pub(crate) token_hash: f64,
}

/// The CPU ticks of the server's revocation writer thread (the append
/// and `fdatasync` path), from `/proc/<pid>/task`.
pub(crate) fn writer_cpu_ticks(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("stat")).ok())
        .filter(|stat| stat.contains("(certbound-revoc"))
        .map(|stat| {
            let rest = &stat[stat.rfind(')').unwrap() + 2..];
            let fields: Vec<&str> = rest.split(' ').collect();
            fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0)
        })
        .sum()
}

/// Adds a scenario's row to `results` from an oha-shaped JSON report;
/// true if any request failed.
pub(crate) fn record(
    results: &mut Vec<Value>,
    s: &Scenario,
    report: &Value,
    (cpu_ticks, writer_ticks): (u64, u64),
    server: &Child,
    n_tokens: usize,
) -> bool {
    let (ok, total) = answered(report);
    let transport_errors: u64 = report["errorDistribution"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0);
    // oha ends in-flight requests at the deadline; those are not errors.
    let aborted = report["errorDistribution"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.contains("aborted due to deadline"))
                .filter_map(|(_, v)| v.as_u64())
                .sum()
        })
        .unwrap_or(0u64);
    let errors = (total - ok) + (transport_errors - aborted);
    if ["c.", "f."].iter().any(|p| s.name.starts_with(p)) && ok as usize > n_tokens {
        eprintln!(
            "  warning: {} served {ok} requests from {n_tokens} tokens: some were warm",
            s.name
        );
    }
    let cpu_us = cpu_ticks as f64 * 1e6 / clk_tck() / ok.max(1) as f64;
    let p = &report["latencyPercentiles"];
    let ms = |k: &str| p[k].as_f64().unwrap_or(f64::NAN) * 1e3;
    let rps = ok as f64 / report["summary"]["total"].as_f64().unwrap_or(1.0);
    results.push(json!({
        "scenario": s.name,
        "what": s.what,
        "connections": s.connections,
        "requests": ok,
        "errors": errors,
        "requests_per_sec": rps,
        "p50_ms": ms("p50"),
        "p99_ms": ms("p99"),
        "p99_9_ms": ms("p99.9"),
        "server_cpu_us_per_request": cpu_us,
        "crypto_us": s.floor.0,
        "floor": s.floor.1,
        "cheapest": s.cheapest.map(|(prefix, c)| json!({"prefix": prefix, "connections": c})),
        "writer_cpu_us": s.writer.then(|| writer_ticks as f64 * 1e6 / clk_tck() / ok.max(1) as f64),
        "peak_rss_kb": proc_status(server.id(), "VmHWM"),
    }));
    eprintln!(
        "  {} … {:.0} req/s, {:.1} µs CPU/req, {} errors",
        s.name, rps, cpu_us, errors
    );
    errors > 0 || ok == 0
}

/// oha's answers: (200s, all statuses).
pub(crate) fn answered(report: &Value) -> (u64, u64) {
    let codes = &report["statusCodeDistribution"];
    let total = codes
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0);
    (codes["200"].as_u64().unwrap_or(0), total)
}

pub(crate) fn proc_status(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Mean µs of `f` over ~200 ms.
pub(crate) fn time_us(mut f: impl FnMut()) -> f64 {
    for _ in 0..100 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_millis(200) {
        for _ in 0..50 {
            f();
        }
        n += 50;
    }
    start.elapsed().as_secs_f64() * 1e6 / n as f64
}

pub(crate) fn measure_floor(keys_dir: &Path, der: &[u8], token: &str) -> Floor {
    let keys = KeySet::load(keys_dir, None).unwrap();
    let key = keys.current();
    let message = vec![b'x'; 400];
    let sign = time_us(|| {
        std::hint::black_box(key.sign(std::hint::black_box(&message)).unwrap());
    });
    let verifier = sig::EcdsaKeyPair::generate(&sig::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let signature = verifier.sign(&rng, &message).unwrap();
    let public = sig::ParsedPublicKey::new(
        &sig::ECDSA_P256_SHA256_FIXED,
        verifier.public_key().as_ref(),
    )
    .unwrap();
    let verify = time_us(|| {
        public
            .verify_sig(std::hint::black_box(&message), signature.as_ref())
            .unwrap();
    });
    let thumbprint = time_us(|| {
        std::hint::black_box(certbound::cert::thumbprint(std::hint::black_box(der)));
    });
    let token_hash = time_us(|| {
        use sha2::Digest;
        std::hint::black_box(sha2::Sha256::digest(std::hint::black_box(token.as_bytes())));
    });
    Floor {
        sign,
        verify,
        thumbprint,
        token_hash,
    }
}

/// The row of the scenario named `prefix…` at `c` connections.
pub(crate) fn row_of<'a>(rows: &'a [Value], prefix: &str, c: u64) -> Option<&'a Value> {
    rows.iter().find(|r| {
        r["scenario"]
            .as_str()
            .is_some_and(|n| n.starts_with(prefix))
            && r["connections"] == c
    })
}

/// Fills each row's floor (its cheapest request's CPU, from the same run,
/// plus its cryptography, plus for revocations and refreshes the
/// revocation writer's CPU per request in the same scenario) and its
/// ratio to it.
pub(crate) fn apply_floors(results: &mut [Value]) {
    let cpu_of = |rows: &[Value], prefix: &str, c: u64| {
        row_of(rows, prefix, c).and_then(|r| r["server_cpu_us_per_request"].as_f64())
    };
    let floors: Vec<f64> = results
        .iter()
        .map(|r| {
            let crypto = r["crypto_us"].as_f64().unwrap_or(0.0);
            let base = match &r["cheapest"] {
                Value::Null => r["server_cpu_us_per_request"].as_f64(),
                c => cpu_of(
                    results,
                    c["prefix"].as_str().unwrap_or(""),
                    c["connections"].as_u64().unwrap_or(0),
                ),
            };
            let writer = r["writer_cpu_us"].as_f64().unwrap_or(0.0);
            base.unwrap_or(f64::NAN) + crypto + writer
        })
        .collect();
    for (r, floor) in results.iter_mut().zip(floors) {
        let cpu = r["server_cpu_us_per_request"].as_f64().unwrap_or(f64::NAN);
        r["floor_us"] = json!(floor);
        r["ratio_to_floor"] = json!(cpu / floor);
    }
}

pub(crate) fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("unknown")
        .trim()
        .to_string();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem_kb = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    let oha = Command::new("oha")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    json!({ "cpu": cpu, "cores": cores, "memory_gib": mem_kb / 1024 / 1024, "load_generator": oha.trim() })
}
