//! Certificates forwarded by a TLS-terminating proxy.

use certbound::cert::header::encode;
use certbound::keys::Alg;
use rcgen::DnType;

use crate::common::{HEADER, TestServer, jwt_part};

const CLIENT: &str = r#"
[[clients]]
client_id = "svc"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=svc"
"#;

async fn token_via_header(server: &TestServer, value: &str) -> (u16, serde_json::Value) {
    let (status, body, _) = server
        .post(
            &reqwest::Client::new(),
            &server.http_url("/oauth2/token"),
            &[("grant_type", "client_credentials"), ("client_id", "svc")],
            &[(HEADER, value)],
        )
        .await;
    (status, body)
}

#[tokio::test]
async fn every_header_format_binds_the_same_thumbprint_as_tls() {
    let server = TestServer::start(CLIENT).await;
    let id = server.pki.client(&[(DnType::CommonName, "svc")], vec![]);
    let via_tls = server.token(&id, "svc").await;
    let expected = jwt_part(&via_tls, 1)["cnf"]["x5t#S256"].clone();
    assert_eq!(expected, id.thumbprint());
    let der = &id.cert_der;
    for (format, value) in [
        ("pem", encode::pem(der).replace('\n', " ")),
        ("wso2 single-line pem", encode::pem_single_line(der)),
        ("nginx url-encoded pem", encode::url_encoded_pem(der)),
        ("traefik base64 der", encode::base64_der(der)),
        ("envoy xfcc", encode::envoy(der)),
        ("rfc 9440", encode::rfc9440(der)),
    ] {
        let (status, body) = token_via_header(&server, &value).await;
        assert_eq!(status, 200, "{format}: {body}");
        let claims = jwt_part(body["access_token"].as_str().unwrap(), 1);
        assert_eq!(claims["cnf"]["x5t#S256"], expected, "{format}");
    }
}

#[tokio::test]
async fn unparsable_header_from_a_trusted_proxy_is_invalid_client() {
    let server = TestServer::start(CLIENT).await;
    for value in [
        "-----BEGIN CERTIFICATE-----garbage-----END CERTIFICATE-----",
        ":AAAA:",
        "not a cert",
    ] {
        let (status, body) = token_via_header(&server, value).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{value}"
        );
    }
}

#[tokio::test]
async fn header_from_an_untrusted_address_is_ignored() {
    let server = TestServer::start_with(CLIENT, "[\"10.9.9.9/32\"]", Alg::ES256).await;
    let id = server.pki.client(&[(DnType::CommonName, "svc")], vec![]);
    let (status, body) = token_via_header(&server, &encode::pem_single_line(&id.cert_der)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
}

#[tokio::test]
async fn the_tls_peer_certificate_wins_over_a_header() {
    let server = TestServer::start(CLIENT).await;
    let id = server.pki.client(&[(DnType::CommonName, "svc")], vec![]);
    let other = server.pki.client(&[(DnType::CommonName, "svc")], vec![]);
    let (status, body, _) = server
        .post(
            &server.client(Some(&id)),
            &server.https_url("/oauth2/token"),
            &[("grant_type", "client_credentials"), ("client_id", "svc")],
            &[(HEADER, &encode::pem_single_line(&other.cert_der))],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let claims = jwt_part(body["access_token"].as_str().unwrap(), 1);
    assert_eq!(claims["cnf"]["x5t#S256"], id.thumbprint());
}
