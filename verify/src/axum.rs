//! axum integration (feature `axum`): [`Require`] is a layer that answers
//! a refused request per RFC 6750 and hands the handler a [`Token`].
//!
//! ```ignore
//! let gate = Arc::new(ResourceServer::for_issuer(ISSUER, AUDIENCE, &Default::default())?);
//! let app = Router::new()
//!     .route("/orders", get(orders))
//!     .route_layer(gate.require(&["orders:read"]));
//! async fn orders(token: Token) -> String { format!("orders of {}", token.sub) }
//! ```
//!
//! The peer's address comes from `ConnectInfo<SocketAddr>`, the TLS client
//! certificate from a [`PeerCertificate`] extension.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::guard::{PeerCertificate, Require, Token};

impl<S, E> tower_layer::Layer<S> for Require<E> {
    type Service = Guarded<S, E>;

    fn layer(&self, inner: S) -> Self::Service {
        Guarded {
            inner,
            require: self.clone(),
        }
    }
}

/// A service behind [`Require`].
pub struct Guarded<S, E> {
    inner: S,
    require: Require<E>,
}

impl<S: Clone, E> Clone for Guarded<S, E> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            require: self.require.clone(),
        }
    }
}

impl<S, E> tower_service::Service<Request> for Guarded<S, E>
where
    S: tower_service::Service<Request, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    E: DeserializeOwned + Send + Sync + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        // The clone is ready; this one stays for the next call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let require = self.require.clone();
        Box::pin(async move {
            let peer = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip());
            let cert = req.extensions().get::<PeerCertificate>().cloned();
            match require
                .check(req.headers(), peer, cert.as_ref().map(|c| &*c.0))
                .await
            {
                Ok(token) => {
                    req.extensions_mut().insert(token);
                    inner.call(req).await
                }
                Err(rejection) => Ok(require.gate.answer(&rejection).into_response()),
            }
        })
    }
}

/// The handler's token: present on every route behind [`Require<E>`].
impl<S: Send + Sync, E: Send + Sync + 'static> FromRequestParts<S> for Token<E> {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Token<E>>().cloned().ok_or((
            StatusCode::INTERNAL_SERVER_ERROR,
            "this route takes a Token but is not behind certbound_verify's Require",
        ))
    }
}
