//! Health and readiness for load balancers and orchestrators: `GET
//! /healthz` (the process answers) and `GET /readyz` (it can do its work:
//! keys readable, revocation list writable, and with Redis a fresh view of
//! the shared list). Served on every listener, unauthenticated, cheap: no
//! I/O, only flags the background tasks keep.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};

use crate::AppState;

/// Health and readiness.
pub struct Api;

#[derive(Tags)]
enum Tag {
    /// Health and readiness probes
    Operations,
}

/// `/healthz`'s answer.
#[derive(Debug, Object)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

/// `/readyz`'s answer.
#[derive(Debug, Object)]
pub struct Readiness {
    /// `ready` or `unavailable`.
    pub status: String,
    /// Why it is not ready (empty when ready).
    pub reasons: Vec<String>,
}

/// Ready or not.
#[derive(ApiResponse)]
pub enum ReadyResponse {
    /// Ready to serve every endpoint.
    #[oai(status = 200)]
    Ready(Json<Readiness>, #[oai(header = "Cache-Control")] String),
    /// Not ready: the reasons say what is missing.
    #[oai(status = 503)]
    Unavailable(Json<Readiness>, #[oai(header = "Cache-Control")] String),
}

/// The process answers.
#[derive(ApiResponse)]
pub enum HealthResponse {
    /// Alive.
    #[oai(status = 200)]
    Ok(Json<Health>, #[oai(header = "Cache-Control")] String),
}

#[OpenApi]
impl Api {
    /// Liveness: 200 whenever the process answers.
    #[oai(
        path = "/healthz",
        method = "get",
        tag = "Tag::Operations",
        operation_id = "healthz"
    )]
    async fn healthz(&self) -> HealthResponse {
        healthz()
    }

    /// Readiness: 200 when tokens can be issued, checked and revoked;
    /// otherwise 503 with the reasons (keys unreadable, the revocation
    /// list not writable, Redis unreachable or this replica's view of it
    /// older than `revocation.redis.max_staleness`).
    #[oai(
        path = "/readyz",
        method = "get",
        tag = "Tag::Operations",
        operation_id = "readyz"
    )]
    async fn readyz(&self, state: Data<&Arc<AppState>>) -> ReadyResponse {
        readiness(&state)
    }
}

/// The liveness answer.
pub fn healthz() -> HealthResponse {
    HealthResponse::Ok(
        Json(Health {
            status: "ok".into(),
        }),
        "no-store".into(),
    )
}

/// The readiness answer.
pub fn readiness(state: &AppState) -> ReadyResponse {
    let reasons = state.not_ready();
    let cache = "no-store".to_string();
    if reasons.is_empty() {
        ReadyResponse::Ready(
            Json(Readiness {
                status: "ready".into(),
                reasons,
            }),
            cache,
        )
    } else {
        ReadyResponse::Unavailable(
            Json(Readiness {
                status: "unavailable".into(),
                reasons,
            }),
            cache,
        )
    }
}
