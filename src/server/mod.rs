//! Listeners: HTTPS (rustls, client certificate requested, kept for the
//! handlers) and optional plain HTTP for use behind a TLS-terminating proxy.
//! certbound owns the accept loop so that each request carries its
//! connection's peer certificate and the listener it came in on.
//!
//! Every resource a client can hold is bounded: connections (in total and
//! per address, [`admission`]), the TLS handshake, the request head (time
//! and size), the body (time and size, in the extractor), idle time between
//! requests, HTTP/2 streams and unanswered pings; a connection closed with
//! unread input lingers briefly so the client reads the answer
//! ([`linger`]).

pub mod access;
mod activity;
pub mod admission;
pub mod linger;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use poem::http::uri::Scheme;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Endpoint, EndpointExt, IntoEndpoint};
use rustls::pki_types::CertificateDer;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use self::activity::Activity;
use self::admission::Admission;
use self::linger::{LingerLimits, Lingering, RawTcp};

use crate::AppState;
use crate::cert::{ClientCertificate, PeerCertificate};

type SharedEndpoint = Arc<poem::endpoint::BoxEndpoint<'static>>;

/// Bound listeners, ready to serve.
pub struct Server {
    state: Arc<AppState>,
    https: Option<TcpListener>,
    http: Option<TcpListener>,
    admin: Option<TcpListener>,
    admission: Arc<Admission>,
}

impl Server {
    /// Binds the configured listeners (port 0 picks a free port).
    pub async fn bind(state: Arc<AppState>) -> Result<Self, String> {
        let settings = state.settings();
        let server = &settings.config.server;
        let https = bind(server.https, "https").await?;
        let http = bind(server.http, "http").await?;
        let admin = bind(server.admin, "admin").await?;
        let admission = Admission::new();
        Ok(Self {
            state,
            https,
            http,
            admin,
            admission,
        })
    }

    /// The bound HTTPS address.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The connection counters (open connections, for tests and metrics).
    pub fn admission(&self) -> Arc<Admission> {
        self.admission.clone()
    }

    /// The bound plain HTTP address.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The bound admin address.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` completes, then lets in-flight requests
    /// finish for up to `server.shutdown_timeout` seconds. Each connection
    /// takes the settings current when it is accepted (server certificate,
    /// timeouts, limits); a reload applies to new connections.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let admission = self.admission.clone();
        let endpoint: SharedEndpoint = Arc::new(
            crate::app(self.state.clone())
                .into_endpoint()
                .map_to_response()
                .boxed(),
        );
        let admin_endpoint: SharedEndpoint = Arc::new(
            crate::admin::app(self.state.clone(), admission.clone())
                .map_to_response()
                .boxed(),
        );
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                () = &mut shutdown => break,
                conn = accept(self.https.as_ref()) => conn.map(|c| (c, Listener::Https)),
                conn = accept(self.http.as_ref()) => conn.map(|c| (c, Listener::Http)),
                conn = accept(self.admin.as_ref()) => conn.map(|c| (c, Listener::Admin)),
            };
            let ((stream, remote), listener) = match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let settings = self.state.settings();
            let admitted = match admission.admit(remote.ip(), &settings.conn.limits) {
                Ok(admitted) => admitted,
                Err(why) => {
                    let limit = match why {
                        admission::Refused::Total => "server.max_connections",
                        admission::Refused::PerAddress => "server.max_connections_per_address",
                    };
                    tracing::debug!(%remote, limit, "connection refused: at the limit");
                    // Closed at once: nothing is kept for it.
                    drop(stream);
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let local = stream.local_addr().ok();
            let handshake_timeout = Duration::from_secs(settings.config.server.handshake_timeout);
            let acceptor = match (listener, &settings.tls) {
                (Listener::Http | Listener::Admin, _) => None,
                (Listener::Https, Some(tls)) => Some(TlsAcceptor::from(tls.clone())),
                (Listener::Https, None) => continue,
            };
            let peer = ConnPeer {
                admission: admission.clone(),
                local,
                remote,
                conn: settings.conn.clone(),
                state: self.state.clone(),
                endpoint: match listener {
                    Listener::Admin => admin_endpoint.clone(),
                    _ => endpoint.clone(),
                },
                stop: stop_rx.clone(),
            };
            tokio::spawn(async move {
                let _admitted = admitted;
                let Some(acceptor) = acceptor else {
                    peer.serve(stream, None, listener).await;
                    return;
                };
                match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(tls_stream)) => {
                        let cert = tls_stream
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
                        peer.serve(tls_stream, cert, Listener::Https).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%remote, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
                }
            });
        }
        tracing::info!("shutting down: finishing in-flight requests");
        let shutdown_timeout =
            Duration::from_secs(self.state.settings().config.server.shutdown_timeout);
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(shutdown_timeout, async {
            while admission.open() > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        if drained.await.is_err() {
            tracing::warn!("shutdown timeout passed with connections still open");
        }
    }
}

async fn bind(addr: Option<SocketAddr>, name: &str) -> Result<Option<TcpListener>, String> {
    let Some(addr) = addr else { return Ok(None) };
    TcpListener::bind(addr)
        .await
        .map(Some)
        .map_err(|e| format!("cannot listen on {name} {addr}: {e}"))
}

async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Which listener a request arrived on; attached to every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The HTTPS listener (`server.https`).
    Https,
    /// The plain HTTP listener for a proxy (`server.http`).
    Http,
    /// The admin listener (`server.admin`): metrics and probes.
    Admin,
}

/// Per-connection protocol settings, built with each [`crate::settings::Settings`].
pub struct ConnSettings {
    /// Connection and request caps.
    pub limits: admission::Limits,
    builder: auto::Builder<TokioExecutor>,
    idle: Duration,
    linger: LingerLimits,
}

impl ConnSettings {
    /// The settings for `[server]`; `proxies` are exempt from the
    /// per-address cap.
    pub fn new(config: &crate::config::ServerConfig, proxies: Vec<ipnet::IpNet>) -> Self {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(config.header_read_timeout))
            .max_buf_size(MAX_READ_HEADER_BYTES);
        let ping = Duration::from_secs(config.http2_keep_alive_interval);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(ping)
            .keep_alive_timeout(ping)
            .max_concurrent_streams(config.http2_max_streams)
            // HPACK lets a few bytes on the wire stand for a large header
            // list: beyond our 431 limit the HTTP/2 layer refuses it.
            .max_header_list_size(MAX_HEADER_BYTES as u32)
            // Flow-control windows sized to the largest body we accept, so
            // a connection cannot make us buffer megabytes of body.
            .initial_stream_window_size(window(config.max_body_bytes))
            .initial_connection_window_size(window(config.max_body_bytes).saturating_mul(4))
            .max_pending_accept_reset_streams(Some(20))
            .max_local_error_reset_streams(Some(256));
        Self {
            limits: admission::Limits {
                max_total: config.max_connections,
                max_per_address: config.max_connections_per_address,
                max_requests: config.max_requests_in_flight,
                exempt: proxies,
            },
            builder,
            idle: Duration::from_secs(config.idle_timeout),
            linger: LingerLimits {
                bytes: config.linger_bytes,
                timeout: Duration::from_secs(config.linger_timeout),
            },
        }
    }
}

/// An HTTP/2 flow-control window for bodies of at most `max_body` bytes
/// (the protocol's minimum is 65,535).
fn window(max_body: usize) -> u32 {
    u32::try_from(max_body.saturating_add(1024))
        .unwrap_or(u32::MAX)
        .max(65_535)
}

/// `uri` with its path replaced by `path` (the query kept).
fn with_path(uri: &hyper::Uri, path: &str) -> Option<hyper::Uri> {
    let path_and_query = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().ok()?);
    hyper::Uri::from_parts(parts).ok()
}

/// Largest request head answered normally: room for a forwarded
/// certificate chain. Up to [`MAX_READ_HEADER_BYTES`] a larger head gets
/// our JSON 431; beyond, the HTTP layer refuses it itself.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// HTTP/1 read buffer and HTTP/2 header list limit (memory per connection).
const MAX_READ_HEADER_BYTES: usize = 2 * MAX_HEADER_BYTES;

/// The size of a request head as counted against [`MAX_HEADER_BYTES`].
fn head_bytes<B>(req: &hyper::Request<B>) -> usize {
    req.uri().path_and_query().map_or(0, |p| p.as_str().len())
        + req
            .headers()
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>()
}

/// What a connection task needs.
struct ConnPeer {
    admission: Arc<Admission>,
    local: Option<SocketAddr>,
    remote: SocketAddr,
    /// The connection's protocol settings, from when it was accepted (only
    /// these: the rest of those settings may be replaced meanwhile).
    conn: Arc<ConnSettings>,
    /// For the settings current at each request.
    state: Arc<AppState>,
    endpoint: SharedEndpoint,
    stop: tokio::sync::watch::Receiver<bool>,
}

impl ConnPeer {
    /// Serves HTTP/1.1 or HTTP/2 on `io` until the client leaves, the
    /// connection has been idle for `server.idle_timeout`, or the server
    /// stops.
    async fn serve<Io: RawTcp + Send + 'static>(
        mut self,
        io: Io,
        cert: Option<PeerCertificate>,
        listener: Listener,
    ) {
        let local = LocalAddr(self.local.map_or(
            poem::Addr::Custom("unknown", "".into()),
            poem::Addr::SocketAddr,
        ));
        let remote_addr = RemoteAddr(poem::Addr::SocketAddr(self.remote));
        let scheme = match listener {
            Listener::Https => Scheme::HTTPS,
            Listener::Http | Listener::Admin => Scheme::HTTP,
        };
        let peer_addr = self.remote;
        let activity = Arc::new(Activity::new());
        let endpoint = self.endpoint.clone();
        let tracker = activity.clone();
        let in_flight_total = self.admission.clone();
        let state = self.state.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            let in_flight = tracker.begin();
            let endpoint = endpoint.clone();
            let too_large = head_bytes(&req) > MAX_HEADER_BYTES;
            // The settings this request sees from start to end: the
            // tenant's its path names (the prefix is then stripped).
            let current = state.settings();
            let sent_path = current
                .config
                .log
                .access
                .then(|| req.uri().path().to_string());
            let admitted = in_flight_total.try_begin(&current.conn.limits);
            let routed = crate::tenant::route(&current, req.uri().path());
            let (settings, base) = match routed {
                Ok(crate::tenant::Routed {
                    settings,
                    under: Some((base, path)),
                }) => {
                    if let Some(uri) = with_path(req.uri(), &path) {
                        *req.uri_mut() = uri;
                    }
                    (Some(settings), base)
                }
                Ok(routed) => (Some(routed.settings), String::new()),
                Err(crate::tenant::UnknownTenant) => (None, String::new()),
            };
            let allow = crate::oauth::allowed_methods(req.uri().path());
            let endpoint_label = crate::metrics::endpoint(req.uri().path());
            let mut req =
                poem::Request::from((req, local.clone(), remote_addr.clone(), scheme.clone()));
            req.extensions_mut().insert(listener);
            let observed = access::Observed::begin(
                endpoint_label,
                sent_path.map(|path| {
                    let forwarded = current.proxies.client_address(&req);
                    (req.method().clone(), path, forwarded)
                }),
            );
            req.extensions_mut().insert(crate::tenant::BasePath(base));
            req.extensions_mut()
                .insert(crate::tenant::Tenants(current.clone()));
            let unknown_tenant = settings.is_none();
            if let Some(settings) = settings {
                req.extensions_mut().insert(settings);
            }
            if let Some(cert) = &cert {
                req.extensions_mut().insert(cert.clone());
            }
            async move {
                let resp = match admitted {
                    None => poem::IntoResponse::into_response(
                        crate::error::OAuthError::TemporarilyUnavailable(
                            "the server is at its limit of requests in flight; retry shortly"
                                .into(),
                        ),
                    ),
                    Some(_request) if too_large => {
                        poem::IntoResponse::into_response(crate::error::OAuthError::HeadersTooLarge)
                    }
                    Some(_request) if unknown_tenant => {
                        poem::IntoResponse::into_response(crate::error::OAuthError::NotFound)
                    }
                    Some(_request) if observed.logs() => {
                        let (resp, client) = access::with_slot(endpoint.get_response(req)).await;
                        let resp = crate::error::only_oauth_errors(resp, allow);
                        observed.finish(resp.status().as_u16(), client.as_deref(), peer_addr);
                        drop(in_flight);
                        return Ok(hyper::Response::from(resp));
                    }
                    Some(_request) => {
                        crate::error::only_oauth_errors(endpoint.get_response(req).await, allow)
                    }
                };
                observed.finish(resp.status().as_u16(), None, peer_addr);
                drop(in_flight);
                Ok::<_, std::convert::Infallible>(hyper::Response::from(resp))
            }
        });
        let io = TokioIo::new(Lingering::new(io, self.conn.linger));
        let conn = self.conn.builder.serve_connection(io, service);
        tokio::pin!(conn);
        let idle = self.conn.idle;
        // Once closing, the connection gets this long to finish on its own.
        let mut closing: Option<Instant> = None;
        loop {
            let wake = closing.unwrap_or_else(|| activity.idle_deadline(idle));
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(remote = %self.remote, error = %e, "connection ended with an error");
                    }
                    return;
                }
                () = tokio::time::sleep_until(wake) => {
                    if closing.is_some() {
                        tracing::debug!(remote = %self.remote, "connection dropped after its grace period");
                        return;
                    }
                    if activity.is_idle(idle) {
                        tracing::debug!(remote = %self.remote, "closing idle connection");
                        conn.as_mut().graceful_shutdown();
                        closing = Some(Instant::now() + idle.min(CLOSE_GRACE) + self.conn.linger.timeout);
                    }
                }
                changed = self.stop.changed(), if closing.is_none() => {
                    if changed.is_err() || *self.stop.borrow() {
                        conn.as_mut().graceful_shutdown();
                        closing = Some(Instant::now() + SHUTDOWN_GRACE);
                    }
                }
            }
        }
    }
}

/// How long an idle connection told to close may take to do so.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// On server shutdown, connections are dropped after this (the process
/// waits at most `server.shutdown_timeout` anyway).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3600);
