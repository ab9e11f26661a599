//! Which certificates authenticate which client: the proxy header only on
//! listeners that face a proxy, the clientAuth EKU, per-client trust
//! anchors, and subject DNs compared without Unicode case folding.

use certbound::cert::header::encode;
use certbound::keys::Alg;
use rcgen::{DnType, ExtendedKeyUsagePurpose};

use crate::common::{HEADER, Identity, Pki, Setup, TestServer};

const CLIENTS: &str = r#"
[[clients]]
client_id = "svc"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=svc"
"#;

async fn token_status(
    server: &TestServer,
    url: &str,
    id: Option<&Identity>,
    header: Option<&Identity>,
    client: &str,
) -> u16 {
    let value = header.map(|h| encode::url_encoded_pem(&h.cert_der));
    let headers: Vec<(&str, &str)> = value.iter().map(|v| (HEADER, v.as_str())).collect();
    let (status, body, _) = server
        .post(
            &server.client(id),
            url,
            &[("grant_type", "client_credentials"), ("client_id", client)],
            &headers,
        )
        .await;
    if status != 200 {
        assert_eq!(body["error"], "invalid_client", "{body}");
    }
    status
}

#[tokio::test]
async fn the_proxy_header_is_ignored_on_the_https_listener_by_default() {
    let server = TestServer::start(CLIENTS).await;
    let id = server.pki.client(&[(DnType::CommonName, "svc")], vec![]);
    // Finding 9: a local process holding only the public certificate.
    let https = server.https_url("/oauth2/token");
    assert_eq!(
        token_status(&server, &https, None, Some(&id), "svc").await,
        401
    );
    // The plain listener faces the proxy: there the header is believed.
    let http = server.http_url("/oauth2/token");
    let (status, body, _) = server
        .post(
            &reqwest::Client::new(),
            &http,
            &[("grant_type", "client_credentials"), ("client_id", "svc")],
            &[(HEADER, &encode::url_encoded_pem(&id.cert_der))],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // And TLS with the certificate itself works as ever.
    assert_eq!(
        token_status(&server, &https, Some(&id), None, "svc").await,
        200
    );
}

#[tokio::test]
async fn header_on_https_is_for_tls_to_tls_proxies() {
    let server = TestServer::start(&format!("header_on_https = true\n{CLIENTS}")).await;
    let id = server.pki.client(&[(DnType::CommonName, "svc")], vec![]);
    let https = server.https_url("/oauth2/token");
    assert_eq!(
        token_status(&server, &https, None, Some(&id), "svc").await,
        200
    );
    // The TLS peer certificate still wins over a header.
    let other = server.pki.client(&[(DnType::CommonName, "nobody")], vec![]);
    assert_eq!(
        token_status(&server, &https, Some(&other), Some(&id), "svc").await,
        401
    );
}

#[tokio::test]
async fn a_leaf_needs_the_client_auth_eku() {
    for (allow, expected_without) in [("", 401), ("allow_leaf_without_eku = true", 200)] {
        let server = TestServer::start(&format!("{allow}\n{CLIENTS}")).await;
        let url = server.https_url("/oauth2/token");
        let subject = [(DnType::CommonName, "svc")];
        let none = server.pki.client_with_eku(&subject, vec![], vec![]);
        let server_only =
            server
                .pki
                .client_with_eku(&subject, vec![], vec![ExtendedKeyUsagePurpose::ServerAuth]);
        let good = server.pki.client(&subject, vec![]);
        assert_eq!(
            token_status(&server, &url, Some(&none), None, "svc").await,
            expected_without,
            "{allow}"
        );
        assert_eq!(
            token_status(&server, &url, Some(&server_only), None, "svc").await,
            401
        );
        assert_eq!(
            token_status(&server, &url, Some(&good), None, "svc").await,
            200
        );
    }
}

#[tokio::test]
async fn a_client_with_its_own_anchors_refuses_other_cas() {
    let setup = Setup::new("", "[]", Alg::ES256);
    let dir = setup.dir.path().to_path_buf();
    // The shared bundle trusts a partner CA as well as the test CA.
    let partner = Pki::new("partner CA");
    std::fs::write(dir.join("main-ca.crt"), &setup.pki.ca_pem).unwrap();
    std::fs::write(
        dir.join("ca.crt"),
        format!("{}{}", setup.pki.ca_pem, partner.ca_pem),
    )
    .unwrap();
    let clients = format!(
        r#"
[[clients]]
client_id = "pinned"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=pinned"
tls_client_auth_trust_anchors = "{}"

[[clients]]
client_id = "shared"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=shared"
"#,
        dir.join("main-ca.crt").display()
    );
    let config = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(&setup.config, format!("{config}\n{clients}")).unwrap();
    let server = TestServer::start_setup(setup).await;
    let url = server.https_url("/oauth2/token");
    let own = server.pki.client(&[(DnType::CommonName, "pinned")], vec![]);
    let forged = partner.client(&[(DnType::CommonName, "pinned")], vec![]);
    assert_eq!(
        token_status(&server, &url, Some(&own), None, "pinned").await,
        200
    );
    // Finding 7: the partner CA issues the right subject, and is refused.
    assert_eq!(
        token_status(&server, &url, Some(&forged), None, "pinned").await,
        401
    );
    // A client on the shared bundle accepts any anchor in it: what the
    // README warns about.
    let partner_shared = partner.client(&[(DnType::CommonName, "shared")], vec![]);
    assert_eq!(
        token_status(&server, &url, Some(&partner_shared), None, "shared").await,
        200
    );
}

#[tokio::test]
async fn a_kelvin_sign_is_not_a_k() {
    let clients = r#"
[[clients]]
client_id = "kube"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=kube-admin,OU=k8s,O=ops"
"#;
    let server = TestServer::start(clients).await;
    let url = server.https_url("/oauth2/token");
    let subject = |cn| {
        [
            (DnType::OrganizationName, "ops"),
            (DnType::OrganizationalUnitName, "k8s"),
            (DnType::CommonName, cn),
        ]
    };
    let real = server.pki.client(&subject("kube-admin"), vec![]);
    let kelvin = server.pki.client(&subject("\u{212A}ube-admin"), vec![]);
    let upper = server.pki.client(&subject("KUBE-ADMIN"), vec![]);
    assert_eq!(
        token_status(&server, &url, Some(&real), None, "kube").await,
        200
    );
    assert_eq!(
        token_status(&server, &url, Some(&upper), None, "kube").await,
        200
    );
    assert_eq!(
        token_status(&server, &url, Some(&kelvin), None, "kube").await,
        401
    );
    // RDNs in another order (not the whole reversal) are another DN.
    let shuffled = server.pki.client(
        &[
            (DnType::OrganizationalUnitName, "k8s"),
            (DnType::OrganizationName, "ops"),
            (DnType::CommonName, "kube-admin"),
        ],
        vec![],
    );
    assert_eq!(
        token_status(&server, &url, Some(&shuffled), None, "kube").await,
        401
    );
}
