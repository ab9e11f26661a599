//! The failed-login throttle's counters shared by replicas through Redis
//! (`revocation.backend = "redis"`), so that guessing spread over replicas
//! is limited as on one node (RFC 6819 §5.1.4.2.3).
//!
//! Two hashes per attempt, counted and checked by one script, atomically:
//! `{prefix}:login:v2:pair:<user hash>:<address>` (failures, last failure, ms) and
//! `{prefix}:login:v2:address:<address>` (failures, window start, ms), each
//! expiring with its window. The local [`Limiter`] still limits what runs
//! at once on this replica; the shared counts decide the delays.

use std::sync::Arc;

use super::limiter::{Limiter, Policy};
use crate::revocation::redis::Shared;

/// KEYS: pair, address. ARGV: now and window (milliseconds), free per
/// user, max per address. Returns 0 (counted as a failure until it ends)
/// or the milliseconds to wait.
const BEGIN: &str = r#"
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local free, max = tonumber(ARGV[3]), tonumber(ARGV[4])
local pf = tonumber(redis.call('HGET', KEYS[1], 'f') or '0')
local pl = tonumber(redis.call('HGET', KEYS[1], 'l') or '0')
if now >= pl + window then pf = 0 end
local af = tonumber(redis.call('HGET', KEYS[2], 'f') or '0')
local as = tonumber(redis.call('HGET', KEYS[2], 's') or tostring(now))
if now >= as + window then af = 0; as = now end
local wait = 0
if pf >= free then
  local delay = window
  if pf - free < 40 then delay = math.min(2 ^ (pf - free) * 1000, window) end
  wait = math.max(wait, pl + delay - now)
end
if af >= max then wait = math.max(wait, as + window - now) end
if wait > 0 then return wait end
redis.call('HSET', KEYS[1], 'f', pf + 1, 'l', now)
redis.call('PEXPIRE', KEYS[1], window)
redis.call('HSET', KEYS[2], 'f', af + 1, 's', as)
redis.call('PEXPIRE', KEYS[2], math.max(1, as + window - now))
return 0
"#;

/// KEYS: pair, address. ARGV: 1 succeeded (the pair is forgotten), 0 not
/// checked (the attempt is taken back). The address keeps a success's
/// attempt uncounted either way.
const END: &str = r#"
if ARGV[1] == '1' then
  redis.call('DEL', KEYS[1])
elseif tonumber(redis.call('HGET', KEYS[1], 'f') or '0') > 0 then
  redis.call('HINCRBY', KEYS[1], 'f', -1)
end
if tonumber(redis.call('HGET', KEYS[2], 'f') or '0') > 0 then
  redis.call('HINCRBY', KEYS[2], 'f', -1)
end
return 0
"#;

/// The shared counters.
#[derive(Debug)]
pub struct SharedThrottle {
    redis: Arc<Shared>,
    begin: redis::Script,
    end: redis::Script,
}

/// Why the shared counters refused an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Too many failures: wait this many seconds.
    Wait(u64),
    /// Redis did not answer: the attempt cannot be counted (503).
    Unavailable,
}

/// The two keys of an attempt.
pub(crate) fn keys(user: &[u8; 16], address: &std::net::IpAddr) -> [String; 2] {
    [
        // v2: times in milliseconds (v1 kept seconds; a replica of either
        // never reads the other's counts).
        format!("login:v2:pair:{}:{address}", hex::encode(user)),
        format!("login:v2:address:{address}"),
    ]
}

impl SharedThrottle {
    pub fn new(redis: Arc<Shared>) -> Self {
        Self {
            redis,
            begin: redis::Script::new(BEGIN),
            end: redis::Script::new(END),
        }
    }

    /// Counts an attempt with these keys at `now` (Unix milliseconds) under
    /// `policy`.
    pub async fn begin(&self, keys: &[String; 2], policy: Policy, now: u64) -> Result<(), Refused> {
        let keys = [keys[0].as_str(), keys[1].as_str()];
        let args = [
            now,
            policy.window.saturating_mul(1000),
            u64::from(policy.free_per_user),
            u64::from(policy.max_per_address),
        ];
        match self.redis.eval(&self.begin, &keys, &args).await {
            Ok(0) => Ok(()),
            Ok(wait) => Err(Refused::Wait((wait.max(1) as u64).div_ceil(1000))),
            Err(error) => {
                tracing::warn!(%error, "login throttle: Redis did not answer; the sign-in was refused (503)");
                Err(Refused::Unavailable)
            }
        }
    }

    /// Ends an attempt that did not fail (in the background: the answer
    /// does not wait for it).
    pub(crate) fn end(self: &Arc<Self>, keys: [String; 2], succeeded: bool) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let this = self.clone();
        runtime.spawn(async move {
            let keys = [keys[0].as_str(), keys[1].as_str()];
            if let Err(error) = this
                .redis
                .eval(&this.end, &keys, &[u64::from(succeeded)])
                .await
            {
                tracing::debug!(%error, "login throttle: could not take an attempt back in Redis");
            }
        });
    }
}

/// Both throttles: the local one, then (with Redis) the shared counts.
pub async fn begin<'a>(
    limiter: &'a Limiter,
    shared: Option<&Arc<SharedThrottle>>,
    username: &str,
    address: Option<std::net::IpAddr>,
    now: u64,
) -> Result<super::limiter::Attempt<'a>, Refused> {
    let attempt = limiter.begin(username, address, now).map_err(|wait| {
        crate::metrics::login_throttled();
        Refused::Wait(wait)
    })?;
    let Some(shared) = shared else {
        return Ok(attempt);
    };
    let keys = attempt.shared_keys();
    match shared.begin(&keys, limiter.current_policy(), now).await {
        Ok(()) => Ok(attempt.shared_with(shared.clone(), keys)),
        Err(refused) => {
            if let Refused::Wait(_) = refused {
                crate::metrics::login_throttled();
            }
            attempt.not_checked();
            Err(refused)
        }
    }
}
