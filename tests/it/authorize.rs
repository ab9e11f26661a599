//! The authorization-code flow over real HTTPS: the authorize endpoint's
//! pages and refusals, login, consent, and code redemption with mTLS.

use certbound::oauth::authorize::{Asked, CodeClaims};
use certbound::seal::Purpose;

use crate::browser::*;
use crate::common::{TestServer, jwt_part};

async fn server() -> TestServer {
    TestServer::start(&config("")).await
}

#[tokio::test]
async fn code_flow_issues_bound_tokens_id_token_and_userinfo() {
    let server = server().await;
    let mut browser = Browser::new(&server);
    let login = browser.authorize(&params(&[])).await;
    assert_eq!(login.status, 200);
    assert!(
        login.body.contains("Web &lt;App&gt;"),
        "client name escaped"
    );
    assert_eq!(login.headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(login.headers["x-frame-options"], "DENY");
    assert!(browser.cookies.contains_key("certbound_csrf"));
    let consent = browser.login(&login, "alice@example.com", PASSWORD).await;
    assert_eq!(consent.status, 200);
    let session_cookie = consent
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("certbound_session="))
        .expect("session cookie");
    for attr in ["HttpOnly", "Secure", "SameSite=Lax"] {
        assert!(session_cookie.contains(attr), "{session_cookie}");
    }
    for scope in ["openid", "profile", "email", "read"] {
        assert!(consent.body.contains(scope));
    }
    let done = browser.decide(&consent, "approve_once").await;
    assert_eq!(done.status, 303);
    assert!(done.location().starts_with(REDIRECT));
    assert_eq!(done.param("state").as_deref(), Some("st-123"));
    assert_eq!(done.param("iss").as_deref(), Some("https://certbound.test"));
    let code = done.param("code").unwrap();

    let web = identity(&server.pki, "web");
    let (status, body) = redeem(&server, &web, "web", &code, &[]).await;
    assert_eq!(status, 200, "{body}");
    let access = body["access_token"].as_str().unwrap();
    let refresh = body["refresh_token"].as_str().unwrap();
    let id_token = body["id_token"].as_str().unwrap();
    assert_eq!(body["scope"], "openid profile email read");
    assert_eq!(body["token_type"], "Bearer");

    let at = jwt_part(access, 1);
    assert_eq!(at["sub"], "alice@example.com");
    assert_eq!(at["cnf"]["x5t#S256"], web.thumbprint());
    let id_header = jwt_part(id_token, 0);
    let id = jwt_part(id_token, 1);
    assert_eq!(id_header["alg"], "ES256");
    assert_eq!(id["iss"], "https://certbound.test");
    assert_eq!(id["sub"], "alice@example.com");
    assert_eq!(
        (id["aud"].as_str(), id["azp"].as_str()),
        (Some("web"), Some("web"))
    );
    assert_eq!(id["nonce"], "n-456");
    assert_eq!(id["at_hash"], half_sha256(access));
    assert_eq!(id["c_hash"], half_sha256(&code));
    assert_eq!(id["amr"], serde_json::json!(["pwd"]));
    assert!(id["sid"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(id["auth_time"].as_u64().unwrap() <= id["iat"].as_u64().unwrap());
    assert!(id["exp"].as_u64().unwrap() > id["iat"].as_u64().unwrap());
    // The ID token verifies with the published JWKS (jsonwebtoken, ES256).
    crate::common::verify_with_jwks(&server, id_token, "web").await;

    // Introspection: the seed's fields, username for user tokens.
    let i = introspect(&server, &server.pki, access).await;
    assert_eq!(i["active"], true);
    assert_eq!(i["username"], "alice@example.com@carbon.super");
    assert_eq!(i["token_type"], "Bearer");
    let r = introspect(&server, &server.pki, refresh).await;
    assert_eq!(r["active"], true, "{r}");
    assert_eq!(r["token_type"], "Refresh");
    assert_eq!(r["username"], "alice@example.com@carbon.super");
    assert_eq!(r["client_id"], "web");
    assert_eq!(r["cnf"]["x5t#S256"], web.thumbprint());

    // UserInfo with the same certificate, refused with another one.
    let userinfo = |id: Option<&crate::common::Identity>| {
        let client = server.client(id);
        let url = server.https_url("/oauth2/userinfo");
        let access = access.to_string();
        async move {
            let resp = client.get(url).bearer_auth(access).send().await.unwrap();
            let status = resp.status().as_u16();
            let www = resp
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_string());
            (status, www, resp.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, _, info) = userinfo(Some(&web)).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(
        info,
        serde_json::json!({
            "sub": "alice@example.com", "name": "Alice Example", "given_name": "Alice",
            "family_name": "Example", "email": "alice@example.com", "email_verified": true
        })
    );
    let (status, www, body) = userinfo(Some(&identity(&server.pki, "web"))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token"))
    );
    assert!(www.unwrap().contains("invalid_token"));
    let (status, _, _) = userinfo(None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn untrusted_client_or_redirect_is_shown_never_redirected() {
    let server = server().await;
    let mut browser = Browser::new(&server);
    let cases: &[&[(&str, &str)]] = &[
        &[("client_id", "nobody")],
        &[("client_id", "")],
        &[("client_id", "rs")], // may not use the code grant
        &[("redirect_uri", "https://evil.test/cb")],
        &[("redirect_uri", "https://app.test/cb/")],
        &[("redirect_uri", "https://app.test/cb?x=1")],
        &[("redirect_uri", "https://app.test/c")],
        &[("redirect_uri", "")], // two registered: must be sent
    ];
    for extra in cases {
        let page = browser.authorize(&params(extra)).await;
        assert_eq!(page.status, 400, "{extra:?}: {}", page.body);
        assert!(page.headers.get("location").is_none(), "{extra:?}");
        assert!(page.body.contains("<h1>"), "an HTML page");
    }
    // A repeated parameter is refused before anything is trusted.
    let page = browser
        .get("/oauth2/authorize?client_id=web&client_id=other&response_type=code")
        .await;
    assert_eq!(page.status, 400);
    assert!(page.headers.get("location").is_none());
    // Client `other` has one redirect URI: it may be left out.
    let page = browser
        .authorize(&params(&[
            ("client_id", "other"),
            ("redirect_uri", ""),
            ("scope", "openid"),
        ]))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
}

#[tokio::test]
async fn later_errors_are_redirected_with_state_and_iss() {
    let server = server().await;
    let mut browser = Browser::new(&server);
    // Finding 5: thousands of scope tokens are refused, in linear time.
    let huge: String = (0..5000)
        .map(|i| format!("t{}", i % 40))
        .collect::<Vec<_>>()
        .join(" ");
    let cases: &[(&[(&str, &str)], &str)] = &[
        // Finding 11: no scope, or the introspection scope, for a user.
        (&[("scope", "")], "invalid_scope"),
        (&[("scope", "openid introspect")], "invalid_scope"),
        (&[("scope", &huge)], "invalid_scope"),
        (
            &[("code_challenge", ""), ("code_challenge_method", "")],
            "invalid_request",
        ),
        (&[("code_challenge_method", "plain")], "invalid_request"),
        (&[("code_challenge_method", "")], "invalid_request"),
        (&[("code_challenge_method", "S512")], "invalid_request"),
        (&[("code_challenge", "too-short")], "invalid_request"),
        (&[("response_type", "token")], "unsupported_response_type"),
        (&[("response_type", "")], "invalid_request"),
        (&[("scope", "openid admin")], "invalid_scope"),
        (&[("prompt", "none")], "login_required"),
        (&[("prompt", "none login")], "invalid_request"),
        (&[("response_mode", "fragment")], "invalid_request"),
        (&[("request", "eyJ")], "request_not_supported"),
    ];
    for (extra, error) in cases {
        let page = browser.authorize(&params(extra)).await;
        assert_eq!(page.status, 303, "{extra:?}: {}", page.body);
        assert!(page.location().starts_with(REDIRECT));
        assert_eq!(page.param("error").as_deref(), Some(*error), "{extra:?}");
        assert_eq!(page.param("state").as_deref(), Some("st-123"));
        assert_eq!(page.param("iss").as_deref(), Some("https://certbound.test"));
        assert!(page.param("code").is_none());
    }
}

#[tokio::test]
async fn login_refusals_csrf_deny_and_throttling() {
    let server = server().await;
    let mut browser = Browser::new(&server);
    let login = browser.authorize(&params(&[])).await;

    // Wrong password and unknown user: the same answer.
    let wrong = browser.login(&login, "alice@example.com", "nope").await;
    let unknown = browser.login(&login, "mallory", PASSWORD).await;
    for page in [&wrong, &unknown] {
        assert_eq!(page.status, 200);
        assert!(page.body.contains("Invalid username or password."));
        assert!(!browser.cookies.contains_key("certbound_session"));
    }

    // CSRF: field missing, field differing from the cookie, cookie missing.
    let (request, csrf) = (login.hidden("request"), login.hidden("csrf"));
    let base = |csrf: &'static str| {
        vec![
            ("step", "login"),
            ("username", "alice@example.com"),
            ("password", PASSWORD),
            ("csrf", csrf),
        ]
    };
    let mut missing = base("");
    missing.retain(|(k, _)| *k != "csrf");
    missing.push(("request", &request));
    assert_eq!(browser.post(&missing).await.status, 403);
    let mut forged = base("AAAAAAAAAAAAAAAAAAAAAA");
    forged.push(("request", &request));
    assert_eq!(browser.post(&forged).await.status, 403);
    let saved = browser.cookies.remove("certbound_csrf").unwrap();
    let mut no_cookie = base("");
    no_cookie.retain(|(k, _)| *k != "csrf");
    no_cookie.extend([("csrf", csrf.as_str()), ("request", request.as_str())]);
    assert_eq!(browser.post(&no_cookie).await.status, 403);
    browser.cookies.insert("certbound_csrf".into(), saved);
    // A forged or missing pending request.
    let page = browser
        .post(&[("step", "login"), ("csrf", &csrf), ("request", "forged")])
        .await;
    assert_eq!(page.status, 400);
    // Not a form.
    let resp = server
        .client(None)
        .post(server.https_url("/oauth2/authorize"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);

    // Deny.
    let consent = browser.login(&login, "alice@example.com", PASSWORD).await;
    let denied = browser.decide(&consent, "deny").await;
    assert_eq!(denied.status, 303);
    assert_eq!(denied.param("error").as_deref(), Some("access_denied"));
    assert_eq!(denied.param("state").as_deref(), Some("st-123"));
    assert!(denied.param("code").is_none());

    // Throttling: after 5 failures for bob, even the right password waits.
    let mut other = Browser::new(&server);
    let page = other.authorize(&params(&[])).await;
    for _ in 0..5 {
        assert_eq!(other.login(&page, "bob", "guess").await.status, 200);
    }
    let throttled = other.login(&page, "bob", PASSWORD).await;
    assert_eq!(throttled.status, 429);
    assert!(throttled.headers.contains_key("retry-after"));
    assert!(!other.cookies.contains_key("certbound_session"));
    // alice is not affected.
    let ok = other.login(&page, "alice@example.com", PASSWORD).await;
    assert_eq!(ok.status, 200);
    assert!(ok.body.contains("approve-once"));
}

#[tokio::test]
async fn approve_always_skips_consent_until_prompt_consent() {
    let server = server().await;
    let mut browser = Browser::new(&server);
    let login = browser.authorize(&params(&[])).await;
    let consent = browser.login(&login, "alice@example.com", PASSWORD).await;
    let done = browser.decide(&consent, "approve_always").await;
    assert_eq!(done.status, 303);
    assert!(done.param("code").is_some());
    // Same scopes again: straight back with a code, no page.
    let again = browser.authorize(&params(&[("state", "two")])).await;
    assert_eq!(again.status, 303, "{}", again.body);
    assert!(again.param("code").is_some());
    assert_eq!(again.param("state").as_deref(), Some("two"));
    // prompt=none works now too.
    let silent = browser.authorize(&params(&[("prompt", "none")])).await;
    assert!(silent.param("code").is_some());
    // More scope than approved: asked again.
    let more = browser
        .authorize(&params(&[("scope", "openid profile email read write")]))
        .await;
    assert_eq!(more.status, 200);
    assert!(more.body.contains("approve-once"));
    // prompt=consent: asked again; prompt=login: the login form.
    let asked = browser.authorize(&params(&[("prompt", "consent")])).await;
    assert!(asked.body.contains("approve-once"));
    let relogin = browser.authorize(&params(&[("prompt", "login")])).await;
    assert!(relogin.body.contains("id=\"password\""));
    // Another user in the same browser is asked.
    let mut fresh = Browser::new(&server);
    let page = fresh.authorize(&params(&[])).await;
    let bob = fresh.login(&page, "bob", PASSWORD).await;
    assert!(bob.body.contains("approve-once"));
}

#[tokio::test]
async fn code_refusals() {
    let server = server().await;
    let web = identity(&server.pki, "web");
    let other = identity(&server.pki, "other");
    let mut browser = Browser::new(&server);
    let code = code_for(&mut browser, &[]).await.param("code").unwrap();

    // Checked before it is spent: none of these use the code up.
    let refusals: &[(&[(&str, &str)], &str)] = &[
        (&[("code_verifier", "")], "invalid_grant"),
        (&[("code_verifier", &"x".repeat(43))], "invalid_grant"),
        (
            &[("redirect_uri", "https://app.test/other")],
            "invalid_grant",
        ),
        (&[("redirect_uri", "")], "invalid_grant"),
        (&[("code", "forged")], "invalid_grant"),
        (&[("code", "")], "invalid_request"),
    ];
    for (extra, error) in refusals {
        let (status, body) = redeem(&server, &web, "web", &code, extra).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some(*error)),
            "{extra:?}"
        );
    }
    // Another client, and a certificate that is not the client's.
    let (status, body) = redeem(&server, &other, "other", &code, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, body) = redeem(&server, &other, "web", &code, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );

    // First redemption works; the replay is refused and revokes the family.
    let (status, first) = redeem(&server, &web, "web", &code, &[]).await;
    assert_eq!(status, 200, "{first}");
    let access = first["access_token"].as_str().unwrap();
    let refresh_token = first["refresh_token"].as_str().unwrap();
    assert_eq!(
        introspect(&server, &server.pki, access).await["active"],
        true
    );
    let (status, body) = redeem(&server, &web, "web", &code, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(
        introspect(&server, &server.pki, access).await["active"],
        false
    );
    assert_eq!(
        introspect(&server, &server.pki, refresh_token).await["active"],
        false
    );
    let (status, body) = refresh(&server, &web, "web", refresh_token, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    // An expired code, sealed with the server's own key.
    let now = certbound::keys::unix_now();
    let expired = server
        .settings()
        .sealer
        .seal(
            Purpose::Code,
            &CodeClaims {
                id: "expired-code-id".into(),
                asked: Asked {
                    client_id: "web".into(),
                    redirect_uri: REDIRECT.into(),
                    redirect_given: true,
                    scope: "openid".into(),
                    nonce: None,
                    code_challenge: Some(CHALLENGE.into()),
                },
                username: "alice@example.com".into(),
                auth_time: now - 100,
                sid: "s".into(),
                expires: now - 1,
            },
        )
        .unwrap();
    let (status, body) = redeem(&server, &web, "web", &expired, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
}

#[tokio::test]
async fn client_without_pkce_requirement_and_no_openid() {
    let extra = format!(
        "{}\n[[clients]]\nclient_id = \"legacy\"\ntoken_endpoint_auth_method = \"tls_client_auth\"\n\
         tls_client_auth_subject_dn = \"CN=legacy\"\ngrant_types = [\"authorization_code\"]\n\
         redirect_uris = [\"{REDIRECT}\"]\nscope = \"read\"\nrequire_pkce = false\n",
        config("")
    );
    let server = TestServer::start(&extra).await;
    let mut browser = Browser::new(&server);
    let page = code_for(
        &mut browser,
        &[
            ("client_id", "legacy"),
            ("scope", "read"),
            ("code_challenge", ""),
            ("code_challenge_method", ""),
        ],
    )
    .await;
    let code = page.param("code").unwrap();
    let legacy = identity(&server.pki, "legacy");
    let (status, body) = redeem(&server, &legacy, "legacy", &code, &[("code_verifier", "")]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("id_token").is_none(), "no openid: no id_token");
    assert!(
        body.get("refresh_token").is_none(),
        "no refresh_token grant"
    );
}

#[tokio::test]
async fn a_consent_page_approves_only_for_the_user_it_was_shown_to() {
    let server = server().await;
    let mut browser = Browser::new(&server);
    let login = browser.authorize(&params(&[])).await;
    let alice_page = browser.login(&login, "alice@example.com", PASSWORD).await;
    assert!(alice_page.body.contains("alice@example.com"));
    // bob signs in in another tab of the same browser.
    let relogin = browser.authorize(&params(&[("prompt", "login")])).await;
    let bob_page = browser.login(&relogin, "bob", PASSWORD).await;
    assert!(bob_page.body.contains("approve-once"));
    // alice's page no longer approves anything: it asks to sign in.
    let stale = browser.decide(&alice_page, "approve_once").await;
    assert_eq!(stale.status, 200);
    assert!(stale.body.contains("id=\"password\""), "{}", stale.body);
    // An oversized form is refused with a page, and the server keeps serving.
    let big = "x".repeat(8192);
    let page = browser.post(&[("step", "login"), ("request", &big)]).await;
    assert_eq!(page.status, 413);
    let done = browser.decide(&bob_page, "approve_once").await;
    assert_eq!(done.status, 303);
}
