//! Who a request is from.
//!
//! Every per-client limit reads the client's address through [`client_addr`]. It is the
//! TCP peer, unless the peer is a reverse proxy the operator trusts (`--trusted-proxy`):
//! then it is the address that proxy saw, from `X-Forwarded-For` or `Forwarded`
//! (read right to left, skipping trusted hops, so a client cannot spoof it by sending
//! the header itself). [`resolve`] runs once per request, before every route, and
//! records the answer — and whether the client may see the operator routes
//! (`--metrics-allow`) — in the request's extensions. Connection caps count TCP peers
//! before any request is read; a trusted proxy counts toward the total only.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Extensions, HeaderMap};
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

/// The networks the operator named: trusted proxies, and who may see the operator routes.
#[derive(Debug, Clone, Default)]
pub struct Networks {
    /// Peers whose forwarding headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Clients that may read `/metrics` and the purgatory view.
    pub operators: Vec<IpNet>,
}

impl Networks {
    /// Whether `ip` is a trusted proxy.
    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        contains(&self.trusted_proxies, ip)
    }
}

fn contains(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = canonical(ip);
    nets.iter().any(|n| n.contains(&ip))
}

/// IPv4-mapped IPv6 peers (a dual-stack listener) count as their IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client address [`resolve`] found.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

/// Present when the client may see the operator routes.
#[derive(Debug, Clone, Copy)]
pub struct Operator;

/// The client address of a request, or `None` when the request came without a peer
/// (in-process tests): then only the server-wide limits apply.
pub fn client_addr(extensions: &Extensions) -> Option<IpAddr> {
    if let Some(ClientIp(ip)) = extensions.get::<ClientIp>() {
        return Some(*ip);
    }
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip())
}

/// Whether the request's client may see the operator routes.
pub fn is_operator(extensions: &Extensions) -> bool {
    extensions.get::<Operator>().is_some()
}

/// Middleware: records the request's client address and operator access.
pub async fn resolve(State(nets): State<Arc<Networks>>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(p)| p.ip());
    if let Some(peer) = peer {
        let client = if nets.is_trusted_proxy(peer) {
            forwarded_client(req.headers(), &nets.trusted_proxies).unwrap_or(peer)
        } else {
            peer
        };
        req.extensions_mut().insert(ClientIp(client));
        if contains(&nets.operators, client) {
            req.extensions_mut().insert(Operator);
        }
    }
    next.run(req).await
}

/// The first untrusted address, right to left, of the forwarding headers a trusted
/// proxy appended to; `None` if they name none (then the proxy itself is the client).
fn forwarded_client(headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let mut hops: Vec<IpAddr> = Vec::new();
    for v in headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        for element in v.split(',') {
            for pair in element.split(';') {
                let Some((k, val)) = pair.trim().split_once('=') else {
                    continue;
                };
                if k.trim().eq_ignore_ascii_case("for") {
                    if let Some(ip) = parse_node(val.trim().trim_matches('"')) {
                        hops.push(ip);
                    }
                }
            }
        }
    }
    if hops.is_empty() {
        for v in headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            hops.extend(v.split(',').filter_map(|h| parse_node(h.trim())));
        }
    }
    hops.into_iter().rev().find(|ip| !contains(trusted, *ip))
}

/// An address from a forwarding header: `1.2.3.4`, `1.2.3.4:5`, `[v6]`, `[v6]:5`, `v6`.
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    s.strip_prefix('[')
        .and_then(|r| r.split(']').next())
        .and_then(|h| h.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn nets(s: &[&str]) -> Vec<IpNet> {
        s.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let trusted = nets(&["10.0.0.0/8"]);
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.7, 10.0.0.2"),
        );
        // 6.6.6.6 is what the client claimed; 203.0.113.7 is who connected to the proxy.
        assert_eq!(forwarded_client(&h, &trusted), "203.0.113.7".parse().ok());
        let mut f = HeaderMap::new();
        f.insert(
            "forwarded",
            HeaderValue::from_static("for=\"[2001:db8::1]:4711\";proto=https, for=10.0.0.3"),
        );
        assert_eq!(forwarded_client(&f, &trusted), "2001:db8::1".parse().ok());
        assert_eq!(forwarded_client(&HeaderMap::new(), &trusted), None);
    }

    #[test]
    fn operators_and_proxies_are_matched_by_network() {
        let n = Networks {
            trusted_proxies: nets(&["127.0.0.1/32"]),
            operators: nets(&["127.0.0.0/8", "::1/128"]),
        };
        assert!(n.is_trusted_proxy("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!n.is_trusted_proxy("127.0.0.2".parse().unwrap()));
        assert!(contains(&n.operators, "::1".parse().unwrap()));
        assert!(!contains(&n.operators, "192.0.2.1".parse().unwrap()));
    }
}
