//! `just bench-instructions [--quick]`: instructions per request, a
//! figure that does not move with the machine's noise.
//!
//! The release server runs under `valgrind --tool=callgrind`; one client
//! sends each scenario's requests one at a time over one keep-alive
//! connection. Per scenario: a warm-up (connection set up, caches filled),
//! then `callgrind_control --zero`, the counted requests, and
//! `callgrind_control --dump`. Instructions per request are the dump's
//! total, less what the idle server executes in the same time (measured
//! once, over a second with no requests), divided by the count. Every
//! answer must be the expected one, or the run fails.
//!
//! Each scenario's dump is kept in `target/bench/instructions/` for
//! `callgrind_annotate` (the per-function profile).
//!
//! A full run writes the `bench-instructions` section of `BENCHMARKS.md`.
//! `--quick` (CI) counts fewer requests and compares with the committed
//! figures: it fails when a scenario grows more than 10 %, and prints the
//! change either way.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use certbound::cert::header::encode;

#[allow(dead_code)]
#[path = "../load/driver.rs"]
mod driver;
mod wire;

use driver::*;
use wire::{Connection, get, post};

const ISSUER: &str = "https://certbound.bench";
/// A scenario may grow this much over its committed figure.
const TOLERANCE: f64 = 0.10;
const SECTION: &str = "bench-instructions";

/// Builds the next request from the previous answer's body (empty before
/// the first).
type Next = Box<dyn FnMut(&[u8]) -> Vec<u8>>;

struct Scenario {
    /// Stable name, the key of the committed figure.
    key: &'static str,
    what: &'static str,
    tls: bool,
    next: Next,
}

/// The server under callgrind, steered with `callgrind_control`.
struct Callgrind {
    child: Killed,
    out: PathBuf,
    dumps: u32,
}

impl Callgrind {
    fn control(&self, flag: &str) {
        let status = Command::new("callgrind_control")
            .args([flag, &self.child.0.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "callgrind_control {flag} failed");
    }

    fn zero(&self) {
        self.control("--zero");
    }

    /// Dumps the counts since the last zero: (instructions, dump file).
    fn dump(&mut self) -> (u64, PathBuf) {
        self.control("--dump");
        self.dumps += 1;
        let file = PathBuf::from(format!("{}.{}", self.out.display(), self.dumps));
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            if let Some(total) = text
                .lines()
                .find_map(|l| l.strip_prefix("totals: "))
                .and_then(|n| n.trim().parse().ok())
            {
                return (total, file);
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no callgrind dump at {}",
                file.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn main() -> ExitCode {
    let quick = std::env::args().any(|a| a == "--quick");
    let (warmup, count) = if quick { (10, 100) } else { (20, 300) };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = root.join("target/bench/instructions");
    let (binary, keys) = prepare(root, &run);
    let (https, http) = (free_port(), free_port());
    std::fs::write(run.join("certbound.toml"), config(&keys)).unwrap();
    let out = run.join("callgrind.out");
    let started = Instant::now();
    let child = Command::new("valgrind")
        .args(["--tool=callgrind", "--dump-instr=no"])
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(&binary)
        .args(["serve", "--config"])
        .arg(run.join("certbound.toml"))
        .env("CERTBOUND_LOG", "info")
        .env("CERTBOUND_SERVER__HTTPS", format!("127.0.0.1:{https}"))
        .env("CERTBOUND_SERVER__HTTP", format!("127.0.0.1:{http}"))
        .stdout(std::fs::File::create(run.join("server.log")).unwrap())
        .stderr(std::fs::File::create(run.join("valgrind.log")).unwrap())
        .spawn()
        .expect("valgrind is needed: Debian's valgrind package (`cargo xtask test` installs it)");
    let mut child = child;
    let http: SocketAddr = format!("127.0.0.1:{http}").parse().unwrap();
    let https: SocketAddr = format!("127.0.0.1:{https}").parse().unwrap();
    wait_ready_within(&http, started, &mut child, Duration::from_secs(120));
    let mut server = Callgrind {
        child: Killed(child),
        out,
        dumps: 0,
    };

    let scenarios = scenarios(&keys, &http, warmup + count);
    // What the idle server executes per second (timers, the log writer).
    server.zero();
    let idle_started = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let (idle, _) = server.dump();
    let idle_per_sec = idle as f64 / idle_started.elapsed().as_secs_f64();

    let mut rows = Vec::new();
    for mut s in scenarios {
        let mut conn = if s.tls {
            Connection::tls(https, &keys)
        } else {
            Connection::plain(http)
        };
        let mut body = Vec::new();
        let mut send = |conn: &mut Connection, body: &mut Vec<u8>| {
            let (status, answer) = conn.exchange(&(s.next)(body));
            assert_eq!(
                status,
                200,
                "{}: {}",
                s.key,
                String::from_utf8_lossy(&answer)
            );
            *body = answer;
        };
        for _ in 0..warmup {
            send(&mut conn, &mut body);
        }
        server.zero();
        let timed = Instant::now();
        for _ in 0..count {
            send(&mut conn, &mut body);
        }
        let (total, file) = server.dump();
        let elapsed = timed.elapsed().as_secs_f64();
        let per_request = (total as f64 - idle_per_sec * elapsed) / count as f64;
        let kept = run.join(format!("{}.callgrind", s.key));
        std::fs::rename(&file, &kept).unwrap();
        eprintln!("{}: {per_request:.0} instructions per request", s.key);
        rows.push((s.key, s.what, s.tls, per_request.round() as u64));
    }
    drop(server);

    let committed =
        committed(&std::fs::read_to_string(root.join("BENCHMARKS.md")).unwrap_or_default());
    let mut grown = Vec::new();
    for (key, _, _, now) in &rows {
        match committed.iter().find(|(k, _)| k == key) {
            Some((_, before)) => {
                let change = *now as f64 / *before as f64 - 1.0;
                println!(
                    "{key}: {now} instructions, committed {before} ({:+.1} %)",
                    change * 100.0
                );
                if change > TOLERANCE {
                    grown.push(format!("{key} grew {:+.1} %", change * 100.0));
                }
            }
            None => println!("{key}: {now} instructions (no committed figure)"),
        }
    }
    let md = markdown(&rows, count, idle_per_sec);
    println!("\n{md}");
    println!(
        "per-function profiles: callgrind_annotate {}/<scenario>.callgrind",
        run.display()
    );
    if !quick {
        write_section(root, SECTION, &md);
    }
    if quick && !grown.is_empty() {
        eprintln!(
            "bench-instructions: more than {:.0} % over the committed figures: {}",
            TOLERANCE * 100.0,
            grown.join(", ")
        );
        return ExitCode::FAILURE;
    }
    println!("bench-instructions: passed");
    ExitCode::SUCCESS
}

/// The benchmark server: a self-signed client (`pinned`), a CA-issued one
/// (`pki`, subject DN), the introspecting `rs`, one user for the refresh
/// chain; the certificate header trusted from loopback.
fn config(keys: &Path) -> String {
    let k = keys.display();
    format!(
        r#"{head}
[revocation]
file = "{k}/../data/revocations.log"
[mtls]
client_certificate_header = "x-client-cert"
trusted_proxies = ["127.0.0.1/32"]
trust_anchors = "{k}/ca.crt"
{pinned}{PKI_CLIENT}{RS_CLIENT}
[[users]]
username = "bench"
password_hash = "{hash}"
"#,
        head = config_head(ISSUER, keys),
        pinned = pinned_client(keys),
        hash = certbound::users::hash_password("bench").unwrap(),
    )
}

/// Every scenario, each with enough distinct tokens for `n` requests.
fn scenarios(keys: &Path, http: &SocketAddr, n: usize) -> Vec<Scenario> {
    let pem = std::fs::read_to_string(keys.join("client.crt")).unwrap();
    let der = certbound::cert::header::decode(&pem).unwrap();
    let header = encode::url_encoded_pem(&der);
    let warm = mint_over_http(http, "", &header);
    let basic = "authorization: Basic cnM6c2VjcmV0\r\n";
    let token = "grant_type=client_credentials&client_id=";
    let cert_header = format!("x-client-cert: {header}\r\n");
    let mut cold = mint_access(keys, ISSUER, n, "pinned").into_iter();
    let mut revocable = mint_access(keys, ISSUER, n, "rs").into_iter();
    let chain = mint_refresh_tokens(keys, ISSUER, 1, &certbound::cert::thumbprint(&der));
    let mut refresh = chain.into_iter().next();
    let fixed = |request: Vec<u8>| -> Next { Box::new(move |_| request.clone()) };
    vec![
        Scenario {
            key: "jwks-http",
            what: "cheapest request (GET /oauth2/jwks), plain HTTP",
            tls: false,
            next: fixed(get("/oauth2/jwks")),
        },
        Scenario {
            key: "jwks-tls",
            what: "cheapest request (GET /oauth2/jwks), mutual TLS",
            tls: true,
            next: fixed(get("/oauth2/jwks")),
        },
        Scenario {
            key: "token-header",
            what: "token, self-signed client, certificate in the proxy header",
            tls: false,
            next: fixed(post(
                "/oauth2/token",
                &cert_header,
                &format!("{token}pinned"),
            )),
        },
        Scenario {
            key: "token-tls",
            what: "token, self-signed client, mutual TLS",
            tls: true,
            next: fixed(post("/oauth2/token", "", &format!("{token}pinned"))),
        },
        Scenario {
            key: "token-pki",
            what: "token, tls_client_auth client (chain + DN), mutual TLS",
            tls: true,
            next: fixed(post("/oauth2/token", "", &format!("{token}pki"))),
        },
        Scenario {
            key: "introspect-warm",
            what: "introspection, the same token, Basic caller",
            tls: false,
            next: fixed(post("/oauth2/introspect", basic, &format!("token={warm}"))),
        },
        Scenario {
            key: "introspect-cold",
            what: "introspection, a new token each time, Basic caller",
            tls: false,
            next: Box::new(move |_| {
                let t = cold.next().unwrap();
                post("/oauth2/introspect", basic, &format!("token={t}"))
            }),
        },
        Scenario {
            key: "revoke",
            what: "revocation, a new token each time (one durable record each)",
            tls: false,
            next: Box::new(move |_| {
                let t = revocable.next().unwrap();
                post("/oauth2/revoke", basic, &format!("token={t}"))
            }),
        },
        Scenario {
            key: "refresh",
            what: "refresh rotation over mutual TLS (one chain)",
            tls: true,
            next: Box::new(move |previous| {
                if !previous.is_empty() {
                    let answer: serde_json::Value = serde_json::from_slice(previous).unwrap();
                    refresh = answer["refresh_token"].as_str().map(String::from);
                }
                let t = refresh.take().expect("a refresh token");
                post(
                    "/oauth2/token",
                    "",
                    &format!("grant_type=refresh_token&client_id=pinned&refresh_token={t}"),
                )
            }),
        },
    ]
}

/// The committed figures: the `key | … | instructions` rows of the
/// section in `BENCHMARKS.md`.
fn committed(benchmarks: &str) -> Vec<(String, u64)> {
    let start = format!("<!-- {SECTION} -->");
    let Some(section) = benchmarks.split(&start).nth(1) else {
        return Vec::new();
    };
    let section = section
        .split(&format!("<!-- /{SECTION} -->"))
        .next()
        .unwrap_or("");
    section
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let key = cells.get(1)?.trim_matches('`');
            let n = cells.get(4)?.replace(',', "").parse().ok()?;
            Some((key.to_string(), n))
        })
        .collect()
}

fn markdown(rows: &[(&str, &str, bool, u64)], count: usize, idle_per_sec: f64) -> String {
    let cheapest = |tls: bool| {
        rows.iter()
            .find(|r| r.0 == if tls { "jwks-tls" } else { "jwks-http" })
            .map(|r| r.3)
            .unwrap_or(1)
    };
    let mut md = format!(
        "## Instructions per request (`just bench-instructions`)\n\n\
         The release server under `valgrind --tool=callgrind` (user-space instructions, all threads), \
         {count} requests per scenario one at a time over one keep-alive connection after a warm-up, \
         less the idle server's {idle_per_sec:.0} instructions/s. Repeatable to about ±1 % on one machine; \
         CI fails when a scenario grows more than {:.0} % over these figures.\n\n\
         | scenario | what | transport | instructions | ÷ cheapest request |\n|---|---|---|---:|---:|\n",
        TOLERANCE * 100.0
    );
    for (key, what, tls, n) in rows {
        md += &format!(
            "| `{key}` | {what} | {} | {} | {:.2} |\n",
            if *tls { "mutual TLS" } else { "plain HTTP" },
            thousands(*n),
            *n as f64 / cheapest(*tls) as f64
        );
    }
    md
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
