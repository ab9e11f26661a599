//! Reloading a running server: `kill -HUP <pid>` (what `systemctl reload`
//! sends) or `certbound reload`, which asks over the control socket and
//! prints the outcome (so a broken configuration is reported to whoever
//! reloaded, with exit status 1, not only to the log).
//!
//! The control socket is a Unix socket, mode 0600, at `server.control_socket`
//! (default: `certbound.sock` beside the revocation list). Only one server
//! may use it: a second one started with the same configuration refuses to
//! start while the first answers there.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::config::{Config, Problems};
use crate::{AppState, Reloaded};

/// Where the control socket of `config` is.
pub fn socket_path(config: &Config) -> PathBuf {
    match &config.server.control_socket {
        Some(path) => path.clone(),
        None => config
            .revocation
            .file
            .parent()
            .unwrap_or(Path::new("."))
            .join("certbound.sock"),
    }
}

/// Reloads and logs the outcome in one line.
pub fn reload(state: &AppState) -> Result<Reloaded, Problems> {
    let outcome = state.reload();
    crate::metrics::reload(outcome.is_ok());
    match &outcome {
        Ok(done) if done.needs_restart.is_empty() => {
            tracing::info!("configuration reloaded");
        }
        Ok(done) => tracing::warn!(
            needs_restart = %done.needs_restart.join(", "),
            "configuration reloaded; these settings keep their running value until a restart"
        ),
        Err(problems) => tracing::error!(
            problems = problems.0.len(),
            "configuration not reloaded, the running one stays: {problems}"
        ),
    }
    outcome
}

/// SIGHUP, caught from now on: taken first thing at start, so that a
/// `systemctl reload` right after start never ends the process (the
/// default action of SIGHUP).
pub fn hangups() -> Option<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; use `certbound reload`");
            None
        }
    }
}

/// Reloads on every SIGHUP until the process ends (one at a time: signals
/// that arrive during a reload are merged).
pub async fn reload_on_hangup(state: Arc<AppState>, hangups: Option<tokio::signal::unix::Signal>) {
    let Some(mut hangups) = hangups else { return };
    while hangups.recv().await.is_some() {
        let state = state.clone();
        let _ = tokio::task::spawn_blocking(move || reload(&state)).await;
    }
}

/// Looks at `keys.dir` every `keys.poll_interval` seconds and swaps in
/// keys added or retired there, so that a key made by `certbound keys
/// generate` is published without a reload, and every replica sharing the
/// directory starts signing with it at its activation time.
pub async fn watch_keys(state: Arc<AppState>) {
    // Empty: the first look compares the keys themselves, so a key added
    // while the server started is not missed.
    let mut last = Vec::new();
    let mut last_problem = None;
    loop {
        let settings = state.settings();
        let interval = std::time::Duration::from_secs(settings.config.keys.poll_interval.max(1));
        let dirs = settings.key_dirs();
        drop(settings);
        tokio::time::sleep(interval).await;
        let stamp: Vec<_> = dirs
            .iter()
            .flat_map(|d| crate::keys::files::stamp(d))
            .collect();
        if stamp == last {
            continue;
        }
        let refreshed = {
            let state = state.clone();
            tokio::task::spawn_blocking(move || state.refresh_keys()).await
        };
        match refreshed {
            Ok(Ok(changed)) => {
                last = stamp;
                last_problem = None;
                state.set_keys_stale(false);
                if changed {
                    let settings = state.settings();
                    tracing::info!(
                        signing_keys = settings.keys.all().len(),
                        sealing_keys = settings.sealer.fingerprint().len(),
                        "keys changed in keys.dir: now published"
                    );
                }
            }
            Ok(Err(problems)) => {
                // Tried again at the next look; said once. Meanwhile a
                // token of an unknown key is answered 503.
                state.set_keys_stale(true);
                let text = problems.to_string();
                if last_problem.as_ref() != Some(&text) {
                    tracing::error!("keys in keys.dir not taken, the running keys stay: {text}");
                    last_problem = Some(text);
                }
            }
            Err(_) => tracing::error!("looking at keys.dir did not finish"),
        }
    }
}

/// Control connections served at once; more are closed at once.
const MAX_CONTROL_CONNECTIONS: usize = 4;

/// The bound control socket; its file is removed when it is dropped, if
/// it is still ours.
#[derive(Debug)]
pub struct Control {
    listener: tokio::net::UnixListener,
    path: PathBuf,
    id: (u64, u64),
}

impl Control {
    /// Binds the control socket of `config`. A socket left by a server
    /// that is gone (connection refused) is replaced; anything else at the
    /// path (another server answering, a file that is not a socket, an
    /// error) is a reason not to start.
    pub fn bind(config: &Config) -> Result<Self, String> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
        let path = socket_path(config);
        let name = path.display();
        let problem = |what: String| format!("server.control_socket: {what}");
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if !meta.file_type().is_socket() => {
                return Err(problem(format!("{name} exists and is not a socket")));
            }
            Ok(_) => match std::os::unix::net::UnixStream::connect(&path) {
                Ok(_) => {
                    return Err(format!(
                        "another certbound is running with this configuration (its control socket {name} answers)"
                    ));
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    std::fs::remove_file(&path)
                        .map_err(|e| problem(format!("cannot remove stale {name}: {e}")))?;
                }
                Err(e) => return Err(problem(format!("{name}: {e}"))),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(problem(format!("{name}: {e}"))),
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| problem(format!("cannot create {}: {e}", dir.display())))?;
        }
        // Bound under a temporary name, made private, then moved into
        // place: at its path the socket is never open to others.
        let temporary = path.with_file_name(format!(
            ".{}.{}",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("certbound.sock"),
            std::process::id()
        ));
        let _ = std::fs::remove_file(&temporary);
        let listener = tokio::net::UnixListener::bind(&temporary)
            .map_err(|e| problem(format!("cannot listen on {name}: {e}")))?;
        std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))
            .and_then(|()| std::fs::rename(&temporary, &path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&temporary);
                problem(format!("{name}: {e}"))
            })?;
        let meta = std::fs::symlink_metadata(&path).map_err(|e| problem(format!("{name}: {e}")))?;
        Ok(Self {
            listener,
            path,
            id: (meta.dev(), meta.ino()),
        })
    }

    /// Answers `reload` requests until the process ends. One line in, the
    /// outcome out: `ok`, then `needs restart: <key>` lines, or
    /// `problem: <problem>` lines.
    pub async fn serve(self, state: Arc<AppState>) {
        let room = Arc::new(tokio::sync::Semaphore::new(MAX_CONTROL_CONNECTIONS));
        loop {
            let stream = match self.listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "control socket accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(place) = room.clone().try_acquire_owned() else {
                continue;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let _place = place;
                let (read, mut write) = stream.into_split();
                let mut line = String::new();
                let mut reader = tokio::io::BufReader::new(read.take_limited());
                let read = tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    reader.read_line(&mut line),
                )
                .await;
                let command = line.trim_end_matches(['\r', '\n']);
                let answer = match (read, command) {
                    (Ok(Ok(_)), "reload") => {
                        match tokio::task::spawn_blocking(move || reload(&state)).await {
                            Ok(outcome) => answer(&outcome),
                            Err(_) => "problem: the reload did not finish\n".to_string(),
                        }
                    }
                    (Ok(Ok(_)), c) if c.starts_with("revoke ") => revoke(&state, c).await,
                    _ => "problem: unknown command (send: reload, or revoke <client|user|jti> <tenant|-> <name>)\n"
                        .to_string(),
                };
                let _ = write.write_all(answer.as_bytes()).await;
            });
        }
    }
}

trait TakeLimited: tokio::io::AsyncRead + Sized {
    /// At most one short command line is read.
    fn take_limited(self) -> tokio::io::Take<Self> {
        tokio::io::AsyncReadExt::take(self, 1024)
    }
}

/// `revoke <client|user|jti> <tenant domain, or - for the default> <name>`:
/// `ok` and what was revoked once it is durable, or `problem: …`.
async fn revoke(state: &AppState, command: &str) -> String {
    let mut parts = command.splitn(4, ' ').skip(1);
    let (Some(kind), Some(tenant), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        return "problem: send revoke <client|user|jti> <tenant|-> <name>\n".into();
    };
    let Some(target) = crate::revoke_all::Target::parse(kind, name) else {
        return format!("problem: {kind:?} is not client, user or jti\n");
    };
    let settings = state.settings();
    let tenant = (tenant != "-").then_some(tenant);
    let done = match crate::revoke_all::tenant(&settings, tenant) {
        Ok(settings) => {
            crate::revoke_all::revoke(state, settings, &target, crate::keys::unix_now()).await
        }
        Err(refused) => Err(refused),
    };
    match done {
        Ok(done) => format!("ok\n{}\n", done.summary),
        Err(refused) => format!("problem: {refused}\n"),
    }
}

impl<T: tokio::io::AsyncRead> TakeLimited for T {}

fn answer(outcome: &Result<Reloaded, Problems>) -> String {
    match outcome {
        Ok(done) => {
            let mut out = String::from("ok\n");
            for key in &done.needs_restart {
                out.push_str(&format!("needs restart: {key}\n"));
            }
            out
        }
        Err(problems) => problems
            .lines()
            .map(|p| format!("problem: {p}\n"))
            .collect(),
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        use std::os::unix::fs::MetadataExt;
        let ours =
            std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.id);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// `certbound reload`: asks the server of `config` to reload; the lines it
/// answered, or why it could not be asked. `Err` also when the reload
/// failed.
pub fn request_reload(config: &Config) -> Result<Vec<String>, String> {
    request(config, "reload")
}

/// Sends `command` to the server of `config`; the lines it answered after
/// `ok`, or the problems it answered (or why it could not be asked).
pub fn request(config: &Config, command: &str) -> Result<Vec<String>, String> {
    let path = socket_path(config);
    let mut stream = std::os::unix::net::UnixStream::connect(&path).map_err(|e| {
        format!(
            "no running server answers at {} ({e}); is it started with this configuration?",
            path.display()
        )
    })?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(format!("{command}\n").as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let lines: Vec<String> = BufReader::new(stream)
        .lines()
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if lines.first().map(String::as_str) == Some("ok") {
        Ok(lines)
    } else if lines.is_empty() {
        Err("the server closed the control socket without answering".into())
    } else {
        Err(lines.join("\n"))
    }
}
