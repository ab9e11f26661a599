//! Everything that comes from configuration: the config itself, clients,
//! users, trust anchors, signing and sealing keys, discovery documents and
//! the HTTPS server certificate. Built and checked in full, then swapped in
//! at once ([`crate::AppState::reload`]); a request loads one `Settings`
//! and uses it from start to end.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use poem::http::HeaderName;

use crate::addr::TrustedProxies;
use crate::cert::matching::TrustAnchors;
use crate::clients::Clients;
use crate::config::{Config, Problems, Source, SubjectFormat};
use crate::keys::KeySet;
use crate::oauth::discovery::Documents;
use crate::oauth::paths;
use crate::seal::Sealer;
use crate::server::ConnSettings;
use crate::token::TokenService;
use crate::users::Users;

/// One consistent set of settings.
pub struct Settings {
    /// The configuration it was built from.
    pub config: Config,
    /// Registered clients.
    pub clients: Arc<Clients>,
    /// Who can log in.
    pub users: Arc<Users>,
    /// Signing and verification keys.
    pub keys: Arc<KeySet>,
    /// Access-token minting and verification.
    pub tokens: TokenService,
    /// Whose word about a request (certificate header, `X-Forwarded-For`)
    /// is believed.
    pub proxies: TrustedProxies,
    /// The header a trusted proxy puts the client certificate in.
    pub cert_header: Option<HeaderName>,
    /// Discovery documents and JWKS, serialised once.
    pub documents: Documents,
    /// Seals codes, login sessions and forms.
    pub sealer: Arc<Sealer>,
    /// The HTTPS listener's TLS configuration (server certificate).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Per-connection protocol settings (timeouts, HTTP/2 limits).
    pub conn: Arc<ConnSettings>,
    /// Whether some user may call introspection (holds one of
    /// `introspection.permissions`): only then is a Basic caller that is no
    /// client taken for a user.
    pub user_callers: bool,
    /// This tenant's domain.
    pub domain: String,
    /// Where this tenant's endpoints are: `""` for the default tenant,
    /// `/t/{domain}` for another (cookie paths follow it).
    pub base_path: String,
    /// The other tenants, by domain (only the default tenant's settings
    /// hold them; swapped together with it).
    pub tenants: std::collections::HashMap<String, Arc<Settings>>,
    /// Changes whenever a signing key leaves the key set: verified tokens
    /// cached under another epoch are verified again.
    pub key_epoch: u64,
    /// Unique to this value (every build and reload makes a new one):
    /// what a cached introspection answer was made under.
    pub generation: u64,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("issuer", &self.tokens.issuer)
            .field("key_epoch", &self.key_epoch)
            .finish_non_exhaustive()
    }
}

/// A file the settings need that does not exist yet: written only once
/// every check has passed (today: a first sealing key).
#[derive(Debug)]
pub struct Unsaved {
    /// Where it goes.
    pub path: PathBuf,
    /// What it holds.
    pub contents: Vec<u8>,
}

impl Settings {
    /// Reads the configuration from `source` and everything it names,
    /// reporting every problem at once. Nothing is written: a missing
    /// sealing key is generated in memory and returned as [`Unsaved`].
    pub fn load(source: &Source) -> Result<(Self, Option<Unsaved>), Problems> {
        Self::build(Config::parse(source)?)
    }

    /// As [`Self::load`], from a configuration already read: the default
    /// tenant's settings, holding every other tenant's.
    pub fn build(config: Config) -> Result<(Self, Option<Unsaved>), Problems> {
        let domain = config.tenancy.default_domain.clone();
        let built = Self::build_one(config.clone(), domain, String::new(), None);
        // When the default tenant fails, only its problems are reported:
        // tenants inherit most of its settings and would repeat them.
        let (mut settings, unsaved) = built?;
        let mut problems = Problems::default();
        for (i, t) in config.tenants.iter().enumerate() {
            match Self::tenant(&config, i, t, Some(&settings.sealer)) {
                Ok(tenant) => {
                    problems.0.extend(
                        tenant
                            .name_collisions()
                            .into_iter()
                            .map(|e| format!("tenants[{i}] ({}): {e}", t.domain)),
                    );
                    settings.tenants.insert(t.domain.clone(), Arc::new(tenant));
                }
                Err(more) => problems.0.extend(more.0),
            }
        }
        problems.0.extend(settings.name_collisions());
        problems.or((settings, unsaved))
    }

    /// With `app_configured` names, pairs of users (or client owners) of
    /// one tenant that introspection would name alike: `alice` is shown as
    /// `alice@acme.com` or `PRIMARY/alice` where a client asks, the very
    /// names of users `alice@acme.com` and `PRIMARY/alice`.
    fn name_collisions(&self) -> Vec<String> {
        use crate::subject::{LocalSubject, qualified};
        if self.config.introspection.subject_identifier_format != SubjectFormat::AppConfigured {
            return Vec::new();
        }
        let mut names: Vec<&str> = self
            .users
            .names()
            .chain(self.clients.iter().filter_map(|c| c.owner.as_deref()))
            .collect();
        names.sort_unstable();
        names.dedup();
        let mut shown: std::collections::HashMap<String, &str> = Default::default();
        let mut problems = std::collections::BTreeSet::new();
        for name in names {
            for (tenant_domain, user_store_domain) in
                [(false, false), (true, false), (false, true), (true, true)]
            {
                let local = LocalSubject {
                    tenant_domain,
                    user_store_domain,
                };
                let as_shown = qualified(name, &self.domain, SubjectFormat::AppConfigured, local);
                match shown.get(&as_shown) {
                    Some(other) if *other != name => {
                        problems.insert(format!(
                            "users: {other:?} and {name:?} would both be named {as_shown:?} in introspection answers (subject_identifier_format = \"app_configured\"); rename one"
                        ));
                    }
                    Some(_) => {}
                    None => {
                        shown.insert(as_shown, name);
                    }
                }
            }
        }
        problems.into_iter().collect()
    }

    /// Tenant `i`'s settings; its problems name it.
    fn tenant(
        config: &Config,
        i: usize,
        t: &crate::config::TenantConfig,
        shared_sealer: Option<&Sealer>,
    ) -> Result<Self, Problems> {
        let sealer = match &t.keys_dir {
            Some(_) => None,
            None => shared_sealer.map(|s| s.bound_to(&t.domain)),
        };
        let base_path = format!("/t/{}", t.domain);
        Self::build_one(config.for_tenant(t), t.domain.clone(), base_path, sealer)
            .map(|(settings, _)| settings)
            .map_err(|p| {
                Problems(
                    p.0.into_iter()
                        .map(|e| format!("tenants[{i}] ({}): {e}", t.domain))
                        .collect(),
                )
            })
    }

    /// One tenant's settings. `sealer`: the keys it shares with the default
    /// tenant, bound to its domain; `None` reads them from `keys.dir`.
    fn build_one(
        config: Config,
        domain: String,
        base_path: String,
        sealer: Option<Sealer>,
    ) -> Result<(Self, Option<Unsaved>), Problems> {
        let mut problems = if base_path.is_empty() {
            config.validate()
        } else {
            Problems::default()
        };
        let mut note = |r: Result<(), String>| {
            if let Err(e) = r {
                problems.push(e);
            }
        };
        let proxies = TrustedProxies {
            nets: config.mtls.proxy_nets().unwrap_or_default(),
            on_https: config.mtls.header_on_https,
        };
        let cert_header = config
            .mtls
            .client_certificate_header
            .as_deref()
            .and_then(|name| HeaderName::try_from(name.trim().to_ascii_lowercase()).ok());
        let trust = match &config.mtls.trust_anchors {
            Some(path) => {
                match crate::cert::read_pem_certificates(path).and_then(|certs| {
                    TrustAnchors::new(certs, config.mtls.allow_leaf_without_eku)
                        .map_err(|e| format!("{}: {e}", path.display()))
                }) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        note(Err(format!("mtls.trust_anchors: {e}")));
                        None
                    }
                }
            }
            None => None,
        };
        let clients = match Clients::checked(
            &config.clients,
            trust,
            config.mtls.trust_anchors.is_some(),
            Path::new(""),
            config.mtls.allow_leaf_without_eku,
        ) {
            Ok(c) => Some(c),
            Err(bad) => {
                for p in bad.0 {
                    note(Err(p));
                }
                None
            }
        };
        let users = Users::new(&config.users, config.login.users_file.as_deref())
            .map_err(|e| note(Err(format!("users: {e}"))))
            .ok();
        let keys = KeySet::load(&config.keys.dir, None)
            .map_err(|e| note(Err(format!("keys.dir: {e}"))))
            .ok();
        let sealing_path = config.keys.dir.join(crate::keys::files::FIRST_SEALING_KEY);
        let sealing = match sealer {
            Some(sealer) => Ok(Some(sealer)),
            None => Sealer::load(&config.keys.dir),
        }
        .map_err(|e| note(Err(format!("keys.dir: {e}"))))
        .ok();
        let tls = match config.server.https {
            Some(_) => crate::tls::server_config(
                &config.server.tls_certificate,
                &config.server.tls_private_key,
            )
            .map_err(|e| note(Err(e)))
            .ok(),
            None => None,
        };
        let (Some(clients), Some(users), Some(keys), Some(sealing)) =
            (clients, users, keys, sealing)
        else {
            return Err(problems);
        };
        if config.server.https.is_some() && tls.is_none() {
            return Err(problems);
        }
        if !problems.0.is_empty() {
            return Err(problems);
        }
        let (sealer, unsaved) = match sealing {
            // A tenant's seals are bound to its domain, whatever keys it uses.
            Some(sealer) if !base_path.is_empty() => (sealer.bound_to(&domain), None),
            Some(sealer) => (sealer, None),
            None if !base_path.is_empty() => {
                return Err(Problems(vec![format!(
                    "keys_dir: no sealing key in {} (certbound keys --tenant {domain} generate --sealing)",
                    config.keys.dir.display()
                )]));
            }
            None => {
                let (sealer, contents) = Sealer::generate().map_err(|e| Problems(vec![e]))?;
                let unsaved = Unsaved {
                    path: sealing_path,
                    contents,
                };
                (sealer, Some(unsaved))
            }
        };
        let issuer = config.issuer();
        let tokens = TokenService {
            refresh_audience: paths::url(&issuer, paths::TOKEN),
            refresh_lifetime: config.tokens.refresh_token_lifetime,
            audience: config
                .tokens
                .audience
                .clone()
                .unwrap_or_else(|| issuer.clone()),
            issuer,
            lifetime: config.tokens.access_token_lifetime,
        };
        let user_callers = users.any_holds(&config.introspection.permissions);
        let settings = Self::assemble(Self {
            user_callers,
            conn: Arc::new(ConnSettings::new(&config.server, proxies.nets.clone())),
            config,
            clients: Arc::new(clients),
            users: Arc::new(users),
            keys: Arc::new(keys),
            tokens,
            proxies,
            cert_header,
            documents: Documents::default(),
            sealer: Arc::new(sealer),
            tls,
            domain,
            base_path,
            tenants: Default::default(),
            key_epoch: 0,
            generation: 0,
        })?;
        Ok((settings, unsaved))
    }

    /// Derives what depends on several parts: the discovery documents and
    /// JWKS, and the sealed-value cap.
    fn assemble(mut self) -> Result<Self, Problems> {
        static GENERATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        self.generation = GENERATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.documents = Documents::build(&self.config, &self.clients, &self.users, &self.keys)
            .map_err(|e| Problems(vec![e]))?;
        let cap = crate::oauth::authorize::max_sealed_json(&self.clients);
        if let Some(sealer) = Arc::get_mut(&mut self.sealer) {
            sealer.set_max_json(cap);
        }
        Ok(self)
    }

    /// These settings with the signing and sealing keys now in `keys.dir`
    /// (keys are added and retired without a reload); `None` when they are
    /// the same keys as now.
    pub fn with_current_keys(&self) -> Result<Option<Self>, Problems> {
        let dir = &self.config.keys.dir;
        let keys = KeySet::load(dir, None).map_err(|e| Problems(vec![format!("keys.dir: {e}")]))?;
        let sealer = Sealer::load(dir)
            .map_err(|e| Problems(vec![format!("keys.dir: {e}")]))?
            .ok_or_else(|| {
                Problems(vec![format!(
                    "keys.dir: no sealing key in {}",
                    dir.display()
                )])
            })?;
        let sealer = if self.base_path.is_empty() {
            sealer
        } else {
            sealer.bound_to(&self.domain)
        };
        let mut tenants = std::collections::HashMap::new();
        let mut tenant_changed = false;
        for (domain, tenant) in &self.tenants {
            // One tenant's unreadable keys stop only that tenant's refresh.
            let refreshed = tenant.with_current_keys().unwrap_or_else(|problems| {
                tracing::error!(tenant = %domain, "keys of this tenant not taken, its running keys stay: {problems}");
                None
            });
            tenant_changed |= refreshed.is_some();
            tenants.insert(
                domain.clone(),
                refreshed.map_or_else(|| tenant.clone(), Arc::new),
            );
        }
        let same_keys = keys.fingerprint() == self.keys.fingerprint()
            && sealer.fingerprint() == self.sealer.fingerprint();
        if same_keys && !tenant_changed {
            return Ok(None);
        }
        Self::assemble(Self {
            config: self.config.clone(),
            clients: self.clients.clone(),
            users: self.users.clone(),
            keys: Arc::new(keys),
            tokens: self.tokens.clone(),
            proxies: self.proxies.clone(),
            cert_header: self.cert_header.clone(),
            documents: Documents::default(),
            sealer: Arc::new(sealer),
            tls: self.tls.clone(),
            conn: self.conn.clone(),
            user_callers: self.user_callers,
            domain: self.domain.clone(),
            base_path: self.base_path.clone(),
            tenants,
            key_epoch: self.key_epoch,
            generation: 0,
        })
        .map(Some)
    }

    /// The name failed logins of `username` are counted under: per tenant.
    pub fn throttle_name(&self, username: &str) -> String {
        format!("{}\0{username}", self.domain)
    }

    /// Every keys directory these settings read (the default tenant's and
    /// each tenant's own), for the watcher.
    pub fn key_dirs(&self) -> Vec<std::path::PathBuf> {
        let mut dirs = vec![self.config.keys.dir.clone()];
        for tenant in self.tenants.values() {
            if !dirs.contains(&tenant.config.keys.dir) {
                dirs.push(tenant.config.keys.dir.clone());
            }
        }
        dirs
    }

    /// The settings that cannot change while the server runs: each one
    /// that differs in `new` is set back to its running value, and its key
    /// returned (to report "needs a restart").
    pub fn pin_restart_only(&self, new: &mut Config) -> Vec<&'static str> {
        let old = &self.config;
        let mut pinned = Vec::new();
        macro_rules! pin {
            ($name:literal, $($field:ident).+) => {
                if old.$($field).+ != new.$($field).+ {
                    new.$($field).+ = old.$($field).+.clone();
                    pinned.push($name);
                }
            };
        }
        pin!("server.https", server.https);
        pin!("server.http", server.http);
        pin!("server.admin", server.admin);
        pin!("log.format", log.format);
        pin!("revocation.backend", revocation.backend);
        pin!("revocation.file", revocation.file);
        pin!("revocation.redis", revocation.redis);
        pin!(
            "revocation.compaction_check_interval",
            revocation.compaction_check_interval
        );
        pin!(
            "tokens.introspection_cache_entries",
            tokens.introspection_cache_entries
        );
        pin!("login.hash_workers", login.hash_workers);
        pin!("login.hash_queue", login.hash_queue);
        pin!("server.control_socket", server.control_socket);
        pinned
    }
}

/// Writes what [`Settings::load`] could not, now that every check passed.
pub fn save(unsaved: Option<Unsaved>) -> Result<(), String> {
    let Some(u) = unsaved else { return Ok(()) };
    if let Some(dir) = u.path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    crate::dev::write_new_private(&u.path, &u.contents)
        .map_err(|e| format!("cannot create {}: {e}", u.path.display()))?;
    tracing::info!(file = %u.path.display(), "generated a new sealing key (authorization codes, login cookies)");
    Ok(())
}

#[cfg(test)]
#[path = "settings/tests.rs"]
mod tests;
