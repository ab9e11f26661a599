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
        "\nA scenario's floor is the cheapest request over its transport at its concurrency (j. plain HTTP, k. mutual TLS, GET /oauth2/jwks, in this run) plus the cryptography it cannot avoid, timed in this run (µs): ES256 sign {:.1} · ES256 verify {:.1} · SHA-256 thumbprint {:.2} · SHA-256 of the token {:.2}; for f. and g. also the revocation writer thread's CPU per request (append, fdatasync), measured in the scenario itself.",
        g("es256_sign"), g("es256_verify"), g("sha256_thumbprint"), g("sha256_token")
    )
    .unwrap();
    writeln!(
        t,
        "Start to first served request (median of 5 starts, empty list): {:.1} ms · idle RSS {:.1} MB · peak RSS {:.1} MB (before d2's password checks; with them {:.1} MB: one argon2 worker's 19 MiB, allocated once and kept).",
        s["startup_ms"].as_f64().unwrap_or(0.0),
        s["idle_rss_kb"].as_f64().unwrap_or(0.0) / 1024.0,
        s["peak_rss_kb"].as_f64().unwrap_or(0.0) / 1024.0,
        s["peak_rss_with_password_checks_kb"].as_f64().unwrap_or(0.0) / 1024.0
    )
    .unwrap();
    t
}

/// The targets, judged from this run (ratios at c=32; the table has c=1).
pub(crate) fn targets(s: &Value) -> String {
    let rows = s["scenarios"].as_array().cloned().unwrap_or_default();
    let find = |prefix: &str, c: u64| {
        super::measure::row_of(&rows, prefix, c)
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
        ("a.", "token, self-signed client, proxy header", 1.2),
        ("b.", "token, self-signed client, mutual TLS", 1.2),
        ("b2.", "token, tls_client_auth client", 1.3),
        ("d.", "introspection, repeated token", 1.25),
        ("c.", "introspection, distinct tokens", 1.2),
        ("g.", "refresh rotation over mutual TLS", 1.3),
        ("f.", "revocation over HTTP", 1.3),
    ] {
        let ratio = num(&find(prefix, 32), "ratio_to_floor");
        row(
            format!("{label}, c=32: CPU ≤ {limit}× floor"),
            format!("{ratio:.2}×"),
            ratio <= limit,
        );
    }
    let pki = num(&find("b2.", 32), "server_cpu_us_per_request")
        / num(&find("b.", 32), "server_cpu_us_per_request");
    row(
        "tls_client_auth token ≤ 1.15× the self-signed one (CPU, c=32)".into(),
        format!("{pki:.2}×"),
        pki <= 1.15,
    );
    for prefix in ["a.", "b.", "b2.", "c.", "d.", "d2.", "d3."] {
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
        "start to first served request < 50 ms (empty list)".into(),
        format!("{start:.1} ms"),
        start < 50.0,
    );
    t
}

/// BENCHMARKS.md: this run's table, and the sections `just bench-verify`
/// and `just bench-replicas` last wrote there (kept as they were).
pub(crate) fn benchmarks_md(table: &str, previous: &str) -> String {
    let kept: String = [
        "bench-instructions",
        "bench-verify",
        "bench-replicas",
        "bench-observability",
    ]
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
         requests it served. A scenario's floor is what it cannot avoid: the cheapest request over the same\n\
         transport at the same concurrency (j./k., `GET /oauth2/jwks`) plus the cryptography it needs, both\n\
         measured in the same run.\n\n\
         Reading the numbers: oha shares the 2 cores with the server, and loopback TCP charges the\n\
         sender for delivering to the receiver. `perf` shows the kernel's share of server CPU at about\n\
         40% at c=1 (the `writev` that wakes oha, and the context switch in `epoll_wait`, paid once per\n\
         request when requests arrive one at a time) and about 25% at c=32, where it is amortised; the\n\
         cheapest request pays it too, so it is in every floor. Numbers vary ±20% between runs on\n\
         this virtual machine, the floor included; `just bench-instructions` (below) does not move.\n\n{table}{kept}"
    )
}
