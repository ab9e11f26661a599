//! The built-in defaults: the first layer under the file and the
//! environment (every value is in the README's configuration table).

use std::net::SocketAddr;
use std::path::PathBuf;

use super::*;

impl Default for Config {
    fn default() -> Self {
        Self {
            issuer: None,
            server: ServerConfig {
                https: Some(SocketAddr::from(([127, 0, 0, 1], 9443))),
                http: None,
                admin: None,
                tls_certificate: PathBuf::from("keys/server.crt"),
                tls_private_key: PathBuf::from("keys/server.key"),
                handshake_timeout: 10,
                shutdown_timeout: 10,
                max_body_bytes: 16 * 1024,
                header_read_timeout: 10,
                body_read_timeout: 10,
                idle_timeout: 60,
                http2_keep_alive_interval: 30,
                http2_max_streams: 32,
                max_connections: 4096,
                max_connections_per_address: 256,
                max_requests_in_flight: 1024,
                linger_bytes: 4 * 1024 * 1024,
                linger_timeout: 5,
                control_socket: None,
            },
            mtls: MtlsConfig {
                client_certificate_header: None,
                trusted_proxies: Vec::new(),
                trust_anchors: None,
                allow_leaf_without_eku: false,
                header_on_https: false,
                endpoint_aliases_base: None,
            },
            tokens: TokensConfig {
                signing_algorithm: crate::keys::Alg::ES256,
                access_token_lifetime: 3600,
                audience: None,
                introspection_scope: "introspect".into(),
                introspection_cache_entries: 10_000,
                refresh_token_lifetime: 86_400,
                id_token_lifetime: 3600,
                code_lifetime: 60,
            },
            login: LoginConfig {
                users_file: None,
                session_lifetime: 8 * 3600,
                consent_lifetime: 180 * 86_400,
                form_lifetime: 600,
                max_failures_per_user: 5,
                max_failures_per_address: 20,
                failure_window: 300,
                hash_workers: 0,
                hash_queue: 32,
                scope_descriptions: Default::default(),
            },
            introspection: IntrospectionConfig::default(),
            keys: KeysConfig {
                dir: PathBuf::from("keys"),
                publish_before: 3600,
                poll_interval: 10,
            },
            revocation: RevocationConfig::default(),
            clients: Vec::new(),
            users: Vec::new(),
            tenancy: TenancyConfig {
                default_domain: "carbon.super".into(),
            },
            tenants: Vec::new(),
            log: LogConfig::default(),
            admin: AdminConfig::default(),
        }
    }
}
