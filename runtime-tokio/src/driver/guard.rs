//! The clone-URL guard: which remote URLs graspd may fetch from, resolved once.
//!
//! Only `http(s)://` without credentials; the host is resolved here and every
//! loopback, private, link-local, shared, multicast or unspecified address is refused
//! unless the operator allows private addresses. The address checked is the address
//! used: git gets it through `http.curloptResolve`, so DNS cannot change between the
//! check and the connection (no rebinding gap).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::Url;

/// A URL that passed the guard, with the address to connect to.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The URL as given.
    pub url: String,
    /// Its host name (as curl sees it).
    pub host: String,
    /// Its port (explicit or the scheme's default).
    pub port: u16,
    /// The checked address git must connect to.
    pub addr: IpAddr,
}

impl Resolved {
    /// The `http.curloptResolve` value pinning the host to the checked address.
    pub fn curl_resolve(&self) -> String {
        match self.addr {
            IpAddr::V4(a) => format!("{}:{}:{a}", self.host, self.port),
            IpAddr::V6(a) => format!("{}:{}:[{a}]", self.host, self.port),
        }
    }
}

/// Checks and resolves `url`; `Err` carries the reason shown to operators.
pub async fn check(url: &str, allow_private: bool) -> Result<Resolved, String> {
    // The engine's rule (scheme, credentials, host) first: one definition of a usable URL.
    if let Some(why) = grasp_core::url_refusal(url, "") {
        return Err(why);
    }
    let parsed = Url::parse(url).map_err(|e| format!("not a valid URL: {e}"))?;
    let host = parsed
        .host_str()
        .ok_or("URL has no host")?
        .trim_matches(['[', ']'])
        .to_owned();
    let port = parsed.port_or_known_default().ok_or("URL has no port")?;
    let addrs: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .map(|a| a.ip())
            .collect(),
    };
    let addr = addrs.iter().copied().find(|a| allow_private || !is_forbidden(*a)).ok_or_else(|| {
        format!("{host} resolves only to loopback, private or otherwise non-public addresses ({addrs:?})")
    })?;
    Ok(Resolved {
        url: url.to_owned(),
        host,
        port,
        addr,
    })
}

/// Addresses that are not the public internet.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => forbidden_v4(a),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => forbidden_v4(v4),
            None => forbidden_v6(a),
        },
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
        || o[0] >= 240 // reserved
}

fn forbidden_v6(a: Ipv6Addr) -> bool {
    let s = a.segments();
    a.is_loopback()
        || a.is_unspecified()
        || a.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
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
        ] {
            assert!(check(bad, false).await.is_err(), "{bad} must be refused");
        }
    }

    #[tokio::test]
    async fn allows_private_only_when_told() {
        let r = check("http://127.0.0.1:8080/x.git", true).await.unwrap();
        assert_eq!(r.curl_resolve(), "127.0.0.1:8080:127.0.0.1");
        assert!(check("http://93.184.216.34/x.git", false).await.is_ok());
    }
}
