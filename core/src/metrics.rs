//! Counters the engine keeps, and the read-only views operators and `/metrics` get.

use crate::effect::ServePath;
use crate::engine::Engine;
use crate::input::FailureKind;
use crate::oid::Oid;
use crate::purgatory::Waiting;
use crate::repo_index::AnnStatus;
use crate::time::Time;
use nostr::prelude::{EventId, PublicKey};
use std::collections::BTreeMap;
use std::time::Duration;

/// Monotonic counters, updated as the engine decides.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Events given to the engine.
    pub events_in: u64,
    /// Events that entered purgatory.
    pub entered_purgatory: u64,
    /// Events served at once, with nothing to wait for.
    pub served_direct: u64,
    /// Events served on arrival because their data was already here.
    pub released_arrival: u64,
    /// Events released by a push.
    pub released_push: u64,
    /// Events released by a fetch.
    pub released_sync: u64,
    /// Purgatory entries that expired without their data (and lapsed placeholders).
    pub expired: u64,
    /// Announcements whose repository was deleted at the purgatory deadline.
    pub soft_expired: u64,
    /// Sync attempts started.
    pub attempts: u64,
    /// Objects fetched from remotes.
    pub objects_fetched: u64,
    /// Bytes fetched from remotes.
    pub bytes_fetched: u64,
    /// Failed remote requests by kind.
    pub failures: BTreeMap<FailureKind, u64>,
    /// Remote answers asking us to slow down.
    pub remote_rate_limited: u64,
    /// Time from arrival to release of released purgatory events, in histogram buckets
    /// (upper bounds in ms: 10, 100, 1 000, 10 000, 60 000, 300 000, 1 800 000, +inf).
    pub release_wait_ms: [u64; 8],
}

/// The histogram bucket bounds of [`Counters::release_wait_ms`].
pub const RELEASE_WAIT_BUCKETS_MS: [u64; 7] = [10, 100, 1_000, 10_000, 60_000, 300_000, 1_800_000];

impl Counters {
    pub(crate) fn served(&mut self, path: ServePath) {
        match path {
            ServePath::Direct => self.served_direct += 1,
            ServePath::Arrival => self.released_arrival += 1,
            ServePath::Push => self.released_push += 1,
            ServePath::Sync => self.released_sync += 1,
        }
    }

    pub(crate) fn release_latency(&mut self, waited: Duration) {
        let ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX);
        let i = RELEASE_WAIT_BUCKETS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(7);
        self.release_wait_ms[i] += 1;
    }
}

/// A snapshot for `/metrics`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metrics {
    /// The counters.
    pub counters: Counters,
    /// Waiting announcements (including soft-expired ones).
    pub purgatory_announcements: usize,
    /// Waiting states.
    pub purgatory_states: usize,
    /// Waiting pull requests and updates.
    pub purgatory_prs: usize,
    /// Git-first placeholders.
    pub placeholders: usize,
    /// Of those, in contributor repositories (`/prs/`, GRASP-06).
    pub prs_placeholders: usize,
    /// Of the waiting pull requests, those accepted by GRASP-06's relaxation.
    pub prs_prs: usize,
    /// Bytes of the JSON of every waiting event (the byte budget's measure).
    pub purgatory_bytes: usize,
    /// Identifiers in the sync queue.
    pub sync_queue: usize,
    /// Identifiers the engine holds any state for (purgatory, sync, objects known
    /// present): interned handles, freed when that state ends.
    pub identifiers: usize,
    /// Served hosted announcements.
    pub served_repos: usize,
    /// Accepted event ids indexed.
    pub accepted_events: usize,
    /// Per domain: requests made, in flight, times saturated.
    pub domains: Vec<DomainMetrics>,
}

/// Per-domain throttle figures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainMetrics {
    /// `host[:port]`.
    pub domain: String,
    /// Requests ever made.
    pub requests: u64,
    /// Requests in flight now.
    pub in_flight: u32,
    /// Requests in the current sliding window.
    pub in_window: usize,
    /// Times an identifier queued because the domain was saturated.
    pub saturated: u64,
}

/// One waiting event, for the operator view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitingView {
    /// The event.
    pub id: EventId,
    /// Its author.
    pub author: PublicKey,
    /// `announcement`, `state` or `pull_request`; with GRASP-06, `prs_pr` (a pull request
    /// accepted by the relaxation) or `prs_placeholder` (a `/prs/` push whose pull
    /// request has not arrived: `author` and `d` are its scope, the URL's npub and
    /// identifier).
    pub kind: &'static str,
    /// The repository identifier.
    pub d: String,
    /// Objects it waits for and does not have yet (empty for a bare announcement).
    pub missing: Vec<Oid>,
    /// When it arrived.
    pub arrived: Time,
    /// When it expires (or, soft-expired, is forgotten).
    pub deadline: Time,
    /// Soft-expired announcement (repository deleted, event kept).
    pub soft_expired: bool,
    /// A ref value is not an object id: it can never be satisfied.
    pub unsatisfiable: bool,
    /// Why its author's data would not count yet, if so: a state by a key that is only
    /// invited, or a repository nobody is confirmed to maintain (MAINTAINERS.md).
    pub authority: Option<String>,
}

/// One identifier in the sync queue, for the operator view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncView {
    /// The repository identifier.
    pub d: String,
    /// Attempts since the last reset.
    pub attempts: u32,
    /// When the next attempt starts (`None` while one runs).
    pub next_attempt: Option<Time>,
    /// Objects still missing.
    pub missing: Vec<Oid>,
    /// Per URL: when it was last tried and what happened (refusals included).
    pub urls: Vec<(String, Time, String)>,
}

impl Engine {
    /// The monotonic counters alone: cheap enough to read around every input.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Every metric: counters and gauges (walks the throttle's domains; not per input).
    pub fn metrics(&self) -> Metrics {
        let mut m = Metrics {
            counters: self.counters.clone(),
            purgatory_announcements: 0,
            purgatory_states: 0,
            purgatory_prs: 0,
            placeholders: self.purgatory.placeholders.len(),
            prs_placeholders: self.purgatory.placeholders.count_prs(),
            prs_prs: self.purgatory.relaxed.len(),
            purgatory_bytes: self.purgatory.bytes(),
            sync_queue: self.sync.entries.len(),
            identifiers: self.idents.len(),
            served_repos: self.repos.count(AnnStatus::Served),
            accepted_events: self.related.len(),
            domains: Vec::new(),
        };
        for e in self.purgatory.entries() {
            match e.what {
                Waiting::Announcement => m.purgatory_announcements += 1,
                Waiting::State(_) => m.purgatory_states += 1,
                Waiting::Pr { .. } => m.purgatory_prs += 1,
            }
        }
        m.domains = self
            .throttle
            .domains()
            .into_iter()
            .map(|(name, d)| DomainMetrics {
                domain: name.to_owned(),
                requests: d.requests,
                in_flight: d.in_flight,
                in_window: self.throttle.in_window(d, self.now),
                saturated: d.saturated,
            })
            .collect();
        m
    }

    /// Every waiting event, oldest deadline first.
    pub fn purgatory_view(&self) -> Vec<WaitingView> {
        let mut out: Vec<WaitingView> = self
            .purgatory
            .entries()
            .map(|e| {
                let missing = match &e.what {
                    Waiting::Announcement => Vec::new(),
                    _ => {
                        let present = self.present.get(&e.ident);
                        e.own_needs()
                            .unwrap_or_default()
                            .into_iter()
                            .filter(|o| present.is_none_or(|p| !p.contains_key(o)))
                            .collect()
                    }
                };
                let relaxed = self
                    .purgatory
                    .relaxed
                    .contains(&(e.event.pubkey, e.event.id));
                WaitingView {
                    id: e.event.id,
                    author: e.event.pubkey,
                    kind: if relaxed { "prs_pr" } else { e.kind_label() },
                    d: self.idents.name(e.ident).to_owned(),
                    missing,
                    arrived: e.arrived,
                    deadline: e.expires_at(),
                    soft_expired: e.forget_at().is_some(),
                    unsatisfiable: e.own_needs().is_none(),
                    authority: self.authority_note(e),
                }
            })
            .collect();
        // GRASP-06 placeholders: scope (npub = author, identifier) and deadline.
        for (repo, id) in self.purgatory.placeholders.iter_prs() {
            let key = crate::engine::TimerKey::Placeholder(Box::new((repo.clone(), *id)));
            let Some(deadline) = self.timers.deadline_of(&key) else {
                continue;
            };
            out.push(WaitingView {
                id: *id,
                author: repo.owner,
                kind: "prs_placeholder",
                d: repo.d.clone(),
                missing: Vec::new(),
                arrived: crate::time::Time::from_millis(
                    deadline.as_millis().saturating_sub(
                        u64::try_from(self.config.prs_placeholder_expiry.as_millis())
                            .unwrap_or(u64::MAX),
                    ),
                ),
                deadline,
                soft_expired: false,
                unsatisfiable: false,
                authority: None,
            });
        }
        out.sort_by_key(|w| (w.deadline, w.id));
        out
    }

    /// Why the author of waiting entry `e` has no say yet, for the operator view.
    fn authority_note(&self, e: &crate::purgatory::Entry) -> Option<String> {
        let d = self.idents.name(e.ident);
        let author = e.event.pubkey;
        match &e.what {
            Waiting::State(_) => self.repos.invited_note(&author, d),
            Waiting::Announcement => self.repos.no_seed_note(&author, d),
            Waiting::Pr { .. } => None,
        }
    }

    /// Every identifier in the sync queue, by name.
    pub fn sync_view(&self) -> Vec<SyncView> {
        let mut out: Vec<SyncView> = self
            .sync
            .entries
            .iter()
            .map(|(d, e)| SyncView {
                d: self.idents.name(d).to_owned(),
                attempts: e.attempts,
                next_attempt: e.next_at,
                missing: self.needs(Some(d)).into_iter().collect(),
                urls: e
                    .last_outcomes()
                    .into_iter()
                    .map(|(u, t, o)| (u.to_owned(), t, o.to_string()))
                    .collect(),
            })
            .collect();
        out.sort_by(|a, b| a.d.cmp(&b.d));
        out
    }

    /// Whether `id` waits in purgatory (for tests and the relay's duplicate checks).
    pub fn is_waiting(&self, id: &EventId) -> bool {
        self.purgatory.contains(id)
    }

    /// The version of `author`'s announcement (`30617`) or state (`30618`) for `d` that
    /// the engine holds as stored: what it authorizes pushes and releases with. The
    /// store must serve this very version (the simulator checks it: "served state =
    /// enforced state").
    pub fn stored_version(&self, kind: u16, author: &PublicKey, d: &str) -> Option<EventId> {
        match kind {
            30617 => self.repos.announcement(author, d).map(|a| a.id),
            30618 => self.repos.state_of(author, d).map(|s| s.id),
            _ => None,
        }
    }
}
