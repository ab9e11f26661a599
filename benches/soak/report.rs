//! Reporting: RSS from /proc, p99, the markdown summary.

use std::fmt::Write as _;

use serde_json::Value;

use super::*;

pub(crate) fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

pub(crate) fn p99(v: &mut [u32]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(f64::from(v[(v.len() * 99 / 100).min(v.len() - 1)]) / 1000.0)
}

pub(crate) fn markdown(r: &Value) -> String {
    let mut t = String::new();
    writeln!(
        t,
        "Soak: {} min at {} ops/s (70 % of the {} ops/s this mix reached unthrottled); {} requests, {} errors; RSS growth from t = {} s on: {} MB, allowed {} MB ({} MB slack + {} B for each of the {} revocation-list records appended meanwhile, kept in memory until compaction): **{}**.\n",
        r["minutes"], r["target_ops_per_s"], r["max_ops_per_s"], r["requests"], r["errors"],
        r["warmup_s"], r["rss_growth_after_warmup_mb"], r["rss_bound_mb"], RSS_SLACK_MB,
        BYTES_PER_RECORD, r["records_since_warmup"],
        r["verdict"].as_str().unwrap_or("")
    )
    .unwrap();
    write!(t, "| t s | ops/s | errors | RSS MB |").unwrap();
    for op in OPS {
        write!(t, " p99 {op} ms |").unwrap();
    }
    writeln!(t).unwrap();
    writeln!(t, "|{}", "---:|".repeat(4 + OPS.len())).unwrap();
    for s in r["samples"].as_array().into_iter().flatten() {
        write!(
            t,
            "| {} | {} | {} | {} |",
            s["t"], s["ops_per_s"], s["errors"], s["rss_mb"]
        )
        .unwrap();
        for p in s["p99_ms"].as_array().into_iter().flatten() {
            write!(
                t,
                " {} |",
                if p.is_null() {
                    "–".to_string()
                } else {
                    p.to_string()
                }
            )
            .unwrap();
        }
        writeln!(t).unwrap();
    }
    t
}
