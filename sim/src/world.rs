//! The simulated world outside our server: remote git servers on a few domains, each
//! holding some objects of some repositories, with latency and faults.
//!
//! Objects are opaque ids; a server "can reach" an object exactly when it holds it. A
//! server may gain objects over time (`available_from`), and advertises a ref for some of
//! the objects it holds (a liar also advertises objects it does not hold).

use grasp_core::Oid;
use grasp_core::Time;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Our server's authority (the engine's `public_url` host and port).
pub const OUR_AUTHORITY: &str = "ours.test:7334";

/// Our public URL.
pub fn our_url() -> String {
    format!("http://{OUR_AUTHORITY}")
}

/// What can go wrong with a server, as probabilities per request and outage windows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Faults {
    /// Windows `[from, to)` during which every request fails.
    pub outages: Vec<(Time, Time, Outage)>,
    /// Connection refused.
    pub refuse: f64,
    /// The request hangs until the harness's fetch timeout.
    pub hang: f64,
    /// HTTP 429.
    pub rate_limit: f64,
    /// A fetch returns a garbage pack.
    pub garbage: f64,
}

impl Faults {
    /// Whether the server never fails.
    pub fn is_healthy(&self) -> bool {
        *self == Faults::default()
    }
}

/// How a server behaves during an outage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outage {
    /// Connections are refused at once.
    Refused,
    /// Connections hang until the timeout.
    Hang,
}

/// One repository on a remote server.
#[derive(Clone, Debug, Default)]
pub struct RemoteRepo {
    /// Objects it holds, each from a time on.
    pub objects: BTreeMap<Oid, Time>,
    /// Objects it advertises a ref for (when held, or always for a liar's `lies`).
    pub advertised: BTreeSet<Oid>,
    /// Objects advertised but never held ("not our ref" when fetched).
    pub lies: BTreeSet<Oid>,
}

impl RemoteRepo {
    /// Whether the repository holds `oid` at `t`.
    pub fn holds(&self, oid: &Oid, t: Time) -> bool {
        self.objects.get(oid).is_some_and(|from| *from <= t)
    }

    /// The refs advertised at `t`.
    pub fn refs_at(&self, t: Time) -> Vec<(String, Oid)> {
        let held = self.advertised.iter().filter(|o| self.holds(o, t));
        held.chain(self.lies.iter())
            .enumerate()
            .map(|(i, o)| (format!("refs/heads/b{i}"), *o))
            .collect()
    }

    /// When `oid` is advertised and held (for liveness), if ever.
    pub fn advertised_from(&self, oid: &Oid) -> Option<Time> {
        if self.advertised.contains(oid) {
            self.objects.get(oid).copied()
        } else {
            None
        }
    }
}

/// A remote git server.
#[derive(Clone, Debug)]
pub struct Server {
    /// `host[:port]`: the throttle domain.
    pub domain: String,
    /// Path prefix distinguishing servers on one domain.
    pub prefix: String,
    /// One-way latency range in ms (a request takes two of these).
    pub latency_ms: (u64, u64),
    /// Its faults.
    pub faults: Faults,
    /// Its repositories by identifier.
    pub repos: BTreeMap<String, RemoteRepo>,
}

/// The world: every remote server.
#[derive(Clone, Debug, Default)]
pub struct World {
    /// Servers by index.
    pub servers: Vec<Server>,
    /// The distinct domains.
    pub domains: BTreeSet<String>,
    /// How long the harness waits for a remote before it reports a timeout.
    pub fetch_timeout: Duration,
}

impl World {
    /// The clone URL of `(owner_npub, d)` on server `s`.
    pub fn url(&self, s: usize, owner_npub: &str, d: &str) -> String {
        let srv = &self.servers[s];
        format!("http://{}/{}/{owner_npub}/{d}.git", srv.domain, srv.prefix)
    }

    /// The server and identifier a clone URL names, if it is one of ours.
    pub fn resolve(&self, url: &str) -> Option<(usize, String)> {
        let rest = url.strip_prefix("http://")?;
        let (domain, path) = rest.split_once('/')?;
        let mut parts = path.split('/');
        let prefix = parts.next()?;
        let _owner = parts.next()?;
        let d = parts.next()?.strip_suffix(".git")?;
        let s = self
            .servers
            .iter()
            .position(|s| s.domain == domain && s.prefix == prefix)?;
        Some((s, d.to_owned()))
    }

    /// The remote repository behind a URL, if any.
    pub fn repo(&self, url: &str) -> Option<(&Server, Option<&RemoteRepo>)> {
        let (s, d) = self.resolve(url)?;
        let srv = &self.servers[s];
        Some((srv, srv.repos.get(&d)))
    }

    /// The identifier named by the last path segment of a clone URL.
    pub fn identifier_of(url: &str) -> Option<String> {
        let last = url.rsplit('/').next()?;
        last.strip_suffix(".git").map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(n: u8) -> Oid {
        Oid::parse(&format!("{n:02x}").repeat(20)).unwrap()
    }

    #[test]
    fn urls_round_trip_and_refs_follow_time() {
        let mut repo = RemoteRepo::default();
        repo.objects.insert(oid(1), Time::from_millis(10));
        repo.advertised.insert(oid(1));
        repo.lies.insert(oid(2));
        let w = World {
            servers: vec![Server {
                domain: "a.test".into(),
                prefix: "s0".into(),
                latency_ms: (1, 2),
                faults: Faults::default(),
                repos: BTreeMap::from([("r".to_owned(), repo)]),
            }],
            ..World::default()
        };
        let u = w.url(0, "npub1x", "r");
        assert_eq!(w.resolve(&u), Some((0, "r".to_owned())));
        assert_eq!(World::identifier_of(&u).as_deref(), Some("r"));
        let r = w.repo(&u).unwrap().1.unwrap();
        assert_eq!(r.refs_at(Time::from_millis(5)).len(), 1);
        assert_eq!(r.refs_at(Time::from_millis(10)).len(), 2);
    }
}
