//! certbound: a stateless OAuth 2.0 authorization server that authenticates
//! clients by mutual TLS (RFC 8705 §2) and issues certificate-bound JWT
//! access tokens (RFC 8705 §3, RFC 9068), verified offline with the JWKS or
//! by stateless introspection (RFC 7662).
//!
//! [`app`] builds the whole HTTP service from an [`AppState`] (what lives for
//! the process) and its [`settings::Settings`] (what comes from
//! configuration, swapped on reload); `main` and the integration tests both
//! call it.

pub mod addr;
pub mod admin;
pub mod bounded;
pub mod cert;
pub mod clients;
pub mod commands;
pub mod config;
pub mod control;
pub mod dev;
pub mod error;
pub mod health;
pub mod keys;
pub mod logging;
pub mod login;
pub mod metrics;
pub mod oauth;
pub mod oidc;
pub mod revocation;
pub mod revoke_all;
pub mod scope;
pub mod seal;
pub mod server;
pub mod settings;
pub mod subject;
pub mod tenant;
pub mod tls;
pub mod token;
pub mod token_cache;
pub mod users;

use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use poem::{Endpoint, EndpointExt, Route};
use poem_openapi::OpenApiService;

use crate::config::{Problems, Source};
use crate::settings::Settings;

/// What lives for the whole process, across reloads: the revocation list,
/// the verified-token cache and login throttling; and the current
/// [`Settings`], swapped atomically by [`AppState::reload`].
#[derive(Debug)]
pub struct AppState {
    /// Revoked tokens (the only state).
    pub revocations: revocation::Revocations,
    /// Recently verified access tokens (introspection fast path).
    pub verified: token_cache::TokenCache,
    /// Login throttling and password checking.
    pub login: login::Login,
    settings: ArcSwap<Settings>,
    source: Source,
    reloading: Mutex<()>,
    keys_stale: std::sync::atomic::AtomicBool,
}

/// What a reload did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// Keys whose new value needs a restart; they keep their running value.
    pub needs_restart: Vec<&'static str>,
}

impl AppState {
    /// Loads everything from `source` (checked in full before anything is
    /// written), then opens the revocation list. In development mode (no
    /// config file) the dev PKI and a signing key are generated on first
    /// run.
    pub fn open(source: Source) -> Result<Self, Problems> {
        if source == Source::EmbeddedDev {
            let config = config::Config::parse(&source)?;
            dev::prepare(&config).map_err(|e| Problems(vec![e]))?;
        }
        let (settings, unsaved) = Settings::load(&source)?;
        settings::save(unsaved).map_err(|e| Problems(vec![e]))?;
        let config = &settings.config;
        let revocations = revocation::Revocations::open(&config.revocation)
            .map_err(|e| Problems(vec![e.to_string()]))?;
        let login =
            login::Login::new(&config.login, revocations.redis()).map_err(|e| Problems(vec![e]))?;
        Ok(Self {
            revocations,
            verified: token_cache::TokenCache::new(config.tokens.introspection_cache_entries),
            login,
            settings: ArcSwap::from_pointee(settings),
            source,
            reloading: Mutex::new(()),
            keys_stale: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The current settings: load once per request and keep for its whole
    /// life, so that it sees one consistent configuration.
    pub fn settings(&self) -> Arc<Settings> {
        self.settings.load_full()
    }

    /// Where the configuration is read from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Reads the configuration and everything it names again, checks it in
    /// full, and swaps it in at once. On any problem the running settings
    /// stay and every problem is returned. Settings that cannot change in
    /// place keep their running value and are reported.
    pub fn reload(&self) -> Result<Reloaded, Problems> {
        let _one_at_a_time = self
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let old = self.settings();
        let mut config = config::Config::parse(&self.source)?;
        let needs_restart = old.pin_restart_only(&mut config);
        let (mut new, unsaved) = Settings::build(config)?;
        if unsaved.is_some() {
            return Err(Problems(vec![format!(
                "keys.dir: {} is missing; the running sealing key is kept (restore the file)",
                new.config.keys.dir.join("sealing.key").display()
            )]));
        }
        self.swap(&old, &mut new);
        self.settings.store(Arc::new(new));
        Ok(Reloaded { needs_restart })
    }

    /// Whether the last look at `keys.dir` failed: a token of an unknown
    /// key may then be signed by a key this server has not loaded, so it is
    /// answered 503, not inactive (fail closed).
    pub fn keys_stale(&self) -> bool {
        self.keys_stale.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Records whether the last look at `keys.dir` failed.
    pub fn set_keys_stale(&self, stale: bool) {
        self.keys_stale
            .store(stale, std::sync::atomic::Ordering::Release);
    }

    /// A server-side problem behind an "inactive" answer is a 503, never
    /// `active: false`: `Inactive::UnknownKey` while [`Self::keys_stale`],
    /// and a revocation list that may be out of date.
    pub fn fail_closed(&self, reason: &token::Inactive) -> Result<(), error::OAuthError> {
        match reason {
            token::Inactive::UnknownKey if self.keys_stale() => {
                Err(error::OAuthError::TemporarilyUnavailable(
                    "the server cannot read its keys now; retry shortly".into(),
                ))
            }
            token::Inactive::RevocationsStale => Err(revocation::RevocationError::Stale.into()),
            _ => Ok(()),
        }
    }

    /// Why this server is not ready to serve, if it is not: every reason
    /// (empty when ready). Reads flags only (no I/O).
    pub fn not_ready(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        if self.keys_stale() {
            reasons.push(
                "keys.dir cannot be read: tokens of keys added since cannot be checked".into(),
            );
        }
        if let Err(reason) = self.revocations.ready() {
            reasons.push(reason);
        }
        reasons
    }

    /// Picks up signing and sealing keys added to or retired from
    /// `keys.dir` since the settings were built (no reload needed); whether
    /// they changed.
    pub fn refresh_keys(&self) -> Result<bool, Problems> {
        let _one_at_a_time = self
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let old = self.settings();
        let Some(mut new) = old.with_current_keys()? else {
            return Ok(false);
        };
        self.swap(&old, &mut new);
        self.settings.store(Arc::new(new));
        Ok(true)
    }

    /// Carries over what must survive a swap from `old` into `new`.
    fn swap(&self, old: &Settings, new: &mut Settings) {
        // A verification cached under the old settings may be wrong under
        // the new ones when a key left (or changed algorithm), or the
        // issuer or audience changed: those are verified again.
        let left: Vec<&keys::SigningKey> = old
            .keys
            .all()
            .iter()
            .filter(|k| new.keys.get(&k.kid).is_none_or(|n| n.alg != k.alg))
            .collect();
        let claims_changed =
            old.tokens.issuer != new.tokens.issuer || old.tokens.audience != new.tokens.audience;
        let tenant_view = |s: &Settings| {
            let mut view: Vec<(String, String, &str, String, String)> = s
                .tenants
                .values()
                .flat_map(|t| {
                    t.keys.all().iter().map(|k| {
                        (
                            t.domain.clone(),
                            k.kid.clone(),
                            k.alg.name(),
                            t.tokens.issuer.clone(),
                            t.tokens.audience.clone(),
                        )
                    })
                })
                .collect();
            view.sort();
            view
        };
        // Any change to a tenant's keys, issuer or audience: verify again.
        let tenants_changed = tenant_view(old) != tenant_view(new);
        let stale = !left.is_empty() || claims_changed || tenants_changed;
        new.key_epoch = old.key_epoch + u64::from(stale);
        // Tenants share the cache: those rebuilt now take the new epoch
        // (unchanged ones keep theirs; a hit is also checked against the
        // tenant's issuer, so no verification crosses tenants).
        for tenant in new.tenants.values_mut() {
            if let Some(tenant) = Arc::get_mut(tenant) {
                tenant.key_epoch = new.key_epoch;
            }
        }
        if stale {
            self.verified.clear();
        }
        let now = keys::unix_now();
        let states = keys::lifecycle::states(
            &old.keys.activations(),
            now,
            old.config.longest_token_lifetime(),
        );
        for (key, state) in old.keys.all().iter().zip(states) {
            let retirable = matches!(state, keys::lifecycle::State::Retirable { .. });
            if !retirable && left.iter().any(|k| k.kid == key.kid) {
                tracing::warn!(kid = %key.kid, state = state.name(), "a signing key left keys.dir while tokens it signed may be valid: they are refused from now on");
            }
        }
        self.login
            .limiter
            .set_policy(login::Login::policy(&new.config.login));
        self.login.verified.clear();
    }

    /// An access token's claims if it is active at `now`: verified (through
    /// the verified-token cache), not revoked, and not of a revoked family.
    pub fn active_access_token(
        &self,
        settings: &Settings,
        token: &str,
        now: u64,
    ) -> Result<Arc<token_cache::Verified>, token::Inactive> {
        let claims = self
            .verified
            .get_or_verify(token, now, settings.key_epoch, |t| {
                settings.tokens.verify(&settings.keys, t, now)
            })?;
        // The cache is shared by all tenants: a token verified for one is
        // never taken as verified for another.
        if claims.iss != settings.tokens.issuer {
            return Err(token::Inactive::ForeignIssuer);
        }
        self.not_revoked(
            settings,
            Held {
                jti: &claims.jti,
                family: claims.fid.as_deref(),
                client_id: &claims.client_id,
                user: claims.username.as_deref(),
                iat: claims.iat,
                auth_time: claims.auth_time,
            },
        )?;
        Ok(claims)
    }

    /// A refresh token's claims if it is active at `now`: verified, not yet
    /// used or revoked, and not of a revoked family.
    pub fn active_refresh_token(
        &self,
        settings: &Settings,
        token: &str,
        now: u64,
    ) -> Result<token::RefreshClaims, token::Inactive> {
        let claims = settings.tokens.verify_refresh(&settings.keys, token, now)?;
        self.not_revoked(
            settings,
            Held {
                jti: &claims.jti,
                family: Some(&claims.fid),
                client_id: &claims.client_id,
                user: Some(&claims.sub),
                iat: claims.iat,
                auth_time: Some(claims.auth_time),
            },
        )?;
        Ok(claims)
    }

    /// Whether a token is on the revocation list: its `jti`, its family,
    /// or its client or user revoked at or after its `iat`
    /// ([`revoke_all`]).
    fn not_revoked(&self, settings: &Settings, t: Held<'_>) -> Result<(), token::Inactive> {
        let stale = |_| token::Inactive::RevocationsStale;
        let list = &self.revocations;
        let jti_revoked = list.contains(revocation::Kind::Jti, t.jti).map_err(stale)?;
        let family_revoked = match t.family {
            Some(f) => list.contains(revocation::Kind::Family, f).map_err(stale)?,
            None => false,
        };
        let before = list
            .not_before(&settings.tokens.issuer, Some(t.client_id), t.user)
            .map_err(stale)?
            .revokes(t.iat, t.auth_time);
        if jti_revoked || family_revoked || before {
            return Err(token::Inactive::Revoked);
        }
        Ok(())
    }
}

/// What the revocation list is asked about a token.
struct Held<'a> {
    jti: &'a str,
    family: Option<&'a str>,
    client_id: &'a str,
    user: Option<&'a str>,
    iat: u64,
    auth_time: Option<u64>,
}

/// The OpenAPI service describing every endpoint, at `/` (the default
/// tenant) and under every tenant's `/t/{domain}` (WSO2's tenant paths).
pub fn openapi() -> OpenApiService<(oauth::Api, health::Api), ()> {
    use poem_openapi::ServerObject;
    OpenApiService::new(
        (oauth::Api, health::Api),
        "certbound",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Stateless OAuth 2.0 authorization server: mutual-TLS client authentication \
             (RFC 8705) and certificate-bound JWT access tokens (RFC 9068). Every \
             operation is served at / for the default tenant and under /t/{domain} for \
             each tenant (the default tenant's domain, carbon.super unless configured, \
             included).",
    )
    .server(ServerObject::new("/").description("The default tenant"))
    .server(
        ServerObject::new("/t/{domain}")
            .description("A tenant, as in WSO2 Identity Server")
            .variable(
                "domain",
                "The tenant's domain ([[tenants]] domain, or tenancy.default_domain)",
                "carbon.super",
            ),
    )
}

/// The whole HTTP service. Each request gets the settings current when it
/// arrives (as `Data<&Arc<Settings>>`, attached by the listener) and keeps
/// them to its end.
pub fn app(state: Arc<AppState>) -> impl Endpoint {
    let api = openapi();
    // Built on their first request: Swagger UI's page embeds 1.6 MB of
    // script, which a server nobody asks for its documentation should
    // neither build at startup nor hold.
    let docs = OnFirstRequest::new(|| openapi().swagger_ui().map_to_response().boxed());
    let spec = OnFirstRequest::new(|| openapi().spec_endpoint().map_to_response().boxed());
    let current = state.clone();
    let mut route = Route::new().at(
        oauth::paths::AUTHORIZE,
        poem::get(oauth::authorize::get)
            .post(oauth::authorize::post)
            .with(oauth::authorize::security_headers()),
    );
    if *state.source() == Source::EmbeddedDev {
        route = route.at(
            dev::CALLBACK,
            poem::get(dev::callback).with(oauth::authorize::security_headers()),
        );
    }
    route
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .nest("/", api)
        .data(state)
        .before(move |mut req| {
            // The listener attaches them; without one (a test calling the
            // endpoint directly), the current ones.
            if req.extensions().get::<Arc<Settings>>().is_none() {
                let settings = current.settings();
                req.extensions_mut()
                    .insert(tenant::Tenants(settings.clone()));
                req.extensions_mut().insert(settings);
            }
            async move { Ok(req) }
        })
}

/// An endpoint made when it is first called, then kept.
struct OnFirstRequest<F> {
    make: F,
    made: std::sync::OnceLock<poem::endpoint::BoxEndpoint<'static>>,
}

impl<F> OnFirstRequest<F> {
    fn new(make: F) -> Self {
        Self {
            make,
            made: std::sync::OnceLock::new(),
        }
    }
}

impl<F> Endpoint for OnFirstRequest<F>
where
    F: Fn() -> poem::endpoint::BoxEndpoint<'static> + Send + Sync,
{
    type Output = poem::Response;

    async fn call(&self, req: poem::Request) -> poem::Result<poem::Response> {
        self.made.get_or_init(&self.make).call(req).await
    }
}
