//! Unit tests of `settings.rs`: tenants.

use super::*;
use crate::seal::Purpose;

fn write_config(dir: &Path, tenants: &str) -> PathBuf {
    let d = dir.display();
    crate::keys::generate_key(&dir.join("keys"), crate::keys::Alg::ES256, 1).unwrap();
    crate::keys::generate_key(&dir.join("own"), crate::keys::Alg::ES256, 1).unwrap();
    crate::keys::generate_sealing_key(&dir.join("keys"), 0).unwrap();
    crate::keys::generate_sealing_key(&dir.join("own"), 0).unwrap();
    let path = dir.join("c.toml");
    std::fs::write(
        &path,
        format!(
            "issuer = \"https://as.test/\"\n[server]\nhttps = \"\"\nhttp = \"127.0.0.1:0\"\n[keys]\ndir = \"{d}/keys\"\n[revocation]\nfile = \"{d}/r.log\"\n[tokens]\naudience = \"shared\"\n{tenants}"
        ),
    )
    .unwrap();
    path
}

#[test]
fn every_tenant_seals_for_itself_and_has_its_own_issuer_and_audience() {
    let dir = tempfile::tempdir().unwrap();
    let own = dir.path().join("own").display().to_string();
    let path = write_config(
        dir.path(),
        &format!(
            "[[tenants]]\ndomain = \"acme.com\"\n[[tenants]]\ndomain = \"own.org\"\nkeys_dir = \"{own}\"\n[[tenants]]\ndomain = \"same.net\"\nkeys_dir = \"{}/keys\"\n",
            dir.path().display()
        ),
    );
    let (default, _) = Settings::load(&Source::File(path)).unwrap();
    let sealed = default.sealer.seal(Purpose::Session, &7u8).unwrap();
    for domain in ["acme.com", "own.org", "same.net"] {
        let tenant = &default.tenants[domain];
        assert_eq!(
            tenant.sealer.open::<u8>(Purpose::Session, &sealed),
            None,
            "{domain}"
        );
        let theirs = tenant.sealer.seal(Purpose::Session, &8u8).unwrap();
        assert_eq!(tenant.sealer.open::<u8>(Purpose::Session, &theirs), Some(8));
        assert_eq!(default.sealer.open::<u8>(Purpose::Session, &theirs), None);
        assert_eq!(tenant.tokens.issuer, format!("https://as.test/t/{domain}"));
        assert_eq!(
            tenant.tokens.audience, tenant.tokens.issuer,
            "never the shared audience"
        );
    }
    assert_eq!(default.tokens.audience, "shared");
    assert_eq!(default.key_dirs().len(), 2, "the default's and own.org's");
}

#[test]
fn tenant_problems_name_the_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        "[[tenants]]\ndomain = \"Bad_Domain\"\n[[tenants]]\ndomain = \"acme.com\"\nissuer = \"https://elsewhere/\"\n[[tenants]]\ndomain = \"acme.com\"\n",
    );
    let problems = Settings::load(&Source::File(path)).unwrap_err();
    let text = problems.to_string();
    assert!(text.contains("tenants[0].domain: \"Bad_Domain\""), "{text}");
    assert!(text.contains("tenants[1].issuer"), "{text}");
    assert!(
        text.contains("tenants[2].domain: \"acme.com\" is defined twice"),
        "{text}"
    );
}
