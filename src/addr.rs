//! Client addresses: one canonical form (an IPv4-mapped IPv6 address is the
//! IPv4 address) and CIDR membership, used by proxy trust, login
//! throttling and connection limits alike.

use std::net::IpAddr;

use ipnet::IpNet;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_addresses_are_ipv4() {
        let nets: Vec<IpNet> = vec!["127.0.0.1/32".parse().unwrap()];
        assert!(in_any(&nets, "::ffff:127.0.0.1".parse().unwrap()));
        assert!(!in_any(&nets, "127.0.0.2".parse().unwrap()));
        assert_eq!(
            canonical("::1".parse().unwrap()),
            "::1".parse::<IpAddr>().unwrap()
        );
    }
}
