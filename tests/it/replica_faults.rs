//! Replicas when Redis fails: stopped, killed mid-burst, partitioned; and a
//! replica killed and restarted. Writes fail closed at once, reads once the
//! replica's view is older than `max_staleness` (1 s here); nothing
//! acknowledged is lost, and everything recovers without a restart.

use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::browser::*;
use crate::common::redis::{PausableProxy, Replicas, revocations_cli};
use crate::common::{Api, Identity, jwt_part};
use crate::replicas::{active, codes, until_inactive};

/// A client_credentials client beside the browser flow's.
fn config_with_svc() -> String {
    config("")
        + r#"
[[clients]]
client_id = "svc"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=svc"
grant_types = ["client_credentials"]
scope = "read"
"#
}

async fn post(
    api: &Api,
    id: &Identity,
    path: &str,
    form: &[(&str, &str)],
) -> (u16, serde_json::Value, reqwest::header::HeaderMap) {
    api.post(&api.client(Some(id)), &api.https_url(path), form, &[])
        .await
}

async fn revoke(api: &Api, svc: &Identity, token: &str) -> u16 {
    post(
        api,
        svc,
        "/oauth2/revoke",
        &[("client_id", "svc"), ("token", token)],
    )
    .await
    .0
}

/// Introspection's status and error code at `api`.
async fn introspection(api: &Api, r: &Replicas, token: &str) -> (u16, serde_json::Value) {
    let rs = identity(&r.setup.pki, "rs");
    let (status, body, _) = post(
        api,
        &rs,
        "/oauth2/introspect",
        &[("client_id", "rs"), ("token", token)],
    )
    .await;
    (status, body)
}

fn assert_unavailable(answer: &(u16, serde_json::Value, reqwest::header::HeaderMap)) {
    assert_eq!(answer.0, 503, "{}", answer.1);
    assert_eq!(answer.1["error"], "temporarily_unavailable");
    assert!(answer.2.contains_key("retry-after"));
}

/// Waits up to 15 s until introspection answers 200 at `api` again.
async fn until_serving(api: &Api, r: &Replicas, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while introspection(api, r, token).await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "did not recover:\n{}",
            r.redis.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn jti(token: &str) -> String {
    jwt_part(token, 1)["jti"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_fails_closed_and_restarted_recovers_with_every_record() {
    let mut r = Replicas::start(&config_with_svc()).await;
    let svc = identity(&r.setup.pki, "svc");
    let web = identity(&r.setup.pki, "web");
    let mut tokens = Vec::new();
    for _ in 0..6 {
        tokens.push(r.lb.token(&svc, "svc").await);
    }
    for (i, token) in tokens[..3].iter().enumerate() {
        assert_eq!(revoke(&r.replicas[i], &svc, token).await, 200);
    }
    let code = codes(&r.lb, 1).await.remove(0);

    r.redis.stop();
    // Writes fail at once: revocation, code redemption.
    for replica in &r.replicas {
        let answer = post(
            replica,
            &svc,
            "/oauth2/revoke",
            &[("client_id", "svc"), ("token", &tokens[3])],
        )
        .await;
        assert_unavailable(&answer);
    }
    let (status, body) = redeem(&r.replicas[0], &web, "web", &code, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("temporarily_unavailable"))
    );
    // Reads, once the view is older than max_staleness: 503, for revoked
    // and unrevoked tokens alike (never active:true, never active:false).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for replica in &r.replicas {
        for token in [&tokens[0], &tokens[4]] {
            let (status, body) = introspection(replica, &r, token).await;
            assert_eq!(
                (status, body["error"].as_str()),
                (503, Some("temporarily_unavailable"))
            );
        }
    }

    r.redis.restart().await;
    for replica in &r.replicas {
        until_serving(replica, &r, &tokens[4]).await;
        for token in &tokens[..3] {
            assert!(!active(replica, &r, token).await, "a revocation was lost");
        }
        for token in &tokens[3..] {
            assert!(
                active(replica, &r, token).await,
                "the refused revocation happened"
            );
        }
    }
    let members = r.redis.members();
    for token in &tokens[..3] {
        assert!(
            members.contains(&format!("jti {}", jti(token))),
            "{members:?}"
        );
    }
    // The code was not spent by the refused redemption.
    let (status, body) = redeem(&r.replicas[1], &web, "web", &code, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(revoke(&r.replicas[2], &svc, &tokens[3]).await, 200);
    until_inactive(&r.replicas[0], &r, &tokens[3]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_and_restarted_loads_the_whole_list() {
    let mut r = Replicas::start(&config_with_svc()).await;
    let svc = identity(&r.setup.pki, "svc");
    let web = identity(&r.setup.pki, "web");
    let mut tokens = Vec::new();
    for _ in 0..40 {
        tokens.push(r.lb.token(&svc, "svc").await);
    }
    for token in &tokens[..10] {
        assert_eq!(revoke(&r.replicas[1], &svc, token).await, 200);
    }
    r.replicas[0].kill();
    for token in &tokens[10..20] {
        assert_eq!(revoke(&r.replicas[2], &svc, token).await, 200);
    }
    let codes = codes(&r.lb, 1).await;
    let (status, _) = redeem(&r.replicas[1], &web, "web", &codes[0], &[]).await;
    assert_eq!(status, 200);
    r.restart_replica(0);
    let fresh = &r.replicas[0];
    assert!(
        fresh.log().is_empty() || !fresh.log().contains("ERROR"),
        "{}",
        fresh.log()
    );
    for (i, token) in tokens.iter().enumerate() {
        assert_eq!(active(fresh, &r, token).await, i >= 20, "token {i}");
    }
    // The code spent elsewhere is spent here too.
    let (status, body) = redeem(fresh, &web, "web", &codes[0], &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_during_a_burst_keeps_every_acknowledged_revocation() {
    let mut r = Replicas::start(&config_with_svc()).await;
    let svc = identity(&r.setup.pki, "svc");
    let mut tokens = Vec::new();
    for _ in 0..10 {
        tokens.extend(join_all((0..30).map(|_| r.lb.token(&svc, "svc"))).await);
    }
    let burst = join_all(tokens.iter().enumerate().map(|(i, token)| {
        let replica: &Api = &r.replicas[i % 3];
        let svc = &svc;
        async move {
            tokio::time::sleep(Duration::from_millis(i as u64 / 3)).await;
            (revoke(replica, svc, token).await, token)
        }
    }));
    let killer = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        r.redis.kill();
    };
    let (answers, ()) = tokio::join!(burst, killer);
    let acknowledged: Vec<&String> = answers
        .iter()
        .filter(|(status, _)| *status == 200)
        .map(|(_, t)| *t)
        .collect();
    assert!(
        answers
            .iter()
            .all(|(status, _)| *status == 200 || *status == 503),
        "{:?}",
        answers.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    assert!(
        !acknowledged.is_empty() && acknowledged.len() < 300,
        "{}",
        acknowledged.len()
    );
    r.redis.restart().await;
    let members = r.redis.members();
    for token in &acknowledged {
        assert!(
            members.contains(&format!("jti {}", jti(token))),
            "an acknowledged revocation was lost"
        );
    }
    // Every replica has them once it has caught up (a replica that had
    // not read the last ones before the kill may answer from its view for
    // up to max_staleness, as for any propagation).
    for replica in &r.replicas {
        until_serving(replica, &r, &tokens[0]).await;
        for token in &acknowledged {
            until_inactive(replica, &r, token).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_pause_longer_than_max_staleness_is_503_then_recovers() {
    let r = Replicas::start(&config_with_svc()).await;
    let svc = identity(&r.setup.pki, "svc");
    let proxy = PausableProxy::start(r.redis.port).await;
    let cut_off = Replicas::spawn_replica(&r.setup, &proxy.url(), 3);
    let tokens: Vec<String> = join_all((0..2).map(|_| r.lb.token(&svc, "svc"))).await;
    assert!(active(&cut_off, &r, &tokens[0]).await);

    proxy.pause(true);
    let started = Instant::now();
    loop {
        let (status, _) = introspection(&cut_off, &r, &tokens[1]).await;
        if status == 503 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still answering from a stale view"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        // The view counts from when its last read was sent: at most a
        // heartbeat (250 ms here) before the pause.
        started.elapsed() >= Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );
    // A write waits at most revocation.redis.timeout, then 503.
    let answer = post(
        &cut_off,
        &svc,
        "/oauth2/revoke",
        &[("client_id", "svc"), ("token", &tokens[1])],
    )
    .await;
    assert_unavailable(&answer);
    // The others are unaffected; a revocation there reaches the cut-off
    // replica once the network is back.
    assert_eq!(revoke(&r.replicas[0], &svc, &tokens[0]).await, 200);
    proxy.pause(false);
    until_serving(&cut_off, &r, &tokens[1]).await;
    assert!(!active(&cut_off, &r, &tokens[0]).await);
    assert!(active(&cut_off, &r, &tokens[1]).await);
}

/// A replica away while more records than the change log keeps arrive
/// finds, when it is back, that the log no longer reaches back to its
/// position: it reloads the whole set rather than miss what was trimmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_away_while_the_log_is_trimmed_past_it_reloads() {
    use certbound::revocation::{Kind, Record};
    let r = Replicas::start(&config_with_svc()).await;
    let svc = identity(&r.setup.pki, "svc");
    let proxy = PausableProxy::start(r.redis.port).await;
    let away = Replicas::spawn_replica(&r.setup, &proxy.url(), 3);
    let token = r.lb.token(&svc, "svc").await;
    assert!(active(&away, &r, &token).await);
    proxy.pause(true);
    let now = certbound::keys::unix_now();
    // The token's record is the 500th: the reader's pending read is
    // answered by the first, and the rest are trimmed before it reads again.
    let mut lines = certbound::revocation::HEADER.to_vec();
    for i in 0..5000 {
        let id = if i == 500 {
            jti(&token)
        } else {
            format!("filler-{i}")
        };
        Record::new(Kind::Jti, &id, now + 3600)
            .unwrap()
            .encode(&mut lines);
    }
    let file = r.setup.dir.path().join("burst.log");
    std::fs::write(&file, lines).unwrap();
    let done = revocations_cli(
        &r.setup,
        &r.redis.url(),
        &["import", &file.display().to_string()],
        &[("CERTBOUND_REVOCATION__REDIS__LOG_LENGTH", "1000")],
    );
    assert!(done.contains("5000 recorded"), "{done}");
    let length: u64 = redis::cmd("XLEN")
        .arg("{certbound}:revocations:log")
        .query(&mut r.redis.connection().unwrap())
        .unwrap();
    assert!(length < 2000, "the log was not trimmed: {length}");
    proxy.pause(false);
    away.wait_for_log("reloaded from Redis", 0).await;
    until_serving(&away, &r, &token).await;
    assert!(
        !active(&away, &r, &token).await,
        "a trimmed record was missed: {}",
        away.log()
    );
    assert!(away.log().contains("trimmed past this replica's position"));
}

/// Through Sentinel: a replica follows a failover by itself; what was
/// acknowledged (with `WAIT` for the Redis replica) is still in force on
/// the promoted primary, and writing works again there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_is_followed() {
    use crate::common::redis::SentinelSet;
    let r = Replicas::start(&config_with_svc()).await;
    let svc = identity(&r.setup.pki, "svc");
    let mut set = SentinelSet::start(&r.setup.dir.path().join("sentinel")).await;
    let replica = crate::common::ChildServer::spawn_env(
        &r.setup,
        &[
            ("CERTBOUND_REVOCATION__BACKEND", "redis".into()),
            (
                "CERTBOUND_REVOCATION__REDIS__SENTINELS",
                format!("[\"redis://127.0.0.1:{}\"]", set.sentinel_port),
            ),
            ("CERTBOUND_REVOCATION__REDIS__WAIT_REPLICAS", "1".into()),
            ("CERTBOUND_REVOCATION__REDIS__MAX_STALENESS", "1".into()),
            (
                "CERTBOUND_SERVER__CONTROL_SOCKET",
                r.setup
                    .dir
                    .path()
                    .join("sentinel.sock")
                    .display()
                    .to_string(),
            ),
        ],
    )
    .unwrap_or_else(|log| panic!("did not start:\n{log}"));
    let tokens: Vec<String> = join_all((0..3).map(|_| r.lb.token(&svc, "svc"))).await;
    assert_eq!(revoke(&replica, &svc, &tokens[0]).await, 200);
    set.primary.kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    while set.primary_port() != Some(set.replica.port) {
        assert!(Instant::now() < deadline, "no failover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    until_serving(&replica, &r, &tokens[1]).await;
    assert!(
        !active(&replica, &r, &tokens[0]).await,
        "lost in the failover"
    );
    assert!(active(&replica, &r, &tokens[1]).await);
    // The promoted primary has no replica of its own: with wait_replicas
    // = 1 a write is not acknowledged (503) until one is back.
    assert_eq!(revoke(&replica, &svc, &tokens[1]).await, 503);
}
