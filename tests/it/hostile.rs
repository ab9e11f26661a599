//! Hostile input over both listeners, sent by a client that writes each
//! whole request before it reads anything: every request gets an HTTP
//! answer, none is a 5xx, every 4xx is RFC 6749 §5.2 JSON (the browser
//! endpoint answers with HTML pages), no framework text leaks, and the
//! server still serves afterwards.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use certbound::cert::header::encode;
use certbound::keys::Alg;
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::common::{HEADER, Identity, Setup, TestServer, access_header, forge};

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

/// One raw request: method, path, headers, body.
struct Raw {
    method: &'static str,
    path: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

fn raw(method: &'static str, path: &str) -> Raw {
    Raw {
        method,
        path: path.to_string(),
        headers: Vec::new(),
        body: Vec::new(),
    }
}

impl Raw {
    /// A header; control characters become spaces (this test is about
    /// hostile content in well-framed HTTP; broken framing is tested in
    /// [`broken_framing_gets_a_400_or_a_close_and_the_server_keeps_serving`]).
    fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        let mut value = value.into();
        for b in &mut value {
            if (*b < 0x20 && *b != b'\t') || *b == 0x7f {
                *b = b' ';
            }
        }
        self.headers.push((name.to_string(), value));
        self
    }

    fn form(self, body: impl Into<Vec<u8>>) -> Self {
        let mut r = self.header("content-type", "application/x-www-form-urlencoded");
        r.body = body.into();
        r
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "{} {} HTTP/1.1\r\nhost: certbound.test\r\n",
            self.method, self.path
        )
        .into_bytes();
        let declares_length = self.headers.iter().any(|(k, _)| {
            k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding")
        });
        for (k, v) in &self.headers {
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
        if !declares_length {
            out.extend_from_slice(format!("content-length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"connection: close\r\n\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

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

/// The hostile requests: at least 300.
fn requests(svc: &Identity, good_token: &str, forged: &[String]) -> Vec<Raw> {
    let mut r = Vec::new();
    let pem = encode::pem(&svc.cert_der);
    let cert_values: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"-----BEGIN CERTIFICATE-----".to_vec(),
        pem.as_bytes()[..pem.len() / 2].to_vec(),
        encode::url_encoded_pem(&svc.cert_der).as_bytes()[..100].to_vec(),
        format!(
            "-----BEGIN CERTIFICATE-----{}-----END CERTIFICATE-----",
            "A".repeat(40_000)
        )
        .into_bytes(),
        vec![b'x'; 70_000],
        format!(":{}:", "A".repeat(30_000)).into_bytes(),
        ":!!!!:".into(),
        "Cert=\"".into(),
        format!("By=spiffe://x;{}", "Cert=\"abc\";".repeat(2000)).into_bytes(),
        "%2D%2D%2D%2D%2DBEGIN%20CERTIFICATE%2D%2D%2D%2D%2D%ZZ".into(),
        b"\xff\xfe\x80 not ascii".to_vec(),
        STANDARD.encode(vec![0u8; 5000]).into_bytes(),
        encode::base64_der(&svc.cert_der).as_bytes()[..50].to_vec(),
        pem.replace('\n', "\t").into_bytes(),
        format!("{pem}{pem}").into_bytes(),
    ];
    for path in ["/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"] {
        for v in &cert_values {
            r.push(raw("POST", path).header(HEADER, v.clone()).form(format!(
                "grant_type=client_credentials&client_id=svc&token={good_token}"
            )));
        }
        // The header sent twice.
        r.push(
            raw("POST", path)
                .header(HEADER, pem.replace('\n', " "))
                .header(HEADER, pem.replace('\n', " "))
                .form("grant_type=client_credentials&client_id=svc&token=x"),
        );
    }
    // Forms: huge, repeated, malformed, wrong types.
    let forms: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"grant_type=client_credentials&grant_type=client_credentials".to_vec(),
        b"grant_type=client_credentials&client_id=svc&client_id=svc".to_vec(),
        format!("grant_type={}", "a".repeat(4000)).into_bytes(),
        format!(
            "grant_type=client_credentials&client_id=svc&scope={}",
            "s ".repeat(1500)
        )
        .into_bytes(),
        format!(
            "grant_type=client_credentials&client_id=svc&scope={}",
            "read%20".repeat(500)
        )
        .into_bytes(),
        "a=1&".repeat(900).into_bytes(),
        b"=&=&=&&&&==".to_vec(),
        b"%zz=%zz".to_vec(),
        b"grant_type=%ff%fe".to_vec(),
        b"grant_type=client_credentials%00&client_id=svc%00".to_vec(),
        b"grant_type=authorization_code&client_id=svc&code=".to_vec(),
        b"grant_type=authorization_code&client_id=svc&code=AAAA&code_verifier=x".to_vec(),
        format!(
            "grant_type=authorization_code&client_id=svc&code={}",
            "A".repeat(3500)
        )
        .into_bytes(),
        b"grant_type=refresh_token&client_id=svc&refresh_token=a.b.c".to_vec(),
        b"grant_type=password&username=admin&password=admin".to_vec(),
        b"grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=x".to_vec(),
        b"token=".to_vec(),
        b"token&token_type_hint".to_vec(),
        b"client_id=svc".to_vec(),
        b"\x00\x01\x02\x03\xff".to_vec(),
        b"{\"grant_type\":\"client_credentials\"}".to_vec(),
        vec![b'&'; 4000],
        vec![b'%'; 4000],
        "client_secret=x&client_id=rs&grant_type=client_credentials".into(),
    ];
    for path in ["/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"] {
        for f in &forms {
            r.push(raw("POST", path).form(f.clone()));
        }
    }
    // Bodies with other content types, or none, or more than allowed.
    for (ct, body) in [
        ("application/json", b"{\"token\":\"x\"}".to_vec()),
        (
            "multipart/form-data; boundary=x",
            b"--x\r\n\r\nx\r\n--x--".to_vec(),
        ),
        ("text/plain", b"grant_type=client_credentials".to_vec()),
        (
            "application/x-www-form-urlencoded; charset=utf-16",
            b"\xff\xfeg\x00".to_vec(),
        ),
        ("", b"grant_type=client_credentials".to_vec()),
        ("application/x-www-form-urlencoded", vec![b'a'; 20_000]),
        ("application/x-www-form-urlencoded", vec![b'a'; 200_000]),
    ] {
        for path in [
            "/oauth2/token",
            "/oauth2/introspect",
            "/oauth2/revoke",
            "/oauth2/authorize",
        ] {
            let mut req = raw("POST", path);
            if !ct.is_empty() {
                req = req.header("content-type", ct);
            }
            req.body = body.clone();
            r.push(req);
        }
    }
    // Declared lengths that lie, and broken chunking.
    r.push(
        raw("POST", "/oauth2/token")
            .header("content-length", "99999999")
            .header("content-type", "application/x-www-form-urlencoded"),
    );
    let mut chunked = raw("POST", "/oauth2/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("transfer-encoding", "chunked");
    chunked.body = b"5\r\ngrant\r\nzz\r\nbroken\r\n0\r\n\r\n".to_vec();
    r.push(chunked);
    let mut big_chunks = raw("POST", "/oauth2/introspect")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("transfer-encoding", "chunked");
    big_chunks.body = format!("{:x}\r\n{}\r\n0\r\n\r\n", 30_000, "t".repeat(30_000)).into_bytes();
    r.push(big_chunks);
    // Hostile tokens at introspection, revocation, userinfo.
    let mut tokens: Vec<String> = vec![
        String::new(),
        "a".repeat(9000),
        ".".repeat(1000),
        "a.b".into(),
        "a.b.c.d.e".into(),
        format!(
            "{}.e30.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"at+jwt"}"#)
        ),
        format!(
            "{}.e30.sig",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","kid":"x","typ":"at+jwt"}"#)
        ),
        format!("{}.e30.sig", URL_SAFE_NO_PAD.encode("[".repeat(400))),
        format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256"}"#),
            URL_SAFE_NO_PAD.encode("{".repeat(2000))
        ),
        "eyJ\u{0}.\u{0}.\u{0}".into(),
        "%00%01".into(),
        format!("{good_token}x"),
        good_token.replacen('.', "..", 1),
    ];
    tokens.extend(forged.iter().cloned());
    for t in &tokens {
        let enc = form_urlencoded::byte_serialize(t.as_bytes()).collect::<String>();
        r.push(
            raw("POST", "/oauth2/introspect")
                .header(
                    "authorization",
                    format!("Basic {}", STANDARD.encode("rs:secret")),
                )
                .form(format!("token={enc}")),
        );
        r.push(
            raw("POST", "/oauth2/revoke")
                .header(HEADER, pem.replace('\n', " "))
                .form(format!("client_id=svc&token={enc}")),
        );
        r.push(raw("GET", "/oauth2/userinfo").header("authorization", format!("Bearer {t}")));
        r.push(
            raw("POST", "/oauth2/introspect")
                .header("authorization", format!("Bearer {t}"))
                .form("token=x"),
        );
        r.push(
            raw("POST", "/oauth2/token")
                .form(format!(
                    "grant_type=refresh_token&client_id=svc&refresh_token={enc}"
                ))
                .header(HEADER, pem.replace('\n', " ")),
        );
    }
    // Authorization headers.
    for auth in [
        "Basic".to_string(),
        "Basic ".into(),
        "Basic ====".into(),
        format!("Basic {}", STANDARD.encode("nocolon")),
        format!("Basic {}", STANDARD.encode(":")),
        format!("Basic {}", STANDARD.encode(":secret")),
        format!("Basic {}", STANDARD.encode(b"\xff\xfe:\xff")),
        format!(
            "Basic {}",
            STANDARD.encode(format!("rs:{}", "s".repeat(20_000)))
        ),
        format!("Basic {}", STANDARD.encode("rs:%zz%")),
        format!("Basic {}", STANDARD.encode("rs:a&b=c")),
        "Bearer".into(),
        "Bearer    ".into(),
        "Bearer a b c".into(),
        "Negotiate YIIB".into(),
        "Digest username=x".into(),
        "basic\tcnM6c2VjcmV0".into(),
        "\u{7f}".into(),
    ] {
        for path in [
            "/oauth2/token",
            "/oauth2/introspect",
            "/oauth2/revoke",
            "/oauth2/userinfo",
        ] {
            r.push(
                raw("POST", path)
                    .header("authorization", auth.clone())
                    .form("grant_type=client_credentials&token=x"),
            );
        }
    }
    r.push(
        raw("POST", "/oauth2/introspect")
            .header(
                "authorization",
                format!("Basic {}", STANDARD.encode("rs:secret")),
            )
            .header(
                "authorization",
                format!("Basic {}", STANDARD.encode("rs:secret")),
            )
            .form("token=x"),
    );
    // Paths and methods.
    for path in [
        "/",
        "/oauth2",
        "/oauth2/",
        "/oauth2/token/",
        "/oauth2/TOKEN",
        "//oauth2/token",
        "/oauth2/../oauth2/token",
        "/oauth2/%2e%2e/token",
        "/t/example.com/oauth2/token",
        "/t/../../etc/passwd",
        "/t/%00/oauth2/introspect",
        "/t/carbon.super/oauth2/introspect",
        "/oauth2/token?grant_type=client_credentials",
        "/oauth2/jwks/../../secret",
        "/.well-known/",
        "/.well-known/openid-configuration/extra",
        "/docs/../../keys/sealing.key",
        "/keys/sealing.key",
        "/openapi.json/x",
        "/oauth2/introspect%00",
    ] {
        r.push(raw("GET", path));
        r.push(raw("POST", path).form("token=x"));
    }
    r.push(raw("GET", &format!("/{}", "a".repeat(8000))));
    for method in ["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"] {
        for path in ["/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"] {
            r.push(raw(method, path));
        }
    }
    for method in ["PUT", "DELETE", "POST"] {
        r.push(raw(method, "/oauth2/jwks").form("x=1"));
    }
    // The browser endpoint: hostile queries (answered with HTML pages).
    for query in [
        "",
        "client_id=web&client_id=web",
        &format!("client_id={}", "w".repeat(6000)),
        "client_id=%ff",
        "response_type=code&client_id=svc&redirect_uri=javascript:alert(1)",
        "%zz=%zz",
        &format!(
            "response_type=code&client_id=web&scope={}",
            "a%20".repeat(3000)
        ),
    ] {
        r.push(raw("GET", &format!("/oauth2/authorize?{query}")));
    }
    // Huge and many headers.
    r.push(
        raw("POST", "/oauth2/token")
            .header("x-filler", vec![b'f'; 100_000])
            .form("grant_type=client_credentials"),
    );
    let mut many = raw("POST", "/oauth2/introspect");
    for i in 0..90 {
        many = many.header(&format!("x-h{i}"), "v");
    }
    r.push(many.form("token=x"));
    r.push(raw("GET", "/oauth2/jwks").header("cookie", "a=".repeat(5000)));
    r
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
