//! Hostile input over both listeners, sent by a client that writes each
//! whole request before it reads anything: every request gets an HTTP
//! answer, none is a 5xx, every 4xx is RFC 6749 §5.2 JSON (the browser
//! endpoint answers with HTML pages), no framework text leaks, and the
//! server still serves afterwards.

use std::sync::Arc;

use certbound::cert::header::encode;
use certbound::keys::Alg;
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::common::{HEADER, Setup, TestServer, access_header, forge};

mod cases;

use cases::requests;

const CLIENTS: &str = r#"
[[clients]]
client_id = "svc"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=svc"
scope = "read introspect"
introspection = true

[[clients]]
client_id = "rs"
token_endpoint_auth_method = "client_secret_basic"
client_secret_sha256 = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
introspection = true
"#;

/// Writes the whole request, then reads the whole answer.
async fn exchange(
    mut io: impl AsyncRead + AsyncWrite + Unpin,
    request: &[u8],
) -> Result<Vec<u8>, String> {
    io.write_all(request)
        .await
        .map_err(|e| format!("write: {e}"))?;
    io.flush().await.map_err(|e| format!("flush: {e}"))?;
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        io.read_to_end(&mut answer),
    )
    .await
    .map_err(|_| "no answer within 10 s".to_string())?
    .map_err(|e| format!("read: {e} after {} bytes", answer.len()))?;
    Ok(answer)
}

struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

fn parse_answer(bytes: &[u8]) -> Option<Answer> {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    Some(Answer {
        status,
        content_type,
        body: body.to_string(),
    })
}

fn check(what: &str, answer: &Answer) {
    assert!(
        answer.status < 500,
        "{what}: {} {}",
        answer.status,
        answer.body
    );
    for leak in [
        "occurred while parsing",
        "Expected input type",
        "poem",
        "hyper",
        "panicked",
        "stack backtrace",
        "sealing.key",
    ] {
        assert!(
            !answer.body.contains(leak),
            "{what}: leaks {leak:?}: {}",
            answer.body
        );
    }
    if answer.status >= 400 {
        if what.contains("/oauth2/authorize") && answer.content_type.starts_with("text/html") {
            return;
        }
        assert!(
            answer.content_type.starts_with("application/json"),
            "{what}: {} with {:?}: {}",
            answer.status,
            answer.content_type,
            answer.body
        );
        let body: Value = serde_json::from_str(&answer.body)
            .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", answer.body));
        assert!(
            body["error"].is_string() && body["error_description"].is_string(),
            "{what}: {body}"
        );
    }
}

#[tokio::test]
async fn hostile_requests_over_both_listeners_get_oauth_answers() {
    let setup = Setup::with_server(
        "body_read_timeout = 1",
        CLIENTS,
        "[\"127.0.0.1/32\"]",
        Alg::ES256,
    );
    let server = Arc::new(TestServer::start_setup(setup).await);
    let svc = server
        .pki
        .client(&[(rcgen::DnType::CommonName, "svc")], vec![]);
    let good_token = server.token(&svc, "svc").await;
    let settings = server.settings();
    let keys = &settings.keys;
    let now = certbound::keys::unix_now();
    let base = json!({"iss": "https://certbound.test", "sub": "svc", "aud": "https://certbound.test",
        "client_id": "svc", "iat": now, "nbf": now, "exp": now + 600, "jti": "j", "scope": "introspect"});
    let mut forged = Vec::new();
    for (k, v) in [
        ("jti", json!("a b")),
        ("exp", json!(-1)),
        ("exp", json!(1e300)),
        ("aud", json!({"x": 1})),
        ("scope", json!(["introspect"])),
        ("cnf", json!("x")),
        ("iat", json!(u64::MAX)),
        ("client_id", json!(null)),
    ] {
        let mut c = base.clone();
        c[k] = v;
        forged.push(forge(keys, &access_header(keys), &c));
    }
    let mut crit = access_header(keys);
    crit["crit"] = json!(["exp"]);
    forged.push(forge(keys, &crit, &base));
    let requests = requests(&svc, &good_token, &forged);
    assert!(requests.len() >= 300, "{} requests", requests.len());
    let tls = Arc::new(server.tls_config(None));
    let tls_with_cert = Arc::new(server.tls_config(Some(&svc)));
    let mut total = 0;
    for (i, req) in requests.iter().enumerate() {
        let bytes = req.bytes();
        let what = format!(
            "#{i} {} {}",
            req.method,
            &req.path[..req.path.len().min(60)]
        );
        // Plain HTTP (the proxy listener), and HTTPS with and without a
        // client certificate.
        let plain = exchange(
            TcpStream::connect(server.http.unwrap()).await.unwrap(),
            &bytes,
        )
        .await;
        let config = if i % 2 == 0 {
            tls.clone()
        } else {
            tls_with_cert.clone()
        };
        let tcp = TcpStream::connect(server.https).await.unwrap();
        let stream = TlsConnector::from(config)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let secure = exchange(stream, &bytes).await;
        for (listener, result) in [("http", plain), ("https", secure)] {
            let bytes = result.unwrap_or_else(|e| panic!("{what} over {listener}: {e}"));
            let answer = parse_answer(&bytes).unwrap_or_else(|| {
                panic!(
                    "{what} over {listener}: no HTTP answer: {:?}",
                    String::from_utf8_lossy(&bytes)
                )
            });
            check(&format!("{what} over {listener}"), &answer);
            total += 1;
        }
    }
    assert!(total >= 600);
    // Still serving, both ways.
    server.token(&svc, "svc").await;
    let (status, body, _) = server
        .post(
            &reqwest::Client::new(),
            &server.http_url("/oauth2/token"),
            &[("grant_type", "client_credentials"), ("client_id", "svc")],
            &[(HEADER, &encode::url_encoded_pem(&svc.cert_der))],
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// Bytes that are not HTTP at all: the HTTP layer answers 400 or closes,
/// and the server keeps serving.
#[tokio::test]
async fn broken_framing_gets_a_400_or_a_close_and_the_server_keeps_serving() {
    let server = TestServer::start(CLIENTS).await;
    for garbage in [
        b"\x16\x03\x01\x00\xff garbage".to_vec(),
        b"GET / HTTP/1.1\r\nbad header line\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nx: a\x00b\r\n\r\n".to_vec(),
        b"POST /oauth2/token HTTP/1.1\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nabcdef"
            .to_vec(),
        b"GET / HTTP/9.9\r\n\r\n".to_vec(),
        vec![b'G'; 200_000],
        // Past the HTTP layer's own limits (100 header fields, 128 KiB).
        format!("GET / HTTP/1.1\r\n{}\r\n", "x: y\r\n".repeat(500)).into_bytes(),
        format!("GET / HTTP/1.1\r\nx: {}\r\n\r\n", "y".repeat(200_000)).into_bytes(),
        b"\r\n\r\n\r\n".to_vec(),
    ] {
        let tcp = TcpStream::connect(server.http.unwrap()).await.unwrap();
        if let Ok(answer) = exchange(tcp, &garbage).await
            && let Some(a) = parse_answer(&answer)
        {
            assert!((400..500).contains(&a.status), "{}", a.status);
        }
    }
    let svc = server
        .pki
        .client(&[(rcgen::DnType::CommonName, "svc")], vec![]);
    server.token(&svc, "svc").await;
}
