//! The writer thread: group commit and automatic compaction.
//!
//! Requests queue on a bounded channel. The thread takes every request that
//! is waiting (up to [`MAX_BATCH`]), writes their lines with one `write` and
//! one `fdatasync`, inserts them into the table and only then answers each
//! request. While it syncs, the next batch queues up, so many concurrent
//! revocations share one sync.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::log::{self, Compacted, Log, Prepared};
use super::record::{Key, Record};
use super::table::{Table, stored};
use super::{Outcome, RevocationError};
use crate::keys::unix_now;

/// Most records written by one sync.
pub const MAX_BATCH: usize = 4096;

/// A request to the writer.
pub(crate) enum Message {
    Record(Record, oneshot::Sender<Result<Outcome, RevocationError>>),
    Compact(oneshot::Sender<Result<Compacted, RevocationError>>),
}

/// Counters kept by the writer.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) syncs: AtomicU64,
    pub(crate) written: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) compactions: AtomicU64,
    /// The last write failed and no write (or probe) has succeeded since.
    pub(crate) failing: AtomicBool,
    /// The file's length.
    pub(crate) file_bytes: AtomicU64,
}

/// While writes fail, how often the writer probes the file (a blank line,
/// written and synced) so that readiness comes back without traffic.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

struct Running {
    result: Receiver<std::io::Result<Prepared>>,
    waiting: Vec<oneshot::Sender<Result<Compacted, RevocationError>>>,
}

pub(crate) struct Writer {
    pub(crate) log: Log,
    pub(crate) table: Arc<Table>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) check_interval: Duration,
    running: Option<Running>,
}

type Reply = oneshot::Sender<Result<Outcome, RevocationError>>;

impl Writer {
    pub(crate) fn new(
        log: Log,
        table: Arc<Table>,
        counters: Arc<Counters>,
        check_interval: Duration,
    ) -> Self {
        Self {
            log,
            table,
            counters,
            check_interval,
            running: None,
        }
    }

    /// Serves requests until every sender is gone.
    pub(crate) fn run(mut self, rx: Receiver<Message>) {
        let mut next_check = Instant::now();
        loop {
            self.poll_compaction(false);
            let mut wait = next_check.saturating_duration_since(Instant::now());
            if self.running.is_some() {
                wait = wait.min(Duration::from_millis(20));
            }
            if self.counters.failing.load(Ordering::Relaxed) {
                wait = wait.min(PROBE_INTERVAL);
            }
            match rx.recv_timeout(wait) {
                Ok(first) => {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(m) => batch.push(m),
                            Err(_) => break,
                        }
                    }
                    self.handle(batch);
                }
                Err(RecvTimeoutError::Timeout) => self.probe(),
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if Instant::now() >= next_check {
                self.maybe_compact();
                next_check = Instant::now() + self.check_interval;
            }
        }
        self.poll_compaction(true);
    }

    fn handle(&mut self, batch: Vec<Message>) {
        let mut records = Vec::with_capacity(batch.len());
        for message in batch {
            match message {
                Message::Record(record, reply) => records.push((record, reply)),
                Message::Compact(reply) => self.start_compaction(Some(reply)),
            }
        }
        if !records.is_empty() {
            self.commit(records);
        }
    }

    /// While writes fail: whether the file can be written again.
    fn probe(&mut self) {
        if self.counters.failing.load(Ordering::Relaxed) && self.log.append(b"\n", 0).is_ok() {
            self.set_failing(false);
        }
    }

    fn set_failing(&self, failing: bool) {
        self.counters
            .file_bytes
            .store(self.log.len(), Ordering::Relaxed);
        if self.counters.failing.swap(failing, Ordering::Relaxed) && !failing {
            tracing::info!(file = %self.log.path().display(), "revocation list: writable again");
        }
    }

    /// Writes the new records of a batch with one sync, then answers.
    fn commit(&mut self, requests: Vec<(Record, Reply)>) {
        let mut lines = Vec::with_capacity(requests.len() * 64);
        let mut entries: Vec<(Key, u64)> = Vec::with_capacity(requests.len());
        let mut in_batch: HashMap<Key, u32> = HashMap::new();
        let mut after_sync: Vec<(Reply, Outcome)> = Vec::with_capacity(requests.len());
        // "Not before" records (rare): indexed once they are durable.
        let mut cutoffs = Vec::new();
        for (record, reply) in requests {
            let key = record.key();
            let expires = stored(record.expires);
            if self.table.get(&key).is_some_and(|e| e >= expires) {
                // Already durable: answer at once.
                let _ = reply.send(Ok(Outcome::AlreadyRecorded));
            } else if in_batch.get(&key).is_some_and(|e| *e >= expires) {
                after_sync.push((reply, Outcome::AlreadyRecorded));
            } else {
                record.encode(&mut lines);
                if record.cutoff().is_some() {
                    cutoffs.push(record.clone());
                }
                in_batch.insert(key, expires);
                entries.push((key, record.expires));
                after_sync.push((reply, Outcome::Recorded));
            }
        }
        if lines.is_empty() {
            return;
        }
        let started = Instant::now();
        match self.log.append(&lines, entries.len() as u64) {
            Ok(()) => {
                crate::metrics::commit(Some(entries.len()), started.elapsed());
                self.set_failing(false);
                for record in &cutoffs {
                    self.table.note(record);
                }
                self.table.insert_all(&entries);
                self.counters.syncs.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .written
                    .fetch_add(entries.len() as u64, Ordering::Relaxed);
                for (reply, outcome) in after_sync {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(error) => {
                crate::metrics::write_failed();
                self.set_failing(true);
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(file = %self.log.path().display(), %error, records = entries.len(),
                    "revocation list: write failed; the revocations were refused (503)");
                for (reply, _) in after_sync {
                    let _ = reply.send(Err(RevocationError::Unavailable));
                }
            }
        }
    }

    /// Starts a compaction when expired or superseded records are more than
    /// half of the file.
    fn maybe_compact(&mut self) {
        let records = self.log.records();
        let live = self.table.live(log::retained_from(unix_now())) as u64;
        if self.running.is_none() && records.saturating_sub(live) * 2 > records {
            self.start_compaction(None);
        }
    }

    fn start_compaction(
        &mut self,
        reply: Option<oneshot::Sender<Result<Compacted, RevocationError>>>,
    ) {
        if let Some(running) = &mut self.running {
            running.waiting.extend(reply);
            return;
        }
        let snapshot = self.log.snapshot();
        let table = self.table.clone();
        let (tx, rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("certbound-compaction".into())
            .spawn(move || {
                let _ = tx.send(log::prepare(&snapshot, &table, unix_now()));
            });
        match spawned {
            Ok(_) => {
                self.running = Some(Running {
                    result: rx,
                    waiting: reply.into_iter().collect(),
                });
            }
            Err(error) => {
                tracing::error!(%error, "revocation list: cannot start compaction");
                if let Some(reply) = reply {
                    let _ = reply.send(Err(RevocationError::Unavailable));
                }
            }
        }
    }

    /// Finishes a compaction whose first half is done (waits for it when
    /// `block`).
    fn poll_compaction(&mut self, block: bool) {
        let Some(running) = &self.running else { return };
        let prepared = if block {
            running.result.recv().ok()
        } else {
            match running.result.try_recv() {
                Ok(p) => Some(p),
                Err(mpsc::TryRecvError::Empty) => return,
                Err(mpsc::TryRecvError::Disconnected) => None,
            }
        };
        let Some(running) = self.running.take() else {
            return;
        };
        let path = self.log.path().display().to_string();
        let result = match prepared {
            Some(Ok(prepared)) => {
                let cutoff = prepared.cutoff;
                self.log.finish(prepared).map(|done| {
                    let purged = self.table.purge(cutoff);
                    (done, purged)
                })
            }
            Some(Err(e)) => Err(e),
            None => Err(std::io::Error::other("compaction thread ended")),
        };
        let answer = match result {
            Ok((done, purged)) => {
                self.counters.compactions.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .file_bytes
                    .store(self.log.len(), Ordering::Relaxed);
                tracing::info!(file = %path, before = done.before, after = done.after,
                    bytes = done.bytes, purged, "revocation list compacted");
                Ok(done)
            }
            Err(error) => {
                tracing::warn!(file = %path, %error,
                    "revocation list: compaction failed; the list is unchanged");
                Err(RevocationError::Unavailable)
            }
        };
        for reply in running.waiting {
            let _ = reply.send(answer);
        }
    }
}
