//! One object that checks tokens: keys (a static JWKS, or fetched and
//! cached by [`RemoteKeys`]), what is expected of a token ([`Expect`]),
//! and, optionally, introspection for revocation ([`Introspection`]).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;

use crate::access::{self, AccessToken, Expect, Failure};
use crate::introspection::Introspection;
use crate::jwks::Jwks;
use crate::jws::{self, JwsError};
use crate::remote::{Refetched, RemoteKeys};

/// Where the verification keys come from.
#[derive(Debug, Clone)]
pub enum Keys {
    /// A JWKS given once (a file, or fetched by the application).
    Static(Arc<Jwks>),
    /// The authorization server's JWKS, fetched and kept fresh.
    Remote(RemoteKeys),
}

/// Checks access tokens.
#[derive(Debug)]
pub struct Verifier {
    keys: Keys,
    expect: Expect,
    introspection: Option<Introspection>,
}

impl Verifier {
    /// Tokens checked offline with `keys` against `expect`.
    pub fn new(keys: Keys, expect: Expect) -> Self {
        Self {
            keys,
            expect,
            introspection: None,
        }
    }

    /// Also asks `introspection` of every token that passes offline.
    pub fn with_introspection(mut self, introspection: Introspection) -> Self {
        self.introspection = Some(introspection);
        self
    }

    /// The keys.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// What tokens must be.
    pub fn expect(&self) -> &Expect {
        &self.expect
    }

    /// Verifies `token`, presented with the certificate of thumbprint
    /// `presented` ([`crate::binding::thumbprint`]), if any, now.
    pub async fn verify<E: DeserializeOwned>(
        &self,
        token: &str,
        presented: Option<&str>,
    ) -> Result<AccessToken<E>, Failure> {
        let now = unix_now();
        let claims = self.offline(token, presented, now).await?;
        if let Some(introspection) = &self.introspection
            && !introspection
                .active(token, &claims.jti, claims.exp, now)
                .await?
        {
            return Err(Failure::Revoked);
        }
        Ok(claims)
    }

    async fn offline<E: DeserializeOwned>(
        &self,
        token: &str,
        presented: Option<&str>,
        now: u64,
    ) -> Result<AccessToken<E>, Failure> {
        let remote = match &self.keys {
            Keys::Static(set) => {
                return access::verify(&**set, token, &self.expect, presented, now);
            }
            Keys::Remote(remote) => remote,
        };
        let mut seen = remote.current();
        // The set in use, then at most two newer ones (one another request
        // fetched meanwhile, one fetched for this kid), each looked in.
        let mut newer = 0;
        loop {
            if let Some(set) = &seen {
                match access::verify(&**set, token, &self.expect, presented, now) {
                    Err(Failure::Jws(JwsError::UnknownKey)) => {}
                    other => return other,
                }
            }
            let Some(kid) = jws::kid(token).filter(|_| newer < 2) else {
                return Err(JwsError::UnknownKey.into());
            };
            match remote.refetch(Some(&kid), seen.as_ref()).await? {
                Refetched::Newer(set) => seen = Some(set),
                Refetched::NoSuchKey => return Err(JwsError::UnknownKey.into()),
            }
            newer += 1;
        }
    }
}

/// Now, Unix seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
