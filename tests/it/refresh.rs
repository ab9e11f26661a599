//! Refresh tokens: rotation, reuse detection revoking the family, the
//! certificate binding, scope narrowing, revocation (RFC 7009) of a family.

use crate::browser::*;
use crate::common::{Identity, TestServer, jwt_part};

/// Log in, approve, redeem with `id` as client `web`.
async fn tokens(server: &TestServer, id: &Identity, scope: &str) -> serde_json::Value {
    let mut browser = Browser::new(server);
    let code = code_for(&mut browser, &[("scope", scope)])
        .await
        .param("code")
        .unwrap();
    let (status, body) = redeem(server, id, "web", &code, &[]).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn s(v: &serde_json::Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {v}"))
        .to_string()
}

#[tokio::test]
async fn rotation_and_reuse_detection() {
    let server = TestServer::start(&config("")).await;
    let web = identity(&server.pki, "web");
    let first = tokens(&server, &web, "openid profile read").await;
    let rt1 = s(&first, "refresh_token");
    let header = jwt_part(&rt1, 0);
    assert_eq!(header["typ"], "rt+jwt");
    let claims = jwt_part(&rt1, 1);
    assert_eq!(claims["aud"], "https://certbound.test/oauth2/token");
    assert_eq!(claims["cnf"]["x5t#S256"], web.thumbprint());
    // A refresh token is never an access token: userinfo refuses it.
    let resp = server
        .client(Some(&web))
        .get(server.https_url("/oauth2/userinfo"))
        .bearer_auth(&rt1)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // Rotation: new access, refresh and id tokens, same family.
    let (status, second) = refresh(&server, &web, "web", &rt1, &[]).await;
    assert_eq!(status, 200, "{second}");
    let rt2 = s(&second, "refresh_token");
    let at2 = s(&second, "access_token");
    assert_ne!(rt1, rt2);
    assert_eq!(second["scope"], "openid profile read");
    let id2 = jwt_part(&s(&second, "id_token"), 1);
    assert_eq!(id2["at_hash"], half_sha256(&at2));
    assert!(id2.get("nonce").is_none() && id2.get("c_hash").is_none());
    assert_eq!(jwt_part(&rt2, 1)["fid"], claims["fid"]);
    assert_eq!(
        introspect(&server, &server.pki, &rt1).await["active"],
        false,
        "used"
    );
    assert_eq!(introspect(&server, &server.pki, &rt2).await["active"], true);
    assert_eq!(introspect(&server, &server.pki, &at2).await["active"], true);

    // Narrowing is allowed; widening is not.
    let (status, body) = refresh(&server, &web, "web", &rt2, &[("scope", "openid write")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    let (status, third) = refresh(&server, &web, "web", &rt2, &[("scope", "read")]).await;
    assert_eq!(status, 200, "{third}");
    assert_eq!(third["scope"], "read");
    assert!(third.get("id_token").is_none(), "openid dropped");
    let rt3 = s(&third, "refresh_token");
    let at3 = s(&third, "access_token");

    // Reuse of rt1: refused, and the whole family with it.
    let (status, body) = refresh(&server, &web, "web", &rt1, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    for token in [&at2, &at3, &rt3] {
        assert_eq!(
            introspect(&server, &server.pki, token).await["active"],
            false
        );
    }
    let (status, _) = refresh(&server, &web, "web", &rt3, &[]).await;
    assert_eq!(status, 400, "the newest refresh token is dead too");

    // Another family is untouched.
    let other = tokens(&server, &web, "read").await;
    let (status, _) = refresh(&server, &web, "web", &s(&other, "refresh_token"), &[]).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn binding_client_and_malformed_refusals() {
    let server = TestServer::start(&config("")).await;
    let web = identity(&server.pki, "web");
    let rt = s(&tokens(&server, &web, "read").await, "refresh_token");

    // Another certificate of the same client (same subject, other key).
    let web2 = identity(&server.pki, "web");
    let (status, body) = refresh(&server, &web2, "web", &rt, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // Another client.
    let other = identity(&server.pki, "other");
    let (status, body) = refresh(&server, &other, "other", &rt, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // An access token is not a refresh token.
    let at = s(&tokens(&server, &web, "read").await, "access_token");
    let (status, body) = refresh(&server, &web, "web", &at, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // Garbage and a missing token.
    let (status, body) = refresh(&server, &web, "web", "a.b.c", &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, body, _) = server
        .post(
            &server.client(Some(&web)),
            &server.https_url("/oauth2/token"),
            &[("grant_type", "refresh_token"), ("client_id", "web")],
            &[],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    // None of that used the token up.
    let (status, body) = refresh(&server, &web, "web", &rt, &[]).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn revoking_a_refresh_token_revokes_its_family() {
    let server = TestServer::start(&config("")).await;
    let web = identity(&server.pki, "web");
    let t = tokens(&server, &web, "read").await;
    let (rt, at) = (s(&t, "refresh_token"), s(&t, "access_token"));
    // Another client may not revoke it: 200, and nothing changes.
    let other = identity(&server.pki, "other");
    let (status, body, _) = server
        .post(
            &server.client(Some(&other)),
            &server.https_url("/oauth2/revoke"),
            &[("client_id", "other"), ("token", &rt)],
            &[],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(introspect(&server, &server.pki, &rt).await["active"], true);
    let (status, _, _) = server
        .post(
            &server.client(Some(&web)),
            &server.https_url("/oauth2/revoke"),
            &[
                ("client_id", "web"),
                ("token", &rt),
                ("token_type_hint", "refresh_token"),
            ],
            &[],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(introspect(&server, &server.pki, &rt).await["active"], false);
    assert_eq!(introspect(&server, &server.pki, &at).await["active"], false);
    let (status, _) = refresh(&server, &web, "web", &rt, &[]).await;
    assert_eq!(status, 400);
}

/// Finding 11: a user's access token never calls introspection.
#[tokio::test]
async fn a_users_access_token_may_not_introspect() {
    let server = TestServer::start(&config("")).await;
    let web = identity(&server.pki, "web");
    let t = tokens(&server, &web, "read").await;
    let at = s(&t, "access_token");
    let (status, body, _) = server
        .post(
            &server.client(Some(&web)),
            &server.https_url("/oauth2/introspect"),
            &[("token", &at)],
            &[("authorization", &format!("Bearer {at}"))],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token"))
    );
    assert!(body["error_description"].as_str().unwrap().contains("user"));
}

/// Finding 10: an already-rotated refresh token is a replay at the
/// revocation endpoint too.
#[tokio::test]
async fn revoking_an_already_rotated_refresh_token_revokes_the_family() {
    let server = TestServer::start(&config("")).await;
    let web = identity(&server.pki, "web");
    let t = tokens(&server, &web, "read").await;
    let old = s(&t, "refresh_token");
    let (status, rotated) = refresh(&server, &web, "web", &old, &[]).await;
    assert_eq!(status, 200, "{rotated}");
    let (new_rt, new_at) = (s(&rotated, "refresh_token"), s(&rotated, "access_token"));
    assert_eq!(
        introspect(&server, &server.pki, &new_at).await["active"],
        true
    );
    let (status, _, _) = server
        .post(
            &server.client(Some(&web)),
            &server.https_url("/oauth2/revoke"),
            &[("client_id", "web"), ("token", &old)],
            &[],
        )
        .await;
    assert_eq!(status, 200);
    // The whole family is gone, the newest tokens included.
    assert_eq!(
        introspect(&server, &server.pki, &new_at).await["active"],
        false
    );
    assert_eq!(
        introspect(&server, &server.pki, &new_rt).await["active"],
        false
    );
    let (status, body) = refresh(&server, &web, "web", &new_rt, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn client_credentials_tokens_carry_username_only_with_an_owner() {
    let extra = format!(
        "{}\n[[clients]]\nclient_id = \"owned\"\ntoken_endpoint_auth_method = \"tls_client_auth\"\n\
         tls_client_auth_subject_dn = \"CN=owned\"\nscope = \"read\"\nowner = \"bob\"\n\
         [[clients]]\nclient_id = \"plain\"\ntoken_endpoint_auth_method = \"tls_client_auth\"\n\
         tls_client_auth_subject_dn = \"CN=plain\"\nscope = \"read\"\n",
        config("")
    );
    let server = TestServer::start(&extra).await;
    let owned = server.token(&identity(&server.pki, "owned"), "owned").await;
    let i = introspect(&server, &server.pki, &owned).await;
    assert_eq!(
        (i["sub"].as_str(), i["username"].as_str()),
        (Some("owned"), Some("bob@carbon.super"))
    );
    let plain = server.token(&identity(&server.pki, "plain"), "plain").await;
    let i = introspect(&server, &server.pki, &plain).await;
    assert_eq!(i["active"], true);
    assert!(i.get("username").is_none(), "{i}");
}
