//! Users as introspection callers (WSO2): HTTP Basic `username:password`
//! of a user with an introspection permission; throttled like the login
//! form; verified credentials remembered, never across a password change.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::DnType;
use serde_json::Value;

use crate::common::TestServer;

fn config(alice_hash: &str, bob_hash: &str) -> String {
    format!(
        r#"
[[clients]]
client_id = "svc"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=svc"
scope = "read"
[[clients]]
client_id = "urn:rs"
token_endpoint_auth_method = "client_secret_basic"
client_secret_sha256 = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
introspection = true
[[users]]
username = "alice"
password_hash = "{alice_hash}"
permissions = ["introspect"]
[[users]]
username = "bob"
password_hash = "{bob_hash}"
[[users]]
username = "svc"
password_hash = "{bob_hash}"
permissions = ["introspect"]
[login]
max_failures_per_address = 4
"#
    )
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

async fn call(
    server: &TestServer,
    token: &str,
    auth: &str,
    accept: Option<&str>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut req = server
        .client(None)
        .post(server.https_url("/oauth2/introspect"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", auth)
        .body(format!("token={token}"));
    if let Some(accept) = accept {
        req = req.header("accept", accept);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        headers,
    )
}

#[tokio::test]
async fn a_user_with_the_permission_introspects_and_others_do_not() {
    let hash = |pw: &str| certbound::users::hash_password(pw).unwrap();
    let server = TestServer::start(&config(&hash("alice-pw"), &hash("bob-pw"))).await;
    let svc = server.pki.client(&[(DnType::CommonName, "svc")], vec![]);
    let token = server.token(&svc, "svc").await;

    for _ in 0..2 {
        let (status, body, _) = call(&server, &token, &basic("alice", "alice-pw"), None).await;
        assert_eq!(
            (status, &body["active"]),
            (200, &Value::Bool(true)),
            "{body}"
        );
    }
    // A JWT answer is signed for a client: a user caller cannot have one.
    let jwt = Some("application/token-introspection+jwt");
    let (status, body, _) = call(&server, &token, &basic("alice", "alice-pw"), jwt).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (406, Some("invalid_request")),
        "{body}"
    );
    // ... unless JSON will do as well.
    let both = Some("application/token-introspection+jwt, application/json;q=0.5");
    let (status, body, _) = call(&server, &token, &basic("alice", "alice-pw"), both).await;
    assert_eq!(
        (status, &body["active"]),
        (200, &Value::Bool(true)),
        "{body}"
    );
    // No permission (with the right password), unknown user, wrong
    // password: the same answer, each a counted failure.
    let mut descriptions = Vec::new();
    for auth in [
        basic("bob", "bob-pw"),
        basic("nobody", "x"),
        basic("alice", "wrong"),
    ] {
        let (status, body, headers) = call(&server, &token, &auth, None).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{body}"
        );
        assert!(headers.contains_key("www-authenticate"));
        descriptions.push(body["error_description"].clone());
    }
    assert!(
        descriptions.windows(2).all(|w| w[0] == w[1]),
        "{descriptions:?}"
    );
    // A name that is a client's id is the client, whatever user shares it.
    let (status, body, _) = call(&server, &token, &basic("svc", "bob-pw"), None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
    // So is a client id sent form-encoded, as RFC 6749 §2.3.1 has it.
    let (status, body, _) = call(&server, &token, &basic("urn%3Ars", "secret"), None).await;
    assert_eq!(
        (status, &body["active"]),
        (200, &Value::Bool(true)),
        "{body}"
    );
    // Throttled like the login form: the fourth failure from this address
    // ends its attempts for the window.
    let (status, _, _) = call(&server, &token, &basic("alice", "wrong"), None).await;
    assert_eq!(status, 401, "the fourth failure is still checked");
    let (status, body, headers) = call(&server, &token, &basic("alice", "wrong"), None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("invalid_client")),
        "{body}"
    );
    assert!(
        headers["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    // Remembered credentials still work while throttled (they were
    // verified before).
    let (status, _, _) = call(&server, &token, &basic("alice", "alice-pw"), None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn parallel_calls_of_one_resource_server_make_one_check() {
    let hash = |pw: &str| certbound::users::hash_password(pw).unwrap();
    // A password with characters RFC 6749 form-decoding would change.
    let password = "p+ss%20w:rd";
    let server = TestServer::start(&config(&hash(password), &hash("bob-pw"))).await;
    let svc = server.pki.client(&[(DnType::CommonName, "svc")], vec![]);
    let token = server.token(&svc, "svc").await;
    let auth = basic("alice", password);
    let calls: Vec<_> = (0..8).map(|_| call(&server, &token, &auth, None)).collect();
    for (status, body, _) in futures_util::future::join_all(calls).await {
        assert_eq!(
            (status, &body["active"]),
            (200, &Value::Bool(true)),
            "{body}"
        );
    }
}

#[tokio::test]
async fn a_changed_password_is_never_taken_from_the_cache() {
    let hash = |pw: &str| certbound::users::hash_password(pw).unwrap();
    let server = TestServer::start(&config(&hash("old-pw"), &hash("bob-pw"))).await;
    let svc = server.pki.client(&[(DnType::CommonName, "svc")], vec![]);
    let token = server.token(&svc, "svc").await;
    let (status, _, _) = call(&server, &token, &basic("alice", "old-pw"), None).await;
    assert_eq!(status, 200, "verified and remembered");

    let path = server.dir.path().join("certbound.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let old = text
        .lines()
        .find(|l| l.starts_with("password_hash"))
        .unwrap()
        .to_string();
    std::fs::write(
        &path,
        text.replacen(&old, &format!("password_hash = \"{}\"", hash("new-pw")), 1),
    )
    .unwrap();
    server.state.reload().unwrap();
    let (status, body, _) = call(&server, &token, &basic("alice", "old-pw"), None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
    let (status, _, _) = call(&server, &token, &basic("alice", "new-pw"), None).await;
    assert_eq!(status, 200);
}
