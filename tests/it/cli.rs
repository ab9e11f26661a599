//! The `certbound` binary: configuration errors and operator commands.

fn certbound(args: &[&str], dir: &std::path::Path) -> (bool, String, String) {
    crate::common::run_certbound(args, Some(dir))
}

#[test]
fn config_errors_exit_non_zero_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("unknown.toml", "[server]\nhttps_port = 1\n", "https_port"),
        (
            "cidr.toml",
            "[mtls]\ntrusted_proxies = [\"10.0.0.300/8\"]\n",
            "trusted_proxies",
        ),
        (
            "client.toml",
            "[[clients]]\nclient_id = \"x\"\ntoken_endpoint_auth_method = \"tls_client_auth\"\n",
            "client \"x\"",
        ),
    ];
    for (file, contents, expected) in cases {
        std::fs::write(dir.path().join(file), contents).unwrap();
        let (ok, _, stderr) = certbound(&["serve", "--config", file], dir.path());
        assert!(!ok, "{file} should fail");
        assert!(stderr.contains(expected), "{file}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(
            stderr
                .trim()
                .lines()
                .filter(|l| l.starts_with("certbound:"))
                .count(),
            1,
            "{stderr}"
        );
    }
    let (ok, _, stderr) = certbound(&["serve", "--config", "missing.toml"], dir.path());
    assert!(!ok && stderr.contains("missing.toml"), "{stderr}");
}

#[test]
fn operator_commands() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = certbound(&["dev-certs"], dir.path());
    assert!(ok, "{err}");
    assert!(out.contains("client.crt"));
    let (ok, thumb, _) = certbound(&["thumbprint", "keys/client.crt"], dir.path());
    assert!(ok);
    let pem = std::fs::read_to_string(dir.path().join("keys/client.crt")).unwrap();
    let der = certbound::cert::header::decode(&pem).unwrap();
    use sha2::Digest;
    let expected = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        sha2::Sha256::digest(&der),
    );
    assert_eq!(thumb.trim(), expected);
    // From stdin too; a key file is named for what it is.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_certbound"))
        .args(["thumbprint", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), pem.as_bytes()).unwrap();
    let piped = child.wait_with_output().unwrap();
    assert!(piped.status.success());
    assert_eq!(String::from_utf8_lossy(&piped.stdout).trim(), expected);
    let (ok, _, err) = certbound(&["thumbprint", "keys/client.key"], dir.path());
    assert!(
        !ok && err.contains("holds a private key, not a certificate"),
        "{err}"
    );

    // dev-certs again refuses, and says so with exit 1.
    let (ok, _, err) = certbound(&["dev-certs"], dir.path());
    assert!(!ok && err.contains("pass --force"), "{err}");
    // Another client certificate from the development CA, and its entry.
    let (ok, out, err) = certbound(&["dev-certs", "--client", "orders"], dir.path());
    assert!(ok, "{err}");
    assert!(
        out.contains("tls_client_auth_subject_dn = \"CN=orders,O=certbound dev\""),
        "{out}"
    );
    let ca = certbound::cert::read_pem_certificates(&dir.path().join("keys/ca.crt")).unwrap();
    let anchors = certbound::cert::matching::TrustAnchors::new(ca, false).unwrap();
    let issued =
        certbound::cert::read_pem_certificates(&dir.path().join("keys/orders.crt")).unwrap();
    let issued = certbound::cert::ClientCertificate::from_chain(issued).unwrap();
    assert_eq!(anchors.verify(&issued, certbound::keys::unix_now()), Ok(()));
    let (ok, _, err) = certbound(&["dev-certs", "--client", "orders"], dir.path());
    assert!(!ok && err.contains("pass --force"), "{err}");
    let (ok, _, err) = certbound(&["dev-certs", "--client", "../up"], dir.path());
    assert!(!ok && err.contains("a client name is"), "{err}");

    let (ok, out, _) = certbound(&["secret"], dir.path());
    assert!(ok);
    let secret = out
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("client_secret = ");
    assert!(secret.len() >= 43, "256 bits");
    assert!(out.contains(&hex::encode(sha2::Sha256::digest(secret.as_bytes()))));

    // The first key signs at once; a rotation publishes the next one and
    // keeps the active key, whatever --keep says (it still signs).
    let (ok, out, err) = certbound(&["keys", "generate"], dir.path());
    assert!(ok && out.contains(", now)"), "{out}{err}");
    let (ok, out, err) = certbound(
        &["keys", "rotate", "--alg", "EdDSA", "--keep", "1"],
        dir.path(),
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("kept ") && out.contains("it is active"),
        "{out}"
    );
    let (ok, _, err) = certbound(&["keys", "rotate", "--keep", "0"], dir.path());
    assert!(!ok && err.contains("--keep must be at least 1"), "{err}");
    let (ok, list, _) = certbound(&["keys", "list"], dir.path());
    assert!(ok);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(
        lines[0], "KIND\tKID\tALG\tSTATE\tACTIVATES\tNEXT\tFILE",
        "{list}"
    );
    assert_eq!(lines.len(), 3, "{list}");
    let fields: Vec<&str> = lines[1].split('\t').collect();
    assert_eq!(
        (fields[0], fields[2], fields[3]),
        ("signing", "EdDSA", "published")
    );
    assert!(
        fields[4].starts_with("20") && fields[4].ends_with('Z'),
        "RFC 3339: {}",
        fields[4]
    );
    assert!(fields[5].starts_with("active at 20"), "{}", fields[5]);
    let fields: Vec<&str> = lines[2].split('\t').collect();
    assert_eq!((fields[2], fields[3]), ("ES256", "active"));
    assert!(fields[5].starts_with("retiring at 20"), "{}", fields[5]);
    let (ok, _, err) = certbound(&["keys", "generate", "--alg", "HS256"], dir.path());
    assert!(!ok && err.contains("HS256"));
}

#[tokio::test]
async fn revocations_list_stats_and_compact() {
    use certbound::revocation::{Kind, Record};
    let server = crate::common::TestServer::start("").await;
    let dir = server.dir.path().to_path_buf();
    let dir = dir.as_path();
    let now = certbound::keys::unix_now();
    let list = &server.state.revocations;
    for (kind, id, expires) in [
        (Kind::Jti, "live-jti", now + 3600),
        (Kind::Family, "live-family", now + 3600),
        (Kind::Jti, "old-jti", now - 3600),
        (Kind::Jti, "grace-jti", now - 60),
    ] {
        list.record(Record::new(kind, id, expires).unwrap())
            .await
            .unwrap();
    }
    let config = ["--config", "certbound.toml"];
    let run = |args: &[&str]| certbound(&[&config[..], args].concat(), dir);

    let (ok, out, err) = run(&["revocations", "list"]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(out.contains("jti\tlive-jti\t20") && out.contains("family\tlive-family\t"));
    assert!(out.contains("\tin force\n"), "{out}");
    let grace = out.lines().find(|l| l.contains("grace-jti")).unwrap();
    assert!(grace.contains("\texpired, kept until 20"), "{grace}");
    let (_, out, _) = run(&["revocations", "list", "--all"]);
    assert!(
        out.contains("jti\told-jti\t") && out.contains("\texpired"),
        "{out}"
    );

    let (ok, out, err) = run(&["revocations", "stats"]);
    assert!(ok, "{err}");
    assert!(out.contains("records\t4"), "{out}");
    assert!(out.contains("jti\tlive 2\texpired 1"), "{out}");
    assert!(out.contains("family\tlive 1\texpired 0"), "{out}");

    // Not while the server holds the list.
    let (ok, _, err) = run(&["revocations", "compact"]);
    assert!(!ok && err.contains("in use"), "{err}");
    let _kept = server.stop();
    let (ok, out, err) = loop {
        let r = run(&["revocations", "compact"]);
        if !r.2.contains("in use") {
            break r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(ok, "{err}");
    assert!(out.contains("4 records -> 3"), "{out}");
    let (_, out, _) = run(&["revocations", "list", "--all"]);
    assert!(!out.contains("old-jti"), "{out}");

    // Damage is reported with line numbers, and the rest is listed.
    let file = dir.join("data/revocations.log");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("garbage line\njti torn");
    std::fs::write(&file, text).unwrap();
    let (ok, out, err) = run(&["revocations", "list"]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 3);
    assert!(
        err.contains("line 5: skipped") && err.contains("line 6: skipped (torn"),
        "{err}"
    );
}
