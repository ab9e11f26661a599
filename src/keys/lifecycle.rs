//! Key lifecycle, for signing keys (JWS, RFC 7515) and sealing keys alike:
//!
//! **published** (in the JWKS, not signing yet) → **active** (signs) →
//! **retiring** (published, no longer signs, until everything it signed has
//! expired) → **retirable** (nothing it signed can still be valid) →
//! **retired** (moved to `keys/retired/`, gone from the JWKS).
//!
//! A key's activation time is written with it (its file name), so every
//! replica that shares `keys/` switches at the same instant without talking
//! to the others. Resource servers cache the JWKS: a new key is published
//! `keys.publish_before` before it signs.

/// Where a key is in its life at some moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Published; signs from `activates`.
    Published {
        /// When it starts signing.
        activates: u64,
    },
    /// Signs now; until the next key activates, if one is scheduled.
    Active {
        /// When it started signing.
        since: u64,
        /// When the next key takes over.
        until: Option<u64>,
    },
    /// No longer signs; what it signed may be valid until `until`.
    Retiring {
        /// When the last value it signed expires.
        until: u64,
    },
    /// Nothing it signed can still be valid: `keys rotate` may retire it.
    Retirable {
        /// Since when.
        since: u64,
    },
}

impl State {
    /// The state's name, as `certbound keys list` prints it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Published { .. } => "published",
            Self::Active { .. } => "active",
            Self::Retiring { .. } => "retiring",
            Self::Retirable { .. } => "retirable",
        }
    }

    /// When the state changes next, and to what.
    pub fn next(&self) -> Option<(u64, &'static str)> {
        match *self {
            Self::Published { activates } => Some((activates, "active")),
            Self::Active { until, .. } => until.map(|t| (t, "retiring")),
            Self::Retiring { until } => Some((until, "retirable")),
            Self::Retirable { .. } => None,
        }
    }
}

/// The state at `now` of each key, given the keys' activation times
/// sorted latest first, and `lifetime`: the longest anything signed with a
/// key stays valid. A key stops signing when the next one activates.
pub fn states(activations: &[u64], now: u64, lifetime: u64) -> Vec<State> {
    let active = activations
        .iter()
        .position(|&t| t <= now)
        .unwrap_or(activations.len().saturating_sub(1));
    activations
        .iter()
        .enumerate()
        .map(|(i, &activates)| {
            if i < active {
                State::Published { activates }
            } else if i == active {
                State::Active {
                    since: activates,
                    until: i.checked_sub(1).map(|n| activations[n]),
                }
            } else {
                // Its successor (i - 1) has activated: it stopped then.
                let until = activations[i - 1].saturating_add(lifetime);
                if until <= now {
                    State::Retirable { since: until }
                } else {
                    State::Retiring { until }
                }
            }
        })
        .collect()
}

/// When a key made at `now` activates: at once if no key is active yet
/// (the first key, or all others retired), else after `delay`.
pub fn activation_for_new(activations: &[u64], now: u64, delay: u64) -> u64 {
    if activations.iter().any(|&t| t <= now) {
        now.saturating_add(delay)
    } else {
        now
    }
}

/// Which keys to retire so that at most `keep` stay published: the
/// indexes (into `states`, latest first) beyond the newest `keep` that are
/// retirable. Keys beyond `keep` that are not retirable (active, published
/// or retiring) are never retired; they are returned second.
pub fn plan_retirement(states: &[State], keep: usize) -> (Vec<usize>, Vec<usize>) {
    let (mut retire, mut kept) = (Vec::new(), Vec::new());
    for (i, state) in states.iter().enumerate().skip(keep) {
        match state {
            State::Retirable { .. } => retire.push(i),
            _ => kept.push(i),
        }
    }
    (retire, kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_published_then_active_then_retiring_then_retirable() {
        // Keys activating at 300 (future), 100 (active), 50, 10.
        let keys = [300, 100, 50, 10];
        let s = states(&keys, 200, 60);
        assert_eq!(s[0], State::Published { activates: 300 });
        assert_eq!(
            s[1],
            State::Active {
                since: 100,
                until: Some(300)
            }
        );
        // Stopped at 100: its tokens last until 160, past at 200.
        assert_eq!(s[2], State::Retirable { since: 160 });
        assert_eq!(s[3], State::Retirable { since: 110 });
        // Just after the switch at 100, the old key is retiring.
        assert_eq!(states(&keys, 120, 60)[2], State::Retiring { until: 160 });
        // At 300 the new key signs, and the previous one is retiring.
        let later = states(&keys, 300, 60);
        assert_eq!(
            later[0],
            State::Active {
                since: 300,
                until: None
            }
        );
        assert_eq!(later[1], State::Retiring { until: 360 });
        assert_eq!(later[1].next(), Some((360, "retirable")));
    }

    #[test]
    fn with_no_key_active_yet_the_first_to_activate_signs() {
        let s = states(&[500, 400], 100, 60);
        assert_eq!(s[0], State::Published { activates: 500 });
        assert!(matches!(s[1], State::Active { since: 400, .. }));
    }

    #[test]
    fn new_keys_wait_unless_none_is_active() {
        assert_eq!(activation_for_new(&[], 1000, 3600), 1000);
        assert_eq!(activation_for_new(&[2000], 1000, 3600), 1000);
        assert_eq!(activation_for_new(&[900], 1000, 3600), 4600);
    }

    #[test]
    fn retirement_never_takes_a_key_that_may_still_be_needed() {
        // published, active, retiring, retirable
        let s = states(&[300, 100, 50, 10], 130, 60);
        assert!(matches!(s[2], State::Retiring { .. }));
        assert!(matches!(s[3], State::Retirable { .. }));
        // keep 1: the active and the retiring keys are kept anyway.
        assert_eq!(plan_retirement(&s, 1), (vec![3], vec![1, 2]));
        assert_eq!(plan_retirement(&s, 2), (vec![3], vec![2]));
        assert_eq!(plan_retirement(&s, 4), (vec![], vec![]));
    }
}
