//! Driving the server: ports, readiness, oha, minting tokens and bodies, the refresh-chain driver.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use certbound::keys::KeySet;
use serde_json::{Value, json};

pub(crate) fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

pub(crate) fn ensure_oha() {
    if Command::new("oha").arg("--version").output().is_ok() {
        return;
    }
    eprintln!("installing oha (cargo install oha --locked) …");
    let status = Command::new(env!("CARGO"))
        .args(["install", "oha", "--locked"])
        .status()
        .unwrap();
    assert!(status.success(), "cargo install oha failed");
}

/// A fresh `run` directory with the benchmark's own keys and certificates
/// in `run/keys`, oha installed, and the release server built: (its path,
/// the keys directory).
pub(crate) fn prepare(root: &Path, run: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let _ = std::fs::remove_dir_all(run);
    std::fs::create_dir_all(run).unwrap();
    ensure_oha();
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "--bin", "certbound"])
        .current_dir(root)
        .status()
        .unwrap();
    assert!(status.success(), "release build failed");
    let keys_dir = run.join("keys");
    certbound::dev::generate(&keys_dir, true).unwrap();
    certbound::keys::generate_key(&keys_dir, certbound::keys::Alg::ES256, 1).unwrap();
    (root.join("target/release/certbound"), keys_dir)
}

pub(crate) fn proc_cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the ")" of the command name: utime is 14th, stime 15th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

pub(crate) fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls GET /oauth2/jwks until it answers 200; returns the time since spawn.
pub(crate) fn wait_ready(addr: &SocketAddr, started: Instant, server: &mut Child) -> Duration {
    wait_ready_within(addr, started, server, Duration::from_secs(20))
}

/// [`wait_ready`], giving up after `limit`.
pub(crate) fn wait_ready_within(
    addr: &SocketAddr,
    started: Instant,
    server: &mut Child,
    limit: Duration,
) -> Duration {
    loop {
        if let Ok(Some(status)) = server.try_wait() {
            panic!("server exited: {status}; see target/bench/run/server.log");
        }
        if let Ok(mut s) = TcpStream::connect(addr) {
            let _ =
                s.write_all(b"GET /oauth2/jwks HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
            let mut buf = [0u8; 16];
            if s.read(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.1 200") {
                return started.elapsed();
            }
        }
        assert!(started.elapsed() < limit, "server did not start");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A token of client `pinned` from `{base}/oauth2/token` (`base`: "" or a
/// tenant's `/t/{domain}`).
pub(crate) fn mint_over_http(addr: &SocketAddr, base: &str, header_value: &str) -> String {
    let json = post_over_http(
        addr,
        &format!("{base}/oauth2/token"),
        &format!("x-client-cert: {header_value}"),
        "grant_type=client_credentials&client_id=pinned",
    );
    json["access_token"].as_str().unwrap().to_string()
}

/// Whether introspection at `{base}/oauth2/introspect` (as `rs`) finds
/// `token` active: a scenario of inactive answers would measure nothing.
pub(crate) fn active_over_http(addr: &SocketAddr, base: &str, token: &str) -> bool {
    let json = post_over_http(
        addr,
        &format!("{base}/oauth2/introspect"),
        "authorization: Basic cnM6c2VjcmV0",
        &format!("token={token}"),
    );
    json["active"] == Value::Bool(true)
}

/// POSTs a form to `path` with one extra header line; the JSON answer.
fn post_over_http(addr: &SocketAddr, path: &str, header: &str, body: &str) -> Value {
    let (_, answer) = post_raw(addr, path, header, body);
    serde_json::from_str(&answer).unwrap()
}

/// POSTs a form to `path` with one extra header line over a connection
/// of its own; (status, body).
pub(crate) fn post_raw(addr: &SocketAddr, path: &str, header: &str, body: &str) -> (u16, String) {
    let req = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/x-www-form-urlencoded\r\n{header}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The benchmark server's keys and token settings, to mint tokens it accepts.
pub(crate) fn token_service(
    keys_dir: &Path,
    issuer: &str,
) -> (KeySet, certbound::token::TokenService) {
    let tokens = certbound::token::TokenService {
        issuer: issuer.into(),
        audience: issuer.into(),
        lifetime: 3600,
        refresh_audience: format!("{issuer}/oauth2/token"),
        refresh_lifetime: 86_400,
    };
    (KeySet::load(keys_dir, None).unwrap(), tokens)
}

/// `n` access tokens of `client_id`, signed with the server's keys.
pub(crate) fn mint_access(keys_dir: &Path, issuer: &str, n: usize, client_id: &str) -> Vec<String> {
    let (keys, tokens) = token_service(keys_dir, issuer);
    let now = certbound::keys::unix_now();
    let grant = certbound::token::AccessGrant {
        sub: client_id,
        client_id,
        scope: "read",
        binding: Some("bench"),
        username: None,
        fid: None,
        auth_time: None,
    };
    (0..n)
        .map(|_| tokens.mint(&keys, grant, now).unwrap())
        .collect()
}

/// A file of `n` lines `token=…`: oha's bodies (`-Z`) of distinct tokens.
pub(crate) fn mint_bodies(keys_dir: &Path, issuer: &str, n: usize, client_id: &str, path: &Path) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for token in mint_access(keys_dir, issuer, n, client_id) {
        writeln!(out, "token={token}").unwrap();
    }
}

/// Drives the refresh scenario: one task per token, each rotating its own
/// chain (the answer's refresh token is the next request's) over mutual TLS
/// until `secs` have passed. Returns an oha-shaped report.
pub(crate) fn refresh_chains(url: &str, keys_dir: &Path, tokens: Vec<String>, secs: u64) -> Value {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(keys_dir.join("ca.crt")).unwrap())
        .unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(
        vec![CertificateDer::from_pem_file(keys_dir.join("client.crt")).unwrap()],
        PrivateKeyDer::from_pem_file(keys_dir.join("client.key")).unwrap(),
    )
    .unwrap();
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(secs);
        let tasks: Vec<_> = tokens
            .into_iter()
            .map(|mut token| {
                let (client, url) = (client.clone(), url.to_string());
                tokio::spawn(async move {
                    let (mut latencies, mut codes, mut errors) = (
                        Vec::new(),
                        std::collections::BTreeMap::<String, u64>::new(),
                        0u64,
                    );
                    while Instant::now() < deadline {
                        let sent = Instant::now();
                        let resp = client
                            .post(&url)
                            .header("content-type", "application/x-www-form-urlencoded")
                            .body(format!(
                                "grant_type=refresh_token&client_id=pinned&refresh_token={token}"
                            ))
                            .send()
                            .await;
                        let Ok(resp) = resp else {
                            errors += 1;
                            break;
                        };
                        let status = resp.status().as_u16();
                        let body: Value = resp.json().await.unwrap_or_default();
                        latencies.push(sent.elapsed().as_secs_f64());
                        *codes.entry(status.to_string()).or_default() += 1;
                        match body["refresh_token"].as_str() {
                            Some(next) if status == 200 => token = next.to_string(),
                            _ => break,
                        }
                    }
                    (latencies, codes, errors)
                })
            })
            .collect();
        let (mut latencies, mut codes, mut errors) = (
            Vec::new(),
            std::collections::BTreeMap::<String, u64>::new(),
            0u64,
        );
        for task in tasks {
            let (l, c, e) = task.await.unwrap();
            latencies.extend(l);
            for (k, v) in c {
                *codes.entry(k).or_default() += v;
            }
            errors += e;
        }
        let total = started.elapsed().as_secs_f64();
        latencies.sort_by(f64::total_cmp);
        let pct = |q: f64| {
            latencies
                .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
                .copied()
        };
        json!({
            "statusCodeDistribution": codes,
            "errorDistribution": if errors > 0 { json!({"transport": errors}) } else { json!({}) },
            "latencyPercentiles": {"p50": pct(0.5), "p99": pct(0.99), "p99.9": pct(0.999)},
            "summary": {"total": total},
        })
    })
}

pub(crate) fn mint_refresh_tokens(
    keys_dir: &Path,
    issuer: &str,
    n: usize,
    x5t: &str,
) -> Vec<String> {
    let (keys, tokens) = token_service(keys_dir, issuer);
    let now = certbound::keys::unix_now();
    (0..n)
        .map(|i| {
            let fid = format!("bench-family-{i}");
            let grant = certbound::token::RefreshGrant {
                username: "bench",
                client_id: "pinned",
                scope: "read",
                binding: Some(x5t),
                fid: &fid,
                auth_time: now,
                sid: "bench",
            };
            tokens.mint_refresh(&keys, grant, now).unwrap()
        })
        .collect()
}

/// Replaces (or appends) the `<!-- {name} -->` … `<!-- /{name} -->`
/// section of `BENCHMARKS.md` with `body` (the replicas and observability
/// benchmarks; the load benchmark writes the rest of the file).
#[allow(dead_code)]
pub(crate) fn write_section(root: &Path, name: &str, body: &str) {
    let (start, end) = (format!("<!-- {name} -->"), format!("<!-- /{name} -->"));
    let section = format!("{start}\n{body}{end}");
    let path = root.join("BENCHMARKS.md");
    let previous = std::fs::read_to_string(&path).unwrap_or_default();
    let updated = match (previous.find(&start), previous.find(&end)) {
        (Some(a), Some(b)) if a < b => {
            format!("{}{section}{}", &previous[..a], &previous[b + end.len()..])
        }
        _ => format!("{}\n{section}\n", previous.trim_end()),
    };
    std::fs::write(&path, updated).unwrap();
    eprintln!("wrote the {name} section of BENCHMARKS.md");
}

/// The client `rs` of every benchmark configuration: HTTP Basic with the
/// secret "secret", allowed to introspect.
#[allow(dead_code)]
pub(crate) const RS_CLIENT: &str = r#"
[[clients]]
client_id = "rs"
token_endpoint_auth_method = "client_secret_basic"
client_secret_sha256 = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
introspection = true
"#;

/// The self-signed client `pinned` of the benchmark configurations
/// (`keys/client.crt`), which may also rotate refresh tokens.
#[allow(dead_code)]
pub(crate) fn pinned_client(keys: &Path) -> String {
    format!(
        "[[clients]]\nclient_id = \"pinned\"\ntoken_endpoint_auth_method = \"self_signed_tls_client_auth\"\ncertificates = [\"{}/client.crt\"]\nscope = \"read write\"\ngrant_types = [\"client_credentials\", \"refresh_token\"]\n",
        keys.display()
    )
}

/// The CA-issued client `pki` (`tls_client_auth`, the dev client's DN).
#[allow(dead_code)]
pub(crate) const PKI_CLIENT: &str = r#"
[[clients]]
client_id = "pki"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=demo-client,O=certbound dev"
scope = "read write"
"#;

/// The head of a benchmark configuration: `issuer`, the server's TLS
/// files and the keys, all in `keys` (the listeners come from the
/// environment).
#[allow(dead_code)]
pub(crate) fn config_head(issuer: &str, keys: &Path) -> String {
    let k = keys.display();
    format!(
        "issuer = \"{issuer}\"\n[server]\ntls_certificate = \"{k}/server.crt\"\ntls_private_key = \"{k}/server.key\"\n[keys]\ndir = \"{k}\"\n"
    )
}

/// The time from spawning the server with `config` (on ports of its own,
/// with an empty revocation list) to its first served request.
#[allow(dead_code)]
pub(crate) fn time_start(binary: &Path, config: &Path, run: &Path) -> Duration {
    let _ = std::fs::remove_dir_all(run.join("data"));
    let port = free_port();
    let started = Instant::now();
    let mut trial = Killed(
        Command::new(binary)
            .args(["serve", "--config"])
            .arg(config)
            .env("CERTBOUND_LOG", "info")
            .env(
                "CERTBOUND_SERVER__HTTPS",
                format!("127.0.0.1:{}", free_port()),
            )
            .env("CERTBOUND_SERVER__HTTP", format!("127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_ready(&addr, started, &mut trial.0)
}

/// A child process that is killed (and reaped) when dropped.
#[allow(dead_code)]
pub(crate) struct Killed(pub(crate) Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
