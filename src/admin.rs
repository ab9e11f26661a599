//! The admin listener (`server.admin`, plain HTTP, off by default): the
//! Prometheus metrics at `GET /metrics` ([`crate::metrics`]) and the same
//! `/healthz` and `/readyz` as the public listeners. Nothing here is
//! served on a public listener; keep the address on loopback or a private
//! network.

use std::sync::Arc;

use poem::http::header;
use poem::web::Data;
use poem::{Endpoint, EndpointExt, IntoResponse, Response, Route, get, handler};

use crate::AppState;
use crate::server::admission::Admission;

/// The admin service.
pub fn app(state: Arc<AppState>, admission: Arc<Admission>) -> impl Endpoint {
    Route::new()
        .at("/metrics", get(metrics))
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz))
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
