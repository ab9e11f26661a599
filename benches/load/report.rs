//! Reporting: the markdown table, the targets, BENCHMARKS.md.

use std::fmt::Write as _;

use serde_json::Value;

pub(crate) fn markdown(s: &Value) -> String {
    let mut t = String::new();
    let m = &s["machine"];
    writeln!(
        t,
        "Machine: {} × {}, {} GiB; load generator {} on the same machine. {} s per scenario.\n",
        m["cores"],
        m["cpu"].as_str().unwrap_or(""),
        m["memory_gib"],
        m["load_generator"].as_str().unwrap_or(""),
        s["seconds_per_scenario"]
    )
    .unwrap();
    writeln!(t, "| scenario | req/s | p50 ms | p99 ms | p99.9 ms | errors | server CPU µs/req | floor µs | ÷ floor | peak RSS MB |").unwrap();
    writeln!(t, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|").unwrap();
    for r in s["scenarios"].as_array().unwrap() {
        let f = |k: &str, d: usize| {
            r[k].as_f64()
                .map_or("–".to_string(), |v| format!("{v:.d$}"))
        };
        writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} |",
            r["scenario"].as_str().unwrap(),
            f("requests_per_sec", 0),
            f("p50_ms", 2),
            f("p99_ms", 2),
            f("p99_9_ms", 2),
            r["errors"],
            f("server_cpu_us_per_request", 1),
            f("floor_us", 1),
            f("ratio_to_floor", 2),
            r["peak_rss_kb"].as_f64().unwrap_or(0.0) / 1024.0,
        )
        .unwrap();
    }
    let fl = &s["floor_us"];
    let g = |k: &str| fl[k].as_f64().unwrap_or(f64::NAN);
    writeln!(
        t,
        "\nFloor on this machine (µs): ES256 sign {:.1} · ES256 verify {:.1} · SHA-256 thumbprint {:.2} · X.509 parse {:.2} · URL-encoded PEM decode {:.2}.",
        g("es256_sign"), g("es256_verify"), g("sha256_thumbprint"), g("x509_parse"), g("url_encoded_pem_header_decode")
    )
    .unwrap();
    writeln!(
        t,
        "Start to first served request: {:.1} ms · idle RSS {:.1} MB · peak RSS {:.1} MB (before d2's password checks; with them {:.1} MB: one argon2 worker's 19 MiB, allocated once and kept).",
        s["startup_ms"].as_f64().unwrap_or(0.0),
        s["idle_rss_kb"].as_f64().unwrap_or(0.0) / 1024.0,
        s["peak_rss_kb"].as_f64().unwrap_or(0.0) / 1024.0,
        s["peak_rss_with_password_checks_kb"].as_f64().unwrap_or(0.0) / 1024.0
    )
    .unwrap();
    t
}

/// The targets, judged from this run.
pub(crate) fn targets(s: &Value) -> String {
    let rows = s["scenarios"].as_array().cloned().unwrap_or_default();
    let find = |prefix: &str, c: u64| {
        rows.iter()
            .find(|r| {
                r["scenario"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(prefix))
                    && r["connections"] == c
            })
            .cloned()
            .unwrap_or(Value::Null)
    };
    let num = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let mut t = String::from("| target | measured | met |\n|---|---:|:---:|\n");
    let mut row = |name: String, measured: String, met: bool| {
        writeln!(
            t,
            "| {name} | {measured} | {} |",
            if met { "yes" } else { "**no**" }
        )
        .unwrap();
    };
    for (prefix, label, limit) in [
        ("a.", "token, proxy header", 2.0),
        ("b.", "token, mutual TLS", 2.0),
        ("c.", "introspection, cold", 2.0),
    ] {
        for c in [1, 32] {
            let r = find(prefix, c);
            let ratio = num(&r, "ratio_to_floor");
            row(
                format!("{label}, c={c}: CPU ≤ {limit}× floor"),
                format!("{ratio:.2}×"),
                ratio <= limit,
            );
        }
    }
    for c in [1, 32] {
        let cpu = num(&find("d.", c), "server_cpu_us_per_request");
        row(
            format!("introspection, warm, c={c}: CPU ≤ 10 µs"),
            format!("{cpu:.1} µs"),
            cpu <= 10.0,
        );
    }
    for prefix in ["a.", "b.", "c.", "d."] {
        let r = find(prefix, 32);
        let p99 = num(&r, "p99_ms");
        row(
            format!("{}: p99 < 5 ms", r["scenario"].as_str().unwrap_or(prefix)),
            format!("{p99:.2} ms"),
            p99 < 5.0,
        );
    }
    let mb = |k: &str| s[k].as_f64().unwrap_or(f64::NAN) / 1024.0;
    row(
        "peak RSS under load < 32 MB (before password checks)".into(),
        format!("{:.1} MB", mb("peak_rss_kb")),
        mb("peak_rss_kb") < 32.0,
    );
    row(
        "idle RSS < 16 MB".into(),
        format!("{:.1} MB", mb("idle_rss_kb")),
        mb("idle_rss_kb") < 16.0,
    );
    let start = s["startup_ms"].as_f64().unwrap_or(f64::NAN);
    row(
        "start to first served request < 100 ms".into(),
        format!("{start:.1} ms"),
        start < 100.0,
    );
    t
}

/// BENCHMARKS.md: this run's table, and the sections `just bench-verify`
/// and `just bench-replicas` last wrote there (kept as they were).
pub(crate) fn benchmarks_md(table: &str, previous: &str) -> String {
    let kept: String = ["bench-verify", "bench-replicas", "bench-observability"]
        .iter()
        .filter_map(|name| {
            let (start, end) = (format!("<!-- {name} -->"), format!("<!-- /{name} -->"));
            match (previous.find(&start), previous.find(&end)) {
                (Some(a), Some(b)) if a < b => Some(format!("\n{}\n", &previous[a..b + end.len()])),
                _ => None,
            }
        })
        .collect();
    format!(
        "# Benchmarks\n\nWritten by `just bench` (full run); `target/bench/results.json` has the raw numbers.\n\
         Server CPU per request is the server process's utime+stime over the scenario divided by the\n\
         requests it served; the floor is the cryptography that request cannot avoid, timed in the same run.\n\n\
         Reading the numbers: oha shares the 2 cores with the server, and loopback TCP charges the\n\
         sender for delivering to the receiver. `perf` shows the kernel's share of server CPU at about\n\
         40% at c=1 (the `writev` that wakes oha, and the context switch in `epoll_wait`, paid once per\n\
         request when requests arrive one at a time) and about 25% at c=32, where it is amortised. The\n\
         c=1 ratios measure that wakeup cost more than certbound. Numbers vary ±20% between runs on\n\
         this virtual machine, the floor included.\n\n{table}{kept}"
    )
}
