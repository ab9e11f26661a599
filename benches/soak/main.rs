//! `just soak [--minutes N]` (default 10): the release server under a
//! steady mixed load at about 70 % of the maximum this machine sustains.
//!
//! The mix: tokens over mutual TLS and via the proxy header, cold and warm
//! introspection, revocations, refresh rotation, and authorization-code
//! logins (login page, password, consent, code redemption) at a low rate.
//! The maximum is measured first (8 s, unthrottled); then the soak runs at
//! 70 % of it. Every 10 s it prints p99 per operation and the server's
//! RSS. It fails on any error, or when RSS grows after the warm-up (the
//! first fifth) by more than the state it was given to keep: the
//! revocation list holds every record in memory until a compaction drops
//! the expired ones (an entry lives its token's lifetime plus 300 s, and a
//! compaction runs once expired records are half of the list), so RSS may
//! grow by [`BYTES_PER_RECORD`] per record appended since the warm-up,
//! plus [`RSS_SLACK_MB`] for the allocator; anything beyond is a leak.
//!
//! Output: stdout, `target/bench/soak.json` and `target/bench/soak.md`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use certbound::cert::header::encode;
use serde_json::{Value, json};

mod ops;
mod report;

use ops::*;
use report::*;

const OPS: [&str; 7] = [
    "token mTLS",
    "token header",
    "introspect cold",
    "introspect warm",
    "revoke",
    "refresh",
    "code login",
];
/// Weights of the first six operations in the mix (logins have their own
/// low fixed rate).
const WEIGHTS: [u32; 6] = [30, 20, 15, 25, 5, 5];
/// Logins per second during the soak.
const LOGINS_PER_SECOND: f64 = 1.0;
/// RSS growth after the warm-up allowed besides the revocation list.
const RSS_SLACK_MB: f64 = 4.0;
/// What one revocation-list record costs in memory at most: a 16-byte
/// entry in a hash table at 7/8 load that doubles when full, and its
/// control byte (`src/revocation/table.rs`).
const BYTES_PER_RECORD: f64 = 40.0;
const WORKERS: usize = 32;
const SAMPLE: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Window {
    latencies_us: Vec<Vec<u32>>,
    errors: u64,
}

struct Shared {
    window: Mutex<Window>,
    total: AtomicU64,
    errors: AtomicU64,
    /// Records the server appended to its revocation list (each
    /// revocation, refresh rotation and code redemption writes one).
    records: AtomicU64,
    first_errors: Mutex<Vec<String>>,
    stop: AtomicBool,
}

impl Shared {
    fn record(&self, op: usize, started: Instant, ok: Result<(), String>) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let us = started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        let mut w = self.window.lock().unwrap();
        if w.latencies_us.is_empty() {
            w.latencies_us = vec![Vec::new(); OPS.len()];
        }
        w.latencies_us[op].push(us);
        // A revocation, a refresh (and the login a new chain starts with),
        // a login's code: one record each on the revocation list.
        if ok.is_ok() && op >= 4 {
            self.records.fetch_add(1, Ordering::Relaxed);
        }
        if let Err(e) = ok {
            w.errors += 1;
            self.errors.fetch_add(1, Ordering::Relaxed);
            let mut first = self.first_errors.lock().unwrap();
            if first.len() < 10 {
                first.push(format!("{}: {e}", OPS[op]));
            }
        }
    }
}

struct Setup {
    /// One login at a time, as users arrive (the server throttles parallel
    /// attempts for one user, by design).
    login: tokio::sync::Mutex<()>,
    /// The token the warm introspections ask about, renewed before it
    /// expires.
    warm: Mutex<String>,
    https: String,
    http: String,
    client: reqwest::Client,
    plain: reqwest::Client,
    header_value: String,
    rs_basic: String,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let minutes: f64 = args
        .iter()
        .position(|a| a == "--minutes")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(10.0);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = root.join("target/bench");
    let run = out.join("soak-run");
    let _ = std::fs::remove_dir_all(&run);
    std::fs::create_dir_all(&run).unwrap();
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "--bin", "certbound"])
        .current_dir(&root)
        .status()
        .unwrap();
    assert!(status.success(), "release build failed");
    let (mut server, setup) = start(&root.join("target/release/certbound"), &run);
    let pid = server.id();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let report = runtime.block_on(soak(Arc::new(setup), pid, minutes));
    let _ = server.kill();
    let _ = server.wait();
    std::fs::write(
        out.join("soak.json"),
        serde_json::to_string_pretty(&report).unwrap(),
    )
    .unwrap();
    let md = markdown(&report);
    std::fs::write(out.join("soak.md"), &md).unwrap();
    println!("{md}");
    if report["passed"].as_bool() == Some(true) {
        ExitCode::SUCCESS
    } else {
        eprintln!("soak failed: {}", report["verdict"]);
        ExitCode::FAILURE
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(binary: &Path, run: &Path) -> (std::process::Child, Setup) {
    let keys = run.join("keys");
    certbound::dev::generate(&keys, true).unwrap();
    certbound::keys::generate_key(&keys, certbound::keys::Alg::ES256, 1).unwrap();
    let (https, http) = (free_port(), free_port());
    let config = format!(
        r#"
issuer = "https://127.0.0.1:{https}"
[server]
https = "127.0.0.1:{https}"
http = "127.0.0.1:{http}"
tls_certificate = "{k}/server.crt"
tls_private_key = "{k}/server.key"
[tokens]
access_token_lifetime = 60
refresh_token_lifetime = 120
[keys]
dir = "{k}"
[revocation]
file = "{r}/data/revocations.log"
compaction_check_interval = 10
[login]
max_failures_per_address = 1000000
[mtls]
client_certificate_header = "x-client-cert"
trusted_proxies = ["127.0.0.1/32"]
trust_anchors = "{k}/ca.crt"
[[clients]]
client_id = "demo"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=demo-client,O=certbound dev"
grant_types = ["client_credentials", "authorization_code", "refresh_token"]
redirect_uris = ["https://app.test/cb"]
scope = "openid read write"
[[clients]]
client_id = "rs"
token_endpoint_auth_method = "client_secret_basic"
client_secret_sha256 = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
introspection = true
[[users]]
username = "soak"
password_hash = "{hash}"
"#,
        hash = certbound::users::hash_password("soak-password").unwrap(),
        k = keys.display(),
        r = run.display()
    );
    let path = run.join("certbound.toml");
    std::fs::write(&path, config).unwrap();
    let server = Command::new(binary)
        .args(["serve", "--config"])
        .arg(&path)
        .env("CERTBOUND_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(run.join("server.log")).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", http)).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pem = |name: &str| std::fs::read(keys.join(name)).unwrap();
    let mut identity = pem("client.crt");
    identity.extend_from_slice(&pem("client.key"));
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem("ca.crt")).unwrap())
        .identity(reqwest::Identity::from_pem(&identity).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        // Below the server's idle timeout (60 s), as a client should be:
        // else a request may race the server closing an idle connection.
        .pool_idle_timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let der =
        certbound::cert::header::decode(&String::from_utf8(pem("client.crt")).unwrap()).unwrap();
    let setup = Setup {
        login: tokio::sync::Mutex::new(()),
        warm: Mutex::new(String::new()),
        https: format!("https://127.0.0.1:{https}"),
        http: format!("http://127.0.0.1:{http}"),
        client,
        plain: reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
        header_value: encode::url_encoded_pem(&der),
        rs_basic: "Basic cnM6c2VjcmV0".into(),
    };
    (server, setup)
}

/// Runs the mix with `WORKERS` workers, each paced to `per_worker` ops/s
/// (unpaced when `None`), until `shared.stop`.
async fn drive(s: Arc<Setup>, shared: Arc<Shared>, per_worker: Option<f64>, logins: bool) {
    *s.warm.lock().unwrap() = token_mtls(&s).await.expect("a first token");
    let fresh = Arc::new(Mutex::new(std::collections::VecDeque::new()));
    let mut tasks = Vec::new();
    let weights: u32 = WEIGHTS.iter().sum();
    for w in 0..WORKERS {
        let (s, shared, fresh) = (s.clone(), shared.clone(), fresh.clone());
        tasks.push(tokio::spawn(async move {
            let mut chain = None;
            let mut n: u32 = w as u32 * 7;
            let start = Instant::now();
            let mut done = 0u64;
            while !shared.stop.load(Ordering::Relaxed) {
                n = n.wrapping_add(1);
                let mut pick = n.wrapping_mul(2_654_435_761) % weights;
                let op = WEIGHTS
                    .iter()
                    .position(|&wt| {
                        if pick < wt {
                            true
                        } else {
                            pick -= wt;
                            false
                        }
                    })
                    .unwrap_or(0);
                let t = Instant::now();
                let result = if op == 5 {
                    rotate(&s, &mut chain).await
                } else {
                    operation(&s, op, &fresh).await
                };
                shared.record(op, t, result);
                done += 1;
                if let Some(rate) = per_worker {
                    let due = start + Duration::from_secs_f64(done as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
            }
        }));
    }
    {
        // Renew the warm token every 20 s, well before its 60 s lifetime
        // ends (the server's cache keeps the newest one warm).
        let (s, shared) = (s.clone(), shared.clone());
        tasks.push(tokio::spawn(async move {
            let mut renewed = Instant::now();
            while !shared.stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if renewed.elapsed() >= Duration::from_secs(20)
                    && let Ok(t) = token_mtls(&s).await
                {
                    *s.warm.lock().unwrap() = t;
                    renewed = Instant::now();
                }
            }
        }));
    }
    if logins {
        let (s, shared) = (s.clone(), shared.clone());
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / LOGINS_PER_SECOND));
            while !shared.stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let t = Instant::now();
                let r = code_login(&s).await.map(|_| ());
                shared.record(6, t, r);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

fn shared() -> Arc<Shared> {
    Arc::new(Shared {
        window: Mutex::new(Window::default()),
        total: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        records: AtomicU64::new(0),
        first_errors: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
    })
}

async fn soak(s: Arc<Setup>, pid: u32, minutes: f64) -> Value {
    // 1. The maximum of this mix on this machine.
    let calib = shared();
    let driver = tokio::spawn(drive(s.clone(), calib.clone(), None, false));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = calib.total.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let max = (calib.total.load(Ordering::Relaxed) - before) as f64 / 6.0;
    calib.stop.store(true, Ordering::Relaxed);
    let _ = driver.await;
    let target = 0.7 * max;
    println!("maximum of the mix: {max:.0} ops/s; soaking at {target:.0} ops/s for {minutes} min");
    // 2. The soak.
    let run = shared();
    let driver = tokio::spawn(drive(s, run.clone(), Some(target / WORKERS as f64), true));
    let end = Instant::now() + Duration::from_secs_f64(minutes * 60.0);
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut last_total = 0;
    while Instant::now() < end {
        tokio::time::sleep(SAMPLE.min(end.saturating_duration_since(Instant::now()))).await;
        let mut w = std::mem::take(&mut *run.window.lock().unwrap());
        let total = run.total.load(Ordering::Relaxed);
        let secs = started.elapsed().as_secs_f64();
        let rate = (total - last_total) as f64 / SAMPLE.as_secs_f64();
        last_total = total;
        let p99s: Vec<Value> = (0..OPS.len())
            .map(|op| {
                w.latencies_us
                    .get_mut(op)
                    .and_then(|v| p99(v))
                    .map_or(Value::Null, |p| json!((p * 100.0).round() / 100.0))
            })
            .collect();
        let rss = rss_mb(pid);
        println!(
            "t={secs:>5.0}s  {rate:>6.0} ops/s  errors {:>3}  RSS {rss:>5.1} MB  p99 ms {}",
            w.errors,
            p99s.iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        );
        samples.push(json!({"records": run.records.load(Ordering::Relaxed), "t": secs.round(), "ops_per_s": rate.round(), "errors": w.errors, "rss_mb": (rss * 10.0).round() / 10.0, "p99_ms": p99s}));
    }
    run.stop.store(true, Ordering::Relaxed);
    let _ = driver.await;
    let errors = run.errors.load(Ordering::Relaxed);
    let rss: Vec<f64> = samples
        .iter()
        .map(|s| s["rss_mb"].as_f64().unwrap_or(0.0))
        .collect();
    let warm = (rss.len() / 5).max(1).min(rss.len().saturating_sub(1));
    let records_since_warmup = match (samples.get(warm), samples.last()) {
        (Some(a), Some(b)) => {
            b["records"].as_f64().unwrap_or(0.0) - a["records"].as_f64().unwrap_or(0.0)
        }
        _ => 0.0,
    };
    let bound = RSS_SLACK_MB + records_since_warmup * BYTES_PER_RECORD / 1e6;
    let after_warmup = &rss[warm..];
    let growth = match (
        after_warmup.first(),
        after_warmup.iter().cloned().reduce(f64::max),
    ) {
        (Some(first), Some(peak)) => peak - first,
        _ => 0.0,
    };
    let mut verdict = Vec::new();
    if errors > 0 {
        verdict.push(format!(
            "{errors} errors: {:?}",
            run.first_errors.lock().unwrap()
        ));
    }
    if growth > bound {
        verdict.push(format!(
            "RSS grew {growth:.1} MB after the warm-up (bound {bound} MB)"
        ));
    }
    json!({
        "minutes": minutes,
        "max_ops_per_s": max.round(),
        "target_ops_per_s": target.round(),
        "requests": run.total.load(Ordering::Relaxed),
        "errors": errors,
        "rss_growth_after_warmup_mb": (growth * 10.0).round() / 10.0,
        "rss_bound_mb": (bound * 10.0).round() / 10.0,
        "records_since_warmup": records_since_warmup,
        "warmup_s": samples.get(warm).map_or(Value::Null, |s| s["t"].clone()),
        "samples": samples,
        "passed": verdict.is_empty(),
        "verdict": if verdict.is_empty() { "passed".to_string() } else { verdict.join("; ") },
    })
}
