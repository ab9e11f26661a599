//! Matching a presented certificate against a registered client
//! (RFC 8705 §2.1 PKI method and §2.2 self-signed method).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use x509_parser::extensions::GeneralName;

use super::ClientCertificate;
use super::dn::Dn;

/// The one subject a `tls_client_auth` client is registered with
/// (RFC 8705 §2.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// `tls_client_auth_subject_dn`
    Dn(Dn),
    /// `tls_client_auth_san_dns`
    SanDns(String),
    /// `tls_client_auth_san_uri`
    SanUri(String),
    /// `tls_client_auth_san_ip`
    SanIp(IpAddr),
    /// `tls_client_auth_san_email`
    SanEmail(String),
}

impl Subject {
    /// Whether the leaf certificate carries this subject.
    pub fn matches(&self, leaf: &[u8]) -> bool {
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf) else {
            return false;
        };
        if let Subject::Dn(dn) = self {
            return dn.matches(&Dn::from_x509(cert.subject()));
        }
        let Ok(Some(san)) = cert.subject_alternative_name() else {
            return false;
        };
        san.value
            .general_names
            .iter()
            .any(|name| match (self, name) {
                (Subject::SanDns(want), GeneralName::DNSName(got)) => {
                    want.eq_ignore_ascii_case(got)
                }
                (Subject::SanUri(want), GeneralName::URI(got)) => want == got,
                (Subject::SanEmail(want), GeneralName::RFC822Name(got)) => email_eq(want, got),
                (Subject::SanIp(want), GeneralName::IPAddress(got)) => match (want, got.len()) {
                    (IpAddr::V4(v4), 4) => v4.octets() == **got,
                    (IpAddr::V6(v6), 16) => v6.octets() == **got,
                    _ => false,
                },
                _ => false,
            })
    }
}

/// Local part exact, domain case-insensitive (RFC 5321 §2.4).
fn email_eq(a: &str, b: &str) -> bool {
    match (a.rsplit_once('@'), b.rsplit_once('@')) {
        (Some((la, da)), Some((lb, db))) => la == lb && da.eq_ignore_ascii_case(db),
        _ => a == b,
    }
}

/// CAs trusted for `tls_client_auth` (`mtls.trust_anchors`, or a client's
/// own `tls_client_auth_trust_anchors`).
#[derive(Clone)]
pub struct TrustAnchors {
    verifier: Arc<dyn ClientCertVerifier>,
    allow_missing_eku: bool,
}

impl std::fmt::Debug for TrustAnchors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TrustAnchors")
    }
}

impl TrustAnchors {
    /// Builds from DER certificates; fails on an empty or unusable set.
    /// A leaf without an extended key usage extension is refused unless
    /// `allow_missing_eku` (one that has the extension must list clientAuth
    /// either way).
    pub fn new(
        certs: Vec<CertificateDer<'static>>,
        allow_missing_eku: bool,
    ) -> Result<Self, String> {
        let mut roots = RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err("no usable CA certificate".into());
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        )
        .build()
        .map_err(|e| e.to_string())?;
        Ok(Self {
            verifier,
            allow_missing_eku,
        })
    }

    /// Validates the chain to one of the anchors at `now` (Unix seconds),
    /// including validity dates, name constraints and the clientAuth
    /// extended key usage (RFC 5280 §4.2.1.12), which must be present.
    pub fn verify(&self, cert: &ClientCertificate, now: u64) -> Result<(), String> {
        self.verifier
            .verify_client_cert(
                cert.leaf(),
                cert.intermediates(),
                UnixTime::since_unix_epoch(Duration::from_secs(now)),
            )
            .map_err(|e| e.to_string())?;
        let (_, leaf) = x509_parser::parse_x509_certificate(cert.leaf())
            .map_err(|_| "the leaf cannot be parsed".to_string())?;
        match leaf.extended_key_usage() {
            Ok(Some(eku)) if eku.value.client_auth || eku.value.any => Ok(()),
            Ok(Some(_)) => Err("the leaf's extended key usage lacks clientAuth".into()),
            Ok(None) if self.allow_missing_eku => Ok(()),
            Ok(None) => Err("the leaf has no extended key usage (clientAuth required)".into()),
            Err(_) => Err("the leaf's extended key usage cannot be parsed".into()),
        }
    }
}
