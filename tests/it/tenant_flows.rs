//! A tenant's users over the authorization-code flow (WSO2 `/t/{domain}/`):
//! codes, refresh tokens and sessions of one tenant are nothing at another;
//! introspection names users as WSO2 does (fully qualified, or as the
//! client asks in `app_configured` mode); cross-tenant introspection only
//! with `introspection.allow_cross_tenant`, and never revocation.

use serde_json::Value;

use crate::browser::*;
use crate::common::{Api, TestServer, jwt_part};

const ACME: &str = "/t/acme.com";

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

#[tokio::test]
async fn app_configured_names_and_cross_tenant_introspection() {
    let server = TestServer::start(&config(
        "allow_cross_tenant = true\nsubject_identifier_format = \"app_configured\"",
    ))
    .await;
    let acme = server.under(ACME);
    let (acme_access, acme_refresh) = tokens(&server, &acme).await;
    let (default_access, _) = tokens(&server, &server).await;

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

    // Cross-tenant: the token's own tenant verifies it and names the user
    // as that tenant's client asks.
    let seen = introspect(&server, &server.pki, &acme_access).await;
    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!(seen["iss"], "https://certbound.test/t/acme.com");
    assert_eq!(seen["username"], "PRIMARY/alice@acme.com");
    let seen = introspect(&acme, &server.pki, &default_access).await;
    assert_eq!(
        (seen["active"].as_bool(), seen["username"].as_str()),
        (Some(true), Some("alice"))
    );
    let seen = introspect(&server, &server.pki, &acme_refresh).await;
    assert_eq!(seen["active"], true, "{seen}");

    // A token naming an issuer of neither tenant, or junk, is inactive.
    let forged = format!(
        "e30.{}.c2ln",
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            r#"{"iss":"https://certbound.test/t/acme.com"}"#
        )
    );
    for junk in [forged.as_str(), "a.b.c", "...", "e30.e30.e30"] {
        assert_eq!(introspect(&server, &server.pki, junk).await, inactive());
    }

    // Revocation never crosses tenants: the default tenant's web revoking
    // acme's token changes nothing.
    let web = identity(&server.pki, "web");
    let (status, _, _) = server
        .post(
            &server.client(Some(&web)),
            &server.https_url("/oauth2/revoke"),
            &[("token", &acme_access), ("client_id", "web")],
            &[],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        introspect(&acme, &server.pki, &acme_access).await["active"],
        true
    );
}

fn inactive() -> Value {
    serde_json::json!({"active": false})
}
