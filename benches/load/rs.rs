//! The example resource server (`axum_resource_server`, certbound-verify)
//! under load, served by this run's certbound: its CPU per request on
//! `/orders` (the token check: an ES256 verification, the SHA-256
//! thumbprint of the TLS client certificate, the claims) next to its own
//! cheapest route, `/health` (no token check), both over mutual TLS with
//! keep-alive. The difference is what the check costs; it is compared with
//! the floor of one verification plus one thumbprint.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::driver::{clk_tck, proc_cpu_ticks};
use crate::driver::{free_port, strings};
use crate::measure::{answered, proc_status};

/// Runs r1 (`/health`) and r2 (`/orders`) for `secs` each, at c=32; the
/// results, or `None` when a request failed.
pub(crate) fn resource_server(
    root: &Path,
    keys_dir: &Path,
    issuer: &str,
    token: &str,
    secs: u64,
    floor_us: f64,
) -> Option<Value> {
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "certbound-verify",
            "--example",
            "axum_resource_server",
            "--features",
            "axum,rustls",
        ])
        .current_dir(root)
        .status()
        .unwrap();
    assert!(status.success(), "release build of the example failed");
    let k = keys_dir.display().to_string();
    let port = free_port();
    let mut rs = Command::new(root.join("target/release/examples/axum_resource_server"))
        .env("RS_ISSUER", issuer)
        .env("RS_CA", format!("{k}/ca.crt"))
        .env("RS_TLS_CERT", format!("{k}/server.crt"))
        .env("RS_TLS_KEY", format!("{k}/server.key"))
        .env("RS_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the resource server did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let tls = strings(&[
        "--cacert",
        &format!("{k}/ca.crt"),
        "--cert",
        &format!("{k}/client.crt"),
        "--key",
        &format!("{k}/client.key"),
    ]);
    let bearer = strings(&["-H", &format!("authorization: Bearer {token}")]);
    let mut rows = Vec::new();
    let mut failed = false;
    for (name, path, auth) in [
        (
            "r1. resource server, /health (no token check), mutual TLS, c=32",
            "/health",
            vec![],
        ),
        (
            "r2. resource server, /orders (bound token checked), mutual TLS, c=32",
            "/orders",
            bearer,
        ),
    ] {
        let before = proc_cpu_ticks(rs.id());
        let output = Command::new("oha")
            .args([
                "-z",
                &format!("{secs}s"),
                "-c",
                "32",
                "--no-tui",
                "--output-format",
                "json",
            ])
            .args(&tls)
            .args(&auth)
            .arg(format!("https://127.0.0.1:{port}{path}"))
            .output()
            .unwrap();
        let ticks = proc_cpu_ticks(rs.id()) - before;
        let report: Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|_| panic!("oha failed: {}", String::from_utf8_lossy(&output.stderr)));
        let (ok, total) = answered(&report);
        let cpu_us = ticks as f64 * 1e6 / clk_tck() / ok.max(1) as f64;
        let rps = ok as f64 / report["summary"]["total"].as_f64().unwrap_or(1.0);
        eprintln!(
            "  {name} … {rps:.0} req/s, {cpu_us:.1} µs CPU/req, {} errors",
            total - ok
        );
        failed |= ok == 0 || total != ok;
        rows.push(
            json!({"scenario": name, "requests": ok, "errors": total - ok,
            "requests_per_sec": rps, "cpu_us_per_request": cpu_us}),
        );
    }
    let peak_rss_kb = proc_status(rs.id(), "VmHWM");
    let _ = rs.kill();
    let _ = rs.wait();
    let cost = rows[1]["cpu_us_per_request"].as_f64().unwrap_or(f64::NAN)
        - rows[0]["cpu_us_per_request"].as_f64().unwrap_or(f64::NAN);
    (!failed).then(|| {
        json!({"rows": rows, "check_cost_us": cost, "floor_us": floor_us,
            "ratio_to_floor": cost / floor_us, "peak_rss_kb": peak_rss_kb})
    })
}

/// The resource server's lines for the report.
pub(crate) fn markdown(rs: &Value) -> String {
    let mut t = String::from(
        "\n| resource server (certbound-verify example, axum) | req/s | CPU µs/req |\n|---|---|---|\n",
    );
    for row in rs["rows"].as_array().into_iter().flatten() {
        t += &format!(
            "| {} | {:.0} | {:.1} |\n",
            row["scenario"].as_str().unwrap_or(""),
            row["requests_per_sec"].as_f64().unwrap_or(f64::NAN),
            row["cpu_us_per_request"].as_f64().unwrap_or(f64::NAN)
        );
    }
    t += &format!(
        "\nThe token check costs the resource server {:.1} µs of CPU per request (r2 − r1), {:.2}× its floor of {:.1} µs (one ES256 verification + one SHA-256 of the certificate). Peak RSS {:.1} MB.\n",
        rs["check_cost_us"].as_f64().unwrap_or(f64::NAN),
        rs["ratio_to_floor"].as_f64().unwrap_or(f64::NAN),
        rs["floor_us"].as_f64().unwrap_or(f64::NAN),
        rs["peak_rss_kb"].as_f64().unwrap_or(0.0) / 1024.0
    );
    t
}
