//! certbound: a stateless OAuth 2.0 authorization server that authenticates
//! clients by mutual TLS (RFC 8705 §2) and issues certificate-bound JWT
//! access tokens (RFC 8705 §3, RFC 9068), verified offline with the JWKS or
//! by stateless introspection (RFC 7662).
//!
//! [`app`] builds the whole HTTP service from an [`AppState`]; `main` and the
//! integration tests both call it.

pub mod addr;
pub mod cert;
pub mod clients;
pub mod config;
pub mod dev;
pub mod error;
pub mod keys;
pub mod login;
pub mod oauth;
pub mod oidc;
pub mod revocation;
pub mod scope;
pub mod seal;
pub mod server;
pub mod tls;
pub mod token;
pub mod token_cache;
pub mod users;

use std::path::Path;
use std::sync::Arc;

use poem::{Endpoint, EndpointExt, Route};
use poem_openapi::OpenApiService;

use crate::cert::HeaderSource;
use crate::cert::matching::TrustAnchors;
use crate::clients::Clients;
use crate::config::{Config, Source};
use crate::keys::KeySet;
use crate::token::TokenService;

/// Everything a request needs, built once at startup and shared read-only.
#[derive(Debug)]
pub struct AppState {
    /// The configuration it was built from.
    pub config: Config,
    /// Registered clients.
    pub clients: Clients,
    /// Signing and verification keys.
    pub keys: KeySet,
    /// Access-token minting and verification.
    pub tokens: TokenService,
    /// Recently verified access tokens (introspection fast path).
    pub verified: token_cache::TokenCache,
    /// Where a proxy-forwarded certificate may come from.
    pub cert_header: Option<HeaderSource>,
    /// Discovery documents and JWKS, serialised once.
    pub documents: oauth::discovery::Documents,
    /// Revoked tokens (the only state).
    pub revocations: revocation::Revocations,
    /// Seals codes, login sessions and forms.
    pub sealer: seal::Sealer,
    /// Users, login throttling.
    pub login: login::Login,
}

impl AppState {
    /// Builds the state from configuration and keys.
    pub fn new(config: Config, keys: KeySet) -> Result<Self, String> {
        Self::build(config, |_| Ok(keys))
    }

    /// Builds the state, loading keys only once the configuration has been
    /// checked, so configuration errors are reported first.
    fn build(
        config: Config,
        keys: impl FnOnce(&Config) -> Result<KeySet, String>,
    ) -> Result<Self, String> {
        let trust = match &config.mtls.trust_anchors {
            Some(path) => Some(
                TrustAnchors::new(
                    clients::read_pem_certificates(path)?,
                    config.mtls.allow_leaf_without_eku,
                )
                .map_err(|e| format!("mtls.trust_anchors {}: {e}", path.display()))?,
            ),
            None => None,
        };
        let clients = Clients::new(
            &config.clients,
            trust,
            Path::new(""),
            config.mtls.allow_leaf_without_eku,
        )?;
        let cert_header = match &config.mtls.client_certificate_header {
            Some(name) => Some(HeaderSource {
                name: poem::http::HeaderName::try_from(name.trim().to_ascii_lowercase()).map_err(
                    |_| format!("mtls.client_certificate_header {name:?} is not a header name"),
                )?,
                trusted_proxies: config.mtls.trusted_proxies.clone(),
                on_https: config.mtls.header_on_https,
            }),
            None => None,
        };
        let login = login::Login::new(&config)?;
        let keys = keys(&config)?;
        let sealer = seal::Sealer::load_or_create(&config.keys.dir.join("sealing.key"))?
            .with_max_json(oauth::authorize::max_sealed_json(&clients));
        let issuer = config.issuer();
        let tokens = TokenService {
            refresh_audience: format!("{issuer}/oauth2/token"),
            refresh_lifetime: config.tokens.refresh_token_lifetime,
            audience: config
                .tokens
                .audience
                .clone()
                .unwrap_or_else(|| issuer.clone()),
            issuer,
            lifetime: config.tokens.access_token_lifetime,
        };
        let documents = oauth::discovery::Documents::build(&config, &clients, &keys)?;
        let revocations = revocation::Revocations::open(
            &config.revocation.file,
            std::time::Duration::from_secs(config.revocation.compaction_check_interval),
        )
        .map_err(|e| e.to_string())?;
        Ok(Self {
            revocations,
            sealer,
            login,
            verified: token_cache::TokenCache::new(config.tokens.introspection_cache_entries),
            config,
            clients,
            keys,
            tokens,
            cert_header,
            documents,
        })
    }

    /// An access token's claims if it is active at `now`: verified (through
    /// the verified-token cache), not revoked, and not of a revoked family.
    pub fn active_access_token(
        &self,
        token: &str,
        now: u64,
    ) -> Result<Arc<token::AccessClaims>, token::Inactive> {
        let claims = self
            .verified
            .get_or_verify(token, now, |t| self.tokens.verify(&self.keys, t, now))?;
        if self.revoked(&claims.jti, claims.fid.as_deref()) {
            return Err(token::Inactive::Revoked);
        }
        Ok(claims)
    }

    /// A refresh token's claims if it is active at `now`: verified, not yet
    /// used or revoked, and not of a revoked family.
    pub fn active_refresh_token(
        &self,
        token: &str,
        now: u64,
    ) -> Result<token::RefreshClaims, token::Inactive> {
        let claims = self.tokens.verify_refresh(&self.keys, token, now)?;
        if self.revoked(&claims.jti, Some(&claims.fid)) {
            return Err(token::Inactive::Revoked);
        }
        Ok(claims)
    }

    fn revoked(&self, jti: &str, fid: Option<&str>) -> bool {
        self.revocations.contains(revocation::Kind::Jti, jti)
            || fid.is_some_and(|f| self.revocations.contains(revocation::Kind::Family, f))
    }

    /// Loads everything for `certbound serve`: in development mode (no
    /// config file) the dev PKI and a signing key are generated on first run.
    pub fn load(config: Config, source: &Source) -> Result<Self, String> {
        let dev = *source == Source::EmbeddedDev;
        if dev && dev::generate(&config.keys.dir, false)? {
            tracing::info!(dir = %config.keys.dir.display(), "generated development CA, server and client certificates");
        }
        Self::build(config, |config| {
            KeySet::load(
                &config.keys.dir,
                dev.then_some(config.tokens.signing_algorithm),
            )
            .map_err(|e| e.to_string())
        })
    }
}

/// The OpenAPI service describing every endpoint.
pub fn openapi() -> OpenApiService<oauth::Api, ()> {
    OpenApiService::new(oauth::Api, "certbound", env!("CARGO_PKG_VERSION")).description(
        "Stateless OAuth 2.0 authorization server: mutual-TLS client authentication \
             (RFC 8705) and certificate-bound JWT access tokens (RFC 9068).",
    )
}

/// The whole HTTP service.
pub fn app(state: Arc<AppState>) -> impl Endpoint {
    let api = openapi();
    let docs = api.swagger_ui();
    let spec = api.spec_endpoint();
    Route::new()
        .at(
            "/oauth2/authorize",
            poem::get(oauth::authorize::get).post(oauth::authorize::post),
        )
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .nest("/", api)
        .data(state)
}
