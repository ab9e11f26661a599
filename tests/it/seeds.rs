//! Every request of the WSO2 documents certbound replaces
//! (`mtls-certificate-bound-tokens.md`, `invoke-introspection-endpoint.txt`,
//! `token-validation-by-resource-servers.txt`), replayed as written with
//! certbound's generated values: the three grants with the certificate in
//! `x-wso2-mtls-cert` from a TLS-terminating proxy, introspection with
//! Basic (client and user, `admin:admin` as in the sample), with Bearer,
//! with `token_type_hint`, the empty token, and the tenant paths. The
//! sample's own certificate is pinned, so the thumbprint in the sample
//! answer comes back exactly.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::DnType;
use serde_json::Value;

use crate::browser::Browser;
use crate::common::{Setup, TestServer};

/// The sample's client id.
const CLIENT: &str = "h9gd1bLEgzUwftAhnrof0fZWcZwa";
/// The sample's redirect URI, as its form sends it.
const REDIRECT: &str = "http://localhost:8080/playground2/oauth2client";
const REDIRECT_ENCODED: &str = "http%3A%2F%2Flocalhost%3A8080%2Fplayground2%2Foauth2client";
/// `cnf` of the sample introspection answer, for this certificate.
const SAMPLE_THUMBPRINT: &str = "mt3KDY1hofQurloTbphKHCSrTlAGl5MlgXX6Xxj9c_E";

/// The certificate of the seed's sample requests, as its single-line
/// `x-wso2-mtls-cert` header value.
const SEED_CERT: &str = concat!(
    "-----BEGIN CERTIFICATE-----",
    "MIID3TCCAsWgAwIBAgIUJQW8iwYsAbyjc/oHti8DPLJH5ZcwDQYJKoZIhvcNAQEL",
    "BQAwfjELMAkGA1UEBhMCU0wxEDAOBgNVBAgMB1dlc3Rlcm4xEDAOBgNVBAcMB0Nv",
    "bG9tYm8xDTALBgNVBAoMBFdTTzIxDDAKBgNVBAsMA0lBTTENMAsGA1UEAwwER2Fn",
    "YTEfMB0GCSqGSIb3DQEJARYQZ2FuZ2FuaUB3c28yLmNvbTAeFw0yMDAzMjQxMjQy",
    "MDFaFw0zMDAzMjIxMjQyMDFaMH4xCzAJBgNVBAYTAlNMMRAwDgYDVQQIDAdXZXN0",
    "ZXJuMRAwDgYDVQQHDAdDb2xvbWJvMQ0wCwYDVQQKDARXU08yMQwwCgYDVQQLDANJ",
    "QU0xDTALBgNVBAMMBEdhZ2ExHzAdBgkqhkiG9w0BCQEWEGdhbmdhbmlAd3NvMi5j",
    "b20wggEiMA0GCSqGSIb3DQEBAQUAA4IBDwAwggEKAoIBAQC+reCEYOn2lnWgFsp0",
    "TF0R1wQiD9C/N+dnv4xCa0rFiu4njDzWR/8tYFl0koaxXoP0+oGnT07KlkA66q0z",
    "twikLZXphLdCBbJ1hSmNvor48FuSb6DgqWixrUa2LHlpaaV7RvlmG+IhZEgKDXdS",
    "+/tK0hlcgRzENyOEdETDO5fFlKGGuwaGv6/w69h2LTKGu5nyDLF51rjQ18xp026b",
    "tHC7se/XSlcp3X63xeOIcFv6m84AN2lnV+g8MOfu2wgWtsKaxn4BL64E7nHZNNLx",
    "MRf7GtUm2bl9ydFX4aD1r1Oj4iqFWMNcfQ676Qshk8s7ui3LKWFXwNN/SRD0c/OR",
    "tv23AgMBAAGjUzBRMB0GA1UdDgQWBBRDu/vqRafReh4fFHS3Nz4T6u9mUDAfBgNV",
    "HSMEGDAWgBRDu/vqRafReh4fFHS3Nz4T6u9mUDAPBgNVHRMBAf8EBTADAQH/MA0G",
    "CSqGSIb3DQEBCwUAA4IBAQB7NH51Yj4moEhMonnLUh3eTtf6DUnrpscx6td28rry",
    "oDZPfCkJs4VHU9F50etw54FoHqoIaHp5UIB6l1OsVXytUmwrdxbqW7nfOItYwN1y",
    "V093aI2aOeMQYmS+vrPkSkxySP6+wGCWe4gfMgpr6iu9xiWLpnILw5q71gmXWtS9",
    "00S5aLbllGYe74jkyldLIdhS4TyEBIDgcpZrD8x/Z42al6T/6EANMpvu4Jopisg+",
    "uwwkEGSM1I/kjiW+YkWC4oTZ1jMZUWC11WbcouLwjfaf6gt4zWitYCP0r0fLGk4b",
    "SJfUFsnJNu6vDhx60TbRhIh9P2jxkmgNYPuAxFtF8v+h",
    "-----END CERTIFICATE-----"
);

/// The sample certificate as a PEM file holds it.
fn seed_pem() -> String {
    let body = SEED_CERT
        .trim_start_matches("-----BEGIN CERTIFICATE-----")
        .trim_end_matches("-----END CERTIFICATE-----");
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

/// The sample's service provider (its uploaded certificate pinned, owned
/// by `admin`), a resource server `rs`, and the user `admin:admin` with the
/// introspection permission; the same again in tenant `acme.com`.
fn config() -> String {
    let hash = certbound::users::hash_password("admin").unwrap();
    let pem = seed_pem();
    let tenant = |t: &str| {
        format!(
            r#"
[[{t}clients]]
client_id = "{CLIENT}"
token_endpoint_auth_method = "self_signed_tls_client_auth"
certificates = ['''{pem}''']
grant_types = ["client_credentials", "authorization_code", "refresh_token"]
redirect_uris = ["{REDIRECT}"]
require_pkce = false
scope = "openid default"
owner = "admin"
[[{t}clients]]
client_id = "rs"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=rs"
scope = "introspect"
[[{t}users]]
username = "admin"
password_hash = "{hash}"
permissions = ["introspect"]
"#
        )
    };
    format!(
        "[introspection]\nwso2_cnf_alias = true\n{}\n[[tenants]]\ndomain = \"acme.com\"\n{}",
        tenant(""),
        tenant("tenants.")
    )
}

async fn server() -> TestServer {
    let setup = Setup::new(&config(), "[\"127.0.0.1/32\"]", certbound::keys::Alg::ES256);
    let text = std::fs::read_to_string(&setup.config).unwrap();
    let text = text.replace(
        &format!("client_certificate_header = \"{}\"", crate::common::HEADER),
        "client_certificate_header = \"x-wso2-mtls-cert\"",
    );
    std::fs::write(&setup.config, text).unwrap();
    TestServer::start_setup(setup).await
}

/// `curl -X POST <url> -H 'content-type: application/x-www-form-urlencoded'
/// -H <headers> -d <body>` from behind the proxy (the plain listener).
async fn curl(
    server: &TestServer,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(server.http_url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_string());
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn admin(user: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:admin")))
}

/// The sample's client-credentials request: the certificate in the header.
async fn client_credentials(server: &TestServer, base: &str, extra: &str) -> Value {
    let (status, body) = curl(
        server,
        &format!("{base}/oauth2/token"),
        &[("x-wso2-mtls-cert", SEED_CERT)],
        &format!("grant_type=client_credentials&client_id={CLIENT}{extra}"),
    )
    .await;
    assert_eq!(status, 200, "{base}: {body}");
    body
}

async fn introspect(server: &TestServer, path: &str, auth: &str, body: &str) -> Value {
    let (status, answer) = curl(server, path, &[("authorization", auth)], body).await;
    assert_eq!(status, 200, "{path}: {answer}");
    answer
}

#[tokio::test]
async fn the_mtls_documents_requests() {
    let server = server().await;

    // Client credentials grant.
    let body = client_credentials(&server, "", "").await;
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_u64().is_some_and(|s| s > 0), "{body}");
    let access = body["access_token"].as_str().unwrap().to_string();

    // Introspection as the sample sends it: `authorization: Basic
    // YWRtaW46YWRtaW4=` (admin:admin), `-d token=…`. The sample answer's
    // fields, its thumbprint under its own name, and RFC 8705's.
    let sample_auth = "Basic YWRtaW46YWRtaW4=";
    assert_eq!(admin("admin"), sample_auth);
    let seen = introspect(
        &server,
        "/oauth2/introspect",
        sample_auth,
        &format!("token={access}"),
    )
    .await;
    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!(seen["cnf"]["x5t#SHA256"], SAMPLE_THUMBPRINT);
    assert_eq!(seen["cnf"]["x5t#S256"], SAMPLE_THUMBPRINT);
    assert_eq!(seen["token_type"], "Bearer");
    assert_eq!(seen["client_id"], CLIENT);
    assert_eq!(seen["username"], "admin@carbon.super");
    assert_eq!(seen["aut"], "APPLICATION");
    for field in ["nbf", "exp", "iat"] {
        assert!(seen[field].is_u64(), "{field}: {seen}");
    }

    // Authorization code grant: the user signs in (as the playground
    // does), then the sample's token request with the header.
    let mut browser = Browser::new(&server);
    let login = browser
        .authorize(&[
            ("response_type", "code"),
            ("client_id", CLIENT),
            ("redirect_uri", REDIRECT),
            ("scope", "openid"),
        ])
        .await;
    assert_eq!(login.status, 200, "{}", login.body);
    let consent = browser.login(&login, "admin", "admin").await;
    let done = browser.decide(&consent, "approve_once").await;
    assert!(done.location().starts_with(REDIRECT), "{}", done.location());
    let code = done.param("code").unwrap();
    let (status, body) = curl(
        &server,
        "/oauth2/token",
        &[("x-wso2-mtls-cert", SEED_CERT)],
        &format!(
            "grant_type=authorization_code&client_id={CLIENT}&code={code}&redirect_uri={REDIRECT_ENCODED}"
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for field in ["access_token", "refresh_token", "id_token"] {
        assert!(body[field].is_string(), "{field}: {body}");
    }
    assert_eq!(
        (body["scope"].as_str(), body["token_type"].as_str()),
        (Some("openid"), Some("Bearer"))
    );
    let user_access = body["access_token"].as_str().unwrap().to_string();
    let refresh_token = body["refresh_token"].as_str().unwrap();

    // Refresh token grant.
    let (status, body) = curl(
        &server,
        "/oauth2/token",
        &[("x-wso2-mtls-cert", SEED_CERT)],
        &format!("grant_type=refresh_token&refresh_token={refresh_token}&client_id={CLIENT}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let rotated = body["refresh_token"].as_str().unwrap();
    assert_ne!(rotated, refresh_token);

    // The resource-server document's two sample answers: an access token
    // of a user, and a refresh token.
    let seen = introspect(
        &server,
        "/oauth2/introspect",
        sample_auth,
        &format!("token={user_access}"),
    )
    .await;
    assert_eq!(
        (
            seen["aut"].as_str(),
            seen["username"].as_str(),
            seen["scope"].as_str()
        ),
        (
            Some("APPLICATION_USER"),
            Some("admin@carbon.super"),
            Some("openid")
        )
    );
    let seen = introspect(
        &server,
        "/oauth2/introspect",
        sample_auth,
        &format!("token={rotated}"),
    )
    .await;
    assert_eq!(
        (
            seen["active"].as_bool(),
            seen["token_type"].as_str(),
            seen["username"].as_str()
        ),
        (Some(true), Some("Refresh"), Some("admin@carbon.super"))
    );
}

#[tokio::test]
async fn the_introspection_documents_requests() {
    let server = server().await;
    let sample_auth = admin("admin");

    // Get a valid token; validate it, with and without a type hint.
    let token = client_credentials(&server, "", "").await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    for body in [
        format!("token={token}"),
        format!("token={token}&token_type_hint=access_token"),
        format!("token={token}&token_type_hint=refresh_token"),
    ] {
        let seen = introspect(&server, "/oauth2/introspect", &sample_auth, &body).await;
        assert_eq!(seen["active"], true, "{body}: {seen}");
    }
    // Get a valid token with a scope; validate it.
    let scoped = client_credentials(&server, "", "&scope=openid").await;
    assert_eq!(scoped["scope"], "openid");
    let scoped = scoped["access_token"].as_str().unwrap();
    let seen = introspect(
        &server,
        "/oauth2/introspect",
        &sample_auth,
        &format!("token={scoped}"),
    )
    .await;
    assert_eq!(seen["scope"], "openid");
    // Invalid token: {'active':false}.
    let seen = introspect(
        &server,
        "/oauth2/introspect",
        &sample_auth,
        "token=94e325b7-77c8-32c2-a6ff-d7be430bf785",
    )
    .await;
    assert_eq!(seen, serde_json::json!({"active": false}));
    // Empty token: RFC 7662 §2.1 requires it.
    let (status, body) = curl(
        &server,
        "/oauth2/introspect",
        &[("authorization", &sample_auth)],
        "token=",
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );

    // The resource-server document's Bearer form: a caller token holding
    // the introspection scope (bound to rs's certificate, sent with it).
    let rs = server.pki.client(&[(DnType::CommonName, "rs")], vec![]);
    let caller = server.token(&rs, "rs").await;
    let resp = server
        .client(Some(&rs))
        .post(server.https_url("/oauth2/introspect"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", format!("Bearer {caller}"))
        .body(format!("token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["active"], true);

    // Tenants: a token from /t/{domain}/oauth2/token, validated at
    // /t/{domain}/oauth2/introspect with admin@{domain}:admin, or at
    // /oauth2/introspect with the same credentials (the name says the
    // tenant).
    let tenant_token = client_credentials(&server, "/t/acme.com", "").await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let tenant_admin = admin("admin@acme.com");
    for path in ["/t/acme.com/oauth2/introspect", "/oauth2/introspect"] {
        let seen = introspect(
            &server,
            path,
            &tenant_admin,
            &format!("token={tenant_token}"),
        )
        .await;
        assert_eq!(seen["active"], true, "{path}: {seen}");
        assert_eq!(seen["username"], "admin@acme.com");
        assert_eq!(seen["iss"], "https://certbound.test/t/acme.com");
        // A tenant caller sees nothing of the default tenant's tokens.
        let other = introspect(&server, path, &tenant_admin, &format!("token={token}")).await;
        assert_eq!(other, serde_json::json!({"active": false}), "{path}");
    }
    // The default tenant's admin, also by its full name, sees nothing of
    // acme's.
    for user in ["admin", "admin@carbon.super"] {
        let seen = introspect(
            &server,
            "/oauth2/introspect",
            &admin(user),
            &format!("token={tenant_token}"),
        )
        .await;
        assert_eq!(seen, serde_json::json!({"active": false}), "{user}");
        let seen = introspect(
            &server,
            "/t/carbon.super/oauth2/introspect",
            &admin(user),
            &format!("token={token}"),
        )
        .await;
        assert_eq!(seen["active"], true, "{user}");
    }
    // A tenant user's wrong password is refused at either path.
    let wrong = format!("Basic {}", STANDARD.encode("admin@acme.com:nope"));
    for path in ["/t/acme.com/oauth2/introspect", "/oauth2/introspect"] {
        let (status, body) = curl(
            &server,
            path,
            &[("authorization", &wrong)],
            &format!("token={tenant_token}"),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{path}"
        );
    }
}
