//! Listeners: HTTPS (rustls, client certificate requested, kept for the
//! handlers) and optional plain HTTP for use behind a TLS-terminating proxy.
//! certbound owns the accept loop so that each request carries its
//! connection's peer certificate; handshake timeouts and graceful shutdown
//! are kept.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use poem::http::uri::Scheme;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Endpoint, EndpointExt, IntoEndpoint};
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::AppState;
use crate::cert::{ClientCertificate, PeerCertificate};

type SharedEndpoint = Arc<poem::endpoint::BoxEndpoint<'static>>;

/// Bound listeners, ready to serve.
pub struct Server {
    state: Arc<AppState>,
    https: Option<(TcpListener, TlsAcceptor)>,
    http: Option<TcpListener>,
}

impl Server {
    /// Binds the configured listeners (port 0 picks a free port).
    pub async fn bind(state: Arc<AppState>) -> Result<Self, String> {
        let server = &state.config.server;
        let https = match server.https {
            Some(addr) => {
                let tls =
                    crate::tls::server_config(&server.tls_certificate, &server.tls_private_key)?;
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|e| format!("cannot listen on https {addr}: {e}"))?;
                Some((listener, TlsAcceptor::from(tls)))
            }
            None => None,
        };
        let http = match server.http {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| format!("cannot listen on http {addr}: {e}"))?,
            ),
            None => None,
        };
        Ok(Self { state, https, http })
    }

    /// The bound HTTPS address.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// The bound plain HTTP address.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` completes, then lets in-flight requests
    /// finish for up to `server.shutdown_timeout` seconds.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let config = &self.state.config.server;
        let handshake_timeout = Duration::from_secs(config.handshake_timeout);
        let shutdown_timeout = Duration::from_secs(config.shutdown_timeout);
        let endpoint: SharedEndpoint = Arc::new(
            crate::app(self.state.clone())
                .into_endpoint()
                .map_to_response()
                .boxed(),
        );
        let graceful = GracefulShutdown::new();
        let https_acceptor = self.https.as_ref().map(|(_, a)| a.clone());
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                () = &mut shutdown => break,
                conn = accept(self.https.as_ref().map(|(l, _)| l)) => conn.map(|c| (c, https_acceptor.clone())),
                conn = accept(self.http.as_ref()) => conn.map(|c| (c, None)),
            };
            let ((stream, remote), acceptor) = match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let local = stream.local_addr().ok();
            let endpoint = endpoint.clone();
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                let Some(acceptor) = acceptor else {
                    serve(stream, None, local, remote, Scheme::HTTP, endpoint, watcher).await;
                    return;
                };
                match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(tls_stream)) => {
                        let peer = tls_stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .map(|chain| {
                                chain
                                    .iter()
                                    .map(|c| c.clone().into_owned())
                                    .collect::<Vec<CertificateDer<'static>>>()
                            })
                            .and_then(ClientCertificate::from_chain)
                            .map(|c| PeerCertificate(Arc::new(c)));
                        serve(
                            tls_stream,
                            peer,
                            local,
                            remote,
                            Scheme::HTTPS,
                            endpoint,
                            watcher,
                        )
                        .await;
                    }
                    Ok(Err(e)) => tracing::debug!(%remote, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
                }
            });
        }
        tracing::info!("shutting down: finishing in-flight requests");
        if tokio::time::timeout(shutdown_timeout, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("shutdown timeout passed with connections still open");
        }
    }
}

async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

async fn serve<Io>(
    io: Io,
    peer: Option<PeerCertificate>,
    local: Option<SocketAddr>,
    remote: SocketAddr,
    scheme: Scheme,
    endpoint: SharedEndpoint,
    watcher: Watcher,
) where
    Io: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let local = LocalAddr(local.map_or(
        poem::Addr::Custom("unknown", "".into()),
        poem::Addr::SocketAddr,
    ));
    let remote_addr = RemoteAddr(poem::Addr::SocketAddr(remote));
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let endpoint = endpoint.clone();
        let mut req =
            poem::Request::from((req, local.clone(), remote_addr.clone(), scheme.clone()));
        if let Some(peer) = &peer {
            req.extensions_mut().insert(peer.clone());
        }
        async move {
            Ok::<_, std::convert::Infallible>(hyper::Response::from(
                endpoint.get_response(req).await,
            ))
        }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(%remote, error = %e, "connection ended with an error");
    }
}
