//! `[revocation]` and `[revocation.redis]`: where the revocation list
//! lives: a file (one node) or Redis/Valkey (replicas).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Problems;

/// `[revocation]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationConfig {
    /// Where records are kept.
    pub backend: Backend,
    /// The revocation list file (`backend = "file"`); its directory is
    /// created on start.
    pub file: PathBuf,
    /// Seconds between checks whether to compact the list (it is compacted
    /// when expired entries are more than half of it); with Redis, between
    /// trims of expired entries.
    pub compaction_check_interval: u64,
    /// The shared list (`backend = "redis"`).
    pub redis: RedisConfig,
}

impl Default for RevocationConfig {
    fn default() -> Self {
        Self {
            backend: Backend::File,
            file: PathBuf::from("data/revocations.log"),
            compaction_check_interval: 60,
            redis: RedisConfig::default(),
        }
    }
}

/// `revocation.backend`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// An append-only file, locked by one server.
    File,
    /// Redis or Valkey, shared by every replica.
    Redis,
}

/// `[revocation.redis]`
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user[:password]@]host[:port][/db]`, `rediss://` for TLS,
    /// `redis+unix:///path`. With `sentinels`, only its credentials,
    /// database and scheme (TLS or not) are used, for the primary.
    pub url: String,
    /// Sentinel addresses (`redis://host:26379`); when set, the primary of
    /// `sentinel_service` is asked of them, again after each failure.
    pub sentinels: Vec<String>,
    /// The Sentinel service (master) name.
    pub sentinel_service: String,
    /// PEM bundle of CAs for `rediss://` (default: the system's roots).
    pub ca: Option<PathBuf>,
    /// PEM certificate and key certbound presents to Redis over TLS.
    pub client_certificate: Option<PathBuf>,
    /// The key of `client_certificate`.
    pub client_key: Option<PathBuf>,
    /// Prefix of certbound's keys; they share one hash tag `{prefix}`.
    pub prefix: String,
    /// Seconds a replica keeps answering from memory without hearing from
    /// Redis; after that, reads of the list answer 503.
    pub max_staleness: u64,
    /// Seconds to connect or to wait for one answer.
    pub timeout: u64,
    /// Replicas of Redis that must have a record (`WAIT`) before it is
    /// acknowledged; 0: the primary's acceptance is enough.
    pub wait_replicas: u32,
    /// Seconds `WAIT` may take; fewer replicas in time: 503.
    pub wait_timeout: u64,
    /// Entries the change log keeps (approximately); a replica that falls
    /// further behind reloads the whole list.
    pub log_length: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            sentinels: Vec::new(),
            sentinel_service: "mymaster".into(),
            ca: None,
            client_certificate: None,
            client_key: None,
            prefix: "certbound".into(),
            max_staleness: 3,
            timeout: 2,
            wait_replicas: 0,
            wait_timeout: 1,
            log_length: 100_000,
        }
    }
}

impl std::fmt::Debug for RedisConfig {
    /// The URL's password is never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redacted(&self.url))
            .field(
                "sentinels",
                &self
                    .sentinels
                    .iter()
                    .map(|s| redacted(s))
                    .collect::<Vec<_>>(),
            )
            .field("sentinel_service", &self.sentinel_service)
            .field("prefix", &self.prefix)
            .field("max_staleness", &self.max_staleness)
            .field("timeout", &self.timeout)
            .field("wait_replicas", &self.wait_replicas)
            .finish_non_exhaustive()
    }
}

/// `url` with any password (in the user part, or a `redis+unix://`
/// `?pass=`) replaced by `***`, for logs and messages.
pub fn redacted(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return "(not a URL)".into();
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    if parsed.query().is_some() {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let secret = k.contains("pass");
                (
                    k.into_owned(),
                    if secret { "***".into() } else { v.into_owned() },
                )
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

const SCHEMES: [&str; 6] = ["redis", "rediss", "valkey", "valkeys", "redis+unix", "unix"];

impl RevocationConfig {
    /// Problems with the Redis settings (only when the backend is Redis).
    pub fn check(&self, problems: &mut Problems) {
        if self.backend != Backend::Redis {
            return;
        }
        let r = &self.redis;
        for (key, url) in std::iter::once(("revocation.redis.url", &r.url)).chain(
            r.sentinels
                .iter()
                .map(|s| ("revocation.redis.sentinels", s)),
        ) {
            match url::Url::parse(url) {
                Ok(u) if u.fragment().is_some_and(|f| f.contains("insecure")) => problems.push(
                    format!("{key}: {}: certificate verification cannot be turned off (#insecure); give the CA in revocation.redis.ca", redacted(url)),
                ),
                Ok(u) if SCHEMES.contains(&u.scheme()) => {}
                _ => problems.push(format!(
                    "{key}: {} is not a redis://, rediss:// or redis+unix:// URL",
                    redacted(url)
                )),
            }
        }
        if r.prefix.is_empty()
            || r.prefix.len() > 64
            || !r
                .prefix
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'{' && b != b'}')
        {
            problems.push(format!(
                "revocation.redis.prefix: {:?} is not 1 to 64 visible characters without braces",
                r.prefix
            ));
        }
        for (key, value, range) in [
            ("revocation.redis.max_staleness", r.max_staleness, 1..=3600),
            ("revocation.redis.timeout", r.timeout, 1..=60),
            ("revocation.redis.wait_timeout", r.wait_timeout, 1..=60),
            (
                "revocation.redis.log_length",
                r.log_length,
                1000..=100_000_000,
            ),
        ] {
            if !range.contains(&value) {
                problems.push(format!(
                    "{key}: {value} is not {} to {}",
                    range.start(),
                    range.end()
                ));
            }
        }
        if r.client_certificate.is_some() != r.client_key.is_some() {
            problems.push(
                "revocation.redis: client_certificate and client_key go together".to_string(),
            );
        }
        if r.sentinels.is_empty() && r.sentinel_service != "mymaster" {
            problems.push("revocation.redis.sentinel_service: set, but no sentinels".to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(edit: impl FnOnce(&mut RevocationConfig)) -> Vec<String> {
        let mut config = RevocationConfig {
            backend: Backend::Redis,
            ..RevocationConfig::default()
        };
        edit(&mut config);
        let mut problems = Problems::default();
        config.check(&mut problems);
        problems.0
    }

    #[test]
    fn passwords_are_never_shown() {
        let url = "rediss://certbound:s3cret@redis.internal:6380/0";
        assert_eq!(
            redacted(url),
            "rediss://certbound:***@redis.internal:6380/0"
        );
        let config = RedisConfig {
            url: url.into(),
            sentinels: vec!["redis://:other-secret@s1:26379".into()],
            ..RedisConfig::default()
        };
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("other-secret"),
            "{shown}"
        );
        let bad = problems(|c| c.redis.url = "http://u:s3cret@x".into());
        assert_eq!(bad.len(), 1);
        assert!(!bad[0].contains("s3cret"), "{bad:?}");
    }

    #[test]
    fn redis_settings_are_checked_only_for_the_redis_backend() {
        assert!(problems(|_| {}).is_empty());
        let mut file = RevocationConfig::default();
        file.redis.url = "nonsense".into();
        let mut none = Problems::default();
        file.check(&mut none);
        assert!(none.0.is_empty());
        for (edit, key) in [
            (
                Box::new(|c: &mut RevocationConfig| c.redis.url = "nonsense".into())
                    as Box<dyn FnOnce(&mut RevocationConfig)>,
                "url",
            ),
            (
                Box::new(|c| c.redis.url = "rediss://h:6380/#insecure".into()),
                "#insecure",
            ),
            (Box::new(|c| c.redis.prefix = "a{b}".into()), "prefix"),
            (Box::new(|c| c.redis.max_staleness = 0), "max_staleness"),
            (Box::new(|c| c.redis.timeout = 61), "timeout"),
            (Box::new(|c| c.redis.log_length = 10), "log_length"),
            (
                Box::new(|c| c.redis.client_key = Some("k.pem".into())),
                "client_certificate and client_key",
            ),
            (
                Box::new(|c| c.redis.sentinels = vec!["tcp://x".into()]),
                "sentinels",
            ),
        ] {
            let found = problems(edit);
            assert!(
                found.len() == 1 && found[0].contains(key),
                "{key}: {found:?}"
            );
        }
    }
}
