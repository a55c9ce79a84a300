//! Who sent a request: the TCP peer, or, when the peer is a trusted proxy, the nearest address
//! in `X-Forwarded-For` that is not one.

use std::net::{IpAddr, SocketAddr};

use hyper::HeaderMap;
use ipnet::IpNet;

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The client's address for allow-lists and logs. `X-Forwarded-For` is read only when `peer` is
/// in `trusted`, right to left (each proxy appends the address it saw), skipping trusted hops:
/// anything left of the first untrusted hop was written by a party we cannot believe. A hop that
/// is not an address ends the walk at the last address known, so garbage never names a client.
pub fn address(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let mut client = peer.ip().to_canonical();
    if !is_trusted(client, trusted) {
        return client;
    }
    let hops = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .flat_map(|value| value.to_str().unwrap_or("").split(','))
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        match parse_hop(hop) {
            Some(ip) => {
                client = ip;
                if !is_trusted(ip, trusted) {
                    break;
                }
            }
            None => break,
        }
    }
    client
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// `203.0.113.7`, `2001:db8::1`, and the forms with a port some proxies write
/// (`203.0.113.7:4711`, `[2001:db8::1]:4711`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let ip = hop
        .parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(X_FORWARDED_FOR, value.parse().unwrap());
        }
        map
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 40000)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let h = headers(&["198.51.100.1"]);
        assert_eq!(address(peer("203.0.113.9"), &h, &[]), ip("203.0.113.9"));
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            address(peer("203.0.113.9"), &h, &trusted),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let trusted = nets(&["10.0.0.0/8", "192.168.0.0/16"]);
        // A forged left part, the real client, then a second trusted proxy.
        let h = headers(&["6.6.6.6, 198.51.100.1", "192.168.1.1"]);
        assert_eq!(address(peer("10.1.1.1"), &h, &trusted), ip("198.51.100.1"));
    }

    #[test]
    fn a_trusted_peer_without_the_header_is_the_client() {
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            address(peer("10.1.1.1"), &HeaderMap::new(), &trusted),
            ip("10.1.1.1")
        );
    }

    #[test]
    fn every_hop_trusted_gives_the_leftmost() {
        let trusted = nets(&["10.0.0.0/8"]);
        let h = headers(&["10.9.9.9, 10.2.2.2"]);
        assert_eq!(address(peer("10.1.1.1"), &h, &trusted), ip("10.9.9.9"));
    }

    #[test]
    fn garbage_stops_at_the_last_address_known() {
        let trusted = nets(&["10.0.0.0/8"]);
        let h = headers(&["198.51.100.1, unknown"]);
        assert_eq!(address(peer("10.1.1.1"), &h, &trusted), ip("10.1.1.1"));
        let h = headers(&["unknown, 10.2.2.2"]);
        assert_eq!(address(peer("10.1.1.1"), &h, &trusted), ip("10.2.2.2"));
    }

    #[test]
    fn ports_and_mapped_addresses_are_understood() {
        let trusted = nets(&["10.0.0.0/8"]);
        let h = headers(&["[2001:db8::1]:443, 198.51.100.1:4711"]);
        assert_eq!(
            address(peer("::ffff:10.1.1.1"), &h, &trusted),
            ip("198.51.100.1")
        );
    }
}
