//! The client IP used for the per-IP limit: the peer, or the rightmost untrusted hop of
//! `X-Forwarded-For` when the peer is one of the configured proxies (`--trusted-proxies`).
//!
//! Every proxy appends the address it received the request from, so only the hops our own
//! proxies added can be believed: walking `X-Forwarded-For` from the right, every address that
//! is a trusted proxy is skipped and the first one that is not is the client. Whatever the
//! client wrote itself (the leftmost entries) is never reached unless every hop after it is a
//! proxy of ours. A request from a peer that is not a trusted proxy is taken at its peer address
//! and its `X-Forwarded-For` ignored.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::http::HeaderMap;

/// One `ADDRESS/PREFIX` network (a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address.parse().map_err(|e| format!("{text:?}: {e}"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: prefix must be 0 to {max}"))?,
        };
        Ok(Self { network, prefix })
    }
}

impl Cidr {
    /// Whether `ip` is inside this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }

    /// The client's address: the peer unless it is a trusted proxy, else the rightmost
    /// `X-Forwarded-For` hop that is not a trusted proxy. An unparseable hop stops the walk at
    /// the last trusted address (nothing left of it can be believed); when every hop is a
    /// trusted proxy, the leftmost one is the client.
    pub(crate) fn client_ip(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = canonical(peer.ip());
        if !self.trusts(client) {
            return client;
        }
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in hops.into_iter().rev() {
            let Ok(ip) = hop.parse::<IpAddr>() else { return client };
            client = canonical(ip);
            if !self.trusts(client) {
                return client;
            }
        }
        client
    }
}

/// Parses `--trusted-proxies CIDR,...`.
pub(crate) fn parse_proxies(text: &str) -> Result<TrustedProxies, String> {
    text.split(',').filter(|s| !s.trim().is_empty()).map(Cidr::from_str).collect::<Result<_, _>>().map(TrustedProxies)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap_or(IpAddr::from([0, 0, 0, 0])), 40000)
    }

    fn xff(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Ok(v) = value.parse() {
            headers.insert("x-forwarded-for", v);
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn networks_parse_and_match() {
        let net: Cidr = "10.0.0.0/8".parse().unwrap_or(Cidr { network: ip("0.0.0.0"), prefix: 32 });
        assert!(net.contains(ip("10.1.2.3")));
        assert!(net.contains(ip("::ffff:10.1.2.3")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nope".parse::<Cidr>().is_err());
        assert!(parse_proxies("127.0.0.1, fd00::/8").is_ok());
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let proxies = parse_proxies("10.0.0.0/8").unwrap_or_default();
        let h = xff("1.2.3.4, 203.0.113.7, 10.0.0.2");
        assert_eq!(proxies.client_ip(peer("10.0.0.1"), &h), ip("203.0.113.7"));
        // A peer that is not a proxy is the client, whatever it claims.
        assert_eq!(proxies.client_ip(peer("198.51.100.1"), &h), ip("198.51.100.1"));
        // No proxies configured: the header is ignored.
        assert_eq!(TrustedProxies::default().client_ip(peer("10.0.0.1"), &h), ip("10.0.0.1"));
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(proxies.client_ip(peer("10.0.0.1"), &xff("203.0.113.7, junk")), ip("10.0.0.1"));
        // Every hop a proxy: the leftmost.
        assert_eq!(proxies.client_ip(peer("10.0.0.1"), &xff("10.0.0.9, 10.0.0.3")), ip("10.0.0.9"));
        assert_eq!(proxies.client_ip(peer("10.0.0.1"), &HeaderMap::new()), ip("10.0.0.1"));
    }
}
