//! The hostile requests: malformed, oversized, duplicated, forged, and
//! the wrong method or type, for every endpoint.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use certbound::cert::header::encode;

use crate::common::{HEADER, Identity};

/// One raw request: method, path, headers, body.
pub struct Raw {
    pub method: &'static str,
    pub path: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

pub fn raw(method: &'static str, path: &str) -> Raw {
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
    pub fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        let mut value = value.into();
        for b in &mut value {
            if (*b < 0x20 && *b != b'\t') || *b == 0x7f {
                *b = b' ';
            }
        }
        self.headers.push((name.to_string(), value));
        self
    }

    pub fn form(self, body: impl Into<Vec<u8>>) -> Self {
        let mut r = self.header("content-type", "application/x-www-form-urlencoded");
        r.body = body.into();
        r
    }

    pub fn bytes(&self) -> Vec<u8> {
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

/// The hostile requests: at least 300.
pub fn requests(svc: &Identity, good_token: &str, forged: &[String]) -> Vec<Raw> {
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
