//! Resource bounds on connections: idle, slowloris and half-open TLS
//! connections are closed within the configured timeouts while a normal
//! client is served; connection caps hold; a client that writes a whole
//! oversized body before reading still reads the 413.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use certbound::keys::Alg;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;

use crate::common::{Api, Setup, TestServer};

const CLIENT: &str = r#"
[[clients]]
client_id = "svc"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=svc"
"#;

const SHORT_TIMEOUTS: &str = "
handshake_timeout = 2
header_read_timeout = 2
idle_timeout = 2
linger_timeout = 1
";

/// Reads until the server closes; the time it took, or `None` if it was
/// still open after `within`.
async fn closed_within(mut io: impl AsyncRead + Unpin, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, read_all)
        .await
        .ok()
        .map(|()| start.elapsed())
}

async fn tls(api: &Api, tcp: TcpStream) -> tokio_rustls::client::TlsStream<TcpStream> {
    TlsConnector::from(Arc::new(api.tls_config(None)))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

async fn connect_from(source: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    socket.connect(to).await.unwrap()
}

#[tokio::test]
async fn idle_slowloris_and_half_open_connections_are_closed() {
    let setup = Setup::with_server(SHORT_TIMEOUTS, CLIENT, "[]", Alg::ES256);
    let server = TestServer::start_setup(setup).await;
    let http = server.http.unwrap();
    let mut waiting = Vec::new();
    // Plain connections that never send a byte.
    for _ in 0..40 {
        let s = TcpStream::connect(http).await.unwrap();
        waiting.push((
            "idle http",
            tokio::spawn(closed_within(s, Duration::from_secs(8))),
        ));
    }
    // TCP to the HTTPS port without a handshake.
    for _ in 0..40 {
        let s = TcpStream::connect(server.https).await.unwrap();
        waiting.push((
            "no handshake",
            tokio::spawn(closed_within(s, Duration::from_secs(8))),
        ));
    }
    // A finished TLS handshake, then nothing.
    for _ in 0..40 {
        let s = tls(&server, TcpStream::connect(server.https).await.unwrap()).await;
        waiting.push((
            "idle tls",
            tokio::spawn(closed_within(s, Duration::from_secs(8))),
        ));
    }
    // An HTTP/2 preface and SETTINGS, then nothing.
    for _ in 0..20 {
        let mut s = TcpStream::connect(http).await.unwrap();
        s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            .await
            .unwrap();
        waiting.push((
            "idle h2",
            tokio::spawn(closed_within(s, Duration::from_secs(8))),
        ));
    }
    // Slowloris: a header line every 300 ms, never finished.
    for _ in 0..40 {
        let mut s = TcpStream::connect(http).await.unwrap();
        waiting.push((
            "slowloris",
            tokio::spawn(async move {
                let start = Instant::now();
                s.write_all(b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\n")
                    .await
                    .ok()?;
                for i in 0..40 {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    if s.write_all(format!("X-{i}: y\r\n").as_bytes())
                        .await
                        .is_err()
                    {
                        return Some(start.elapsed());
                    }
                }
                closed_within(s, Duration::from_secs(1)).await
            }),
        ));
    }
    // Meanwhile a normal client is served, over both listeners.
    let id = server
        .pki
        .client(&[(rcgen::DnType::CommonName, "svc")], vec![]);
    for _ in 0..5 {
        server.token(&id, "svc").await;
        assert_eq!(introspect_status(&server).await, 401);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (kind, task) in waiting {
        let took = task.await.unwrap();
        // 2 s timeout, 1 s linger, and scheduling slack.
        assert!(
            took.is_some_and(|t| t < Duration::from_secs(6)),
            "{kind} connection still open: {took:?}"
        );
    }
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(3), async {
            while server.open_connections() > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await,
        Ok(()),
        "the server still holds connections"
    );
}

#[tokio::test]
async fn a_keep_alive_client_is_closed_after_the_idle_timeout_not_before() {
    let setup = Setup::with_server(SHORT_TIMEOUTS, CLIENT, "[]", Alg::ES256);
    let server = TestServer::start_setup(setup).await;
    let mut s = TcpStream::connect(server.http.unwrap()).await.unwrap();
    for _ in 0..3 {
        s.write_all(b"GET /oauth2/jwks HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 2048];
        let n = s.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        // Less than the idle timeout between requests: kept open.
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    let took = closed_within(s, Duration::from_secs(6)).await;
    assert!(
        took.is_some_and(|t| t >= Duration::from_millis(500)),
        "{took:?}"
    );
}

/// One request on `s`, answered 200.
async fn assert_served(mut s: TcpStream) {
    s.write_all(b"GET /oauth2/jwks HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"));
}

/// The status of an unauthenticated introspection over plain HTTP.
async fn introspect_status(server: &TestServer) -> u16 {
    server
        .post(
            &reqwest::Client::new(),
            &server.http_url("/oauth2/introspect"),
            &[("token", "x")],
            &[],
        )
        .await
        .0
}

#[tokio::test]
async fn connection_caps_refuse_at_once_and_free_places() {
    let setup = Setup::with_server(
        "max_connections = 12\nmax_connections_per_address = 4\nidle_timeout = 30",
        CLIENT,
        "[\"127.0.0.9/32\"]",
        Alg::ES256,
    );
    let server = TestServer::start_setup(setup).await;
    let http = server.http.unwrap();
    // Per address: the fifth from 127.0.0.2 is closed at once.
    let mut from_two = Vec::new();
    for _ in 0..4 {
        from_two.push(connect_from([127, 0, 0, 2], http).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = connect_from([127, 0, 0, 2], http).await;
    assert!(
        closed_within(refused, Duration::from_secs(2))
            .await
            .is_some(),
        "over the per-address cap"
    );
    // Another address is still admitted and served.
    assert_served(connect_from([127, 0, 0, 3], http).await).await;
    // A trusted proxy address is exempt from the per-address cap, not from
    // the total.
    let mut from_proxy = Vec::new();
    for _ in 0..8 {
        from_proxy.push(connect_from([127, 0, 0, 9], http).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.open_connections(), 12);
    let refused = connect_from([127, 0, 0, 9], http).await;
    assert!(
        closed_within(refused, Duration::from_secs(2))
            .await
            .is_some(),
        "over the total cap"
    );
    // Closing frees places.
    drop(from_two);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_served(connect_from([127, 0, 0, 2], http).await).await;
    drop(from_proxy);
}

/// Finding 14: the whole body is written before anything is read.
async fn post_whole_body_then_read(
    mut io: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    path: &str,
    body_len: usize,
) -> String {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {body_len}\r\nConnection: close\r\n\r\n"
    );
    io.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b'a'; 16 * 1024];
    let mut left = body_len;
    while left > 0 {
        let n = left.min(chunk.len());
        if let Err(e) = io.write_all(&chunk[..n]).await {
            // As Python `requests` does: the request failed.
            return format!("write failed after {} bytes: {e}", body_len - left);
        }
        left -= n;
        // Slow enough that the server answers while the body is still
        // coming, as over a real network.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let _ = io.flush().await;
    let mut answer = Vec::new();
    let _ = io.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn an_oversized_body_written_before_reading_still_gets_its_413() {
    let server = TestServer::start(CLIENT).await;
    for len in [20_000, 200_000, 1_000_000] {
        let tcp = TcpStream::connect(server.https).await.unwrap();
        let answer = post_whole_body_then_read(tls(&server, tcp).await, "/oauth2/token", len).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "tls {len}: {answer:?}");
        assert!(answer.contains("\"error\":\"invalid_request\""), "{answer}");

        let tcp = TcpStream::connect(server.http.unwrap()).await.unwrap();
        let answer = post_whole_body_then_read(tcp, "/oauth2/introspect", len).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "http {len}: {answer:?}");
    }
}

#[tokio::test]
async fn requests_in_flight_are_capped_with_a_503() {
    let setup = Setup::with_server("max_requests_in_flight = 2", CLIENT, "[]", Alg::ES256);
    let server = TestServer::start_setup(setup).await;
    let http = server.http.unwrap();
    // Two requests whose bodies never come hold both places.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(http).await.unwrap();
        s.write_all(
            b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n",
        )
        .await
        .unwrap();
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body, headers) = server
        .post(
            &reqwest::Client::new(),
            &server.http_url("/oauth2/introspect"),
            &[("token", "x")],
            &[],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("temporarily_unavailable"))
    );
    assert!(headers.contains_key("retry-after"));
    // Once they go, requests are served again.
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(introspect_status(&server).await, 401);
}
