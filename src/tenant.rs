//! Tenants (WSO2's `/t/{domain}/…`): which tenant's settings a request
//! path is for, and the path it is routed as. The default tenant is served
//! at `/` and at `/t/{tenancy.default_domain}/`; every other tenant only
//! under its `/t/{domain}/`. An unknown tenant is 404, its name never
//! echoed.

use std::sync::Arc;

use crate::settings::Settings;

/// The path prefix a request came in under (`""` or `/t/{domain}`), for
/// what must be addressed back to it (cookie paths).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BasePath(pub String);

/// Where a request goes: its tenant's settings and, when it came in under
/// `/t/{domain}`, that prefix and the path without it.
#[derive(Debug)]
pub struct Routed {
    /// The tenant's settings.
    pub settings: Arc<Settings>,
    /// `(prefix, path)` when the path named a tenant.
    pub under: Option<(String, String)>,
}

/// The path names no tenant this server has (or only a bare `/t/…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownTenant;

/// A request path's tenant.
pub fn route(default: &Arc<Settings>, path: &str) -> Result<Routed, UnknownTenant> {
    let Some(rest) = path.strip_prefix("/t/") else {
        return Ok(Routed {
            settings: default.clone(),
            under: None,
        });
    };
    let (domain, tail) = rest.split_once('/').ok_or(UnknownTenant)?;
    if tail.is_empty() {
        return Err(UnknownTenant);
    }
    let settings = Tenants::lookup(default, domain).ok_or(UnknownTenant)?;
    Ok(Routed {
        settings: settings.clone(),
        under: Some((format!("/t/{domain}"), format!("/{tail}"))),
    })
}

/// Every tenant's settings as the request found them: the default
/// tenant's, which hold the others (attached beside the request's own
/// tenant's settings; cross-tenant introspection looks tokens up here).
#[derive(Debug, Clone)]
pub struct Tenants(pub Arc<Settings>);

impl Tenants {
    /// The tenant named `domain`.
    pub fn get(&self, domain: &str) -> Option<&Arc<Settings>> {
        Self::lookup(&self.0, domain)
    }

    /// The tenant named `domain` among `root` (the default tenant) and
    /// the tenants it holds.
    fn lookup<'a>(root: &'a Arc<Settings>, domain: &str) -> Option<&'a Arc<Settings>> {
        if domain == root.domain {
            Some(root)
        } else {
            root.tenants.get(domain)
        }
    }

    /// The tenant whose issuer `token` names in its `iss`. Read without
    /// verifying, only to choose whose keys then verify the token.
    pub fn claimed_by(&self, token: &str) -> Option<&Arc<Settings>> {
        #[derive(serde::Deserialize)]
        struct Issuer<'a> {
            #[serde(borrow)]
            iss: std::borrow::Cow<'a, str>,
        }
        use base64::Engine;
        if token.len() > crate::token::MAX_TOKEN_LEN {
            return None;
        }
        let payload = token.split('.').nth(1)?;
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .ok()?;
        let Issuer { iss } = serde_json::from_slice(&json).ok()?;
        let root = &self.0;
        std::iter::once(root)
            .chain(root.tenants.values())
            .find(|t| t.tokens.issuer == iss)
    }
}
