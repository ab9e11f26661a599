//! Tenants in the configuration (WSO2 `/t/{domain}/…`): `[tenancy]`,
//! `[[tenants]]`, and the configuration each tenant is built from.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ClientConfig, Config, UserConfig};

/// `[tenancy]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenancyConfig {
    /// The default tenant's domain: its endpoints are served at `/` and at
    /// `/t/{default_domain}/`.
    pub default_domain: String,
}

/// One `[[tenants]]` entry: a tenant with its own clients, users and
/// issuer; everything else as configured for the default tenant.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// The tenant's domain, e.g. `acme.com`: lowercase letters, digits,
    /// `-` and `.`.
    pub domain: String,
    /// Its issuer. Default: the default tenant's issuer + `/t/{domain}`.
    pub issuer: Option<String>,
    /// Its signing and sealing keys. Default: shared with the default
    /// tenant (`keys.dir`).
    pub keys_dir: Option<PathBuf>,
    /// `aud` of its access tokens. Default: its issuer (never the default
    /// tenant's `tokens.audience`, so resource servers tell tenants apart).
    pub audience: Option<String>,
    /// A TOML file of its `[[users]]`.
    pub users_file: Option<PathBuf>,
    /// Its clients.
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
    /// Its users.
    #[serde(default)]
    pub users: Vec<UserConfig>,
}

impl Config {
    /// The configuration of tenant `t`: this one with `t`'s issuer,
    /// clients, users and keys, and no tenants of its own.
    pub fn for_tenant(&self, t: &TenantConfig) -> Self {
        let mut c = self.clone();
        c.issuer = Some(
            t.issuer
                .clone()
                .unwrap_or_else(|| format!("{}/t/{}", self.issuer(), t.domain)),
        );
        c.tokens.audience = t.audience.clone();
        c.clients = t.clients.clone();
        c.users = t.users.clone();
        c.login.users_file = t.users_file.clone();
        if let Some(dir) = &t.keys_dir {
            c.keys.dir = dir.clone();
        }
        c.tenants = Vec::new();
        c
    }

    /// The configuration of the tenant named `domain` (the default
    /// tenant's own for `tenancy.default_domain`).
    pub fn tenant_config(&self, domain: &str) -> Option<Self> {
        if domain == self.tenancy.default_domain {
            return Some(self.clone());
        }
        let tenant = self.tenants.iter().find(|t| t.domain == domain)?;
        Some(self.for_tenant(tenant))
    }
}
