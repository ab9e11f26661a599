//! Why a client authentication was refused (RFC 6749 §2.3, RFC 8705 §2).
//! The client is told only `invalid_client`; the operator sees the reason
//! once per refusal, in the log at info and in
//! `certbound_client_auth_failures_total{reason}`.

use crate::error::OAuthError;

/// Characters of a refused client id written to the log.
pub const LOGGED_ID: usize = 64;

/// The reason for a refused client authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Neither a client id nor HTTP Basic was sent.
    NoCredentials,
    /// No client has this id.
    UnknownClient,
    /// A certificate method, and no certificate came with the request.
    NoCertificate,
    /// A certificate header came from an address or listener that is not
    /// trusted for it (`mtls.trusted_proxies`, `mtls.header_on_https`).
    UntrustedProxyHeader,
    /// The certificate header could not be read (repeated, not ASCII, not
    /// a certificate).
    BadCertificateHeader,
    /// `tls_client_auth`: the chain does not lead to a trust anchor, or a
    /// certificate in it is expired or not for client authentication.
    UntrustedChain,
    /// `tls_client_auth`: the chain is trusted, the subject (DN or SAN) is
    /// not the registered one.
    SubjectMismatch,
    /// `self_signed_tls_client_auth`: not a registered certificate.
    CertificateNotRegistered,
    /// A secret method, and the secret is wrong or missing.
    BadSecret,
    /// Credentials of another method than the client's (for example HTTP
    /// Basic for a certificate client).
    WrongMethod,
    /// Authenticated, but not one of `admin.clients` (the admin endpoint).
    NotAdmin,
}

impl Refusal {
    /// The label value and log field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoCredentials => "no_credentials",
            Self::UnknownClient => "unknown_client",
            Self::NoCertificate => "no_certificate",
            Self::UntrustedProxyHeader => "untrusted_proxy_header",
            Self::BadCertificateHeader => "bad_certificate_header",
            Self::UntrustedChain => "untrusted_chain",
            Self::SubjectMismatch => "subject_mismatch",
            Self::CertificateNotRegistered => "certificate_not_registered",
            Self::BadSecret => "bad_secret",
            Self::WrongMethod => "wrong_method",
            Self::NotAdmin => "not_admin",
        }
    }

    /// Logs and counts the refusal of `client_id` (when one was named; the
    /// client's to choose, so at most [`LOGGED_ID`] characters are logged).
    pub fn record(self, client_id: Option<&str>) {
        let client_id = client_id.map(|id| match id.char_indices().nth(LOGGED_ID) {
            Some((end, _)) => &id[..end],
            None => id,
        });
        tracing::info!(
            client_id,
            reason = self.as_str(),
            "client authentication refused"
        );
        crate::metrics::client_auth_refused(self.as_str());
    }

    /// Records the refusal and gives the client's answer: `invalid_client`
    /// without saying which part failed.
    pub fn refuse(self, client_id: Option<&str>) -> OAuthError {
        self.record(client_id);
        OAuthError::InvalidClient(match self {
            Self::NoCredentials => "client authentication required".into(),
            _ => "client authentication failed".into(),
        })
    }
}
