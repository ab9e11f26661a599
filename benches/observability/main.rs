//! `just bench-observability [--quick]` (and the last part of `just
//! bench`): what Prometheus metrics and the access log cost on the hot
//! paths. Three release servers, identical but for
//!
//! - **off**: no admin listener (nothing recorded), `log.access = false`;
//! - **metrics**: `server.admin` set (every request counted and timed),
//!   `log.access = false`;
//! - **metrics + access log**: both, the default logging, written to a
//!   file as a deployment would;
//!
//! each driven in turn (round-robin, so machine noise falls on all three)
//! by oha at 32 connections: a token (client_credentials, certificate in
//! the proxy header) and a warm introspection. Reported: answers/s and
//! server CPU per request (utime + stime over answers), the median of the
//! rounds, and the change against **off**.
//!
//! Output: a markdown table on stdout, JSON in
//! `target/bench/observability.json`, and (full runs) the
//! `bench-observability` section of `BENCHMARKS.md`. `--quick` asserts
//! only that every request succeeded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use certbound::cert::header::encode;
use serde_json::{Value, json};

#[allow(dead_code)]
#[path = "../load/driver.rs"]
mod driver;

use driver::*;

const ISSUER: &str = "https://certbound.bench";

/// The three configurations: name, admin listener, access log.
const MODES: [(&str, bool, bool); 3] = [
    ("off", false, false),
    ("metrics", true, false),
    ("metrics + access log", true, true),
];

struct Server {
    child: Killed,
    http: SocketAddr,
}

fn start(binary: &Path, run: &Path, i: usize, admin: bool, access: bool) -> Server {
    let (https, http) = (free_port(), free_port());
    let admin = if admin {
        format!("127.0.0.1:{}", free_port())
    } else {
        String::new()
    };
    let mut child = Command::new(binary)
        .args(["serve", "--config"])
        .arg(run.join("certbound.toml"))
        .env("CERTBOUND_LOG", "info")
        .env("CERTBOUND_SERVER__HTTPS", format!("127.0.0.1:{https}"))
        .env("CERTBOUND_SERVER__HTTP", format!("127.0.0.1:{http}"))
        .env("CERTBOUND_SERVER__ADMIN", admin)
        .env("CERTBOUND_LOG__ACCESS", access.to_string())
        .env(
            "CERTBOUND_SERVER__CONTROL_SOCKET",
            run.join(format!("{i}.sock")),
        )
        .env(
            "CERTBOUND_REVOCATION__FILE",
            run.join(format!("{i}/revocations.log")),
        )
        .stdout(std::fs::File::create(run.join(format!("{i}.log"))).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let http = format!("127.0.0.1:{http}").parse().unwrap();
    wait_ready(&http, Instant::now(), &mut child);
    Server {
        child: Killed(child),
        http,
    }
}

/// One oha run against `server`: (answers/s, server CPU µs per answer,
/// failed requests).
fn measure(server: &Server, secs: u64, args: &[String]) -> (f64, f64, u64) {
    let before = proc_cpu_ticks(server.child.0.id());
    let output = Command::new("oha")
        .args(["-z", &format!("{secs}s"), "-c", "32", "--no-tui"])
        .args(["--output-format", "json", "-m", "POST"])
        .args(["-H", "content-type: application/x-www-form-urlencoded"])
        .args(args)
        .output()
        .unwrap();
    let ticks = proc_cpu_ticks(server.child.0.id()) - before;
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("oha failed: {}", String::from_utf8_lossy(&output.stderr)));
    let codes = &report["statusCodeDistribution"];
    let ok = codes["200"].as_u64().unwrap_or(0);
    let total: u64 = codes
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0);
    let rps = ok as f64 / report["summary"]["total"].as_f64().unwrap_or(1.0);
    let cpu_us = ticks as f64 / clk_tck() * 1e6 / ok.max(1) as f64;
    (rps, cpu_us, total - ok)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> ExitCode {
    let quick = std::env::args().any(|a| a == "--quick");
    let (secs, rounds) = if quick { (1, 1) } else { (5, 3) };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = root.join("target/bench/observability");
    let (binary, keys_dir) = prepare(root, &run);
    let k = keys_dir.display();
    let config = format!(
        r#"{head}
[mtls]
client_certificate_header = "x-client-cert"
trusted_proxies = ["127.0.0.1/32"]
[[clients]]
client_id = "pinned"
token_endpoint_auth_method = "self_signed_tls_client_auth"
certificates = ["{k}/client.crt"]
scope = "read write"
{RS_CLIENT}"#,
        head = config_head(ISSUER, &keys_dir)
    );
    std::fs::write(run.join("certbound.toml"), config).unwrap();
    let servers: Vec<Server> = MODES
        .iter()
        .enumerate()
        .map(|(i, (_, admin, access))| start(&binary, &run, i, *admin, *access))
        .collect();
    let pem = std::fs::read_to_string(keys_dir.join("client.crt")).unwrap();
    let der = certbound::cert::header::decode(&pem).unwrap();
    let header = format!("x-client-cert: {}", encode::url_encoded_pem(&der));
    let warm = mint_over_http(&servers[0].http, "", &encode::url_encoded_pem(&der));
    let scenarios: [(&str, Vec<String>, &str); 2] = [
        (
            "token, proxy header, c=32",
            strings(&[
                "-H",
                &header,
                "-d",
                "grant_type=client_credentials&client_id=pinned",
            ]),
            "/oauth2/token",
        ),
        (
            "introspect, same token, c=32",
            strings(&["-a", "rs:secret", "-d", &format!("token={warm}")]),
            "/oauth2/introspect",
        ),
    ];
    let mut failed = 0;
    let mut rows = Vec::new();
    for (name, args, path) in &scenarios {
        let mut samples = vec![(Vec::new(), Vec::new()); MODES.len()];
        for _ in 0..rounds {
            for (i, server) in servers.iter().enumerate() {
                let mut args = args.clone();
                args.push(format!("http://{}{path}", server.http));
                let (rps, cpu, errors) = measure(server, secs, &args);
                failed += errors;
                samples[i].0.push(rps);
                samples[i].1.push(cpu);
            }
        }
        let modes: Vec<Value> = samples
            .into_iter()
            .zip(MODES)
            .map(|((rps, cpu), (mode, _, _))| {
                json!({"mode": mode, "rps": median(rps), "cpu_us": median(cpu)})
            })
            .collect();
        rows.push(json!({"scenario": name, "modes": modes}));
    }
    drop(servers);
    let md = markdown(&rows);
    println!("{md}");
    std::fs::write(
        root.join("target/bench/observability.json"),
        serde_json::to_string_pretty(&json!({"quick": quick, "rows": rows})).unwrap(),
    )
    .unwrap();
    if !quick {
        let body = format!(
            "## Metrics and the access log (`just bench-observability`, also run by `just bench`)\n\n\
             Release build, this machine (2 cores), oha on the same cores, median of {rounds} rounds of {secs} s \
             per configuration, the three servers driven in turn. CPU is the server's per answered request.\n\n{md}"
        );
        write_section(root, "bench-observability", &body);
    }
    if failed > 0 {
        eprintln!("bench-observability: {failed} requests failed");
        return ExitCode::FAILURE;
    }
    println!("bench-observability: passed");
    ExitCode::SUCCESS
}

fn markdown(rows: &[Value]) -> String {
    let mut md = String::from("| scenario |");
    for (mode, _, _) in MODES {
        md += &format!(" {mode}: answers/s | CPU µs/request |");
    }
    md += "\n|---|";
    md += &"---:|---:|".repeat(MODES.len());
    md += "\n";
    for row in rows {
        let modes = row["modes"].as_array().unwrap();
        let base = (
            modes[0]["rps"].as_f64().unwrap(),
            modes[0]["cpu_us"].as_f64().unwrap(),
        );
        md += &format!("| {} |", row["scenario"].as_str().unwrap());
        for (i, m) in modes.iter().enumerate() {
            let (rps, cpu) = (m["rps"].as_f64().unwrap(), m["cpu_us"].as_f64().unwrap());
            if i == 0 {
                md += &format!(" {rps:.0} | {cpu:.1} |");
            } else {
                let pct = |v: f64, b: f64| (v / b - 1.0) * 100.0;
                md += &format!(
                    " {rps:.0} ({:+.0}%) | {cpu:.1} ({:+.0}%) |",
                    pct(rps, base.0),
                    pct(cpu, base.1)
                );
            }
        }
        md += "\n";
    }
    md
}
