//! The authorization endpoint's cookies: the login session, "Approve
//! always" decisions (both sealed, [`crate::seal`]) and the CSRF token,
//! double-submitted by the forms.

use poem::Request;
use subtle::ConstantTimeEq;

use super::request::Pending;
use crate::login::{self, Consent, Session};
use crate::seal::{Purpose, random_id};
use crate::settings::Settings;

/// The session from the cookie, if it opens, is valid at `now`, its user
/// still exists, and no revoke-all of the user came after its sign-in (a
/// list that cannot say counts as one: sign in again).
pub fn session(
    settings: &Settings,
    revocations: &crate::revocation::Revocations,
    req: &Request,
    now: u64,
) -> Option<Session> {
    let session: Session = settings
        .sealer
        .open(Purpose::Session, login::cookie(req, login::SESSION_COOKIE)?)?;
    settings.users.get(&session.username)?;
    let revoked = revocations
        .not_before(&settings.tokens.issuer, None, Some(&session.username))
        .map_or(true, |nb| {
            nb.revokes(session.auth_time, Some(session.auth_time))
        });
    (session.expires > now && !revoked).then_some(session)
}

/// The path prefix the request came in under (`""`, or `/t/{domain}`):
/// cookies are scoped to it, so one tenant's never reach another.
fn base(req: &Request) -> &str {
    req.extensions()
        .get::<crate::tenant::BasePath>()
        .map_or("", |b| b.0.as_str())
}

/// A `Set-Cookie` for `session`.
pub fn set_session(
    settings: &Settings,
    req: &Request,
    session: &Session,
) -> Result<String, String> {
    Ok(login::set_cookie(
        login::SESSION_COOKIE,
        &settings.sealer.seal(Purpose::Session, session)?,
        &format!("{}/oauth2/", base(req)),
        settings.config.login.session_lifetime,
    ))
}

/// A `Set-Cookie` that ends the session (the "not you?" button).
pub fn clear_session(req: &Request) -> String {
    login::set_cookie(
        login::SESSION_COOKIE,
        "",
        &format!("{}/oauth2/", base(req)),
        0,
    )
}

/// The "Approve always" decision of `username` for the pending request's
/// client, if the browser has one that opens.
pub fn consent(
    settings: &Settings,
    req: &Request,
    pending: &Pending,
    username: &str,
) -> Option<Consent> {
    let name = login::consent_cookie_name(username, &pending.asked.client_id);
    login::cookie(req, &name).and_then(|v| settings.sealer.open(Purpose::Consent, v))
}

/// A `Set-Cookie` for `consent`.
pub fn set_consent(
    settings: &Settings,
    req: &Request,
    consent: &Consent,
) -> Result<String, String> {
    Ok(login::set_cookie(
        &login::consent_cookie_name(&consent.username, &consent.client_id),
        &settings.sealer.seal(Purpose::Consent, consent)?,
        &format!("{}/oauth2/authorize", base(req)),
        settings.config.login.consent_lifetime,
    ))
}

/// The browser's CSRF token, and a `Set-Cookie` when it has none yet.
pub fn csrf_token(req: &Request) -> (String, Option<String>) {
    match login::cookie(req, login::CSRF_COOKIE).filter(|v| {
        v.len() == 22
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }) {
        Some(v) => (v.to_string(), None),
        None => {
            let v = random_id().unwrap_or_default();
            let path = format!("{}/oauth2/authorize", base(req));
            let cookie = login::set_cookie(login::CSRF_COOKIE, &v, &path, 86_400);
            (v, Some(cookie))
        }
    }
}

/// Double submit: the form's token equals the cookie's and the one sealed
/// into the form's pending request, compared in constant time.
pub fn csrf_ok(req: &Request, field: Option<&str>, pending: &Pending) -> bool {
    match (field, login::cookie(req, login::CSRF_COOKIE)) {
        (Some(field), Some(cookie)) => {
            bool::from(field.as_bytes().ct_eq(cookie.as_bytes()))
                & bool::from(field.as_bytes().ct_eq(pending.csrf.as_bytes()))
        }
        _ => false,
    }
}
