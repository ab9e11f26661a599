//! Revoking everything a client or a user holds, with one record each
//! (a "not before" time compared with `iat`), by `certbound revoke` and by
//! the admin listener's `POST /admin/revoke`; and `certbound revoke --jti`.
//! All of it survives a restart.

use base64::Engine;
use certbound::keys::Alg;
use serde_json::Value;

use crate::browser::*;
use crate::common::{Api, ChildServer, Identity, Setup, jwt_part, run_certbound};

const SECRET_SHA256: &str = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b";

fn setup() -> Setup {
    let extra = format!(
        r#"{}
[[clients]]
client_id = "svc"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=svc"

[[clients]]
client_id = "ops"
token_endpoint_auth_method = "client_secret_basic"
client_secret_sha256 = "{SECRET_SHA256}"

[admin]
clients = ["ops"]
"#,
        config("")
    );
    Setup::with_server("admin = \"127.0.0.1:0\"", &extra, "[]", Alg::ES256)
}

async fn user_tokens(server: &Api, web: &Identity, username: &str) -> (String, String) {
    let mut browser = Browser::new(server);
    let code = code_as(&mut browser, username, &[("scope", "openid read")])
        .await
        .param("code")
        .unwrap();
    let (status, body) = redeem(server, web, "web", &code, &[]).await;
    assert_eq!(status, 200, "{body}");
    let s = |k: &str| body[k].as_str().unwrap().to_string();
    (s("access_token"), s("refresh_token"))
}

fn active(body: &Value) -> bool {
    body["active"] == Value::Bool(true)
}

/// `certbound revoke ARGS` against the running server of `setup`.
fn revoke_cli(setup: &Setup, args: &[&str]) -> (bool, String, String) {
    let config = setup.config.display().to_string();
    let mut all = vec!["revoke", "--config", &config];
    all.extend_from_slice(args);
    run_certbound(&all, None)
}

/// Crosses into the next second: tokens minted from now on have an `iat`
/// after any revocation made before.
async fn next_second() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_nanos(
        1_000_000_000 - u64::from(now.subsec_nanos()) + 20_000_000,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_token_of_a_client_or_user_before_now_is_revoked_across_a_restart() {
    let setup = setup();
    let mut server = ChildServer::spawn(&setup).unwrap();
    let pki = &setup.pki;
    let svc = identity(pki, "svc");
    let web = identity(pki, "web");
    let svc_tokens = [
        server.token(&svc, "svc").await,
        server.token(&svc, "svc").await,
    ];
    let (alice_at, alice_rt) = user_tokens(&server, &web, "alice@example.com").await;
    let (bob_at, _) = user_tokens(&server, &web, "bob").await;

    // The CLI, through the control socket: every token of svc until now.
    let (ok, out, err) = revoke_cli(&setup, &["--client", "svc"]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("revoked every token of client svc issued at or before"),
        "{out}"
    );
    for t in &svc_tokens {
        assert!(!active(&introspect(&server, pki, t).await));
    }
    assert!(active(&introspect(&server, pki, &alice_at).await));
    next_second().await;
    let later = server.token(&svc, "svc").await;
    assert!(
        active(&introspect(&server, pki, &later).await),
        "a token after the revocation"
    );

    // The admin endpoint: every token of alice, as the admin client ops.
    let admin = server.admin.unwrap();
    let url = format!("http://{admin}/admin/revoke");
    let http = reqwest::Client::new();
    let post = async |auth: Option<&str>, form: &[(&str, &str)]| {
        let mut req = http.post(&url).form(form);
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
    };
    let ops = |secret: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("ops:{secret}"))
        )
    };
    let user = [("user", "alice@example.com")];
    let (status, body) = post(None, &user).await;
    assert_eq!(
        (status, &body["error"]),
        (401, &Value::from("invalid_client"))
    );
    let (status, _) = post(Some(&ops("wrong")), &user).await;
    assert_eq!(status, 401);
    let (status, body) = post(
        Some(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("rs:secret")
        )),
        &user,
    )
    .await;
    assert_eq!(status, 401, "a client that is not an admin client: {body}");
    let (status, body) = post(
        Some(&ops("secret")),
        &[("user", "alice@example.com"), ("client", "svc")],
    )
    .await;
    assert_eq!(
        (status, &body["error"]),
        (400, &Value::from("invalid_request")),
        "one at a time"
    );
    let (status, body) = post(Some(&ops("secret")), &user).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], "user");
    assert!(body["not_after"].is_u64(), "{body}");
    assert!(!active(&introspect(&server, pki, &alice_at).await));
    assert!(!active(&introspect(&server, pki, &alice_rt).await));
    let (status, body) = refresh(&server, &web, "web", &alice_rt, &[]).await;
    assert_eq!(
        (status, &body["error"]),
        (400, &Value::from("invalid_grant"))
    );
    let resp = server
        .client(Some(&web))
        .get(server.https_url("/oauth2/userinfo"))
        .bearer_auth(&alice_at)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(
        active(&introspect(&server, pki, &bob_at).await),
        "bob keeps his"
    );

    // One token by its jti.
    let jti = jwt_part(&bob_at, 1)["jti"].as_str().unwrap().to_string();
    let (ok, out, err) = revoke_cli(&setup, &["--jti", &jti]);
    assert!(ok, "{out}{err}");
    assert!(!active(&introspect(&server, pki, &bob_at).await));
    // Errors are clear and exit non-zero.
    let (ok, _, err) = revoke_cli(&setup, &["--client", "nobody-by-this-name"]);
    assert!(
        !ok && err.contains("no client \"nobody-by-this-name\""),
        "{err}"
    );
    let (ok, _, err) = revoke_cli(&setup, &[]);
    assert!(!ok && err.contains("--client"), "{err}");

    // A restart keeps every one of them.
    server.kill();
    let server = ChildServer::spawn(&setup).unwrap();
    for t in svc_tokens.iter().chain([&alice_at, &alice_rt, &bob_at]) {
        assert!(!active(&introspect(&server, pki, t).await));
    }
    assert!(active(&introspect(&server, pki, &later).await));
    next_second().await;
    let (fresh, _) = user_tokens(&server, &web, "alice@example.com").await;
    assert!(
        active(&introspect(&server, pki, &fresh).await),
        "alice signs in again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_revoke_all_ends_the_sessions_and_codes_made_before_it() {
    let setup = setup();
    let server = ChildServer::spawn(&setup).unwrap();
    let web = identity(&setup.pki, "web");
    let mut browser = Browser::new(&server);
    let ask = params(&[("scope", "openid read")]);
    let login = browser.authorize(&ask).await;
    let consent = browser.login(&login, "alice@example.com", PASSWORD).await;
    let code = browser
        .decide(&consent, "approve_always")
        .await
        .param("code")
        .unwrap();
    let (ok, out, err) = revoke_cli(&setup, &["--user", "alice@example.com"]);
    assert!(ok, "{out}{err}");
    // The code made before it is refused.
    let (status, body) = redeem(&server, &web, "web", &code, &[]).await;
    assert_eq!(
        (status, &body["error"]),
        (400, &Value::from("invalid_grant"))
    );
    // The session signed in before it is over: sign in again.
    next_second().await;
    let again = browser.authorize(&ask).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert!(again.body.contains("name=\"password\""), "{}", again.body);
    let signed_in = browser.login(&again, "alice@example.com", PASSWORD).await;
    let done = if signed_in.status == 303 {
        signed_in
    } else {
        browser.decide(&signed_in, "approve_once").await
    };
    let (status, body) = redeem(&server, &web, "web", &done.param("code").unwrap(), &[]).await;
    assert_eq!(status, 200, "{body}");
}
