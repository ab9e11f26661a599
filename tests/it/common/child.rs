//! The real `certbound` binary as a child process.

use std::net::SocketAddr;
use std::sync::Arc;

use super::{Api, Setup};

/// `certbound serve` as a child process, so it can be killed and restarted.
/// When the tests run as root, it runs as `nobody` (uid 65534) so that file
/// permissions apply to it.
pub struct ChildServer {
    api: Api,
    /// The admin listener (`server.admin`), when configured.
    pub admin: Option<SocketAddr>,
    child: std::process::Child,
    log: Arc<std::sync::Mutex<String>>,
    startup: String,
}

impl std::ops::Deref for ChildServer {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether this process runs as root (a file it creates is owned by uid 0).
pub fn running_as_root(dir: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let probe = dir.join(".uid-probe");
    std::fs::write(&probe, "").unwrap();
    let root = std::fs::metadata(&probe).unwrap().uid() == 0;
    std::fs::remove_file(probe).unwrap();
    root
}

const NOBODY: u32 = 65534;

/// Files an operator command (run as root by the tests) wrote under the
/// setup's directory, handed to the server's user as an operator would.
pub fn hand_to_server(dir: &std::path::Path) {
    if running_as_root(dir) {
        chown_all(dir, &dir.join("certbound"));
    }
}

/// Hands `path` and everything under it to nobody, except `skip` (the
/// linked binary, whose inode is shared with the build directory).
fn chown_all(path: &std::path::Path, skip: &std::path::Path) {
    if path == skip {
        return;
    }
    std::os::unix::fs::lchown(path, Some(NOBODY), Some(NOBODY)).unwrap();
    if path.is_dir() && !path.is_symlink() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_all(&entry.unwrap().path(), skip);
        }
    }
}

impl ChildServer {
    /// Starts the server of `setup`; `Err(output)` if it exits instead of
    /// listening within 30 s.
    pub fn spawn(setup: &Setup) -> Result<Self, String> {
        Self::spawn_env(setup, &[])
    }

    /// As [`Self::spawn`], with `env` added to the server's environment.
    pub fn spawn_env(setup: &Setup, env: &[(&str, String)]) -> Result<Self, String> {
        use std::io::BufRead;
        use std::os::unix::process::CommandExt;
        let dir = setup.dir.path();
        let mut command = if running_as_root(dir) {
            // nobody may not reach the build directory: link the binary in.
            let bin = dir.join("certbound");
            if !bin.exists() && std::fs::hard_link(env!("CARGO_BIN_EXE_certbound"), &bin).is_err() {
                std::fs::copy(env!("CARGO_BIN_EXE_certbound"), &bin).unwrap();
            }
            chown_all(dir, &bin);
            let mut c = std::process::Command::new(&bin);
            c.uid(NOBODY).gid(NOBODY);
            c
        } else {
            std::process::Command::new(env!("CARGO_BIN_EXE_certbound"))
        };
        let mut child = command
            .arg("--config")
            .arg(&setup.config)
            .arg("serve")
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .env("CERTBOUND_LOG", "info")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut output = String::new();
        let (mut https, mut http, mut admin) = (None, None, None);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let line = strip_ansi(&line);
                    for (kind, slot) in [
                        ("listening (https", &mut https),
                        ("listening (plain http", &mut http),
                        ("listening (admin", &mut admin),
                    ] {
                        if line.contains(kind) {
                            *slot = listen_addr(&line);
                        }
                    }
                    output.push_str(&line);
                    output.push('\n');
                    if !line.contains(" started") && !line.contains("\"started\"") {
                        continue;
                    }
                    let Some(https) = https else {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(output);
                    };
                    // Keep draining output so the child never blocks, and
                    // keep it for the test to read.
                    let log = Arc::new(std::sync::Mutex::new(String::new()));
                    let kept = log.clone();
                    std::thread::spawn(move || {
                        while let Ok(line) = rx.recv() {
                            let mut log = kept.lock().unwrap_or_else(|e| e.into_inner());
                            log.push_str(&strip_ansi(&line));
                            log.push('\n');
                        }
                    });
                    return Ok(Self {
                        api: Api {
                            https,
                            http,
                            ca_pem: setup.pki.ca_pem.clone(),
                            base: String::new(),
                        },
                        admin,
                        child,
                        log,
                        startup: output,
                    });
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(output);
                }
            }
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server logged before it listened.
    pub fn startup_log(&self) -> &str {
        &self.startup
    }

    /// What the server has logged since it started listening.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits up to 20 s for a log line containing `text`, seen after
    /// `skip` bytes of log; the log's length then.
    pub async fn wait_for_log(&self, text: &str, skip: usize) -> usize {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let log = self.log();
            if log.get(skip..).is_some_and(|l| l.contains(text)) {
                return log.len();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no {text:?} in the log:\n{log}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `addr` field of a log line, text (`addr=…`) or JSON.
fn listen_addr(line: &str) -> Option<SocketAddr> {
    if line.starts_with('{') {
        let json: serde_json::Value = serde_json::from_str(line).ok()?;
        return json["addr"].as_str()?.parse().ok();
    }
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .and_then(|a| a.parse().ok())
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Runs the `certbound` binary with `args` in `dir` (no
/// `CERTBOUND_CONFIG`): (success, stdout, stderr).
pub fn run_certbound(args: &[&str], dir: Option<&std::path::Path>) -> (bool, String, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_certbound"));
    command.args(args).env_remove("CERTBOUND_CONFIG");
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let out = command.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The lines of a child's output as they come, read by a thread of their
/// own so the child never blocks on a full pipe.
pub fn lines(stream: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stream)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}
