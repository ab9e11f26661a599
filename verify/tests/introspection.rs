//! Introspection mode over a real loopback socket, against an
//! introspection endpoint this test runs (and counts, and can break):
//! single flight, the cache lifetime, revocation, the caller's Basic
//! credentials, failing closed, and never asking about a token that failed
//! offline.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use certbound_verify::access::{Expect, Extra, Failure};
use certbound_verify::binding::Unbound;
use certbound_verify::introspection::{CallerAuth, Introspection};
use certbound_verify::jwks::Jwks;
use certbound_verify::verifier::{Keys, Verifier};

mod common;
use common::{ISSUER, key, token};

#[derive(Default)]
struct Endpoint {
    requests: AtomicU64,
    inactive: AtomicBool,
    broken: AtomicBool,
    delay_ms: AtomicU64,
    authorization: Mutex<String>,
    body: Mutex<String>,
}

async fn serve(state: Arc<Endpoint>) -> String {
    let app = Router::new().route(
        "/introspect",
        post(move |headers: HeaderMap, body: String| {
            let state = state.clone();
            async move {
                state.requests.fetch_add(1, Ordering::SeqCst);
                *state.authorization.lock().unwrap() = headers
                    .get("authorization")
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default();
                *state.body.lock().unwrap() = body;
                let delay = state.delay_ms.load(Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(delay)).await;
                if state.broken.load(Ordering::SeqCst) {
                    return (StatusCode::INTERNAL_SERVER_ERROR, "oops").into_response();
                }
                let active = !state.inactive.load(Ordering::SeqCst);
                (
                    [("content-type", "application/json")],
                    serde_json::json!({"active": active}).to_string(),
                )
                    .into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/introspect")
}

#[tokio::test]
async fn one_request_per_token_cached_briefly_and_failing_closed() {
    let endpoint = Arc::new(Endpoint::default());
    let url = serve(endpoint.clone()).await;
    let k1 = key("k1");
    let jwks = serde_json::json!({"keys": [k1.jwk]}).to_string();
    let keys = Keys::Static(Arc::new(Jwks::from_json(jwks.as_bytes(), &[]).unwrap()));
    let introspection = Introspection::new(
        url,
        reqwest::Client::new(),
        CallerAuth::Basic {
            id: "rs one".into(),
            secret: "p:w%".into(),
        },
    )
    .cache(Duration::from_millis(400), 100);
    let mut expect = Expect::new(ISSUER, "api");
    expect.unbound = Unbound::Accepted;
    let verifier = Arc::new(Verifier::new(keys, expect.clone()).with_introspection(introspection));
    let check = |t: String| {
        let v = verifier.clone();
        async move { v.verify::<Extra>(&t, None).await.map(|_| ()) }
    };

    // 20 concurrent checks of one token: one request.
    let t = token(&k1, "k1");
    endpoint.delay_ms.store(200, Ordering::SeqCst);
    let all: Vec<_> = (0..20).map(|_| tokio::spawn(check(t.clone()))).collect();
    for c in all {
        c.await.unwrap().unwrap();
    }
    assert_eq!(endpoint.requests.load(Ordering::SeqCst), 1);
    endpoint.delay_ms.store(0, Ordering::SeqCst);
    // The caller's credentials, form-encoded into Basic (RFC 6749 §2.3.1),
    // and the form.
    let basic = endpoint.authorization.lock().unwrap().clone();
    assert_eq!(
        basic,
        format!(
            "Basic {}",
            base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                "rs%20one:p%3Aw%25"
            )
        )
    );
    let body = endpoint.body.lock().unwrap().clone();
    assert!(
        body.starts_with("token=") && body.ends_with("&token_type_hint=access_token"),
        "{body}"
    );

    // Cached within its lifetime; revoked is refused once it has passed.
    endpoint.inactive.store(true, Ordering::SeqCst);
    check(t.clone()).await.unwrap();
    assert_eq!(endpoint.requests.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(check(t.clone()).await, Err(Failure::Revoked));
    assert_eq!(endpoint.requests.load(Ordering::SeqCst), 2);

    // Broken, or down: unavailable (503), never accepted.
    endpoint.broken.store(true, Ordering::SeqCst);
    let failure = check(token(&k1, "k1")).await.unwrap_err();
    assert!(failure.is_unavailable(), "{failure}");
    assert!(failure.to_string().contains("500"), "{failure}");
    let down = Verifier::new(
        Keys::Static(Arc::new(Jwks::from_json(jwks.as_bytes(), &[]).unwrap())),
        expect,
    )
    .with_introspection(Introspection::new(
        "http://127.0.0.1:9/introspect",
        reqwest::Client::new(),
        CallerAuth::Mtls {
            client_id: "rs".into(),
        },
    ));
    let failure = down
        .verify::<Extra>(&token(&k1, "k1"), None)
        .await
        .unwrap_err();
    assert!(failure.is_unavailable(), "{failure}");

    // A token that fails offline is never sent.
    let before = endpoint.requests.load(Ordering::SeqCst);
    let other = key("k1");
    assert!(check(token(&other, "k1")).await.is_err());
    assert_eq!(endpoint.requests.load(Ordering::SeqCst), before);
}
