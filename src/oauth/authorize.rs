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

use std::sync::Arc;

use poem::http::{StatusCode, header};
use poem::web::Data;
use poem::{Body, Request, Response, handler};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::clients::{Client, GrantType};
use crate::error::OAuthError;
use crate::keys::unix_now;
use crate::login::pages::{self, Hidden};
use crate::login::{self, Consent, Login, Session};
use crate::seal::{Purpose, random_id};
use crate::settings::Settings;

/// Longest `state` and `nonce` accepted, in bytes; both must be printable
/// ASCII (RFC 6749 Appendix A.5 `state = 1*VSCHAR`).
const MAX_STATE_LEN: usize = 1024;

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

fn printable(s: &str) -> bool {
    s.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

/// What the client asked for, once validated: carried by the pending
/// request and then by the code.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Asked {
    /// Client id.
    pub c: String,
    /// Redirect URI.
    pub r: String,
    /// Whether `redirect_uri` was sent (then the token request must repeat
    /// it, RFC 6749 §4.1.3).
    pub ri: bool,
    /// Scope.
    pub s: String,
    /// `nonce`.
    pub n: Option<String>,
    /// PKCE `code_challenge` (S256).
    pub cc: Option<String>,
}

/// A validated authorization request, sealed into the login and consent
/// forms while the user is on them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    /// The request.
    #[serde(flatten)]
    pub asked: Asked,
    /// `state`.
    pub st: Option<String>,
    /// `prompt=consent`: ask even if "Approve always" was given.
    pub pc: bool,
    /// The user the consent page was shown to.
    pub u: Option<String>,
    /// The CSRF token this form belongs to.
    pub x: String,
    /// Expiry of the form.
    pub e: u64,
}

/// What an authorization code carries, sealed (AES-256-GCM).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodeClaims {
    /// Code id: recorded on the revocation list when redeemed; also the
    /// family id of every token minted from it.
    pub id: String,
    /// The approved request.
    #[serde(flatten)]
    pub asked: Asked,
    /// Username.
    pub u: String,
    /// When the user authenticated.
    pub at: u64,
    /// Login session id.
    pub sid: String,
    /// Expiry (at most 60 s after issue).
    pub e: u64,
}

/// An error shown as a page.
struct PageError {
    status: StatusCode,
    title: &'static str,
    message: String,
}

impl PageError {
    fn bad(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            title: "Invalid request",
            message: message.into(),
        }
    }
}

impl From<OAuthError> for PageError {
    fn from(err: OAuthError) -> Self {
        Self {
            status: err.status(),
            title: "Request refused",
            message: err.description().to_string(),
        }
    }
}

/// An error sent back to the client's redirect URI (RFC 6749 §4.1.2.1).
struct RedirectError {
    code: &'static str,
    description: &'static str,
}

const fn redirect_error(code: &'static str, description: &'static str) -> RedirectError {
    RedirectError { code, description }
}

/// `GET /oauth2/authorize`
#[handler]
pub async fn get(req: &Request, settings: Data<&Arc<Settings>>) -> Response {
    let settings = &**settings;
    let now = unix_now();
    let params = match crate::oauth::extract::parse_form(req.uri().query().unwrap_or("").as_bytes())
    {
        Ok(params) => params,
        Err(e) => return page_error(e.into()),
    };
    let (client, redirect_uri, given) = match trusted_redirect(settings, &params) {
        Ok(found) => found,
        Err(e) => return page_error(e),
    };
    let st = text(&params, "state");
    let pending = match validate(settings, &params, &client, &redirect_uri, given, now) {
        Ok(p) => p,
        Err(e) => {
            return redirect_to(
                settings,
                &redirect_uri,
                st.filter(|s| s.len() <= MAX_STATE_LEN && printable(s)),
                Err(e),
            );
        }
    };
    let prompt = text(&params, "prompt").unwrap_or("");
    let max_age = text(&params, "max_age").and_then(|v| v.parse::<u64>().ok());
    let session = current_session(settings, req, now)
        .filter(|_| !prompt.split(' ').any(|p| p == "login"))
        .filter(|(s, _)| max_age.is_none_or(|m| now.saturating_sub(s.at) <= m));
    let prompt_none = prompt == "none";
    match session {
        Some((session, _)) => {
            if prompt_none && !consented(settings, req, &pending, &session, now) {
                return redirect_error_to(
                    settings,
                    &pending,
                    "consent_required",
                    "consent is needed",
                );
            }
            after_login(settings, req, pending, &session, Vec::new(), now)
        }
        None if prompt_none => redirect_error_to(
            settings,
            &pending,
            "login_required",
            "the user is not logged in",
        ),
        None => login_page(settings, req, &pending, &client, "", None, StatusCode::OK),
    }
}

/// `POST /oauth2/authorize`: the login and consent forms.
#[handler]
pub async fn post(
    req: &Request,
    body: Body,
    state: Data<&Arc<AppState>>,
    settings: Data<&Arc<Settings>>,
) -> Response {
    match post_inner(&state.login, &settings, req, body).await {
        Ok(resp) => resp,
        Err(e) => page_error(e),
    }
}

async fn post_inner(
    login: &Login,
    settings: &Settings,
    req: &Request,
    body: Body,
) -> Result<Response, PageError> {
    let now = unix_now();
    if !req
        .content_type()
        .is_some_and(crate::oauth::extract::is_form)
    {
        return Err(OAuthError::UnsupportedMediaType.into());
    }
    let bytes = crate::oauth::extract::read_limited(req, body, &settings.config.server).await?;
    let form = crate::oauth::extract::parse_form(&bytes)?;
    let expired = || PageError::bad("This form has expired or is not valid.");
    let pending: Pending = text(&form, "request")
        .and_then(|r| settings.sealer.open(Purpose::Form, r))
        .filter(|p: &Pending| p.e > now)
        .ok_or_else(expired)?;
    let csrf_ok = match (text(&form, "csrf"), login::cookie(req, login::CSRF_COOKIE)) {
        (Some(field), Some(cookie)) => {
            bool::from(field.as_bytes().ct_eq(cookie.as_bytes()))
                && bool::from(field.as_bytes().ct_eq(pending.x.as_bytes()))
        }
        _ => false,
    };
    if !csrf_ok {
        return Err(PageError {
            status: StatusCode::FORBIDDEN,
            title: "Form refused",
            message: "The form was not sent from this site's page (CSRF check failed).".into(),
        });
    }
    let client = settings
        .clients
        .get(&pending.asked.c)
        .cloned()
        .ok_or_else(|| PageError::bad("The application is no longer registered."))?;
    match text(&form, "step") {
        Some("login") => login_step(login, settings, req, &form, pending, &client, now).await,
        Some("consent") => consent_step(settings, req, &form, pending, &client, now),
        _ => Err(PageError::bad("Unknown form step.")),
    }
}

async fn login_step(
    login: &Login,
    settings: &Settings,
    req: &Request,
    form: &Map<String, Value>,
    pending: Pending,
    client: &Client,
    now: u64,
) -> Result<Response, PageError> {
    let (Some(username), Some(password)) = (text(form, "username"), text(form, "password")) else {
        return Ok(login_page(
            settings,
            req,
            &pending,
            client,
            text(form, "username").unwrap_or(""),
            Some("Enter your username and password."),
            StatusCode::OK,
        ));
    };
    let address = settings.proxies.client_address(req);
    let refused = |status, message, wait: u64| {
        let mut resp = login_page(
            settings,
            req,
            &pending,
            client,
            username,
            Some(message),
            status,
        );
        if let Ok(v) = wait.to_string().parse() {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    };
    // Counted before the password is checked, so parallel attempts cannot
    // slip past the limit.
    let attempt = match login.limiter.begin(username, address, now) {
        Ok(attempt) => attempt,
        Err(wait) => {
            tracing::warn!(address = ?address, "login throttled after repeated failures");
            return Ok(refused(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many failed sign-in attempts. Wait a little and try again.",
                wait,
            ));
        }
    };
    let user = match login
        .hashing
        .verify(settings.users.clone(), username, password)
        .await
    {
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
        tracing::info!(address = ?address, "failed login");
        return Ok(login_page(
            settings,
            req,
            &pending,
            client,
            username,
            Some("Invalid username or password."),
            StatusCode::OK,
        ));
    };
    attempt.succeeded();
    let session = Session {
        u: user.username.clone(),
        at: now,
        sid: random_id().map_err(OAuthError::internal)?,
        e: now + settings.config.login.session_lifetime,
    };
    let cookie = login::set_cookie(
        login::SESSION_COOKIE,
        &settings
            .sealer
            .seal(Purpose::Session, &session)
            .map_err(OAuthError::internal)?,
        "/oauth2/",
        settings.config.login.session_lifetime,
    );
    Ok(after_login(
        settings,
        req,
        pending,
        &session,
        vec![cookie],
        now,
    ))
}

fn consent_step(
    settings: &Settings,
    req: &Request,
    form: &Map<String, Value>,
    pending: Pending,
    client: &Client,
    now: u64,
) -> Result<Response, PageError> {
    let Some((session, _)) = current_session(settings, req, now)
        .filter(|(s, _)| pending.u.as_deref() == Some(s.u.as_str()))
    else {
        return Ok(login_page(
            settings,
            req,
            &pending,
            client,
            "",
            Some("Your session has ended. Sign in again."),
            StatusCode::OK,
        ));
    };
    match text(form, "decision") {
        Some("deny") => Ok(redirect_error_to(
            settings,
            &pending,
            "access_denied",
            "the user denied the request",
        )),
        Some("approve_once") => Ok(issue_code(settings, &pending, &session, Vec::new(), now)),
        Some("approve_always") => {
            let consent = Consent {
                u: session.u.clone(),
                c: pending.asked.c.clone(),
                s: pending.asked.s.clone(),
                e: now + settings.config.login.consent_lifetime,
            };
            let sealed = settings
                .sealer
                .seal(Purpose::Consent, &consent)
                .map_err(OAuthError::internal)?;
            let cookie = login::set_cookie(
                &login::consent_cookie_name(&session.u, &pending.asked.c),
                &sealed,
                "/oauth2/authorize",
                settings.config.login.consent_lifetime,
            );
            Ok(issue_code(settings, &pending, &session, vec![cookie], now))
        }
        _ => Err(PageError::bad("Choose approve or deny.")),
    }
}

/// The logged-in user goes straight to the client when "Approve always"
/// covers the request, else to the consent page.
fn after_login(
    settings: &Settings,
    req: &Request,
    pending: Pending,
    session: &Session,
    cookies: Vec<String>,
    now: u64,
) -> Response {
    if consented(settings, req, &pending, session, now) {
        return issue_code(settings, &pending, session, cookies, now);
    }
    let Some(client) = settings.clients.get(&pending.asked.c) else {
        return page_error(PageError::bad("The application is no longer registered."));
    };
    let (csrf, csrf_cookie) = csrf_token(req);
    let mut pending = pending;
    pending.x = csrf.clone();
    pending.e = now + settings.config.login.form_lifetime;
    pending.u = Some(session.u.clone());
    let scopes: Vec<&str> = pending
        .asked
        .s
        .split(' ')
        .filter(|s| !s.is_empty())
        .collect();
    let sealed = match settings.sealer.seal(Purpose::Form, &pending) {
        Ok(s) => s,
        Err(e) => return page_error(OAuthError::internal(e).into()),
    };
    let html = pages::consent(
        &client.name,
        &session.u,
        &scopes,
        Hidden {
            request: &sealed,
            csrf: &csrf,
        },
    );
    html_response(StatusCode::OK, html, cookies.into_iter().chain(csrf_cookie))
}

/// Whether an "Approve always" cookie of this user covers every requested
/// scope (and `prompt=consent` was not sent).
fn consented(
    settings: &Settings,
    req: &Request,
    pending: &Pending,
    session: &Session,
    now: u64,
) -> bool {
    if pending.pc {
        return false;
    }
    let name = login::consent_cookie_name(&session.u, &pending.asked.c);
    login::cookie(req, &name)
        .and_then(|v| settings.sealer.open::<Consent>(Purpose::Consent, v))
        .is_some_and(|c| {
            c.u == session.u
                && c.c == pending.asked.c
                && c.e > now
                && pending
                    .asked
                    .s
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .all(|s| crate::scope::contains(&c.s, s))
        })
}

/// The session from the cookie, if valid now and its user still exists.
fn current_session(
    settings: &Settings,
    req: &Request,
    now: u64,
) -> Option<(Session, Arc<crate::users::User>)> {
    let session: Session = settings
        .sealer
        .open(Purpose::Session, login::cookie(req, login::SESSION_COOKIE)?)?;
    let user = settings.users.get(&session.u)?.clone();
    (session.e > now).then_some((session, user))
}

/// Seals a code for the approved request and redirects to the client.
fn issue_code(
    settings: &Settings,
    pending: &Pending,
    session: &Session,
    cookies: Vec<String>,
    now: u64,
) -> Response {
    let code = random_id().and_then(|id| {
        settings.sealer.seal(
            Purpose::Code,
            &CodeClaims {
                id,
                asked: pending.asked.clone(),
                u: session.u.clone(),
                at: session.at,
                sid: session.sid.clone(),
                e: now + settings.config.tokens.code_lifetime,
            },
        )
    });
    match code {
        Ok(code) => with_cookies(
            redirect_to(settings, &pending.asked.r, pending.st.as_deref(), Ok(&code)),
            cookies,
        ),
        Err(e) => page_error(OAuthError::internal(e).into()),
    }
}

fn redirect_error_to(
    settings: &Settings,
    pending: &Pending,
    code: &'static str,
    description: &'static str,
) -> Response {
    redirect_to(
        settings,
        &pending.asked.r,
        pending.st.as_deref(),
        Err(redirect_error(code, description)),
    )
}

/// 303 to the redirect URI with `code` or `error`, plus `state` and `iss`.
fn redirect_to(
    settings: &Settings,
    redirect_uri: &str,
    st: Option<&str>,
    outcome: Result<&str, RedirectError>,
) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return page_error(PageError::bad("The redirect URI is not valid."));
    };
    {
        let mut q = url.query_pairs_mut();
        match &outcome {
            Ok(code) => {
                q.append_pair("code", code);
            }
            Err(e) => {
                q.append_pair("error", e.code);
                q.append_pair("error_description", e.description);
            }
        }
        if let Some(st) = st {
            q.append_pair("state", st);
        }
        q.append_pair("iss", &settings.tokens.issuer);
    }
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, url.as_str())
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::REFERRER_POLICY, "no-referrer")
        .finish()
}

/// Finds the client and the redirect URI, which must be one of its
/// registered URIs exactly; `redirect_uri` may be left out only when the
/// client has exactly one.
fn trusted_redirect(
    settings: &Settings,
    params: &Map<String, Value>,
) -> Result<(Arc<Client>, String, bool), PageError> {
    let client_id =
        text(params, "client_id").ok_or_else(|| PageError::bad("client_id is missing."))?;
    let client = settings
        .clients
        .get(client_id)
        .filter(|c| c.grant_types.contains(&GrantType::AuthorizationCode))
        .cloned()
        .ok_or_else(|| PageError::bad("Unknown application (client_id)."))?;
    let redirect = match text(params, "redirect_uri") {
        Some(uri) => {
            if !client.redirect_uris.iter().any(|r| r == uri) {
                return Err(PageError::bad(
                    "The redirect_uri is not registered for this application.",
                ));
            }
            (uri.to_string(), true)
        }
        None => match client.redirect_uris.as_slice() {
            [only] => (only.clone(), false),
            _ => return Err(PageError::bad("redirect_uri is missing.")),
        },
    };
    Ok((client, redirect.0, redirect.1))
}

/// Checks everything after the client and redirect URI.
fn validate(
    settings: &Settings,
    params: &Map<String, Value>,
    client: &Client,
    redirect_uri: &str,
    redirect_given: bool,
    now: u64,
) -> Result<Pending, RedirectError> {
    match text(params, "response_type") {
        Some("code") => {}
        Some(_) => {
            return Err(redirect_error(
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
        None => {
            return Err(redirect_error(
                "invalid_request",
                "response_type is missing",
            ));
        }
    }
    if params.contains_key("request") {
        return Err(redirect_error(
            "request_not_supported",
            "request objects are not supported",
        ));
    }
    if params.contains_key("request_uri") {
        return Err(redirect_error(
            "request_uri_not_supported",
            "request_uri is not supported",
        ));
    }
    if text(params, "response_mode").is_some_and(|m| m != "query") {
        return Err(redirect_error(
            "invalid_request",
            "only response_mode=query is supported",
        ));
    }
    let st = text(params, "state");
    let nonce = text(params, "nonce");
    if [st, nonce]
        .into_iter()
        .flatten()
        .any(|v| v.len() > MAX_STATE_LEN || !printable(v))
    {
        return Err(redirect_error(
            "invalid_request",
            "settings and nonce must be at most 1024 printable ASCII characters",
        ));
    }
    let prompt = text(params, "prompt").unwrap_or("");
    let prompts: Vec<&str> = prompt.split(' ').filter(|p| !p.is_empty()).collect();
    if prompts
        .iter()
        .any(|p| !matches!(*p, "none" | "login" | "consent" | "select_account"))
        || (prompts.contains(&"none") && prompts.len() > 1)
    {
        return Err(redirect_error(
            "invalid_request",
            "prompt has an unknown or conflicting value",
        ));
    }
    if text(params, "max_age").is_some_and(|m| m.parse::<u64>().is_err()) {
        return Err(redirect_error(
            "invalid_request",
            "max_age must be a number of seconds",
        ));
    }
    // A user's token never inherits the client's machine scopes: scope
    // must be asked for, and the introspection scope is never granted here.
    let requested = text(params, "scope")
        .ok_or_else(|| redirect_error("invalid_scope", "scope is required"))?;
    let scope = crate::scope::grant(Some(requested), &client.scopes).map_err(|e| match e {
        OAuthError::InvalidScope(_) => redirect_error(
            "invalid_scope",
            "a requested scope is unknown or not allowed for this client",
        ),
        _ => redirect_error("invalid_request", "scope is malformed"),
    })?;
    if crate::scope::contains(&scope, &settings.config.tokens.introspection_scope) {
        return Err(redirect_error(
            "invalid_scope",
            "the introspection scope is for clients, not users",
        ));
    }
    let challenge = text(params, "code_challenge");
    let method = text(params, "code_challenge_method");
    match (challenge, method) {
        (None, None) if !client.require_pkce => {}
        (None, _) => {
            return Err(redirect_error(
                "invalid_request",
                "code_challenge is required (PKCE, RFC 7636, method S256)",
            ));
        }
        (Some(_), Some("S256")) => {}
        (Some(_), None | Some("plain")) => {
            return Err(redirect_error(
                "invalid_request",
                "code_challenge_method must be S256; plain is not allowed",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(redirect_error(
                "invalid_request",
                "code_challenge_method must be S256",
            ));
        }
    }
    if let Some(c) = challenge
        && !(c.len() == 43
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    {
        return Err(redirect_error(
            "invalid_request",
            "code_challenge must be a base64url SHA-256 (43 characters)",
        ));
    }
    Ok(Pending {
        asked: Asked {
            c: client.id.clone(),
            r: redirect_uri.to_string(),
            ri: redirect_given,
            s: scope,
            n: nonce.map(str::to_string),
            cc: challenge.map(str::to_string),
        },
        st: st.map(str::to_string),
        pc: prompts.contains(&"consent"),
        u: None,
        // Set when a page carrying the form is rendered.
        x: String::new(),
        e: now + settings.config.login.form_lifetime,
    })
}

/// The browser's CSRF token, and a `Set-Cookie` when it has none yet.
fn csrf_token(req: &Request) -> (String, Option<String>) {
    match login::cookie(req, login::CSRF_COOKIE).filter(|v| {
        v.len() == 22
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }) {
        Some(v) => (v.to_string(), None),
        None => {
            let v = random_id().unwrap_or_default();
            let cookie = login::set_cookie(login::CSRF_COOKIE, &v, "/oauth2/authorize", 86_400);
            (v, Some(cookie))
        }
    }
}

fn login_page(
    settings: &Settings,
    req: &Request,
    pending: &Pending,
    client: &Client,
    username: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let (csrf, cookie) = csrf_token(req);
    let mut pending = pending.clone();
    pending.x = csrf.clone();
    pending.e = unix_now() + settings.config.login.form_lifetime;
    let sealed = match settings.sealer.seal(Purpose::Form, &pending) {
        Ok(s) => s,
        Err(e) => return page_error(OAuthError::internal(e).into()),
    };
    let html = pages::login(
        &client.name,
        Hidden {
            request: &sealed,
            csrf: &csrf,
        },
        username,
        error,
    );
    html_response(status, html, cookie)
}

fn page_error(e: PageError) -> Response {
    html_response(e.status, pages::error(e.title, &e.message), None)
}

/// An HTML page with headers that keep it out of caches and frames.
fn html_response(
    status: StatusCode,
    html: String,
    cookies: impl IntoIterator<Item = String>,
) -> Response {
    let resp = Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::X_FRAME_OPTIONS, "DENY")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::REFERRER_POLICY, "no-referrer")
        .header(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        )
        .body(html);
    with_cookies(resp, cookies)
}

/// Adds a `Set-Cookie` header per cookie.
fn with_cookies(mut resp: Response, cookies: impl IntoIterator<Item = String>) -> Response {
    for c in cookies {
        if let Ok(v) = c.parse() {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

fn text<'a>(params: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    params.get(name).and_then(Value::as_str)
}
