//! The server as a separate process: restarts, SIGKILL in the middle of
//! revocations, file permissions.

use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};

use certbound::keys::Alg;
use rcgen::DnType;
use serde_json::Value;

use crate::common::{Api, ChildServer, Identity, Setup};
use crate::revoke::basic;

pub const CLIENTS: &str = r#"
[[clients]]
client_id = "svc"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=svc"
[[clients]]
client_id = "rs"
token_endpoint_auth_method = "client_secret_basic"
client_secret_sha256 = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
introspection = true
"#;

fn setup() -> (Setup, Identity) {
    let setup = Setup::new(CLIENTS, "[]", Alg::ES256);
    let id = setup.pki.client(&[(DnType::CommonName, "svc")], vec![]);
    (setup, id)
}

pub async fn active(server: &Api, client: &reqwest::Client, token: &str) -> bool {
    let (status, body, _) = server
        .post(
            client,
            &server.https_url("/oauth2/introspect"),
            &[("token", token)],
            &[("authorization", &basic("rs"))],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["active"] == Value::Bool(true)
}

async fn revoke(server: &ChildServer, client: &reqwest::Client, token: &str) -> u16 {
    server
        .post(
            client,
            &server.https_url("/oauth2/revoke"),
            &[("token", token), ("client_id", "svc")],
            &[],
        )
        .await
        .0
}

#[tokio::test]
async fn a_restart_keeps_revocations() {
    let (setup, id) = setup();
    let mut server = ChildServer::spawn(&setup).unwrap();
    let client = server.client(Some(&id));
    let revoked = server.token(&id, "svc").await;
    let kept = server.token(&id, "svc").await;
    assert_eq!(revoke(&server, &client, &revoked).await, 200);
    server.kill();
    let server = ChildServer::spawn(&setup).unwrap();
    let client = server.client(Some(&id));
    assert!(!active(&server, &client, &revoked).await);
    assert!(active(&server, &client, &kept).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_revocations_loses_none_that_was_acknowledged() {
    const TOKENS: usize = 300;
    let (setup, id) = setup();
    let server = ChildServer::spawn(&setup).unwrap();
    let mut tokens = Vec::with_capacity(TOKENS);
    for _ in 0..TOKENS {
        tokens.push(server.token(&id, "svc").await);
    }
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let (enough_tx, enough_rx) = tokio::sync::oneshot::channel();
    let enough_tx = Arc::new(Mutex::new(Some(enough_tx)));
    let server = Arc::new(Mutex::new(Some(server)));
    let api = {
        let guard = server.lock().unwrap();
        let s = guard.as_ref().unwrap();
        (s.https_url("/oauth2/revoke"), s.client(Some(&id)))
    };
    // 300 revocations from 32 concurrent connections; the process is killed
    // as soon as 60 have been acknowledged, with the rest in flight.
    let queue = Arc::new(Mutex::new((0..TOKENS).collect::<Vec<_>>()));
    let workers: Vec<_> = (0..32)
        .map(|_| {
            let (url, client) = (api.0.clone(), api.1.clone());
            let (queue, tokens) = (queue.clone(), tokens.clone());
            let (acknowledged, enough_tx) = (acknowledged.clone(), enough_tx.clone());
            tokio::spawn(async move {
                loop {
                    let Some(i) = queue.lock().unwrap().pop() else {
                        break;
                    };
                    let form = crate::common::serde_urlencoded(&[
                        ("token", &tokens[i]),
                        ("client_id", "svc"),
                    ]);
                    let sent = client
                        .post(&url)
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(form)
                        .send()
                        .await;
                    match sent {
                        Ok(resp) if resp.status() == 200 => {
                            let mut acked = acknowledged.lock().unwrap();
                            acked.push(i);
                            if acked.len() == 60
                                && let Some(tx) = enough_tx.lock().unwrap().take()
                            {
                                let _ = tx.send(());
                            }
                        }
                        Ok(resp) => panic!("revocation answered {}", resp.status()),
                        Err(_) => break, // the server is gone
                    }
                }
            })
        })
        .collect();
    enough_rx.await.unwrap();
    server.lock().unwrap().take().unwrap().kill();
    for w in workers {
        w.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= 60 && acknowledged.len() < TOKENS,
        "{}",
        acknowledged.len()
    );
    eprintln!(
        "{} of {TOKENS} revocations acknowledged before SIGKILL",
        acknowledged.len()
    );

    let server = ChildServer::spawn(&setup).unwrap();
    let client = server.client(Some(&id));
    for &i in &acknowledged {
        assert!(
            !active(&server, &client, &tokens[i]).await,
            "acknowledged revocation {i} was lost"
        );
    }
    // What was never acknowledged may go either way, but every token is
    // either revoked or still valid, and the list loaded cleanly enough to
    // serve new revocations.
    let last = tokens
        .iter()
        .enumerate()
        .find(|(i, _)| !acknowledged.contains(i))
        .map(|(_, t)| t.clone())
        .unwrap();
    assert_eq!(revoke(&server, &client, &last).await, 200);
    assert!(!active(&server, &client, &last).await);
}

#[tokio::test]
async fn a_read_only_list_gives_503_and_the_token_stays_valid() {
    let (setup, id) = setup();
    let server = ChildServer::spawn(&setup).unwrap();
    let client = server.client(Some(&id));
    let token = server.token(&id, "svc").await;
    let list = setup.revocations();
    std::fs::set_permissions(&list, std::fs::Permissions::from_mode(0o444)).unwrap();
    let (status, body, _) = server
        .post(
            &client,
            &server.https_url("/oauth2/revoke"),
            &[("token", &token), ("client_id", "svc")],
            &[],
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(active(&server, &client, &token).await);
    // Writable again: the revocation goes through.
    std::fs::set_permissions(&list, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(revoke(&server, &client, &token).await, 200);
    assert!(!active(&server, &client, &token).await);
}

#[test]
fn an_unusable_list_is_a_clear_startup_error() {
    let (setup, _) = setup();
    // The data directory cannot be written: the file cannot be created.
    let data = setup.dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o555)).unwrap();
    let output = ChildServer::spawn(&setup).err().expect("startup fails");
    assert!(
        output.contains("revocation list") && output.contains("revocations.log"),
        "{output}"
    );
    // The file exists but cannot be read.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(setup.revocations(), "").unwrap();
    std::fs::set_permissions(setup.revocations(), std::fs::Permissions::from_mode(0o000)).unwrap();
    let output = ChildServer::spawn(&setup).err().expect("startup fails");
    assert!(output.contains("cannot open"), "{output}");
    assert!(!output.contains("panicked"), "{output}");
}

/// Used refresh tokens, redeemed codes and revoked families are on disk:
/// a restart forgets none of them.
#[tokio::test]
async fn refresh_reuse_and_code_replay_survive_restarts() {
    use crate::browser::{self, Browser};
    let setup = Setup::new(&browser::config(""), "[]", Alg::ES256);
    let web = browser::identity(&setup.pki, "web");
    let mut server = ChildServer::spawn(&setup).unwrap();
    let mut agent = Browser::new(&server);
    let code = browser::code_for(&mut agent, &[])
        .await
        .param("code")
        .unwrap();
    let (status, first) = browser::redeem(&server, &web, "web", &code, &[]).await;
    assert_eq!(status, 200, "{first}");
    let rt1 = first["refresh_token"].as_str().unwrap().to_string();
    let (status, second) = browser::refresh(&server, &web, "web", &rt1, &[]).await;
    assert_eq!(status, 200, "{second}");
    let rt2 = second["refresh_token"].as_str().unwrap().to_string();
    let at2 = second["access_token"].as_str().unwrap().to_string();

    server.kill();
    let mut server = ChildServer::spawn(&setup).unwrap();
    assert_eq!(
        browser::introspect(&server, &setup.pki, &at2).await["active"],
        true
    );
    // rt1 was used before the restart: this is a reuse, and revokes the
    // family (at2, rt2).
    let (status, body) = browser::refresh(&server, &web, "web", &rt1, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(
        browser::introspect(&server, &setup.pki, &at2).await["active"],
        false
    );

    server.kill();
    let server = ChildServer::spawn(&setup).unwrap();
    // The family revocation and the spent code are on disk too.
    let (status, body) = browser::refresh(&server, &web, "web", &rt2, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(
        browser::introspect(&server, &setup.pki, &rt2).await["active"],
        false
    );
    let (status, _) = browser::redeem(&server, &web, "web", &code, &[]).await;
    assert_eq!(status, 400);
}
