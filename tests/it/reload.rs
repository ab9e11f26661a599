//! Reload without restart, on the real binary: SIGHUP and `certbound
//! reload` swap in a new configuration at once; a broken one leaves the
//! running one serving; requests in flight during reloads all succeed.
//! And `certbound check`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use certbound::keys::Alg;
use rcgen::DnType;
use serde_json::Value;

use crate::common::{ChildServer, HEADER, Identity, Setup};
use crate::revoke::basic;

const SECRET_SHA256: &str = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b";

fn clients(svc_scope: &str, with_new: bool, with_old: bool) -> String {
    let mut toml = format!(
        r#"
[[clients]]
client_id = "svc"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=svc"
scope = "{svc_scope}"
"#
    );
    for (present, id) in [(with_new, "new"), (with_old, "old")] {
        if present {
            toml.push_str(&format!(
                "[[clients]]\nclient_id = \"{id}\"\ntoken_endpoint_auth_method = \"client_secret_basic\"\nclient_secret_sha256 = \"{SECRET_SHA256}\"\n"
            ));
        }
    }
    toml
}

/// Rewrites the config of `setup`: the clients, and the trusted proxies.
fn rewrite(setup: &Setup, clients_toml: &str, trusted: &str) {
    let text = std::fs::read_to_string(&setup.config).unwrap();
    let head = text.split("\n[[clients]]").next().unwrap();
    let head = head
        .lines()
        .map(|l| {
            if l.starts_with("trusted_proxies") {
                format!("trusted_proxies = {trusted}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&setup.config, format!("{head}\n{clients_toml}")).unwrap();
}

async fn token_status(
    server: &ChildServer,
    id: Option<&Identity>,
    form: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let (status, body, _) = server
        .post(
            &server.client(id),
            &server.https_url("/oauth2/token"),
            form,
            headers,
        )
        .await;
    (status, body)
}

/// The leaf certificate a new TLS connection to the server sees.
async fn server_certificate(server: &ChildServer) -> Vec<u8> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(server.tls_config(None)));
    let tcp = tokio::net::TcpStream::connect(server.https).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn hangup(server: &ChildServer) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn certbound(args: &[&str]) -> (bool, String, String) {
    crate::common::run_certbound(args, None)
}

#[tokio::test]
async fn reload_changes_clients_proxies_and_certificate_without_a_restart() {
    let setup = Setup::new(&clients("read", false, true), "[]", Alg::ES256);
    let svc = setup.pki.client(&[(DnType::CommonName, "svc")], vec![]);
    let server = ChildServer::spawn(&setup).unwrap();
    let plain = reqwest::Client::new();
    let header_request = |client: &reqwest::Client| {
        client
            .post(format!("http://{}/oauth2/token", server.http.unwrap()))
            .header("content-type", "application/x-www-form-urlencoded")
            .header(HEADER, svc.cert_pem.replace('\n', ""))
            .body("grant_type=client_credentials&client_id=svc")
            .send()
    };

    // Before: no `write` scope, no client "new", "old" works, the proxy
    // header is not believed, the first server certificate.
    let write = [
        ("grant_type", "client_credentials"),
        ("client_id", "svc"),
        ("scope", "write"),
    ];
    let (status, body) = token_status(&server, Some(&svc), &write, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    let cc = [("grant_type", "client_credentials")];
    let (status, _) = token_status(&server, None, &cc, &[("authorization", &basic("new"))]).await;
    assert_eq!(status, 401);
    let (status, _) = token_status(&server, None, &cc, &[("authorization", &basic("old"))]).await;
    assert_eq!(status, 200);
    assert_eq!(header_request(&plain).await.unwrap().status(), 401);
    let first_cert = server_certificate(&server).await;
    // A connection opened before the reload, kept alive across it.
    let kept_alive = server.client(Some(&svc));
    let (status, _, _) = server
        .post(
            &kept_alive,
            &server.https_url("/oauth2/token"),
            &write[..2],
            &[],
        )
        .await;
    assert_eq!(status, 200);

    // Change everything, with a new server certificate, and send SIGHUP.
    rewrite(
        &setup,
        &clients("read write", true, false),
        "[\"127.0.0.1/32\"]",
    );
    let replacement = setup.pki.server();
    std::fs::write(setup.dir.path().join("server.crt"), &replacement.cert_pem).unwrap();
    std::fs::write(setup.dir.path().join("server.key"), &replacement.key_pem).unwrap();
    hangup(&server);
    let seen = server.wait_for_log("configuration reloaded", 0).await;

    let (status, body) = token_status(&server, Some(&svc), &write, &[]).await;
    assert_eq!(
        (status, body["scope"].as_str()),
        (200, Some("write")),
        "{body}"
    );
    let (status, _) = token_status(&server, None, &cc, &[("authorization", &basic("new"))]).await;
    assert_eq!(status, 200, "a client added");
    let (status, body) =
        token_status(&server, None, &cc, &[("authorization", &basic("old"))]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "a client removed"
    );
    assert_eq!(
        header_request(&plain).await.unwrap().status(),
        200,
        "the proxy range now trusts 127.0.0.1"
    );
    let second_cert = server_certificate(&server).await;
    assert_ne!(first_cert, second_cert);
    assert_eq!(
        second_cert, replacement.cert_der,
        "new handshakes use the new certificate"
    );
    // The connection opened before the reload still works, on new settings.
    let (status, body, _) = server
        .post(&kept_alive, &server.https_url("/oauth2/token"), &write, &[])
        .await;
    assert_eq!((status, body["scope"].as_str()), (200, Some("write")));

    // A broken configuration: `certbound reload` names every problem and
    // fails; the running settings stay.
    let good = std::fs::read_to_string(&setup.config).unwrap();
    let broken = good
        .replace(
            "trusted_proxies = [\"127.0.0.1/32\"]",
            "trusted_proxies = [\"10.0.0.0/33\"]",
        )
        .replace(
            &format!("trust_anchors = \"{}/ca.crt\"", setup.dir.path().display()),
            "trust_anchors = \"/nope/ca.pem\"",
        );
    assert_ne!(broken, good);
    std::fs::write(&setup.config, &broken).unwrap();
    let config = setup.config.to_str().unwrap();
    let (ok, out, err) = certbound(&["reload", "--config", config]);
    assert!(!ok, "{out}{err}");
    assert!(
        err.contains("10.0.0.0/33") && err.contains("/nope/ca.pem"),
        "{err}"
    );
    server
        .wait_for_log("configuration not reloaded", seen)
        .await;
    let (status, _) = token_status(&server, None, &cc, &[("authorization", &basic("new"))]).await;
    assert_eq!(status, 200, "the old settings keep serving");
    assert_eq!(header_request(&plain).await.unwrap().status(), 200);

    // A listener address cannot change in place: reported, kept.
    std::fs::write(
        &setup.config,
        good.replace("http = \"127.0.0.1:0\"", "http = \"127.0.0.1:1\""),
    )
    .unwrap();
    let (ok, out, err) = certbound(&["reload", "--config", config]);
    assert!(ok, "{err}");
    assert!(
        out.contains("ok") && out.contains("needs restart: server.http"),
        "{out}"
    );
    assert_eq!(header_request(&plain).await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_during_a_stream_of_requests_fail_none() {
    const CONNECTIONS: usize = 8;
    const REQUESTS: usize = 2000;
    let setup = Setup::new(&clients("read", false, false), "[]", Alg::ES256);
    let svc = setup.pki.client(&[(DnType::CommonName, "svc")], vec![]);
    let server = Arc::new(ChildServer::spawn(&setup).unwrap());
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..CONNECTIONS {
        let (server, done) = (server.clone(), done.clone());
        let client = server.client(Some(&svc));
        workers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            for i in 0..REQUESTS / CONNECTIONS {
                // Spread over about 5 s.
                let due = Duration::from_millis((i * 5000 / (REQUESTS / CONNECTIONS)) as u64);
                tokio::time::sleep(due.saturating_sub(started.elapsed())).await;
                let (status, body, _) = server
                    .post(
                        &client,
                        &server.https_url("/oauth2/token"),
                        &[("grant_type", "client_credentials"), ("client_id", "svc")],
                        &[],
                    )
                    .await;
                if status != 200 {
                    failures.push(format!("{status} {body}"));
                }
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            failures
        }));
    }
    // Reload ten times while they run, by signal and by command, each time
    // with a changed scope.
    let config = setup.config.to_str().unwrap().to_string();
    let mut reloads = 0;
    while done.load(std::sync::atomic::Ordering::Relaxed) < REQUESTS && reloads < 10 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        rewrite(
            &setup,
            &clients(&format!("read r{reloads}"), false, false),
            "[]",
        );
        if reloads % 2 == 0 {
            hangup(&server);
        } else {
            let (ok, out, err) = certbound(&["reload", "--config", &config]);
            assert!(ok, "{out}{err}");
        }
        reloads += 1;
    }
    let mut failures = Vec::new();
    for w in workers {
        failures.extend(w.await.unwrap());
    }
    assert_eq!(done.load(std::sync::atomic::Ordering::Relaxed), REQUESTS);
    assert!(reloads >= 5, "only {reloads} reloads during the stream");
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let log = server.log();
    assert!(!log.contains("not reloaded"), "{log}");
}

#[test]
fn check_names_every_problem_and_passes_a_good_config() {
    let setup = Setup::new(&clients("read", false, false), "[]", Alg::ES256);
    let config = setup.config.to_str().unwrap();
    let (ok, out, err) = certbound(&["check", "--config", config]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("no problem found"), "{out}");

    let text = std::fs::read_to_string(&setup.config).unwrap();
    let bad = text
        .replace(
            "trusted_proxies = []",
            "trusted_proxies = [\"10.0.0.0/33\"]",
        )
        .replace(
            &format!("trust_anchors = \"{}/ca.crt\"", setup.dir.path().display()),
            "trust_anchors = \"/nope/ca.pem\"",
        )
        .replace(
            &format!(
                "tls_certificate = \"{}/server.crt\"",
                setup.dir.path().display()
            ),
            "tls_certificate = \"/nope/server.crt\"",
        )
        .replace("\"tls_client_auth\"", "\"tls_client_authx\"");
    let bad_path = setup.dir.path().join("bad.toml");
    std::fs::write(&bad_path, bad).unwrap();
    let (ok, out, err) = certbound(&["check", "--config", bad_path.to_str().unwrap()]);
    assert!(!ok);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    for (line, key, value) in [
        (0, "mtls.trusted_proxies[0]", "10.0.0.0/33"),
        (1, "mtls.trust_anchors", "/nope/ca.pem"),
        (2, "clients[0]", "tls_client_authx"),
        (3, "server.tls_certificate", "/nope/server.crt"),
    ] {
        assert!(
            lines[line].starts_with(key) && lines[line].contains(value),
            "line {line}: {}",
            lines[line]
        );
    }
    assert!(err.contains("4 problems"), "{err}");
    // Nothing was created by the check.
    assert!(!setup.dir.path().join("data").exists());
    assert!(!setup.dir.path().join("keys/sealing.key").exists());
}
