//! [`ClientAddress`]: whose request this is. Per-address limits (connections, consent answers) must
//! count visitors, not the load balancer of a fleet: behind a proxy the operator names
//! (`--trusted-proxy`), the visitor is the address that proxy appended to `X-Forwarded-For`; from
//! anyone else the header is ignored (a client could write any address into it).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;

use crate::session::Broker;

/// The visitor's address (see the module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

impl FromRequestParts<Arc<Broker>> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, broker: &Arc<Broker>) -> Result<Self, Self::Rejection> {
        // Every server this router runs in is served with connect info (`lib::run`, the tests).
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |ConnectInfo(peer)| peer.ip());
        Ok(ClientAddress(client_address(peer, &parts.headers, &broker.trusted_proxies)))
    }
}

/// The peer, or, if the peer is a trusted proxy, the last address in its `X-Forwarded-For` (the one
/// it appended; earlier ones came from the client and prove nothing).
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&canonical(peer)) {
        return peer;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .and_then(|value| value.to_str().ok())
        .and_then(|list| list.rsplit(',').next())
        .and_then(|last| last.trim().parse::<IpAddr>().ok())
        .map_or(peer, canonical)
}

/// IPv4-mapped IPv6 addresses as IPv4, so that one visitor has one key.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn only_a_trusted_proxy_names_the_visitor() {
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let trusted = [proxy];
        let visitor: IpAddr = "203.0.113.7".parse().unwrap();
        // The proxy's own appended address, not what the client wrote before it.
        let forwarded = headers(&["198.51.100.1, 203.0.113.7"]);
        assert_eq!(client_address(proxy, &forwarded, &trusted), visitor);
        assert_eq!(client_address(proxy, &headers(&["198.51.100.1", "203.0.113.7"]), &trusted), visitor);
        // Anyone else's header is ignored.
        assert_eq!(client_address(visitor, &headers(&["192.0.2.1"]), &trusted), visitor);
        // A trusted proxy without (or with a garbled) header: the proxy itself.
        assert_eq!(client_address(proxy, &HeaderMap::new(), &trusted), proxy);
        assert_eq!(client_address(proxy, &headers(&["not an address"]), &trusted), proxy);
        let mapped: IpAddr = "::ffff:10.0.0.5".parse().unwrap();
        assert_eq!(client_address(mapped, &forwarded, &trusted), visitor);
    }
}
