//! `[introspection]`: what RFC 7662 answers say beyond the token's claims,
//! and who besides clients may ask (WSO2's introspection settings).

use serde::{Deserialize, Serialize};

/// `[introspection]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntrospectionConfig {
    /// Add `cnf.x5t#SHA256` (WSO2's name) beside RFC 8705's `x5t#S256`, same
    /// value, for resource servers written against WSO2.
    pub wso2_cnf_alias: bool,
    /// A user holding any of these permissions may call introspection with
    /// HTTP Basic `username:password` (WSO2's
    /// `[resource_access_control.introspect] permissions`).
    pub permissions: Vec<String>,
    /// Seconds a user caller's verified credentials are remembered, so
    /// argon2id does not run on every call; 0 disables.
    pub user_cache_seconds: u64,
    /// A caller of one tenant may introspect another tenant's tokens (WSO2's
    /// `[oauth.introspect] allow_cross_tenant`). Off: they are inactive.
    pub allow_cross_tenant: bool,
    /// How `username` (and, `app_configured`, `sub`) names a user (WSO2's
    /// `[oauth] validation_response_subject_identifier_format`).
    pub subject_identifier_format: SubjectFormat,
}

impl Default for IntrospectionConfig {
    fn default() -> Self {
        Self {
            wso2_cnf_alias: false,
            permissions: vec!["introspect".into()],
            user_cache_seconds: 60,
            allow_cross_tenant: false,
            subject_identifier_format: SubjectFormat::FullyQualified,
        }
    }
}

/// `introspection.subject_identifier_format`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectFormat {
    /// `username` is `name@tenant-domain` (`admin@carbon.super`); `sub` is
    /// the token's own `sub`, as resource servers see it offline.
    FullyQualified,
    /// `username` and a user token's `sub` follow the token's client:
    /// `use_tenant_domain_in_local_subject_identifier` appends
    /// `@tenant-domain`, `use_user_store_domain_in_local_subject_identifier`
    /// prefixes `PRIMARY/`.
    AppConfigured,
}
