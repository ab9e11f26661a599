//! Stateless token introspection (RFC 7662): authenticate the caller, verify
//! and decode the token (access or refresh), check the revocation list; no
//! token store.

use std::sync::Arc;

use bytes::Bytes;
use poem_openapi::Object;

use super::ClientParams;
use super::extract::ClientAuth;
use super::introspection_jwt::{Accept, IntrospectionResponse};
use crate::AppState;
use crate::config::SubjectFormat;
use crate::error::OAuthError;
use crate::settings::Settings;
use crate::subject;
use crate::tenant::Tenants;
use crate::token::{AccessClaims, Confirmation, Inactive, RefreshClaims};
use crate::token_cache::Verified;

/// Introspection request (RFC 7662 §2.1).
#[derive(Debug, Object, serde::Deserialize)]
pub struct IntrospectRequest {
    /// The token to inspect.
    pub token: String,
    /// `access_token` or `refresh_token`; a hint only.
    pub token_type_hint: Option<String>,
    /// The caller's credentials when it does not use the `Authorization`
    /// header.
    #[oai(flatten)]
    #[serde(flatten)]
    pub client: ClientParams,
}

impl super::extract::FormFields for IntrospectRequest {
    const REQUIRED: &'static [&'static str] = &["token"];
}

/// Introspection response (RFC 7662 §2.2, RFC 8705 §3.2 `cnf`).
#[derive(Debug, Default, Object, serde::Deserialize, serde::Serialize, PartialEq)]
#[oai(skip_serializing_if_is_none)]
pub struct Introspection {
    /// Whether the token is valid now.
    pub active: bool,
    /// Granted scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Client the token was issued to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Subject: the username for user tokens, else the client id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The user the token acts for (absent for client-credentials tokens
    /// unless the client has an owner).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `Bearer` for access tokens, `Refresh` for refresh tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// Expiry, Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// Issued at, Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Not before, Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<serde_json::Value>,
    /// Token id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Certificate binding (RFC 8705 §3.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnf: Option<IntrospectedCnf>,
    /// Who the token is for, as WSO2 names it: `APPLICATION_USER` for a
    /// user's token, `APPLICATION` for a client-credentials token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aut: Option<String>,
}

/// `cnf` of an introspection answer: RFC 8705's `x5t#S256`, and with
/// `introspection.wso2_cnf_alias` the same value as `x5t#SHA256`, the name
/// WSO2's sample answer uses (a migration aid).
#[derive(Debug, Clone, Default, PartialEq, Eq, Object, serde::Deserialize, serde::Serialize)]
#[oai(skip_serializing_if_is_none)]
pub struct IntrospectedCnf {
    /// base64url SHA-256 thumbprint of the client certificate.
    #[oai(rename = "x5t#S256")]
    #[serde(rename = "x5t#S256")]
    pub x5t_s256: String,
    /// The same thumbprint under WSO2's name (`introspection.wso2_cnf_alias`).
    #[oai(rename = "x5t#SHA256")]
    #[serde(rename = "x5t#SHA256")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x5t_sha256: Option<String>,
}

impl From<Confirmation> for IntrospectedCnf {
    fn from(c: Confirmation) -> Self {
        Self {
            x5t_s256: c.x5t_s256,
            x5t_sha256: None,
        }
    }
}

/// `aut` of a user's token.
pub const APPLICATION_USER: &str = "APPLICATION_USER";
/// `aut` of a client-credentials token.
pub const APPLICATION: &str = "APPLICATION";

impl From<&AccessClaims> for Introspection {
    fn from(c: &AccessClaims) -> Self {
        Self {
            active: true,
            scope: (!c.scope.is_empty()).then(|| c.scope.clone()),
            client_id: Some(c.client_id.clone()),
            sub: Some(c.sub.clone()),
            username: c.username.clone(),
            token_type: Some("Bearer".into()),
            exp: Some(c.exp),
            iat: Some(c.iat),
            nbf: Some(c.nbf),
            iss: Some(c.iss.clone()),
            aud: Some(c.aud.clone()),
            jti: Some(c.jti.clone()),
            cnf: c.cnf.clone().map(IntrospectedCnf::from),
            aut: Some(
                if c.fid.is_some() {
                    APPLICATION_USER
                } else {
                    APPLICATION
                }
                .into(),
            ),
        }
    }
}

impl From<RefreshClaims> for Introspection {
    fn from(c: RefreshClaims) -> Self {
        Self {
            active: true,
            scope: (!c.scope.is_empty()).then_some(c.scope),
            client_id: Some(c.client_id),
            username: Some(c.sub.clone()),
            sub: Some(c.sub),
            token_type: Some("Refresh".into()),
            exp: Some(c.exp),
            iat: Some(c.iat),
            nbf: Some(c.nbf),
            iss: Some(c.iss),
            aud: Some(serde_json::Value::String(c.aud)),
            jti: Some(c.jti),
            cnf: c.cnf.map(IntrospectedCnf::from),
            aut: Some(APPLICATION_USER.into()),
        }
    }
}

/// Who called introspection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A client (HTTP Basic, `client_secret_post`, mTLS, or its own Bearer
    /// token), by id.
    Client(String),
    /// A user with an introspection permission, by name.
    User(String),
}

/// Authenticates the caller, then verifies the token; the answer as a JWT
/// for the calling client when `jwt` (RFC 9701). A user caller cannot be
/// a JWT's audience (RFC 9701 §4 names the calling resource server, a
/// client): asking for a JWT as a user is 406.
pub async fn introspect(
    settings: &Settings,
    tenants: &Tenants,
    state: &AppState,
    auth: &ClientAuth,
    form: &IntrospectRequest,
    accept: Accept,
    now: u64,
) -> Result<IntrospectionResponse, OAuthError> {
    let Accept {
        jwt,
        json: json_too,
    } = accept;
    // A user caller named `alice@acme.com` is acme.com's user, at any path.
    let (settings, caller) = match super::user_caller::named_tenant(settings, tenants, auth) {
        Some(tenant) => (
            tenant,
            authorize_user(tenant, state, auth, &form.client, now).await?,
        ),
        None => (
            settings,
            authorize_caller(settings, state, auth, &form.client, now).await?,
        ),
    };
    match (jwt, caller) {
        (true, Caller::Client(audience)) => {
            let answer = inspect(settings, tenants, state, &form.token, now)?;
            let signed = super::introspection_jwt::sign(settings, &audience, &answer, now)?;
            Ok(IntrospectionResponse::Jwt(signed))
        }
        (true, Caller::User(_)) if !json_too => {
            // Inspected all the same: a server-side problem is still 503.
            inspect(settings, tenants, state, &form.token, now)?;
            Err(OAuthError::NotAcceptable(
                "a JWT answer is signed for the calling client; a user caller gets the JSON answer"
                    .into(),
            ))
        }
        _ => inspect_json(settings, tenants, state, &form.token, now)
            .map(IntrospectionResponse::Json),
    }
}

/// RFC 7662 §2.2: what an access or refresh token is, or
/// `{"active": false}` for anything not active now (never why). A token
/// of another tenant is inactive unless `introspection.allow_cross_tenant`
/// (then its own tenant verifies it). A token of an unknown key while this
/// server cannot read its keys is 503.
pub fn inspect(
    settings: &Settings,
    tenants: &Tenants,
    state: &AppState,
    token: &str,
    now: u64,
) -> Result<Introspection, OAuthError> {
    Ok(match find(settings, tenants, state, token, now)? {
        Found::Access(verified, issuer) => access_answer(&verified, settings, issuer),
        Found::Answer(answer) => answer,
    })
}

/// [`inspect`]'s answer as JSON. An access token's is kept with its
/// verified claims ([`Verified::answer`]) and answered as kept when the
/// same token is introspected again under the same settings; its expiry
/// and revocation are checked on every call all the same.
pub fn inspect_json(
    settings: &Settings,
    tenants: &Tenants,
    state: &AppState,
    token: &str,
    now: u64,
) -> Result<Bytes, OAuthError> {
    match find(settings, tenants, state, token, now)? {
        Found::Access(verified, issuer) => verified
            .answer((settings.generation, issuer.generation), |claims| {
                to_json(&access_answer(claims, settings, issuer))
            }),
        Found::Answer(answer) => to_json(&answer),
    }
}

fn to_json(answer: &Introspection) -> Result<Bytes, OAuthError> {
    serde_json::to_vec(answer)
        .map(Bytes::from)
        .map_err(|_| OAuthError::internal("answer not serialisable"))
}

/// What [`find`] found: an active access token (and the tenant that
/// verified it), or the whole answer.
// Made and matched once per request, never stored: boxing the answer
// would add an allocation for nothing.
#[allow(clippy::large_enum_variant)]
enum Found<'s> {
    Access(Arc<Verified>, &'s Settings),
    Answer(Introspection),
}

fn find<'s>(
    settings: &'s Settings,
    tenants: &'s Tenants,
    state: &AppState,
    token: &str,
    now: u64,
) -> Result<Found<'s>, OAuthError> {
    // Only the tenant the token names verifies it: its keys, issuer and
    // audience (the peek only chooses; verification decides).
    let issuer = match settings.config.introspection.allow_cross_tenant {
        true => tenants.claimed_by(token).map_or(settings, |t| &**t),
        false => settings,
    };
    let found = match state.active_access_token(issuer, token, now) {
        Ok(verified) => Ok(Found::Access(verified, issuer)),
        Err(Inactive::WrongType) => state
            .active_refresh_token(issuer, token, now)
            .map(|claims| Found::Answer(finish(claims.into(), settings, issuer))),
        Err(other) => Err(other),
    };
    match found {
        Ok(found) => {
            crate::metrics::introspection("active");
            Ok(found)
        }
        Err(reason) => {
            if let Err(unavailable) = state.fail_closed(&reason) {
                crate::metrics::introspection("unavailable");
                return Err(unavailable);
            }
            crate::metrics::introspection(reason.label());
            tracing::debug!(%reason, "introspected token is inactive");
            Ok(Found::Answer(Introspection::default()))
        }
    }
}

/// The answer for an active access token.
fn access_answer(claims: &AccessClaims, settings: &Settings, issuer: &Settings) -> Introspection {
    finish(Introspection::from(claims), settings, issuer)
}

/// An active token's answer as the caller's tenant (`settings`) writes it:
/// WSO2's `cnf` alias, the user named for the token's tenant (`issuer`).
fn finish(mut answer: Introspection, settings: &Settings, issuer: &Settings) -> Introspection {
    let config = &settings.config.introspection;
    if config.wso2_cnf_alias
        && let Some(cnf) = &mut answer.cnf
    {
        cnf.x5t_sha256 = Some(cnf.x5t_s256.clone());
    }
    let cross = issuer.tokens.issuer != settings.tokens.issuer;
    name_user(&mut answer, issuer, config.subject_identifier_format, cross);
    answer
}

/// `username` as WSO2 writes it ([`subject`]), for the token's tenant and
/// client; in `app_configured` mode a user token's `sub` too. A token of
/// another tenant (`cross`) always names its user fully qualified, in
/// `sub` too, so that no answer confuses a user with a namesake of the
/// caller's tenant.
fn name_user(answer: &mut Introspection, issuer: &Settings, format: SubjectFormat, cross: bool) {
    let Some(user) = answer.username.as_deref() else {
        return;
    };
    let format = if cross {
        SubjectFormat::FullyQualified
    } else {
        format
    };
    let local = answer
        .client_id
        .as_deref()
        .and_then(|id| issuer.clients.get(id))
        .map(|client| client.local_subject)
        .unwrap_or_default();
    let name = subject::qualified(user, &issuer.domain, format, local);
    let user_token = answer.aut.as_deref() == Some(APPLICATION_USER);
    if user_token && (cross || format == SubjectFormat::AppConfigured) {
        answer.sub = Some(name.clone());
    }
    answer.username = Some(name);
}

/// RFC 7662 §2.1: the caller is a client with `introspection = true`, a
/// Bearer token of a client's own (client credentials) holding the
/// introspection scope, or a user with an introspection permission (HTTP
/// Basic `username:password`, [`super::user_caller`]). A Bearer caller gets
/// RFC 6750 §3.1 errors: `invalid_token` (401), or `insufficient_scope`
/// (403) naming the scope.
pub async fn authorize_caller(
    settings: &Settings,
    state: &AppState,
    auth: &ClientAuth,
    client: &ClientParams,
    now: u64,
) -> Result<Caller, OAuthError> {
    if auth.user_basic().is_some() && super::user_caller::is_user(settings, auth) {
        return authorize_user(settings, state, auth, client, now).await;
    }
    if let Some(token) = auth.bearer() {
        let claims = super::bearer_claims(settings, state, token, auth, now)?;
        // Only a client's own (client-credentials) token may introspect; a
        // user's token (it has a family) never may, whatever its scope.
        if claims.fid.is_some() {
            return Err(OAuthError::InvalidToken(
                "a token issued to a user may not call introspection".into(),
            ));
        }
        let needed = &settings.config.tokens.introspection_scope;
        if !crate::scope::contains(&claims.scope, needed) {
            return Err(OAuthError::InsufficientScope(needed.clone().into()));
        }
        return Ok(Caller::Client(claims.client_id.clone()));
    }
    if auth.authorization.is_none() && client.client_id.is_none() {
        return Err(OAuthError::InvalidClient(
            "caller authentication required".into(),
        ));
    }
    let caller = settings
        .clients
        .authenticate(auth.credentials(client)?, now)?;
    if caller.client.introspection {
        Ok(Caller::Client(caller.client.id.clone()))
    } else {
        Err(OAuthError::InvalidClient(
            "this client may not call introspection (its introspection setting is off)".into(),
        ))
    }
}

/// A user caller (HTTP Basic `username:password`) of `settings`' tenant.
async fn authorize_user(
    settings: &Settings,
    state: &AppState,
    auth: &ClientAuth,
    client: &ClientParams,
    now: u64,
) -> Result<Caller, OAuthError> {
    let Some((name, password)) = auth.user_basic() else {
        return Err(OAuthError::InvalidClient(
            "caller authentication required".into(),
        ));
    };
    if client.client_id.is_some() || client.client_secret.is_some() {
        return Err(OAuthError::InvalidRequest(
            "more than one caller authentication method".into(),
        ));
    }
    // No user of this tenant may introspect: nothing to check (the
    // configuration shows, never who exists).
    if !settings.user_callers {
        return Err(super::user_caller::refused());
    }
    let name = super::user_caller::local_name(settings, name);
    super::user_caller::authenticate(settings, &state.login, name, password, auth.address, now)
        .await?;
    Ok(Caller::User(name.to_string()))
}
