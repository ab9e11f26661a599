//! Keys that rotate without downtime: a new signing key is published
//! before it signs, starts signing at its time with no reload or restart,
//! and tokens of the old key keep verifying until the key is retired;
//! `keys rotate` never retires a key still needed; a sealing-key rotation
//! keeps codes and sessions sealed before it good.

use std::time::{Duration, Instant};

use futures_util::FutureExt;

use certbound::keys::{Alg, unix_now};
use certbound::oauth::authorize::CodeClaims;
use certbound::seal::{Purpose, Sealer};
use rcgen::DnType;
use serde_json::Value;

use crate::browser::*;
use crate::common::{Api, ChildServer, Setup, TestServer, jwt_part};
use crate::process::CLIENTS;
use crate::revoke::basic;

/// Runs an operator command on the setup's config, as the server's user
/// would (the files it writes are handed to that user).
fn certbound(config: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let config_arg = config.to_str().unwrap();
    let out = crate::common::run_certbound(&[&["--config", config_arg][..], args].concat(), None);
    crate::common::hand_to_server(config.parent().unwrap());
    out
}

async fn jwks(server: &Api) -> (Vec<String>, String) {
    let resp = server
        .client(None)
        .get(server.https_url("/oauth2/jwks"))
        .send()
        .await
        .unwrap();
    let cache = resp.headers()["cache-control"]
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = resp.json().await.unwrap();
    let kids = body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect();
    (kids, cache)
}

async fn active(server: &Api, token: &str) -> bool {
    crate::process::active(server, &server.client(None), token).await
}

fn kid(token: &str) -> String {
    jwt_part(token, 0)["kid"].as_str().unwrap().to_string()
}

async fn until<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_new_signing_key_is_published_first_then_signs_at_its_time() {
    let setup = Setup::new(CLIENTS, "[]", Alg::ES256);
    // Publish 3 s ahead; look at keys/ every second.
    let text = std::fs::read_to_string(&setup.config).unwrap();
    let text = text.replacen(
        "[revocation]",
        "publish_before = 3\npoll_interval = 1\n[revocation]",
        1,
    );
    std::fs::write(&setup.config, text).unwrap();
    let svc = setup.pki.client(&[(DnType::CommonName, "svc")], vec![]);
    let server = ChildServer::spawn(&setup).unwrap();

    let (kids, cache) = jwks(&server).await;
    assert_eq!(kids.len(), 1);
    assert_eq!(cache, "public, max-age=3", "no longer than publish_before");
    let old_kid = kids[0].clone();
    let old_token = server.token(&svc, "svc").await;
    assert_eq!(kid(&old_token), old_kid);

    // --keep 0 is refused; a rotation adds a key and keeps the active one.
    let (ok, _, err) = certbound(&setup.config, &["keys", "rotate", "--keep", "0"]);
    assert!(!ok && err.contains("at least 1"), "{err}");
    let (ok, out, err) = certbound(&setup.config, &["keys", "rotate", "--keep", "1"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("kept ") && out.contains("it is active"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_dir(setup.dir.path().join("keys/signing"))
            .unwrap()
            .count(),
        2,
        "the active key was not retired"
    );

    // Published within a poll, no reload; still signing with the old key.
    until("the new key in the JWKS", || async {
        jwks(&server).await.0.len() == 2
    })
    .await;
    let (kids, _) = jwks(&server).await;
    let new_kid = kids.iter().find(|k| **k != old_kid).unwrap().clone();
    let early = server.token(&svc, "svc").await;
    assert_eq!(
        kid(&early),
        old_kid,
        "a published key does not sign before its time"
    );
    let (_, list, _) = certbound(&setup.config, &["keys", "list"]);
    assert!(
        list.contains("\tpublished\t") && list.contains("\tactive\t"),
        "{list}"
    );

    // At its time it signs, without a restart.
    until("tokens signed by the new key", || async {
        kid(&server.token(&svc, "svc").await) == new_kid
    })
    .await;
    // The old key's tokens still verify and introspect; it is retiring.
    assert!(active(&server, &old_token).await);
    assert!(active(&server, &early).await);
    let (kids, _) = jwks(&server).await;
    assert!(kids.contains(&old_kid), "a retiring key stays published");
    let (_, list, _) = certbound(&setup.config, &["keys", "list"]);
    let old_line = list.lines().find(|l| l.contains(&old_kid)).unwrap();
    assert!(
        old_line.contains("\tretiring\t") && old_line.contains("retirable at 20"),
        "{list}"
    );

    // Another rotation still keeps it: what it signed is valid for an hour.
    let (ok, out, err) = certbound(&setup.config, &["keys", "rotate", "--keep", "1"]);
    assert!(ok, "{err}");
    assert!(out.contains("what it signed is valid until"), "{out}");
    assert!(!out.contains("retired "), "{out}");

    // Taken away by hand: its tokens stop verifying at the next look,
    // cached verifications included.
    assert!(active(&server, &old_token).await);
    let signing = setup.dir.path().join("keys/signing");
    for entry in std::fs::read_dir(&signing).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("1-")
        {
            std::fs::remove_file(path).unwrap();
        }
    }
    until("the old key gone", || async {
        !jwks(&server).await.0.contains(&old_kid)
    })
    .await;
    assert!(
        !active(&server, &old_token).await,
        "never served from the cache"
    );
    let current = server.token(&svc, "svc").await;
    assert!(active(&server, &current).await);

    // While keys.dir cannot be read, a token of a key the server does not
    // know may be of a key it failed to load: 503, not inactive.
    let other = tempfile::tempdir().unwrap();
    certbound::keys::generate_key(other.path(), Alg::ES256, 1).unwrap();
    let other_keys = certbound::keys::KeySet::load(other.path(), None).unwrap();
    let foreign = certbound::token::TokenService {
        issuer: "https://certbound.test".into(),
        audience: "https://certbound.test".into(),
        lifetime: 600,
        refresh_audience: String::new(),
        refresh_lifetime: 600,
    }
    .mint(
        &other_keys,
        certbound::token::AccessGrant {
            sub: "svc",
            client_id: "svc",
            scope: "",
            binding: None,
            username: None,
            fid: None,
            auth_time: None,
        },
        unix_now(),
    )
    .unwrap();
    assert!(!active(&server, &foreign).await);
    let broken = signing.join("2000000000-ES256.pem");
    std::fs::write(&broken, "not a key").unwrap();
    crate::common::hand_to_server(setup.dir.path());
    until("503 for an unknown key", || {
        introspect_status(&server, &foreign).map(|s| s == 503)
    })
    .await;
    assert!(active(&server, &current).await, "known keys still verify");
    std::fs::remove_file(&broken).unwrap();
    until("inactive again", || {
        introspect_status(&server, &foreign).map(|s| s == 200)
    })
    .await;
    assert!(!active(&server, &foreign).await);
}

#[tokio::test]
async fn a_tenant_with_its_own_keys_rotates_them_alone() {
    let setup = Setup::new(CLIENTS, "[]", Alg::ES256);
    let own = setup.dir.path().join("acme-keys");
    certbound::keys::generate_key(&own, Alg::ES256, 1).unwrap();
    let text = std::fs::read_to_string(&setup.config).unwrap().replacen(
        "[revocation]",
        "publish_before = 3\npoll_interval = 1\n[revocation]",
        1,
    );
    let tenant = format!(
        "\n[[tenants]]\ndomain = \"shared.net\"\n[[tenants]]\ndomain = \"acme.com\"\nkeys_dir = \"{}\"\n{}",
        own.display(),
        CLIENTS.replace("[[clients]]", "[[tenants.clients]]")
    );
    std::fs::write(&setup.config, text + &tenant).unwrap();
    let sealing = ["keys", "--tenant", "acme.com", "generate", "--sealing"];
    let (ok, _, err) = certbound(&setup.config, &sealing);
    assert!(ok, "{err}");
    let svc = setup.pki.client(&[(DnType::CommonName, "svc")], vec![]);
    let server = ChildServer::spawn(&setup).unwrap();
    let acme = server.under("/t/acme.com");

    let (default_kids, _) = jwks(&server).await;
    let (acme_kids, _) = jwks(&acme).await;
    assert_eq!((default_kids.len(), acme_kids.len()), (1, 1));
    assert_ne!(default_kids, acme_kids, "acme signs with its own key");
    let old = acme.token(&svc, "svc").await;
    assert_eq!(kid(&old), acme_kids[0]);

    let (ok, _, err) = certbound(&setup.config, &["keys", "--tenant", "nowhere.org", "list"]);
    assert!(!ok && err.contains("no tenant \"nowhere.org\""), "{err}");
    // A tenant sharing the default keys has none of its own to rotate.
    let (ok, _, err) = certbound(&setup.config, &["keys", "--tenant", "shared.net", "rotate"]);
    assert!(
        !ok && err.contains("shares its keys directory with \"carbon.super\""),
        "{err}"
    );
    let (ok, _, err) = certbound(&setup.config, &["keys", "rotate", "--tenant", "acme.com"]);
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read_dir(own.join("signing")).unwrap().count(),
        2,
        "the new key is in acme's keys_dir"
    );
    until("acme's new key published and signing", || async {
        let (kids, _) = jwks(&acme).await;
        kids.len() == 2 && kid(&acme.token(&svc, "svc").await) != acme_kids[0]
    })
    .await;
    let (_, list, _) = certbound(&setup.config, &["keys", "list", "--tenant", "acme.com"]);
    assert!(
        list.contains("\tretiring\t") && list.contains(&acme_kids[0]),
        "{list}"
    );
    // acme's earlier token still verifies; the default tenant never saw a
    // change.
    assert!(active(&acme, &old).await);
    assert_eq!(jwks(&server).await.0, default_kids);
    assert_eq!(kid(&server.token(&svc, "svc").await), default_kids[0]);
}

async fn introspect_status(server: &ChildServer, token: &str) -> u16 {
    server
        .post(
            &server.client(None),
            &server.https_url("/oauth2/introspect"),
            &[("token", token)],
            &[("authorization", &basic("rs"))],
        )
        .await
        .0
}

#[tokio::test]
async fn a_sealing_key_rotation_keeps_earlier_codes_and_sessions() {
    let server = TestServer::start(&config("")).await;
    let keys_dir = server.dir.path().join("keys");
    let mut browser = Browser::new(&server);
    let done = code_for(&mut browser, &[]).await;
    let code = done.param("code").unwrap();
    let first = std::fs::read_to_string(keys_dir.join("sealing.key")).unwrap();
    let mut first_key = [0u8; 32];
    hex::decode_to_slice(first.trim(), &mut first_key).unwrap();
    let old_only = Sealer::new(&first_key).unwrap();

    // A new sealing key, active at once, picked up without a reload.
    certbound::keys::generate_sealing_key(&keys_dir, unix_now()).unwrap();
    assert!(server.state.refresh_keys().unwrap());
    assert_eq!(server.settings().sealer.fingerprint().len(), 2);

    // The code sealed before is redeemed.
    let web = identity(&server.pki, "web");
    let (status, body) = redeem(&server, &web, "web", &code, &[]).await;
    assert_eq!(status, 200, "{body}");
    // The session sealed before still logs the user in: straight to consent.
    let consent = browser.authorize(&params(&[])).await;
    assert!(consent.body.contains("approve-once"), "{}", consent.body);
    // New values are sealed with the new key.
    let mut fresh = Browser::new(&server);
    let code = code_for(&mut fresh, &[]).await.param("code").unwrap();
    assert!(old_only.open::<CodeClaims>(Purpose::Code, &code).is_none());
    let settings = server.settings();
    assert!(
        settings
            .sealer
            .open::<CodeClaims>(Purpose::Code, &code)
            .is_some()
    );
    let (status, body) = redeem(&server, &web, "web", &code, &[]).await;
    assert_eq!(status, 200, "{body}");
}
