//! What an operator runs certbound with: the admin listener's Prometheus
//! metrics, moved by exactly what was asked; the JSON log, one object per
//! line with no token, secret or certificate in it; health and readiness
//! on every listener.

use std::collections::BTreeMap;

use base64::Engine;
use certbound::keys::Alg;
use rcgen::DnType;
use serde_json::Value;

use crate::common::{ChildServer, HEADER, Identity, Setup};
use crate::process::CLIENTS;
use crate::revoke::basic;

/// One scrape: series (name and sorted labels) to value.
struct Scrape(BTreeMap<(String, Vec<(String, String)>), f64>);

impl Scrape {
    fn parse(text: &str) -> Self {
        let mut series = BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (key, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match key.split_once('{') {
                Some((name, rest)) => {
                    let mut labels: Vec<(String, String)> = rest
                        .trim_end_matches('}')
                        .split(',')
                        .map(|kv| {
                            let (k, v) = kv.split_once('=').unwrap();
                            (k.to_string(), v.trim_matches('"').to_string())
                        })
                        .collect();
                    labels.sort();
                    (name.to_string(), labels)
                }
                None => (key.to_string(), Vec::new()),
            };
            series.insert((name, labels), value.parse().unwrap());
        }
        Self(series)
    }

    /// The value of `name` with exactly `labels` (0 if absent).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        labels.sort();
        self.0
            .get(&(name.to_string(), labels))
            .copied()
            .unwrap_or(0.0)
    }
}

fn setup() -> (Setup, Identity) {
    let extra = format!("{CLIENTS}\n[log]\nformat = \"json\"\n");
    let setup = Setup::with_server("admin = \"127.0.0.1:0\"", &extra, "[]", Alg::ES256);
    let id = setup.pki.client(&[(DnType::CommonName, "svc")], vec![]);
    (setup, id)
}

async fn scrape(server: &ChildServer) -> Scrape {
    let admin = server.admin.expect("the admin listener");
    let resp = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    Scrape::parse(&resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_by_exactly_what_was_asked_and_the_json_log_keeps_no_secret() {
    let (setup, id) = setup();
    let server = ChildServer::spawn(&setup).unwrap();
    let mtls = server.client(Some(&id));
    let anonymous = server.client(None);
    let token_url = server.https_url("/oauth2/token");
    let introspect_url = server.https_url("/oauth2/introspect");
    let token =
        |client: reqwest::Client, client_id: &'static str, headers: Vec<(&'static str, String)>| {
            let url = token_url.clone();
            let server = &server;
            async move {
                let headers: Vec<(&str, &str)> =
                    headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                server
                    .post(
                        &client,
                        &url,
                        &[
                            ("grant_type", "client_credentials"),
                            ("client_id", client_id),
                        ],
                        &headers,
                    )
                    .await
            }
        };

    let mut tokens = Vec::new();
    for _ in 0..3 {
        let (status, body, _) = token(mtls.clone(), "svc", vec![]).await;
        assert_eq!(status, 200, "{body}");
        tokens.push(body["access_token"].as_str().unwrap().to_string());
    }
    // Refused: no certificate; an unknown client; a certificate header on
    // the HTTPS listener (not believed there by default).
    let pem = id.cert_pem.replace('\n', "");
    for (client, client_id, headers) in [
        (anonymous.clone(), "svc", vec![]),
        (mtls.clone(), "ghost", vec![]),
        (anonymous.clone(), "svc", vec![(HEADER, pem.clone())]),
    ] {
        let (status, body, _) = token(client, client_id, headers).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client"))
        );
    }
    // A wrong secret at introspection.
    let wrong = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("rs:wrong-guess-7431")
    );
    let (status, _, _) = server
        .post(
            &anonymous,
            &introspect_url,
            &[("token", &tokens[0])],
            &[("authorization", &wrong)],
        )
        .await;
    assert_eq!(status, 401);
    let introspect = async |token: &str| {
        let (status, body, _) = server
            .post(
                &anonymous,
                &introspect_url,
                &[("token", token)],
                &[("authorization", &basic("rs"))],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["active"].as_bool().unwrap()
    };
    assert!(introspect(&tokens[0]).await);
    assert!(!introspect("not.a-token").await);
    let (status, _, _) = server
        .post(
            &mtls,
            &server.https_url("/oauth2/revoke"),
            &[("token", &tokens[1]), ("client_id", "svc")],
            &[],
        )
        .await;
    assert_eq!(status, 200);
    assert!(!introspect(&tokens[1]).await);

    let m = scrape(&server).await;
    let tokens_issued = m.get(
        "certbound_tokens_issued_total",
        &[("grant", "client_credentials"), ("client", "svc")],
    );
    assert_eq!(tokens_issued, 3.0);
    let requests = |endpoint, status| {
        m.get(
            "certbound_http_requests_total",
            &[("endpoint", endpoint), ("status", status)],
        )
    };
    assert_eq!(requests("token", "200"), 3.0);
    assert_eq!(requests("token", "401"), 3.0);
    assert_eq!(requests("introspect", "200"), 3.0);
    assert_eq!(requests("introspect", "401"), 1.0);
    assert_eq!(requests("revoke", "200"), 1.0);
    assert_eq!(
        m.get(
            "certbound_http_request_duration_seconds_count",
            &[("endpoint", "token")]
        ),
        6.0
    );
    for reason in [
        "no_certificate",
        "unknown_client",
        "untrusted_proxy_header",
        "bad_secret",
    ] {
        assert_eq!(
            m.get(
                "certbound_client_auth_failures_total",
                &[("reason", reason)]
            ),
            1.0,
            "{reason}"
        );
    }
    let introspections = |result| m.get("certbound_introspections_total", &[("result", result)]);
    assert_eq!(introspections("active"), 1.0);
    assert_eq!(introspections("malformed"), 1.0);
    assert_eq!(introspections("revoked"), 1.0);
    assert_eq!(
        m.get("certbound_revocations_total", &[("kind", "jti")]),
        1.0
    );
    assert_eq!(m.get("certbound_revocation_entries", &[]), 1.0);
    assert_eq!(
        m.get("certbound_revocation_file_bytes", &[]),
        std::fs::metadata(setup.revocations()).unwrap().len() as f64
    );
    assert_eq!(m.get("certbound_revocation_batch_records_count", &[]), 1.0);
    assert_eq!(m.get("certbound_revocation_batch_records_sum", &[]), 1.0);
    assert_eq!(m.get("certbound_revocation_commit_seconds_count", &[]), 1.0);
    assert!(m.get("certbound_open_connections", &[]) >= 1.0);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(m.get("certbound_build_info", &[("version", version)]), 1.0);

    // A repeated introspection is answered from the token cache.
    let cache = |m: &Scrape, result| m.get("certbound_token_cache_total", &[("result", result)]);
    assert!(introspect(&tokens[0]).await);
    let after = scrape(&server).await;
    assert_eq!(cache(&after, "hit") - cache(&m, "hit"), 1.0);
    assert_eq!(cache(&after, "miss"), cache(&m, "miss"));
    assert_eq!(
        after.get(
            "certbound_http_requests_total",
            &[("endpoint", "metrics"), ("status", "200")]
        ),
        1.0
    );

    // Reloads, good and bad.
    let hup = || {
        let ok = std::process::Command::new("kill")
            .args(["-HUP", &server.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    };
    hup();
    let seen = server.wait_for_log("configuration reloaded", 0).await;
    let config = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(&setup.config, format!("{config}\nnot toml at all\n")).unwrap();
    hup();
    server
        .wait_for_log("configuration not reloaded", seen)
        .await;
    std::fs::write(&setup.config, config).unwrap();
    let m = scrape(&server).await;
    assert_eq!(m.get("certbound_reloads_total", &[("result", "ok")]), 1.0);
    assert_eq!(
        m.get("certbound_reloads_total", &[("result", "failed")]),
        1.0
    );

    // Not on the public listeners.
    let resp = anonymous
        .get(server.https_url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // The log: one JSON object per line; an access line per request with
    // the client when known; refusals with their reason; nothing secret.
    let log = format!("{}{}", server.startup_log(), server.log());
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let access: Vec<&Value> = lines
        .iter()
        .filter(|l| l["target"] == "certbound::access")
        .collect();
    let issued = access
        .iter()
        .filter(|l| l["path"] == "/oauth2/token" && l["status"] == 200)
        .collect::<Vec<_>>();
    assert_eq!(issued.len(), 3, "{log}");
    for line in &issued {
        assert_eq!(line["method"], "POST");
        assert_eq!(line["client_id"], "svc");
        assert!(line["duration_us"].is_u64(), "{line}");
        assert!(line["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    }
    let refused: Vec<&str> = lines
        .iter()
        .filter(|l| l["message"] == "client authentication refused")
        .map(|l| l["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        refused,
        [
            "no_certificate",
            "unknown_client",
            "untrusted_proxy_header",
            "bad_secret"
        ]
    );
    let cert_body = &pem["-----BEGIN CERTIFICATE-----".len()..][..60];
    for secret in tokens.iter().map(String::as_str).chain([
        "wrong-guess-7431",
        "cnM6c2VjcmV0",
        "BEGIN CERTIFICATE",
        cert_body,
    ]) {
        assert!(!log.contains(secret), "{secret} is in the log");
    }
    assert!(!log.contains("Some("), "Rust debug formatting in the log");
}

#[tokio::test]
async fn health_and_readiness_on_every_listener_and_a_list_that_cannot_be_written() {
    let (setup, id) = setup();
    let server = ChildServer::spawn(&setup).unwrap();
    let admin = server.admin.unwrap();
    let client = server.client(None);
    let http = server.http.unwrap();
    let urls = [
        server.https_url(""),
        format!("http://{http}"),
        format!("http://{admin}"),
    ];
    let get = async |url: String| {
        let resp = client.get(&url).send().await.unwrap();
        let status = resp.status().as_u16();
        assert_eq!(resp.headers()["cache-control"], "no-store", "{url}");
        (status, resp.json::<Value>().await.unwrap())
    };
    for base in &urls {
        assert_eq!(
            get(format!("{base}/healthz")).await,
            (200, serde_json::json!({"status": "ok"}))
        );
        let (status, body) = get(format!("{base}/readyz")).await;
        assert_eq!(
            (status, &body["status"]),
            (200, &Value::from("ready")),
            "{body}"
        );
    }
    // The list file is gone: a revocation fails, and readiness says why
    // until the file is back (then without any request writing to it).
    let token = server.token(&id, "svc").await;
    let list = setup.revocations();
    let aside = list.with_extension("aside");
    std::fs::rename(&list, &aside).unwrap();
    let (status, _, _) = server
        .post(
            &server.client(Some(&id)),
            &server.https_url("/oauth2/revoke"),
            &[("token", &token), ("client_id", "svc")],
            &[],
        )
        .await;
    assert_eq!(status, 503);
    for base in &urls {
        let (status, body) = get(format!("{base}/readyz")).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["status"], "unavailable");
        assert_eq!(
            body["reasons"][0],
            "the revocation list file cannot be written"
        );
    }
    std::fs::rename(&aside, &list).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, body) = get(format!("http://{admin}/readyz")).await;
        if status == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still {body}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    server.wait_for_log("writable again", 0).await;
}
