//! Failed-login throttling and the password-hashing pool under attack:
//! parallel guesses are counted before hashing, a victim is not locked out
//! from another address, and memory stays bounded under a burst.

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

/// Submits the login form of `page` from `browser` (with these cookies),
/// in a task of its own.
fn login_task(
    mut browser: Browser,
    page: &Page,
    cookies: &std::collections::HashMap<String, String>,
    username: String,
    password: String,
) -> tokio::task::JoinHandle<Page> {
    let (request, csrf) = (page.hidden("request"), page.hidden("csrf"));
    browser.cookies = cookies.clone();
    tokio::spawn(async move {
        browser
            .post(&[
                ("step", "login"),
                ("request", &request),
                ("csrf", &csrf),
                ("username", &username),
                ("password", &password),
            ])
            .await
    })
}

#[tokio::test]
async fn parallel_guesses_are_counted_before_hashing() {
    let server = TestServer::start(&config("")).await;
    let attacker = "192.0.2.66";
    let (browser, page) = login_page(&server, attacker).await;
    let cookies = browser.cookies.clone();
    let guesses: Vec<_> = (0..30)
        .map(|i| {
            let b = Browser::via_proxy(&server, attacker);
            login_task(b, &page, &cookies, "bob".into(), format!("guess {i}"))
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
    // X-Forwarded-For is the proxy's word only on the listener facing it:
    // over HTTPS it is ignored, so naming the stopped address there does
    // not stop this client (nor would it let it pose as another).
    let mut direct = Browser::forwarded(&server, "192.0.2.9");
    let page = direct.authorize(&params(&[])).await;
    let ok = direct.login(&page, "alice@example.com", PASSWORD).await;
    assert!(ok.body.contains("approve-once"), "{}", ok.body);
    // Only the entry the proxy added counts, not an earlier one the client
    // wrote; a last entry that is not an address falls back to the peer.
    let (mut spoof, page) = login_page(&server, "192.0.2.9, 192.0.2.11").await;
    let ok = spoof.login(&page, "alice@example.com", PASSWORD).await;
    assert!(ok.body.contains("approve-once"), "{}", ok.body);
    let (mut junk, page) = login_page(&server, "192.0.2.9, unknown").await;
    let ok = junk.login(&page, "alice@example.com", PASSWORD).await;
    assert!(ok.body.contains("approve-once"), "{}", ok.body);
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
    // Over HTTPS, as the child server has no plain listener: believe
    // X-Forwarded-For there too.
    let setup = Setup::new(
        &format!(
            "header_on_https = true\n{}",
            config("max_failures_per_address = 100000\nhash_workers = 2\nhash_queue = 16")
        ),
        "[\"127.0.0.1/32\"]",
        Alg::ES256,
    );
    let server = ChildServer::spawn(&setup).unwrap();
    let mut browser = Browser::new(&server);
    let page = browser.authorize(&params(&[])).await;
    let cookies = browser.cookies.clone();
    let api = server;
    let (mut checked, mut busy) = (0, 0);
    for wave in 0..3 {
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                // Each from its own address, so only the pool limits them.
                let b = Browser::forwarded(&api, &format!("203.0.113.{i}"));
                login_task(
                    b,
                    &page,
                    &cookies,
                    format!("user-{wave}-{i}"),
                    "wrong".into(),
                )
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
