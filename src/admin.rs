//! The admin listener (`server.admin`, plain HTTP, off by default): the
//! Prometheus metrics at `GET /metrics` ([`crate::metrics`]), the same
//! `/healthz` and `/readyz` as the public listeners, and `POST
//! /admin/revoke` for the clients in `admin.clients` ([`crate::revoke_all`]).
//! Nothing here is served on a public listener; keep the address on
//! loopback or a private network.

use std::sync::Arc;

use poem::http::header;
use poem::web::{Data, Json};
use poem::{Body, Endpoint, EndpointExt, IntoResponse, Request, Response, Route, get, handler};

use crate::AppState;
use crate::error::OAuthError;
use crate::revoke_all::Target;
use crate::server::admission::Admission;

/// The admin service.
pub fn app(state: Arc<AppState>, admission: Arc<Admission>) -> impl Endpoint {
    Route::new()
        .at("/metrics", get(metrics))
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz))
        .at("/admin/revoke", poem::post(revoke))
        .data(state)
        .data(admission)
}

#[handler]
fn metrics(state: Data<&Arc<AppState>>, admission: Data<&Arc<Admission>>) -> Response {
    let (revocation_file_bytes, view_age) = state.revocations.gauges();
    crate::metrics::set_gauges(&crate::metrics::Gauges {
        revocation_entries: state.revocations.stats().entries,
        revocation_file_bytes,
        view_age,
        open_connections: admission.open(),
    });
    match crate::metrics::render() {
        Some(text) => Response::builder()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .header(header::CACHE_CONTROL, "no-store")
            .body(text),
        None => crate::error::OAuthError::NotFound.into_response(),
    }
}

#[handler]
fn healthz() -> Response {
    crate::health::healthz().into_response()
}

#[handler]
fn readyz(state: Data<&Arc<AppState>>) -> Response {
    crate::health::readiness(&state).into_response()
}

/// `POST /admin/revoke`, a form with one of `client`, `user` or `jti`, and
/// optionally `tenant` (a domain); HTTP Basic as a client in
/// `admin.clients`. 200 with what was revoked once it is durable.
#[handler]
async fn revoke(req: &Request, body: Body, state: Data<&Arc<AppState>>) -> Response {
    match revoke_form(req, body, &state).await {
        Ok(done) => Json(done).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn revoke_form(
    req: &Request,
    body: Body,
    state: &AppState,
) -> Result<serde_json::Value, OAuthError> {
    let settings = state.settings();
    let now = crate::keys::unix_now();
    let Some(crate::oauth::extract::Authorization::Basic(id, secret)) =
        crate::oauth::extract::parse_authorization(req)?
    else {
        return Err(crate::clients::Refusal::NoCredentials.refuse(None));
    };
    let creds = crate::clients::Credentials {
        basic: Some((&id, &secret)),
        ..Default::default()
    };
    let caller = settings.clients.authenticate(creds, now)?;
    if !settings.config.admin.clients.contains(&caller.client.id) {
        return Err(crate::clients::Refusal::NotAdmin.refuse(Some(&caller.client.id)));
    }
    // A form, as at the OAuth endpoints (a cross-site page cannot send
    // another content type without the browser asking first).
    if !req.content_type().is_some_and(crate::oauth::form::is_form) {
        return Err(OAuthError::UnsupportedMediaType);
    }
    let limit = settings.config.server.max_body_bytes;
    let timeout = std::time::Duration::from_secs(settings.config.server.body_read_timeout);
    let bytes = match tokio::time::timeout(timeout, body.into_bytes_limit(limit)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(poem::error::ReadBodyError::PayloadTooLarge)) => {
            return Err(OAuthError::PayloadTooLarge);
        }
        _ => {
            return Err(OAuthError::InvalidRequest(
                "the body could not be read".into(),
            ));
        }
    };
    let mut fields = std::collections::BTreeMap::new();
    for (key, value) in form_urlencoded::parse(&bytes) {
        if fields
            .insert(key.into_owned(), value.into_owned())
            .is_some()
        {
            return Err(OAuthError::InvalidRequest("a parameter is repeated".into()));
        }
    }
    let mut targets = ["client", "user", "jti"]
        .into_iter()
        .filter_map(|kind| Some((kind, fields.get(kind)?)));
    let (Some((kind, name)), None) = (targets.next(), targets.next()) else {
        return Err(OAuthError::InvalidRequest(
            "send exactly one of client, user or jti".into(),
        ));
    };
    let target = Target::parse(kind, name).ok_or_else(|| OAuthError::internal("target kind"))?;
    let tenant = crate::revoke_all::tenant(&settings, fields.get("tenant").map(String::as_str))
        .map_err(answer)?;
    // The cutoff is taken now, after the body: nothing issued while it
    // was read escapes it.
    let done = crate::revoke_all::revoke(state, tenant, &target, crate::keys::unix_now())
        .await
        .map_err(answer)?;
    tracing::info!(admin = %caller.client.id, kind, "admin revocation");
    Ok(serde_json::json!({
        "revoked": kind,
        "name": name,
        "tenant": tenant.domain,
        "not_after": done.not_after,
        "summary": done.summary,
    }))
}

/// The client's answer for a refused revocation: fixed words (names are
/// not echoed into `error_description`).
fn answer(refused: crate::revoke_all::Refused) -> OAuthError {
    use crate::revoke_all::Refused;
    OAuthError::InvalidRequest(
        match refused {
            Refused::List(list) => return list.into(),
            Refused::UnknownTenant(_) => "no such tenant",
            Refused::UnknownClient(..) => "no such client in the tenant",
            Refused::UnknownUser(..) => "no such user in the tenant",
            Refused::BadJti(_) => "a jti is 1 to 128 visible ASCII characters",
        }
        .into(),
    )
}
