//! Client addresses: one canonical form (an IPv4-mapped IPv6 address is the
//! IPv4 address), CIDR membership, and the bucket a client is counted in,
//! used by proxy trust, login throttling and connection limits alike.

use std::net::{IpAddr, Ipv6Addr};

use ipnet::IpNet;

use crate::server::Listener;

/// `::ffff:a.b.c.d` as `a.b.c.d`; anything else unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

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

/// Whether `ip` (canonicalised) is inside any of `nets`.
pub fn in_any(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = canonical(ip);
    nets.iter().any(|net| net.contains(&ip))
}

/// Whether what a proxy says about a request (the certificate header,
/// `X-Forwarded-For`) may be believed: it came in on a listener that faces
/// the proxy (the plain HTTP one; HTTPS only with `on_https`) from a peer
/// in `trusted`. A request with no listener (never the case over a socket)
/// or no peer address is not.
pub fn trusted_proxy(
    listener: Option<Listener>,
    peer: Option<IpAddr>,
    trusted: &[IpNet],
    on_https: bool,
) -> bool {
    let faces_proxy = match listener {
        Some(Listener::Http) => true,
        Some(Listener::Https) => on_https,
        None => false,
    };
    faces_proxy && peer.is_some_and(|ip| in_any(trusted, ip))
}

/// [`trusted_proxy`] for a request.
pub fn via_trusted_proxy(req: &poem::Request, trusted: &[IpNet], on_https: bool) -> bool {
    trusted_proxy(
        req.extensions().get::<Listener>().copied(),
        req.remote_addr().as_socket_addr().map(|a| a.ip()),
        trusted,
        on_https,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxies_are_believed_only_where_they_face_us() {
        let nets: Vec<IpNet> = vec!["127.0.0.1/32".parse().unwrap()];
        let proxy = Some("::ffff:127.0.0.1".parse().unwrap());
        let other = Some("127.0.0.2".parse().unwrap());
        assert!(trusted_proxy(Some(Listener::Http), proxy, &nets, false));
        assert!(!trusted_proxy(Some(Listener::Http), other, &nets, false));
        assert!(!trusted_proxy(Some(Listener::Http), None, &nets, false));
        assert!(!trusted_proxy(Some(Listener::Https), proxy, &nets, false));
        assert!(trusted_proxy(Some(Listener::Https), proxy, &nets, true));
        assert!(!trusted_proxy(None, proxy, &nets, true));
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
