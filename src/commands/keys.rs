//! `certbound keys`: generate, list and rotate signing and sealing keys
//! along their lifecycle ([`crate::keys::lifecycle`]).

use std::path::PathBuf;

use crate::config::Config;
use crate::keys::lifecycle::{self, State};
use crate::keys::{self, Alg};

/// Which keys a command is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// JWS signing keys (`keys/signing/`).
    Signing,
    /// Sealing keys for codes and cookies (`keys/sealing.key`, `keys/sealing/`).
    Sealing,
}

/// One key as `keys list` shows it.
#[derive(Debug)]
struct Row {
    kind: &'static str,
    kid: String,
    alg: &'static str,
    activates: u64,
    path: PathBuf,
}

/// The algorithm named by `alg`, or `tokens.signing_algorithm`.
pub fn parse_alg(alg: Option<&str>, config: &Config) -> Result<Alg, String> {
    match alg {
        None => Ok(config.tokens.signing_algorithm),
        Some(name) => Alg::parse(name)
            .ok_or_else(|| format!("unknown algorithm {name:?} (ES256, RS256, PS256, EdDSA)")),
    }
}

/// `--activate-at`: RFC 3339 or Unix seconds.
pub fn parse_time(text: &str) -> Result<u64, String> {
    if let Ok(unix) = text.parse::<u64>() {
        return Ok(unix);
    }
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|t| u64::try_from(t.unix_timestamp()).ok())
        .ok_or_else(|| format!("--activate-at {text:?} is not an RFC 3339 time or Unix seconds"))
}

/// RFC 3339, UTC.
pub fn rfc3339(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

fn rows(config: &Config, kind: Kind) -> Result<Vec<Row>, String> {
    let dir = &config.keys.dir;
    Ok(match kind {
        Kind::Signing => keys::read_dir_keys(dir)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|k| Row {
                kind: "signing",
                kid: k.kid,
                alg: k.alg.name(),
                activates: k.activates,
                path: k.path,
            })
            .collect::<Vec<_>>(),
        Kind::Sealing => keys::sealing_files(dir)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|(activates, path)| Row {
                kind: "sealing",
                kid: "-".into(),
                alg: "A256GCM",
                activates,
                path,
            })
            .collect(),
    })
    .map(|mut rows: Vec<Row>| {
        rows.sort_by(|a, b| keys::KeySet::order((a.activates, &a.kid), (b.activates, &b.kid)));
        rows
    })
}

/// How long after a key stops signing something it signed may still be
/// accepted: the longest lifetime, plus the time a replica may take to see
/// the next key (`keys.poll_interval`) and the clock skew tolerated.
fn lifetime(config: &Config, kind: Kind) -> u64 {
    let longest = match kind {
        Kind::Signing => config.longest_token_lifetime(),
        Kind::Sealing => config.longest_sealed_lifetime(),
    };
    longest
        .saturating_add(config.keys.poll_interval)
        .saturating_add(crate::token::MAX_CLOCK_SKEW)
}

fn states(config: &Config, kind: Kind, rows: &[Row], now: u64) -> Vec<State> {
    let activations: Vec<u64> = rows.iter().map(|r| r.activates).collect();
    lifecycle::states(&activations, now, lifetime(config, kind))
}

/// `keys generate`: a key that activates at `at`, else after
/// `publish_before` (at once when no key is active). Returns what to print.
pub fn generate(
    config: &Config,
    kind: Kind,
    alg: Option<&str>,
    at: Option<u64>,
    now: u64,
) -> Result<String, String> {
    let dir = &config.keys.dir;
    let existing: Vec<u64> = rows(config, kind)?.iter().map(|r| r.activates).collect();
    let activates = at.unwrap_or_else(|| {
        lifecycle::activation_for_new(&existing, now, config.activation_delay())
    });
    let path = match kind {
        Kind::Signing => keys::generate_key(dir, parse_alg(alg, config)?, activates),
        Kind::Sealing => keys::generate_sealing_key(dir, activates),
    }
    .map_err(|e| e.to_string())?;
    let activates = rows(config, kind)?
        .iter()
        .find(|r| r.path == path)
        .map_or(activates, |r| r.activates);
    let mut out = format!(
        "generated {} (activates {}{})",
        path.display(),
        rfc3339(activates),
        if activates <= now { ", now" } else { "" }
    );
    let has_active = existing.iter().any(|&t| t <= now);
    let early = activates < now.saturating_add(config.keys.publish_before);
    if kind == Kind::Signing && has_active && early {
        out.push_str(&format!(
            "\nwarning: it signs before it has been published for keys.publish_before ({} s); resource servers with a cached JWKS refuse its tokens until they fetch the JWKS again",
            config.keys.publish_before
        ));
    }
    Ok(out)
}

/// `keys list`: a header, then each key with its state and when that
/// changes next.
pub fn list(config: &Config, now: u64) -> Result<String, String> {
    let mut out = String::from("KIND\tKID\tALG\tSTATE\tACTIVATES\tNEXT\tFILE\n");
    for kind in [Kind::Signing, Kind::Sealing] {
        let rows = rows(config, kind)?;
        for (row, state) in rows.iter().zip(states(config, kind, &rows, now)) {
            let next = match state.next() {
                Some((at, to)) => format!("{to} at {}", rfc3339(at)),
                None => "-".into(),
            };
            out.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\t{next}\t{}\n",
                row.kind,
                row.kid,
                row.alg,
                state.name(),
                rfc3339(row.activates),
                row.path.display()
            ));
        }
    }
    Ok(out)
}

/// `keys rotate`: a new key (as `generate`), then every key beyond the
/// newest `keep` moved to `keys/retired/`, except a key that is active,
/// published, or signed something that may still be valid.
pub fn rotate(
    config: &Config,
    kind: Kind,
    alg: Option<&str>,
    keep: usize,
    now: u64,
) -> Result<String, String> {
    if keep == 0 {
        return Err("--keep must be at least 1: the new key is one of the keys kept".into());
    }
    let mut out = generate(config, kind, alg, None, now)?;
    let rows = rows(config, kind)?;
    let states = states(config, kind, &rows, now);
    let (retire, kept) = lifecycle::plan_retirement(&states, keep);
    let paths: Vec<PathBuf> = retire.iter().map(|&i| rows[i].path.clone()).collect();
    for moved in keys::files::retire(&config.keys.dir, &paths).map_err(|e| e.to_string())? {
        out.push_str(&format!("\nretired {}", moved.display()));
    }
    for i in kept {
        let why = match states[i] {
            State::Retiring { until } => {
                format!("what it signed is valid until {}", rfc3339(until))
            }
            other => format!("it is {}", other.name()),
        };
        out.push_str(&format!(
            "\nkept {} beyond --keep {keep}: {why}",
            rows[i].path.display()
        ));
    }
    Ok(out)
}
