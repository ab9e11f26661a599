//! certbound-verify's example resource servers against the real server,
//! over real sockets: the axum one terminating TLS itself, both behind
//! real nginx, following a key rotation, riding out the JWKS going down;
//! and the introspection mode (revocation, and failing closed).

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use certbound_verify::access::{Expect, Extra, Failure};
use certbound_verify::client::HttpOptions;
use certbound_verify::introspection::{CallerAuth, Introspection};
use certbound_verify::jwks::Jwks;
use certbound_verify::verifier::{Keys, Verifier};
use rcgen::DnType;
use serde_json::{Value, json};

use crate::common::rs::{ExampleRs, Forwarder, Nginx, free_port};
use crate::common::{
    Api, ChildServer, Identity, Setup, TestServer, access_header, forge, jwt_part,
};

const CONFIG: &str = r#"
[[clients]]
client_id = "svc"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=svc"
scope = "read write"
introspection = true
[[clients]]
client_id = "other"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=other"
scope = "read"
"#;

const ISSUER: &str = "https://certbound.test";

/// A token of `client_id` for `scope`, over mTLS.
async fn token_for(api: &Api, id: &Identity, client_id: &str, scope: &str) -> String {
    let (status, body, _) = api
        .post(
            &api.client(Some(id)),
            &api.https_url("/oauth2/token"),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("scope", scope),
            ],
            &[],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

/// GET `url` as `id` (or with no certificate) with `token`; the status,
/// `WWW-Authenticate` and body.
async fn get(
    api: &Api,
    id: Option<&Identity>,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let mut req = api.client(id).get(url);
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let www = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, www, resp.text().await.unwrap())
}

/// Tokens that must all be refused with 401 `invalid_token`, made from a
/// good one: expired, another audience, tampered, `alg: none`, HS256
/// keyed with the server's public key (`public`).
fn refused_tokens(server: &TestServer, good: &str, public: &str) -> Vec<(&'static str, String)> {
    let keys = &server.settings().keys;
    let header = access_header(keys);
    let claims = jwt_part(good, 1);
    let with = |k: &str, v: Value| {
        let mut c = claims.clone();
        c[k] = v;
        forge(keys, &header, &c)
    };
    let now = claims["iat"].as_u64().unwrap();
    let parts: Vec<&str> = good.split('.').collect();
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let mut tampered = claims.clone();
    tampered["scope"] = json!("read write admin");
    let none_header = json!({"alg": "none", "kid": header["kid"], "typ": "at+jwt"});
    let hs_header = json!({"alg": "HS256", "kid": header["kid"], "typ": "at+jwt"});
    let hs_input = format!("{}.{}", b64(&hs_header), parts[1]);
    let hs_sig = jsonwebtoken::crypto::sign(
        hs_input.as_bytes(),
        &jsonwebtoken::EncodingKey::from_secret(public.as_bytes()),
        jsonwebtoken::Algorithm::HS256,
    )
    .unwrap();
    vec![
        ("expired", with("exp", json!(now - 120))),
        (
            "another audience",
            with("aud", json!("https://elsewhere.test")),
        ),
        (
            "tampered",
            format!("{}.{}.{}", parts[0], b64(&tampered), parts[2]),
        ),
        ("alg none", format!("{}.{}.", b64(&none_header), parts[1])),
        ("HS256 with the public key", format!("{hs_input}.{hs_sig}")),
    ]
}

/// The server's current public key as its JWKS publishes it (what an
/// attacker has, to key an HMAC with).
async fn public_jwk(server: &TestServer) -> String {
    let jwks: Value = server.get_json("/oauth2/jwks").await;
    jwks["keys"][0].to_string()
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn the_axum_example_accepts_a_token_only_with_its_certificate() {
    let server = TestServer::start(CONFIG).await;
    let svc = server.pki.client(&[(DnType::CommonName, "svc")], vec![]);
    let other = server.pki.client(&[(DnType::CommonName, "other")], vec![]);
    let files = tempfile::tempdir().unwrap();
    let tls = server.pki.server();
    let jwks = Forwarder::start(server.https_url("/oauth2/jwks"), server.client(None)).await;
    let rs = ExampleRs::spawn(
        "axum_resource_server",
        &[
            ("RS_ISSUER", ISSUER),
            ("RS_JWKS", &jwks.url),
            ("RS_TLS_CERT", &write(files.path(), "rs.crt", &tls.cert_pem)),
            ("RS_TLS_KEY", &write(files.path(), "rs.key", &tls.key_pem)),
        ],
    );
    let orders = rs.url("/orders");
    let good = token_for(&server, &svc, "svc", "read write").await;

    let (status, _, body) = get(&server, Some(&svc), &orders, Some(&good), &[]).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "orders of svc (client svc)\n")
    );

    // Another client's certificate, or none: the token is bound to svc's.
    for id in [Some(&other), None] {
        let (status, www, body) = get(&server, id, &orders, Some(&good), &[]).await;
        assert_eq!(status, 401, "{body}");
        assert!(
            www.starts_with("Bearer realm=\"api\", error=\"invalid_token\""),
            "{www}"
        );
        assert!(
            !body.contains("certificate;") && !body.contains("bound to"),
            "{body}"
        );
    }
    let pem = public_jwk(&server).await;
    for (what, token) in refused_tokens(&server, &good, &pem) {
        let (status, www, body) = get(&server, Some(&svc), &orders, Some(&token), &[]).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert!(www.contains("error=\"invalid_token\""), "{what}: {www}");
    }
    // A token without the route's scope: 403 naming it.
    let write_only = token_for(&server, &svc, "svc", "write").await;
    let (status, www, body) = get(&server, Some(&svc), &orders, Some(&write_only), &[]).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        www.contains("error=\"insufficient_scope\"") && www.ends_with("scope=\"read\""),
        "{www}"
    );
    // No token: 401 without an error code; a malformed header: 400.
    let (status, www, _) = get(&server, Some(&svc), &orders, None, &[]).await;
    assert_eq!((status, www.as_str()), (401, "Bearer realm=\"api\""));
    let (status, www, _) = get(
        &server,
        Some(&svc),
        &orders,
        None,
        &[("authorization", "Bearer a b")],
    )
    .await;
    assert_eq!(status, 400);
    assert!(www.contains("error=\"invalid_request\""), "{www}");
    // The unprotected route.
    let (status, _, body) = get(&server, None, &rs.url("/health"), None, &[]).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    // The log says which check failed; never the token.
    let log = rs.log();
    assert!(
        log.contains("expired") && log.contains("another client certificate"),
        "{log}"
    );
    assert!(!log.contains(&good), "a token in the log");
}

#[tokio::test]
async fn behind_nginx_only_the_proxys_header_counts() {
    let server = TestServer::start(CONFIG).await;
    let svc = server.pki.client(&[(DnType::CommonName, "svc")], vec![]);
    let other = server.pki.client(&[(DnType::CommonName, "other")], vec![]);
    let dir = tempfile::tempdir().unwrap();
    let tls = server.pki.server();
    let jwks = Forwarder::start(server.https_url("/oauth2/jwks"), server.client(None)).await;
    // nginx reaches the resource servers from 127.0.0.2, the one address
    // they trust; clients reach them from 127.0.0.1.
    let env = |extra: &[(&'static str, String)]| {
        let mut env = vec![
            ("RS_ISSUER", ISSUER.to_string()),
            ("RS_JWKS", jwks.url.clone()),
            ("RS_TRUSTED_PROXY", "127.0.0.2/32".to_string()),
        ];
        env.extend_from_slice(extra);
        env
    };
    let spawn = |name: &str, env: Vec<(&str, String)>| {
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        ExampleRs::spawn(name, &pairs)
    };
    let axum_rs = spawn(
        "axum_resource_server",
        env(&[("RS_TLS_CERT", String::new())]),
    );
    let poem_rs = spawn("poem_resource_server", env(&[]));
    let cert = write(dir.path(), "nginx.crt", &tls.cert_pem);
    let key = write(dir.path(), "nginx.key", &tls.key_pem);
    let ports = [free_port(), free_port()];
    let block = |port: u16, upstream: &str| {
        format!(
            "server {{\n listen 127.0.0.1:{port} ssl;\n ssl_certificate {cert};\n ssl_certificate_key {key};\n\
             ssl_verify_client optional_no_ca;\n location / {{\n  proxy_pass {upstream};\n  proxy_bind 127.0.0.2;\n\
             proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;\n\
             proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n }}\n}}\n"
        )
    };
    let servers = block(ports[0], &axum_rs.url) + &block(ports[1], &poem_rs.url);
    let nginx = Nginx::start(dir.path(), &servers, &ports).await;

    let good = token_for(&server, &svc, "svc", "read").await;
    let svc_header = certbound_verify::header::encode::url_encoded_pem(&svc.cert_der);
    for (port, rs) in [(ports[0], &axum_rs), (ports[1], &poem_rs)] {
        let orders = format!("https://127.0.0.1:{port}/orders");
        let (status, _, body) = get(&server, Some(&svc), &orders, Some(&good), &[]).await;
        assert_eq!(status, 200, "{body}\n{}\n{}", rs.log(), nginx.error_log());
        assert_eq!(body, "orders of svc (client svc)\n");
        for id in [Some(&other), None] {
            let (status, _, body) = get(&server, id, &orders, Some(&good), &[]).await;
            assert_eq!(status, 401, "{body}");
        }
        // A header the client sets is replaced by nginx's (empty: no
        // certificate) ...
        let forged = [("x-ssl-client-cert", svc_header.as_str())];
        let (status, _, _) = get(&server, None, &orders, Some(&good), &forged).await;
        assert_eq!(status, 401, "nginx passed a client's header on");
        // ... and one sent to the resource server directly is ignored.
        let (status, _, _) = get(&server, None, &rs.url("/orders"), Some(&good), &forged).await;
        assert_eq!(status, 401, "a header believed from a client");
    }
}

/// A resource server follows a key rotation with no restart; made-up
/// `kid`s cost the server at most one JWKS request per cooldown; with
/// the JWKS down, cached keys keep working and a cold start fails closed.
#[tokio::test]
async fn key_rotation_a_kid_flood_and_the_jwks_down() {
    let setup = Setup::new(CONFIG, "[]", certbound::keys::Alg::ES256);
    let text = std::fs::read_to_string(&setup.config).unwrap();
    let text = text.replacen(
        "[revocation]",
        "publish_before = 2\npoll_interval = 1\n[revocation]",
        1,
    );
    std::fs::write(&setup.config, text).unwrap();
    let svc = setup.pki.client(&[(DnType::CommonName, "svc")], vec![]);
    let server = ChildServer::spawn(&setup).unwrap();
    let jwks = Forwarder::start(server.https_url("/oauth2/jwks"), server.client(None)).await;
    let files = tempfile::tempdir().unwrap();
    let tls = setup.pki.server();
    let rs_env = [
        ("RS_ISSUER", ISSUER.to_string()),
        ("RS_JWKS", jwks.url.clone()),
        ("RS_TLS_CERT", write(files.path(), "rs.crt", &tls.cert_pem)),
        ("RS_TLS_KEY", write(files.path(), "rs.key", &tls.key_pem)),
    ];
    let pairs: Vec<(&str, &str)> = rs_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let rs = ExampleRs::spawn("axum_resource_server", &pairs);
    let orders = rs.url("/orders");
    let status = |token: String| {
        let (server, svc, orders) = (&server, &svc, orders.clone());
        async move { get(server, Some(svc), &orders, Some(&token), &[]).await.0 }
    };

    let old = token_for(&server, &svc, "svc", "read").await;
    assert_eq!(status(old.clone()).await, 200);
    let fetched = jwks.count();
    assert_eq!(fetched, 1, "one fetch at start");

    // Rotate; once the new key signs, its tokens pass at once: the
    // unknown kid refetches (max-age is clamped to at least 60 s, so no
    // scheduled refresh has happened).
    let config = setup.config.to_str().unwrap();
    let (ok, _, err) =
        crate::common::run_certbound(&["--config", config, "keys", "rotate", "--keep", "1"], None);
    assert!(ok, "{err}");
    crate::common::hand_to_server(setup.dir.path());
    let old_kid = jwt_part(&old, 0)["kid"].clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    let new = loop {
        let t = token_for(&server, &svc, "svc", "read").await;
        if jwt_part(&t, 0)["kid"] != old_kid {
            break t;
        }
        assert!(Instant::now() < deadline, "the new key never signed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(status(new.clone()).await, 200, "{}", rs.log());
    assert_eq!(jwks.count(), fetched + 1, "one refetch for the new kid");
    assert_eq!(status(old.clone()).await, 200, "the old key still verifies");

    // 200 tokens with made-up kids, at once: at most one fetch.
    let before = jwks.count();
    let claims = URL_SAFE_NO_PAD.encode(jwt_part(&new, 1).to_string());
    let floods: Vec<_> = (0..200)
        .map(|i| {
            let header = URL_SAFE_NO_PAD.encode(
                json!({"alg": "ES256", "kid": format!("made-up-{i}"), "typ": "at+jwt"}).to_string(),
            );
            status(format!("{header}.{claims}.c2ln"))
        })
        .collect();
    for answer in futures_util::future::join_all(floods).await {
        assert_eq!(answer, 401);
    }
    assert!(
        jwks.count() <= before + 1,
        "{} fetches for made-up kids",
        jwks.count() - before
    );

    // The JWKS down: the kept keys still verify.
    jwks.down.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(status(new.clone()).await, 200);
    // A cold start with it down: 503, with Retry-After, and a clear log.
    let cold = ExampleRs::spawn("axum_resource_server", &pairs);
    let resp = server
        .client(Some(&svc))
        .get(cold.url("/orders"))
        .bearer_auth(&new)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(resp.headers()["retry-after"], "5");
    let body = resp.text().await.unwrap();
    assert!(
        !body.contains("jwks") && !body.contains("127.0.0.1"),
        "{body}"
    );
    let log = cold.log();
    assert!(log.contains("JWKS fetch failed; no keys yet"), "{log}");
    // Back up: it recovers on its own.
    jwks.down.store(false, std::sync::atomic::Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let code = get(&server, Some(&svc), &cold.url("/orders"), Some(&new), &[])
            .await
            .0;
        if code == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never recovered: {code}\n{}",
            cold.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Introspection mode: a revoked token is refused within the cache
/// lifetime; with the server gone, 503 (never an answer from the cache
/// once stale).
#[tokio::test]
async fn introspection_mode_sees_revocation_and_fails_closed() {
    let server = TestServer::start(CONFIG).await;
    let svc = server.pki.client(&[(DnType::CommonName, "svc")], vec![]);
    let jwks_bytes = server.jwks_bytes().await;
    let keys = Keys::Static(std::sync::Arc::new(
        Jwks::from_json(&jwks_bytes, &[]).unwrap(),
    ));
    let http = HttpOptions {
        ca_pem: Some(server.pki.ca_pem.clone().into_bytes()),
        identity_pem: Some(format!("{}{}", svc.cert_pem, svc.key_pem).into_bytes()),
        ..HttpOptions::default()
    };
    let client = certbound_verify::client::build(&http).unwrap();
    let introspection = Introspection::new(
        server.https_url("/oauth2/introspect"),
        client,
        CallerAuth::Mtls {
            client_id: "svc".into(),
        },
    )
    .cache(Duration::from_secs(1), 100);
    let verifier =
        Verifier::new(keys, Expect::new(ISSUER, ISSUER)).with_introspection(introspection);
    let bound = svc.thumbprint();
    let check = |token: String| {
        let (verifier, bound) = (&verifier, bound.clone());
        async move {
            verifier
                .verify::<Extra>(&token, Some(&bound))
                .await
                .map(|_| ())
        }
    };

    let token = token_for(&server, &svc, "svc", "read").await;
    check(token.clone()).await.unwrap();
    let (status, body, _) = server
        .post(
            &server.client(Some(&svc)),
            &server.https_url("/oauth2/revoke"),
            &[("token", &token), ("client_id", "svc")],
            &[],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // Refused once the cached answer (1 s) is gone.
    let deadline = Instant::now() + Duration::from_millis(1500);
    loop {
        match check(token.clone()).await {
            Err(Failure::Revoked) => break,
            Ok(()) => assert!(
                Instant::now() < deadline,
                "still accepted past the cache lifetime"
            ),
            Err(other) => panic!("{other}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The server gone: a token not cached is unavailable (503), not refused.
    let fresh = token_for(&server, &svc, "svc", "read").await;
    drop(server.stop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let failure = check(fresh).await.unwrap_err();
    assert!(failure.is_unavailable(), "{failure}");
    let gate = certbound_verify::ResourceServer::new(Verifier::new(
        Keys::Static(std::sync::Arc::new(
            Jwks::from_json(&jwks_bytes, &[]).unwrap(),
        )),
        Expect::new(ISSUER, ISSUER),
    ));
    let answer = gate.answer(&failure.into());
    assert_eq!(answer.status().as_u16(), 503);
}
