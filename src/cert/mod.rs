//! The client certificate (RFC 8705 §2): where it comes from, its
//! `x5t#S256` thumbprint (§3.1), and how it is matched against a client.

pub mod dn;
pub mod header;
pub mod matching;

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sha2::{Digest, Sha256};

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
}

impl ClientCertificate {
    /// Wraps a chain (leaf first). Returns `None` for an empty chain.
    pub fn from_chain(chain: Vec<CertificateDer<'static>>) -> Option<Self> {
        let thumbprint = thumbprint(chain.first()?);
        Some(Self { chain, thumbprint })
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

/// RFC 8705 §3.1 `x5t#S256`: base64url, no padding, of SHA-256 over the DER.
pub fn thumbprint(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(der))
}

/// Why a certificate-bound token (RFC 8705 §3) may not be used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BindingError {
    /// No client certificate came with the request.
    #[error("the token is bound to a client certificate; present that certificate")]
    NoCertificate,
    /// A certificate came, but not the one the token is bound to.
    #[error("the token is bound to another client certificate")]
    OtherCertificate,
}

/// RFC 8705 §3: a token with `cnf.x5t#S256` is good only with the
/// certificate of that thumbprint; a token without `cnf` with any or none.
/// The one binding check: every endpoint that accepts a token calls it.
pub fn check_binding(
    cnf: Option<&crate::token::Confirmation>,
    presented: Option<&ClientCertificate>,
) -> Result<(), BindingError> {
    match (cnf, presented) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(BindingError::NoCertificate),
        (Some(want), Some(cert)) if cert.thumbprint == want.x5t_s256 => Ok(()),
        (Some(_), Some(_)) => Err(BindingError::OtherCertificate),
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
        tracing::debug!(peer = ?req.remote_addr(), header = %name, "ignoring certificate header: not from a trusted proxy on a listener facing it");
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
    let der = header::decode(value).map_err(|e| {
        tracing::debug!(error = %e, "unparsable client certificate header");
        OAuthError::InvalidClient("client certificate header cannot be parsed".into())
    })?;
    Ok(ClientCertificate::from_chain(vec![CertificateDer::from(der)]).map(Arc::new))
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
}
