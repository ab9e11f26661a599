//! poem integration (feature `poem`): [`Require`] is a middleware that
//! answers a refused request per RFC 6750 and hands the handler a
//! [`Token`].
//!
//! ```ignore
//! let gate = Arc::new(ResourceServer::for_issuer(ISSUER, AUDIENCE, &Default::default())?);
//! let app = Route::new().at("/orders", get(orders).with(gate.require(&["orders:read"])));
//! #[handler]
//! fn orders(token: Token) -> String { format!("orders of {}", token.sub) }
//! ```
//!
//! The peer's address is the request's remote address; the TLS client
//! certificate comes from a [`PeerCertificate`] extension.

use poem::http::StatusCode;
use poem::{Endpoint, FromRequest, IntoResponse, Middleware, Request, RequestBody, Response};
use serde::de::DeserializeOwned;

use crate::guard::{PeerCertificate, Require, Token};

impl<EP: Endpoint, E: DeserializeOwned + Send + Sync + 'static> Middleware<EP> for Require<E> {
    type Output = Guarded<EP, E>;

    fn transform(&self, ep: EP) -> Self::Output {
        Guarded {
            inner: ep,
            require: self.clone(),
        }
    }
}

/// An endpoint behind [`Require`].
pub struct Guarded<EP, E> {
    inner: EP,
    require: Require<E>,
}

impl<EP: Endpoint, E: DeserializeOwned + Send + Sync + 'static> Endpoint for Guarded<EP, E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let peer = req.remote_addr().as_socket_addr().map(|a| a.ip());
        let cert = req.extensions().get::<PeerCertificate>().cloned();
        match self
            .require
            .check(req.headers(), peer, cert.as_ref().map(|c| &*c.0))
            .await
        {
            Ok(token) => {
                req.extensions_mut().insert(token);
                self.inner.call(req).await.map(IntoResponse::into_response)
            }
            Err(rejection) => {
                let (parts, body) = self.require.gate.answer(&rejection).into_parts();
                let mut response = Response::builder().status(parts.status).body(body);
                *response.headers_mut() = parts.headers;
                Ok(response)
            }
        }
    }
}

/// The handler's token: present on every route behind [`Require<E>`].
impl<'a, E: Send + Sync + 'static> FromRequest<'a> for Token<E> {
    async fn from_request(req: &'a Request, _: &mut RequestBody) -> poem::Result<Self> {
        req.extensions().get::<Token<E>>().cloned().ok_or_else(|| {
            poem::Error::from_string(
                "this route takes a Token but is not behind certbound_verify's Require",
                StatusCode::INTERNAL_SERVER_ERROR,
            )
        })
    }
}
