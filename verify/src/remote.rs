//! The authorization server's keys, fetched and cached (RFC 7517 JWKS, at
//! a URL or found by RFC 8414 discovery).
//!
//! - One fetch at a time (single flight): requests that need the keys
//!   while a fetch is under way wait for it rather than start their own.
//! - A token with an unknown `kid` refetches the set (the server may have
//!   rotated), but such fetches are at least `cooldown` apart, and a `kid` that a fetch
//!   did not find is not looked for again for `forget_unknown` (60 s): a flood of
//!   made-up `kid`s costs the authorization server at most one request per
//!   cooldown.
//! - The set is refreshed in the background before its `Cache-Control:
//!   max-age` runs out (clamped to `max_age_bounds`; `default_max_age`
//!   without one).
//! - A failed fetch keeps the last good set, and says so in the log and in
//!   the error of a token it cannot check. Before any fetch has
//!   succeeded, every token is refused as [`KeysError`]: fail closed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use jsonwebtoken::Algorithm;

use crate::client;
use crate::jwks::Jwks;
use crate::jws::KeyLookup;

/// `kid`s remembered as missing, at most.
const MAX_UNKNOWN: usize = 1024;

/// How keys are fetched and kept.
#[derive(Debug, Clone)]
pub struct KeysOptions {
    /// Algorithms a key may be pinned to (empty: certbound's).
    pub allowed: Vec<Algorithm>,
    /// Least time between two fetches caused by unknown `kid`s (30 s).
    pub cooldown: Duration,
    /// After a failed fetch, the first wait before the next (5 s); it
    /// doubles with each failure, up to `cooldown`.
    pub retry: Duration,
    /// Freshness of a set served without `max-age` (300 s).
    pub default_max_age: Duration,
    /// `max-age` is clamped to these (60 s to 24 h).
    pub max_age_bounds: (Duration, Duration),
    /// How long a `kid` a fetch did not find stays known as missing (60 s).
    pub forget_unknown: Duration,
}

impl KeysOptions {
    /// The options with every duration in a range that cannot overflow an
    /// `Instant` or spin: at most a year, `retry` at least 50 ms, the
    /// lower `max-age` bound at least 100 ms.
    fn sane(mut self) -> Self {
        const YEAR: Duration = Duration::from_secs(365 * 86_400);
        let cap = |d: Duration| d.min(YEAR);
        self.cooldown = cap(self.cooldown).max(Duration::from_millis(100));
        self.retry = cap(self.retry).max(Duration::from_millis(50));
        self.default_max_age = cap(self.default_max_age);
        let low = cap(self.max_age_bounds.0).max(Duration::from_millis(100));
        self.max_age_bounds = (low, cap(self.max_age_bounds.1).max(low));
        self.forget_unknown = cap(self.forget_unknown);
        self
    }
}

impl Default for KeysOptions {
    fn default() -> Self {
        Self {
            allowed: Vec::new(),
            cooldown: Duration::from_secs(30),
            retry: Duration::from_secs(5),
            default_max_age: Duration::from_secs(300),
            max_age_bounds: (Duration::from_secs(60), Duration::from_secs(86_400)),
            forget_unknown: Duration::from_secs(60),
        }
    }
}

/// The keys cannot be had: no fetch has succeeded yet, or a token names a
/// `kid` the last good set lacks and refetching it failed. A problem of
/// the authorization server or the network, not of the token (503).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeysError {
    /// No set has been fetched.
    #[error("no keys: the JWKS of {from} cannot be fetched: {reason}")]
    Unavailable {
        /// The JWKS URL or issuer.
        from: String,
        /// The last fetch's failure.
        reason: String,
    },
    /// The token's key is not in the set kept, which could not be
    /// refreshed.
    #[error(
        "unknown key, and the JWKS of {from} cannot be refetched ({reason}); still using the keys fetched {age_secs} s ago"
    )]
    Stale {
        /// The JWKS URL or issuer.
        from: String,
        /// The last fetch's failure.
        reason: String,
        /// Age of the set kept.
        age_secs: u64,
    },
}

/// Where the keys are.
#[derive(Debug, Clone)]
enum Locate {
    Jwks(String),
    Issuer(String),
}

/// Keys fetched from the authorization server and kept fresh. Cheap to
/// clone; the background refresh ends with the last clone.
#[derive(Debug, Clone)]
pub struct RemoteKeys {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    locate: Locate,
    client: reqwest::Client,
    options: KeysOptions,
    current: ArcSwapOption<Jwks>,
    fetch: tokio::sync::Mutex<State>,
    fetches: AtomicU64,
    /// Whether the background refresh runs.
    refreshing: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    /// From discovery, once found.
    jwks_uri: Option<String>,
    last_attempt: Option<Instant>,
    /// The last fetch an unknown `kid` caused.
    last_triggered: Option<Instant>,
    /// Why the last fetch failed; `None` after a success.
    last_error: Option<String>,
    failures: u32,
    fetched_at: Option<Instant>,
    /// When the set should be refreshed.
    refresh_at: Option<Instant>,
    /// `kid`s a fetch did not find, and when.
    unknown: HashMap<String, Instant>,
}

/// What a fetch for an unknown `kid` found.
pub enum Refetched {
    /// A newer set than the one looked in: look again.
    Newer(Arc<Jwks>),
    /// The set is current and has no such key.
    NoSuchKey,
}

impl RemoteKeys {
    /// Keys from the JWKS at `url`.
    pub fn from_jwks_uri(
        url: impl Into<String>,
        client: reqwest::Client,
        options: KeysOptions,
    ) -> Self {
        Self::start(Locate::Jwks(url.into()), client, options)
    }

    /// Keys from the JWKS that `issuer`'s metadata names
    /// ([`client::discover`]).
    pub fn from_issuer(
        issuer: impl Into<String>,
        client: reqwest::Client,
        options: KeysOptions,
    ) -> Self {
        Self::start(Locate::Issuer(issuer.into()), client, options)
    }

    /// Starts the background refresh (and with it the first fetch); made
    /// outside a Tokio runtime, at first use.
    fn start(locate: Locate, client: reqwest::Client, options: KeysOptions) -> Self {
        let inner = Arc::new(Inner {
            locate,
            client,
            options: options.sane(),
            current: ArcSwapOption::empty(),
            fetch: tokio::sync::Mutex::new(State::default()),
            fetches: AtomicU64::new(0),
            refreshing: std::sync::atomic::AtomicBool::new(false),
        });
        let keys = Self { inner };
        keys.keep_fresh();
        keys
    }

    /// Starts the background refresh if it is not running and a Tokio
    /// runtime is at hand (made outside one, the keys start it at their
    /// first use).
    fn keep_fresh(&self) {
        if self.inner.refreshing.load(Ordering::Relaxed) {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current()
            && !self.inner.refreshing.swap(true, Ordering::AcqRel)
        {
            runtime.spawn(refresh(Arc::downgrade(&self.inner)));
        }
    }

    /// The set in use, if one has been fetched.
    pub fn current(&self) -> Option<Arc<Jwks>> {
        self.keep_fresh();
        self.inner.current.load_full()
    }

    /// How many fetches of the JWKS (or discovery) were attempted.
    pub fn fetches(&self) -> u64 {
        self.inner.fetches.load(Ordering::Relaxed)
    }

    /// Waits for a set: the one in use, or the first fetch.
    pub async fn ready(&self) -> Result<Arc<Jwks>, KeysError> {
        if let Some(set) = self.current() {
            return Ok(set);
        }
        match self.refetch(None, None).await? {
            Refetched::Newer(set) => Ok(set),
            Refetched::NoSuchKey => self.current().ok_or_else(|| self.inner.unavailable("")),
        }
    }

    /// After a token named `kid` that `seen` (the set it was looked in,
    /// if any) lacks: a newer set to look in, or that there is no such
    /// key, within the cooldown and negative-cache rules above.
    pub async fn refetch(
        &self,
        kid: Option<&str>,
        seen: Option<&Arc<Jwks>>,
    ) -> Result<Refetched, KeysError> {
        let inner = &self.inner;
        let mut state = inner.fetch.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(set) = inner.newer_than(seen) {
            return Ok(Refetched::Newer(set));
        }
        let now = Instant::now();
        let known_missing = kid.is_some_and(|kid| {
            state
                .unknown
                .get(kid)
                .is_some_and(|at| now < *at + inner.options.forget_unknown)
        });
        if known_missing || !inner.may_fetch(&state, kid.is_some(), now) {
            return inner.verdict(&state, now);
        }
        if kid.is_some() {
            state.last_triggered = Some(now);
        }
        inner.fetch(&mut state).await;
        if let Some(set) = inner.newer_than(seen)
            && kid.is_none_or(|kid| set.key(kid).is_some())
        {
            return Ok(Refetched::Newer(set));
        }
        if let Some(kid) = kid
            && state.last_error.is_none()
        {
            remember_unknown(&mut state.unknown, kid, now, inner.options.forget_unknown);
        }
        inner.verdict(&state, now)
    }
}

impl Inner {
    fn source(&self) -> &str {
        match &self.locate {
            Locate::Jwks(s) | Locate::Issuer(s) => s,
        }
    }

    fn newer_than(&self, seen: Option<&Arc<Jwks>>) -> Option<Arc<Jwks>> {
        let current = self.current.load_full()?;
        match seen {
            Some(seen) if Arc::ptr_eq(seen, &current) => None,
            _ => Some(current),
        }
    }

    /// Whether a request may cause a fetch now: after a failure, once the
    /// backoff has passed; otherwise for an unknown `kid`, once the
    /// cooldown since the last such fetch has (scheduled refreshes do not
    /// count, so a key published after one is found at once).
    fn may_fetch(&self, state: &State, for_kid: bool, now: Instant) -> bool {
        if state.last_error.is_some() {
            let wait = self.backoff(state.failures);
            return state.last_attempt.is_none_or(|at| now >= at + wait);
        }
        if state.fetched_at.is_none() {
            return true;
        }
        for_kid
            && state
                .last_triggered
                .is_none_or(|at| now >= at + self.options.cooldown)
    }

    fn backoff(&self, failures: u32) -> Duration {
        let doubled = self
            .options
            .retry
            .saturating_mul(1 << failures.saturating_sub(1).min(16));
        doubled.min(self.options.cooldown.max(self.options.retry))
    }

    /// No newer set: the key does not exist, or the keys cannot be had.
    fn verdict(&self, state: &State, now: Instant) -> Result<Refetched, KeysError> {
        let Some(reason) = &state.last_error else {
            return Ok(Refetched::NoSuchKey);
        };
        match state.fetched_at {
            Some(at) => Err(KeysError::Stale {
                from: self.source().into(),
                reason: reason.clone(),
                age_secs: now.duration_since(at).as_secs(),
            }),
            None => Err(self.unavailable(reason)),
        }
    }

    fn unavailable(&self, reason: &str) -> KeysError {
        KeysError::Unavailable {
            from: self.source().into(),
            reason: reason.into(),
        }
    }

    /// One fetch (discovery first, when the JWKS URL is not known yet);
    /// the caller holds the lock. A failure keeps the set in use.
    async fn fetch(&self, state: &mut State) {
        let now = Instant::now();
        state.last_attempt = Some(now);
        self.fetches.fetch_add(1, Ordering::Relaxed);
        match self.get(state).await {
            Ok((set, max_age)) => {
                let (low, high) = self.options.max_age_bounds;
                let max_age = max_age
                    .unwrap_or(self.options.default_max_age)
                    .clamp(low, high);
                for why in set.skipped() {
                    tracing::debug!(source = self.source(), key = %why, "JWKS key skipped");
                }
                tracing::debug!(
                    source = self.source(),
                    keys = set.len(),
                    max_age_secs = max_age.as_secs(),
                    "JWKS fetched"
                );
                self.current.store(Some(Arc::new(set)));
                state.last_error = None;
                state.failures = 0;
                state.fetched_at = Some(now);
                // Refresh at three quarters of the lifetime.
                state.refresh_at = Some(now + max_age * 3 / 4);
            }
            Err(reason) => {
                match state.fetched_at {
                    Some(at) => tracing::warn!(
                        source = self.source(),
                        error = %reason,
                        age_secs = now.duration_since(at).as_secs(),
                        "JWKS fetch failed; keeping the last good keys"
                    ),
                    None => tracing::warn!(
                        source = self.source(),
                        error = %reason,
                        "JWKS fetch failed; no keys yet, every token is refused"
                    ),
                }
                state.last_error = Some(reason);
                state.failures = state.failures.saturating_add(1);
            }
        }
    }

    async fn get(&self, state: &mut State) -> Result<(Jwks, Option<Duration>), String> {
        let url = match (&self.locate, &state.jwks_uri) {
            (Locate::Jwks(url), _) | (Locate::Issuer(_), Some(url)) => url.clone(),
            (Locate::Issuer(issuer), None) => {
                let url = client::discover(&self.client, issuer).await?.jwks_uri;
                state.jwks_uri = Some(url.clone());
                url
            }
        };
        let answer = client::send(self.client.get(&url)).await?;
        let set = Jwks::from_json(&answer.body, &self.options.allowed)
            .map_err(|e| format!("JWKS at {url}: {e}"))?;
        Ok((set, client::max_age(&answer.headers)))
    }

    /// When the background task should next look.
    fn next_refresh(&self, state: &State, now: Instant) -> Instant {
        match (&state.last_error, state.refresh_at, state.last_attempt) {
            (Some(_), _, Some(at)) => at + self.backoff(state.failures),
            (None, Some(at), _) => at,
            _ => now,
        }
    }
}

fn remember_unknown(
    unknown: &mut HashMap<String, Instant>,
    kid: &str,
    now: Instant,
    forget: Duration,
) {
    if unknown.len() >= MAX_UNKNOWN {
        unknown.retain(|_, at| now < *at + forget);
    }
    if unknown.len() < MAX_UNKNOWN && kid.len() <= 256 {
        unknown.insert(kid.to_owned(), now);
    }
}

/// The background refresh: fetches when the set is due (or missing), then
/// sleeps until it next will be; ends when the keys are dropped.
async fn refresh(inner: Weak<Inner>) {
    loop {
        let wake = {
            let Some(inner) = inner.upgrade() else { return };
            let mut state = inner.fetch.lock().await;
            let now = Instant::now();
            if now >= inner.next_refresh(&state, now) {
                inner.fetch(&mut state).await;
            }
            inner.next_refresh(&state, Instant::now())
        };
        tokio::time::sleep_until(wake.into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cooldown() {
        let inner = Inner {
            locate: Locate::Jwks("http://127.0.0.1:9/jwks".into()),
            client: reqwest::Client::new(),
            options: KeysOptions::default(),
            current: ArcSwapOption::empty(),
            fetch: tokio::sync::Mutex::new(State::default()),
            fetches: AtomicU64::new(0),
            refreshing: std::sync::atomic::AtomicBool::new(false),
        };
        let secs = |n| inner.backoff(n).as_secs();
        assert_eq!(
            [secs(1), secs(2), secs(3), secs(4), secs(40)],
            [5, 10, 20, 30, 30]
        );
    }

    #[test]
    fn the_negative_cache_is_bounded() {
        let mut unknown = HashMap::new();
        let now = Instant::now();
        let forget = Duration::from_secs(300);
        for i in 0..(MAX_UNKNOWN + 100) {
            remember_unknown(&mut unknown, &format!("kid-{i}"), now, forget);
        }
        assert_eq!(unknown.len(), MAX_UNKNOWN);
        remember_unknown(&mut unknown, &"k".repeat(300), now, forget);
        assert!(!unknown.contains_key(&"k".repeat(300)));
        // Expired entries make room.
        let later = now + forget + Duration::from_secs(1);
        remember_unknown(&mut unknown, "fresh", later, forget);
        assert_eq!(unknown.len(), 1);
    }
}
