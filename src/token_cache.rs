//! A bounded cache of verified access tokens, for repeated introspection of
//! the same token (RFC 7662 callers often ask about one token many times).
//!
//! Keyed by SHA-256 of the token text, so a token that differs by one byte
//! is a miss and is verified in full. Only tokens whose signature verified
//! are stored (garbage cannot fill it). A hit re-checks `exp` and `nbf`
//! against `now`, so an entry never outlives its token. The cache sits
//! before, never instead of, any revocation check.
//!
//! Next to the claims an entry keeps the token's introspection answer,
//! serialised, once the token is introspected a second time (a token
//! introspected once, as most are, keeps none): a repeated introspection
//! then answers those bytes, after the same expiry and revocation checks,
//! without building or serialising anything.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::bounded::{self, lock};
use crate::token::{AccessClaims, Inactive};

const SHARDS: usize = 16;

/// A verified token and the key epoch it was verified under.
type Entry = (Arc<Verified>, u64);

/// What a serialised answer depends on besides the claims: the
/// [`crate::settings::Settings::generation`] of the caller's and the
/// token's tenant.
pub type AnswerKey = (u64, u64);

/// A verified access token: its claims (through `Deref`), and its
/// introspection answer once it has been asked for twice.
#[derive(Debug)]
pub struct Verified {
    claims: AccessClaims,
    asked: AtomicBool,
    answer: ArcSwapOption<(AnswerKey, Bytes)>,
}

impl Deref for Verified {
    type Target = AccessClaims;

    fn deref(&self) -> &AccessClaims {
        &self.claims
    }
}

impl Verified {
    /// Claims that verified.
    pub fn new(claims: AccessClaims) -> Self {
        Self {
            claims,
            asked: AtomicBool::new(false),
            answer: ArcSwapOption::empty(),
        }
    }

    /// The introspection answer made under `key`: the one kept, or
    /// `make`'s (kept from the second time on; made again when the
    /// settings changed).
    pub fn answer<E>(
        &self,
        key: AnswerKey,
        make: impl FnOnce(&AccessClaims) -> Result<Bytes, E>,
    ) -> Result<Bytes, E> {
        if let Some(kept) = &*self.answer.load()
            && kept.0 == key
        {
            return Ok(kept.1.clone());
        }
        let bytes = make(&self.claims)?;
        if self.asked.swap(true, Ordering::Relaxed) {
            self.answer.store(Some(Arc::new((key, bytes.clone()))));
        }
        Ok(bytes)
    }
}

/// Verified-token cache; capacity 0 disables it.
#[derive(Debug)]
pub struct TokenCache {
    shards: Vec<Mutex<HashMap<[u8; 32], Entry>>>,
    per_shard: usize,
}

impl TokenCache {
    /// A cache holding at most about `capacity` tokens.
    pub fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS);
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard,
        }
    }

    /// The claims of `token`, from the cache or from `verify` (whose valid
    /// results are cached). `epoch` names the key set `verify` checks
    /// against ([`crate::settings::Settings::key_epoch`]): an entry cached
    /// under another epoch may have been signed by a key that has left the
    /// set, so it is verified again.
    pub fn get_or_verify(
        &self,
        token: &str,
        now: u64,
        epoch: u64,
        verify: impl FnOnce(&str) -> Result<AccessClaims, Inactive>,
    ) -> Result<Arc<Verified>, Inactive> {
        if self.per_shard == 0 {
            return verify(token).map(|c| Arc::new(Verified::new(c)));
        }
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let shard = &self.shards[usize::from(key[0]) % SHARDS];
        let cached = lock(shard).get(&key).filter(|(_, e)| *e == epoch).cloned();
        crate::metrics::token_cache(cached.is_some());
        if let Some((claims, _)) = cached {
            if claims.exp <= now {
                lock(shard).remove(&key);
                return Err(Inactive::Expired);
            }
            if claims.nbf > now {
                return Err(Inactive::NotYetValid);
            }
            return Ok(claims);
        }
        let claims = Arc::new(Verified::new(verify(token)?));
        // Full: an arbitrary entry goes (expired ones also go on access).
        bounded::insert(
            &mut lock(shard),
            self.per_shard,
            key,
            (claims.clone(), epoch),
        );
        Ok(claims)
    }

    /// Drops every entry (a signing key left the key set).
    pub fn clear(&self) {
        for shard in &self.shards {
            lock(shard).clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> AccessClaims {
        AccessClaims {
            iss: "i".into(),
            sub: "s".into(),
            aud: "a".into(),
            client_id: "c".into(),
            scope: String::new(),
            iat: 0,
            nbf: 10,
            exp,
            jti: "j".into(),
            cnf: None,
            username: None,
            fid: None,
            auth_time: None,
        }
    }

    #[test]
    fn hits_never_outlive_the_token() {
        let cache = TokenCache::new(100);
        let mut calls = 0;
        for _ in 0..3 {
            let got = cache.get_or_verify("t", 50, 0, |_| {
                calls += 1;
                Ok(claims(100))
            });
            assert!(got.is_ok());
        }
        assert_eq!(calls, 1, "verified once");
        assert_eq!(
            cache.get_or_verify("t", 5, 0, |_| unreachable!()).err(),
            Some(Inactive::NotYetValid)
        );
        assert_eq!(
            cache.get_or_verify("t", 100, 0, |_| unreachable!()).err(),
            Some(Inactive::Expired)
        );
        // Gone after expiry: verified again.
        assert_eq!(
            cache
                .get_or_verify("t", 100, 0, |_| Err(Inactive::Expired))
                .err(),
            Some(Inactive::Expired)
        );
        // Failures are not cached.
        assert!(
            cache
                .get_or_verify("bad", 50, 0, |_| Err(Inactive::BadSignature))
                .is_err()
        );
        assert!(
            cache
                .get_or_verify("bad", 50, 0, |_| Ok(claims(100)))
                .is_ok()
        );
    }

    #[test]
    fn another_key_epoch_verifies_again() {
        let cache = TokenCache::new(100);
        assert!(cache.get_or_verify("t", 50, 0, |_| Ok(claims(100))).is_ok());
        assert!(cache.get_or_verify("t", 50, 0, |_| unreachable!()).is_ok());
        // The key that signed it left the set (epoch 1): the cached entry
        // is not believed, and the new verdict is.
        assert_eq!(
            cache
                .get_or_verify("t", 50, 1, |_| Err(Inactive::UnknownKey))
                .err(),
            Some(Inactive::UnknownKey)
        );
        assert!(cache.get_or_verify("t", 50, 1, |_| Ok(claims(100))).is_ok());
        cache.clear();
        let mut calls = 0;
        let _ = cache.get_or_verify("t", 50, 1, |_| {
            calls += 1;
            Ok(claims(100))
        });
        assert_eq!(calls, 1, "cleared");
    }

    #[test]
    fn stays_bounded() {
        let cache = TokenCache::new(32);
        for i in 0..1000 {
            cache
                .get_or_verify(&i.to_string(), 50, 0, |_| Ok(claims(100)))
                .unwrap();
        }
        let total: usize = cache.shards.iter().map(|s| lock(s).len()).sum();
        assert!(total <= 32, "{total}");
        let disabled = TokenCache::new(0);
        let mut calls = 0;
        for _ in 0..2 {
            disabled
                .get_or_verify("t", 50, 0, |_| {
                    calls += 1;
                    Ok(claims(100))
                })
                .unwrap();
        }
        assert_eq!(calls, 2);
    }

    #[test]
    fn an_answer_is_kept_from_the_second_ask_and_per_settings() {
        let v = Verified::new(claims(100));
        let made = std::cell::Cell::new(0);
        let ask = |key: AnswerKey| {
            v.answer::<()>(key, |c| {
                made.set(made.get() + 1);
                Ok(Bytes::from(c.jti.clone()))
            })
            .unwrap()
        };
        for _ in 0..4 {
            assert_eq!(ask((1, 1)), "j");
        }
        // Made twice (the first ask keeps nothing), then kept; other
        // settings make it again.
        assert_eq!(ask((2, 1)), "j");
        assert_eq!(made.get(), 3);
    }
}
