//! `certbound revocations`: inspect, compact and move the revocation list,
//! in its file or in Redis (`revocation.backend`).

use std::path::{Path, PathBuf};

use clap::Subcommand;

use crate::config::{Backend, RevocationConfig};
use crate::revocation::{self, Kind, Record, redis::offline};

/// What to do with the list.
#[derive(Subcommand)]
pub enum Action {
    /// Print the entries kept: kind, id, expiry (RFC 3339) and state (in
    /// force, or expired and kept for the 5 minutes after expiry).
    List {
        /// Include expired entries.
        #[arg(long)]
        all: bool,
    },
    /// Print counts: records, live and expired entries per kind, damaged lines.
    Stats,
    /// Drop expired entries now (the server does this itself; with the file
    /// backend, stop it first).
    Compact,
    /// Copy a single node's list file into Redis (`revocation.backend =
    /// "redis"`); safe while replicas run, and again (nothing is doubled).
    Import {
        /// The revocation list file of the single node.
        file: PathBuf,
    },
}

/// Runs `certbound revocations <action>` on the list `config` names.
pub fn run(config: &RevocationConfig, action: Action) -> Result<(), String> {
    use std::io::Write;
    let now = crate::keys::unix_now();
    let live = |expires: u64| expires >= revocation::retained_from(now);
    match action {
        Action::List { all } => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let mut failed = None;
            let state = |expires: u64| match expires {
                e if e >= now => "in force".to_string(),
                e if live(e) => format!(
                    "expired, kept until {}",
                    super::keys::rfc3339(e + revocation::RETAIN_AFTER_EXPIRY)
                ),
                _ => "expired".to_string(),
            };
            each_record(config, |r| {
                if (all || live(r.expires))
                    && let Err(e) = writeln!(
                        out,
                        "{}\t{}\t{}\t{}",
                        r.kind.name(),
                        r.id,
                        super::keys::rfc3339(r.expires),
                        state(r.expires)
                    )
                {
                    failed.get_or_insert(e);
                }
            })?;
            out.flush().map_err(|e| e.to_string())?;
            if let Some(e) = failed {
                return Err(e.to_string());
            }
        }
        Action::Stats => {
            let mut counts = [(0u64, 0u64); 3];
            let mut records = 0u64;
            let damaged = each_record(config, |r| {
                records += 1;
                let slot = &mut counts[Kind::ALL.iter().position(|k| *k == r.kind).unwrap_or(0)];
                if live(r.expires) {
                    slot.0 += 1;
                } else {
                    slot.1 += 1;
                }
            })?;
            match config.backend {
                Backend::File => {
                    let bytes = std::fs::metadata(&config.file)
                        .map(|m| m.len())
                        .unwrap_or(0);
                    println!("file\t{}\nbytes\t{bytes}", config.file.display());
                }
                Backend::Redis => println!("redis\t{}", crate::config::redacted(&config.redis.url)),
            }
            println!("records\t{records}");
            for (kind, (live, expired)) in Kind::ALL.iter().zip(counts) {
                println!("{}\tlive {live}\texpired {expired}", kind.name());
            }
            println!("damaged lines\t{damaged}");
        }
        Action::Compact => match config.backend {
            Backend::File => {
                let path = &config.file;
                let done = revocation::compact_offline(path, now).map_err(|e| e.to_string())?;
                println!(
                    "compacted {}: {} records -> {} ({} bytes)",
                    path.display(),
                    done.before,
                    done.after,
                    done.bytes
                );
            }
            Backend::Redis => {
                let done = offline::trim(&config.redis)?;
                println!("trimmed Redis: {} entries -> {}", done.before, done.after);
            }
        },
        Action::Import { file } => {
            if config.backend != Backend::Redis {
                return Err(
                    "revocations import copies a file into Redis: set revocation.backend = \"redis\" (and revocation.redis.url) first".into(),
                );
            }
            let mut records = Vec::new();
            let scan = read_file(&file, |r| records.push(r))?;
            let done = offline::import(&config.redis, records, now)?;
            println!(
                "imported {}: {} recorded, {} already in Redis, {} expired (skipped), {} damaged lines",
                file.display(),
                done.recorded,
                done.present,
                done.expired,
                scan
            );
        }
    }
    Ok(())
}

/// Calls `each` for every record of the list; returns how many lines (or
/// Redis members) were not records.
fn each_record(config: &RevocationConfig, each: impl FnMut(Record)) -> Result<u64, String> {
    match config.backend {
        Backend::File => read_file(&config.file, each),
        Backend::Redis => offline::read(&config.redis, each),
    }
}

/// Reads a list file, reporting damaged lines on stderr.
fn read_file(path: &Path, each: impl FnMut(Record)) -> Result<u64, String> {
    let scan = revocation::read(path, each).map_err(|e| e.to_string())?;
    for s in &scan.skipped {
        eprintln!("line {}: skipped ({})", s.line, s.reason);
    }
    if let Some(line) = scan.torn {
        eprintln!("line {line}: skipped (torn: no end of line)");
    }
    Ok(scan.skipped.len() as u64 + u64::from(scan.torn.is_some()))
}
