//! `just bench [--quick]`: the load benchmark.
//!
//! Starts the release `certbound` with a benchmark configuration of its own
//! (keys, certificates, clients under `target/bench/run/`), drives it with
//! `oha` on 127.0.0.1 (refresh rotation: an in-process driver of 32 token
//! chains, since oha picks body lines at random and a refresh token works
//! once), and reports per scenario: requests/s, latency
//! percentiles, errors, server CPU µs per request (the server process's own
//! utime+stime before and after, divided by requests served) and peak RSS.
//! In the same run it times the cryptographic floor on this machine and
//! prints, per scenario, server CPU per request ÷ floor. Last, the
//! example resource server of certbound-verify (r1, r2: [`rs`]) under
//! load, with a token of this server: what the token check costs it.
//!
//! Output: a markdown table on stdout, JSON in `target/bench/results.json`,
//! and (full runs only) `BENCHMARKS.md`. `--quick` runs each scenario ~2 s as
//! a smoke test; it asserts no timing, only that every request succeeded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use certbound::cert::header::encode;
use serde_json::{Value, json};

mod config;
mod driver;
mod measure;
mod report;
mod rs;

use driver::*;
use measure::*;
use report::*;

/// A load scenario: one oha invocation.
struct Scenario {
    name: String,
    what: &'static str,
    connections: u32,
    /// oha's arguments; empty for the refresh-chain driver.
    oha: Vec<String>,
    /// The cryptography of one request of this kind, µs, and what it is.
    floor: (f64, &'static str),
    /// The cheapest request (prefix and concurrency of its scenario) that,
    /// plus `floor`, makes this one's floor; `None`: this is one.
    cheapest: Option<(&'static str, u32)>,
    /// The floor includes the revocation writer thread's CPU (revoking,
    /// rotating: each request is a durable record).
    writer: bool,
}

/// The cheapest requests: a document serialised at startup, per
/// transport.
const CHEAPEST_HTTP: &str = "j.";
const CHEAPEST_TLS: &str = "k.";

fn main() -> ExitCode {
    let quick = std::env::args().any(|a| a == "--quick");
    let secs = if quick { 2 } else { 10 };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = root.join("target/bench");
    let run = out.join("run");
    // Keys, certificates and config of the benchmark's own.
    let (binary, keys_dir) = prepare(&root, &run);
    let (https, http) = (free_port(), free_port());
    let config = config::bench(&keys_dir, &run, https, http);
    let config_path = run.join("certbound.toml");
    std::fs::write(&config_path, config).unwrap();

    // Start and time the first served request.
    // Start to first served request, with an empty list: the median of
    // five starts (four trial servers, then the benchmark's), since one
    // start moves with the page cache and the machine.
    let mut startups: Vec<Duration> = (0..4)
        .map(|_| time_start(&binary, &config_path, &run))
        .collect();
    let _ = std::fs::remove_dir_all(run.join("data"));
    let started = Instant::now();
    let mut server = Command::new(&binary)
        .args(["serve", "--config"])
        .arg(&config_path)
        .env("CERTBOUND_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(run.join("server.log")).unwrap())
        .spawn()
        .unwrap();
    let http_addr: SocketAddr = format!("127.0.0.1:{http}").parse().unwrap();
    startups.push(wait_ready(&http_addr, started, &mut server));
    startups.sort();
    let startup = startups[startups.len() / 2];
    std::thread::sleep(Duration::from_millis(300));
    let idle_rss_kb = proc_status(server.id(), "VmRSS");

    let cert_pem = std::fs::read_to_string(keys_dir.join("client.crt")).unwrap();
    let der = certbound::cert::header::decode(&cert_pem).unwrap();
    let header_value = encode::url_encoded_pem(&der);

    // Cold introspection: distinct tokens, minted beforehand with the
    // server's own keys, more than the scenario can use, so none repeats
    // (and none is in the server's verified-token cache).
    let n_tokens: usize = if quick { 40_000 } else { 200_000 };
    let bodies = run.join("introspect-bodies.txt");
    mint_bodies(
        &keys_dir,
        &format!("https://127.0.0.1:{https}"),
        n_tokens,
        "pinned",
        &bodies,
    );
    // Revocation: distinct tokens of the revoking client, so every request
    // writes (and syncs) a record.
    let revoke_bodies = run.join("revoke-bodies.txt");
    mint_bodies(
        &keys_dir,
        &format!("https://127.0.0.1:{https}"),
        n_tokens,
        "rs",
        &revoke_bodies,
    );
    // Refresh rotation: 32 clients, each rotating its own chain of refresh
    // tokens (oha picks body lines at random, and a refresh token used
    // twice is a reuse, so oha cannot drive this one).
    let chain_tokens = mint_refresh_tokens(
        &keys_dir,
        &format!("https://127.0.0.1:{https}"),
        32,
        &certbound::cert::thumbprint(&der),
    );
    let warm_token = mint_over_http(&http_addr, "", &header_value);
    let floor = measure_floor(&keys_dir, &der, &warm_token);
    let tenant_token = mint_over_http(&http_addr, "/t/acme.com", &header_value);
    assert!(active_over_http(&http_addr, "", &warm_token));
    assert!(active_over_http(&http_addr, "/t/acme.com", &tenant_token));
    assert!(
        !active_over_http(&http_addr, "", &tenant_token),
        "a tenant's token is inactive at another tenant"
    );

    let token_floor = floor.sign + floor.thumbprint;
    let k = keys_dir.display().to_string();
    let https_url = |p: &str| format!("https://127.0.0.1:{https}{p}");
    let http_url = |p: &str| format!("http://127.0.0.1:{http}{p}");
    let form = [
        "-m",
        "POST",
        "-H",
        "content-type: application/x-www-form-urlencoded",
    ];
    let tls_client = [
        "--cacert".to_string(),
        format!("{k}/ca.crt"),
        "--cert".into(),
        format!("{k}/client.crt"),
        "--key".into(),
        format!("{k}/client.key"),
    ];
    let token_body = |client: &str| {
        strings(&[
            "-d",
            &format!("grant_type=client_credentials&client_id={client}"),
        ])
    };
    let proxy_header = strings(&["-H", &format!("x-client-cert: {header_value}")]);
    let basic = strings(&["-a", "rs:secret"]);
    let scenario = |name: String,
                    what: &'static str,
                    connections: u32,
                    parts: Vec<Vec<String>>,
                    floor,
                    cheapest: &'static str| {
        Scenario {
            name,
            what,
            connections,
            // No parts: the scenario has its own driver.
            oha: if parts.is_empty() {
                Vec::new()
            } else {
                strings(&form)
                    .into_iter()
                    .chain(parts.into_iter().flatten())
                    .collect()
            },
            floor,
            // The cheapest request at this concurrency (e., at c=8, is
            // measured against c=32's).
            cheapest: Some((cheapest, if connections == 1 { 1 } else { 32 })),
            writer: false,
        }
    };
    let mut scenarios = Vec::new();
    for c in [1u32, 32] {
        for (prefix, transport, tls) in [
            (CHEAPEST_HTTP, "plain HTTP", false),
            (CHEAPEST_TLS, "mutual TLS", true),
        ] {
            let mut oha = if tls { tls_client.to_vec() } else { Vec::new() };
            oha.push(if tls {
                https_url("/oauth2/jwks")
            } else {
                http_url("/oauth2/jwks")
            });
            scenarios.push(Scenario {
                name: format!("{prefix} cheapest request (GET /oauth2/jwks), {transport}, c={c}"),
                what: "a document serialised at startup: the floor of every request over this transport",
                connections: c,
                oha,
                floor: (0.0, "itself"),
                cheapest: None,
                writer: false,
            });
        }
        scenarios.push(scenario(
            format!("a. token, proxy header, plain HTTP, c={c}"),
            "client_credentials, self_signed_tls_client_auth, URL-encoded PEM header",
            c,
            vec![
                proxy_header.clone(),
                token_body("pinned"),
                vec![http_url("/oauth2/token")],
            ],
            (token_floor, "sign + thumbprint"),
            CHEAPEST_HTTP,
        ));
        scenarios.push(scenario(
            format!("b. token, mutual TLS, c={c}"),
            "client_credentials, self_signed_tls_client_auth over TLS 1.3",
            c,
            vec![
                tls_client.to_vec(),
                token_body("pinned"),
                vec![https_url("/oauth2/token")],
            ],
            (token_floor, "sign + thumbprint"),
            CHEAPEST_TLS,
        ));
        scenarios.push(scenario(
            format!("b2. token, mutual TLS, tls_client_auth (PKI), c={c}"),
            "client_credentials, chain to the CA and subject DN (the chain's verdict kept)",
            c,
            vec![
                tls_client.to_vec(),
                token_body("pki"),
                vec![https_url("/oauth2/token")],
            ],
            (token_floor, "sign + thumbprint"),
            CHEAPEST_TLS,
        ));
        scenarios.push(scenario(
            format!("c. introspect, distinct tokens (cold), c={c}"),
            "Basic caller, cold: no token repeats",
            c,
            vec![
                basic.clone(),
                strings(&[
                    "-Z",
                    &bodies.display().to_string(),
                    &http_url("/oauth2/introspect"),
                ]),
            ],
            (floor.verify, "one verification"),
            CHEAPEST_HTTP,
        ));
        scenarios.push(scenario(
            format!("d. introspect, same token, c={c}"),
            "Basic caller, warm",
            c,
            vec![
                basic.clone(),
                strings(&[
                    "-d",
                    &format!("token={warm_token}"),
                    &http_url("/oauth2/introspect"),
                ]),
            ],
            (floor.token_hash, "SHA-256 of the token"),
            CHEAPEST_HTTP,
        ));
    }
    scenarios.push(scenario(
        "f. revoke, distinct tokens, c=32".into(),
        "Basic client revokes its own tokens; each answer waits for its record's group-committed fdatasync",
        32,
        vec![
            basic.clone(),
            strings(&[
                "-Z",
                &revoke_bodies.display().to_string(),
                &http_url("/oauth2/revoke"),
            ]),
        ],
        (
            floor.verify,
            "one verification + the revocation writer's CPU",
        ),
        CHEAPEST_HTTP,
    ));
    scenarios.last_mut().unwrap().writer = true;
    scenarios.push(scenario(
        "g. refresh rotation, 32 token chains, mutual TLS, c=32".into(),
        "refresh_token grant: verify, certificate check, old jti recorded (group-committed fdatasync), new access + refresh token",
        32,
        Vec::new(),
        (
            floor.verify + 2.0 * floor.sign + floor.thumbprint,
            "verify + 2 sign + thumbprint + the revocation writer's CPU",
        ),
        CHEAPEST_TLS,
    ));
    scenarios.last_mut().unwrap().writer = true;
    scenarios.push(scenario(
        "e. token, new TLS connection per request, c=8".into(),
        "full TLS 1.3 handshake with a client certificate, then a token",
        8,
        vec![
            strings(&["--disable-keepalive"]),
            tls_client.to_vec(),
            token_body("pinned"),
            vec![https_url("/oauth2/token")],
        ],
        (
            2.0 * floor.verify + 2.0 * floor.sign + floor.thumbprint,
            "2 sign + 2 verify + thumbprint (+ the c=32 cheapest request)",
        ),
        CHEAPEST_TLS,
    ));

    scenarios.push(scenario(
        "d3. introspect, same token, tenant path /t/acme.com/, c=32".into(),
        "Basic caller of tenant acme.com, warm: the path picks the tenant's settings",
        32,
        vec![
            basic.clone(),
            strings(&[
                "-d",
                &format!("token={tenant_token}"),
                &http_url("/t/acme.com/oauth2/introspect"),
            ]),
        ],
        (floor.token_hash, "SHA-256 of the token"),
        CHEAPEST_HTTP,
    ));

    let mut results = Vec::new();
    let mut failed = false;
    // Last: its first password check makes a hashing worker allocate its
    // argon2 memory (19 MiB, kept), which would show in every later
    // scenario's RSS.
    scenarios.push(scenario(
        "d2. introspect, same token, user caller (Basic username:password), c=32".into(),
        "a user with the introspection permission; argon2id once, then its verified credentials are remembered",
        32,
        vec![
            strings(&["-a", "bench:bench"]),
            strings(&[
                "-d",
                &format!("token={warm_token}"),
                &http_url("/oauth2/introspect"),
            ]),
        ],
        (floor.token_hash, "SHA-256 of the token"),
        CHEAPEST_HTTP,
    ));
    let mut peak_before_passwords_kb = None;
    for s in &scenarios {
        if s.name.starts_with("d2.") {
            peak_before_passwords_kb = Some(proc_status(server.id(), "VmHWM"));
        }
        let cpu_before = proc_cpu_ticks(server.id());
        let writer_before = writer_cpu_ticks(server.id());
        if s.oha.is_empty() {
            let report = refresh_chains(
                &https_url("/oauth2/token"),
                &keys_dir,
                chain_tokens.clone(),
                secs,
            );
            let cpu_after = proc_cpu_ticks(server.id());
            let writer = writer_cpu_ticks(server.id()) - writer_before;
            failed |= record(
                &mut results,
                s,
                &report,
                (cpu_after - cpu_before, writer),
                &server,
                n_tokens,
            );
            continue;
        }
        let output = Command::new("oha")
            .args([
                "-z",
                &format!("{secs}s"),
                "-c",
                &s.connections.to_string(),
                "--no-tui",
                "--output-format",
                "json",
            ])
            .args(&s.oha)
            .output()
            .unwrap();
        let cpu_after = proc_cpu_ticks(server.id());
        let writer = writer_cpu_ticks(server.id()) - writer_before;
        let report: Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|_| panic!("oha failed: {}", String::from_utf8_lossy(&output.stderr)));
        failed |= record(
            &mut results,
            s,
            &report,
            (cpu_after - cpu_before, writer),
            &server,
            n_tokens,
        );
    }
    apply_floors(&mut results);
    let peak_with_passwords_kb = proc_status(server.id(), "VmHWM");
    let peak_rss_kb = peak_before_passwords_kb.unwrap_or(peak_with_passwords_kb);
    let resource_server = rs::resource_server(
        &root,
        &keys_dir,
        &format!("https://127.0.0.1:{https}"),
        &warm_token,
        secs,
        floor.verify + floor.thumbprint,
    );
    failed |= resource_server.is_none();
    let _ = server.kill();
    let _ = server.wait();

    let summary = json!({
        "quick": quick,
        "seconds_per_scenario": secs,
        "machine": machine(),
        "startup_ms": startup.as_secs_f64() * 1e3,
        "idle_rss_kb": idle_rss_kb,
        "peak_rss_kb": peak_rss_kb,
        "peak_rss_with_password_checks_kb": peak_with_passwords_kb,
        "floor_us": {
            "es256_sign": floor.sign,
            "es256_verify": floor.verify,
            "sha256_thumbprint": floor.thumbprint,
            "sha256_token": floor.token_hash,
        },
        "scenarios": results,
        "resource_server": resource_server,
    });
    std::fs::write(
        out.join("results.json"),
        serde_json::to_vec_pretty(&summary).unwrap(),
    )
    .unwrap();
    let table = markdown(&summary)
        + &summary["resource_server"]
            .as_object()
            .map(|_| rs::markdown(&summary["resource_server"]))
            .unwrap_or_default()
        + "\n"
        + &targets(&summary);
    println!("{table}");
    if !quick {
        let previous = std::fs::read_to_string(root.join("BENCHMARKS.md")).unwrap_or_default();
        std::fs::write(root.join("BENCHMARKS.md"), benchmarks_md(&table, &previous)).unwrap();
        eprintln!("wrote BENCHMARKS.md");
    }
    if failed {
        eprintln!("bench: some requests failed");
        return ExitCode::FAILURE;
    }
    println!("bench: {} passed, 0 failed", scenarios.len());
    ExitCode::SUCCESS
}
