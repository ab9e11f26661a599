//! `certbound revocations`: inspect and compact the revocation list.

use std::path::Path;

use clap::Subcommand;

/// What to do with the list.
#[derive(Subcommand)]
pub enum Action {
    /// Print entries still in force: kind, id, expiry (RFC 3339).
    List {
        /// Include expired entries.
        #[arg(long)]
        all: bool,
    },
    /// Print counts: records, live and expired entries per kind, damaged lines.
    Stats,
    /// Drop expired entries now (the server does this itself; stop it first).
    Compact,
}

/// Runs `certbound revocations <action>` on the list at `path`.
pub fn run(path: &Path, action: Action) -> Result<(), String> {
    use crate::revocation::{self, Kind};
    use std::io::Write;
    let now = crate::keys::unix_now();
    let live = |expires: u64| expires >= revocation::retained_from(now);
    match action {
        Action::List { all } => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let mut failed = None;
            let scan = revocation::read(path, |r| {
                if (all || live(r.expires))
                    && let Err(e) = writeln!(
                        out,
                        "{}\t{}\t{}{}",
                        r.kind.name(),
                        r.id,
                        super::keys::rfc3339(r.expires),
                        if live(r.expires) { "" } else { "\texpired" }
                    )
                {
                    failed.get_or_insert(e);
                }
            })
            .map_err(|e| e.to_string())?;
            out.flush().map_err(|e| e.to_string())?;
            if let Some(e) = failed {
                return Err(e.to_string());
            }
            report_damage(&scan);
        }
        Action::Stats => {
            let mut counts = [(0u64, 0u64); 3];
            let scan = revocation::read(path, |r| {
                let slot = &mut counts[Kind::ALL.iter().position(|k| *k == r.kind).unwrap_or(0)];
                if live(r.expires) {
                    slot.0 += 1;
                } else {
                    slot.1 += 1;
                }
            })
            .map_err(|e| e.to_string())?;
            let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            println!(
                "file\t{}\nbytes\t{bytes}\nrecords\t{}",
                path.display(),
                scan.records
            );
            for (kind, (live, expired)) in Kind::ALL.iter().zip(counts) {
                println!("{}\tlive {live}\texpired {expired}", kind.name());
            }
            println!(
                "damaged lines\t{}",
                scan.skipped.len() + usize::from(scan.torn.is_some())
            );
            report_damage(&scan);
        }
        Action::Compact => {
            let done = revocation::compact_offline(path, now).map_err(|e| e.to_string())?;
            println!(
                "compacted {}: {} records -> {} ({} bytes)",
                path.display(),
                done.before,
                done.after,
                done.bytes
            );
        }
    }
    Ok(())
}

fn report_damage(scan: &crate::revocation::Scan) {
    for s in &scan.skipped {
        eprintln!("line {}: skipped ({})", s.line, s.reason);
    }
    if let Some(line) = scan.torn {
        eprintln!("line {line}: skipped (torn: no end of line)");
    }
}
