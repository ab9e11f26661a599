//! `[admin]`: who may use the admin listener's operator endpoints
//! (`POST /admin/revoke`). Metrics and probes there need no credentials.

use serde::{Deserialize, Serialize};

use super::{Config, Problems};

/// `[admin]`
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Client ids (of the default tenant's `[[clients]]`) allowed to call
    /// `POST /admin/revoke`, authenticated by HTTP Basic
    /// (`client_secret_basic`: the admin listener is plain HTTP, so it
    /// carries no client certificate).
    pub clients: Vec<String>,
}

impl AdminConfig {
    /// Each admin client must be a configured secret client.
    pub(super) fn check(&self, config: &Config, problems: &mut Problems) {
        for (i, id) in self.clients.iter().enumerate() {
            let key = format!("admin.clients[{i}]");
            match config.clients.iter().find(|c| &c.client_id == id) {
                None => problems.push(format!("{key}: no client {id:?} in [[clients]]")),
                Some(c) if c.token_endpoint_auth_method != "client_secret_basic" => {
                    problems.push(format!(
                        "{key}: client {id:?} uses {}; the admin endpoint takes HTTP Basic (the listener is plain HTTP and carries no certificate): give it client_secret_basic",
                        c.token_endpoint_auth_method
                    ));
                }
                Some(_) => {}
            }
        }
        if !self.clients.is_empty() && config.server.admin.is_none() {
            problems.push("admin.clients: set server.admin, the listener they use");
        }
    }
}
