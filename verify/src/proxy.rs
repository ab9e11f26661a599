//! A TLS-terminating proxy in front (RFC 8705 §2 behind a proxy): what it
//! says about a request, the client certificate in a header and the
//! client's address in `X-Forwarded-For`, is believed only when the TCP
//! peer is inside the configured networks. Addresses are compared in one
//! canonical form (an IPv4-mapped IPv6 address is the IPv4 address).

use std::net::IpAddr;

pub use ipnet::IpNet;

use crate::header::{self, HeaderError};

/// `::ffff:a.b.c.d` as `a.b.c.d`; anything else unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` (canonicalised) is inside any of `nets`.
pub fn in_any(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = canonical(ip);
    nets.iter().any(|net| net.contains(&ip))
}

/// The client's address as a trusted proxy reports it: the last entry of
/// the last `X-Forwarded-For` line (the one that proxy added; earlier
/// entries are the client's own word), or the peer when that entry is not
/// an address.
pub fn forwarded_client(peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
    forwarded_for
        .and_then(|v| v.rsplit(',').next())
        .and_then(|s| s.trim().parse::<IpAddr>().ok())
        .map_or(canonical(peer), canonical)
}

/// The proxies believed: requests from a peer inside `nets`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proxies {
    /// Networks of the proxies.
    pub nets: Vec<IpNet>,
}

impl Proxies {
    /// Whether `peer` is one of the proxies.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        in_any(&self.nets, peer)
    }

    /// The client's address: through a trusted proxy, what it says
    /// ([`forwarded_client`]); otherwise the peer.
    pub fn client_address(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        if self.trusts(peer) {
            forwarded_client(peer, forwarded_for)
        } else {
            canonical(peer)
        }
    }

    /// The client certificate's DER from the proxy's header value: `None`
    /// when there is no header or the peer is no proxy (the header is then
    /// anyone's word and ignored); an error when a proxy sent something
    /// that is not a certificate.
    pub fn certificate(
        &self,
        peer: IpAddr,
        header_value: Option<&str>,
    ) -> Result<Option<Vec<u8>>, HeaderError> {
        match header_value {
            Some(value) if self.trusts(peer) => header::decode(value).map(Some),
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_proxies_are_believed() {
        let proxies = Proxies {
            nets: vec![
                "127.0.0.1/32".parse().unwrap(),
                "10.0.0.0/8".parse().unwrap(),
            ],
        };
        assert!(proxies.trusts(ip("::ffff:127.0.0.1")));
        assert!(proxies.trusts(ip("10.1.2.3")));
        assert!(!proxies.trusts(ip("127.0.0.2")));
        let xff = Some("203.0.113.9, 198.51.100.7");
        assert_eq!(
            proxies.client_address(ip("10.1.2.3"), xff),
            ip("198.51.100.7")
        );
        assert_eq!(
            proxies.client_address(ip("192.0.2.1"), xff),
            ip("192.0.2.1")
        );
        assert_eq!(
            proxies.client_address(ip("10.1.2.3"), Some("junk")),
            ip("10.1.2.3")
        );
        assert_eq!(
            proxies.client_address(ip("10.1.2.3"), Some("::ffff:192.0.2.5")),
            ip("192.0.2.5")
        );
        // A header from anyone else is no certificate at all.
        assert_eq!(
            proxies.certificate(ip("192.0.2.1"), Some("garbage")),
            Ok(None)
        );
        assert_eq!(proxies.certificate(ip("10.1.2.3"), None), Ok(None));
        assert!(
            proxies
                .certificate(ip("10.1.2.3"), Some("garbage"))
                .is_err()
        );
        let der = rcgen::CertificateParams::new(vec!["c".into()])
            .unwrap()
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap()
            .der()
            .to_vec();
        let pem = header::encode::url_encoded_pem(&der);
        assert_eq!(
            proxies.certificate(ip("127.0.0.1"), Some(&pem)),
            Ok(Some(der))
        );
        assert_eq!(canonical(ip("::1")), ip("::1"));
    }
}
