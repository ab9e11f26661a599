//! Introspection (RFC 7662, RFC 9701) and revocation (RFC 7009).

use super::*;
use crate::oauth::introspection_jwt::Accept;

const JSON: Accept = Accept {
    jwt: false,
    json: true,
};
const JWT: Accept = Accept {
    jwt: true,
    json: false,
};

#[tokio::test]
async fn introspection_authorizes_the_caller_and_says_only_active_or_not() {
    let f = fixture();
    let body = f.client_token("read").await;
    let form = |token: &str, client: ClientParams| IntrospectRequest {
        token: token.into(),
        token_type_hint: None,
        client,
    };
    let rs = basic("rs", "secret");
    let asked = form(&body.access_token, params(None, None));
    let answer =
        introspect::introspect(&f.settings, &f.tenants(), &f.state, &rs, &asked, JSON, NOW).await;
    let Ok(IntrospectionResponse::Json(seen)) = answer else {
        panic!("a JSON answer: {answer:?}")
    };
    let seen: introspect::Introspection = serde_json::from_slice(&seen).unwrap();
    assert!(seen.active);
    assert_eq!(seen.aut.as_deref(), Some("APPLICATION"));
    // RFC 9701: the same object, signed, for the calling client.
    let answer =
        introspect::introspect(&f.settings, &f.tenants(), &f.state, &rs, &asked, JWT, NOW).await;
    let Ok(IntrospectionResponse::Jwt(jwt)) = answer else {
        panic!("a JWT answer: {answer:?}")
    };
    let part = |i: usize| -> serde_json::Value {
        let b64 = jwt.split('.').nth(i).unwrap();
        let bytes =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, b64).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    assert_eq!(part(0)["typ"], "token-introspection+jwt");
    let claims = part(1);
    assert_eq!(
        (claims["iss"].as_str(), claims["aud"].as_str()),
        (Some("https://as.test"), Some("rs"))
    );
    assert_eq!(claims["iat"], NOW);
    assert_eq!(
        claims["token_introspection"],
        serde_json::to_value(&seen).unwrap()
    );
    assert_eq!(seen.client_id.as_deref(), Some("svc"));
    assert_eq!(seen.cnf.unwrap().x5t_s256, f.cert.thumbprint);
    // Expiry, a future token, garbage, a code: inactive, nothing more.
    assert!(!f.active(&body.access_token, NOW + 3600));
    assert!(
        !f.active(&body.access_token, NOW - 120),
        "issued in the future"
    );
    for junk in ["", "a.b.c", &f.code("svc", NOW + 60)] {
        assert_eq!(
            introspect::inspect(&f.settings, &f.tenants(), &f.state, junk, NOW).unwrap(),
            Default::default()
        );
    }
    // Callers: wrong secret, a client without introspection, nobody.
    let cases = [
        (basic("rs", "wrong"), params(None, None), "invalid_client"),
        (tls(&f.cert), params(Some("svc"), None), "invalid_client"),
        (ClientAuth::default(), params(None, None), "invalid_client"),
    ];
    for (auth, client, code) in cases {
        let r = introspect::introspect(
            &f.settings,
            &f.tenants(),
            &f.state,
            &auth,
            &form(&body.access_token, client),
            JSON,
            NOW,
        )
        .await;
        assert_eq!(r.err().map(|e| e.code()), Some(code));
    }
    // A user's token never introspects, whatever it holds.
    let user = f
        .redeem(&f.code("svc", NOW + 60), VERIFIER, NOW)
        .await
        .unwrap();
    let seen =
        introspect::inspect(&f.settings, &f.tenants(), &f.state, &user.access_token, NOW).unwrap();
    assert_eq!(seen.aut.as_deref(), Some("APPLICATION_USER"));
    let bearer = ClientAuth::new(
        Some(Authorization::Bearer(user.access_token)),
        Ok(Some(f.cert.clone())),
    );
    let r = introspect::introspect(
        &f.settings,
        &f.tenants(),
        &f.state,
        &bearer,
        &form(&body.access_token, params(None, None)),
        JSON,
        NOW,
    )
    .await;
    assert_eq!(r.err().map(|e| e.code()), Some("invalid_token"));
}

#[tokio::test]
async fn revocation_touches_only_the_callers_tokens() {
    let f = fixture();
    let own = f
        .token(&tls(&f.cert), &request("client_credentials", &[]), NOW)
        .await
        .unwrap()
        .access_token;
    let revoke = |auth: ClientAuth, client: ClientParams, token: String| {
        let f = &f;
        async move {
            let form = RevokeRequest {
                token,
                token_type_hint: None,
                client,
            };
            revoke::revoke(&f.settings, &f.state, &auth, &form, NOW).await
        }
    };
    // Another client asks: 200, and the token stays valid.
    revoke(
        ClientAuth::default(),
        params(Some("peer"), Some("secret")),
        own.clone(),
    )
    .await
    .unwrap();
    // Asked about repeatedly: its answer is kept; revoking it, or its
    // expiry, still counts at once.
    for _ in 0..3 {
        assert!(f.active_json(&own, NOW));
    }
    assert!(!f.active_json(&own, NOW + 3600));
    revoke(tls(&f.cert), params(Some("svc"), None), own.clone())
        .await
        .unwrap();
    assert!(!f.active(&own, NOW));
    assert!(!f.active_json(&own, NOW));
    // Garbage is fine (RFC 7009 §2.2); a refresh token takes its family.
    revoke(tls(&f.cert), params(Some("svc"), None), "garbage".into())
        .await
        .unwrap();
    let user = f
        .redeem(&f.code("svc", NOW + 60), VERIFIER, NOW)
        .await
        .unwrap();
    revoke(
        tls(&f.cert),
        params(Some("svc"), None),
        user.refresh_token.unwrap(),
    )
    .await
    .unwrap();
    assert!(!f.active(&user.access_token, NOW));
}
