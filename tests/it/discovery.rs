//! Discovery documents and the JWKS.

use serde_json::Value;

use crate::common::TestServer;

async fn get(server: &TestServer, path: &str) -> Value {
    let resp = server
        .client(None)
        .get(server.https_url(path))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.unwrap()
}

#[tokio::test]
async fn metadata_documents() {
    let server = TestServer::start(
        r#"
[[clients]]
client_id = "svc"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=svc"
scope = "read write"
"#,
    )
    .await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let m = get(&server, path).await;
        assert_eq!(m["issuer"], "https://certbound.test");
        assert_eq!(m["token_endpoint"], "https://certbound.test/oauth2/token");
        assert_eq!(
            m["introspection_endpoint"],
            "https://certbound.test/oauth2/introspect"
        );
        assert_eq!(
            m["revocation_endpoint"],
            "https://certbound.test/oauth2/revoke"
        );
        assert_eq!(m["jwks_uri"], "https://certbound.test/oauth2/jwks");
        assert_eq!(m["tls_client_certificate_bound_access_tokens"], true);
        // Only what is usable: no client may use the code grant and no
        // user can sign in, so no authorization or userinfo endpoint.
        assert_eq!(
            m["grant_types_supported"],
            serde_json::json!(["client_credentials"])
        );
        assert!(m.get("authorization_endpoint").is_none(), "{m}");
        assert!(m.get("userinfo_endpoint").is_none(), "{m}");
        assert_eq!(m["response_types_supported"], serde_json::json!(["code"]));
        assert_eq!(m["subject_types_supported"], serde_json::json!(["public"]));
        assert_eq!(
            m["code_challenge_methods_supported"],
            serde_json::json!(["S256"])
        );
        assert_eq!(
            m["id_token_signing_alg_values_supported"],
            serde_json::json!(["ES256"])
        );
        assert_eq!(m["authorization_response_iss_parameter_supported"], true);
        for claim in [
            "sub",
            "nonce",
            "at_hash",
            "c_hash",
            "auth_time",
            "sid",
            "amr",
            "email",
        ] {
            assert!(
                m["claims_supported"]
                    .as_array()
                    .unwrap()
                    .contains(&claim.into()),
                "{claim}"
            );
        }
        assert_eq!(m["scopes_supported"], serde_json::json!(["read", "write"]));
        for method in [
            "tls_client_auth",
            "self_signed_tls_client_auth",
            "client_secret_basic",
        ] {
            assert!(
                m["token_endpoint_auth_methods_supported"]
                    .as_array()
                    .unwrap()
                    .contains(&method.into())
            );
            for endpoint in ["introspection", "revocation"] {
                assert!(
                    m[format!("{endpoint}_endpoint_auth_methods_supported")]
                        .as_array()
                        .unwrap()
                        .contains(&method.into())
                );
            }
        }
        assert!(m.get("mtls_endpoint_aliases").is_none());
    }
    let jwks = get(&server, "/oauth2/jwks").await;
    let key = &jwks["keys"][0];
    assert_eq!(
        (
            key["kty"].as_str(),
            key["alg"].as_str(),
            key["use"].as_str()
        ),
        (Some("EC"), Some("ES256"), Some("sig"))
    );
    assert!(key.get("d").is_none(), "no private part");
    let spec = get(&server, "/openapi.json").await;
    assert!(spec["paths"]["/oauth2/token"].is_object());
    let docs = server
        .client(None)
        .get(server.https_url("/docs/"))
        .send()
        .await
        .unwrap();
    assert_eq!(docs.status(), 200);
}

#[tokio::test]
async fn mtls_endpoint_aliases_when_configured() {
    // Aliases are a [mtls] key: start a server with them.
    let server = TestServer::start_with(
        "endpoint_aliases_base = \"https://mtls.certbound.test\"\n",
        "[\"127.0.0.1/32\"]",
        certbound::keys::Alg::EdDSA,
    )
    .await;
    let m = get(&server, "/.well-known/oauth-authorization-server").await;
    assert_eq!(
        m["mtls_endpoint_aliases"]["token_endpoint"],
        "https://mtls.certbound.test/oauth2/token"
    );
    assert_eq!(
        m["mtls_endpoint_aliases"]["revocation_endpoint"],
        "https://mtls.certbound.test/oauth2/revoke"
    );
    let jwks = get(&server, "/oauth2/jwks").await;
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA");
}

/// With a client of the code grant and a user, the browser flow's
/// endpoints are advertised, and every grant some client has.
#[tokio::test]
async fn the_browser_flow_is_advertised_when_it_is_usable() {
    let server = TestServer::start(&crate::browser::config("")).await;
    let m = get(&server, "/.well-known/openid-configuration").await;
    assert_eq!(
        m["authorization_endpoint"],
        "https://certbound.test/oauth2/authorize"
    );
    assert_eq!(
        m["userinfo_endpoint"],
        "https://certbound.test/oauth2/userinfo"
    );
    assert_eq!(
        m["grant_types_supported"],
        serde_json::json!(["client_credentials", "authorization_code", "refresh_token"])
    );
}
