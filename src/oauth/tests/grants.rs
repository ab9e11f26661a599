//! The token endpoint's grants.

use super::*;

#[tokio::test]
async fn client_credentials_binds_narrows_and_refuses() {
    let f = fixture();
    let body = f.client_token("read").await;
    assert_eq!(body.scope.as_deref(), Some("read"));
    let claims = f
        .settings
        .tokens
        .verify(&f.settings.keys, &body.access_token, NOW)
        .unwrap();
    assert_eq!(
        claims.cnf.unwrap().x5t_s256,
        f.cert.thumbprint,
        "bound to the certificate"
    );
    assert_eq!(claims.exp, NOW + 3600);
    // No scope asked for: the client's own, without the OpenID Connect
    // ones (about a user); asked for by name, openid is granted (WSO2).
    let default = f
        .token(&tls(&f.cert), &request("client_credentials", &[]), NOW)
        .await
        .unwrap();
    assert_eq!(default.scope.as_deref(), Some("read write"));
    assert_eq!(
        f.client_token("openid").await.scope.as_deref(),
        Some("openid")
    );
    // Scope beyond the client's, another certificate, a grant not allowed,
    // an unknown grant, a Bearer header as client authentication.
    let wide = request("client_credentials", &[("scope", "admin")]);
    assert_eq!(
        code_of(f.token(&tls(&f.cert), &wide, NOW).await),
        "invalid_scope"
    );
    let plain = request("client_credentials", &[]);
    assert_eq!(
        code_of(f.token(&tls(&f.stranger), &plain, NOW).await),
        "invalid_client"
    );
    let rs_code = request("authorization_code", &[("client_id", "rs")]);
    assert_eq!(
        code_of(f.token(&basic("rs", "secret"), &rs_code, NOW).await),
        "unauthorized_client"
    );
    assert_eq!(
        code_of(f.token(&tls(&f.cert), &request("password", &[]), NOW).await),
        "unsupported_grant_type"
    );
    let bearer = ClientAuth::new(Some(Authorization::Bearer("t".into())), Ok(None));
    assert_eq!(
        code_of(f.token(&bearer, &plain, NOW).await),
        "invalid_client"
    );
    // A bad certificate header surfaces when the certificate is needed.
    let bad = ClientAuth::new(
        None,
        Err(OAuthError::InvalidClient("cannot be parsed".into())),
    );
    assert_eq!(code_of(f.token(&bad, &plain, NOW).await), "invalid_client");
}

#[tokio::test]
async fn a_code_is_checked_then_spent_once_and_a_replay_revokes_its_tokens() {
    let f = fixture();
    // Expired, other client's, wrong redirect, wrong verifier: refused
    // before it is spent.
    assert_eq!(
        code_of(f.redeem(&f.code("svc", NOW), VERIFIER, NOW).await),
        "invalid_grant"
    );
    assert_eq!(
        code_of(f.redeem(&f.code("peer", NOW + 60), VERIFIER, NOW).await),
        "invalid_grant"
    );
    let code = f.code("svc", NOW + 60);
    assert_eq!(
        code_of(f.redeem(&code, &VERIFIER.replace('d', "e"), NOW).await),
        "invalid_grant"
    );
    let other_redirect = request(
        "authorization_code",
        &[
            ("code", &code),
            ("redirect_uri", "https://app.test/other"),
            ("code_verifier", VERIFIER),
        ],
    );
    assert_eq!(
        code_of(f.token(&tls(&f.cert), &other_redirect, NOW).await),
        "invalid_grant"
    );
    assert_eq!(
        code_of(f.redeem("not-a-code", VERIFIER, NOW).await),
        "invalid_grant"
    );

    let first = f.redeem(&code, VERIFIER, NOW).await.unwrap();
    assert!(first.refresh_token.is_some() && first.id_token.is_some());
    assert_eq!(first.scope.as_deref(), Some("openid read"));
    assert!(f.active(&first.access_token, NOW + 1));
    // Replayed: refused, and every token minted from it is revoked.
    assert_eq!(
        code_of(f.redeem(&code, VERIFIER, NOW + 1).await),
        "invalid_grant"
    );
    assert!(!f.active(&first.access_token, NOW + 2));
    assert!(!f.active(first.refresh_token.as_deref().unwrap(), NOW + 2));
}

#[tokio::test]
async fn refresh_rotates_narrows_and_detects_reuse_and_confusion() {
    let f = fixture();
    let first = f
        .redeem(&f.code("svc", NOW + 60), VERIFIER, NOW)
        .await
        .unwrap();
    let refresh = first.refresh_token.unwrap();
    let form = |token: &str, scope: Option<&str>| {
        let mut pairs = vec![("refresh_token", token)];
        pairs.extend(scope.map(|s| ("scope", s)));
        request("refresh_token", &pairs)
    };
    // Bound to the certificate: another certificate of the same client
    // authenticates, but may not use it (RFC 8705 §3); a stranger's does
    // not even authenticate.
    assert_eq!(
        code_of(
            f.token(&tls(&f.other_cert), &form(&refresh, None), NOW)
                .await
        ),
        "invalid_grant"
    );
    assert_eq!(
        code_of(f.token(&tls(&f.stranger), &form(&refresh, None), NOW).await),
        "invalid_client"
    );
    // Widening is refused; an access token is no refresh token.
    assert_eq!(
        code_of(
            f.token(&tls(&f.cert), &form(&refresh, Some("read write")), NOW)
                .await
        ),
        "invalid_scope"
    );
    assert_eq!(
        code_of(
            f.token(&tls(&f.cert), &form(&first.access_token, None), NOW)
                .await
        ),
        "invalid_grant"
    );
    // Narrowed rotation.
    let second = f
        .token(&tls(&f.cert), &form(&refresh, Some("read")), NOW + 5)
        .await
        .unwrap();
    assert_eq!(second.scope.as_deref(), Some("read"));
    assert!(second.id_token.is_none(), "no openid, no ID token");
    let next = second.refresh_token.unwrap();
    assert_ne!(next, refresh);
    // The old one again: reuse, the whole family is revoked.
    assert_eq!(
        code_of(f.token(&tls(&f.cert), &form(&refresh, None), NOW + 6).await),
        "invalid_grant"
    );
    assert!(!f.active(&second.access_token, NOW + 7));
    assert_eq!(
        code_of(f.token(&tls(&f.cert), &form(&next, None), NOW + 7).await),
        "invalid_grant"
    );
    // Past its lifetime a refresh token is refused.
    let later = f
        .redeem(&f.code("svc", NOW + 60), VERIFIER, NOW)
        .await
        .unwrap();
    let expired = form(later.refresh_token.as_deref().unwrap(), None);
    assert_eq!(
        code_of(f.token(&tls(&f.cert), &expired, NOW + 86_401).await),
        "invalid_grant"
    );
}
