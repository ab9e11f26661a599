//! certbound-verify against the real server: a resource server's checks of
//! the server's own tokens, with keys from its published JWKS.

use certbound_verify::access::{self, AccessToken, Expect, Failure};
use certbound_verify::binding::{BindingError, Unbound};
use certbound_verify::jwks::Jwks;
use certbound_verify::jws::JwsError;
use rcgen::DnType;

use crate::common::{TestServer, jwt_part};

const CONFIG: &str = r#"
[[clients]]
client_id = "svc"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=svc"
scope = "read write"
[[clients]]
client_id = "plain"
token_endpoint_auth_method = "client_secret_basic"
client_secret_sha256 = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
[[tenants]]
domain = "acme.com"
[[tenants.clients]]
client_id = "svc"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=svc"
"#;

#[tokio::test]
async fn the_servers_tokens_pass_only_with_their_certificate() {
    let server = TestServer::start(CONFIG).await;
    let jwks_bytes = server.jwks_bytes().await;
    let keys = Jwks::from_json(&jwks_bytes, &[]).unwrap();
    let svc = server.pki.client(&[(DnType::CommonName, "svc")], vec![]);
    let other = server.pki.client(&[(DnType::CommonName, "other")], vec![]);
    let token = server.token(&svc, "svc").await;
    let claims = jwt_part(&token, 1);
    let now = claims["iat"].as_u64().unwrap();
    let expect = Expect::new("https://certbound.test", claims["aud"].as_str().unwrap());
    let check = |token: &str, expect: &Expect, cert: Option<&str>, now: u64| {
        access::verify::<access::Extra>(&keys, token, expect, cert, now)
    };
    let bound = svc.thumbprint();

    let ok: AccessToken = check(&token, &expect, Some(&bound), now).unwrap();
    assert_eq!((ok.sub.as_str(), ok.client_id.as_str()), ("svc", "svc"));
    assert!(ok.has_scope("read") && ok.has_scope("write") && !ok.has_scope("rea"));
    assert!(!ok.has_scope(""), "an empty scope is never granted");
    assert_eq!(ok.cnf.unwrap().x5t_s256, bound);

    let refused = |token: &str, expect: &Expect, cert: Option<&str>, now: u64| {
        check(token, expect, cert, now).unwrap_err()
    };
    assert_eq!(
        refused(&token, &expect, Some(&other.thumbprint()), now),
        Failure::Binding(BindingError::OtherCertificate)
    );
    assert_eq!(
        refused(&token, &expect, None, now),
        Failure::Binding(BindingError::NoCertificate)
    );
    let exp = ok.exp;
    assert!(
        check(&token, &expect, Some(&bound), exp + 29).is_ok(),
        "within the leeway"
    );
    assert_eq!(
        refused(&token, &expect, Some(&bound), exp + 30),
        Failure::Expired
    );
    assert!(
        check(&token, &expect, Some(&bound), now - 30).is_ok(),
        "nbf within the leeway"
    );
    assert_eq!(
        refused(&token, &expect, Some(&bound), now - 31),
        Failure::NotYetValid
    );
    let elsewhere = Expect::new("https://certbound.test", "https://api.elsewhere");
    assert_eq!(
        refused(&token, &elsewhere, Some(&bound), now),
        Failure::Audience
    );
    let mut several = elsewhere.clone();
    several.audiences.push(expect.audiences[0].clone());
    assert!(check(&token, &several, Some(&bound), now).is_ok());
    let spoofed = Expect::new("https://certbound.test/", &expect.audiences[0]);
    assert_eq!(
        refused(&token, &spoofed, Some(&bound), now),
        Failure::Issuer
    );

    // Tampered: the claims changed under the signature.
    let parts: Vec<&str> = token.split('.').collect();
    let mut changed = claims.clone();
    changed["scope"] = "read write admin".into();
    let changed = format!(
        "{}.{}.{}",
        parts[0],
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            changed.to_string()
        ),
        parts[2]
    );
    assert_eq!(
        refused(&changed, &expect, Some(&bound), now),
        Failure::Jws(JwsError::BadSignature)
    );

    // Another tenant's token (same keys): another issuer.
    let acme = server.under("/t/acme.com").token(&svc, "svc").await;
    assert_eq!(refused(&acme, &expect, Some(&bound), now), Failure::Issuer);

    // An unbound token (secret-authenticated client): refused unless the
    // resource server accepts unbound tokens.
    let (status, body, _) = server
        .post(
            &server.client(None),
            &server.https_url("/oauth2/token"),
            &[("grant_type", "client_credentials")],
            &[("authorization", &crate::revoke::basic("plain"))],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let unbound = body["access_token"].as_str().unwrap();
    assert_eq!(
        refused(unbound, &expect, None, now),
        Failure::Binding(BindingError::Unbound)
    );
    let mut lenient = expect.clone();
    lenient.unbound = Unbound::Accepted;
    assert!(check(unbound, &lenient, None, now).is_ok());
}
