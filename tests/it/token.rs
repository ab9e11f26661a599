//! The token endpoint: every client authentication method, every refusal.

use rcgen::{DnType, SanType};
use sha2::Digest;

use crate::common::{Pki, TestServer, jwt_part, self_signed, verify_with_jwks};

const DN_CLIENT: &str = r#"
[[clients]]
client_id = "dn"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=orders-service,O=Example Corp,C=SE"
scope = "read write"
"#;

fn dn_identity(pki: &Pki) -> crate::common::Identity {
    pki.client(
        &[
            (DnType::CountryName, "SE"),
            (DnType::OrganizationName, "Example Corp"),
            (DnType::CommonName, "orders-service"),
        ],
        vec![],
    )
}

#[tokio::test]
async fn tls_client_auth_issues_a_bound_rfc9068_token_verifiable_with_the_jwks() {
    let server = TestServer::start(DN_CLIENT).await;
    let id = dn_identity(&server.pki);
    let (status, body, headers) = server
        .post(
            &server.client(Some(&id)),
            &server.https_url("/oauth2/token"),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "dn"),
                ("scope", "read"),
            ],
            &[],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["pragma"], "no-cache");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "read");
    let token = body["access_token"].as_str().unwrap();

    let header = jwt_part(token, 0);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");

    // Verify with the published JWKS only, as a resource server would.
    let claims = verify_with_jwks(&server, token, "https://certbound.test").await;
    // cnf = base64url(SHA-256(DER)), computed here independently.
    assert_eq!(claims["cnf"]["x5t#S256"], id.thumbprint());
    let independent = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        sha2::Sha256::digest(&id.cert_der),
    );
    assert_eq!(claims["cnf"]["x5t#S256"], independent);
    for claim in [
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "nbf",
        "jti",
        "client_id",
        "scope",
    ] {
        assert!(claims.get(claim).is_some(), "missing {claim}");
    }
    assert_eq!(claims["sub"], "dn");
    assert_eq!(claims["client_id"], "dn");
}

#[tokio::test]
async fn subject_dn_is_compared_per_rfc4514() {
    let server = TestServer::start(
        r#"
[[clients]]
client_id = "spaced"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "c = se ;  o=EXAMPLE   corp,cn=Orders-Service"
"#,
    )
    .await;
    let id = dn_identity(&server.pki);
    server.token(&id, "spaced").await;
}

#[tokio::test]
async fn san_subjects_match_and_mismatch() {
    let server = TestServer::start(
        r#"
[[clients]]
client_id = "dns"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_san_dns = "orders.example.com"
[[clients]]
client_id = "uri"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_san_uri = "spiffe://example.com/orders"
[[clients]]
client_id = "ip"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_san_ip = "10.1.2.3"
[[clients]]
client_id = "email"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_san_email = "orders@Example.com"
"#,
    )
    .await;
    let id = server.pki.client(
        &[(DnType::CommonName, "x")],
        vec![
            SanType::DnsName("ORDERS.example.com".try_into().unwrap()),
            SanType::URI("spiffe://example.com/orders".try_into().unwrap()),
            SanType::IpAddress("10.1.2.3".parse().unwrap()),
            SanType::Rfc822Name("orders@example.com".try_into().unwrap()),
        ],
    );
    for client_id in ["dns", "uri", "ip", "email"] {
        server.token(&id, client_id).await;
    }
    let other = server.pki.client(
        &[(DnType::CommonName, "x")],
        vec![
            SanType::DnsName("billing.example.com".try_into().unwrap()),
            SanType::URI("spiffe://example.com/billing".try_into().unwrap()),
            SanType::IpAddress("10.1.2.4".parse().unwrap()),
            SanType::Rfc822Name("billing@example.com".try_into().unwrap()),
        ],
    );
    for client_id in ["dns", "uri", "ip", "email"] {
        assert_invalid_client(&server, Some(&other), client_id).await;
    }
}

#[tokio::test]
async fn self_signed_pinned_by_file_inline_and_jwks() {
    let by_file = self_signed("pinned-file");
    let inline = self_signed("pinned-inline");
    let in_jwks = self_signed("pinned-jwks");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pinned.crt");
    std::fs::write(&file, &by_file.cert_pem).unwrap();
    let x5c = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        &in_jwks.cert_der,
    );
    let server = TestServer::start(&format!(
        r#"
[[clients]]
client_id = "self"
token_endpoint_auth_method = "self_signed_tls_client_auth"
certificates = ["{}", """{}"""]
jwks = {{ keys = [{{ kty = "EC", x5c = ["{x5c}"] }}] }}
"#,
        file.display(),
        inline.cert_pem
    ))
    .await;
    for id in [&by_file, &inline, &in_jwks] {
        let token = server.token(id, "self").await;
        assert_eq!(jwt_part(&token, 1)["cnf"]["x5t#S256"], id.thumbprint());
    }
    assert_invalid_client(&server, Some(&self_signed("pinned-file")), "self").await;
}

#[tokio::test]
async fn wrong_certificates_are_invalid_client() {
    let server = TestServer::start(DN_CLIENT).await;
    // Untrusted chain: same subject, another CA.
    let rogue = dn_identity(&Pki::new("rogue CA"));
    assert_invalid_client(&server, Some(&rogue), "dn").await;
    // Wrong DN from the right CA.
    let wrong = server
        .pki
        .client(&[(DnType::CommonName, "orders-service")], vec![]);
    assert_invalid_client(&server, Some(&wrong), "dn").await;
    // Self-signed with the right DN.
    assert_invalid_client(&server, Some(&self_signed("orders-service")), "dn").await;
    // No certificate at all.
    assert_invalid_client(&server, None, "dn").await;
    // Unknown client with a good certificate.
    assert_invalid_client(&server, Some(&dn_identity(&server.pki)), "nobody").await;
}

async fn assert_invalid_client(
    server: &TestServer,
    id: Option<&crate::common::Identity>,
    client_id: &str,
) {
    let (status, body, headers) = server
        .post(
            &server.client(id),
            &server.https_url("/oauth2/token"),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
            ],
            &[],
        )
        .await;
    assert_eq!(status, 401, "{client_id}: {body}");
    assert_eq!(body["error"], "invalid_client");
    assert!(headers.contains_key("www-authenticate"));
}

const SECRET_CLIENTS: &str = r#"
[[clients]]
client_id = "basic"
token_endpoint_auth_method = "client_secret_basic"
client_secret_sha256 = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
scope = "read"
[[clients]]
client_id = "post"
token_endpoint_auth_method = "client_secret_post"
client_secret_sha256 = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
grant_types = ["authorization_code"]
redirect_uris = ["https://app.example/cb"]
"#;

#[tokio::test]
async fn secret_methods_and_grant_errors() {
    // sha256("secret") = 2bb80d53...
    let server = TestServer::start(SECRET_CLIENTS).await;
    let client = server.client(None);
    let url = server.https_url("/oauth2/token");
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "basic:secret")
    );
    let (status, body, _) = server
        .post(
            &client,
            &url,
            &[("grant_type", "client_credentials")],
            &[("authorization", &basic)],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let claims = jwt_part(body["access_token"].as_str().unwrap(), 1);
    assert!(
        claims.get("cnf").is_none(),
        "secret clients get unbound tokens"
    );

    type Pairs<'a> = &'a [(&'a str, &'a str)];
    let cases: &[(Pairs, Pairs, u16, &str)] = &[
        (
            &[("grant_type", "password")],
            &[("authorization", &basic)],
            400,
            "unsupported_grant_type",
        ),
        (
            &[("grant_type", "client_credentials"), ("scope", "write")],
            &[("authorization", &basic)],
            400,
            "invalid_scope",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "post"),
                ("client_secret", "secret"),
            ],
            &[],
            400,
            "unauthorized_client",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "post"),
                ("client_secret", "wrong"),
            ],
            &[],
            401,
            "invalid_client",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("grant_type", "client_credentials"),
            ],
            &[("authorization", &basic)],
            400,
            "invalid_request",
        ),
        (
            &[("client_id", "basic")],
            &[("authorization", &basic)],
            400,
            "invalid_request",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_secret", "secret"),
            ],
            &[("authorization", &basic)],
            400,
            "invalid_request",
        ),
        (
            &[("grant_type", "client_credentials")],
            &[("authorization", "Basic !!!")],
            401,
            "invalid_client",
        ),
        (
            &[("grant_type", "client_credentials")],
            &[],
            401,
            "invalid_client",
        ),
    ];
    for (form, headers, status, error) in cases {
        let (got, body, _) = server.post(&client, &url, form, headers).await;
        assert_eq!(
            (got, body["error"].as_str().unwrap_or_default()),
            (*status, *error),
            "{form:?}: {body}"
        );
    }
}

#[tokio::test]
async fn hostile_bodies_get_oauth_errors_and_the_server_keeps_serving() {
    let server = TestServer::start(SECRET_CLIENTS).await;
    let client = server.client(None);
    let url = server.https_url("/oauth2/token");
    let send = |content_type: &'static str, body: Vec<u8>| {
        client
            .post(&url)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let resp = send("application/json", b"{}".to_vec()).await.unwrap();
    assert_eq!(resp.status(), 415);
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_request"
    );
    let resp = send("application/x-www-form-urlencoded", vec![b'a'; 5000])
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_request"
    );
    // A chunked body over the limit (no Content-Length).
    let chunks =
        futures_util::stream::iter((0..10).map(|_| Ok::<_, std::io::Error>(vec![b'a'; 1000])));
    let resp = client
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    for body in [
        b"%%%%".to_vec(),
        b"grant_type=%FF%FE".to_vec(),
        vec![0xff, 0xfe, 0x00, b'='],
        b"=&=&&&==".to_vec(),
        b"grant_type=client_credentials&client_id=\x00".to_vec(),
    ] {
        let resp = send("application/x-www-form-urlencoded", body.clone())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        assert!(matches!(status, 400 | 401), "{body:?} -> {status}");
        assert!(resp.json::<serde_json::Value>().await.unwrap()["error"].is_string());
    }
    // Still serving.
    let (status, _, _) = server
        .post(
            &client,
            &url,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "post"),
                ("client_secret", "secret"),
            ],
            &[],
        )
        .await;
    assert_eq!(status, 400);
}
