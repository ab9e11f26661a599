//! The authorization request (RFC 6749 §4.1.1, OIDC Core §3.1.2.1),
//! validated as plain data: the client and its redirect URI first (errors
//! shown, never redirected), then everything else (errors redirected). And
//! the values sealed for the browser to carry: the pending request and the
//! code. Field names are readable; serde keeps the sealed form short.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;

use super::AuthorizeError;
use crate::clients::{Client, Clients, GrantType};
use crate::error::OAuthError;

/// Longest `state` and `nonce` accepted, in bytes; both must be printable
/// ASCII (RFC 6749 Appendix A.5 `state = 1*VSCHAR`).
pub const MAX_STATE_LEN: usize = 1024;

/// What the client asked for, once validated: carried by the pending
/// request and then by the code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asked {
    /// The client.
    #[serde(rename = "c")]
    pub client_id: String,
    /// The redirect URI (one of the client's, exactly).
    #[serde(rename = "r")]
    pub redirect_uri: String,
    /// Whether `redirect_uri` was sent (then the token request must repeat
    /// it, RFC 6749 §4.1.3).
    #[serde(rename = "ri")]
    pub redirect_given: bool,
    /// The granted scope.
    #[serde(rename = "s")]
    pub scope: String,
    /// OIDC `nonce`.
    #[serde(rename = "n")]
    pub nonce: Option<String>,
    /// PKCE `code_challenge` (S256, RFC 7636).
    #[serde(rename = "cc")]
    pub code_challenge: Option<String>,
}

/// A validated authorization request, sealed into the login and consent
/// forms while the user is on them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The request.
    #[serde(flatten)]
    pub asked: Asked,
    /// `state`, returned to the client as sent.
    #[serde(rename = "st")]
    pub state: Option<String>,
    /// `prompt=consent`: ask even if "Approve always" was given.
    #[serde(rename = "pc")]
    pub prompt_consent: bool,
    /// The user the consent page was shown to.
    #[serde(rename = "u")]
    pub shown_to: Option<String>,
    /// The CSRF token this form belongs to.
    #[serde(rename = "x")]
    pub csrf: String,
    /// When the form expires.
    #[serde(rename = "e")]
    pub expires: u64,
}

/// What an authorization code carries, sealed (AES-256-GCM).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeClaims {
    /// Code id: recorded on the revocation list when redeemed; also the
    /// family id of every token minted from it.
    pub id: String,
    /// The approved request.
    #[serde(flatten)]
    pub asked: Asked,
    /// The user.
    #[serde(rename = "u")]
    pub username: String,
    /// When the user authenticated.
    #[serde(rename = "at")]
    pub auth_time: u64,
    /// Login session id (OIDC `sid`).
    pub sid: String,
    /// Expiry (at most 60 s after issue).
    #[serde(rename = "e")]
    pub expires: u64,
}

/// The `prompt` and `max_age` of a request (OIDC Core §3.1.2.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prompt {
    /// `prompt=none`: never show a page.
    pub none: bool,
    /// `prompt=login`: authenticate again.
    pub login: bool,
    /// `max_age`: a session older than this is not enough.
    pub max_age: Option<u64>,
}

/// A request that passed every check.
#[derive(Debug, Clone)]
pub struct Valid {
    /// What is sealed into the forms.
    pub pending: Pending,
    /// How the user must be authenticated.
    pub prompt: Prompt,
}

/// A parameter's value, when present and not empty.
pub fn text<'a>(params: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    params.get(name).and_then(Value::as_str)
}

fn printable(s: &str) -> bool {
    s.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

/// `state` as it may be sent back: only a well-formed one.
pub fn returnable_state(params: &Map<String, Value>) -> Option<&str> {
    text(params, "state").filter(|s| s.len() <= MAX_STATE_LEN && printable(s))
}

/// The client and the redirect URI, which must be one of its registered
/// URIs exactly (RFC 9700 §2.1); `redirect_uri` may be left out only when
/// the client has exactly one. Errors here are shown, never redirected.
pub fn trusted_redirect(
    clients: &Clients,
    params: &Map<String, Value>,
) -> Result<(Arc<Client>, String, bool), AuthorizeError> {
    let shown = |why: &'static str| AuthorizeError::Shown(OAuthError::InvalidRequest(why.into()));
    let client_id = text(params, "client_id").ok_or_else(|| shown("client_id is missing."))?;
    let client = clients
        .get(client_id)
        .filter(|c| c.grant_types.contains(&GrantType::AuthorizationCode))
        .cloned()
        .ok_or_else(|| shown("Unknown application (client_id)."))?;
    let (uri, given) = match text(params, "redirect_uri") {
        Some(uri) if client.redirect_uris.iter().any(|r| r == uri) => (uri.to_string(), true),
        Some(_) => {
            return Err(shown(
                "The redirect_uri is not registered for this application.",
            ));
        }
        None => match client.redirect_uris.as_slice() {
            [only] => (only.clone(), false),
            _ => return Err(shown("redirect_uri is missing.")),
        },
    };
    Ok((client, uri, given))
}

/// Everything after the client and redirect URI; an error is redirected.
/// `introspection_scope` is never granted to a user; the pending request's
/// form expires `form_lifetime` after `now`.
pub fn validate(
    params: &Map<String, Value>,
    client: &Client,
    (redirect_uri, redirect_given): (&str, bool),
    introspection_scope: &str,
    form_lifetime: u64,
    now: u64,
) -> Result<Valid, OAuthError> {
    let invalid = |why: &'static str| OAuthError::InvalidRequest(why.into());
    match text(params, "response_type") {
        Some("code") => {}
        Some(_) => {
            return Err(OAuthError::UnsupportedResponseType(
                "only response_type=code is supported".into(),
            ));
        }
        None => return Err(invalid("response_type is missing")),
    }
    if params.contains_key("request") {
        return Err(OAuthError::RequestNotSupported(
            "request objects are not supported".into(),
        ));
    }
    if params.contains_key("request_uri") {
        return Err(OAuthError::RequestUriNotSupported(
            "request_uri is not supported".into(),
        ));
    }
    if text(params, "response_mode").is_some_and(|m| m != "query") {
        return Err(invalid("only response_mode=query is supported"));
    }
    let state = text(params, "state");
    let nonce = text(params, "nonce");
    if [state, nonce]
        .into_iter()
        .flatten()
        .any(|v| v.len() > MAX_STATE_LEN || !printable(v))
    {
        return Err(invalid(
            "state and nonce must be at most 1024 printable ASCII characters",
        ));
    }
    let prompts: Vec<&str> = text(params, "prompt")
        .unwrap_or("")
        .split(' ')
        .filter(|p| !p.is_empty())
        .collect();
    if prompts
        .iter()
        .any(|p| !matches!(*p, "none" | "login" | "consent" | "select_account"))
        || (prompts.contains(&"none") && prompts.len() > 1)
    {
        return Err(invalid("prompt has an unknown or conflicting value"));
    }
    let max_age = match text(params, "max_age") {
        None => None,
        Some(m) => Some(
            m.parse::<u64>()
                .map_err(|_| invalid("max_age must be a number of seconds"))?,
        ),
    };
    // A user's token never inherits the client's machine scopes: scope
    // must be asked for, and the introspection scope is never granted here.
    let requested = text(params, "scope")
        .ok_or_else(|| OAuthError::InvalidScope("scope is required".into()))?;
    let scope = crate::scope::grant(Some(requested), &client.scopes).map_err(|e| match e {
        OAuthError::InvalidScope(_) => OAuthError::InvalidScope(
            "a requested scope is unknown or not allowed for this client".into(),
        ),
        _ => invalid("scope is malformed"),
    })?;
    if crate::scope::contains(&scope, introspection_scope) {
        return Err(OAuthError::InvalidScope(
            "the introspection scope is for clients, not users".into(),
        ));
    }
    let challenge = text(params, "code_challenge");
    match (challenge, text(params, "code_challenge_method")) {
        (None, None) if !client.require_pkce => {}
        (None, _) => {
            return Err(invalid(
                "code_challenge is required (PKCE, RFC 7636, method S256)",
            ));
        }
        (Some(_), Some("S256")) => {}
        (Some(_), None | Some("plain")) => {
            return Err(invalid(
                "code_challenge_method must be S256; plain is not allowed",
            ));
        }
        (Some(_), Some(_)) => return Err(invalid("code_challenge_method must be S256")),
    }
    if let Some(c) = challenge
        && !(c.len() == 43
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    {
        return Err(invalid(
            "code_challenge must be a base64url SHA-256 (43 characters)",
        ));
    }
    Ok(Valid {
        pending: Pending {
            asked: Asked {
                client_id: client.id.clone(),
                redirect_uri: redirect_uri.to_string(),
                redirect_given,
                scope,
                nonce: nonce.map(str::to_string),
                code_challenge: challenge.map(str::to_string),
            },
            state: state.map(str::to_string),
            prompt_consent: prompts.contains(&"consent"),
            shown_to: None,
            // Set when a page carrying the form is rendered.
            csrf: String::new(),
            expires: now + form_lifetime,
        },
        prompt: Prompt {
            none: prompts.contains(&"none"),
            login: prompts.contains(&"login"),
            max_age,
        },
    })
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
