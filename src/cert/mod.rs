//! The client certificate (RFC 8705 §2): where it comes from, its
//! `x5t#S256` thumbprint (§3.1), and how it is matched against a client.

pub mod dn;
pub mod matching;

pub use certbound_verify::binding::{BindingError, thumbprint};
/// Forwarded-certificate headers: one implementation, shared with
/// resource servers through `certbound-verify`.
pub use certbound_verify::header;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use certbound_verify::binding::{self, Unbound};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::addr::TrustedProxies;
use crate::error::OAuthError;

/// A client certificate presented for this request: the leaf (DER), any
/// intermediates, and the leaf's `x5t#S256` thumbprint.
#[derive(Debug, Clone)]
pub struct ClientCertificate {
    /// Leaf first, then intermediates as sent by the client; never empty.
    chain: Vec<CertificateDer<'static>>,
    /// base64url(SHA-256(leaf DER)), RFC 8705 §3.1.
    pub thumbprint: String,
    /// The leaf's subject and SANs, parsed when first asked for (once per
    /// connection, or per proxy header value).
    identity: std::sync::OnceLock<Option<matching::Identity>>,
}

impl ClientCertificate {
    /// Wraps a chain (leaf first). Returns `None` for an empty chain.
    pub fn from_chain(chain: Vec<CertificateDer<'static>>) -> Option<Self> {
        let thumbprint = thumbprint(chain.first()?);
        Some(Self {
            chain,
            thumbprint,
            identity: std::sync::OnceLock::new(),
        })
    }

    /// What the leaf names (`tls_client_auth` matching); `None` if it
    /// cannot be parsed.
    pub fn identity(&self) -> Option<&matching::Identity> {
        self.identity
            .get_or_init(|| matching::Identity::parse(self.leaf()))
            .as_ref()
    }

    /// The leaf certificate, DER.
    pub fn leaf(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    /// Intermediates sent after the leaf.
    pub fn intermediates(&self) -> &[CertificateDer<'static>] {
        &self.chain[1..]
    }
}

/// The peer certificate of a TLS connection, attached to each request served
/// on it by the listener (computed once per connection).
#[derive(Debug, Clone)]
pub struct PeerCertificate(pub Arc<ClientCertificate>);

/// RFC 8705 §3: a token with `cnf.x5t#S256` is good only with the
/// certificate of that thumbprint; a token without `cnf` with any or none
/// (this server issues unbound tokens to secret-authenticated clients).
/// The one binding check ([`binding::check`], shared with resource
/// servers): every endpoint that accepts a token calls it.
pub fn check_binding(
    cnf: Option<&crate::token::Confirmation>,
    presented: Option<&ClientCertificate>,
) -> Result<(), BindingError> {
    binding::check(
        cnf.map(|c| c.x5t_s256.as_str()),
        presented.map(|c| c.thumbprint.as_str()),
        Unbound::Accepted,
    )
}

/// Certificates decoded from the proxy header, by the header's exact
/// value: a client sending the same certificate again (every request, on
/// most deployments) is not decoded, parsed and hashed again. Decoding
/// depends on the value alone, so one memo serves every tenant and
/// outlives reloads. Only values that decoded, from trusted proxies, of
/// at most [`HEADER_CACHE_VALUE`] bytes (an RSA-4096 certificate is about
/// 3 KiB encoded), are kept; at most [`HEADER_CACHE`] of them, so at most
/// about 7 MiB.
#[derive(Debug, Default)]
pub struct HeaderCerts(std::sync::Mutex<HashMap<Box<str>, Arc<ClientCertificate>>>);

/// How many decoded header values [`HeaderCerts`] keeps.
pub const HEADER_CACHE: usize = 1024;
/// The longest header value [`HeaderCerts`] keeps.
pub const HEADER_CACHE_VALUE: usize = 4 * 1024;

/// The process's [`HeaderCerts`].
static HEADER_CERTS: std::sync::LazyLock<HeaderCerts> =
    std::sync::LazyLock::new(HeaderCerts::default);

impl HeaderCerts {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Arc<ClientCertificate>>> {
        crate::bounded::lock(&self.0)
    }

    /// The certificate in header value `value`, decoded once.
    fn decode(&self, value: &str) -> Result<Arc<ClientCertificate>, header::HeaderError> {
        if let Some(cert) = self.lock().get(value) {
            return Ok(cert.clone());
        }
        let der = header::decode(value)?;
        let cert = ClientCertificate::from_chain(vec![CertificateDer::from(der)])
            .map(Arc::new)
            .ok_or(header::HeaderError::Empty)?;
        if value.len() <= HEADER_CACHE_VALUE {
            crate::bounded::insert(&mut self.lock(), HEADER_CACHE, value.into(), cert.clone());
        }
        Ok(cert)
    }
}

/// The certificate for this request: the TLS peer certificate when there is
/// one; otherwise the proxy header `header` (when configured), believed only
/// under the [`TrustedProxies`] rule. A header from a trusted proxy that
/// cannot be parsed is `invalid_client`.
pub fn presented(
    req: &poem::Request,
    header: Option<&poem::http::HeaderName>,
    proxies: &TrustedProxies,
) -> Result<Option<Arc<ClientCertificate>>, OAuthError> {
    if let Some(PeerCertificate(cert)) = req.extensions().get::<PeerCertificate>() {
        return Ok(Some(cert.clone()));
    }
    let Some(name) = header else {
        return Ok(None);
    };
    let mut values = req.headers().get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if !proxies.believes_request(req) {
        tracing::debug!(peer = %req.remote_addr(), header = %name, "ignoring certificate header: not from a trusted proxy on a listener facing it");
        return Ok(None);
    }
    if values.next().is_some() {
        return Err(OAuthError::InvalidClient(
            "client certificate header repeated".into(),
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| OAuthError::InvalidClient("client certificate header is not ASCII".into()))?;
    let cert = HEADER_CERTS.decode(value).map_err(|e| {
        tracing::debug!(error = %e, "unparsable client certificate header");
        OAuthError::InvalidClient("client certificate header cannot be parsed".into())
    })?;
    Ok(Some(cert))
}

/// Reads a PEM bundle of certificates.
pub fn read_pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_is_base64url_sha256() {
        // SHA-256("abc") = ba7816bf...
        assert_eq!(
            thumbprint(b"abc"),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
    }

    #[test]
    fn header_values_are_decoded_once_and_kept_within_bounds() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let value = header::encode::url_encoded_pem(cert.der());
        let cache = HeaderCerts::default();
        let first = cache.decode(&value).unwrap();
        assert_eq!(first.thumbprint, thumbprint(cert.der()));
        assert!(Arc::ptr_eq(&first, &cache.decode(&value).unwrap()));
        assert!(cache.decode("not a certificate").is_err());
        assert_eq!(cache.lock().len(), 1, "failures are not kept");
        for i in 0..HEADER_CACHE + 5 {
            // Distinct values of one certificate: PEM with spaces added.
            let _ = cache.decode(&format!("{value}{}", "%20".repeat(i)));
        }
        assert_eq!(cache.lock().len(), HEADER_CACHE);
    }
}
