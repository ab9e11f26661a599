//! `cargo xtask`: certbound's test runner. It installs what the tests need
//! when it is missing (Debian's chromium, chromium-driver, nginx, redis-server, systemd (for
//! `systemd-analyze verify`) and valgrind (for CI's instruction counts), schemathesis
//! in a virtualenv, cargo-fuzz), then runs them; nothing is skipped: a
//! missing tool that cannot be installed is a failure.
//!
//! - `cargo xtask test [--fuzz-seconds N] [--soak-minutes N]`: the whole
//!   suite: `cargo test`, schemathesis against the OpenAPI document, every
//!   fuzz target for N seconds (default 30), the soak for N minutes
//!   (default 1).
//! - `cargo xtask deps`: only install.
//! - `cargo xtask schemathesis [--max-examples N]`
//! - `cargo xtask fuzz [--seconds N] [TARGET …]`

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The schemathesis release the suite is checked with.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";
/// The cargo-fuzz release.
const CARGO_FUZZ: &str = "0.13.2";
/// Every fuzz target in `fuzz/fuzz_targets/`.
const FUZZ_TARGETS: &[&str] = &[
    "cert_header",
    "form_and_authorization",
    "jws",
    "subject_dn",
    "revocation_record",
    "sealed",
];

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("deps") => deps(),
        Some("schemathesis") => {
            number(&args[1..], "--max-examples").and_then(|n| schemathesis(n.unwrap_or(300) as u32))
        }
        Some("fuzz") => fuzz_command(&args[1..]),
        _ => Err(
            "usage: cargo xtask test [--fuzz-seconds N] [--soak-minutes N] | deps | \
             schemathesis [--max-examples N] | fuzz [--seconds N] [TARGET ...]"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The value after `flag`, as a number.
fn number(args: &[String], flag: &str) -> Result<Option<u64>> {
    match args.iter().position(|a| a == flag) {
        None => Ok(None),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .map(Some)
            .ok_or_else(|| format!("{flag} takes a number")),
    }
}

fn test(args: &[String]) -> Result {
    let fuzz_seconds = number(args, "--fuzz-seconds")?.unwrap_or(30);
    let soak_minutes = number(args, "--soak-minutes")?.unwrap_or(1);
    let start = Instant::now();
    deps()?;
    step("cargo test (unit and integration tests, headless Chromium included)");
    // --all-features: certbound-verify's axum and poem integrations, and
    // its examples, which the resource-server tests run.
    run(cargo().args(["test", "--locked", "--workspace", "--all-features"]))?;
    verify_crate_dependencies()?;
    schemathesis(300)?;
    fuzz(FUZZ_TARGETS, fuzz_seconds)?;
    step(&format!("soak, {soak_minutes} min (just soak)"));
    run(cargo().args([
        "bench",
        "--locked",
        "--bench",
        "soak",
        "--",
        "--minutes",
        &soak_minutes.to_string(),
    ]))?;
    println!(
        "xtask: the whole suite passed in {:.0} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Crates of the server that a resource server must never pull in through
/// certbound-verify.
const SERVER_ONLY: &[&str] = &[
    "certbound",
    "argon2",
    "poem-openapi",
    "rcgen",
    "figment",
    "clap",
    "rpassword",
];

/// `cargo tree`: certbound-verify, every feature on, depends on none of
/// [`SERVER_ONLY`].
fn verify_crate_dependencies() -> Result {
    step("certbound-verify's dependencies (cargo tree): none of the server's own");
    let out = cargo()
        .args([
            "tree",
            "--locked",
            "-p",
            "certbound-verify",
            "-e",
            "normal",
            "--all-features",
            "--prefix",
            "none",
        ])
        .output()
        .map_err(|e| format!("cargo tree: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo tree: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let tree = String::from_utf8_lossy(&out.stdout);
    let crates: std::collections::BTreeSet<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let found: Vec<&&str> = SERVER_ONLY
        .iter()
        .filter(|c| crates.contains(**c))
        .collect();
    if !found.is_empty() {
        return Err(format!("certbound-verify depends on {found:?}"));
    }
    println!("{} crates, none of {SERVER_ONLY:?}", crates.len());
    // Each integration on its own, as an application depends on it (the
    // workspace build unifies features, and dev-dependencies would hide a
    // feature the integration needs but does not ask for).
    for features in ["", "axum", "poem", "rustls"] {
        step(&format!("certbound-verify alone, features [{features}]"));
        run(cargo().args([
            "check",
            "--locked",
            "--quiet",
            "-p",
            "certbound-verify",
            "--lib",
            "--no-default-features",
            "--features",
            features,
        ]))?;
    }
    Ok(())
}

fn step(what: &str) {
    println!("\n== {what}");
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn run(cmd: &mut Command) -> Result {
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed: {status}"))
    }
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs what the tests need and is missing.
fn deps() -> Result {
    step("test dependencies");
    let wanted = [
        ("/usr/bin/chromium", "chromium"),
        ("/usr/bin/chromedriver", "chromium-driver"),
        ("/usr/sbin/nginx", "nginx"),
        ("/usr/bin/redis-server", "redis-server"),
        ("/usr/bin/systemd-analyze", "systemd"),
        ("/usr/bin/curl", "curl"),
        ("/usr/bin/callgrind_control", "valgrind"), // CI's instruction counts
    ];
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|(path, _)| !Path::new(path).exists())
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        println!(
            "chromium, chromium-driver, nginx, redis-server, systemd-analyze, curl and valgrind: present"
        );
    } else {
        apt_install(&missing)?;
    }
    schemathesis_bin()?;
    cargo_fuzz()?;
    Ok(())
}

fn apt_install(packages: &[&str]) -> Result {
    println!("installing Debian packages: {}", packages.join(" "));
    let root_user = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let apt = |args: &[&str]| {
        let mut c = if root_user {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        };
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    run(apt(&["update", "-qq"]).stdout(Stdio::null()))?;
    let mut install = apt(&["install", "-y", "-qq"]);
    install.args(packages).stdout(Stdio::null());
    run(&mut install)
}

/// schemathesis in `target/xtask/venv`, installed there when missing.
fn schemathesis_bin() -> Result<PathBuf> {
    let venv = root().join("target/xtask/venv");
    let bin = venv.join("bin/schemathesis");
    if bin.exists() {
        println!("schemathesis: present");
        return Ok(bin);
    }
    println!("installing {SCHEMATHESIS} into {}", venv.display());
    let make_venv = || succeeds(Command::new("python3").arg("-m").arg("venv").arg(&venv));
    if !make_venv() {
        apt_install(&["python3-venv"])?;
        if !make_venv() {
            return Err("python3 -m venv failed".into());
        }
    }
    run(Command::new(venv.join("bin/pip")).args(["install", "--quiet", SCHEMATHESIS]))?;
    Ok(bin)
}

/// `cargo fuzz` with a toolchain that runs it: the machine's nightly, or
/// the stable one with `RUSTC_BOOTSTRAP=1` when there is no nightly.
fn cargo_fuzz() -> Result<Command> {
    if !succeeds(cargo().args(["fuzz", "--version"])) {
        println!("installing cargo-fuzz {CARGO_FUZZ}");
        run(cargo().args(["install", "--locked", "cargo-fuzz", "--version", CARGO_FUZZ]))?;
    }
    let nightly = Command::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("nightly"));
    // The rustup proxy (not `$CARGO`, which names one toolchain's cargo)
    // understands `+nightly`.
    let mut c = Command::new("cargo");
    c.current_dir(root())
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .env_remove("RUSTC");
    if nightly {
        c.arg("+nightly");
    } else {
        c.env("RUSTC_BOOTSTRAP", "1");
    }
    c.arg("fuzz");
    Ok(c)
}

fn fuzz_command(args: &[String]) -> Result {
    let seconds = number(args, "--seconds")?.unwrap_or(60);
    let mut targets: Vec<&str> = Vec::new();
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
        } else if a == "--seconds" {
            skip = true;
        } else {
            targets.push(a);
        }
    }
    if targets.is_empty() {
        targets = FUZZ_TARGETS.to_vec();
    }
    fuzz(&targets, seconds)
}

/// Runs each target for `seconds` from the committed seeds (new inputs go
/// to `fuzz/corpus/`, not committed). A crash fails the run and leaves its
/// input in `fuzz/artifacts/`.
fn fuzz(targets: &[&str], seconds: u64) -> Result {
    step(&format!("fuzzing, {seconds} s per target (just fuzz)"));
    run(cargo_fuzz()?.arg("build"))?;
    let mut summary = Vec::new();
    for target in targets {
        let corpus = root().join("fuzz/corpus").join(target);
        std::fs::create_dir_all(&corpus).map_err(|e| e.to_string())?;
        let seeds = root().join("fuzz/seeds").join(target);
        let mut cmd = cargo_fuzz()?;
        cmd.args(["run", target])
            .arg(&corpus)
            .arg(&seeds)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg("-rss_limit_mb=2048")
            .arg("-print_final_stats=1")
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start fuzzing: {e}"))?;
        let mut runs = None;
        if let Some(err) = child.stderr.take() {
            for line in BufReader::new(err)
                .lines()
                .map_while(std::result::Result::ok)
            {
                if let Some(n) = line.strip_prefix("stat::number_of_executed_units:") {
                    runs = n.trim().parse::<u64>().ok();
                }
                if line.contains("ERROR") || line.contains("panicked") || line.starts_with("==") {
                    eprintln!("{line}");
                }
            }
        }
        let status = child.wait().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!(
                "fuzz target {target} found a crash (input in fuzz/artifacts/{target}/)"
            ));
        }
        println!("{target}: {} executions in {seconds} s", runs.unwrap_or(0));
        summary.push((target.to_string(), runs.unwrap_or(0)));
    }
    println!("| target | executions | seconds |\n|---|---:|---:|");
    for (target, runs) in summary {
        println!("| {target} | {runs} | {seconds} |");
    }
    Ok(())
}

/// A release of the server, configured for schemathesis: plain HTTP on a
/// free port, a Basic client that may introspect.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(dir: &Path) -> Result<Server> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let config = dir.join("certbound.toml");
    // Client `rs`, secret "secret" (its SHA-256 below).
    std::fs::write(
        &config,
        format!(
            r#"issuer = "https://certbound.test"
[server]
https = ""
http = "127.0.0.1:0"
[keys]
dir = "{dir}/keys"
[revocation]
file = "{dir}/data/revocations.log"
[[clients]]
client_id = "rs"
token_endpoint_auth_method = "client_secret_basic"
client_secret_sha256 = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
scope = "read write introspect"
introspection = true
"#,
            dir = dir.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    run(cargo().args(["build", "--locked", "--bin", "certbound"]))?;
    let bin = root().join("target/debug/certbound");
    run(Command::new(&bin)
        .arg("--config")
        .arg(&config)
        .args(["keys", "generate"])
        .stdout(Stdio::null()))?;
    let mut child = Command::new(&bin)
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("NO_COLOR", "1")
        .env("CERTBOUND_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start certbound: {e}"))?;
    let (tx, rx) = mpsc::channel();
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream)
                .lines()
                .map_while(std::result::Result::ok)
            {
                // Once the address is found nobody listens; keep reading so
                // the server never blocks on a full pipe.
                let _ = tx.send(line);
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if line.contains("listening (plain http")
            && let Some(addr) = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("addr="))
        {
            return Ok(Server {
                child,
                url: format!("http://{addr}"),
            });
        }
    }
    let _ = child.kill();
    Err("certbound did not start listening within 30 s".into())
}

/// schemathesis against the committed OpenAPI document: every check but
/// "valid data is accepted" (most generated requests cannot authenticate),
/// `max_examples` cases per operation and phase.
fn schemathesis(max_examples: u32) -> Result {
    step(&format!(
        "schemathesis against openapi/certbound.json ({max_examples} examples per operation)"
    ));
    let bin = schemathesis_bin()?;
    let server = start_server(&root().join("target/xtask/schemathesis"))?;
    run(Command::new(bin)
        .arg("run")
        .arg(root().join("openapi/certbound.json"))
        .args(["--url", &server.url])
        .args(["--checks", "all"])
        .args(["--exclude-checks", "positive_data_acceptance"])
        .args(["--max-examples", &max_examples.to_string()])
        .args(["--auth", "rs:secret"])
        .args(["--workers", "2"])
        .args(["--warnings", "off"])
        .args(["--seed", "20261201"]))?;
    drop(server);
    Ok(())
}
