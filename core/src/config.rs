//! Engine configuration: who we are, the numbers of BEHAVIOR.md, caps and curation.

use nostr::prelude::PublicKey;
use std::collections::BTreeSet;
use std::time::Duration;
use url::Url;

/// Everything the engine needs to know about its deployment. Defaults are the numbers of
/// the GRASP purgatory-sync design (BEHAVIOR.md §2 and §5).
#[derive(Clone, Debug)]
pub struct Config {
    /// The public base URL of this server, e.g. `https://git.example.com`. Announcements
    /// must list `<base>/<npub>/<d>.git` as a clone URL and the matching `ws(s)://` URL
    /// as a relay; clone URLs on this authority are never fetched from.
    pub public_url: Url,
    /// How long a purgatory entry waits for its git data (30 min).
    pub purgatory_expiry: Duration,
    /// How long a soft-expired announcement is kept after its repo is deleted (24 h).
    pub announcement_soft_expiry: Duration,
    /// How long an expired event is remembered, so relay sync does not requeue it.
    pub expired_memory: Duration,
    /// Delay before the first hunt for an event from a client (3 min: a push usually follows).
    pub client_delay: Duration,
    /// Delay before the first hunt for an event from relay sync (500 ms, to batch bursts).
    pub sync_delay: Duration,
    /// The longest a burst of relay-synced events may keep pushing the first hunt back.
    pub sync_debounce_max: Duration,
    /// Backoff after attempts that left events waiting: 20 s, 40 s, 80 s, then the last forever.
    pub backoff: Vec<Duration>,
    /// Requests in flight per domain (5).
    pub domain_concurrency: u32,
    /// Requests per sliding window per domain (30).
    pub domain_rate: u32,
    /// The sliding window for `domain_rate` (60 s).
    pub domain_window: Duration,
    /// Remote requests in flight over every domain together (32): strangers may name
    /// any number of domains, and each request is a `git` process here.
    pub remote_concurrency: u32,
    /// Events more than this far in the future (by `created_at`) are refused.
    pub max_future_skew: Duration,
    /// How long before an entry's deadline its objects are checked again (30 s), so that
    /// nothing expires while its data sits in the repository (put there by a path the
    /// engine did not see: a push that changed nothing, a ref moved by hand).
    pub final_check_lead: Duration,
    /// How long after a placeholder lapses its repository is pruned (5 min); lapses in
    /// the repository meanwhile join that prune, so a repository is pruned at most once
    /// per this interval however many placeholders an attacker lets lapse.
    pub prune_delay: Duration,
    /// Caps that keep purgatory bounded.
    pub limits: Limits,
    /// Keys the engine's hash tables (SipHash-1-3), whose keys — event ids, coordinates —
    /// come from hostile input: a key nobody can guess keeps collisions from being
    /// crafted. The daemon draws it at startup; the simulator derives it from its seed.
    pub hash_seed: u64,
    /// Operator curation: who and what this server hosts.
    pub curation: Curation,
    /// Which rule makes a key a maintainer (MAINTAINERS.md): reciprocal confirmation by
    /// default, the flat rule of older servers if the operator asks.
    pub maintainer_model: crate::MaintainerModel,
    /// GRASP-06, the contributor endpoint `/prs/<npub>/<d>.git` (off by default): its
    /// pushes are decided, and pull requests naming it accepted, only when on.
    pub grasp06: bool,
    /// How long a `/prs/` push whose pull request has not arrived keeps its ref (20 min,
    /// GRASP-06's advice).
    pub prs_placeholder_expiry: Duration,
    /// Pull requests accepted only because their `clone` names our `/prs/` URL that may
    /// wait at once per signer (20): their acceptance costs the signer nothing else.
    pub prs_max_waiting_per_author: usize,
    /// Unconfirmed `/prs/` pushes (placeholders) per npub (20).
    pub prs_placeholders_per_npub: usize,
    /// Refs one `/prs/` push may update (10).
    pub prs_refs_per_push: usize,
    /// GRASP-02 relay sync: which relays to sync from and how (off in a bare config).
    pub relay_sync: RelaySync,
}

/// GRASP-02 relay sync settings (`docs/sync.md`, "Relay sync"). Defaults are the
/// spec's numbers; `enabled` is off here (a bare engine never dials out) and on in the
/// daemon unless `--relay-sync=false`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelaySync {
    /// Whether the engine syncs from peers at all.
    pub enabled: bool,
    /// Relays synced from even with no repository listing them (to discover
    /// announcements that list us), ahead of every listed one.
    pub bootstrap: Vec<crate::RelayUrl>,
    /// Peers at most (256): bootstrap first, then by how many announcements list them.
    pub max_relays: usize,
    /// The longest reconnection backoff (1 h).
    pub max_backoff: Duration,
    /// `limit` of a catch-up page (500).
    pub page_size: usize,
    /// How long a naughty peer is left alone (12 h).
    pub naughty_expiry: Duration,
}

impl Default for RelaySync {
    fn default() -> Self {
        RelaySync {
            enabled: false,
            bootstrap: Vec::new(),
            max_relays: 256,
            max_backoff: Duration::from_secs(3600),
            page_size: 500,
            naughty_expiry: Duration::from_secs(12 * 3600),
        }
    }
}

/// Caps on purgatory and hosting, each with a clear refusal when exceeded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Events waiting in purgatory in total (placeholders have their own budget).
    pub purgatory_total: usize,
    /// Purgatory entries per author (states and pull requests; waiting announcements are
    /// bounded by `repos_per_author`).
    pub purgatory_per_author: usize,
    /// Bytes of every event waiting in purgatory (their JSON): the count caps alone let
    /// large events hold tens of GiB.
    pub purgatory_bytes_total: usize,
    /// Bytes of one author's waiting events.
    pub purgatory_bytes_per_author: usize,
    /// Purgatory entries per repository identifier.
    pub purgatory_per_identifier: usize,
    /// Repositories (hosted announcements) per owner.
    pub repos_per_author: usize,
    /// Announcements waiting in purgatory in total: each holds a bare repository on
    /// disk, and keys cost nothing, so `repos_per_author` alone does not bound them.
    pub waiting_repos_total: usize,
    /// Announcements per identifier, one per key (hosted or not): anyone may announce
    /// any identifier, and what the engine does for one announcement of it grows with
    /// the others (the maintainer sets of the identifier are recomputed each time). A
    /// new repository beyond it is refused; replacements never are.
    pub repos_per_identifier: usize,
    /// Clone URLs considered per identifier and attempt.
    pub urls_per_identifier: usize,
    /// Repositories one object check looks in (of the identifier's; its author's own
    /// first): a check per event, over every repository strangers announced with the
    /// same identifier, made each of their announcements cost more than the last.
    pub repos_per_check: usize,
    /// New `refs/nostr/<id>` placeholders one push may create.
    pub placeholders_per_push: usize,
    /// Placeholders one repository may hold.
    pub placeholders_per_repo: usize,
    /// Placeholders pushed from one client address.
    pub placeholders_per_client: usize,
    /// Placeholders in total (apart from purgatory's events).
    pub placeholders_total: usize,
}

impl Limits {
    /// The defaults, a constant so that the daemon's flags take theirs from it and the
    /// two cannot drift (docs/running.md lists them). 100 repositories and 100 waiting
    /// events per author: a key costs nothing, so a per-author cap is a speed bump, and
    /// the totals are what bound memory and disk.
    pub const DEFAULT: Limits = Limits {
        purgatory_total: 250_000,
        purgatory_per_author: 100,
        purgatory_bytes_total: 1 << 30,
        purgatory_bytes_per_author: 16 << 20,
        purgatory_per_identifier: 2_000,
        repos_per_author: 100,
        waiting_repos_total: 10_000,
        repos_per_identifier: 1_000,
        urls_per_identifier: 32,
        repos_per_check: 16,
        placeholders_per_push: 100,
        placeholders_per_repo: 1_000,
        placeholders_per_client: 1_000,
        placeholders_total: 25_000,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Allow and deny lists. An empty allow list allows everyone.
#[derive(Clone, Debug, Default)]
pub struct Curation {
    /// If non-empty, only these pubkeys may announce repositories or publish events.
    pub allow_pubkeys: BTreeSet<PublicKey>,
    /// These pubkeys are refused.
    pub deny_pubkeys: BTreeSet<PublicKey>,
    /// If non-empty, only these repository identifiers are hosted.
    pub allow_identifiers: BTreeSet<String>,
    /// These repository identifiers are refused.
    pub deny_identifiers: BTreeSet<String>,
}

impl Curation {
    /// Whether any list is set, i.e. the server curates beyond spam prevention.
    pub fn is_curated(&self) -> bool {
        !(self.allow_pubkeys.is_empty()
            && self.deny_pubkeys.is_empty()
            && self.allow_identifiers.is_empty()
            && self.deny_identifiers.is_empty())
    }
}

impl Config {
    /// Default [`Config::domain_concurrency`].
    pub const DEFAULT_DOMAIN_CONCURRENCY: u32 = 5;
    /// Default [`Config::domain_rate`].
    pub const DEFAULT_DOMAIN_RATE: u32 = 30;
    /// Default [`Config::remote_concurrency`].
    pub const DEFAULT_REMOTE_CONCURRENCY: u32 = 32;

    /// The defaults for a server reachable at `public_url`.
    pub fn new(public_url: Url) -> Self {
        Config {
            public_url,
            purgatory_expiry: Duration::from_secs(30 * 60),
            announcement_soft_expiry: Duration::from_secs(24 * 3600),
            expired_memory: Duration::from_secs(24 * 3600),
            client_delay: Duration::from_secs(180),
            sync_delay: Duration::from_millis(500),
            sync_debounce_max: Duration::from_secs(5),
            backoff: vec![
                Duration::from_secs(20),
                Duration::from_secs(40),
                Duration::from_secs(80),
                Duration::from_secs(120),
            ],
            domain_concurrency: Self::DEFAULT_DOMAIN_CONCURRENCY,
            domain_rate: Self::DEFAULT_DOMAIN_RATE,
            domain_window: Duration::from_secs(60),
            remote_concurrency: Self::DEFAULT_REMOTE_CONCURRENCY,
            max_future_skew: Duration::from_secs(15 * 60),
            prune_delay: Duration::from_secs(5 * 60),
            final_check_lead: Duration::from_secs(30),
            limits: Limits::default(),
            hash_seed: 0,
            curation: Curation::default(),
            maintainer_model: crate::MaintainerModel::default(),
            grasp06: false,
            prs_placeholder_expiry: Duration::from_secs(20 * 60),
            prs_max_waiting_per_author: 20,
            prs_placeholders_per_npub: 20,
            prs_refs_per_push: 10,
            relay_sync: RelaySync::default(),
        }
    }

    /// `host[:port]` of the public URL: the authority clone and relay URLs must name.
    pub fn authority(&self) -> String {
        authority_of(&self.public_url).unwrap_or_default()
    }

    /// The delay before attempt number `n + 1`, given `n` attempts already made (n ≥ 1).
    pub fn backoff_after(&self, attempts: u32) -> Duration {
        let i = (attempts.max(1) as usize - 1).min(self.backoff.len().saturating_sub(1));
        self.backoff
            .get(i)
            .copied()
            .unwrap_or(Duration::from_secs(120))
    }
}

/// The relay URL of a server whose public URL is `public_url`: the same authority and
/// path with `ws` for `http` and `wss` for `https`, no trailing slash. What
/// announcements must list in `relays`, and what the daemon prints and advertises:
/// one function, so the two cannot disagree.
pub fn relay_url_of(public_url: &Url) -> String {
    let mut u = public_url.clone();
    let scheme = if u.scheme() == "https" { "wss" } else { "ws" };
    // http(s) and ws(s) are all "special" schemes: the change cannot fail for them.
    let _ = u.set_scheme(scheme);
    u.as_str().trim_end_matches('/').to_owned()
}

/// `host[:port]` of a URL, lowercase, with the port only when it is not the scheme's
/// default; `None` without a host. This is the "domain" the throttle groups requests by.
pub fn authority_of(url: &Url) -> Option<String> {
    let host = url.host_str()?.to_ascii_lowercase();
    Some(match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_schedule_caps() {
        let c = Config::new(Url::parse("http://127.0.0.1:7334").unwrap());
        let secs: Vec<u64> = (1..=6).map(|n| c.backoff_after(n).as_secs()).collect();
        assert_eq!(secs, [20, 40, 80, 120, 120, 120]);
    }

    #[test]
    fn authority_keeps_explicit_port_only() {
        let a = |s: &str| authority_of(&Url::parse(s).unwrap());
        assert_eq!(
            a("https://Git.Example.com/x").as_deref(),
            Some("git.example.com")
        );
        assert_eq!(
            a("https://git.example.com:443/x").as_deref(),
            Some("git.example.com")
        );
        assert_eq!(
            a("http://127.0.0.1:7334/").as_deref(),
            Some("127.0.0.1:7334")
        );
    }
}
