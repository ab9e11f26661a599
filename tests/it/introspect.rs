//! Stateless introspection (RFC 7662).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use certbound::keys::{Alg, KeySet, unix_now};
use certbound::token::{AccessGrant, TokenService};
use rcgen::DnType;
use serde_json::{Value, json};

use crate::common::{Identity, TestServer};

const CLIENTS: &str = r#"
[[clients]]
client_id = "svc"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=svc"
scope = "read write introspect"
[[clients]]
client_id = "rs"
token_endpoint_auth_method = "client_secret_basic"
client_secret_sha256 = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
introspection = true
[[clients]]
client_id = "rs-mtls"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=rs-mtls"
introspection = true
[[clients]]
client_id = "nosy"
token_endpoint_auth_method = "client_secret_basic"
client_secret_sha256 = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
"#;

fn basic(id: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:secret")))
}

async fn introspect(
    server: &TestServer,
    id: Option<&Identity>,
    form: &[(&str, &str)],
    auth: Option<&str>,
) -> (u16, Value) {
    let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
    let (status, body, resp_headers) = server
        .post(
            &server.client(id),
            &server.https_url("/oauth2/introspect"),
            form,
            &headers,
        )
        .await;
    if status == 401 {
        assert!(resp_headers.contains_key("www-authenticate"));
    }
    (status, body)
}

#[tokio::test]
async fn active_token_with_basic_and_mtls_callers() {
    let server = TestServer::start(CLIENTS).await;
    let id = server.pki.client(&[(DnType::CommonName, "svc")], vec![]);
    let token = server.token(&id, "svc").await;
    let (status, body) = introspect(
        &server,
        None,
        &[("token", &token), ("token_type_hint", "access_token")],
        Some(&basic("rs")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["active"], true);
    assert_eq!(body["client_id"], "svc");
    assert_eq!(body["sub"], "svc");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "read write introspect");
    assert_eq!(body["iss"], "https://certbound.test");
    assert_eq!(body["aud"], "https://certbound.test");
    assert_eq!(body["cnf"], json!({"x5t#S256": id.thumbprint()}));
    for claim in ["exp", "iat", "nbf", "jti"] {
        assert!(
            body[claim].is_number() || body[claim].is_string(),
            "{claim}"
        );
    }

    let rs = server
        .pki
        .client(&[(DnType::CommonName, "rs-mtls")], vec![]);
    let (status, body) = introspect(
        &server,
        Some(&rs),
        &[("token", &token), ("client_id", "rs-mtls")],
        None,
    )
    .await;
    assert_eq!(
        (status, body["active"].clone()),
        (200, json!(true)),
        "{body}"
    );
}

#[tokio::test]
async fn bearer_caller_needs_the_scope_and_its_certificate() {
    let server = TestServer::start(
        &(CLIENTS.to_string()
            + r#"
[[clients]]
client_id = "weak"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=weak"
scope = "read"
"#),
    )
    .await;
    let id = server.pki.client(&[(DnType::CommonName, "svc")], vec![]);
    let caller_token = server.token(&id, "svc").await;
    let subject = server.token(&id, "svc").await;
    let bearer = format!("Bearer {caller_token}");
    let (status, body) =
        introspect(&server, Some(&id), &[("token", &subject)], Some(&bearer)).await;
    assert_eq!(
        (status, body["active"].clone()),
        (200, json!(true)),
        "{body}"
    );
    // A certificate-bound caller token without its certificate (RFC 8705
    // §3), or with another: RFC 6750 errors that say which.
    let (status, body) = introspect(&server, None, &[("token", &subject)], Some(&bearer)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token"))
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("present that certificate"),
        "{body}"
    );
    let other = server.pki.client(&[(DnType::CommonName, "weak")], vec![]);
    let (_, body) = introspect(&server, Some(&other), &[("token", &subject)], Some(&bearer)).await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("another client certificate"),
        "{body}"
    );
    // Without the introspection scope: 403 naming the scope.
    let weak_id = server.pki.client(&[(DnType::CommonName, "weak")], vec![]);
    let weak = format!("Bearer {}", server.token(&weak_id, "weak").await);
    let (status, body) =
        introspect(&server, Some(&weak_id), &[("token", &subject)], Some(&weak)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("insufficient_scope"))
    );
    // A garbage bearer.
    let (status, body) =
        introspect(&server, None, &[("token", &subject)], Some("Bearer nope")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token"))
    );
}

#[tokio::test]
async fn caller_errors() {
    let server = TestServer::start(CLIENTS).await;
    let id = server.pki.client(&[(DnType::CommonName, "svc")], vec![]);
    let token = server.token(&id, "svc").await;
    // Unauthenticated.
    let (status, body) = introspect(&server, None, &[("token", &token)], None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    // Wrong secret, and a client not allowed to introspect.
    let wrong = format!("Basic {}", STANDARD.encode("rs:nope"));
    assert_eq!(
        introspect(&server, None, &[("token", &token)], Some(&wrong))
            .await
            .0,
        401
    );
    assert_eq!(
        introspect(&server, None, &[("token", &token)], Some(&basic("nosy")))
            .await
            .0,
        401
    );
    // The token's own client, by mTLS, without introspection permission.
    assert_eq!(
        introspect(
            &server,
            Some(&id),
            &[("token", &token), ("client_id", "svc")],
            None
        )
        .await
        .0,
        401
    );
    // Missing and empty token.
    for form in [&[][..], &[("token", "")][..]] {
        let (status, body) = introspect(&server, None, form, Some(&basic("rs"))).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{form:?}"
        );
    }
}

#[tokio::test]
async fn every_invalid_token_is_exactly_inactive() {
    let server = TestServer::start(CLIENTS).await;
    let id = server.pki.client(&[(DnType::CommonName, "svc")], vec![]);
    let token = server.token(&id, "svc").await;
    let settings = server.settings();
    let state = &*settings;
    let grant = AccessGrant {
        sub: "svc",
        client_id: "svc",
        scope: "read",
        binding: None,
        username: None,
        fid: None,
        auth_time: None,
    };
    let now = unix_now();
    let expired = state.tokens.mint(&state.keys, grant, now - 7200).unwrap();
    let future = state.tokens.mint(&state.keys, grant, now + 600).unwrap();
    let foreign = TokenService {
        issuer: "https://evil.example".into(),
        ..state.tokens.clone()
    }
    .mint(&state.keys, grant, now)
    .unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    certbound::keys::generate_key(other_dir.path(), Alg::ES256, 1).unwrap();
    let other_keys = KeySet::load(other_dir.path(), None).unwrap();
    let unknown_kid = state.tokens.mint(&other_keys, grant, now).unwrap();

    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["scope"] = "admin".into();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    let mut header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    header["alg"] = "none".into();
    let alg_none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        parts[1]
    );
    header["alg"] = "HS256".into();
    let hs256 = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        parts[1],
        parts[2]
    );

    for (case, bad) in [
        ("garbage", "not-a-token".to_string()),
        ("expired", expired),
        ("not yet valid", future),
        ("foreign issuer", foreign),
        ("unknown kid", unknown_kid),
        ("tampered", tampered),
        ("alg none", alg_none),
        ("alg HS256", hs256),
        ("long", "a".repeat(3000)),
    ] {
        let (status, body) =
            introspect(&server, None, &[("token", &bad)], Some(&basic("rs"))).await;
        assert_eq!((status, body), (200, json!({"active": false})), "{case}");
    }
}

/// Introspects `token` as `rs`, asking for the JWT answer (RFC 9701).
async fn jwt_introspect(server: &TestServer, token: &str) -> reqwest::Response {
    server
        .client(None)
        .post(server.https_url("/oauth2/introspect"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", basic("rs"))
        .header("accept", "application/token-introspection+jwt")
        .body(format!("token={token}"))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn wso2_fields_and_the_rfc9701_jwt_answer() {
    let server = TestServer::start(&format!(
        "{CLIENTS}\n[introspection]\nwso2_cnf_alias = true\n"
    ))
    .await;
    let id = server.pki.client(&[(DnType::CommonName, "svc")], vec![]);
    let token = server.token(&id, "svc").await;
    let (status, json_answer) =
        introspect(&server, None, &[("token", &token)], Some(&basic("rs"))).await;
    assert_eq!(status, 200, "{json_answer}");
    assert_eq!(json_answer["aut"], "APPLICATION");
    assert_eq!(
        json_answer["cnf"],
        json!({"x5t#S256": id.thumbprint(), "x5t#SHA256": id.thumbprint()}),
        "the WSO2 alias beside the RFC 8705 member"
    );

    let resp = jwt_introspect(&server, &token).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/token-introspection+jwt"
    );
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let jwt = resp.text().await.unwrap();
    assert_eq!(
        crate::common::jwt_part(&jwt, 0)["typ"],
        "token-introspection+jwt"
    );
    let claims = crate::common::verify_unexpiring_with_jwks(&server, &jwt, "rs").await;
    assert_eq!(
        claims["token_introspection"], json_answer,
        "the same object as the JSON answer"
    );
    assert!(claims["iat"].is_number());

    // Inactive tokens are signed too, and discovery names the algorithms.
    let resp = jwt_introspect(&server, "garbage").await;
    let claims =
        crate::common::verify_unexpiring_with_jwks(&server, &resp.text().await.unwrap(), "rs")
            .await;
    assert_eq!(claims["token_introspection"], json!({"active": false}));
    let meta = server
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(
        meta["introspection_signing_alg_values_supported"],
        json!(["ES256"])
    );
}
