//! Token revocation (RFC 7009) and its effect on introspection.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use certbound::keys::unix_now;
use certbound::token::AccessGrant;
use rcgen::DnType;
use serde_json::{Value, json};

use crate::common::{Identity, TestServer, access_header, forge};

const CLIENTS: &str = r#"
[[clients]]
client_id = "svc"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=svc"
scope = "read introspect"
[[clients]]
client_id = "other"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=other"
[[clients]]
client_id = "rs"
token_endpoint_auth_method = "client_secret_basic"
client_secret_sha256 = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
introspection = true
[[clients]]
client_id = "introspector"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=introspector"
scope = "introspect"
"#;

pub fn basic(id: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:secret")))
}

/// POSTs to /oauth2/revoke as `client_id` with certificate `id`.
async fn revoke(
    server: &TestServer,
    id: &Identity,
    client_id: &str,
    form: &[(&str, &str)],
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut form = form.to_vec();
    form.push(("client_id", client_id));
    server
        .post(
            &server.client(Some(id)),
            &server.https_url("/oauth2/revoke"),
            &form,
            &[],
        )
        .await
}

async fn introspect(server: &TestServer, token: &str) -> Value {
    let (status, body, _) = server
        .post(
            &server.client(None),
            &server.https_url("/oauth2/introspect"),
            &[("token", token)],
            &[("authorization", &basic("rs"))],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn svc(server: &TestServer) -> Identity {
    server.pki.client(&[(DnType::CommonName, "svc")], vec![])
}

#[tokio::test]
async fn revoked_token_is_inactive_and_revoking_again_is_fine() {
    let server = TestServer::start(CLIENTS).await;
    let id = svc(&server);
    let token = server.token(&id, "svc").await;
    let other_token = server.token(&id, "svc").await;
    assert_eq!(introspect(&server, &token).await["active"], true);

    let (status, body, headers) = revoke(&server, &id, "svc", &[("token", &token)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, Value::String(String::new()), "empty body");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(introspect(&server, &token).await, json!({"active": false}));
    // Only that token.
    assert_eq!(introspect(&server, &other_token).await["active"], true);

    // Idempotent, with or without a hint, whatever the hint says (§2.1).
    for hint in [
        None,
        Some("access_token"),
        Some("refresh_token"),
        Some("id_token"),
    ] {
        let mut form = vec![("token", token.as_str())];
        form.extend(hint.map(|h| ("token_type_hint", h)));
        let (status, body, _) = revoke(&server, &id, "svc", &form).await;
        assert_eq!(status, 200, "{hint:?}: {body}");
    }
    // An unsupported hint does not stop a revocation either.
    let (status, _, _) = revoke(
        &server,
        &id,
        "svc",
        &[("token", &other_token), ("token_type_hint", "banana")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(introspect(&server, &other_token).await["active"], false);

    // On disk, one line per revoked token, with the token's jti and exp.
    let claims = crate::common::jwt_part(&token, 1);
    let list = std::fs::read_to_string(server.dir.path().join("data/revocations.log")).unwrap();
    let expected = format!("jti {} {} ", claims["jti"].as_str().unwrap(), claims["exp"]);
    assert_eq!(list.matches(&expected).count(), 1, "{list}");
    assert_eq!(list.lines().filter(|l| l.starts_with("jti ")).count(), 2);
}

#[tokio::test]
async fn a_revoked_bearer_token_can_no_longer_introspect() {
    let server = TestServer::start(CLIENTS).await;
    let id = server
        .pki
        .client(&[(DnType::CommonName, "introspector")], vec![]);
    let bearer = server.token(&id, "introspector").await;
    let call = |bearer: String| {
        let server = &server;
        let id = &id;
        async move {
            let auth = format!("Bearer {bearer}");
            server
                .post(
                    &server.client(Some(id)),
                    &server.https_url("/oauth2/introspect"),
                    &[("token", "anything")],
                    &[("authorization", &auth)],
                )
                .await
                .0
        }
    };
    assert_eq!(call(bearer.clone()).await, 200);
    let (status, _, _) = revoke(&server, &id, "introspector", &[("token", &bearer)]).await;
    assert_eq!(status, 200);
    assert_eq!(call(bearer).await, 401);
}

#[tokio::test]
async fn another_clients_token_gets_200_and_stays_valid() {
    let server = TestServer::start(CLIENTS).await;
    let token = server.token(&svc(&server), "svc").await;
    let other = server.pki.client(&[(DnType::CommonName, "other")], vec![]);
    // Finding 13: the answer does not tell the caller the token is valid.
    let (status, body, _) = revoke(&server, &other, "other", &[("token", &token)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, serde_json::Value::String(String::new()));
    assert_eq!(introspect(&server, &token).await["active"], true);
    // A secret client: the same.
    let (status, _, _) = server
        .post(
            &server.client(None),
            &server.https_url("/oauth2/revoke"),
            &[("token", &token)],
            &[("authorization", &basic("rs"))],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(introspect(&server, &token).await["active"], true);
}

#[tokio::test]
async fn invalid_expired_and_unknown_tokens_get_an_empty_200() {
    let server = TestServer::start(CLIENTS).await;
    let id = svc(&server);
    let expired = server
        .settings()
        .tokens
        .mint(
            &server.settings().keys,
            AccessGrant {
                sub: "svc",
                client_id: "svc",
                scope: "",
                binding: None,
                username: None,
                fid: None,
                auth_time: None,
            },
            unix_now() - 7200,
        )
        .unwrap();
    let token = server.token(&id, "svc").await;
    let mut tampered = token.clone();
    tampered.push('A');
    let long = "a".repeat(3000);
    for bad in ["garbage", "a.b.c", &expired, &tampered, &long] {
        let (status, body, _) = revoke(&server, &id, "svc", &[("token", bad)]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, Value::String(String::new()));
    }
    assert_eq!(introspect(&server, &token).await["active"], true);
    let list = std::fs::read_to_string(server.dir.path().join("data/revocations.log")).unwrap();
    assert_eq!(list.lines().filter(|l| !l.starts_with('#')).count(), 0);
}

#[tokio::test]
async fn malformed_requests_get_oauth_errors() {
    let server = TestServer::start(CLIENTS).await;
    let id = svc(&server);
    let token = server.token(&id, "svc").await;
    let (status, body, _) = revoke(&server, &id, "svc", &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
    let (status, body, _) = revoke(&server, &id, "svc", &[("token", "")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
    let (status, body, _) =
        revoke(&server, &id, "svc", &[("token", &token), ("token", &token)]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
    // No client authentication: 401, and the token stays valid.
    let (status, body, headers) = server
        .post(
            &server.client(None),
            &server.https_url("/oauth2/revoke"),
            &[("token", &token), ("client_id", "svc")],
            &[],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    assert!(headers.contains_key("www-authenticate"));
    // Wrong secret.
    let wrong = format!("Basic {}", STANDARD.encode("rs:wrong"));
    let (status, _, _) = server
        .post(
            &server.client(None),
            &server.https_url("/oauth2/revoke"),
            &[("token", &token)],
            &[("authorization", &wrong)],
        )
        .await;
    assert_eq!(status, 401);
    // Not a form.
    let resp = server
        .client(Some(&id))
        .post(server.https_url("/oauth2/revoke"))
        .header("content-type", "application/json")
        .body(format!("{{\"token\":\"{token}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    assert_eq!(introspect(&server, &token).await["active"], true);
}

#[tokio::test]
async fn a_list_that_cannot_be_written_gives_503_and_the_token_stays_valid() {
    let server = TestServer::start(CLIENTS).await;
    let id = svc(&server);
    let token = server.token(&id, "svc").await;
    let list = server.dir.path().join("data/revocations.log");
    let aside = server.dir.path().join("data/aside");
    // The file is gone (as if removed by hand): the writer never recreates
    // it, so nothing is acknowledged that a restart would lose.
    std::fs::rename(&list, &aside).unwrap();
    let (status, body, headers) = revoke(&server, &id, "svc", &[("token", &token)]).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(introspect(&server, &token).await["active"], true);
    // Back in place: the same request now succeeds.
    std::fs::rename(&aside, &list).unwrap();
    let (status, _, _) = revoke(&server, &id, "svc", &[("token", &token)]).await;
    assert_eq!(status, 200);
    assert_eq!(introspect(&server, &token).await["active"], false);
    // The server kept serving throughout.
    assert_eq!(server.state.revocations.stats().failed, 1);
}

/// Findings 12 and 13: validly signed tokens that are wrong in other ways
/// are inactive everywhere, never a 500.
#[tokio::test]
async fn signed_tokens_with_bad_ids_audience_crit_or_iat_are_inactive() {
    let server = TestServer::start(CLIENTS).await;
    let id = svc(&server);
    let settings = server.settings();
    let keys = &settings.keys;
    let now = unix_now();
    let claims = json!({
        "iss": "https://certbound.test", "sub": "svc", "aud": "https://certbound.test",
        "client_id": "svc", "iat": now, "nbf": now, "exp": now + 600, "jti": "fine-id",
    });
    let header = access_header(keys);
    let good = forge(keys, &header, &claims);
    assert_eq!(introspect(&server, &good).await["active"], true);
    let with = |field: &str, value: Value| {
        let mut c = claims.clone();
        c[field] = value;
        forge(keys, &header, &c)
    };
    let mut crit = header.clone();
    crit["crit"] = json!(["b64"]);
    for (what, token) in [
        ("jti with a space", with("jti", "not a list id".into())),
        ("empty jti", with("jti", "".into())),
        ("long jti", with("jti", "j".repeat(500).into())),
        ("other audience", with("aud", "https://rs.example".into())),
        ("iat in an hour", with("iat", (now + 3600).into())),
        ("crit header", forge(keys, &crit, &claims)),
    ] {
        assert_eq!(introspect(&server, &token).await["active"], false, "{what}");
        let (status, body, _) = revoke(&server, &id, "svc", &[("token", &token)]).await;
        assert_eq!(status, 200, "{what}: {body}");
    }
}
