//! Unit tests of `clients.rs`.

use super::*;

fn cfg(method: &str) -> ClientConfig {
    ClientConfig {
        client_id: "c".into(),
        token_endpoint_auth_method: method.into(),
        ..Default::default()
    }
}

#[test]
fn inconsistent_clients_are_named() {
    let no_subject = Clients::new(&[cfg("tls_client_auth")], None, Path::new("."), false);
    assert!(no_subject.unwrap_err().contains("client \"c\""));

    let mut two = cfg("tls_client_auth");
    two.tls_client_auth_subject_dn = Some("CN=a".into());
    two.tls_client_auth_san_dns = Some("a".into());
    let anchors = {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec![]).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        TrustAnchors::new(vec![p.self_signed(&key).unwrap().der().clone()], false).unwrap()
    };
    let err = Clients::new(&[two], Some(anchors), Path::new("."), false).unwrap_err();
    assert!(err.contains("exactly one subject"), "{err}");

    let mut secret = cfg("client_secret_basic");
    secret.client_secret_sha256 = Some("zz".into());
    assert!(Clients::new(&[secret], None, Path::new("."), false).is_err());
    assert!(Clients::new(&[cfg("private_key_jwt")], None, Path::new("."), false).is_err());
    assert!(
        Clients::new(
            &[cfg("self_signed_tls_client_auth")],
            None,
            Path::new("."),
            false
        )
        .is_err()
    );
}

#[test]
fn secret_methods_compare_hashes() {
    let hash = hex::encode(Sha256::digest(b"s3cret"));
    let mut basic = cfg("client_secret_basic");
    basic.client_secret_sha256 = Some(hash.clone());
    let mut post = cfg("client_secret_post");
    post.client_id = "p".into();
    post.client_secret_sha256 = Some(hash);
    let clients = Clients::new(&[basic, post], None, Path::new("."), false).unwrap();
    fn basic_creds(secret: &str) -> Credentials<'_> {
        Credentials {
            basic: Some(("c", secret)),
            ..Default::default()
        }
    }
    let _unused = || Credentials {
        basic: None,
        ..Default::default()
    };
    assert!(clients.authenticate(basic_creds("s3cret"), 0).is_ok());
    assert!(matches!(
        clients.authenticate(basic_creds("wrong"), 0),
        Err(OAuthError::InvalidClient(_))
    ));
    let post_creds = |secret| Credentials {
        client_id: Some("p"),
        client_secret: Some(secret),
        ..Default::default()
    };
    assert!(clients.authenticate(post_creds("s3cret"), 0).is_ok());
    assert!(clients.authenticate(post_creds("nope"), 0).is_err());
    // A basic client cannot use the post method, and vice versa.
    let wrong_method = Credentials {
        client_id: Some("c"),
        client_secret: Some("s3cret"),
        ..Default::default()
    };
    assert!(clients.authenticate(wrong_method, 0).is_err());
    let two_methods = Credentials {
        basic: Some(("p", "s3cret")),
        client_secret: Some("s3cret"),
        ..Default::default()
    };
    assert!(matches!(
        clients.authenticate(two_methods, 0),
        Err(OAuthError::InvalidRequest(_))
    ));
}
