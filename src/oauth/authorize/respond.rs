//! The authorization endpoint's answers: HTML pages (login, consent,
//! error) and 303 redirects to the client (RFC 6749 §4.1.2, with `iss`,
//! RFC 9207). Security headers (CSP, X-Frame-Options, no-store) come from
//! one middleware, [`super::security_headers`].

use poem::Response;
use poem::http::{StatusCode, header};

use super::AuthorizeError;
use super::request::Pending;
use crate::clients::Client;
use crate::error::OAuthError;
use crate::login::pages::{self, Hidden};
use crate::seal::Purpose;
use crate::settings::Settings;

/// The page for an error that is shown, not redirected.
pub fn error_page(err: &OAuthError) -> Response {
    let title = match err {
        OAuthError::InvalidRequest(_) => "Invalid request",
        OAuthError::AccessDenied(_) => "Form refused",
        _ => "Request refused",
    };
    html(err.status(), pages::error(title, err.description()), None)
}

/// The answer for `err`: a page, or a redirect to the client.
pub fn refusal(settings: &Settings, err: AuthorizeError) -> Response {
    match err {
        AuthorizeError::Shown(e) => error_page(&e),
        AuthorizeError::Redirected { error, to, state } => {
            redirect(settings, &to, state.as_deref(), Err(&error))
        }
    }
}

/// The pending request sealed into a form rendered at `now`, with its CSRF
/// token and for `shown_to`.
fn seal_form(
    settings: &Settings,
    pending: &Pending,
    csrf: &str,
    shown_to: Option<&str>,
    now: u64,
) -> Result<String, OAuthError> {
    let mut pending = pending.clone();
    pending.csrf = csrf.to_string();
    pending.expires = now + settings.config.login.form_lifetime;
    if let Some(user) = shown_to {
        pending.shown_to = Some(user.to_string());
    }
    settings
        .sealer
        .seal(Purpose::Form, &pending)
        .map_err(OAuthError::internal)
}

/// What a page needs besides its content.
pub struct PageContext<'a> {
    /// The settings the request began with.
    pub settings: &'a Settings,
    /// The browser's CSRF token and, if new, its cookie.
    pub csrf: (String, Option<String>),
    /// When the page is rendered.
    pub now: u64,
}

/// The login page for `client`.
pub fn login_page(
    cx: PageContext<'_>,
    pending: &Pending,
    client: &Client,
    username: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let (csrf, cookie) = cx.csrf;
    match seal_form(cx.settings, pending, &csrf, None, cx.now) {
        Ok(sealed) => {
            let hidden = Hidden {
                request: &sealed,
                csrf: &csrf,
            };
            html(
                status,
                pages::login(&client.name, hidden, username, error),
                cookie,
            )
        }
        Err(e) => error_page(&e),
    }
}

/// The consent page: `username` approves `client`'s scopes.
pub fn consent_page(
    cx: PageContext<'_>,
    pending: &Pending,
    client: &Client,
    username: &str,
    cookies: Vec<String>,
) -> Response {
    let (csrf, cookie) = cx.csrf;
    let scopes: Vec<&str> = pending
        .asked
        .scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .collect();
    match seal_form(cx.settings, pending, &csrf, Some(username), cx.now) {
        Ok(sealed) => {
            let hidden = Hidden {
                request: &sealed,
                csrf: &csrf,
            };
            let page = pages::consent(
                &client.name,
                username,
                &scopes,
                &cx.settings.config.login.scope_descriptions,
                hidden,
            );
            html(StatusCode::OK, page, cookies.into_iter().chain(cookie))
        }
        Err(e) => error_page(&e),
    }
}

/// 303 to the redirect URI with `code` or `error`, plus `state` and `iss`.
pub fn redirect(
    settings: &Settings,
    redirect_uri: &str,
    state: Option<&str>,
    outcome: Result<&str, &OAuthError>,
) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return error_page(&OAuthError::InvalidRequest(
            "The redirect URI is not valid.".into(),
        ));
    };
    {
        let mut q = url.query_pairs_mut();
        match outcome {
            Ok(code) => {
                q.append_pair("code", code);
            }
            Err(e) => {
                q.append_pair("error", e.code());
                q.append_pair("error_description", e.description());
            }
        }
        if let Some(state) = state {
            q.append_pair("state", state);
        }
        q.append_pair("iss", &settings.tokens.issuer);
    }
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, url.as_str())
        .finish()
}

/// An HTML page, with `Set-Cookie` for each of `cookies`.
pub fn html(
    status: StatusCode,
    body: String,
    cookies: impl IntoIterator<Item = String>,
) -> Response {
    let resp = Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .body(body);
    with_cookies(resp, cookies)
}

/// Adds a `Set-Cookie` header per cookie.
pub fn with_cookies(mut resp: Response, cookies: impl IntoIterator<Item = String>) -> Response {
    for c in cookies {
        if let Ok(v) = c.parse() {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}
