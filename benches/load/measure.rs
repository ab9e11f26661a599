//! Measuring: server CPU and RSS from /proc, one scenario's record, the cryptographic floor, the machine.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{self as sig, KeyPair};
use certbound::keys::KeySet;
use serde_json::{Value, json};

use super::*;

/// Measured floor primitives, µs each.
pub(crate) struct Floor {
    pub(crate) sign: f64,
    pub(crate) verify: f64,
    pub(crate) thumbprint: f64,
    pub(crate) parse: f64,
    pub(crate) header_decode: f64,
}

/// Adds a scenario's row to `results` from an oha-shaped JSON report;
/// true if any request failed.
pub(crate) fn record(
    results: &mut Vec<Value>,
    s: &Scenario,
    report: &Value,
    cpu_ticks: u64,
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
        "floor_us": s.floor.0,
        "floor": s.floor.1,
        "ratio_to_floor": cpu_us / s.floor.0,
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

pub(crate) fn measure_floor(keys_dir: &Path, der: &[u8], header_value: &str) -> Floor {
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
    let unparsed = sig::UnparsedPublicKey::new(
        &sig::ECDSA_P256_SHA256_FIXED,
        verifier.public_key().as_ref().to_vec(),
    );
    let verify_unparsed = time_us(|| {
        unparsed
            .verify(std::hint::black_box(&message), signature.as_ref())
            .unwrap();
    });
    eprintln!(
        "  floor: verify with a parsed key {verify:.1} µs, re-parsing the key each time {verify_unparsed:.1} µs"
    );
    let thumbprint = time_us(|| {
        std::hint::black_box(certbound::cert::thumbprint(std::hint::black_box(der)));
    });
    let parse = time_us(|| {
        std::hint::black_box(
            x509_parser::parse_x509_certificate(std::hint::black_box(der)).unwrap(),
        );
    });
    // Percent-decoding plus base64: the decode alone, without the X.509
    // parse that certbound's header decoder also does (counted in `parse`).
    let header_decode = time_us(|| {
        let pem = percent_encoding::percent_decode_str(std::hint::black_box(header_value))
            .decode_utf8()
            .unwrap();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        std::hint::black_box(
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, body).unwrap(),
        );
    });
    Floor {
        sign,
        verify,
        thumbprint,
        parse,
        header_decode,
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
