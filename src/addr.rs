//! Client addresses: one canonical form (an IPv4-mapped IPv6 address is the
//! IPv4 address), CIDR membership, and the bucket a client is counted in,
//! used by proxy trust, login throttling and connection limits alike.

use std::net::{IpAddr, Ipv6Addr};

use ipnet::IpNet;

use crate::server::Listener;

/// The canonical form and the network rule, shared with resource servers
/// through `certbound-verify`.
pub use certbound_verify::proxy::{canonical, in_any};

/// The address a client is counted as for limits: IPv4 as it is, IPv6 by
/// its /64 (one subscriber or host usually holds a whole /64, so counting
/// single IPv6 addresses would let one client look like millions).
pub fn bucket(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// The proxies whose word about a request is believed: the certificate
/// header (RFC 8705 §2 behind a TLS-terminating proxy) and
/// `X-Forwarded-For`, under one rule: the request came in on a listener that
/// faces the proxy (the plain HTTP one; HTTPS only with `on_https`) from a
/// peer inside `nets`. A request with no listener (never the case over a
/// socket) or no peer address is not believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    /// `mtls.trusted_proxies`.
    pub nets: Vec<IpNet>,
    /// `mtls.header_on_https`.
    pub on_https: bool,
}

impl TrustedProxies {
    /// Whether a request on `listener` from `peer` came through a trusted
    /// proxy.
    pub fn believes(&self, listener: Option<Listener>, peer: Option<IpAddr>) -> bool {
        let faces_proxy = match listener {
            Some(Listener::Http) => true,
            Some(Listener::Https) => self.on_https,
            Some(Listener::Admin) | None => false,
        };
        faces_proxy && peer.is_some_and(|ip| in_any(&self.nets, ip))
    }

    /// [`Self::believes`] for a request.
    pub fn believes_request(&self, req: &poem::Request) -> bool {
        self.believes(
            req.extensions().get::<Listener>().copied(),
            req.remote_addr().as_socket_addr().map(|a| a.ip()),
        )
    }

    /// Whether `ip` is a proxy address (exempt from per-address limits).
    pub fn contains(&self, ip: IpAddr) -> bool {
        in_any(&self.nets, ip)
    }

    /// The address a request comes from: the TCP peer, or, through a
    /// trusted proxy, the last `X-Forwarded-For` entry: the one that proxy
    /// added. If that entry is not an address, the peer (an earlier entry is
    /// the client's own word).
    pub fn client_address(&self, req: &poem::Request) -> Option<IpAddr> {
        let peer = canonical(req.remote_addr().as_socket_addr().map(|a| a.ip())?);
        if !self.believes_request(req) {
            return Some(peer);
        }
        let last_line = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok());
        Some(certbound_verify::proxy::forwarded_client(peer, last_line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxies_are_believed_only_where_they_face_us() {
        let mut trusted = TrustedProxies {
            nets: vec!["127.0.0.1/32".parse().unwrap()],
            on_https: false,
        };
        let proxy = Some("::ffff:127.0.0.1".parse().unwrap());
        let other = Some("127.0.0.2".parse().unwrap());
        assert!(trusted.believes(Some(Listener::Http), proxy));
        assert!(!trusted.believes(Some(Listener::Http), other));
        assert!(!trusted.believes(Some(Listener::Http), None));
        assert!(!trusted.believes(Some(Listener::Https), proxy));
        trusted.on_https = true;
        assert!(trusted.believes(Some(Listener::Https), proxy));
        assert!(!trusted.believes(None, proxy));
    }

    #[test]
    fn mapped_addresses_are_ipv4() {
        let nets: Vec<IpNet> = vec!["127.0.0.1/32".parse().unwrap()];
        assert!(in_any(&nets, "::ffff:127.0.0.1".parse().unwrap()));
        assert!(!in_any(&nets, "127.0.0.2".parse().unwrap()));
        assert_eq!(
            canonical("::1".parse().unwrap()),
            "::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            bucket("2001:db8:1:2:3:4:5:6".parse().unwrap()),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            bucket("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }
}
