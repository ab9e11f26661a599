//! Tenants (WSO2 `/t/{domain}/…`): each tenant's clients authenticate only
//! at its own endpoints, its tokens carry its issuer and are inactive at
//! another tenant's introspection, discovery names its own endpoints, the
//! default tenant answers under `/t/carbon.super/` too, and unknown or
//! hostile tenant names are 404 with an OAuth error.

use rcgen::DnType;
use serde_json::Value;

use crate::common::{Identity, TestServer, jwt_part};
use crate::revoke::basic;

const SECRET: &str = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b";

fn config() -> String {
    let clients = |extra: &str| {
        format!(
            r#"
[[{extra}clients]]
client_id = "svc"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=svc"
scope = "read"
[[{extra}clients]]
client_id = "rs"
token_endpoint_auth_method = "client_secret_basic"
client_secret_sha256 = "{SECRET}"
introspection = true
"#
        )
    };
    format!(
        r#"{}
[[clients]]
client_id = "only-default"
token_endpoint_auth_method = "client_secret_basic"
client_secret_sha256 = "{SECRET}"
[[tenants]]
domain = "acme.com"
{}
[[tenants.clients]]
client_id = "only-acme"
token_endpoint_auth_method = "client_secret_basic"
client_secret_sha256 = "{SECRET}"
"#,
        clients(""),
        clients("tenants.")
    )
}

async fn token(server: &TestServer, id: &Identity, base: &str) -> String {
    let (status, body, _) = server
        .post(
            &server.client(Some(id)),
            &server.https_url(&format!("{base}/oauth2/token")),
            &[("grant_type", "client_credentials"), ("client_id", "svc")],
            &[],
        )
        .await;
    assert_eq!(status, 200, "{base}: {body}");
    body["access_token"].as_str().unwrap().to_string()
}

async fn introspect(server: &TestServer, base: &str, token: &str) -> Value {
    let (status, body, _) = server
        .post(
            &server.client(None),
            &server.https_url(&format!("{base}/oauth2/introspect")),
            &[("token", token)],
            &[("authorization", &basic("rs"))],
        )
        .await;
    assert_eq!(status, 200, "{base}: {body}");
    body
}

#[tokio::test]
async fn each_tenant_has_its_clients_issuer_and_tokens() {
    let server = TestServer::start(&config()).await;
    let svc = server.pki.client(&[(DnType::CommonName, "svc")], vec![]);
    let default = token(&server, &svc, "").await;
    let acme = token(&server, &svc, "/t/acme.com").await;
    let super_tenant = token(&server, &svc, "/t/carbon.super").await;
    assert_eq!(jwt_part(&default, 1)["iss"], "https://certbound.test");
    assert_eq!(jwt_part(&super_tenant, 1)["iss"], "https://certbound.test");
    assert_eq!(
        jwt_part(&acme, 1)["iss"],
        "https://certbound.test/t/acme.com"
    );
    assert_eq!(
        jwt_part(&acme, 1)["aud"],
        "https://certbound.test/t/acme.com"
    );

    // Each tenant's introspection knows only its own tokens, and says
    // nothing of the other's.
    assert_eq!(
        introspect(&server, "/t/acme.com", &acme).await["active"],
        true
    );
    assert_eq!(introspect(&server, "", &default).await["active"], true);
    assert_eq!(
        introspect(&server, "/t/carbon.super", &default).await["active"],
        true
    );
    for (base, other) in [
        ("/t/acme.com", &default),
        ("", &acme),
        ("/t/carbon.super", &acme),
    ] {
        let answer = introspect(&server, base, other).await;
        assert_eq!(answer, serde_json::json!({"active": false}), "{base}");
    }
    // The same token twice: the shared verified-token cache never carries
    // a verification across tenants.
    assert_eq!(introspect(&server, "", &acme).await["active"], false);

    // A client authenticates only at its own tenant.
    for (base, client) in [("", "only-acme"), ("/t/acme.com", "only-default")] {
        let (status, body, _) = server
            .post(
                &server.client(None),
                &server.https_url(&format!("{base}/oauth2/token")),
                &[("grant_type", "client_credentials")],
                &[("authorization", &basic(client))],
            )
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{base} {client}"
        );
    }
    // Revoking another tenant's token changes nothing.
    let (status, _, _) = server
        .post(
            &server.client(Some(&svc)),
            &server.https_url("/t/acme.com/oauth2/revoke"),
            &[("token", &default), ("client_id", "svc")],
            &[],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(introspect(&server, "", &default).await["active"], true);

    // Discovery names the tenant's own endpoints, at every path WSO2 has.
    for path in [
        "/t/acme.com/.well-known/openid-configuration",
        "/t/acme.com/.well-known/oauth-authorization-server",
        "/t/acme.com/oauth2/token/.well-known/openid-configuration",
    ] {
        let meta = server.get_json(path).await;
        assert_eq!(
            meta["issuer"], "https://certbound.test/t/acme.com",
            "{path}"
        );
        assert_eq!(
            meta["token_endpoint"], "https://certbound.test/t/acme.com/oauth2/token",
            "{path}"
        );
    }
    let jwks = server
        .client(None)
        .get(server.https_url("/t/acme.com/oauth2/jwks"))
        .send()
        .await
        .unwrap();
    assert_eq!(jwks.status(), 200);
}

#[tokio::test]
async fn unknown_and_hostile_tenants_are_404_and_never_echoed() {
    let server = TestServer::start(&config()).await;
    let long = format!("/t/{}/oauth2/token", "a".repeat(10_000));
    let paths = [
        "/t/evil.example/oauth2/token",
        "/t/%3Cscript%3E/oauth2/token",
        // (`/t/../` and `/t/%2e%2e/` are resolved by this client itself;
        // sent raw below.)
        "/t/..%2Foauth2/token",
        "/t/ünïcødé/oauth2/token",
        "/t//oauth2/token",
        "/t/acme.com",
        "/t/acme.com/",
        "/t/ACME.COM/oauth2/token",
        long.as_str(),
    ];
    for path in paths {
        let resp = server
            .client(None)
            .post(server.https_url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert!(
            status == 404 || status == 431,
            "{}: {status} {text}",
            &path[..path.len().min(60)]
        );
        let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON: {text}"));
        assert!(body["error"].is_string(), "{text}");
        for name in [
            "evil.example",
            "<script",
            "%3Cscript",
            "ünïcødé",
            "aaaaaaaa",
        ] {
            assert!(!text.contains(name), "{text}");
        }
    }
    // Dot segments as sent, not resolved by a client.
    for path in [
        "/t/../oauth2/token",
        "/t/%2e%2e/oauth2/token",
        "/t/./oauth2/token",
    ] {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(server.http.unwrap())
            .await
            .unwrap();
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 404"), "{path}: {answer}");
        assert!(answer.contains("\"error\""), "{answer}");
    }
    // Still serving.
    let svc = server.pki.client(&[(DnType::CommonName, "svc")], vec![]);
    token(&server, &svc, "/t/acme.com").await;
}
