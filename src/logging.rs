//! The server's log (`[log]`, `CERTBOUND_LOG`): lines formatted by
//! `tracing-subscriber` (text or JSON) into a shared buffer that a writer
//! thread empties to stdout every [`FLUSH_INTERVAL`]. A request pays for
//! formatting its line and one uncontended lock; no write system call and
//! no thread wake-up. When the buffer holds [`MAX_BUFFER`] bytes the line's
//! writer flushes it itself (a log that cannot keep up slows requests down
//! rather than growing without bound or dropping lines).

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

use crate::config::{LogConfig, LogFormat};

/// How long a line may wait in the buffer.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// Bytes buffered at most before a writer flushes itself.
pub const MAX_BUFFER: usize = 1024 * 1024;

struct Shared {
    buffer: Mutex<Vec<u8>>,
    out: Mutex<std::fs::File>,
    stop: Mutex<bool>,
    stopped: Condvar,
}

impl Shared {
    /// Writes out what is buffered (one writer at a time, in order).
    fn flush(&self) {
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        let lines =
            std::mem::take(&mut *self.buffer.lock().unwrap_or_else(PoisonError::into_inner));
        if !lines.is_empty() {
            // Nowhere to report a failure to write the log.
            let _ = out.write_all(&lines);
        }
    }
}

/// Flushes the log when dropped (keep it for the life of the server).
pub struct Guard(Arc<Shared>);

impl Drop for Guard {
    fn drop(&mut self) {
        *self.0.stop.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.0.stopped.notify_all();
        self.0.flush();
    }
}

/// The `MakeWriter` for the subscriber.
#[derive(Clone)]
struct Buffered(Arc<Shared>);

/// One event's writer: the formatter writes its whole line at once.
pub struct Line<'a>(&'a Shared);

impl Write for Line<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let full = {
            let mut buffer = self.0.buffer.lock().unwrap_or_else(PoisonError::into_inner);
            buffer.extend_from_slice(bytes);
            buffer.len() >= MAX_BUFFER
        };
        if full {
            self.0.flush();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffered {
    type Writer = Line<'a>;
    fn make_writer(&'a self) -> Line<'a> {
        Line(&self.0)
    }
}

/// Installs the global subscriber: `log.format`, filtered by
/// `CERTBOUND_LOG` (default `info`; an invalid one is an error).
pub fn init(log: &LogConfig) -> Result<Guard, String> {
    let filter = match std::env::var("CERTBOUND_LOG") {
        Ok(v) => tracing_subscriber::EnvFilter::try_new(&v).map_err(|e| {
            format!("CERTBOUND_LOG={v:?} is not a valid filter ({e}); for example: info, warn, certbound=debug")
        })?,
        Err(std::env::VarError::NotPresent) => tracing_subscriber::EnvFilter::new("info"),
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err("CERTBOUND_LOG is not valid UTF-8".into());
        }
    };
    // Its own handle on fd 1: std's stdout would write at every newline.
    let stdout = std::os::fd::AsFd::as_fd(&std::io::stdout())
        .try_clone_to_owned()
        .map_err(|e| format!("cannot log to stdout: {e}"))?;
    let shared = Arc::new(Shared {
        buffer: Mutex::new(Vec::with_capacity(64 * 1024)),
        out: Mutex::new(std::fs::File::from(stdout)),
        stop: Mutex::new(false),
        stopped: Condvar::new(),
    });
    let flusher = shared.clone();
    std::thread::Builder::new()
        .name("certbound-log".into())
        .spawn(move || {
            let mut stop = flusher.stop.lock().unwrap_or_else(PoisonError::into_inner);
            while !*stop {
                stop = flusher
                    .stopped
                    .wait_timeout(stop, FLUSH_INTERVAL)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                flusher.flush();
            }
        })
        .map_err(|e| format!("cannot start the log writer: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Buffered(shared.clone()));
    match log.format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .with_target(false)
            .init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_target(true)
            .init(),
    }
    Ok(Guard(shared))
}
