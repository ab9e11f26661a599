//! A resource server on poem that accepts certbound's certificate-bound
//! tokens behind a TLS-terminating proxy (nginx, for example) that
//! forwards the client certificate in `x-ssl-client-cert`
//! (`$ssl_client_escaped_cert`): `GET /orders` needs scope `read`,
//! `GET /health` needs nothing.
//!
//! ```sh
//! cargo run --release                     # the authorization server, https://127.0.0.1:9443
//! cargo run -p certbound-verify --features poem --example poem_resource_server
//! ```
//!
//! Settings (environment): `RS_ISSUER` (https://127.0.0.1:9443),
//! `RS_AUDIENCE` (the issuer), `RS_JWKS` (a JWKS URL; default: found by
//! discovery), `RS_CA` (keys/ca.crt), `RS_LISTEN`
//! (127.0.0.1:8081), `RS_TRUSTED_PROXY` (127.0.0.1/32), `RS_CERT_HEADER`
//! (x-ssl-client-cert), `RS_SCOPE` (read; space-separated, all needed).
//!
//! The header is believed from `RS_TRUSTED_PROXY` alone: in production,
//! listen where only the proxy can connect and name only its address (the
//! default, 127.0.0.1, believes every local process).

#![allow(clippy::expect_used, missing_docs)]

use std::sync::Arc;

use certbound_verify::client::HttpOptions;
use certbound_verify::proxy::Proxies;
use certbound_verify::{ResourceServer, Token};
use poem::listener::TcpListener;
use poem::listener::{Acceptor, Listener};
use poem::{EndpointExt, Route, Server, get, handler};

fn setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

#[handler]
fn orders(token: Token) -> String {
    format!("orders of {} (client {})\n", token.sub, token.client_id)
}

#[handler]
fn health() -> &'static str {
    "ok\n"
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
    let proxies = Proxies {
        nets: vec![setting("RS_TRUSTED_PROXY", "127.0.0.1/32").parse()?],
    };

    // The five lines: a gate for the issuer's tokens, a route behind it.
    let audience = setting("RS_AUDIENCE", &issuer);
    let gate = match std::env::var("RS_JWKS") {
        Ok(jwks) => ResourceServer::for_jwks_uri(&jwks, &issuer, &audience, &http)?,
        Err(_) => ResourceServer::for_issuer(&issuer, &audience, &http)?,
    };
    let gate = gate.behind(proxies, &setting("RS_CERT_HEADER", "x-ssl-client-cert"))?;
    let gate = Arc::new(gate);
    let app = Route::new()
        .at(
            "/orders",
            get(orders).with(gate.require(&[&setting("RS_SCOPE", "read")])),
        )
        .at("/health", get(health));

    let acceptor = TcpListener::bind(setting("RS_LISTEN", "127.0.0.1:8081"))
        .into_acceptor()
        .await?;
    if let Some(addr) = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr())
    {
        println!("resource server on http://{addr}");
    }
    Server::new_with_acceptor(acceptor).run(app).await?;
    Ok(())
}
