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
    let settings = if domain == default.domain {
        default.clone()
    } else {
        default.tenants.get(domain).cloned().ok_or(UnknownTenant)?
    };
    Ok(Routed {
        settings,
        under: Some((format!("/t/{domain}"), format!("/{tail}"))),
    })
}
