//! The failed-login throttle across replicas: its counters live in the
//! shared Redis, so guesses spread over replicas are limited as on one
//! node; Redis down refuses sign-in (503) rather than counting nothing.

use crate::browser::*;
use crate::common::redis::Replicas;

/// A failed sign-in at replica `i`: the answer's status.
async fn fail_at(r: &Replicas, i: usize, password: &str) -> u16 {
    let mut browser = Browser::new(&r.replicas[i]);
    let page = browser.authorize(&params(&[])).await;
    assert_eq!(page.status, 200, "{}", page.body);
    browser
        .login(&page, "alice@example.com", password)
        .await
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_at_any_replica_count_toward_one_limit() {
    // The address limit holds for the whole window, so the 429s below do
    // not depend on how fast this machine is (the per-user delay starts
    // at one second: its shared count is checked in Redis instead).
    let mut r = Replicas::start(&config(
        "max_failures_per_user = 100\nmax_failures_per_address = 3",
    ))
    .await;
    for i in [0, 0, 1] {
        assert_eq!(
            fail_at(&r, i, "wrong").await,
            200,
            "a failure is a new form"
        );
    }
    let failures = |kind: &str| -> i64 {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{{certbound}}:login:v2:{kind}:*"))
            .query(&mut r.redis.connection().unwrap())
            .unwrap();
        assert_eq!(keys.len(), 1, "{kind}: {keys:?}");
        redis::cmd("HGET")
            .arg(&keys[0])
            .arg("f")
            .query(&mut r.redis.connection().unwrap())
            .unwrap()
    };
    assert_eq!(
        failures("pair"),
        3,
        "one count for the user, from two replicas"
    );
    assert_eq!(failures("address"), 3);
    // Replica 2 has seen none of them, and still waits.
    assert_eq!(fail_at(&r, 2, "wrong").await, 429);
    assert_eq!(
        fail_at(&r, 1, PASSWORD).await,
        429,
        "even the right password waits"
    );
    // Counters expire in Redis with their window.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("{certbound}:login:*")
        .query(&mut r.redis.connection().unwrap())
        .unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    for key in &keys {
        let ttl: i64 = redis::cmd("TTL")
            .arg(key)
            .query(&mut r.redis.connection().unwrap())
            .unwrap();
        assert!((1..=300).contains(&ttl), "{key}: {ttl}");
    }
    r.redis.stop();
    assert_eq!(fail_at(&r, 0, PASSWORD).await, 503);
}
