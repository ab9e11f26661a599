//! Keys fetched over a real loopback socket from a JWKS server this test
//! runs (and counts, and can take down): single flight, the cooldown and
//! negative cache against made-up `kid`s, `max-age`, the last good set
//! kept, and a cold start failing closed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use certbound_verify::access::{Expect, Failure};
use certbound_verify::binding::Unbound;
use certbound_verify::jws::JwsError;
use certbound_verify::remote::{KeysError, KeysOptions, RemoteKeys};
use certbound_verify::verifier::{Keys, Verifier};

mod common;
use common::{ISSUER, key, token};

/// The JWKS server: what it publishes, whether it is up, how often asked.
#[derive(Default)]
struct Published {
    keys: Mutex<Vec<serde_json::Value>>,
    cache_control: Mutex<String>,
    down: AtomicBool,
    requests: AtomicU64,
    delay_ms: AtomicU64,
}

async fn serve(published: Arc<Published>) -> String {
    let state = published.clone();
    let app = Router::new().route(
        "/jwks",
        get(move || {
            let state = state.clone();
            async move {
                state.requests.fetch_add(1, Ordering::SeqCst);
                let delay = state.delay_ms.load(Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(delay)).await;
                if state.down.load(Ordering::SeqCst) {
                    return StatusCode::SERVICE_UNAVAILABLE.into_response();
                }
                let body = serde_json::json!({"keys": *state.keys.lock().unwrap()}).to_string();
                let cache = state.cache_control.lock().unwrap().clone();
                ([("cache-control", cache)], body).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/jwks")
}

const COOLDOWN_MS: u128 = 800;

fn options() -> KeysOptions {
    KeysOptions {
        cooldown: Duration::from_millis(COOLDOWN_MS as u64),
        retry: Duration::from_millis(200),
        max_age_bounds: (Duration::from_millis(500), Duration::from_secs(3600)),
        forget_unknown: Duration::from_secs(3600),
        ..KeysOptions::default()
    }
}

fn verifier(url: &str, options: KeysOptions) -> (Arc<Verifier>, RemoteKeys) {
    let remote = RemoteKeys::from_jwks_uri(url, reqwest::Client::new(), options);
    let mut expect = Expect::new(ISSUER, "api");
    expect.unbound = Unbound::Accepted;
    (
        Arc::new(Verifier::new(Keys::Remote(remote.clone()), expect)),
        remote,
    )
}

async fn check(v: &Verifier, token: &str) -> Result<(), Failure> {
    v.verify::<certbound_verify::access::Extra>(token, None)
        .await
        .map(|_| ())
}

#[tokio::test]
async fn one_fetch_however_many_wait_and_made_up_kids_cost_one_per_cooldown() {
    let published = Arc::new(Published::default());
    let k1 = key("k1");
    published.keys.lock().unwrap().push(k1.jwk.clone());
    *published.cache_control.lock().unwrap() = "max-age=3600".into();
    published.delay_ms.store(200, Ordering::SeqCst);
    let url = serve(published.clone()).await;
    let (v, remote) = verifier(&url, options());

    // 50 requests at a cold start: one fetch.
    let good = token(&k1, "k1");
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (v, t) = (v.clone(), good.clone());
            tokio::spawn(async move { check(&v, &t).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(published.requests.load(Ordering::SeqCst), 1);
    published.delay_ms.store(0, Ordering::SeqCst);

    // 500 made-up kids, concurrently: one fetch per cooldown begun.
    let tokens: Vec<String> = (0..500)
        .map(|i| token(&k1, &format!("random-{i}")))
        .collect();
    let started = std::time::Instant::now();
    let tasks: Vec<_> = tokens
        .into_iter()
        .map(|t| {
            let v = v.clone();
            tokio::spawn(async move { check(&v, &t).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), Err(Failure::Jws(JwsError::UnknownKey)));
    }
    let cooldowns = 1 + (started.elapsed().as_millis() / COOLDOWN_MS) as u64;
    let flood = published.requests.load(Ordering::SeqCst) - 1;
    assert!(
        flood >= 1 && flood <= cooldowns,
        "{flood} fetches in {cooldowns} cooldowns"
    );

    // A kid a fetch did not find is not looked for again, even after the
    // cooldown.
    tokio::time::sleep(Duration::from_millis(COOLDOWN_MS as u64 + 200)).await;
    let before = published.requests.load(Ordering::SeqCst);
    let ghost = token(&k1, "ghost");
    assert!(check(&v, &ghost).await.is_err());
    assert_eq!(published.requests.load(Ordering::SeqCst), before + 1);
    tokio::time::sleep(Duration::from_millis(COOLDOWN_MS as u64 + 200)).await;
    assert!(check(&v, &ghost).await.is_err());
    assert_eq!(published.requests.load(Ordering::SeqCst), before + 1);

    // A rotation: the new kid is fetched once, and its tokens pass.
    let k2 = key("k2");
    published.keys.lock().unwrap().push(k2.jwk.clone());
    check(&v, &token(&k2, "k2")).await.unwrap();
    assert_eq!(published.requests.load(Ordering::SeqCst), before + 2);
    assert_eq!(remote.fetches(), before + 2);
    check(&v, &good).await.unwrap();
}

#[tokio::test]
async fn max_age_refreshes_in_the_background_and_a_failure_keeps_the_last_good_set() {
    let published = Arc::new(Published::default());
    let k1 = key("k1");
    published.keys.lock().unwrap().push(k1.jwk.clone());
    *published.cache_control.lock().unwrap() = "public, max-age=1".into();
    let url = serve(published.clone()).await;
    let (v, remote) = verifier(&url, options());
    remote.ready().await.unwrap();

    // Refreshed at 3/4 of max-age (1 s), with no request asking.
    let k2 = key("k2");
    published.keys.lock().unwrap().push(k2.jwk.clone());
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(published.requests.load(Ordering::SeqCst) >= 2);
    let before = published.requests.load(Ordering::SeqCst);
    check(&v, &token(&k2, "k2")).await.unwrap();
    assert_eq!(
        published.requests.load(Ordering::SeqCst),
        before,
        "already known"
    );

    // Down: the kept keys still verify; an unknown kid is a 503, saying so.
    published.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    check(&v, &token(&k1, "k1")).await.unwrap();
    match check(&v, &token(&k1, "k3")).await {
        Err(f @ Failure::Keys(KeysError::Stale { .. })) => {
            assert!(f.is_unavailable());
            assert!(
                f.to_string().contains("still using the keys fetched"),
                "{f}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Back up: refreshed again.
    published.down.store(false, Ordering::SeqCst);
    let k3 = key("k3");
    published.keys.lock().unwrap().push(k3.jwk.clone());
    tokio::time::sleep(Duration::from_millis(900)).await;
    check(&v, &token(&k3, "k3")).await.unwrap();
}

#[tokio::test]
async fn a_cold_start_with_the_jwks_down_fails_closed_then_recovers() {
    let published = Arc::new(Published::default());
    let k1 = key("k1");
    published.keys.lock().unwrap().push(k1.jwk.clone());
    published.down.store(true, Ordering::SeqCst);
    let url = serve(published.clone()).await;
    let (v, remote) = verifier(&url, options());
    let good = token(&k1, "k1");
    match check(&v, &good).await {
        Err(Failure::Keys(e @ KeysError::Unavailable { .. })) => {
            let text = e.to_string();
            assert!(text.contains(&url) && text.contains("503"), "{text}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        remote.ready().await,
        Err(KeysError::Unavailable { .. })
    ));
    // Many requests while down do not hammer it: the backoff holds.
    let before = published.requests.load(Ordering::SeqCst);
    for _ in 0..100 {
        assert!(check(&v, &good).await.unwrap_err().is_unavailable());
    }
    assert!(published.requests.load(Ordering::SeqCst) <= before + 1);
    published.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(900)).await;
    check(&v, &good).await.unwrap();
}

#[tokio::test]
async fn a_jwks_that_is_not_one_is_a_failure_not_an_empty_set() {
    let published = Arc::new(Published::default());
    published
        .keys
        .lock()
        .unwrap()
        .push(serde_json::json!({"kty": "oct", "kid": "s", "k": "c2VjcmV0"}));
    let url = serve(published.clone()).await;
    let (_, remote) = verifier(&url, options());
    let err = remote.ready().await.unwrap_err().to_string();
    assert!(err.contains("no usable signing key"), "{err}");
}

#[tokio::test]
async fn redirects_keep_to_safe_urls_and_a_307_to_another_origin_is_refused() {
    let published = Arc::new(Published::default());
    let k1 = key("k1");
    published.keys.lock().unwrap().push(k1.jwk.clone());
    let target = serve(published.clone()).await;
    let moved = target.clone();
    let app = Router::new()
        .route(
            "/found",
            get(move || {
                let to = moved.clone();
                async move { (StatusCode::FOUND, [("location", to)]) }
            }),
        )
        .route(
            "/temporary",
            get({
                let to = target.clone();
                move || {
                    let to = to.clone();
                    async move { (StatusCode::TEMPORARY_REDIRECT, [("location", to)]) }
                }
            }),
        )
        .route(
            "/elsewhere",
            get(|| async { (StatusCode::FOUND, [("location", "http://as.example/jwks")]) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = certbound_verify::client::build(&Default::default()).unwrap();
    let ready = |path: &str| {
        let remote =
            RemoteKeys::from_jwks_uri(format!("http://{addr}{path}"), client.clone(), options());
        async move { remote.ready().await.map(|_| ()).map_err(|e| e.to_string()) }
    };
    // A 302 to another (loopback) origin is followed: a GET has no body.
    ready("/found").await.unwrap();
    // A 307 to another origin would resend a POST's body: refused.
    let err = ready("/temporary").await.unwrap_err();
    assert!(err.contains("307/308"), "{err}");
    // Plain http to a host that is not loopback: refused, redirected or not.
    let err = ready("/elsewhere").await.unwrap_err();
    assert!(err.contains("only https"), "{err}");
    let direct = RemoteKeys::from_jwks_uri("http://as.example/jwks", client.clone(), options());
    let err = direct.ready().await.unwrap_err().to_string();
    assert!(err.contains("only https"), "{err}");
}
