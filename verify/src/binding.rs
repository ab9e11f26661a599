//! RFC 8705 §3: a certificate-bound access token carries
//! `cnf: {"x5t#S256": …}`, the SHA-256 thumbprint of the client
//! certificate it was issued to, and is good only when presented over a
//! connection with that certificate.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// RFC 8705 §3.1 `x5t#S256`: base64url, no padding, of SHA-256 over the
/// certificate's DER.
pub fn thumbprint(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(der))
}

/// Whether a token without `cnf` is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unbound {
    /// Refused: every token must be bound (the default for resource
    /// servers, which exist to refuse tokens without their certificate).
    #[default]
    Refused,
    /// Accepted with or without a certificate.
    Accepted,
}

/// Why a token may not be used with the certificate presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BindingError {
    /// The token is bound, and no client certificate came with the request.
    #[error("the token is bound to a client certificate; present that certificate")]
    NoCertificate,
    /// A certificate came, but not the one the token is bound to.
    #[error("the token is bound to another client certificate")]
    OtherCertificate,
    /// The token carries no `cnf`, and unbound tokens are refused.
    #[error("the token is not bound to a client certificate")]
    Unbound,
}

/// RFC 8705 §3: `cnf` (the token's `x5t#S256`, if any) against the
/// thumbprint of the certificate `presented` with the request, if any.
/// The thumbprints are compared in constant time.
pub fn check(
    cnf: Option<&str>,
    presented: Option<&str>,
    unbound: Unbound,
) -> Result<(), BindingError> {
    match (cnf, presented) {
        (None, _) if unbound == Unbound::Accepted => Ok(()),
        (None, _) => Err(BindingError::Unbound),
        (Some(_), None) => Err(BindingError::NoCertificate),
        (Some(want), Some(got)) if bool::from(want.as_bytes().ct_eq(got.as_bytes())) => Ok(()),
        (Some(_), Some(_)) => Err(BindingError::OtherCertificate),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc_8705_thumbprint() {
        // SHA-256 of the empty input, base64url without padding.
        assert_eq!(
            thumbprint(b""),
            "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
        );
    }

    #[test]
    fn each_case() {
        let t = thumbprint(b"cert");
        let other = thumbprint(b"other");
        assert_eq!(check(Some(&t), Some(&t), Unbound::Refused), Ok(()));
        assert_eq!(
            check(Some(&t), Some(&other), Unbound::Accepted),
            Err(BindingError::OtherCertificate)
        );
        assert_eq!(
            check(Some(&t), None, Unbound::Accepted),
            Err(BindingError::NoCertificate)
        );
        assert_eq!(
            check(None, None, Unbound::Refused),
            Err(BindingError::Unbound)
        );
        assert_eq!(
            check(None, Some(&t), Unbound::Refused),
            Err(BindingError::Unbound)
        );
        assert_eq!(check(None, None, Unbound::Accepted), Ok(()));
        assert_eq!(check(None, Some(&t), Unbound::Accepted), Ok(()));
        // A prefix or an extension of the thumbprint is another one.
        assert_eq!(
            check(Some(&t), Some(&t[..10]), Unbound::Refused),
            Err(BindingError::OtherCertificate)
        );
    }

    proptest! {
        #[test]
        fn only_the_same_thumbprint_matches(a in "[A-Za-z0-9_-]{0,60}", b in "[A-Za-z0-9_-]{0,60}") {
            let ok = check(Some(&a), Some(&b), Unbound::Refused).is_ok();
            prop_assert_eq!(ok, a == b);
        }
    }
}
