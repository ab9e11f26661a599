//! `just bench-replicas [--quick]` (and the second half of `just bench`):
//! the revocation list on Redis next to the file, in one run, against the
//! release binary and Debian's `redis-server` on 127.0.0.1.
//!
//! - Per backend (file; Redis with `appendfsync everysec`; Redis with
//!   `appendfsync always`): revocations/s over HTTP at 32 connections
//!   (distinct tokens, each answer after its record is accepted), refresh
//!   rotations/s (32 token chains over mutual TLS), and warm introspection
//!   at 32 connections (memory only on every backend).
//! - Propagation: two replicas on one Redis; a token revoked at A, timed
//!   from A's answer until B first answers `active: false` (p50, p99).
//! - Startup of a replica with 1,000,000 live entries in Redis (100,000
//!   with `--quick`), until its first answer.
//!
//! Output: a markdown table on stdout, JSON in
//! `target/bench/replicas.json`, and (full runs) the `bench-replicas`
//! section of `BENCHMARKS.md`. `--quick` asserts no timing, only that
//! every request succeeded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[allow(dead_code)]
#[path = "../load/driver.rs"]
mod driver;

use driver::*;

const ISSUER: &str = "https://certbound.bench";

/// `redis-server` on a free port with its data in `dir`.
struct Redis {
    _child: Killed,
    port: u16,
}

impl Redis {
    fn start(dir: &Path, appendfsync: &str) -> Self {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "yes", "--appendfsync", appendfsync])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is not installed: `cargo xtask deps` installs it");
        let redis = Self {
            _child: Killed(child),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis.connection().is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn connection(&self) -> redis::RedisResult<redis::Connection> {
        let mut c = redis::Client::open(self.url())?.get_connection()?;
        redis::cmd("PING").query::<String>(&mut c)?;
        Ok(c)
    }
}

/// A running server and its listeners.
struct Server {
    child: Killed,
    http: SocketAddr,
    https: SocketAddr,
}

fn start_server(
    binary: &Path,
    run: &Path,
    name: &str,
    redis: Option<&Redis>,
) -> (Server, Duration) {
    let (https, http) = (free_port(), free_port());
    let mut command = Command::new(binary);
    command
        .args(["serve", "--config"])
        .arg(run.join("certbound.toml"))
        .env("CERTBOUND_LOG", "info")
        .env("CERTBOUND_SERVER__HTTPS", format!("127.0.0.1:{https}"))
        .env("CERTBOUND_SERVER__HTTP", format!("127.0.0.1:{http}"))
        .env(
            "CERTBOUND_SERVER__CONTROL_SOCKET",
            run.join(format!("{name}.sock")),
        )
        .env(
            "CERTBOUND_REVOCATION__FILE",
            run.join(format!("{name}/revocations.log")),
        )
        .stdout(std::fs::File::create(run.join(format!("{name}.log"))).unwrap())
        .stderr(Stdio::null());
    if let Some(redis) = redis {
        command
            .env("CERTBOUND_REVOCATION__BACKEND", "redis")
            .env("CERTBOUND_REVOCATION__REDIS__URL", redis.url());
    }
    let started = Instant::now();
    let mut child = command.spawn().unwrap();
    let http: SocketAddr = format!("127.0.0.1:{http}").parse().unwrap();
    let startup = wait_ready(&http, started, &mut child);
    let https = format!("127.0.0.1:{https}").parse().unwrap();
    (
        Server {
            child: Killed(child),
            http,
            https,
        },
        startup,
    )
}

/// POSTs a form as client `rs` (Basic); the status.
fn post_status(addr: &SocketAddr, path: &str, body: &str) -> u16 {
    post_raw(addr, path, "authorization: Basic cnM6c2VjcmV0", body).0
}

/// Runs oha for `secs` at `c` connections; (200s/s, p50 ms, p99 ms, errors).
fn oha(secs: u64, c: u32, args: &[String]) -> (f64, f64, f64, u64) {
    let output = Command::new("oha")
        .args(["-z", &format!("{secs}s"), "-c", &c.to_string(), "--no-tui"])
        .args(["--output-format", "json", "-m", "POST"])
        .args([
            "-H",
            "content-type: application/x-www-form-urlencoded",
            "-a",
            "rs:secret",
        ])
        .args(args)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("oha failed: {}", String::from_utf8_lossy(&output.stderr)));
    summarize(&report)
}

/// (200s/s, p50 ms, p99 ms, failed requests) of an oha-shaped report.
fn summarize(report: &Value) -> (f64, f64, f64, u64) {
    let codes = &report["statusCodeDistribution"];
    let ok = codes["200"].as_u64().unwrap_or(0);
    let total: u64 = codes
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0);
    let transport: u64 = report["errorDistribution"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !k.contains("aborted due to deadline"))
                .filter_map(|(_, v)| v.as_u64())
                .sum()
        })
        .unwrap_or(0);
    let p = &report["latencyPercentiles"];
    let ms = |k: &str| p[k].as_f64().unwrap_or(f64::NAN) * 1e3;
    let rps = ok as f64 / report["summary"]["total"].as_f64().unwrap_or(1.0);
    (rps, ms("p50"), ms("p99"), total - ok + transport)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

fn main() -> ExitCode {
    let quick = std::env::args().any(|a| a == "--quick");
    let secs = if quick { 2 } else { 10 };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = root.join("target/bench");
    let run = out.join("replicas");
    let (binary, keys_dir) = prepare(&root, &run);
    let k = keys_dir.display();
    let config = format!(
        r#"{head}
[mtls]
trust_anchors = "{k}/ca.crt"
{pinned}{RS_CLIENT}
[[users]]
username = "bench"
password_hash = "{hash}"
"#,
        head = config_head(ISSUER, &keys_dir),
        pinned = pinned_client(&keys_dir),
        hash = certbound::users::hash_password("bench").unwrap(),
    );
    std::fs::write(run.join("certbound.toml"), config).unwrap();
    let cert_pem = std::fs::read_to_string(keys_dir.join("client.crt")).unwrap();
    let der = certbound::cert::header::decode(&cert_pem).unwrap();
    let thumbprint = certbound::cert::thumbprint(&der);
    let n_tokens = if quick { 20_000 } else { 150_000 };

    let mut rows = Vec::new();
    let mut failed = false;
    for (name, fsync) in [
        ("file", None),
        ("redis-everysec", Some("everysec")),
        ("redis-always", Some("always")),
    ] {
        let redis = fsync.map(|f| Redis::start(&run.join(format!("{name}-data")), f));
        let (server, _) = start_server(&binary, &run, name, redis.as_ref());
        let bodies = run.join(format!("{name}-revoke.txt"));
        mint_bodies(&keys_dir, ISSUER, n_tokens, "rs", &bodies);
        let warm = {
            let mut line = String::new();
            std::io::BufRead::read_line(
                &mut std::io::BufReader::new(std::fs::File::open(&bodies).unwrap()),
                &mut line,
            )
            .unwrap();
            line.trim_end().to_string()
        };
        let url = |p: &str| format!("http://{}{p}", server.http);
        let introspect = oha(
            secs,
            32,
            &strings(&["-d", &warm, &url("/oauth2/introspect")]),
        );
        let revoke = oha(
            secs,
            32,
            &strings(&["-Z", &bodies.display().to_string(), &url("/oauth2/revoke")]),
        );
        let chains = mint_refresh_tokens(&keys_dir, ISSUER, 32, &thumbprint);
        let refresh = summarize(&refresh_chains(
            &format!("https://{}/oauth2/token", server.https),
            &keys_dir,
            chains,
            secs,
        ));
        for (what, m) in [
            ("introspection, warm, c=32", introspect),
            ("revocations, distinct tokens, c=32", revoke),
            ("refresh rotations, 32 chains, mTLS", refresh),
        ] {
            eprintln!(
                "  {name}: {what} … {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, {} errors",
                m.0, m.1, m.2, m.3
            );
            failed |= m.3 > 0 || m.0 == 0.0;
            rows.push(json!({"backend": name, "measure": what, "per_sec": m.0, "p50_ms": m.1, "p99_ms": m.2, "errors": m.3}));
        }
    }

    // Propagation between two replicas.
    let redis = Redis::start(&run.join("propagation-data"), "everysec");
    let (a, _) = start_server(&binary, &run, "replica-a", Some(&redis));
    let (b, _) = start_server(&binary, &run, "replica-b", Some(&redis));
    let rounds = if quick { 50 } else { 1000 };
    let bodies = run.join("propagation.txt");
    mint_bodies(&keys_dir, ISSUER, rounds, "rs", &bodies);
    let mut delays = Vec::with_capacity(rounds);
    for body in std::fs::read_to_string(&bodies).unwrap().lines() {
        let token = body.trim_start_matches("token=");
        assert!(active_over_http(&b.http, "", token));
        assert_eq!(post_status(&a.http, "/oauth2/revoke", body), 200);
        let revoked = Instant::now();
        while active_over_http(&b.http, "", token) {
            assert!(revoked.elapsed() < Duration::from_secs(5), "no propagation");
        }
        delays.push(revoked.elapsed().as_secs_f64() * 1e3);
    }
    delays.sort_by(f64::total_cmp);
    let propagation = json!({"rounds": rounds, "p50_ms": percentile(&delays, 0.5), "p99_ms": percentile(&delays, 0.99), "max_ms": delays[delays.len() - 1]});
    eprintln!("  propagation A→B: {propagation}");
    drop((a, b, redis));

    // Startup with a full list in Redis.
    let entries: u64 = if quick { 100_000 } else { 1_000_000 };
    let redis = Redis::start(&run.join("startup-data"), "everysec");
    let mut c = redis.connection().unwrap();
    let expires = certbound::keys::unix_now() + 3600;
    for chunk in 0..entries.div_ceil(10_000) {
        let mut pipe = redis::pipe();
        for i in chunk * 10_000..((chunk + 1) * 10_000).min(entries) {
            pipe.cmd("ZADD")
                .arg("{certbound}:revocations")
                .arg(expires)
                .arg(format!("jti bench-{i:016x}"))
                .ignore();
        }
        pipe.query::<()>(&mut c).unwrap();
    }
    let (replica, startup) = start_server(&binary, &run, "startup", Some(&redis));
    // The log is written every 100 ms: wait for the line.
    let loaded = format!("entries={entries}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let log = loop {
        let log = std::fs::read_to_string(run.join("startup.log")).unwrap();
        if log.contains(&loaded) || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(log.contains(&loaded), "{log}");
    let rss_kb = driver_rss(replica.child.0.id());
    let startup =
        json!({"entries": entries, "startup_ms": startup.as_secs_f64() * 1e3, "rss_kb": rss_kb});
    eprintln!("  startup: {startup}");
    drop(replica);

    report(&root, &out, quick, &rows, &propagation, &startup);
    if failed {
        eprintln!("bench-replicas: some requests failed");
        return ExitCode::FAILURE;
    }
    println!("bench-replicas: passed");
    ExitCode::SUCCESS
}

fn driver_rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn report(
    root: &Path,
    out: &Path,
    quick: bool,
    rows: &[Value],
    propagation: &Value,
    startup: &Value,
) {
    let mut md = String::from(
        "| backend | measure | per second | p50 ms | p99 ms |\n|---|---|---|---|---|\n",
    );
    for r in rows {
        md.push_str(&format!(
            "| {} | {} | {:.0} | {:.2} | {:.2} |\n",
            r["backend"].as_str().unwrap_or(""),
            r["measure"].as_str().unwrap_or(""),
            r["per_sec"].as_f64().unwrap_or(0.0),
            r["p50_ms"].as_f64().unwrap_or(0.0),
            r["p99_ms"].as_f64().unwrap_or(0.0)
        ));
    }
    md.push_str(&format!(
        "\nPropagation (revoked at replica A, answered; then polled at replica B until inactive), {} rounds: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms.\n\n\
         Startup of a replica with {} live entries in Redis: {:.0} ms to its first answer, {} MB resident.\n",
        propagation["rounds"],
        propagation["p50_ms"].as_f64().unwrap_or(0.0),
        propagation["p99_ms"].as_f64().unwrap_or(0.0),
        propagation["max_ms"].as_f64().unwrap_or(0.0),
        startup["entries"],
        startup["startup_ms"].as_f64().unwrap_or(0.0),
        startup["rss_kb"].as_u64().unwrap_or(0) / 1024,
    ));
    println!("{md}");
    std::fs::write(
        out.join("replicas.json"),
        serde_json::to_string_pretty(
            &json!({"quick": quick, "rows": rows, "propagation": propagation, "startup": startup}),
        )
        .unwrap(),
    )
    .unwrap();
    if quick {
        return;
    }
    let body = format!(
        "## Replicas on Redis (`just bench-replicas`, also run by `just bench`)\n\n\
         Release build, this machine (2 cores), Redis {} on 127.0.0.1 with `appendonly yes`, each figure over {} s.\n\n{md}",
        redis_version(),
        10
    );
    write_section(root, "bench-replicas", &body);
}

fn redis_version() -> String {
    Command::new("redis-server")
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .nth(2)
                .unwrap_or("")
                .trim_start_matches("v=")
                .to_string()
        })
        .unwrap_or_default()
}
