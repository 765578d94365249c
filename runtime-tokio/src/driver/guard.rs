//! The clone-URL guard: which remote URLs graspd may fetch from, resolved once.
//!
//! The URL is first parsed by the engine's own rule ([`CloneUrl`]: http(s), canonical raw
//! form, no userinfo), and git is handed only that parse's serialization. The host is
//! then resolved here and every address that is not the public internet (loopback,
//! private, link-local, shared, multicast, reserved, documentation, benchmarking, and
//! IPv6 forms that embed such an IPv4 address) is refused unless the operator allows
//! private addresses. The address checked is the address used: for a name, git gets it
//! through `http.curloptResolve`, so DNS cannot change between the check and the
//! connection (no rebinding gap); an address literal is never resolved by curl.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use grasp_core::{CloneHost, CloneUrl};

/// A URL that passed the guard, with the address to connect to.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The parsed URL; its serialization is the only string git gets.
    pub url: CloneUrl,
    /// The checked address git must connect to.
    pub addr: IpAddr,
}

impl Resolved {
    /// The `http.curloptResolve` value pinning a host name to the checked address, or
    /// `None` for an address literal (curl connects to a literal without resolving it,
    /// and curl's RESOLVE syntax cannot name an IPv6 literal host: the host part ends at
    /// the first `:`). An IPv6 address is bracketed: `host:port:[addr]`.
    pub fn curl_resolve(&self) -> Option<String> {
        let CloneHost::Domain(host) = self.url.host() else {
            return None;
        };
        let port = self.url.port();
        Some(match self.addr {
            IpAddr::V4(a) => format!("{host}:{port}:{a}"),
            IpAddr::V6(a) => format!("{host}:{port}:[{a}]"),
        })
    }
}

/// Checks and resolves `url`; `Err` carries the reason shown to operators.
pub async fn check(url: &str, allow_private: bool) -> Result<Resolved, String> {
    // The engine's rule first: one definition of a usable URL, one parse.
    let url = CloneUrl::parse(url)?;
    let port = url.port();
    let host = match url.host() {
        CloneHost::Ip(ip) if allow_private || !is_forbidden(ip) => {
            return Ok(Resolved { url, addr: ip });
        }
        CloneHost::Ip(ip) => {
            return Err(format!(
                "{ip} is a loopback, private or otherwise non-public address"
            ));
        }
        // RFC 6761: these names are loopback whatever DNS says (curl knows it too).
        CloneHost::Domain(h)
            if !allow_private && (h == "localhost" || h.ends_with(".localhost")) =>
        {
            return Err(format!("{h} is a loopback name"));
        }
        CloneHost::Domain(h) => h,
    };
    let addrs: Vec<IpAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .map(|a| a.ip())
        .collect();
    let addr = addrs.iter().copied().find(|a| allow_private || !is_forbidden(*a)).ok_or_else(|| {
        format!("{host} resolves only to loopback, private or otherwise non-public addresses ({addrs:?})")
    })?;
    Ok(Resolved { url, addr })
}

/// Addresses that are not the public internet.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => forbidden_v4(a),
        IpAddr::V6(a) => forbidden_v6(a),
    }
}

fn forbidden_v4(a: Ipv4Addr) -> bool {
    let o = a.octets();
    a.is_loopback()
        || a.is_private()
        || a.is_link_local()
        || a.is_unspecified()
        || a.is_broadcast()
        || a.is_multicast()
        || a.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared address space 100.64/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 192 && o[1] == 88 && o[2] == 99) // 6to4 relay anycast 192.88.99/24
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18/15
        || o[0] >= 240 // reserved
}

/// The IPv4 address `hi:lo` (two IPv6 segments) stands for.
fn v4(hi: u16, lo: u16) -> Ipv4Addr {
    Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo))
}

fn forbidden_v6(a: Ipv6Addr) -> bool {
    match a.segments() {
        // Forms that carry an IPv4 address and reach it: judged by that address.
        [0, 0, 0, 0, 0, 0xffff, h, l] => forbidden_v4(v4(h, l)), // IPv4-mapped ::ffff:0:0/96
        [0x64, 0xff9b, 0, 0, 0, 0, h, l] => forbidden_v4(v4(h, l)), // NAT64 64:ff9b::/96
        [0x2002, h, l, ..] => forbidden_v4(v4(h, l)),            // 6to4 2002::/16
        // Teredo 2001::/32: the server's address, and the client's (stored inverted).
        [0x2001, 0, sh, sl, _, _, ch, cl] => forbidden_v4(v4(sh, sl)) || forbidden_v4(v4(!ch, !cl)),
        // Everything else is judged as IPv6: the public internet is global unicast
        // 2000::/3 (which excludes ::/96 IPv4-compatible, ::1, ::, the local-use NAT64
        // 64:ff9b:1::/48, discard 100::/64, ULA fc00::/7, link-local fe80::/10,
        // site-local fec0::/10 and multicast ff00::/8), minus its special blocks.
        [s0, s1, ..] => {
            (s0 & 0xe000) != 0x2000
                || (s0 == 0x2001 && s1 < 0x0200) // IETF protocol assignments 2001::/23
                || (s0 == 0x2001 && s1 == 0x0db8) // documentation 2001:db8::/32
                || (s0 == 0x3fff && s1 < 0x1000) // documentation 3fff::/20
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_hostile_urls() {
        for bad in [
            "file:///etc/passwd",
            "ext::sh -c id",
            "ssh://git@example.com/r.git",
            "git://example.com/r.git",
            "https://user:pw@example.com/r.git",
            "http://127.0.0.1:9/r.git",
            "http://10.0.0.1/r.git",
            "http://[::1]/r.git",
            "http://169.254.169.254/latest",
            "http://[::ffff:127.0.0.1]/r.git",
            "http://100.64.0.1/r.git",
            "http://localhost/r.git",
            "http://a.localhost/r.git",
            "http://1.2.3.4\\@127.0.0.1:9/t.git",
            "http://[::7f00:1]:9/r.git",
            "http://[64:ff9b::7f00:1]:9/r.git",
            "http://[2002:7f00:1::]:9/r.git",
            "http://[fd00::2]/r.git",
            "http://198.18.0.1/r.git",
        ] {
            assert!(check(bad, false).await.is_err(), "{bad} must be refused");
        }
    }

    #[tokio::test]
    async fn allows_private_only_when_told() {
        let r = check("http://127.0.0.1:8080/x.git", true).await.unwrap();
        assert_eq!(r.curl_resolve(), None, "a literal needs no pin");
        let r = check("http://[::1]:8080/x.git", true).await.unwrap();
        assert_eq!(
            (r.url.as_str(), r.curl_resolve()),
            ("http://[::1]:8080/x.git", None)
        );
        let r = check("http://localhost:8080/x.git", true).await.unwrap();
        let pin = r.curl_resolve().unwrap();
        assert!(
            pin == "localhost:8080:127.0.0.1" || pin == "localhost:8080:[::1]",
            "{pin}"
        );
        assert!(check("http://93.184.216.34/x.git", false).await.is_ok());
    }

    #[test]
    fn pins_names_with_bracketed_ipv6() {
        let r = Resolved {
            url: CloneUrl::parse("https://git.example.com/x.git").unwrap(),
            addr: "2001:4860::8888".parse().unwrap(),
        };
        assert_eq!(
            r.curl_resolve().as_deref(),
            Some("git.example.com:443:[2001:4860::8888]")
        );
    }

    /// One address per range: forbidden ones, then public ones that must stay allowed.
    #[test]
    fn address_ranges() {
        let mut wrong = Vec::new();
        for bad in [
            "127.0.0.1",                            // loopback
            "10.1.2.3",                             // private
            "172.16.0.1",                           // private
            "192.168.1.1",                          // private
            "169.254.169.254",                      // link-local (cloud metadata)
            "0.1.2.3",                              // this network 0/8
            "100.64.0.1",                           // CGNAT 100.64/10
            "100.127.255.254",                      // CGNAT upper end
            "192.0.0.8",                            // IETF protocol assignments
            "192.0.2.1",                            // documentation
            "198.51.100.1",                         // documentation
            "203.0.113.1",                          // documentation
            "192.88.99.1",                          // 6to4 relay anycast
            "198.18.0.1",                           // benchmarking 198.18/15
            "198.19.255.1",                         // benchmarking upper half
            "224.0.0.1",                            // multicast
            "240.0.0.1",                            // reserved
            "255.255.255.255",                      // broadcast
            "::1",                                  // loopback
            "::",                                   // unspecified
            "::7f00:1",                             // IPv4-compatible ::/96
            "::808:808",                            // IPv4-compatible, even with a public address
            "::ffff:7f00:1",                        // IPv4-mapped loopback
            "::ffff:a00:1",                         // IPv4-mapped private
            "::ffff:0:7f00:1",                      // IPv4-translated ::ffff:0:0:0/96
            "64:ff9b::7f00:1",                      // NAT64 loopback
            "64:ff9b::a9fe:a9fe",                   // NAT64 link-local
            "64:ff9b:1::808:808",                   // local-use NAT64 64:ff9b:1::/48
            "2002:7f00:1::",                        // 6to4 of loopback
            "2002:c0a8:101::1",                     // 6to4 of 192.168.1.1
            "2001:0:4136:e378:8000:63bf:80ff:fffe", // Teredo, client 127.0.0.1
            "2001:0:a00:1:8000:63bf:f7f7:f7f7",     // Teredo, server 10.0.0.1
            "2001:2::1",                            // benchmarking 2001:2::/48
            "2001:10::1",                           // ORCHID
            "2001:db8::1",                          // documentation
            "3fff::1",                              // documentation 3fff::/20
            "100::1",                               // discard 100::/64
            "fc00::1",                              // ULA
            "fd12:3456::1",                         // ULA
            "fe80::1",                              // link-local
            "fec0::1",                              // site-local (deprecated)
            "ff02::1",                              // multicast
            "4000::1",                              // outside global unicast 2000::/3
        ] {
            if !is_forbidden(bad.parse().unwrap()) {
                wrong.push(format!("{bad} must be refused"));
            }
        }
        for good in [
            "8.8.8.8",
            "93.184.216.34",
            "100.128.0.1",
            "198.20.0.1",
            "::ffff:808:808",                       // IPv4-mapped public
            "64:ff9b::808:808",                     // NAT64 of a public address
            "2002:808:808::1",                      // 6to4 of a public address
            "2001:0:4136:e378:8000:63bf:f7f7:f7f7", // Teredo, public server and client
            "2606:4700::1111",
            "2a00:1450:4001::1",
        ] {
            if is_forbidden(good.parse().unwrap()) {
                wrong.push(format!("{good} must be allowed"));
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }
}
