//! Checking a configuration: every problem found, each naming its key and
//! echoing the bad value, collected rather than stopping at the first.

use std::path::PathBuf;

use ipnet::IpNet;

use super::{Config, MtlsConfig};

/// The config file named does not exist.
#[derive(Debug, thiserror::Error)]
#[error("config file {0} not found")]
pub struct Missing(pub PathBuf);

/// Every problem found in a configuration, each naming its key and echoing
/// the bad value. Shown one per line by `certbound check`, joined into one
/// line by the server.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<String>);

impl Problems {
    /// Adds a problem.
    pub fn push(&mut self, problem: impl Into<String>) {
        self.0.push(problem.into());
    }

    /// Each problem on one line: line breaks and other control characters
    /// in a quoted value become spaces.
    pub fn lines(&self) -> impl Iterator<Item = String> + '_ {
        self.0.iter().map(|p| {
            p.chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect()
        })
    }

    /// `Ok(value)` when there is no problem.
    pub fn or<T>(self, value: T) -> Result<T, Self> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl std::fmt::Display for Problems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.lines().collect::<Vec<_>>().join("; "))
    }
}

impl std::error::Error for Problems {}

impl MtlsConfig {
    /// `trusted_proxies` parsed; each bad entry is a problem.
    pub fn proxy_nets(&self) -> Result<Vec<IpNet>, Problems> {
        let mut problems = Problems::default();
        let mut nets = Vec::new();
        for (i, text) in self.trusted_proxies.iter().enumerate() {
            match text.trim().parse::<IpNet>() {
                Ok(net) => nets.push(net),
                Err(_) => match text.trim().parse::<std::net::IpAddr>() {
                    Ok(ip) => nets.push(IpNet::from(ip)),
                    Err(_) => {
                        problems.push(format!("mtls.trusted_proxies[{i}]: {text:?} is not a CIDR"))
                    }
                },
            }
        }
        problems.or(nets)
    }
}

impl Config {
    /// Every problem with values that need nothing outside the
    /// configuration (files are checked by [`crate::settings::Settings`]).
    pub fn validate(&self) -> Problems {
        let mut problems = Problems::default();
        if self.server.https.is_none() && self.server.http.is_none() {
            problems.push("server: no listener: set server.https or server.http");
        }
        if !(1..=60).contains(&self.tokens.code_lifetime) {
            problems.push(format!(
                "tokens.code_lifetime: {} is not 1 to 60 seconds",
                self.tokens.code_lifetime
            ));
        }
        if let Err(bad) = self.mtls.proxy_nets() {
            problems.0.extend(bad.0);
        }
        self.admin.check(self, &mut problems);
        for (scope, text) in &self.login.scope_descriptions {
            if crate::scope::parse(scope).map_or(true, |s| s.len() != 1) {
                problems.push(format!(
                    "login.scope_descriptions: {scope:?} is not one scope"
                ));
            }
            if text.is_empty() || text.chars().count() > 200 || text.chars().any(char::is_control) {
                problems.push(format!(
                    "login.scope_descriptions.{scope}: a description is 1 to 200 characters on one line"
                ));
            }
        }
        for (name, value) in [
            (
                "tokens.access_token_lifetime",
                self.tokens.access_token_lifetime,
            ),
            (
                "tokens.refresh_token_lifetime",
                self.tokens.refresh_token_lifetime,
            ),
            ("tokens.id_token_lifetime", self.tokens.id_token_lifetime),
            ("login.session_lifetime", self.login.session_lifetime),
            ("login.form_lifetime", self.login.form_lifetime),
            ("login.failure_window", self.login.failure_window),
            (
                "server.header_read_timeout",
                self.server.header_read_timeout,
            ),
            ("server.body_read_timeout", self.server.body_read_timeout),
            ("server.idle_timeout", self.server.idle_timeout),
            (
                "server.http2_keep_alive_interval",
                self.server.http2_keep_alive_interval,
            ),
            ("server.max_connections", self.server.max_connections as u64),
            (
                "server.max_requests_in_flight",
                self.server.max_requests_in_flight as u64,
            ),
            (
                "server.max_connections_per_address",
                self.server.max_connections_per_address as u64,
            ),
            (
                "server.http2_max_streams",
                u64::from(self.server.http2_max_streams),
            ),
            (
                "revocation.compaction_check_interval",
                self.revocation.compaction_check_interval,
            ),
            ("keys.poll_interval", self.keys.poll_interval),
        ] {
            if value == 0 {
                problems.push(format!("{name}: 0 is not allowed, it must be at least 1"));
            }
        }
        let domain_ok = |d: &str| {
            !d.is_empty()
                && d.len() <= 253
                && d.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
                && !d.starts_with('.')
                && !d.contains("..")
        };
        if !domain_ok(&self.tenancy.default_domain) {
            problems.push(format!(
                "tenancy.default_domain: {:?} is not a domain (lowercase letters, digits, '-', '.')",
                self.tenancy.default_domain
            ));
        }
        let mut seen = vec![self.tenancy.default_domain.as_str()];
        for (i, t) in self.tenants.iter().enumerate() {
            if !domain_ok(&t.domain) {
                problems.push(format!(
                    "tenants[{i}].domain: {:?} is not a domain (lowercase letters, digits, '-', '.')",
                    t.domain
                ));
            } else if seen.contains(&t.domain.as_str()) {
                problems.push(format!(
                    "tenants[{i}].domain: {:?} is defined twice",
                    t.domain
                ));
            }
            seen.push(&t.domain);
            if let Some(issuer) = &t.issuer {
                let suffix = format!("/t/{}", t.domain);
                let http = issuer.starts_with("https://") || issuer.starts_with("http://");
                if !http || !issuer.trim_end_matches('/').ends_with(&suffix) {
                    problems.push(format!(
                        "tenants[{i}].issuer: {issuer:?} is not an http(s) URL ending in {suffix} (where its endpoints are)"
                    ));
                }
            }
        }
        // Tokens name their tenant by issuer alone.
        let mut issuers = vec![self.issuer()];
        for (i, t) in self.tenants.iter().enumerate() {
            let issuer = self.for_tenant(t).issuer();
            if issuers.contains(&issuer) {
                problems.push(format!(
                    "tenants[{i}].issuer: {issuer:?} is another tenant's issuer too"
                ));
            }
            issuers.push(issuer);
        }
        if self.introspection.user_cache_seconds > 3600 {
            problems.push(format!(
                "introspection.user_cache_seconds: {} is more than 3600",
                self.introspection.user_cache_seconds
            ));
        }
        if let Some(issuer) = &self.issuer
            && !(issuer.starts_with("https://") || issuer.starts_with("http://"))
        {
            problems.push(format!("issuer: {issuer:?} is not an http(s) URL"));
        }
        if let Some(name) = &self.mtls.client_certificate_header
            && poem::http::HeaderName::try_from(name.trim().to_ascii_lowercase()).is_err()
        {
            problems.push(format!(
                "mtls.client_certificate_header: {name:?} is not a header name"
            ));
        }
        self.revocation.check(&mut problems);
        problems
    }
}
