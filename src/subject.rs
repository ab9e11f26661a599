//! How introspection names a user (WSO2's subject identifiers, set by
//! `introspection.subject_identifier_format`): fully qualified,
//! `name@tenant-domain`, or in `app_configured` mode what the token's
//! client asks for. certbound has one user store per tenant, named
//! `PRIMARY` as WSO2 names its primary store.

use crate::config::SubjectFormat;

/// The user store every user is in.
pub const USER_STORE: &str = "PRIMARY";

/// A client's WSO2 service-provider settings "Use tenant domain in local
/// subject identifier" and "Use user store domain in local subject
/// identifier".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LocalSubject {
    /// Append `@tenant-domain`.
    pub tenant_domain: bool,
    /// Prefix `PRIMARY/`.
    pub user_store_domain: bool,
}

/// `user` of tenant `domain` as `format` names it, for a client asking for
/// `local`. Fully qualified is `user@domain` whatever `user` holds (an
/// email-style name becomes `alice@example.com@carbon.super`, as in WSO2);
/// WSO2 leaves the primary store out of a fully qualified name.
pub fn qualified(user: &str, domain: &str, format: SubjectFormat, local: LocalSubject) -> String {
    let (store, tenant) = match format {
        SubjectFormat::FullyQualified => (false, true),
        SubjectFormat::AppConfigured => (local.user_store_domain, local.tenant_domain),
    };
    let mut name = String::with_capacity(USER_STORE.len() + 2 + user.len() + domain.len());
    if store {
        name.push_str(USER_STORE);
        name.push('/');
    }
    name.push_str(user);
    if tenant {
        name.push('@');
        name.push_str(domain);
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_format_and_setting() {
        let none = LocalSubject::default();
        let both = LocalSubject {
            tenant_domain: true,
            user_store_domain: true,
        };
        let full = SubjectFormat::FullyQualified;
        let app = SubjectFormat::AppConfigured;
        assert_eq!(
            qualified("admin", "carbon.super", full, none),
            "admin@carbon.super"
        );
        assert_eq!(qualified("alice", "acme.com", full, both), "alice@acme.com");
        assert_eq!(qualified("alice", "acme.com", app, none), "alice");
        assert_eq!(
            qualified("alice", "acme.com", app, both),
            "PRIMARY/alice@acme.com"
        );
        let store = LocalSubject {
            user_store_domain: true,
            ..none
        };
        assert_eq!(qualified("alice", "acme.com", app, store), "PRIMARY/alice");
        let tenant = LocalSubject {
            tenant_domain: true,
            ..none
        };
        assert_eq!(
            qualified("alice", "acme.com", app, tenant),
            "alice@acme.com"
        );
        assert_eq!(
            qualified("a@example.com", "carbon.super", full, none),
            "a@example.com@carbon.super"
        );
    }
}
