//! `certbound verify` against the real server: JWKS by https URL (with a
//! private CA), by file, and by the issuer's discovery; valid only with
//! the token's certificate; every failure exits 1 and says why.

use rcgen::DnType;

use crate::common::rs::free_port;
use crate::common::{Setup, TestServer, run_certbound};

const CONFIG: &str = r#"
[[clients]]
client_id = "svc"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=svc"
scope = "read"
"#;

// Multi-threaded: the command blocks a thread while the server answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certbound_verify_checks_a_token_as_a_resource_server_would() {
    // The server's issuer is its own address, so discovery finds it.
    let setup = Setup::new(CONFIG, "[]", certbound::keys::Alg::ES256);
    let port = free_port();
    let issuer = format!("https://127.0.0.1:{port}");
    let text = std::fs::read_to_string(&setup.config)
        .unwrap()
        .replace(
            "issuer = \"https://certbound.test\"",
            &format!("issuer = \"{issuer}\""),
        )
        .replace(
            "https = \"127.0.0.1:0\"",
            &format!("https = \"127.0.0.1:{port}\""),
        );
    std::fs::write(&setup.config, text).unwrap();
    let server = TestServer::start_setup(setup).await;
    let svc = server.pki.client(&[(DnType::CommonName, "svc")], vec![]);
    let other = server.pki.client(&[(DnType::CommonName, "other")], vec![]);
    let token = server.token(&svc, "svc").await;
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let svc_crt = file("svc.crt", svc.cert_pem.as_bytes());
    let other_crt = file("other.crt", other.cert_pem.as_bytes());
    let key = file("svc.key", svc.key_pem.as_bytes());
    let ca = file("ca.crt", server.pki.ca_pem.as_bytes());
    let jwks_url = server.https_url("/oauth2/jwks");
    let jwks_bytes = server.jwks_bytes().await;
    let jwks_file = file("jwks.json", &jwks_bytes);
    let verify = |args: &[&str]| {
        let mut all = vec!["verify", "--token", &token];
        all.extend_from_slice(args);
        run_certbound(&all, None)
    };

    // Discovery, over https with the private CA.
    let (ok, out, err) = verify(&["--cert", &svc_crt, "--issuer", &issuer, "--cacert", &ca]);
    assert!(ok, "{out}{err}");
    assert!(out.trim_end().ends_with("valid"), "{out}");
    let claims: serde_json::Value =
        serde_json::from_str(out.trim_end().trim_end_matches("valid")).unwrap();
    assert_eq!(claims["client_id"], "svc");
    assert_eq!(claims["aud"], issuer.as_str());
    assert!(claims["nbf"].is_u64() && claims["exp"].is_u64());
    assert_eq!(claims["cnf"]["x5t#S256"], svc.thumbprint().as_str());
    // A JWKS URL, and a JWKS file.
    for jwks in [jwks_url.as_str(), jwks_file.as_str()] {
        let (ok, out, err) = verify(&[
            "--cert", &svc_crt, "--jwks", jwks, "--issuer", &issuer, "--cacert", &ca,
        ]);
        assert!(ok && out.ends_with("valid\n"), "{jwks}: {out}{err}");
    }

    // Failures: exit 1, and which check.
    let failing: [(&[&str], &str); 7] = [
        (
            &["--cert", &other_crt, "--issuer", &issuer, "--cacert", &ca],
            "invalid: the token is bound to another client certificate",
        ),
        (
            &["--issuer", &issuer, "--cacert", &ca],
            "invalid: the token is bound to a client certificate",
        ),
        (
            &[
                "--cert",
                &svc_crt,
                "--jwks",
                &jwks_file,
                "--issuer",
                "https://elsewhere.test",
            ],
            "invalid: issued by another issuer",
        ),
        (
            &[
                "--cert",
                &svc_crt,
                "--jwks",
                &jwks_file,
                "--issuer",
                &issuer,
                "--audience",
                "https://api.test",
            ],
            "invalid: for another audience",
        ),
        (
            &[
                "--cert",
                &dir.path().join("missing.crt").display().to_string(),
                "--jwks",
                &jwks_file,
                "--issuer",
                &issuer,
            ],
            "missing.crt: No such file",
        ),
        (
            &["--cert", &key, "--jwks", &jwks_file, "--issuer", &issuer],
            "holds a private key, not a certificate",
        ),
        (&["--cert", &svc_crt, "--issuer", &issuer], "UnknownIssuer"),
    ];
    for (args, says) in failing {
        let (ok, out, err) = verify(args);
        assert!(!ok, "{args:?}: {out}");
        assert!(
            out.contains(says) || err.contains(says),
            "{args:?}: {out}{err}"
        );
    }
    // The issuer is always checked: without --issuer, nothing is valid.
    let (ok, out, err) = verify(&["--cert", &svc_crt, "--jwks", &jwks_file]);
    assert!(!ok && err.contains("--issuer"), "{out}{err}");
    // A tampered token fails.
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    let flipped = if parts[2].as_bytes()[5] == b'A' {
        "B"
    } else {
        "A"
    };
    parts[2].replace_range(5..6, flipped);
    let tampered = parts.join(".");
    let (ok, out, _) = run_certbound(
        &[
            "verify", "--token", &tampered, "--cert", &svc_crt, "--jwks", &jwks_file, "--issuer",
            &issuer,
        ],
        None,
    );
    assert!(!ok && out.contains("invalid: bad signature"), "{out}");
}
