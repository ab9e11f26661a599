//! Failed-login throttling and the password-hashing pool under attack:
//! parallel guesses are counted before hashing, a victim is not locked out
//! from another address, and memory stays bounded under a burst.

use std::sync::Arc;

use certbound::keys::Alg;

use crate::browser::{Browser, PASSWORD, Page, config, params};
use crate::common::{ChildServer, Setup, TestServer};

const INVALID: &str = "Invalid username or password.";

/// A login page fetched through the proxy from `address`.
async fn login_page(server: &TestServer, address: &str) -> (Browser, Page) {
    let mut browser = Browser::via_proxy(server, address);
    let page = browser.authorize(&params(&[])).await;
    assert_eq!(page.status, 200, "{}", page.body);
    (browser, page)
}

#[tokio::test]
async fn parallel_guesses_are_counted_before_hashing() {
    let server = Arc::new(TestServer::start(&config("")).await);
    let attacker = "192.0.2.66";
    let (browser, page) = login_page(&server, attacker).await;
    let (request, csrf) = (page.hidden("request"), page.hidden("csrf"));
    let cookies = browser.cookies.clone();
    let guesses: Vec<_> = (0..30)
        .map(|i| {
            let (server, request, csrf, cookies) = (
                server.clone(),
                request.clone(),
                csrf.clone(),
                cookies.clone(),
            );
            tokio::spawn(async move {
                let mut b = Browser::via_proxy(&server, attacker);
                b.cookies = cookies;
                b.post(&[
                    ("step", "login"),
                    ("request", &request),
                    ("csrf", &csrf),
                    ("username", "bob"),
                    ("password", &format!("guess {i}")),
                ])
                .await
            })
        })
        .collect();
    let (mut checked, mut throttled) = (0, 0);
    for g in guesses {
        let page = g.await.unwrap();
        match page.status {
            200 => {
                assert!(page.body.contains(INVALID));
                checked += 1;
            }
            429 => {
                assert!(page.headers.contains_key("retry-after"));
                throttled += 1;
            }
            other => panic!("{other}: {}", page.body),
        }
    }
    // max_failures_per_user is 5: no more than 5 of the 30 were hashed.
    assert!(checked <= 5, "{checked} guesses were checked");
    assert_eq!(checked + throttled, 30);

    // The attacker's failures do not lock bob out from his own address.
    let (mut bob, page) = login_page(&server, "198.51.100.7").await;
    let ok = bob.login(&page, "bob", PASSWORD).await;
    assert_eq!(ok.status, 200);
    assert!(ok.body.contains("approve-once"), "{}", ok.body);
    // From the attacker's address each further guess waits longer.
    let (mut again, page) = login_page(&server, attacker).await;
    let mut statuses = Vec::new();
    for _ in 0..(5 - checked + 2) {
        statuses.push(again.login(&page, "bob", "another guess").await.status);
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
}

#[tokio::test]
async fn an_address_that_fails_for_many_users_is_stopped() {
    let server = TestServer::start(&config("max_failures_per_address = 4")).await;
    let (mut b, page) = login_page(&server, "192.0.2.9").await;
    for user in ["u1", "u2", "u3", "u4"] {
        assert_eq!(b.login(&page, user, "x").await.status, 200);
    }
    let stopped = b.login(&page, "alice@example.com", PASSWORD).await;
    assert_eq!(stopped.status, 429);
    // Others behind the same proxy are not affected.
    let (mut other, page) = login_page(&server, "192.0.2.10").await;
    let ok = other.login(&page, "alice@example.com", PASSWORD).await;
    assert!(ok.body.contains("approve-once"));
}

fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb / 1024.0
}

/// The bound the README states: idle RSS plus one 19 MiB argon2 buffer per
/// hashing worker (2 here), plus connection buffers.
const RSS_BOUND_MB: f64 = 90.0;

#[tokio::test]
async fn memory_stays_bounded_under_a_burst_of_failed_logins() {
    let setup = Setup::new(
        &config("max_failures_per_address = 100000\nhash_workers = 2\nhash_queue = 16"),
        "[\"127.0.0.1/32\"]",
        Alg::ES256,
    );
    let server = ChildServer::spawn(&setup).unwrap();
    let mut browser = Browser::new(&server);
    let page = browser.authorize(&params(&[])).await;
    let (request, csrf) = (page.hidden("request"), page.hidden("csrf"));
    let cookies = browser.cookies.clone();
    let api = Arc::new(server);
    let (mut checked, mut busy) = (0, 0);
    for wave in 0..3 {
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let (api, request, csrf, cookies) =
                    (api.clone(), request.clone(), csrf.clone(), cookies.clone());
                tokio::spawn(async move {
                    // Each from its own address, so only the pool limits them.
                    let mut b = Browser::forwarded(&api, &format!("203.0.113.{i}"));
                    b.cookies = cookies;
                    b.post(&[
                        ("step", "login"),
                        ("request", &request),
                        ("csrf", &csrf),
                        ("username", &format!("user-{wave}-{i}")),
                        ("password", "wrong"),
                    ])
                    .await
                })
            })
            .collect();
        for t in tasks {
            let page = t.await.unwrap();
            match page.status {
                200 => {
                    assert!(page.body.contains(INVALID));
                    checked += 1;
                }
                // The queue is full: refused with Retry-After, not queued.
                503 => {
                    assert!(page.headers.contains_key("retry-after"));
                    busy += 1;
                }
                other => panic!("{other}: {}", page.body),
            }
        }
    }
    assert!(checked >= 20, "{checked} checked, {busy} busy");
    let peak = peak_rss_mb(api.pid());
    eprintln!("peak RSS {peak:.1} MB after {checked} failed logins ({busy} refused as busy)");
    assert!(
        peak < RSS_BOUND_MB,
        "peak RSS {peak:.1} MB after {checked} failed logins"
    );
}
