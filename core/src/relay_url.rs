//! The one parse of a relay URL from an untrusted announcement (GRASP-02 §2, §6).
//!
//! Relay URLs in `relays` tags are compared and dialed. They are normalized — scheme and
//! host lower case, the default port and a trailing `/` dropped, the path kept — so that
//! `wss://Relay.Example.com:443/` and `wss://relay.example.com` are one peer, and the
//! normalized string is the only form anything downstream sees: the runtime connects to
//! [`RelayUrl::host`] and [`RelayUrl::port`] after its own address check, and gives the
//! websocket handshake [`RelayUrl::as_str`]. The raw-string rules of clone URLs
//! (`clone_url.rs`) apply first, so no input reads as one host to us and another to the
//! websocket client.

use core::net::IpAddr;

use url::{Host, Url};

use crate::clone_url::{CloneHost, check_domain, refuse_confusing};

/// A relay URL that passed the syntactic guard, in normalized form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelayUrl {
    /// `ws[s]://host[:port][/path]`, no trailing `/`.
    normalized: String,
    host: HostKind,
    port: u16,
    secure: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum HostKind {
    Domain(String),
    Ip(IpAddr),
}

impl RelayUrl {
    /// Parses an untrusted relay URL; `Err` is the reason, worded for the operator view.
    pub fn parse(raw: &str) -> Result<Self, String> {
        refuse_confusing(raw)?;
        let url = Url::parse(raw).map_err(|e| format!("not a valid URL: {e}"))?;
        let secure = match url.scheme() {
            "ws" => false,
            "wss" => true,
            other => return Err(format!("scheme '{other}' is not allowed (ws and wss only)")),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err("URLs with credentials (any userinfo before '@') are not fetched".into());
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("relay URLs with a query or fragment are not synced from".into());
        }
        let host = match url.host() {
            None => return Err("URL has no host".into()),
            Some(Host::Domain(d)) => {
                check_domain(d)?;
                HostKind::Domain(d.to_owned())
            }
            Some(Host::Ipv4(a)) => HostKind::Ip(IpAddr::V4(a)),
            Some(Host::Ipv6(a)) => HostKind::Ip(IpAddr::V6(a)),
        };
        let port = url
            .port_or_known_default()
            .expect("ws and wss have default ports");
        let normalized = url.as_str().trim_end_matches('/').to_owned();
        Ok(RelayUrl {
            normalized,
            host,
            port,
            secure,
        })
    }

    /// The normalized URL: what peers are keyed by and the handshake is given.
    pub fn as_str(&self) -> &str {
        &self.normalized
    }

    /// The host to resolve (or the literal address to check).
    pub fn host(&self) -> CloneHost<'_> {
        match &self.host {
            HostKind::Domain(d) => CloneHost::Domain(d),
            HostKind::Ip(a) => CloneHost::Ip(*a),
        }
    }

    /// The port to connect to: explicit, or the scheme's default.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `wss`: the connection needs TLS (with the host name for SNI and the certificate).
    pub fn is_secure(&self) -> bool {
        self.secure
    }
}

impl std::fmt::Display for RelayUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.normalized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &str) -> String {
        RelayUrl::parse(raw).expect(raw).as_str().to_owned()
    }

    #[test]
    fn normalizes_case_port_and_trailing_slash() {
        assert_eq!(
            norm("wss://Relay.Example.COM:443/"),
            "wss://relay.example.com"
        );
        assert_eq!(norm("WS://relay.example.com:80"), "ws://relay.example.com");
        assert_eq!(norm("ws://127.0.0.1:7334/"), "ws://127.0.0.1:7334");
        assert_eq!(
            norm("wss://relay.example.com/nostr/"),
            "wss://relay.example.com/nostr"
        );
        let u = RelayUrl::parse("ws://[::1]:9/").unwrap();
        assert_eq!(u.host(), CloneHost::Ip("::1".parse().unwrap()));
        assert_eq!((u.port(), u.is_secure()), (9, false));
        let u = RelayUrl::parse("wss://relay.example.com").unwrap();
        assert_eq!(
            (u.host(), u.port()),
            (CloneHost::Domain("relay.example.com"), 443)
        );
    }

    #[test]
    fn refuses_what_the_guard_refuses() {
        for (raw, why) in [
            ("http://x.example", "scheme 'http'"),
            ("https://x.example", "scheme 'https'"),
            ("wss://user:pw@x.example", "credentials"),
            ("wss://@x.example", "credentials"),
            ("wss://x.example/?a=1", "query or fragment"),
            ("wss://x.example/#f", "query or fragment"),
            ("wss://x.example\\@127.0.0.1", "backslash"),
            ("wss://x.example /", "whitespace"),
            ("wss://%31%32%37.0.0.1", "percent"),
            ("wss://a*b.example", "plain DNS name"),
            ("nope", "not a valid URL"),
        ] {
            let e = RelayUrl::parse(raw).expect_err(raw);
            assert!(e.contains(why), "{raw}: {e}");
        }
    }
}
