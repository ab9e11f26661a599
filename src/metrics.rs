//! Prometheus metrics, served at `GET /metrics` on the admin listener
//! (`server.admin`) only. Recorded with the `metrics` facade into
//! `metrics-exporter-prometheus`; with no admin listener nothing is
//! installed and every recording function returns at its first line.
//!
//! The series (each name prefixed `certbound_`) are listed in [`SERIES`];
//! the README's "Operating certbound" section documents them. Label values
//! come from fixed sets (endpoints, reasons, grants) or from configured
//! client ids, never from what a client sends, so the series stay bounded.

use std::sync::OnceLock;
use std::time::Duration;

use ::metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Every series: name, kind, help.
pub const SERIES: &[(&str, &str, &str)] = &[
    (
        "certbound_http_requests_total",
        "counter",
        "Requests answered, by endpoint and status.",
    ),
    (
        "certbound_http_request_duration_seconds",
        "histogram",
        "Time from the request head to the answer, by endpoint.",
    ),
    (
        "certbound_tokens_issued_total",
        "counter",
        "Access tokens issued, by grant and client.",
    ),
    (
        "certbound_client_auth_failures_total",
        "counter",
        "Refused client authentications, by reason.",
    ),
    (
        "certbound_introspections_total",
        "counter",
        "Introspection answers, by result (active, or why inactive).",
    ),
    (
        "certbound_revocations_total",
        "counter",
        "Records written to the revocation list, by kind.",
    ),
    (
        "certbound_revocation_entries",
        "gauge",
        "Entries in the in-memory revocation set.",
    ),
    (
        "certbound_revocation_file_bytes",
        "gauge",
        "Size of the revocation list file (file backend).",
    ),
    (
        "certbound_revocation_batch_records",
        "histogram",
        "Records per group commit (file backend).",
    ),
    (
        "certbound_revocation_commit_seconds",
        "histogram",
        "Time to make a batch durable: write and fdatasync, or the Redis round trip.",
    ),
    (
        "certbound_revocation_write_failures_total",
        "counter",
        "Batches (file) or records (Redis) that could not be written.",
    ),
    (
        "certbound_revocation_view_age_seconds",
        "gauge",
        "Redis backend: time since this replica last heard the whole change log.",
    ),
    (
        "certbound_revocation_view_reloads_total",
        "counter",
        "Redis backend: full reloads of the shared set (start, gaps).",
    ),
    (
        "certbound_token_cache_total",
        "counter",
        "Introspection token-cache lookups, by result (hit, miss).",
    ),
    (
        "certbound_login_failures_total",
        "counter",
        "Failed password checks (login form and user callers).",
    ),
    (
        "certbound_login_throttled_total",
        "counter",
        "Sign-ins refused by the failed-login throttle.",
    ),
    (
        "certbound_open_connections",
        "gauge",
        "Open client connections (every listener).",
    ),
    (
        "certbound_reloads_total",
        "counter",
        "Configuration reloads, by result (ok, failed).",
    ),
    (
        "certbound_build_info",
        "gauge",
        "1, labelled with the version.",
    ),
];

/// Installs the recorder (once per process; later calls keep the first).
pub fn install() -> Result<(), String> {
    if HANDLE.get().is_some() {
        return Ok(());
    }
    let seconds = [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0, 10.0,
    ];
    let records = [
        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_records".into()), &records))
        .map_err(|e| format!("metrics: {e}"))?
        .install_recorder()
        .map_err(|e| format!("metrics: {e}"))?;
    for (name, kind, help) in SERIES {
        match *kind {
            "gauge" => ::metrics::describe_gauge!(*name, *help),
            "histogram" => ::metrics::describe_histogram!(*name, *help),
            _ => ::metrics::describe_counter!(*name, *help),
        }
    }
    gauge!("certbound_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    let _ = HANDLE.set(handle);
    // Histograms are kept as raw samples between scrapes: fold them now
    // and then so an unscraped server does not grow.
    std::thread::Builder::new()
        .name("certbound-metrics".into())
        .spawn(|| {
            loop {
                std::thread::sleep(Duration::from_secs(5));
                if let Some(h) = HANDLE.get() {
                    h.run_upkeep();
                }
            }
        })
        .map_err(|e| format!("metrics: cannot start the upkeep thread: {e}"))?;
    Ok(())
}

/// Whether metrics are recorded.
#[inline]
pub fn enabled() -> bool {
    HANDLE.get().is_some()
}

/// The text exposition of every series (after `refresh` set the gauges).
pub fn render() -> Option<String> {
    HANDLE.get().map(PrometheusHandle::render)
}

/// A request answered.
pub fn request(endpoint: &'static str, status: u16, elapsed: Duration) {
    if !enabled() {
        return;
    }
    counter!("certbound_http_requests_total", "endpoint" => endpoint, "status" => status_label(status))
        .increment(1);
    histogram!("certbound_http_request_duration_seconds", "endpoint" => endpoint)
        .record(elapsed.as_secs_f64());
}

/// An access token issued.
pub fn token_issued(grant: &'static str, client: &str) {
    if enabled() {
        counter!("certbound_tokens_issued_total", "grant" => grant, "client" => client.to_string())
            .increment(1);
    }
}

/// A client authentication refused.
pub fn client_auth_refused(reason: &'static str) {
    if enabled() {
        counter!("certbound_client_auth_failures_total", "reason" => reason).increment(1);
    }
}

/// An introspection answer: `active`, or why inactive.
pub fn introspection(result: &'static str) {
    if enabled() {
        counter!("certbound_introspections_total", "result" => result).increment(1);
    }
}

/// Records written to the revocation list.
pub fn revocations(kind: &'static str, count: u64) {
    if enabled() {
        counter!("certbound_revocations_total", "kind" => kind).increment(count);
    }
}

/// A batch made durable (`records` of them, file backend) or a Redis write.
pub fn commit(records: Option<usize>, elapsed: Duration) {
    if !enabled() {
        return;
    }
    if let Some(records) = records {
        histogram!("certbound_revocation_batch_records").record(records as f64);
    }
    histogram!("certbound_revocation_commit_seconds").record(elapsed.as_secs_f64());
}

/// A batch or record that could not be written.
pub fn write_failed() {
    if enabled() {
        counter!("certbound_revocation_write_failures_total").increment(1);
    }
}

/// A full reload of the shared set (Redis backend).
pub fn view_reloaded() {
    if enabled() {
        counter!("certbound_revocation_view_reloads_total").increment(1);
    }
}

/// A token-cache lookup.
pub fn token_cache(hit: bool) {
    if enabled() {
        let result = if hit { "hit" } else { "miss" };
        counter!("certbound_token_cache_total", "result" => result).increment(1);
    }
}

/// A failed password check.
pub fn login_failed() {
    if enabled() {
        counter!("certbound_login_failures_total").increment(1);
    }
}

/// A sign-in refused by the throttle.
pub fn login_throttled() {
    if enabled() {
        counter!("certbound_login_throttled_total").increment(1);
    }
}

/// A configuration reload.
pub fn reload(ok: bool) {
    if enabled() {
        let result = if ok { "ok" } else { "failed" };
        counter!("certbound_reloads_total", "result" => result).increment(1);
    }
}

/// The gauges read at scrape time.
pub struct Gauges {
    /// Entries in the revocation set.
    pub revocation_entries: usize,
    /// The list file's size, file backend.
    pub revocation_file_bytes: Option<u64>,
    /// Since the last complete read of the change log, Redis backend.
    pub view_age: Option<Duration>,
    /// Open connections.
    pub open_connections: usize,
}

/// Sets the gauges before a scrape.
pub fn set_gauges(g: &Gauges) {
    if !enabled() {
        return;
    }
    gauge!("certbound_revocation_entries").set(g.revocation_entries as f64);
    if let Some(bytes) = g.revocation_file_bytes {
        gauge!("certbound_revocation_file_bytes").set(bytes as f64);
    }
    if let Some(age) = g.view_age {
        gauge!("certbound_revocation_view_age_seconds").set(age.as_secs_f64());
    }
    gauge!("certbound_open_connections").set(g.open_connections as f64);
}

/// The endpoint label of a request path (a tenant's prefix removed).
pub fn endpoint(path: &str) -> &'static str {
    use crate::oauth::paths;
    match path {
        paths::TOKEN => "token",
        paths::INTROSPECT => "introspect",
        paths::REVOKE => "revoke",
        paths::AUTHORIZE => "authorize",
        paths::USERINFO => "userinfo",
        paths::JWKS => "jwks",
        paths::OAUTH_METADATA | paths::OPENID_METADATA | paths::WSO2_OPENID_METADATA => "discovery",
        paths::OPENAPI => "openapi",
        "/healthz" => "healthz",
        "/readyz" => "readyz",
        "/metrics" => "metrics",
        p if p == "/docs" || p.starts_with("/docs/") => "docs",
        _ => "other",
    }
}

/// Status codes as label values, without allocating for the usual ones.
fn status_label(status: u16) -> ::metrics::SharedString {
    const KNOWN: &[(u16, &str)] = &[
        (200, "200"),
        (204, "204"),
        (302, "302"),
        (303, "303"),
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (405, "405"),
        (406, "406"),
        (413, "413"),
        (415, "415"),
        (429, "429"),
        (431, "431"),
        (500, "500"),
        (503, "503"),
    ];
    match KNOWN.binary_search_by_key(&status, |(code, _)| *code) {
        Ok(i) => ::metrics::SharedString::const_str(KNOWN[i].1),
        Err(_) => ::metrics::SharedString::from(status.to_string()),
    }
}
