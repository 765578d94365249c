//! The one parse of a clone URL from an untrusted event into the exact string git gets.
//!
//! Our parser (the `url` crate, WHATWG rules) and the ones behind git (git's own, libcurl's
//! RFC 3986 one) disagree on odd inputs: `http://1.2.3.4\@127.0.0.1/` is host `1.2.3.4`
//! to us and host `127.0.0.1` to libcurl. So a URL is accepted only when its raw form is
//! already what the `url` crate serializes — no backslash, whitespace, control character,
//! userinfo, `%` in the authority, numeric-IPv4 shorthand, upper case host or default port
//! — and its host is a plain name or an address literal. On such a string every parser
//! reads the same scheme, host and port, and the string checked is the string git gets.

// `core::net`: the address types only (no sockets), as the purity check requires.
use core::net::IpAddr;

use url::{Host, Url};

use crate::config::authority_of;

/// A clone URL that passed the syntactic rules; [`CloneUrl::as_str`] is what git is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloneUrl {
    url: Url,
}

/// Where a [`CloneUrl`] points: a name still to be resolved, or an address literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloneHost<'a> {
    /// A DNS name: lower case ASCII letters, digits, `-`, `_` and inner dots.
    Domain(&'a str),
    /// An IPv4 or IPv6 literal (no resolution; the literal is the address).
    Ip(IpAddr),
}

impl CloneUrl {
    /// Parses an untrusted clone URL; `Err` is the reason, worded for the operator view.
    pub fn parse(raw: &str) -> Result<Self, String> {
        refuse_confusing(raw)?;
        let url = Url::parse(raw).map_err(|e| format!("not a valid URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "scheme '{}' is not allowed (http and https only)",
                url.scheme()
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("URLs with credentials (any userinfo before '@') are not fetched".into());
        }
        match url.host() {
            None => return Err("URL has no host".into()),
            Some(Host::Domain(d)) => check_domain(d)?,
            Some(Host::Ipv4(_) | Host::Ipv6(_)) => {}
        }
        if url.as_str() != raw {
            return Err(format!(
                "not in canonical form (write it as '{}')",
                url.as_str()
            ));
        }
        Ok(Self { url })
    }

    /// The serialized URL: the only string handed to git.
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    /// The host to connect to.
    pub fn host(&self) -> CloneHost<'_> {
        match self.url.host() {
            Some(Host::Ipv4(a)) => CloneHost::Ip(IpAddr::V4(a)),
            Some(Host::Ipv6(a)) => CloneHost::Ip(IpAddr::V6(a)),
            Some(Host::Domain(d)) => CloneHost::Domain(d),
            None => unreachable!("parse refuses URLs without a host"),
        }
    }

    /// The port to connect to: explicit, or the scheme's default.
    pub fn port(&self) -> u16 {
        self.url
            .port_or_known_default()
            .expect("http and https have default ports")
    }

    /// `host[:port]`, the throttle's domain (see [`authority_of`]).
    pub fn authority(&self) -> String {
        authority_of(&self.url).expect("parse refuses URLs without a host")
    }
}

/// The raw-string rules every URL from an event passes before any parser sees it: no
/// whitespace, control character or backslash, and no userinfo or `%` in the authority
/// as another parser would cut it (after `//`, before the path). Inputs on which
/// parsers could disagree about the host never get that far.
pub(crate) fn refuse_confusing(raw: &str) -> Result<(), String> {
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace or a control character".into());
    }
    if raw.contains('\\') {
        return Err("contains a backslash".into());
    }
    let after = raw.split_once("://").map_or("", |(_, rest)| rest);
    let authority = after.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err("URLs with credentials (any userinfo before '@') are not fetched".into());
    }
    if authority.contains('%') {
        return Err("percent-encoding in the host or port is not allowed".into());
    }
    Ok(())
}

/// A host name curl, git and the resolver all read the same way: LDH labels (and `_`),
/// no empty label, no trailing dot.
pub(crate) fn check_domain(d: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_');
    if d.split('.')
        .all(|l| !l.is_empty() && l.chars().all(ok_char))
    {
        Ok(())
    } else {
        Err(format!(
            "host '{d}' is not a plain DNS name (letters, digits, '-', '_', inner dots)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(raw: &str) -> String {
        CloneUrl::parse(raw).expect_err(raw)
    }

    #[test]
    fn accepts_canonical_urls() {
        for ok in [
            "https://git.example.com/npub1x/r.git",
            "http://127.0.0.1:7334/npub1x/r.git",
            "http://[::1]:7334/r.git",
            "https://example.com/a%20b.git",
            "https://my_host.example/r.git",
        ] {
            assert_eq!(CloneUrl::parse(ok).expect(ok).as_str(), ok);
        }
        let u = CloneUrl::parse("http://[::1]:7334/r.git").unwrap();
        assert_eq!(u.host(), CloneHost::Ip("::1".parse().unwrap()));
        assert_eq!((u.port(), u.authority().as_str()), (7334, "[::1]:7334"));
        let u = CloneUrl::parse("https://git.example.com/r.git").unwrap();
        assert_eq!(u.host(), CloneHost::Domain("git.example.com"));
        assert_eq!(u.port(), 443);
    }

    #[test]
    fn refuses_parser_confusion() {
        // The bypass: `url` sees host 1.2.3.4, libcurl 127.0.0.1.
        assert!(refused("http://1.2.3.4\\@127.0.0.1:9/t.git").contains("backslash"));
        for ws in [
            " http://127.0.0.1:9/x.git",
            "http://127.0.0.1:9/x.git\n",
            "http://1.2.3.4\t@127.0.0.1:9/x.git",
            "http://1.2.3.4/x .git",
            "http://1.2.3.4/\u{0}x",
        ] {
            assert!(refused(ws).contains("whitespace"), "{ws:?}");
        }
        for creds in [
            "http://user@127.0.0.1:9/x.git",
            "http://u:p@example.com/x.git",
            "http://@example.com/x.git",
            "http://:@example.com/x.git",
        ] {
            assert!(refused(creds).contains("credentials"), "{creds}");
        }
        assert!(refused("http://%31%32%37.0.0.1:9/x.git").contains("percent"));
        assert!(refused("http://example.com:%38%30/x.git").contains("percent"));
    }

    #[test]
    fn refuses_non_canonical_forms() {
        for (raw, canonical) in [
            ("http://2130706433:9/", "http://127.0.0.1:9/"),
            ("http://0x7f.1:9/", "http://127.0.0.1:9/"),
            ("http://0177.0.0.1:9/", "http://127.0.0.1:9/"),
            ("http://[::ffff:127.0.0.1]:9/", "http://[::ffff:7f00:1]:9/"),
            ("http://[::127.0.0.1]:9", "http://[::7f00:1]:9/"),
            ("http://[64:ff9b::7f00:1]:9", "http://[64:ff9b::7f00:1]:9/"),
            ("http://[2002:7f00:1::]:9", "http://[2002:7f00:1::]:9/"),
            ("HTTP://Example.COM/x", "http://example.com/x"),
            ("https://example.com:443/x", "https://example.com/x"),
            ("http://example.com:0080/x", "http://example.com/x"),
            ("http://example.com/a/../b", "http://example.com/b"),
            (
                "https://bücher.example/x",
                "https://xn--bcher-kva.example/x",
            ),
        ] {
            let why = refused(raw);
            assert!(why.contains(canonical), "{raw}: {why}");
        }
    }

    #[test]
    fn refuses_other_schemes_and_odd_hosts() {
        for bad in [
            "file:///etc/passwd",
            "ext::sh -c id",
            "ssh://git@example.com/r.git",
            "git://example.com/r.git",
            "http:///x",
            "not a url",
        ] {
            CloneUrl::parse(bad).expect_err(bad);
        }
        assert!(refused("git://example.com/r.git").contains("scheme 'git'"));
        assert!(refused("http://example.com./x").contains("plain DNS name"));
        assert!(refused("http://a*b.example/x").contains("plain DNS name"));
    }
}
