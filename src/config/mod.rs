//! Configuration: built-in defaults → TOML file → `CERTBOUND_*` environment.
//!
//! Every key is documented in the README with its default and environment
//! variable. Unknown keys are an error naming the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

mod admin;
mod check;
mod defaults;
mod introspection;
mod log;
mod revocation;
mod tenants;

pub use admin::AdminConfig;
pub use check::{Missing, Problems};
pub use introspection::{IntrospectionConfig, SubjectFormat};
pub use log::{LogConfig, LogFormat};
pub use revocation::{Backend, RedisConfig, RevocationConfig, redacted};
pub use tenants::{TenancyConfig, TenantConfig};

/// The embedded development configuration, used when no config file exists.
pub const DEV_CONFIG: &str = include_str!("dev.toml");

/// Where the configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A TOML file chosen by `--config`, `CERTBOUND_CONFIG` or `./certbound.toml`.
    File(PathBuf),
    /// No file found: the embedded development configuration.
    EmbeddedDev,
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Issuer identifier (`iss`), an https URL. Default: derived from
    /// `server.https` (or `server.http`).
    pub issuer: Option<String>,
    /// Listeners and server TLS.
    pub server: ServerConfig,
    /// Client-certificate sources and trust.
    pub mtls: MtlsConfig,
    /// Access-token minting.
    pub tokens: TokensConfig,
    /// Signing keys.
    pub keys: KeysConfig,
    /// The revocation list file.
    pub revocation: RevocationConfig,
    /// Browser login and consent for the authorization-code flow.
    pub login: LoginConfig,
    /// The introspection endpoint's answers.
    pub introspection: IntrospectionConfig,
    /// Registered clients (RFC 7591 metadata names).
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
    /// Users who can log in (besides those in `login.users_file`).
    #[serde(default)]
    pub users: Vec<UserConfig>,
    /// The default tenant's name (WSO2's super tenant).
    pub tenancy: TenancyConfig,
    /// Other tenants, served under `/t/{domain}/…`.
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
    /// The log's format and access lines.
    pub log: LogConfig,
    /// Who may call the admin listener's operator endpoints.
    pub admin: AdminConfig,
}

/// `[server]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// HTTPS listener address; `""` disables it.
    #[serde(with = "opt_addr")]
    pub https: Option<SocketAddr>,
    /// Plain HTTP listener address, for use behind a TLS-terminating proxy;
    /// `""` (the default) disables it.
    #[serde(with = "opt_addr")]
    pub http: Option<SocketAddr>,
    /// Admin listener (plain HTTP): `/metrics`, `/healthz`, `/readyz`;
    /// `""` (the default) disables it. Never a public address.
    #[serde(with = "opt_addr")]
    pub admin: Option<SocketAddr>,
    /// PEM certificate chain of the HTTPS listener.
    pub tls_certificate: PathBuf,
    /// PEM (PKCS#8, SEC1 or PKCS#1) private key of the HTTPS listener.
    pub tls_private_key: PathBuf,
    /// Seconds a client has to finish the TLS handshake.
    pub handshake_timeout: u64,
    /// Seconds in-flight requests get to finish on shutdown.
    pub shutdown_timeout: u64,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Seconds a client has to send a request's headers (slowloris bound).
    pub header_read_timeout: u64,
    /// Seconds a client has to send a request's body once its headers are in.
    pub body_read_timeout: u64,
    /// Seconds a connection may stay open with no request in flight.
    pub idle_timeout: u64,
    /// Seconds between HTTP/2 keep-alive pings; a peer that does not answer
    /// one within the same time is disconnected.
    pub http2_keep_alive_interval: u64,
    /// Concurrent HTTP/2 streams per connection.
    pub http2_max_streams: u32,
    /// Open connections (both listeners, TLS handshakes included); past it
    /// new connections are closed at once.
    pub max_connections: usize,
    /// Open connections per client address (IPv6: per /64). Addresses in
    /// `mtls.trusted_proxies` are exempt (a proxy carries many clients).
    pub max_connections_per_address: usize,
    /// Requests in flight at once, over all connections; past it a request
    /// is answered 503 at once. Bounds the memory requests hold.
    pub max_requests_in_flight: usize,
    /// After the answer to a request whose body was not read to the end, at
    /// most this many bytes are read and discarded before the connection is
    /// closed, so the client sees the answer instead of a reset.
    pub linger_bytes: usize,
    /// Seconds that discarding may take.
    pub linger_timeout: u64,
    /// Unix socket `certbound reload` talks to (mode 0600). Default: unset,
    /// `certbound.sock` in the directory of `revocation.file`.
    pub control_socket: Option<PathBuf>,
}

/// `[mtls]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MtlsConfig {
    /// Header carrying the client certificate from a trusted TLS-terminating
    /// proxy (WSO2's `client_certificate_header`); unset: headers are ignored.
    pub client_certificate_header: Option<String>,
    /// CIDRs of proxies whose certificate header (and `X-Forwarded-For`)
    /// is believed; checked by [`Config::load`], parsed by
    /// [`MtlsConfig::proxy_nets`].
    pub trusted_proxies: Vec<String>,
    /// PEM bundle of CAs trusted for `tls_client_auth` (RFC 8705 §2.1),
    /// shared by every client without `tls_client_auth_trust_anchors`.
    pub trust_anchors: Option<PathBuf>,
    /// Accept `tls_client_auth` leaves that carry no extended key usage
    /// extension. Off: the leaf must list clientAuth.
    pub allow_leaf_without_eku: bool,
    /// Believe the certificate header on the HTTPS listener too (a
    /// TLS-to-TLS proxy in front). Off: only the plain HTTP listener reads it.
    pub header_on_https: bool,
    /// Base URL of an mTLS-only host; when set, discovery publishes
    /// `mtls_endpoint_aliases` (RFC 8705 §5) under it.
    pub endpoint_aliases_base: Option<String>,
}

/// `[tokens]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensConfig {
    /// Algorithm of newly generated signing keys: ES256, RS256, PS256, EdDSA.
    pub signing_algorithm: crate::keys::Alg,
    /// Access-token lifetime in seconds.
    pub access_token_lifetime: u64,
    /// `aud` of access tokens. Default: the issuer.
    pub audience: Option<String>,
    /// Scope a Bearer token needs to call the introspection endpoint.
    pub introspection_scope: String,
    /// Verified tokens kept for repeated introspection; 0 disables.
    pub introspection_cache_entries: usize,
    /// Refresh-token lifetime in seconds (each rotation starts it afresh).
    pub refresh_token_lifetime: u64,
    /// ID-token lifetime in seconds.
    pub id_token_lifetime: u64,
    /// Authorization-code lifetime in seconds, at most 60.
    pub code_lifetime: u64,
}

/// `[login]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginConfig {
    /// A TOML file of `[[users]]` entries, read at start.
    pub users_file: Option<PathBuf>,
    /// Seconds a login session (cookie) lasts.
    pub session_lifetime: u64,
    /// Seconds an "Approve always" decision (cookie) lasts.
    pub consent_lifetime: u64,
    /// Seconds a login or consent page may stay open before its form expires.
    pub form_lifetime: u64,
    /// Failed logins of one username from one address before each further
    /// attempt from there waits: 1 s, 2 s, 4 s … up to `failure_window`.
    /// Other addresses are not slowed down (no lockout).
    pub max_failures_per_user: u32,
    /// Failed logins per client address within `failure_window`; past it
    /// the address may not log in until the window ends.
    pub max_failures_per_address: u32,
    /// Seconds over which failed logins are counted.
    pub failure_window: u64,
    /// Password-hashing worker threads (each keeps one argon2 memory
    /// buffer, 19 MiB with the default parameters); 0: one per core.
    pub hash_workers: usize,
    /// Password checks that may wait for a worker; past it a login is
    /// answered 503 with `Retry-After`.
    pub hash_queue: usize,
    /// What the consent page says each scope gives (`openid`, `profile`
    /// and `email` have built-in words; these replace or add to them).
    #[serde(default)]
    pub scope_descriptions: std::collections::BTreeMap<String, String>,
}

/// One `[[users]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// Login name; `alice@example.com` (email style) is a plain name.
    pub username: String,
    /// argon2id PHC string (`certbound users hash-password`).
    pub password_hash: String,
    /// OIDC `email` claim (scope `email`).
    pub email: Option<String>,
    /// OIDC `email_verified` claim (scope `email`).
    pub email_verified: Option<bool>,
    /// OIDC `name` claim (scope `profile`).
    pub name: Option<String>,
    /// OIDC `given_name` claim (scope `profile`).
    pub given_name: Option<String>,
    /// OIDC `family_name` claim (scope `profile`).
    pub family_name: Option<String>,
    /// Permissions; one listed in `introspection.permissions` lets the user
    /// call introspection with HTTP Basic `username:password`.
    #[serde(default)]
    pub permissions: Vec<String>,
}

/// A users file: `[[users]]` entries only.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UsersFile {
    /// The users.
    #[serde(default)]
    pub users: Vec<UserConfig>,
}

/// `[keys]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// Directory of signing keys (`signing/`), sealing keys (`sealing.key`,
    /// `sealing/`) and, in dev mode, generated certificates. Replicas share
    /// it.
    pub dir: PathBuf,
    /// Seconds a new key is published (in the JWKS) before it signs, so
    /// resource servers that cache the JWKS know it in time; the JWKS
    /// `Cache-Control: max-age` is no longer.
    pub publish_before: u64,
    /// Seconds between looks at `dir` for keys added or retired (no reload
    /// needed).
    pub poll_interval: u64,
}

/// One `[[clients]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// The client identifier.
    pub client_id: String,
    /// `self_signed_tls_client_auth`, `tls_client_auth`,
    /// `client_secret_basic` or `client_secret_post`.
    pub token_endpoint_auth_method: String,
    /// Grant types the client may use. Default: `["client_credentials"]`.
    #[serde(default)]
    pub grant_types: Option<Vec<String>>,
    /// Scopes the client may request, space-separated.
    #[serde(default)]
    pub scope: String,
    /// Bind access tokens to the client certificate. Default: true.
    #[serde(default)]
    pub tls_client_certificate_bound_access_tokens: Option<bool>,
    /// May call `/oauth2/introspect` with its own credentials.
    #[serde(default)]
    pub introspection: bool,
    /// Name shown on the consent page. Default: the client id.
    pub client_name: Option<String>,
    /// Exact redirect URIs for the authorization-code flow (RFC 9700 §2.1).
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Require PKCE (S256) at `/oauth2/authorize`. Default: true.
    pub require_pkce: Option<bool>,
    /// A username that client-credentials tokens of this client act for:
    /// introspection reports it as `username`.
    pub owner: Option<String>,
    /// `subject_identifier_format = "app_configured"`: introspection names
    /// this client's users `name@tenant-domain` (WSO2's service provider
    /// setting of the same name).
    #[serde(default)]
    pub use_tenant_domain_in_local_subject_identifier: bool,
    /// `subject_identifier_format = "app_configured"`: introspection names
    /// this client's users `PRIMARY/name`.
    #[serde(default)]
    pub use_user_store_domain_in_local_subject_identifier: bool,
    /// `tls_client_auth`: expected subject DN (RFC 4514 string).
    pub tls_client_auth_subject_dn: Option<String>,
    /// `tls_client_auth`: expected dNSName SAN.
    pub tls_client_auth_san_dns: Option<String>,
    /// `tls_client_auth`: expected uniformResourceIdentifier SAN.
    pub tls_client_auth_san_uri: Option<String>,
    /// `tls_client_auth`: expected iPAddress SAN.
    pub tls_client_auth_san_ip: Option<String>,
    /// `tls_client_auth`: expected rfc822Name SAN.
    pub tls_client_auth_san_email: Option<String>,
    /// `tls_client_auth`: PEM bundle of the CAs that may issue this
    /// client's certificate, instead of the shared `mtls.trust_anchors`.
    pub tls_client_auth_trust_anchors: Option<PathBuf>,
    /// `self_signed_tls_client_auth`: pinned certificates, each a PEM file
    /// path or inline PEM.
    #[serde(default)]
    pub certificates: Vec<String>,
    /// `self_signed_tls_client_auth`: an RFC 7591 JWKS whose keys carry `x5c`.
    pub jwks: Option<serde_json::Value>,
    /// Secret methods: lowercase hex SHA-256 of the client secret.
    pub client_secret_sha256: Option<String>,
}

impl Config {
    /// Finds the config file: `explicit` (from `--config`), else
    /// `CERTBOUND_CONFIG`, else `./certbound.toml`, else the embedded
    /// development configuration.
    pub fn locate(explicit: Option<&Path>) -> Result<Source, Missing> {
        let chosen = explicit
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("CERTBOUND_CONFIG").map(PathBuf::from));
        match chosen {
            Some(path) if path.is_file() => Ok(Source::File(path)),
            Some(path) => Err(Missing(path)),
            None if Path::new("certbound.toml").is_file() => {
                Ok(Source::File(PathBuf::from("certbound.toml")))
            }
            None => Ok(Source::EmbeddedDev),
        }
    }

    /// Loads defaults, then the source, then `CERTBOUND_*` variables, and
    /// checks every value that needs nothing outside the configuration.
    pub fn load(source: &Source) -> Result<Self, Problems> {
        let config = Self::parse(source)?;
        config.validate().or(config)
    }

    /// As [`Self::load`] without the checks: only what cannot be parsed
    /// (or an unknown key) is a problem. [`Config::validate`] does the rest.
    pub fn parse(source: &Source) -> Result<Self, Problems> {
        let base = Figment::from(Serialized::defaults(Config::default()));
        let figment = match source {
            Source::File(path) => base.merge(Toml::file_exact(path)),
            Source::EmbeddedDev => base.merge(Toml::string(DEV_CONFIG)),
        };
        let env = Env::prefixed("CERTBOUND_")
            .ignore(&["config", "log"])
            .split("__");
        let mut config: Self = figment
            .merge(env)
            .extract()
            .map_err(|e| Problems(e.into_iter().map(|e| e.to_string()).collect()))?;
        if *source == Source::EmbeddedDev {
            // The demo client's callback is on this server, wherever it listens.
            let callback = format!("{}{}", config.issuer(), crate::dev::CALLBACK);
            for uri in config
                .clients
                .iter_mut()
                .flat_map(|c| c.redirect_uris.iter_mut())
            {
                if uri.ends_with(crate::dev::CALLBACK) {
                    uri.clone_from(&callback);
                }
            }
        }
        Ok(config)
    }

    /// The longest a token signed now stays valid: how long a signing key
    /// is kept after it stops signing.
    pub fn longest_token_lifetime(&self) -> u64 {
        let t = &self.tokens;
        t.access_token_lifetime
            .max(t.refresh_token_lifetime)
            .max(t.id_token_lifetime)
    }

    /// The longest a sealed value (code, form, session, consent) stays
    /// valid: how long a sealing key is kept after it stops sealing.
    pub fn longest_sealed_lifetime(&self) -> u64 {
        let l = &self.login;
        self.tokens
            .code_lifetime
            .max(l.form_lifetime)
            .max(l.session_lifetime)
            .max(l.consent_lifetime)
    }

    /// How long after it is made a key activates (when another key is
    /// active): published `publish_before` after every server has seen it.
    pub fn activation_delay(&self) -> u64 {
        self.keys
            .publish_before
            .saturating_add(self.keys.poll_interval)
    }

    /// The issuer identifier, explicit or derived from the listeners.
    pub fn issuer(&self) -> String {
        if let Some(issuer) = &self.issuer {
            return issuer.trim_end_matches('/').to_string();
        }
        match (self.server.https, self.server.http) {
            (Some(addr), _) => format!("https://{addr}"),
            (None, Some(addr)) => format!("http://{addr}"),
            (None, None) => "https://localhost".into(),
        }
    }
}

/// `Option<SocketAddr>` written as a string, `""` meaning none.
mod opt_addr;

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closure signature
mod tests;
