//! A tenant's users over the authorization-code flow (WSO2 `/t/{domain}/`):
//! codes, refresh tokens and sessions of one tenant are nothing at another;
//! introspection names users as WSO2 does (fully qualified, or as the
//! client asks in `app_configured` mode); cross-tenant introspection only
//! with `introspection.allow_cross_tenant`, and never revocation.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use certbound::keys::Alg;
use serde_json::Value;

use crate::browser::*;
use crate::common::{Api, Setup, TestServer, access_header, forge, jwt_part};

const ACME: &str = "/t/acme.com";
/// SHA-256 of the client secret `secret`.
const SECRET_SHA256: &str = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b";

/// Both tenants have clients `web` and `rs` and a user `alice` (with
/// [`PASSWORD`]); acme's `web` asks for the tenant and user-store domains
/// in its users' names.
fn config(introspection: &str) -> String {
    let hash = certbound::users::hash_password(PASSWORD).unwrap();
    let tenant = |t: &str, flags: &str| {
        format!(
            r#"
[[{t}clients]]
client_id = "web"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=web"
grant_types = ["authorization_code", "refresh_token"]
redirect_uris = ["{REDIRECT}"]
scope = "openid profile email read"
{flags}
[[{t}clients]]
client_id = "rs"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=rs"
introspection = true
[[{t}users]]
username = "alice"
password_hash = "{hash}"
"#
        )
    };
    format!(
        "[introspection]\n{introspection}\n{}\n[[tenants]]\ndomain = \"acme.com\"\n{}",
        tenant("", ""),
        tenant(
            "tenants.",
            "use_tenant_domain_in_local_subject_identifier = true\n\
             use_user_store_domain_in_local_subject_identifier = true"
        )
    )
}

/// Signs alice in at `at` and approves: the code.
async fn code(at: &Api, browser: &mut Browser) -> String {
    let done = code_as(browser, "alice", &[]).await;
    assert_eq!(
        done.param("iss").as_deref(),
        Some(format!("https://certbound.test{}", at.base()).as_str())
    );
    done.param("code").unwrap()
}

/// Code, access and refresh token of alice at tenant `at`.
async fn tokens(server: &TestServer, at: &Api) -> (String, String) {
    let mut browser = Browser::new(at);
    let code = code(at, &mut browser).await;
    let web = identity(&server.pki, "web");
    let (status, body) = redeem(at, &web, "web", &code, &[]).await;
    assert_eq!(status, 200, "{body}");
    let token = |name: &str| body[name].as_str().unwrap().to_string();
    (token("access_token"), token("refresh_token"))
}

#[tokio::test]
async fn a_tenants_codes_refresh_tokens_and_sessions_stay_in_it() {
    let server = TestServer::start(&config("")).await;
    let acme = server.under(ACME);
    let web = identity(&server.pki, "web");

    // A code of acme's, redeemed at the default tenant, is refused there
    // and still good at acme.
    let mut browser = Browser::new(&acme);
    let code = code(&acme, &mut browser).await;
    let (status, body) = redeem(&server, &web, "web", &code, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, body) = redeem(&acme, &web, "web", &code, &[]).await;
    assert_eq!(status, 200, "{body}");
    let access = body["access_token"].as_str().unwrap();
    let refresh_token = body["refresh_token"].as_str().unwrap();
    assert_eq!(
        jwt_part(access, 1)["iss"],
        "https://certbound.test/t/acme.com"
    );
    assert_eq!(jwt_part(access, 1)["sub"], "alice");

    // Fully qualified names (the default format), whatever the client asks.
    let seen = introspect(&acme, &server.pki, access).await;
    assert_eq!(
        (
            seen["active"].as_bool(),
            seen["username"].as_str(),
            seen["sub"].as_str()
        ),
        (Some(true), Some("alice@acme.com"), Some("alice"))
    );
    assert_eq!(seen["aut"], "APPLICATION_USER");
    let (default_access, _) = tokens(&server, &server).await;
    let seen = introspect(&server, &server.pki, &default_access).await;
    assert_eq!(seen["username"], "alice@carbon.super");
    // Each tenant's tokens are inactive at the other's introspection.
    assert_eq!(introspect(&server, &server.pki, access).await, inactive());
    assert_eq!(
        introspect(&acme, &server.pki, &default_access).await,
        inactive()
    );

    // A refresh token of acme's is refused at the default tenant, and
    // still good at acme.
    let (status, body) = refresh(&server, &web, "web", refresh_token, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, body) = refresh(&acme, &web, "web", refresh_token, &[]).await;
    assert_eq!(status, 200, "{body}");

    // The session acme's login made is no session at the default tenant,
    // even when the cookie is sent there: the login page again.
    assert!(browser.cookies.contains_key("certbound_session"));
    let mut elsewhere = Browser::new(&server);
    elsewhere.cookies = browser.cookies.clone();
    let page = elsewhere
        .authorize(&params(&[("scope", "openid read")]))
        .await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("name=\"password\""), "{}", page.body);
    // At acme the same cookies skip the login.
    let page = browser
        .authorize(&params(&[("scope", "openid read")]))
        .await;
    assert!(!page.body.contains("name=\"password\""), "{}", page.body);
}

/// acme.com with a keys directory of its own.
async fn with_own_keys(introspection: &str) -> TestServer {
    let setup = Setup::new(&config(introspection), "[\"127.0.0.1/32\"]", Alg::ES256);
    let own = setup.dir.path().join("acme-keys");
    certbound::keys::generate_key(&own, Alg::ES256, 1).unwrap();
    certbound::keys::generate_sealing_key(&own, 0).unwrap();
    let text = std::fs::read_to_string(&setup.config).unwrap().replace(
        "domain = \"acme.com\"\n",
        &format!("domain = \"acme.com\"\nkeys_dir = \"{}\"\n", own.display()),
    );
    std::fs::write(&setup.config, text).unwrap();
    TestServer::start_setup(setup).await
}

#[tokio::test]
async fn app_configured_names_and_cross_tenant_introspection() {
    let server =
        with_own_keys("allow_cross_tenant = true\nsubject_identifier_format = \"app_configured\"")
            .await;
    let acme = server.under(ACME);
    let (acme_access, acme_refresh) = tokens(&server, &acme).await;
    let (default_access, _) = tokens(&server, &server).await;
    assert_ne!(
        jwt_part(&acme_access, 0)["kid"],
        jwt_part(&default_access, 0)["kid"]
    );

    // acme's web asks for both domains; the default tenant's web for none.
    let seen = introspect(&acme, &server.pki, &acme_access).await;
    assert_eq!(
        (seen["username"].as_str(), seen["sub"].as_str()),
        (
            Some("PRIMARY/alice@acme.com"),
            Some("PRIMARY/alice@acme.com")
        )
    );
    let seen = introspect(&acme, &server.pki, &acme_refresh).await;
    assert_eq!(seen["token_type"], "Refresh");
    assert_eq!(seen["username"], "PRIMARY/alice@acme.com");
    let seen = introspect(&server, &server.pki, &default_access).await;
    assert_eq!(
        (seen["username"].as_str(), seen["sub"].as_str()),
        (Some("alice"), Some("alice"))
    );

    // Cross-tenant: the token's own tenant verifies it (its own keys), and
    // the user is named fully qualified, in `sub` too, so that it is never
    // taken for the caller tenant's namesake.
    let seen = introspect(&server, &server.pki, &acme_access).await;
    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!(seen["iss"], "https://certbound.test/t/acme.com");
    assert_eq!(
        (seen["username"].as_str(), seen["sub"].as_str()),
        (Some("alice@acme.com"), Some("alice@acme.com"))
    );
    let seen = introspect(&acme, &server.pki, &default_access).await;
    assert_eq!(
        (seen["username"].as_str(), seen["sub"].as_str()),
        (Some("alice@carbon.super"), Some("alice@carbon.super"))
    );
    let seen = introspect(&server, &server.pki, &acme_refresh).await;
    assert_eq!(seen["active"], true, "{seen}");

    // The RFC 9701 answer to a cross-tenant question: signed by the
    // caller's tenant for the caller, holding the token's tenant's answer.
    let rs = identity(&server.pki, "rs");
    let resp = server
        .client(Some(&rs))
        .post(server.https_url("/oauth2/introspect"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/token-introspection+jwt")
        .body(format!("client_id=rs&token={acme_access}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let jwt = resp.text().await.unwrap();
    let claims = crate::common::verify_unexpiring_with_jwks(&server, &jwt, "rs").await;
    assert_eq!(claims["token_introspection"]["active"], true);
    assert_eq!(
        claims["token_introspection"]["iss"],
        "https://certbound.test/t/acme.com"
    );

    // What acme's keys did not sign is inactive, whatever it claims: the
    // default tenant's key over acme's claims, acme's token with its
    // claims changed, a token naming acme with no signature at all.
    let mut claims = jwt_part(&acme_access, 1);
    let keys = server.settings().keys.clone();
    let cross_signed = forge(&keys, &access_header(&keys), &claims);
    claims["scope"] = "openid profile email read write".into();
    let parts: Vec<&str> = acme_access.split('.').collect();
    let changed = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    let unsigned = format!(
        "e30.{}.c2ln",
        URL_SAFE_NO_PAD.encode(r#"{"iss":"https://certbound.test/t/acme.com"}"#)
    );
    for junk in [cross_signed.as_str(), &changed, &unsigned, "a.b.c", "..."] {
        assert_eq!(introspect(&server, &server.pki, junk).await, inactive());
        assert_eq!(introspect(&acme, &server.pki, junk).await, inactive());
    }

    // Revoked at acme: inactive at every tenant.
    let web = identity(&server.pki, "web");
    let revoke = |at: &Api| {
        let client = at.client(Some(&web));
        let url = at.https_url("/oauth2/revoke");
        let token = acme_access.clone();
        async move {
            client
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("client_id=web&token={token}"))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    // Revocation never crosses tenants: the default tenant's web revoking
    // acme's token changes nothing.
    assert_eq!(revoke(&server).await, 200);
    assert_eq!(
        introspect(&acme, &server.pki, &acme_access).await["active"],
        true
    );
    assert_eq!(revoke(&acme).await, 200);
    assert_eq!(
        introspect(&server, &server.pki, &acme_access).await,
        inactive()
    );
    assert_eq!(
        introspect(&acme, &server.pki, &acme_access).await,
        inactive()
    );
}

#[tokio::test]
async fn tenant_user_callers_are_known_by_their_names_form_alone() {
    let hash = certbound::users::hash_password(PASSWORD).unwrap();
    let extra = format!(
        "[login]\nmax_failures_per_user = 3\n{}\n[[tenants.users]]\nusername = \"admin\"\npassword_hash = \"{hash}\"\npermissions = [\"introspect\"]\n[[tenants.clients]]\nclient_id = \"gw@acme.com\"\ntoken_endpoint_auth_method = \"client_secret_basic\"\nclient_secret_sha256 = \"{}\"\nintrospection = true\n",
        config(""),
        SECRET_SHA256,
    );
    let server = TestServer::start(&extra).await;
    let acme = server.under(ACME);
    let (token, _) = tokens(&server, &acme).await;
    let call = |path: &'static str, user: &str, password: &str| {
        let auth = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
        let client = server.client(None);
        let url = server.https_url(path);
        let token = token.clone();
        async move {
            let resp = client
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("authorization", auth)
                .body(format!("token={token}"))
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    // admin@acme.com is acme's admin at either path.
    for path in ["/oauth2/introspect", "/t/acme.com/oauth2/introspect"] {
        let (status, body) = call(path, "admin@acme.com", PASSWORD).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert!(body.contains("\"active\":true"), "{path}: {body}");
    }
    // Nobody, a wrong password, and a name of a tenant's client (which
    // authenticates only at its own tenant's path): one answer.
    let (status, refused) = call("/oauth2/introspect", "ghost@acme.com", "x").await;
    assert_eq!(status, 401, "{refused}");
    for (user, password) in [("admin@acme.com", "wrong"), ("gw@acme.com", "secret")] {
        assert_eq!(
            call("/oauth2/introspect", user, password).await,
            (401, refused.clone()),
            "{user}"
        );
    }
    let (status, body) = call("/t/acme.com/oauth2/introspect", "gw@acme.com", "secret").await;
    assert_eq!(status, 200, "{body}");
    // Two at once as nobody: the second waits its turn, as it would for a
    // real user (no 429 tells them apart).
    let (first, second) = tokio::join!(
        call("/oauth2/introspect", "ghost2@acme.com", "y"),
        call("/oauth2/introspect", "ghost2@acme.com", "y")
    );
    assert_eq!((first.0, second.0), (401, 401), "{second:?}");

    // Failures under either spelling and path count for acme's admin:
    // after three, a further guess waits (429).
    for (path, user) in [
        ("/t/acme.com/oauth2/introspect", "admin"),
        ("/oauth2/introspect", "admin@acme.com"),
    ] {
        assert_eq!(call(path, user, "wrong2").await.0, 401, "{path} {user}");
    }
    let (status, body) = call("/t/acme.com/oauth2/introspect", "admin", "wrong3").await;
    assert_eq!(status, 429, "{body}");
}

fn inactive() -> Value {
    serde_json::json!({"active": false})
}
