//! A resource server on axum that accepts certbound's certificate-bound
//! tokens: `GET /orders` needs scope `read` (`RS_SCOPE`), `GET /health`
//! needs nothing. It terminates TLS itself, asking every client for its
//! certificate, or (with `RS_TLS_CERT` empty) serves plain HTTP behind a
//! proxy trusted for `RS_CERT_HEADER`.
//!
//! ```sh
//! cargo run --release                     # the authorization server, https://127.0.0.1:9443
//! cargo run -p certbound-verify --features axum,rustls --example axum_resource_server
//! ```
//!
//! Settings (environment): `RS_ISSUER` (https://127.0.0.1:9443),
//! `RS_AUDIENCE` (the issuer), `RS_JWKS` (a JWKS URL; default: found by
//! discovery), `RS_CA` (keys/ca.crt: the CA of the
//! authorization server's certificate), `RS_LISTEN` (127.0.0.1:8444),
//! `RS_TLS_CERT` and `RS_TLS_KEY` (keys/server.crt, keys/server.key),
//! `RS_TRUSTED_PROXY` (a CIDR; none) and `RS_CERT_HEADER`
//! (x-ssl-client-cert), `RS_SCOPE` (read).

#![allow(clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;
use certbound_verify::client::HttpOptions;
use certbound_verify::proxy::Proxies;
use certbound_verify::{PeerCertificate, ResourceServer, Token};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tower::ServiceExt;

fn setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

async fn orders(token: Token) -> String {
    format!("orders of {} (client {})\n", token.sub, token.client_id)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let issuer = setting("RS_ISSUER", "https://127.0.0.1:9443");
    let http = HttpOptions {
        ca_pem: std::fs::read(setting("RS_CA", "keys/ca.crt")).ok(),
        ..HttpOptions::default()
    };

    // The five lines: a gate for the issuer's tokens, a route behind it.
    let audience = setting("RS_AUDIENCE", &issuer);
    let mut gate = match std::env::var("RS_JWKS") {
        Ok(jwks) => ResourceServer::for_jwks_uri(&jwks, &issuer, &audience, &http)?,
        Err(_) => ResourceServer::for_issuer(&issuer, &audience, &http)?,
    };
    if let Ok(proxy) = std::env::var("RS_TRUSTED_PROXY") {
        let proxies = Proxies {
            nets: vec![proxy.parse()?],
        };
        gate = gate.behind(proxies, &setting("RS_CERT_HEADER", "x-ssl-client-cert"))?;
    }
    let gate = Arc::new(gate);
    let app = Router::new()
        .route("/orders", get(orders))
        .route_layer(gate.require(&[&setting("RS_SCOPE", "read")]))
        .route("/health", get(|| async { "ok\n" }));

    let listen: SocketAddr = setting("RS_LISTEN", "127.0.0.1:8444").parse()?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let tls = match setting("RS_TLS_CERT", "keys/server.crt") {
        empty if empty.is_empty() => None,
        cert => {
            let chain = rustls_pemfile::certs(&mut std::fs::read(&cert)?.as_slice())
                .collect::<Result<Vec<_>, _>>()?;
            let key = rustls_pemfile::private_key(
                &mut std::fs::read(setting("RS_TLS_KEY", "keys/server.key"))?.as_slice(),
            )?
            .ok_or("RS_TLS_KEY holds no private key")?;
            let config = certbound_verify::tls::server_config(chain, key)?;
            Some(tokio_rustls::TlsAcceptor::from(config))
        }
    };
    println!(
        "resource server on {}://{}",
        if tls.is_some() { "https" } else { "http" },
        listener.local_addr()?
    );
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let app = app.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                Some(acceptor) => {
                    let Ok(Ok(stream)) = tokio::time::timeout(
                        std::time::Duration::from_secs(10),
                        acceptor.accept(stream),
                    )
                    .await
                    else {
                        return;
                    };
                    let cert = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .map(|leaf| PeerCertificate(leaf.as_ref().into()));
                    serve(stream, peer, cert, app).await;
                }
                None => serve(stream, peer, None, app).await,
            }
        });
    }
}

/// Serves one connection, each request carrying the peer's address and
/// TLS client certificate.
async fn serve<Io>(io: Io, peer: SocketAddr, cert: Option<PeerCertificate>, app: Router)
where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = app.map_request(move |req: hyper::Request<hyper::body::Incoming>| {
        let mut req = req.map(axum::body::Body::new);
        req.extensions_mut().insert(ConnectInfo(peer));
        if let Some(cert) = &cert {
            req.extensions_mut().insert(cert.clone());
        }
        req
    });
    let service = hyper_util::service::TowerToHyperService::new(service);
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), service)
        .await;
}
