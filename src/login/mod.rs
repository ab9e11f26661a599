//! Browser login for the authorization endpoint (RFC 6749 §4.1.1, OIDC Core
//! §3.1.2.3): users, the login session and "Approve always" cookies, CSRF
//! protection of the forms, and failed-login throttling. Stateless: the
//! session and consent decisions are sealed cookies ([`crate::seal`]).

pub mod hashing;
pub mod limiter;
pub mod pages;
pub mod shared;
pub mod verified;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::LoginConfig;

/// The login session cookie.
pub const SESSION_COOKIE: &str = "certbound_session";
/// The CSRF cookie (double submit: the forms carry the same value).
pub const CSRF_COOKIE: &str = "certbound_csrf";
/// Prefix of "Approve always" cookies, one per user and client.
pub const CONSENT_COOKIE_PREFIX: &str = "certbound_consent_";

/// A login session, sealed into [`SESSION_COOKIE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The user.
    #[serde(rename = "u")]
    pub username: String,
    /// When the user authenticated.
    #[serde(rename = "at")]
    pub auth_time: u64,
    /// Session id (OIDC `sid`).
    pub sid: String,
    /// Expiry.
    #[serde(rename = "e")]
    pub expires: u64,
}

/// An "Approve always" decision, sealed into a consent cookie.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    /// The user.
    #[serde(rename = "u")]
    pub username: String,
    /// The client.
    #[serde(rename = "c")]
    pub client_id: String,
    /// The approved scope.
    #[serde(rename = "s")]
    pub scope: String,
    /// Expiry.
    #[serde(rename = "e")]
    pub expires: u64,
}

/// Login throttling and the password-checking pool: long-lived, kept
/// across reloads (the users themselves are settings).
#[derive(Debug)]
pub struct Login {
    /// Failed-login throttle.
    pub limiter: limiter::Limiter,
    /// argon2id takes ~19 MiB and tens of milliseconds per check: a fixed
    /// pool of workers, never on the token path (introspection: only for a
    /// user caller not remembered).
    pub hashing: hashing::HashPool,
    /// Introspection callers' recently verified user credentials.
    pub verified: verified::Verified,
    /// The throttle's counters in Redis, shared by replicas.
    pub shared: Option<std::sync::Arc<shared::SharedThrottle>>,
}

impl Login {
    /// Starts the hashing workers (`login.hash_workers`, 0: one per core).
    pub fn new(
        config: &LoginConfig,
        redis: Option<std::sync::Arc<crate::revocation::redis::Shared>>,
    ) -> Result<Self, String> {
        let workers = match config.hash_workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        Ok(Self {
            limiter: limiter::Limiter::new(Self::policy(config)),
            hashing: hashing::HashPool::start(workers, config.hash_queue)?,
            verified: verified::Verified::new()?,
            shared: redis.map(|r| std::sync::Arc::new(shared::SharedThrottle::new(r))),
        })
    }

    /// Starts an attempt for `username` from `address` now, counted as a
    /// failure until it succeeds: on this replica, and with Redis in the
    /// shared counters. The throttle keeps milliseconds, so a delay of a
    /// second is a second.
    pub async fn begin(
        &self,
        username: &str,
        address: Option<std::net::IpAddr>,
    ) -> Result<limiter::Attempt<'_>, shared::Refused> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        shared::begin(&self.limiter, self.shared.as_ref(), username, address, now).await
    }

    /// The throttle's limits from `config`.
    pub fn policy(config: &LoginConfig) -> limiter::Policy {
        limiter::Policy {
            window: config.failure_window,
            free_per_user: config.max_failures_per_user,
            max_per_address: config.max_failures_per_address,
        }
    }
}

/// The consent cookie name for a user and client: a hash, so neither name
/// shows in the cookie jar.
pub fn consent_cookie_name(username: &str, client_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(username.as_bytes());
    h.update([0]);
    h.update(client_id.as_bytes());
    format!(
        "{CONSENT_COOKIE_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(&h.finalize()[..12])
    )
}

/// A `Set-Cookie` value: HttpOnly, Secure, SameSite=Lax. `max_age` 0
/// deletes the cookie.
pub fn set_cookie(name: &str, value: &str, path: &str, max_age: u64) -> String {
    format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; Secure; SameSite=Lax")
}

/// The value of cookie `name` in the request's `Cookie` headers. A name
/// sent twice is treated as absent (a planted duplicate must not win).
pub fn cookie<'a>(req: &'a poem::Request, name: &str) -> Option<&'a str> {
    let mut found = None;
    for header in req.headers().get_all(poem::http::header::COOKIE) {
        let Ok(text) = header.to_str() else { continue };
        for pair in text.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=')
                && k == name
            {
                if found.is_some() {
                    return None;
                }
                found = Some(v.trim_matches('"'));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_parsed_strictly() {
        let req = |v: &str| {
            poem::Request::builder()
                .header(poem::http::header::COOKIE, v)
                .finish()
        };
        assert_eq!(cookie(&req("a=1; b=2"), "b"), Some("2"));
        assert_eq!(cookie(&req("a=1; ab=2"), "b"), None);
        assert_eq!(cookie(&req("b=1; b=2"), "b"), None, "duplicate");
        assert_ne!(
            consent_cookie_name("a", "bc"),
            consent_cookie_name("ab", "c")
        );
        assert!(set_cookie("n", "v", "/", 5).contains("HttpOnly; Secure; SameSite=Lax"));
    }
}
