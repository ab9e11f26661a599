//! A resource server's gate, whatever its web framework: the bearer token
//! (RFC 6750 §2.1), the client certificate (from the TLS connection, or a
//! trusted proxy's header), the token's checks ([`Verifier`]) and the
//! route's scopes. The axum and poem integrations call
//! [`ResourceServer::authorize`] and turn a [`Rejection`] into the RFC
//! 6750 answer.

use std::marker::PhantomData;
use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderMap;
use http::header::AUTHORIZATION;
use serde::de::DeserializeOwned;

use crate::access::{AccessToken, Expect, Extra};
use crate::bearer::{self, Rejection};
use crate::binding;
use crate::client::{self, HttpOptions};
use crate::proxy::Proxies;
use crate::remote::{KeysOptions, RemoteKeys};
use crate::verifier::{Keys, Verifier};

/// The client certificate (DER) of the TLS connection a request came on.
/// A resource server that terminates TLS itself inserts it into each
/// request's extensions; the gate reads it from there.
#[derive(Debug, Clone)]
pub struct PeerCertificate(pub Arc<[u8]>);

/// A verified token, as the handler of a protected route receives it.
#[derive(Debug)]
pub struct Token<E = Extra>(pub Arc<AccessToken<E>>);

impl<E> Clone for Token<E> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<E> std::ops::Deref for Token<E> {
    type Target = AccessToken<E>;
    fn deref(&self) -> &AccessToken<E> {
        &self.0
    }
}

/// The gate: a [`Verifier`], which proxies are believed about the client
/// certificate and through which header, and the realm of the answers.
#[derive(Debug)]
pub struct ResourceServer {
    verifier: Verifier,
    proxies: Proxies,
    certificate_header: Option<http::HeaderName>,
    realm: String,
}

impl ResourceServer {
    /// The gate for `verifier`: the certificate from TLS only, realm
    /// `"api"`.
    pub fn new(verifier: Verifier) -> Self {
        Self {
            verifier,
            proxies: Proxies::default(),
            certificate_header: None,
            realm: "api".into(),
        }
    }

    /// The gate for tokens of `issuer` for `audience`, with keys found by
    /// discovery and every default. Call inside a Tokio runtime.
    pub fn for_issuer(issuer: &str, audience: &str, http: &HttpOptions) -> Result<Self, String> {
        let keys = RemoteKeys::from_issuer(issuer, client::build(http)?, KeysOptions::default());
        Ok(Self::remote(keys, issuer, audience))
    }

    /// The gate for tokens of `issuer` for `audience`, with keys from the
    /// JWKS at `jwks_uri` (no discovery). Call inside a Tokio runtime.
    pub fn for_jwks_uri(
        jwks_uri: &str,
        issuer: &str,
        audience: &str,
        http: &HttpOptions,
    ) -> Result<Self, String> {
        let keys =
            RemoteKeys::from_jwks_uri(jwks_uri, client::build(http)?, KeysOptions::default());
        Ok(Self::remote(keys, issuer, audience))
    }

    fn remote(keys: RemoteKeys, issuer: &str, audience: &str) -> Self {
        Self::new(Verifier::new(
            Keys::Remote(keys),
            Expect::new(issuer, audience),
        ))
    }

    /// Believes `header` (e.g. nginx's `X-SSL-Client-Cert`) from `proxies`
    /// only; from anyone else it is ignored.
    pub fn behind(mut self, proxies: Proxies, header: &str) -> Result<Self, String> {
        let name = http::HeaderName::from_bytes(header.as_bytes())
            .map_err(|_| format!("{header:?} is not a header name"))?;
        self.proxies = proxies;
        self.certificate_header = Some(name);
        Ok(self)
    }

    /// The realm named in `WWW-Authenticate`.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = realm.into();
        self
    }

    /// The verifier.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Guards routes with this gate, requiring `scopes` (all of them).
    pub fn require(self: &Arc<Self>, scopes: &[&str]) -> Require {
        Require::new(self.clone(), scopes)
    }

    /// The RFC 6750 answer to `rejection`: its status, `WWW-Authenticate`
    /// (`Retry-After` for 503), `Cache-Control: no-store` and a JSON body.
    pub fn answer(&self, rejection: &Rejection) -> http::Response<String> {
        let mut response = http::Response::new(rejection.body());
        *response.status_mut() = http::StatusCode::from_u16(rejection.status())
            .unwrap_or(http::StatusCode::UNAUTHORIZED);
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        headers.insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        );
        if let Some(value) = rejection
            .www_authenticate(&self.realm)
            .and_then(|v| http::HeaderValue::from_str(&v).ok())
        {
            headers.insert(http::header::WWW_AUTHENTICATE, value);
        }
        if let Some(secs) = rejection.retry_after() {
            headers.insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        response
    }

    /// Checks a request: its headers, its peer's address, and the TLS
    /// client certificate (DER), if the connection had one.
    pub async fn authorize<E: DeserializeOwned>(
        &self,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
        tls_certificate: Option<&[u8]>,
        scopes: &[String],
    ) -> Result<AccessToken<E>, Rejection> {
        let result = self.check(headers, peer, tls_certificate, scopes).await;
        if let Err(rejection) = &result {
            match rejection {
                Rejection::Unavailable(_) => {
                    tracing::warn!(reason = %rejection.reason(), "access token cannot be checked")
                }
                _ => tracing::info!(
                    status = rejection.status(),
                    reason = %rejection.reason(),
                    "request refused"
                ),
            }
        }
        result
    }

    async fn check<E: DeserializeOwned>(
        &self,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
        tls_certificate: Option<&[u8]>,
        scopes: &[String],
    ) -> Result<AccessToken<E>, Rejection> {
        let token = bearer::token(headers.get_all(AUTHORIZATION).iter().map(|v| v.as_bytes()))?;
        // From a trusted proxy, its header (its own TLS certificate, if it
        // presents one, is not the client's); from anyone else, TLS.
        let from_proxy =
            self.certificate_header.is_some() && peer.is_some_and(|p| self.proxies.trusts(p));
        let presented = match tls_certificate {
            Some(der) if !from_proxy => Some(binding::thumbprint(der)),
            _ => self.forwarded(headers, peer)?,
        };
        let claims: AccessToken<E> = self.verifier.verify(token, presented.as_deref()).await?;
        if bearer::missing_scopes(&claims.scope, scopes).is_some() {
            // RFC 6750 §3: the scope the resource requires.
            return Err(Rejection::InsufficientScope(scopes.join(" ")));
        }
        Ok(claims)
    }

    /// The thumbprint of the certificate a trusted proxy forwarded, if any.
    fn forwarded(
        &self,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
    ) -> Result<Option<String>, Rejection> {
        let Some(name) = &self.certificate_header else {
            return Ok(None);
        };
        let Some(peer) = peer else {
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| {
                tracing::warn!(header = %name, "the peer's address is unknown, so the certificate header is never believed (axum: serve with ConnectInfo<SocketAddr>)");
            });
            return Ok(None);
        };
        if !self.proxies.trusts(peer) {
            return Ok(None);
        }
        let mut values = headers.get_all(name).iter();
        let value = match (values.next(), values.next()) {
            (None, _) => return Ok(None),
            (Some(_), Some(_)) => return Err(Rejection::BadCertificateHeader),
            (Some(v), None) => v,
        };
        let value = value
            .to_str()
            .map_err(|_| Rejection::BadCertificateHeader)?;
        if value.is_empty() {
            return Ok(None);
        }
        let der = self
            .proxies
            .certificate(peer, Some(value))
            .map_err(|_| Rejection::BadCertificateHeader)?;
        Ok(der.map(|der| binding::thumbprint(&der)))
    }
}

/// A guard for routes: the gate and the scopes they require. It is an
/// axum layer (feature `axum`) and a poem middleware (feature `poem`);
/// the handler then takes a [`Token<E>`].
pub struct Require<E = Extra> {
    pub(crate) gate: Arc<ResourceServer>,
    pub(crate) scopes: Arc<[String]>,
    _claims: PhantomData<fn() -> E>,
}

impl<E> Clone for Require<E> {
    fn clone(&self) -> Self {
        Self {
            gate: self.gate.clone(),
            scopes: self.scopes.clone(),
            _claims: PhantomData,
        }
    }
}

impl Require {
    /// Requires `scopes` of tokens passed by `gate`.
    pub fn new(gate: Arc<ResourceServer>, scopes: &[&str]) -> Self {
        Self {
            gate,
            // Scopes are tokens (RFC 6749 §3.3): "a b" is two, "" none.
            scopes: scopes
                .iter()
                .flat_map(|s| s.split(' '))
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            _claims: PhantomData,
        }
    }

    /// The same guard, with the application's own claims as `E`.
    pub fn with_claims<E>(self) -> Require<E> {
        Require {
            gate: self.gate,
            scopes: self.scopes,
            _claims: PhantomData,
        }
    }
}

impl<E: DeserializeOwned> Require<E> {
    /// Checks a request (see [`ResourceServer::authorize`]).
    pub async fn check(
        &self,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
        tls_certificate: Option<&[u8]>,
    ) -> Result<Token<E>, Rejection> {
        self.gate
            .authorize(headers, peer, tls_certificate, &self.scopes)
            .await
            .map(|claims| Token(Arc::new(claims)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_scopes_are_tokens() {
        let keys = Keys::Static(Arc::new(
            crate::jwks::Jwks::from_json(
                br#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k","alg":"ES256",
                "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#,
                &[],
            )
            .unwrap(),
        ));
        let gate = Arc::new(ResourceServer::new(Verifier::new(
            keys,
            Expect::new("https://as", "api"),
        )));
        let scopes = |s: &[&str]| gate.require(s).scopes.to_vec();
        assert_eq!(scopes(&["a b", "", "c"]), ["a", "b", "c"]);
        assert!(scopes(&[""]).is_empty());
    }
}
