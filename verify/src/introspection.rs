//! Revocation awareness (RFC 7662): a token that passed every offline
//! check is also introspected at the authorization server, so a revoked
//! token is refused before its `exp`. Answers are cached per `jti` for a
//! short time (10 s by default, never past the token's `exp`), in a
//! bounded map. When the server cannot be asked and no fresh answer is
//! cached, the token is refused as unavailable (503): fail closed, never
//! accepted from stale knowledge.
//!
//! Only tokens that verified offline are sent, so a client cannot make
//! the resource server call the authorization server with made-up tokens;
//! and concurrent checks of one token make one request (single flight).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::client;

/// Answers kept, at most.
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;

/// How the resource server authenticates to the introspection endpoint.
#[derive(Clone)]
pub enum CallerAuth {
    /// Mutual TLS (RFC 8705 §2): the client certificate is the HTTP
    /// client's identity ([`client::HttpOptions::identity_pem`]); the
    /// `client_id` is sent in the form.
    Mtls {
        /// The resource server's client id.
        client_id: String,
    },
    /// HTTP Basic with a client id and secret (RFC 6749 §2.3.1), or a
    /// user allowed to introspect (as in WSO2).
    Basic {
        /// Client id or user name.
        id: String,
        /// Secret or password.
        secret: String,
    },
}

impl std::fmt::Debug for CallerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Mtls { client_id } => f
                .debug_struct("Mtls")
                .field("client_id", client_id)
                .finish(),
            Self::Basic { id, .. } => f
                .debug_struct("Basic")
                .field("id", id)
                .finish_non_exhaustive(),
        }
    }
}

/// Introspection at `endpoint`.
#[derive(Debug)]
pub struct Introspection {
    endpoint: String,
    client: reqwest::Client,
    auth: CallerAuth,
    ttl: Duration,
    max_entries: usize,
    cache: Mutex<Cache>,
    /// Requests under way, by `jti`: later checks of the same token wait
    /// for the answer.
    in_flight: Mutex<HashMap<String, Arc<Shared>>>,
}

/// One request's answer, shared by every check waiting for it.
type Shared = tokio::sync::OnceCell<Result<bool, String>>;

#[derive(Debug, Default)]
struct Cache {
    answers: HashMap<String, Cached>,
    /// When expired answers were last swept out (at most once a second).
    swept: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Cached {
    active: bool,
    until: Instant,
}

/// Why introspection gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("introspection at {endpoint} failed: {reason}")]
pub struct IntrospectionError {
    /// The endpoint asked.
    pub endpoint: String,
    /// What went wrong.
    pub reason: String,
}

impl Introspection {
    /// Introspects at `endpoint` as `auth`, caching answers for 10 s.
    pub fn new(endpoint: impl Into<String>, client: reqwest::Client, auth: CallerAuth) -> Self {
        Self {
            endpoint: endpoint.into(),
            client,
            auth,
            ttl: Duration::from_secs(10),
            max_entries: DEFAULT_MAX_ENTRIES,
            cache: Mutex::new(Cache::default()),
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    /// Caches answers for `ttl` (0: never) and at most `max_entries`.
    pub fn cache(mut self, ttl: Duration, max_entries: usize) -> Self {
        self.ttl = ttl;
        self.max_entries = max_entries;
        self
    }

    /// Whether the token of id `jti`, expiring at `exp` (Unix seconds,
    /// `now` being now), is active.
    pub async fn active(
        &self,
        token: &str,
        jti: &str,
        exp: u64,
        now: u64,
    ) -> Result<bool, IntrospectionError> {
        let at = Instant::now();
        if let Some(hit) = lock(&self.cache).answers.get(jti).filter(|c| at < c.until) {
            return Ok(hit.active);
        }
        let shared = lock(&self.in_flight)
            .entry(jti.to_owned())
            .or_default()
            .clone();
        let result = shared.get_or_init(|| self.ask(token)).await.clone();
        {
            let mut in_flight = lock(&self.in_flight);
            if in_flight.get(jti).is_some_and(|a| Arc::ptr_eq(a, &shared)) {
                in_flight.remove(jti);
            }
        }
        let active = result.map_err(|reason| IntrospectionError {
            endpoint: self.endpoint.clone(),
            reason,
        })?;
        let lifetime = Duration::from_secs(exp.saturating_sub(now)).min(self.ttl);
        let until = at.checked_add(lifetime);
        if let Some(until) = until.filter(|_| !lifetime.is_zero() && self.max_entries > 0) {
            let mut cache = lock(&self.cache);
            let sweep_due = cache
                .swept
                .is_none_or(|t| at.saturating_duration_since(t) >= Duration::from_secs(1));
            if cache.answers.len() >= self.max_entries && sweep_due {
                cache.answers.retain(|_, c| at < c.until);
                cache.swept = Some(at);
            }
            if cache.answers.len() >= self.max_entries
                && let Some(evict) = cache.answers.keys().next().cloned()
            {
                cache.answers.remove(&evict);
            }
            cache
                .answers
                .insert(jti.to_owned(), Cached { active, until });
        }
        Ok(active)
    }

    async fn ask(&self, token: &str) -> Result<bool, String> {
        #[derive(Deserialize)]
        struct Answer {
            active: bool,
        }
        let mut form = vec![("token", token), ("token_type_hint", "access_token")];
        let request = match &self.auth {
            CallerAuth::Mtls { client_id } => {
                form.push(("client_id", client_id));
                self.client.post(&self.endpoint)
            }
            CallerAuth::Basic { id, secret } => self
                .client
                .post(&self.endpoint)
                .basic_auth(form_encode(id), Some(form_encode(secret))),
        };
        let body = form_body(&form);
        let answer = client::send(
            request
                .header("content-type", "application/x-www-form-urlencoded")
                .header("accept", "application/json")
                .body(body),
        )
        .await?;
        let answer: Answer = serde_json::from_slice(&answer.body)
            .map_err(|e| format!("not an introspection answer: {e}"))?;
        Ok(answer.active)
    }
}

/// A panic elsewhere while holding a map leaves it usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// RFC 6749 §2.3.1: the client id and secret are form-encoded before
/// they go into Basic.
fn form_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, FORM).to_string()
}

/// `application/x-www-form-urlencoded` bytes left as they are.
const FORM: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'*')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_');

fn form_body(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding() {
        assert_eq!(
            form_body(&[("token", "a.b+c/d=="), ("client_id", "rs one")]),
            "token=a.b%2Bc%2Fd%3D%3D&client_id=rs%20one"
        );
        assert_eq!(form_encode("id:with%"), "id%3Awith%25");
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let auth = CallerAuth::Basic {
            id: "rs".into(),
            secret: "s3cret".into(),
        };
        assert!(!format!("{auth:?}").contains("s3cret"));
    }
}
