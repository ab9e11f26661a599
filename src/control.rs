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

/// Reloads on every SIGHUP until the process ends.
pub async fn reload_on_hangup(state: Arc<AppState>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; use `certbound reload`");
            return;
        };
        while hangups.recv().await.is_some() {
            let state = state.clone();
            let _ = tokio::task::spawn_blocking(move || reload(&state)).await;
        }
    }
    #[cfg(not(unix))]
    let _ = state;
}

/// Looks at `keys.dir` every `keys.poll_interval` seconds and swaps in
/// keys added or retired there, so that a key made by `certbound keys
/// generate` is published without a reload, and every replica sharing the
/// directory starts signing with it at its activation time.
pub async fn watch_keys(state: Arc<AppState>) {
    let mut last = crate::keys::files::stamp(&state.settings().config.keys.dir);
    let mut last_problem = None;
    loop {
        let settings = state.settings();
        let interval = std::time::Duration::from_secs(settings.config.keys.poll_interval.max(1));
        let dir = settings.config.keys.dir.clone();
        drop(settings);
        tokio::time::sleep(interval).await;
        let stamp = crate::keys::files::stamp(&dir);
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
                // Tried again at the next look; said once.
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

/// The bound control socket; its file is removed when it is dropped.
#[derive(Debug)]
pub struct Control {
    listener: tokio::net::UnixListener,
    path: PathBuf,
}

impl Control {
    /// Binds the control socket of `config`, replacing a stale file; fails
    /// if another server answers there.
    pub fn bind(config: &Config) -> Result<Self, String> {
        let path = socket_path(config);
        if path.exists() {
            if std::os::unix::net::UnixStream::connect(&path).is_ok() {
                return Err(format!(
                    "another certbound is running with this configuration (its control socket {} answers)",
                    path.display()
                ));
            }
            std::fs::remove_file(&path).map_err(|e| {
                format!(
                    "server.control_socket: cannot remove stale {}: {e}",
                    path.display()
                )
            })?;
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                format!(
                    "server.control_socket: cannot create {}: {e}",
                    dir.display()
                )
            })?;
        }
        let listener = tokio::net::UnixListener::bind(&path).map_err(|e| {
            format!(
                "server.control_socket: cannot listen on {}: {e}",
                path.display()
            )
        })?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("server.control_socket: {}: {e}", path.display()))?;
        Ok(Self { listener, path })
    }

    /// Answers `reload` requests until the process ends. One line in, the
    /// outcome out: `ok`, then `needs restart: <key>` lines, or
    /// `problem: <problem>` lines.
    pub async fn serve(self, state: Arc<AppState>) {
        loop {
            let Ok((stream, _)) = self.listener.accept().await else {
                continue;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut line = String::new();
                let mut reader = tokio::io::BufReader::new(read.take_limited());
                let read = tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    reader.read_line(&mut line),
                )
                .await;
                let answer = match (read, line.trim()) {
                    (Ok(Ok(_)), "reload") => {
                        match tokio::task::spawn_blocking(move || reload(&state)).await {
                            Ok(outcome) => answer(&outcome),
                            Err(_) => "problem: the reload did not finish\n".to_string(),
                        }
                    }
                    _ => "problem: unknown command (send: reload)\n".to_string(),
                };
                let _ = write.write_all(answer.as_bytes()).await;
            });
        }
    }
}

trait TakeLimited: tokio::io::AsyncRead + Sized {
    /// At most one short command line is read.
    fn take_limited(self) -> tokio::io::Take<Self> {
        tokio::io::AsyncReadExt::take(self, 256)
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
            .0
            .iter()
            .map(|p| format!("problem: {p}\n"))
            .collect(),
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `certbound reload`: asks the server of `config` to reload; the lines it
/// answered, or why it could not be asked. `Err` also when the reload
/// failed.
pub fn request_reload(config: &Config) -> Result<Vec<String>, String> {
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
        .write_all(b"reload\n")
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
