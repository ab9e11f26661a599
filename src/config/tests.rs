//! Unit tests of `config.rs`.

use super::*;

#[test]
fn defaults_then_file_then_env() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "c.toml",
            "issuer = \"https://as.example\"\n[tokens]\naccess_token_lifetime = 60\n",
        )?;
        jail.set_env("CERTBOUND_TOKENS__ACCESS_TOKEN_LIFETIME", "120");
        jail.set_env("CERTBOUND_MTLS__TRUSTED_PROXIES", "[\"10.0.0.0/8\"]");
        let c = Config::load(&Source::File("c.toml".into())).map_err(|e| e.to_string())?;
        assert_eq!(c.issuer(), "https://as.example");
        assert_eq!(c.tokens.access_token_lifetime, 120);
        assert_eq!(c.mtls.trusted_proxies.len(), 1);
        assert_eq!(c.server.max_body_bytes, 16 * 1024);
        Ok(())
    });
}

#[test]
fn unknown_key_is_named() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("c.toml", "[server]\nhttps_port = 1\n")?;
        let err = Config::load(&Source::File("c.toml".into())).unwrap_err();
        assert!(err.to_string().contains("https_port"), "{err}");
        Ok(())
    });
}

#[test]
fn bad_cidr_is_rejected() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("c.toml", "[mtls]\ntrusted_proxies = [\"10.0.0.300/8\"]\n")?;
        assert!(Config::load(&Source::File("c.toml".into())).is_err());
        Ok(())
    });
}

#[test]
fn example_config_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("certbound.example.toml");
    let c = Config::load(&Source::File(path)).map_err(|e| e.to_string());
    let c = c.unwrap();
    assert_eq!(
        c.revocation.file,
        Path::new("/var/lib/certbound/data/revocations.log")
    );
}

#[test]
fn embedded_dev_config_loads() {
    figment::Jail::expect_with(|_| {
        let c = Config::load(&Source::EmbeddedDev).map_err(|e| e.to_string())?;
        assert_eq!(c.issuer(), "https://127.0.0.1:9443");
        assert!(!c.clients.is_empty());
        Ok(())
    });
}
