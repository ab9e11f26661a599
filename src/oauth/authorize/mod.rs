//! The authorization endpoint (RFC 6749 §4.1.1, OpenID Connect Core
//! §3.1.2): validates the request, logs the user in, asks for consent, and
//! redirects back with a sealed, single-use authorization code.
//!
//! - The client and its redirect URI are checked first, by exact match (RFC
//!   9700 §2.1). Until both are trusted, errors are shown as a page and never
//!   redirected (RFC 6749 §4.1.2.1: no open redirector).
//! - Every later error is redirected with `error`, `state` and `iss` (RFC
//!   9207).
//! - PKCE (RFC 7636) with `S256` is required unless the client is configured
//!   otherwise; `plain` is refused (RFC 9700 §2.1.1).
//! - Nothing is stored: the pending request rides in the forms, sealed; the
//!   code is sealed too ([`CodeClaims`]).
//!
//! [`request`] validates, [`flow`] decides the next step, [`cookies`] holds
//! the session, consent and CSRF cookies, [`respond`] renders. This module
//! only wires them to HTTP, reads the clock once per request, and runs the
//! password check.

pub mod cookies;
pub mod flow;
pub mod request;
pub mod respond;

use std::sync::Arc;

use poem::http::{StatusCode, header};
use poem::web::Data;
use poem::{Body, Request, Response, handler};
use serde_json::{Map, Value};

use self::flow::{Decision, Next};
use self::request::text;
pub use self::request::{Asked, CodeClaims, MAX_STATE_LEN, Pending};
use self::respond::PageContext;
use crate::AppState;
use crate::clients::Client;
use crate::error::OAuthError;
use crate::keys::unix_now;
use crate::login::shared::Refused;
use crate::login::{Consent, Login, Session};
use crate::seal::{Purpose, random_id};
use crate::settings::Settings;

/// Why the authorization endpoint refuses: an OAuth error either shown to
/// the user (the client or redirect URI is not trusted, or a form is bad)
/// or sent back to the client's redirect URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeError {
    /// Shown as a page, never redirected (RFC 6749 §4.1.2.1).
    Shown(OAuthError),
    /// Redirected to the client (RFC 6749 §4.1.2.1) with `state`.
    Redirected {
        /// The error.
        error: OAuthError,
        /// The client's redirect URI.
        to: String,
        /// `state` as the client sent it.
        state: Option<String>,
    },
}

impl From<OAuthError> for AuthorizeError {
    fn from(e: OAuthError) -> Self {
        Self::Shown(e)
    }
}

/// The security headers of every answer of the authorization endpoint:
/// never cached, never framed, no scripts, no referrer leaking the code.
pub fn security_headers() -> poem::middleware::SetHeader {
    poem::middleware::SetHeader::new()
        .overriding(header::CACHE_CONTROL, "no-store")
        .overriding(header::X_FRAME_OPTIONS, "DENY")
        .overriding(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .overriding(header::REFERRER_POLICY, "no-referrer")
        .overriding(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        )
}

/// The largest JSON of a [`Pending`] or [`CodeClaims`] these clients can
/// make, so sealed values are accepted exactly up to what the server seals
/// (each escaped character counted twice).
pub fn max_sealed_json(clients: &crate::clients::Clients) -> usize {
    let client = clients
        .iter()
        .map(|c| c.id.len() + c.redirect_uris.iter().map(String::len).max().unwrap_or(0))
        .max()
        .unwrap_or(0);
    // Field names, punctuation, numbers, ids, the PKCE challenge.
    const FIXED: usize = 400;
    FIXED
        + 2 * client
        + crate::scope::MAX_LEN
        + 2 * 2 * MAX_STATE_LEN
        + 2 * crate::users::MAX_USERNAME_LEN
}

/// `GET /oauth2/authorize`
#[handler]
pub async fn get(
    req: &Request,
    state: Data<&Arc<AppState>>,
    settings: Data<&Arc<Settings>>,
) -> Response {
    let now = unix_now();
    on_request(&state, &settings, req, now).unwrap_or_else(|e| respond::refusal(&settings, e))
}

/// `POST /oauth2/authorize`: the login and consent forms.
#[handler]
pub async fn post(
    req: &Request,
    body: Body,
    state: Data<&Arc<AppState>>,
    settings: Data<&Arc<Settings>>,
) -> Response {
    let now = unix_now();
    on_form(&state, &settings, req, body, now)
        .await
        .unwrap_or_else(|e| respond::refusal(&settings, e))
}

fn page<'a>(settings: &'a Settings, req: &Request, now: u64) -> PageContext<'a> {
    PageContext {
        settings,
        csrf: cookies::csrf_token(req),
        now,
    }
}

fn on_request(
    state: &AppState,
    settings: &Settings,
    req: &Request,
    now: u64,
) -> Result<Response, AuthorizeError> {
    let query = req.uri().query().unwrap_or("");
    let params = crate::oauth::form::parse_form(query.as_bytes())?;
    let (client, redirect_uri, given) = request::trusted_redirect(&settings.clients, &params)?;
    let valid = request::validate(
        &params,
        &client,
        (&redirect_uri, given),
        &settings.config.tokens.introspection_scope,
        settings.config.login.form_lifetime,
        now,
    )
    .map_err(|error| AuthorizeError::Redirected {
        error,
        to: redirect_uri.clone(),
        state: request::returnable_state(&params).map(str::to_string),
    })?;
    let session = cookies::session(settings, &state.revocations, req, now);
    let consented = session
        .as_ref()
        .is_some_and(|s| consented(settings, req, &valid.pending, s, now));
    let pending = &valid.pending;
    Ok(
        match (
            flow::on_request(&valid, session.as_ref(), consented, now),
            session,
        ) {
            (Next::IssueCode, Some(session)) => {
                issue_code(settings, pending, &session, Vec::new(), now)?
            }
            (Next::Consent, Some(session)) => respond::consent_page(
                page(settings, req, now),
                pending,
                &client,
                &session.username,
                Vec::new(),
            ),
            (Next::Refuse(error), _) => refuse(settings, pending, error),
            _ => respond::login_page(
                page(settings, req, now),
                pending,
                &client,
                "",
                None,
                StatusCode::OK,
            ),
        },
    )
}

fn consented(
    settings: &Settings,
    req: &Request,
    pending: &Pending,
    session: &Session,
    now: u64,
) -> bool {
    cookies::consent(settings, req, pending, &session.username)
        .is_some_and(|c| flow::consent_covers(&c, pending, &session.username, now))
}

fn refuse(settings: &Settings, pending: &Pending, error: OAuthError) -> Response {
    respond::redirect(
        settings,
        &pending.asked.redirect_uri,
        pending.state.as_deref(),
        Err(&error),
    )
}

async fn on_form(
    state: &AppState,
    settings: &Settings,
    req: &Request,
    body: Body,
    now: u64,
) -> Result<Response, AuthorizeError> {
    if !req.content_type().is_some_and(crate::oauth::form::is_form) {
        return Err(OAuthError::UnsupportedMediaType.into());
    }
    let bytes = crate::oauth::form::read_limited(req, body, &settings.config.server).await?;
    let form = crate::oauth::form::parse_form(&bytes)?;
    let shown = |why: &'static str| AuthorizeError::Shown(OAuthError::InvalidRequest(why.into()));
    let pending: Pending = text(&form, "request")
        .and_then(|r| settings.sealer.open(Purpose::Form, r))
        .filter(|p: &Pending| p.expires > now)
        .ok_or_else(|| shown("This form has expired or is not valid."))?;
    if !cookies::csrf_ok(req, text(&form, "csrf"), &pending) {
        return Err(AuthorizeError::Shown(OAuthError::AccessDenied(
            "The form was not sent from this site's page (CSRF check failed).".into(),
        )));
    }
    let client = settings
        .clients
        .get(&pending.asked.client_id)
        .cloned()
        .ok_or_else(|| shown("The application is no longer registered."))?;
    let step = text(&form, "step");
    let submitted = Submitted {
        settings,
        req,
        form: &form,
        pending,
        client: &client,
        now,
    };
    match step {
        Some("login") => login_step(&state.login, submitted).await,
        Some("consent") => consent_step(state, submitted),
        _ => Err(shown("Unknown form step.")),
    }
}

/// A login or consent form, opened, fresh and CSRF-checked.
struct Submitted<'a> {
    settings: &'a Settings,
    req: &'a Request,
    form: &'a Map<String, Value>,
    pending: Pending,
    client: &'a Client,
    now: u64,
}

async fn login_step(login: &Login, submitted: Submitted<'_>) -> Result<Response, AuthorizeError> {
    let Submitted {
        settings,
        req,
        form,
        pending,
        client,
        now,
    } = submitted;
    let again = |username: &str, error: &str, status: StatusCode| {
        respond::login_page(
            page(settings, req, now),
            &pending,
            client,
            username,
            Some(error),
            status,
        )
    };
    let (Some(username), Some(password)) = (text(form, "username"), text(form, "password")) else {
        let username = text(form, "username").unwrap_or("");
        return Ok(again(
            username,
            "Enter your username and password.",
            StatusCode::OK,
        ));
    };
    let refused = |status, message, wait: u64| {
        let mut resp = again(username, message, status);
        if let Ok(v) = wait.to_string().parse() {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    };
    let address = settings.proxies.client_address(req);
    // Counted before the password is checked, so parallel attempts cannot
    // slip past the limit.
    let attempt = match login
        .begin(&settings.throttle_name(username), address)
        .await
    {
        Ok(attempt) => attempt,
        Err(Refused::Unavailable) => {
            return Ok(refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server cannot check sign-in limits now. Try again in a moment.",
                1,
            ));
        }
        Err(Refused::Wait(wait)) => {
            tracing::warn!(
                address = address.map(tracing::field::display),
                "login throttled after repeated failures"
            );
            return Ok(refused(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many failed sign-in attempts. Wait a little and try again.",
                wait,
            ));
        }
    };
    let checked = login
        .hashing
        .verify(settings.users.clone(), username, password)
        .await;
    let user = match checked {
        Ok(user) => user,
        Err(e) => {
            attempt.not_checked();
            tracing::warn!(error = %e, "password check not run");
            return Ok(refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server is busy. Try again in a moment.",
                1,
            ));
        }
    };
    let Some(user) = user else {
        drop(attempt);
        tracing::info!(
            address = address.map(tracing::field::display),
            "failed login"
        );
        return Ok(again(
            username,
            "Invalid username or password.",
            StatusCode::OK,
        ));
    };
    attempt.succeeded();
    let session = Session {
        username: user.username.clone(),
        auth_time: now,
        sid: random_id().map_err(OAuthError::internal)?,
        expires: now + settings.config.login.session_lifetime,
    };
    let cookie = cookies::set_session(settings, req, &session).map_err(OAuthError::internal)?;
    let consented = consented(settings, req, &pending, &session, now);
    match flow::after_login(consented) {
        Next::IssueCode => issue_code(settings, &pending, &session, vec![cookie], now),
        _ => Ok(respond::consent_page(
            page(settings, req, now),
            &pending,
            client,
            &session.username,
            vec![cookie],
        )),
    }
}

fn consent_step(state: &AppState, submitted: Submitted<'_>) -> Result<Response, AuthorizeError> {
    let Submitted {
        settings,
        req,
        form,
        pending,
        client,
        now,
    } = submitted;
    let Some(session) = cookies::session(settings, &state.revocations, req, now)
        .filter(|s| pending.shown_to.as_deref() == Some(s.username.as_str()))
    else {
        return Ok(respond::login_page(
            page(settings, req, now),
            &pending,
            client,
            "",
            Some("Your session has ended. Sign in again."),
            StatusCode::OK,
        ));
    };
    match flow::decision(text(form, "decision"))? {
        Decision::SwitchUser => {
            let mut resp = respond::login_page(
                page(settings, req, now),
                &pending,
                client,
                "",
                Some("Signed out. Sign in as the user you are."),
                StatusCode::OK,
            );
            if let Ok(clear) = cookies::clear_session(req).parse() {
                resp.headers_mut().append(header::SET_COOKIE, clear);
            }
            Ok(resp)
        }
        Decision::Deny => Ok(refuse(
            settings,
            &pending,
            OAuthError::AccessDenied("the user denied the request".into()),
        )),
        Decision::ApproveOnce => issue_code(settings, &pending, &session, Vec::new(), now),
        Decision::ApproveAlways => {
            let consent = Consent {
                username: session.username.clone(),
                client_id: pending.asked.client_id.clone(),
                scope: pending.asked.scope.clone(),
                expires: now + settings.config.login.consent_lifetime,
            };
            let cookie =
                cookies::set_consent(settings, req, &consent).map_err(OAuthError::internal)?;
            issue_code(settings, &pending, &session, vec![cookie], now)
        }
    }
}

/// Seals a code for the approved request and redirects to the client.
fn issue_code(
    settings: &Settings,
    pending: &Pending,
    session: &Session,
    cookies: Vec<String>,
    now: u64,
) -> Result<Response, AuthorizeError> {
    let claims = CodeClaims {
        id: random_id().map_err(OAuthError::internal)?,
        asked: pending.asked.clone(),
        username: session.username.clone(),
        auth_time: session.auth_time,
        sid: session.sid.clone(),
        expires: now + settings.config.tokens.code_lifetime,
    };
    let code = settings
        .sealer
        .seal(Purpose::Code, &claims)
        .map_err(OAuthError::internal)?;
    let to = respond::redirect(
        settings,
        &pending.asked.redirect_uri,
        pending.state.as_deref(),
        Ok(&code),
    );
    Ok(respond::with_cookies(to, cookies))
}
