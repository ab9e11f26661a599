//! Connections to Redis (or Valkey): one address, or the primary that
//! Sentinel names (asked again after every failure, so a failover is
//! followed); plain or TLS, with an optional CA and client certificate.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, IntoConnectionInfo, RedisResult,
    TlsCertificates, TlsMode,
};

use crate::config::{RedisConfig, redacted};

/// Makes connections to the current primary.
pub(crate) struct Connector {
    target: Target,
    /// Connect timeout, and the longest wait for one answer.
    pub(crate) timeout: Duration,
    /// The address for logs, without password.
    pub(crate) shown: String,
}

#[allow(clippy::large_enum_variant)] // one per process
enum Target {
    Direct(Client),
    /// Two clients of the same Sentinels: one for blocking lookups (the
    /// change-log reader's thread), one for async ones (requests).
    Sentinel(Sentinels),
}

struct Sentinels {
    blocking: std::sync::Mutex<SentinelClient>,
    async_: tokio::sync::Mutex<SentinelClient>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("redis", &self.shown)
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// Checks `config` and prepares (does not connect).
    pub(crate) fn new(config: &RedisConfig) -> Result<Self, String> {
        let shown = redacted(&config.url);
        let info = config
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| format!("url {shown}: {e}"))?;
        if matches!(info.addr(), ConnectionAddr::TcpTls { insecure: true, .. }) {
            return Err(format!(
                "url {shown}: certificate verification cannot be turned off (#insecure); give the CA in revocation.redis.ca"
            ));
        }
        let certs = certificates(config)?;
        let timeout = Duration::from_secs(config.timeout);
        if config.sentinels.is_empty() {
            let client = match certs {
                Some(certs) => Client::build_with_tls(info, certs),
                None => Client::open(info),
            }
            .map_err(|e| format!("url {shown}: {e}"))?;
            return Ok(Self {
                target: Target::Direct(client),
                timeout,
                shown,
            });
        }
        let sentinel = || sentinel_client(config, &info, certs.clone());
        let shown = format!(
            "sentinel service {} at {}",
            config.sentinel_service,
            config
                .sentinels
                .iter()
                .map(|s| redacted(s))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(Self {
            target: Target::Sentinel(Sentinels {
                blocking: std::sync::Mutex::new(sentinel()?),
                async_: tokio::sync::Mutex::new(sentinel()?),
            }),
            timeout,
            shown,
        })
    }

    /// A blocking connection whose reads give up after `read_timeout`.
    pub(crate) fn blocking(&self, read_timeout: Duration) -> RedisResult<redis::Connection> {
        let client = match &self.target {
            Target::Direct(client) => client.clone(),
            Target::Sentinel(s) => s
                .blocking
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get_client()?,
        };
        let connection = client.get_connection_with_timeout(self.timeout)?;
        connection.set_read_timeout(Some(read_timeout))?;
        connection.set_write_timeout(Some(self.timeout))?;
        Ok(connection)
    }

    /// A multiplexed connection: concurrent requests share it, pipelined.
    /// Answers are awaited by the caller, under its own timeout.
    pub(crate) async fn multiplexed(&self) -> RedisResult<MultiplexedConnection> {
        let client = match &self.target {
            Target::Direct(client) => client.clone(),
            Target::Sentinel(s) => {
                let mut sentinel = s.async_.lock().await;
                tokio::time::timeout(self.timeout, sentinel.async_get_client())
                    .await
                    .map_err(|_| timed_out())??
            }
        };
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(None);
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }
}

/// The error of an answer that did not come in time.
pub(crate) fn timed_out() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "no answer from Redis in time",
    ))
}

/// The CA and client certificate files, read now.
fn certificates(config: &RedisConfig) -> Result<Option<TlsCertificates>, String> {
    let read = |key: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| format!("{key} {}: {e}", path.display()))
    };
    let root_cert = match &config.ca {
        Some(path) => Some(read("ca", path)?),
        None => None,
    };
    let client_tls = match (&config.client_certificate, &config.client_key) {
        (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
            client_cert: read("client_certificate", cert)?,
            client_key: read("client_key", key)?,
        }),
        _ => None,
    };
    Ok(
        (root_cert.is_some() || client_tls.is_some()).then_some(TlsCertificates {
            client_tls,
            root_cert,
        }),
    )
}

fn sentinel_client(
    config: &RedisConfig,
    primary: &redis::ConnectionInfo,
    certs: Option<TlsCertificates>,
) -> Result<SentinelClient, String> {
    let mut addrs = Vec::new();
    let mut sentinel_auth = None;
    for url in &config.sentinels {
        let info = url
            .as_str()
            .into_connection_info()
            .map_err(|e| format!("sentinels: {}: {e}", redacted(url)))?;
        let settings = info.redis_settings();
        if sentinel_auth.is_none() && settings.password().is_some() {
            sentinel_auth = Some((
                settings.username().map(str::to_string),
                settings.password().unwrap_or_default().to_string(),
            ));
        }
        addrs.push(info.addr().clone());
    }
    let failed = |e: redis::RedisError| format!("sentinels: {e}");
    let mut builder =
        SentinelClientBuilder::new(addrs, &config.sentinel_service, SentinelServerType::Master)
            .map_err(failed)?;
    let settings = primary.redis_settings();
    if let Some(user) = settings.username() {
        builder = builder.set_client_to_redis_username(user);
    }
    if let Some(password) = settings.password() {
        builder = builder.set_client_to_redis_password(password);
    }
    builder = builder.set_client_to_redis_db(settings.db());
    if matches!(primary.addr(), ConnectionAddr::TcpTls { .. }) {
        builder = builder.set_client_to_redis_tls_mode(TlsMode::Secure);
    }
    if let Some((user, password)) = sentinel_auth {
        if let Some(user) = user {
            builder = builder.set_client_to_sentinel_username(user);
        }
        builder = builder.set_client_to_sentinel_password(password);
    }
    if let Some(certs) = certs {
        builder = builder
            .set_client_to_redis_certificates(certs.clone())
            .set_client_to_sentinel_certificates(certs);
    }
    builder.build().map_err(failed)
}
