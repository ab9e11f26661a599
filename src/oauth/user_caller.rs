//! Users as introspection callers, as in WSO2: HTTP Basic
//! `username:password` of a user holding one of `introspection.permissions`
//! (WSO2's `[resource_access_control.introspect] permissions`).
//!
//! The password is checked with argon2id on the hashing pool, counted
//! before it is checked and throttled exactly as the login form is
//! ([`crate::login::limiter`]); verified credentials are remembered for
//! `introspection.user_cache_seconds` ([`crate::login::verified`]) so that
//! repeated calls do not pay argon2id each time. An unknown name costs a
//! check too (against a real stored hash), so a name's existence does not
//! show in the time taken.

use std::net::IpAddr;

use crate::error::OAuthError;
use crate::login::Login;
use crate::login::hashing::HashError;
use crate::settings::Settings;
use crate::tenant::Tenants;

use super::extract::{Authorization, ClientAuth};

/// Whether a Basic caller is taken for a user: its name is no client's id
/// (as sent, or form-decoded as a client's is), and some user may
/// introspect at all.
pub fn is_user(settings: &Settings, auth: &ClientAuth) -> bool {
    settings.user_callers && !names_a_client(settings, auth)
}

/// Whether the Basic name is a client's id, as sent or form-decoded (RFC
/// 6749 §2.3.1): such a caller is always that client.
fn names_a_client(settings: &Settings, auth: &ClientAuth) -> bool {
    let raw = auth.user_basic().map(|(name, _)| name);
    let decoded = match &auth.authorization {
        Some(Authorization::Basic(id, _)) => Some(id.as_str()),
        _ => None,
    };
    [raw, decoded]
        .into_iter()
        .flatten()
        .any(|id| settings.clients.get(id).is_some())
}

/// The user a Basic name means at `settings`' tenant: the name without a
/// trailing `@{domain}` of this tenant (`admin@carbon.super` is the
/// default tenant's `admin`). No user's name ends so (configuration
/// refuses it), so this never depends on who exists.
pub fn local_name<'a>(settings: &Settings, name: &'a str) -> &'a str {
    match name
        .strip_suffix(settings.domain.as_str())
        .and_then(|n| n.strip_suffix('@'))
    {
        Some(local) if !local.is_empty() => local,
        _ => name,
    }
}

/// The tenant of a Basic caller named `name@domain` where `domain` is
/// another tenant than the path's: that tenant's user, at any path, as in
/// WSO2 (which takes the tenant from the name as from the path). Decided
/// by the name's form alone, never by who exists, so it reveals nothing;
/// `None` when no other tenant is named, or the name is a client's id
/// here (a client id is always that client).
pub fn named_tenant<'a>(
    settings: &Settings,
    tenants: &'a Tenants,
    auth: &ClientAuth,
) -> Option<&'a Settings> {
    let (name, _) = auth.user_basic()?;
    if names_a_client(settings, auth) {
        return None;
    }
    let (_, domain) = name.rsplit_once('@')?;
    if domain == settings.domain {
        return None;
    }
    tenants.get(domain).map(|tenant| &**tenant)
}

/// The one answer to a user caller that is refused, whatever the reason.
pub fn refused() -> OAuthError {
    OAuthError::InvalidClient("caller authentication failed".into())
}

/// Authenticates the user `username` with `password` from `address` at
/// `now`, and checks that it may introspect. A wrong password, an unknown
/// name and a user without the permission get the same answer and count
/// the same failure, so introspection is no oracle for passwords.
pub async fn authenticate(
    settings: &Settings,
    login: &Login,
    username: &str,
    password: &str,
    address: Option<IpAddr>,
    now: u64,
) -> Result<(), OAuthError> {
    let failed = refused;
    let permissions = &settings.config.introspection.permissions;
    let user = settings
        .users
        .get(username)
        .filter(|u| u.holds_any(permissions));
    // Cache entries, turns and failure counts are per tenant and name.
    let name = settings.throttle_name(username);
    let remembered =
        |user: &std::sync::Arc<crate::users::User>| login.verified.get(user, &name, password, now);
    if user.is_some_and(remembered) {
        return Ok(());
    }
    // One check per credentials at a time, whoever they name; whoever
    // waited finds it done.
    let _turn = login.verified.turn(&name, password).await;
    if user.is_some_and(remembered) {
        return Ok(());
    }
    let attempt = login
        .begin(&name, address)
        .await
        .map_err(|refused| match refused {
            crate::login::shared::Refused::Wait(wait) => OAuthError::Throttled(wait),
            crate::login::shared::Refused::Unavailable => OAuthError::TemporarilyUnavailable(
                "sign-in limits cannot be checked now; retry shortly".into(),
            ),
        })?;
    let checked = login
        .hashing
        .verify(settings.users.clone(), username, password)
        .await;
    match checked {
        Err(HashError::Busy | HashError::Stopped) => {
            attempt.not_checked();
            Err(OAuthError::TemporarilyUnavailable(
                "too many passwords are being checked; retry shortly".into(),
            ))
        }
        Ok(Some(user)) if user.holds_any(permissions) => {
            attempt.succeeded();
            let lifetime = settings.config.introspection.user_cache_seconds;
            if lifetime > 0 {
                let expires = now.saturating_add(lifetime);
                login.verified.put(&user, &name, password, expires, now);
            }
            Ok(())
        }
        Ok(_) => {
            drop(attempt);
            tracing::info!(
                address = address.map(tracing::field::display),
                "failed introspection caller authentication"
            );
            Err(failed())
        }
    }
}
