//! Matching a presented certificate against a registered client
//! (RFC 8705 §2.1 PKI method and §2.2 self-signed method).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

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

/// What a leaf certificate names: its subject DN and the subject
/// alternative names a [`Subject`] can be (parsed once per certificate:
/// [`ClientCertificate::identity`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    dn: Dn,
    /// `None`: the extension is there but cannot be parsed (no SAN
    /// subject matches).
    sans: Option<Vec<San>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum San {
    Dns(String),
    Uri(String),
    Email(String),
    Ip(Vec<u8>),
}

impl Identity {
    /// The leaf's names; `None` if it cannot be parsed.
    pub fn parse(leaf: &[u8]) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
        let sans = match cert.subject_alternative_name() {
            Ok(None) => Some(Vec::new()),
            Ok(Some(san)) => Some(
                san.value
                    .general_names
                    .iter()
                    .filter_map(|name| match name {
                        GeneralName::DNSName(n) => Some(San::Dns((*n).to_string())),
                        GeneralName::URI(u) => Some(San::Uri((*u).to_string())),
                        GeneralName::RFC822Name(e) => Some(San::Email((*e).to_string())),
                        GeneralName::IPAddress(ip) => Some(San::Ip(ip.to_vec())),
                        _ => None,
                    })
                    .collect(),
            ),
            Err(_) => None,
        };
        Some(Self {
            dn: Dn::from_x509(cert.subject()),
            sans,
        })
    }
}

impl Subject {
    /// Whether a leaf naming `id` carries this subject.
    pub fn matches(&self, id: &Identity) -> bool {
        if let Subject::Dn(dn) = self {
            return dn.matches(&id.dn);
        }
        let Some(sans) = &id.sans else {
            return false;
        };
        sans.iter().any(|name| match (self, name) {
            (Subject::SanDns(want), San::Dns(got)) => want.eq_ignore_ascii_case(got),
            (Subject::SanUri(want), San::Uri(got)) => want == got,
            (Subject::SanEmail(want), San::Email(got)) => email_eq(want, got),
            (Subject::SanIp(want), San::Ip(got)) => match (want, got.len()) {
                (IpAddr::V4(v4), 4) => v4.octets() == got[..],
                (IpAddr::V6(v6), 16) => v6.octets() == got[..],
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
/// own `tls_client_auth_trust_anchors`), with the verdicts of the chains
/// they validated.
#[derive(Clone)]
pub struct TrustAnchors {
    verifier: Arc<dyn ClientCertVerifier>,
    allow_missing_eku: bool,
    verdicts: Arc<Verdicts>,
}

/// Chains these anchors validated, each for the span every certificate in
/// it is valid (latest `notBefore` to earliest `notAfter`): a client
/// presenting the same chain again within it is not validated again.
/// Keyed by the leaf's thumbprint (and a hash of the intermediates sent
/// with it); only successes are kept, at most [`VERDICTS`] of them.
/// Anchors are built anew with the settings, so a reload (new anchors,
/// new rules) starts with none. No revocation (CRL, OCSP) is consulted,
/// with or without this.
#[derive(Default)]
struct Verdicts(Mutex<HashMap<String, Span>>);

/// Unix seconds `[from, until)`.
type Span = (u64, u64);

/// How many validated chains [`TrustAnchors`] remembers.
pub const VERDICTS: usize = 4096;

impl Verdicts {
    fn key(cert: &ClientCertificate) -> String {
        if cert.intermediates().is_empty() {
            return cert.thumbprint.clone();
        }
        let mut hash = Sha256::new();
        for c in cert.intermediates() {
            hash.update((c.len() as u64).to_be_bytes());
            hash.update(c);
        }
        format!(
            "{}.{}",
            cert.thumbprint,
            URL_SAFE_NO_PAD.encode(hash.finalize())
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Span>> {
        crate::bounded::lock(&self.0)
    }

    fn valid(&self, key: &str, now: u64) -> bool {
        self.lock()
            .get(key)
            .is_some_and(|(from, until)| (*from..*until).contains(&now))
    }

    fn remember(&self, key: String, span: Span, now: u64) {
        if !(span.0..span.1).contains(&now) {
            return;
        }
        let mut map = self.lock();
        if map.len() >= VERDICTS {
            map.retain(|_, (_, until)| *until > now);
        }
        crate::bounded::insert(&mut map, VERDICTS, key, span);
    }
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
            verdicts: Arc::default(),
        })
    }

    /// Validates the chain to one of the anchors at `now` (Unix seconds),
    /// including validity dates, name constraints and the clientAuth
    /// extended key usage (RFC 5280 §4.2.1.12), which must be present
    /// unless `allow_missing_eku`. A chain validated before is taken as
    /// valid while all of it is ([`Verdicts`]).
    pub fn verify(&self, cert: &ClientCertificate, now: u64) -> Result<(), String> {
        let key = Verdicts::key(cert);
        if self.verdicts.valid(&key, now) {
            return Ok(());
        }
        let span = self.validate(cert, now)?;
        self.verdicts.remember(key, span, now);
        Ok(())
    }

    /// [`Self::verify`] in full; the span all of the chain is valid
    /// (empty if unknown).
    fn validate(&self, cert: &ClientCertificate, now: u64) -> Result<Span, String> {
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
            Ok(Some(eku)) if eku.value.client_auth || eku.value.any => {}
            Ok(Some(_)) => return Err("the leaf's extended key usage lacks clientAuth".into()),
            Ok(None) if self.allow_missing_eku => {}
            Ok(None) => {
                return Err("the leaf has no extended key usage (clientAuth required)".into());
            }
            Err(_) => return Err("the leaf's extended key usage cannot be parsed".into()),
        }
        // An intermediate this parser cannot read (the validation above
        // could) empties the span: the verdict is not remembered.
        Ok(cert
            .intermediates()
            .iter()
            .fold(span(&leaf), |(from, until), c| {
                x509_parser::parse_x509_certificate(c).map_or((0, 0), |(_, c)| {
                    let (f, u) = span(&c);
                    (from.max(f), until.min(u))
                })
            }))
    }
}

/// A certificate's validity, Unix seconds (before 1970 counts as 0).
fn span(cert: &x509_parser::certificate::X509Certificate<'_>) -> Span {
    let secs = |t: x509_parser::time::ASN1Time| u64::try_from(t.timestamp()).unwrap_or(0);
    (
        secs(cert.validity().not_before),
        secs(cert.validity().not_after),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CA and a clientAuth leaf it issued, valid from 2020 until
    /// `not_after_year`.
    fn ca_and_leaf(not_after_year: i32) -> (TrustAnchors, ClientCertificate) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(vec![]).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut leaf = rcgen::CertificateParams::new(vec![]).unwrap();
        leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        leaf.not_before = rcgen::date_time_ymd(2020, 1, 1);
        leaf.not_after = rcgen::date_time_ymd(not_after_year, 1, 1);
        let leaf = leaf.signed_by(&key, &issuer).unwrap();
        let anchors = TrustAnchors::new(vec![ca_cert.der().clone()], false).unwrap();
        let cert = ClientCertificate::from_chain(vec![leaf.der().clone()]).unwrap();
        (anchors, cert)
    }

    /// 2030-01-01T00:00:00Z.
    const Y2030: u64 = 1_893_456_000;

    #[test]
    fn a_verdict_is_remembered_until_the_chain_expires() {
        let (anchors, cert) = ca_and_leaf(2030);
        let now = Y2030 - 86_400;
        assert!(anchors.verify(&cert, now).is_ok());
        assert!(anchors.verdicts.valid(&Verdicts::key(&cert), now));
        // Past notAfter the remembered verdict no longer holds: validated
        // again, and refused.
        assert!(anchors.verify(&cert, Y2030 + 1).is_err());
        // Before notBefore (a clock set back): validated again, refused.
        assert!(anchors.verify(&cert, 1_500_000_000).is_err());
        // Other anchors (a reload builds new ones) know nothing of it.
        let (other, _) = ca_and_leaf(2030);
        assert!(other.verify(&cert, now).is_err());
        assert!(!other.verdicts.valid(&Verdicts::key(&cert), now));
    }

    #[test]
    fn refusals_are_not_remembered_and_the_map_is_bounded() {
        let (anchors, cert) = ca_and_leaf(2030);
        // Not yet valid: refused, and not kept.
        assert!(anchors.verify(&cert, 1_500_000_000).is_err());
        assert!(anchors.verdicts.lock().is_empty());
        for i in 0..VERDICTS + 10 {
            anchors.verdicts.remember(format!("k{i}"), (0, Y2030), 0);
        }
        assert_eq!(anchors.verdicts.lock().len(), VERDICTS);
        // Expired verdicts are the first to go.
        anchors
            .verdicts
            .remember("late".into(), (0, Y2030 + 10), Y2030);
        assert_eq!(anchors.verdicts.lock().len(), 1);
    }
}
