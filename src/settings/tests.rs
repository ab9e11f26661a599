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

#[test]
fn issuers_are_unique() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        "[[tenants]]\ndomain = \"acme.com\"\nissuer = \"https://as.test/t/acme.com\"\n",
    );
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "issuer = \"https://as.test/\"",
        "issuer = \"https://as.test/t/acme.com\"",
    );
    std::fs::write(&path, text).unwrap();
    let text = Settings::load(&Source::File(path)).unwrap_err().to_string();
    assert!(
        text.contains(
            "tenants[0].issuer: \"https://as.test/t/acme.com\" is another tenant's issuer too"
        ),
        "{text}"
    );
}

#[test]
fn app_configured_names_never_name_two_users_alike() {
    let dir = tempfile::tempdir().unwrap();
    let hash = crate::users::hash_password("pw").unwrap();
    let user = |t: &str, name: &str| {
        format!("[[{t}users]]\nusername = \"{name}\"\npassword_hash = \"{hash}\"\n")
    };
    // Email-style names, names of another tenant's form, and a '/' are
    // fine while no two users could be shown alike.
    let fine = format!(
        "{}{}{}[[tenants]]\ndomain = \"acme.com\"\n{}{}",
        user("", "alice@example.com"),
        user("", "bob@acme.com"),
        user("", "ops/carol"),
        user("tenants.", "alice"),
        user("tenants.", "dave@carbon.super"),
    );
    for format in ["fully_qualified", "app_configured"] {
        let path = write_config(
            dir.path(),
            &format!("[introspection]\nsubject_identifier_format = \"{format}\"\n{fine}"),
        );
        assert!(Settings::load(&Source::File(path)).is_ok(), "{format}");
    }
    let clashing = format!(
        "[introspection]\nsubject_identifier_format = \"app_configured\"\n{}{}{}[[tenants]]\ndomain = \"acme.com\"\n{}{}[[tenants.clients]]\nclient_id = \"c\"\ntoken_endpoint_auth_method = \"client_secret_basic\"\nclient_secret_sha256 = \"{}\"\nowner = \"PRIMARY/erin\"\n",
        user("", "alice"),
        user("", "alice@carbon.super"),
        user("", "PRIMARY/bob@carbon.super"),
        user("tenants.", "erin"),
        user("tenants.", "bob"),
        "0".repeat(64),
    );
    let path = write_config(dir.path(), &clashing);
    let text = Settings::load(&Source::File(path)).unwrap_err().to_string();
    for expected in [
        "users: \"alice\" and \"alice@carbon.super\" would both be named \"alice@carbon.super\"",
        "tenants[0] (acme.com): users: \"PRIMARY/erin\" and \"erin\" would both be named \"PRIMARY/erin\"",
    ] {
        assert!(text.contains(expected), "{expected}: {text}");
    }
    assert!(!text.contains("\"bob\""), "another tenant's bob: {text}");
}
