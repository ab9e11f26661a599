//! The revocation list file: load, durable append, compaction.
//!
//! Appends go to the end of the file and are `fdatasync`ed before anyone is
//! told they happened. A failed append is cut off again before the next one,
//! so records never follow garbage. Compaction writes the live records to
//! `<file>.compact`, syncs it, renames it over the file and syncs the
//! directory; records appended while it ran are copied over first.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::record::{Key, LineError, Record};
use super::table::{Table, stored};

/// First line of a new file.
pub const HEADER: &[u8] =
    b"# certbound revocation list v1: <kind> <id> <expires, unix seconds> <crc32>\n";

/// Entries are kept this many seconds past their expiry, so a clock stepped
/// back cannot make a revoked token usable again.
pub const RETAIN_AFTER_EXPIRY: u64 = 300;

/// Entries expiring before this are no longer needed at `now`.
pub fn retained_from(now: u64) -> u64 {
    now.saturating_sub(RETAIN_AFTER_EXPIRY)
}

/// A line that is not a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// 1-based line number.
    pub line: u64,
    /// Why it was skipped.
    pub reason: LineError,
}

/// What reading the file found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// Record lines.
    pub records: u64,
    /// Complete lines that are not records, in file order.
    pub skipped: Vec<Skipped>,
    /// Line number of an incomplete last line (no `\n`): a torn write.
    pub torn: Option<u64>,
    /// Bytes up to the end of the last complete line.
    pub complete_len: u64,
    /// Number of the last complete line.
    pub last_line: u64,
}

impl Scan {
    /// Logs every skipped line as a warning.
    pub fn warn(&self, path: &Path) {
        for s in &self.skipped {
            if self.torn.is_none() && s.line == self.last_line {
                tracing::warn!(file = %path.display(), line = s.line, reason = %s.reason,
                    "revocation list: garbled last line skipped (a write cut short by a crash)");
            } else {
                tracing::warn!(file = %path.display(), line = s.line, reason = %s.reason,
                    "revocation list: garbled line skipped; the lines after it were loaded");
            }
        }
        if let Some(line) = self.torn {
            tracing::warn!(file = %path.display(), line,
                "revocation list: torn last line skipped (a write cut short by a crash)");
        }
    }
}

/// Reads records from the first `upto` bytes of `file`, calling `each` for
/// every record line. Comment (`#`) and empty lines are ignored.
pub fn scan(file: &File, upto: u64, mut each: impl FnMut(Record)) -> io::Result<Scan> {
    let mut reader = BufReader::with_capacity(256 * 1024, file.take(upto));
    let mut scan = Scan::default();
    let mut line = Vec::with_capacity(128);
    let mut number = 0u64;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        number += 1;
        if line.last() != Some(&b'\n') {
            scan.torn = Some(number);
            break;
        }
        scan.complete_len += n as u64;
        scan.last_line = number;
        let body = &line[..n - 1];
        if body.is_empty() || body[0] == b'#' {
            continue;
        }
        match Record::parse(body) {
            Ok(record) => {
                scan.records += 1;
                each(record);
            }
            Err(reason) => scan.skipped.push(Skipped {
                line: number,
                reason,
            }),
        }
    }
    Ok(scan)
}

/// Why the list cannot be opened. Each message names the file.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Directory, file or lock cannot be created, opened, read or written.
    #[error("revocation list {path}: {action}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The error.
        source: io::Error,
    },
    /// The path is a directory or device.
    #[error("revocation list {0}: not a regular file")]
    NotAFile(PathBuf),
    /// Another process holds the list.
    #[error(
        "revocation list {0} is in use by another certbound process (one file per server: stop it first, or share a list between replicas with revocation.backend = \"redis\")"
    )]
    InUse(PathBuf),
    /// Redis cannot be used (bad address, refused credentials, TLS).
    #[error("revocation.redis: {0}")]
    Redis(String),
}

/// Maps an I/O error to an [`OpenError`] naming `path` and what was being done.
pub(crate) fn io_err<'a>(
    path: &'a Path,
    action: &'static str,
) -> impl FnOnce(io::Error) -> OpenError + 'a {
    move |source| OpenError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// The open list file. Owned by one writer; holds `<file>.lock` while open.
#[derive(Debug)]
pub struct Log {
    path: PathBuf,
    _lock: File,
    /// Bytes known to be on disk.
    len: u64,
    /// Record lines in the file.
    records: u64,
    /// A failed append may have left bytes past `len`.
    dirty: bool,
    /// A rename happened whose directory entry is not yet known durable.
    dir_unsynced: bool,
}

/// A compaction's first half, done without holding up appends.
#[derive(Debug)]
pub struct Prepared {
    tmp: PathBuf,
    /// Length of the old file that was compacted.
    upto: u64,
    /// Record lines in the old file up to `upto`.
    upto_records: u64,
    /// Length of the new file before the tail is copied.
    len: u64,
    /// Records written to the new file.
    kept: u64,
    /// Entries expiring before this were dropped.
    pub cutoff: u64,
}

/// What a compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Compacted {
    /// Record lines before.
    pub before: u64,
    /// Record lines after.
    pub after: u64,
    /// File size after, in bytes.
    pub bytes: u64,
}

/// Where a snapshot for compaction ends.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The list file.
    pub path: PathBuf,
    /// Its durable length now.
    pub upto: u64,
    /// Its record lines now.
    pub records: u64,
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

impl Log {
    /// Opens the list at `path` (creating it and its directory), takes its
    /// lock and loads every entry still needed at `now` into `table`.
    pub fn open(path: &Path, table: &Table, now: u64) -> Result<(Self, Scan), OpenError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(io_err(dir, "cannot create directory"))?;
        }
        let lock_path = sidecar(path, ".lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path, "cannot open lock file"))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(OpenError::InUse(path.to_path_buf())),
            Err(fs::TryLockError::Error(e)) => return Err(io_err(&lock_path, "cannot lock")(e)),
        }
        match fs::remove_file(sidecar(path, ".compact")) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(io_err(path, "cannot remove an unfinished compaction")(e));
            }
            _ => {}
        }
        if !path.exists() {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(io_err(path, "cannot create"))?;
            f.write_all(HEADER)
                .and_then(|()| f.sync_all())
                .map_err(io_err(path, "cannot write"))?;
            sync_dir(path).map_err(io_err(path, "cannot sync directory"))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(path)
            .map_err(io_err(path, "cannot open for reading and appending"))?;
        let meta = file.metadata().map_err(io_err(path, "cannot stat"))?;
        if !meta.is_file() {
            return Err(OpenError::NotAFile(path.to_path_buf()));
        }
        let keep_from = stored(retained_from(now));
        let mut batch = Vec::with_capacity(4096);
        let scan = scan(&file, meta.len(), |r| {
            if stored(r.expires) >= keep_from {
                table.note(&r);
                batch.push((r.key(), r.expires));
                if batch.len() == batch.capacity() {
                    table.insert_all(&batch);
                    batch.clear();
                }
            }
        })
        .map_err(io_err(path, "cannot read"))?;
        table.insert_all(&batch);
        scan.warn(path);
        if scan.torn.is_some() {
            // Never acknowledged (acknowledgement follows the sync of a whole
            // line): cut it off so the next record starts on its own line.
            file.set_len(scan.complete_len)
                .and_then(|()| file.sync_all())
                .map_err(io_err(path, "cannot cut off the torn last line"))?;
        }
        Ok((
            Self {
                path: path.to_path_buf(),
                _lock: lock,
                len: scan.complete_len,
                records: scan.records,
                dirty: false,
                dir_unsynced: false,
            },
            scan,
        ))
    }

    /// The list file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Record lines in the file.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Bytes known to be on disk.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Appends `lines` (`count` records) and syncs them to disk. On error
    /// nothing is acknowledged, and the next append first removes whatever
    /// part of these lines reached the file.
    ///
    /// The file is opened per batch (never created), so a list that was
    /// removed, replaced or made read-only fails here rather than silently.
    pub fn append(&mut self, lines: &[u8], count: u64) -> io::Result<()> {
        if self.dir_unsynced {
            sync_dir(&self.path)?;
            self.dir_unsynced = false;
        }
        let was_dirty = std::mem::replace(&mut self.dirty, true);
        let mut file = OpenOptions::new().append(true).open(&self.path)?;
        if was_dirty {
            file.set_len(self.len)?;
        }
        file.write_all(lines)?;
        file.sync_data()?;
        self.dirty = false;
        self.len += lines.len() as u64;
        self.records += count;
        Ok(())
    }

    /// Where a compaction starting now reads up to.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            path: self.path.clone(),
            upto: self.len,
            records: self.records,
        }
    }

    /// Second half of a compaction: copies the records appended since the
    /// snapshot, syncs, renames over the list, syncs the directory. The
    /// caller then purges `prepared.cutoff` from the table.
    pub fn finish(&mut self, prepared: Prepared) -> io::Result<Compacted> {
        let result = self.finish_inner(&prepared);
        if result.is_err() {
            let _ = fs::remove_file(&prepared.tmp);
        }
        result
    }

    fn finish_inner(&mut self, p: &Prepared) -> io::Result<Compacted> {
        let tail_len = self.len - p.upto;
        let mut src = File::open(&self.path)?;
        src.seek(SeekFrom::Start(p.upto))?;
        let mut dst = OpenOptions::new().append(true).open(&p.tmp)?;
        let copied = io::copy(&mut src.take(tail_len), &mut dst)?;
        if copied != tail_len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "revocation list shrank during compaction",
            ));
        }
        dst.sync_all()?;
        drop(dst);
        fs::rename(&p.tmp, &self.path)?;
        let before = self.records;
        self.len = p.len + tail_len;
        self.records = p.kept + (self.records - p.upto_records);
        self.dirty = false;
        self.dir_unsynced = true;
        sync_dir(&self.path)?;
        self.dir_unsynced = false;
        Ok(Compacted {
            before,
            after: self.records,
            bytes: self.len,
        })
    }
}

/// First half of a compaction: writes every record of the snapshot that is
/// still needed at `now` and is the table's current entry for its key to
/// `<file>.compact`, and syncs it. Runs beside appends.
pub fn prepare(snapshot: &Snapshot, table: &Table, now: u64) -> io::Result<Prepared> {
    let tmp = sidecar(&snapshot.path, ".compact");
    let cutoff = retained_from(now);
    let keep_from = stored(cutoff);
    let result = (|| {
        let src = File::open(&snapshot.path)?;
        let mut out = BufWriter::with_capacity(
            256 * 1024,
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?,
        );
        out.write_all(HEADER)?;
        let mut kept = 0u64;
        let mut line = Vec::with_capacity(128);
        let mut write_err = None;
        scan(&src, snapshot.upto, |r| {
            let expires = stored(r.expires);
            let key: Key = r.key();
            if expires >= keep_from && table.get(&key) == Some(expires) {
                line.clear();
                r.encode(&mut line);
                if let Err(e) = out.write_all(&line) {
                    write_err.get_or_insert(e);
                }
                kept += 1;
            }
        })?;
        if let Some(e) = write_err {
            return Err(e);
        }
        let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        Ok(Prepared {
            len: file.metadata()?.len(),
            tmp: tmp.clone(),
            upto: snapshot.upto,
            upto_records: snapshot.records,
            kept,
            cutoff,
        })
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
