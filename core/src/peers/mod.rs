//! Relay sync's peers (GRASP-02 §2, §4, §5): which relays to sync from, each one's
//! connection state, backoff, rate limits, naughtiness, live subscriptions, catch-up jobs
//! and checkpoint — every decision, none of the I/O. The engine feeds it what the
//! runtime reports and the listings of its announcements; it answers with effects and
//! keeps its own deadlines.

mod backoff;
mod catch_up;
mod coverage;
mod health;
mod listings;
mod roots;
mod view;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use nostr::prelude::{Filter, Timestamp};

use crate::config::RelaySync;
use crate::effect::Effect;
use crate::journal::{JournalKey, JournalRecord};
use crate::keyed::splitmix;
use crate::peer::{CatchUpMethod, JobId, PeerFailureKind, PeerId, PeerSub};
use crate::peer_filters::{PeerItems, filters, live_reqs};
use crate::relay_url::RelayUrl;
use crate::time::Time;
use crate::timers::Timers;
use backoff::{Backoff, HEALTHY_AFTER};
use catch_up::{Job, JobEnd, Next};

pub(crate) use listings::{RelayListings, relay_keys};
pub(crate) use roots::Roots;
pub use view::PeerView;

/// Connection attempts at once, over every peer.
const CONNECTS_AT_ONCE: usize = 8;
/// A peer no longer listed is dropped this long after.
const UNLISTED_GRACE: Duration = Duration::from_secs(10 * 60);
/// Live REQs start this far before now, for clock skew (duplicates just dedupe).
const LIVE_OVERLAP: u64 = 60;
/// A catch-up from a checkpoint starts this far before it.
const CHECKPOINT_OVERLAP: u64 = 10 * 60;
/// A live REQ must see its EOSE within this; a page must end within it.
const EOSE_WITHIN: Duration = Duration::from_secs(30);
/// While every live REQ has had its EOSE, the checkpoint moves this often.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(5 * 60);
/// New coverage is batched this long before REQs are replaced.
const BATCH: Duration = Duration::from_secs(5);
/// Catch-up jobs running at once per peer.
const JOBS_AT_ONCE: usize = 2;
/// The first pause after a rate-limit answer, and the longest.
const RATE_PAUSE: Duration = Duration::from_secs(65);
const RATE_PAUSE_MAX: Duration = Duration::from_secs(10 * 60);
/// Bad events in [`BAD_WINDOW`] that make a peer naughty.
const BAD_LIMIT: u32 = 50;
const BAD_WINDOW: Duration = Duration::from_secs(10 * 60);
/// A URL our guard refused is tried again after this (or when a listing changes).
const REFUSED_RETRY: Duration = Duration::from_secs(24 * 3600);
/// The daily full catch-up, ± [`DAILY_JITTER`].
const DAILY: Duration = Duration::from_secs(24 * 3600);
const DAILY_JITTER: u64 = 3600 * 1000;
/// A peer over its byte budget is left alone this long (the budget's window).
const BUDGET_WINDOW: Duration = Duration::from_secs(3600);

/// The wall clock in nostr seconds: relay sync's bounds and checkpoints are `created_at`
/// values, so the engine's clock must count Unix milliseconds (the daemon's does; the
/// simulator starts its clock at a Unix time).
pub(crate) fn wall(now: Time) -> Timestamp {
    Timestamp::from_secs(now.as_millis() / 1000)
}

/// Where a peer's connection stands.
#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// Wants a connection; waits for one of the [`CONNECTS_AT_ONCE`] slots.
    Waiting,
    /// A [`Effect::PeerConnect`] is out.
    Connecting,
    /// Connected: live REQs open, catch-up running or done.
    Connected,
    /// Failed; tried again at `until`.
    Backoff { until: Time },
    /// Misbehaved; left alone until `until` (journalled).
    Naughty { until: Time },
    /// The URL is refused (syntax, our own, or the guard): never dialed; `retry` is when
    /// a guard refusal is tried again (a syntax refusal never is).
    Refused { retry: Option<Time> },
}

/// A live subscription: its filters and whether its EOSE came.
#[derive(Clone, Debug)]
struct LiveSub {
    filters: Vec<Filter>,
    eose: bool,
    /// Waits for a rate-limit pause to end before it is (re)sent.
    pending: bool,
}

/// One peer.
#[derive(Debug)]
struct Peer {
    key: String,
    url: Result<RelayUrl, String>,
    state: State,
    backoff: Backoff,
    bootstrap: bool,
    /// Listed by an announcement (or bootstrap) and within the cap.
    wanted: bool,
    /// Why the last connection failed or the URL is refused.
    reason: Option<String>,
    /// The upper bound of this connection's catch-up (live REQs start there).
    live_since: Timestamp,
    /// What the live REQs cover.
    covered: PeerItems,
    live: BTreeMap<u8, LiveSub>,
    truncated: bool,
    queued: VecDeque<Job>,
    running: BTreeMap<JobId, Job>,
    /// The end of a rate-limit pause, and how many pauses in a row.
    paused_until: Option<Time>,
    pauses: u32,
    bad: VecDeque<(Time, u32)>,
    finished: u64,
    capped: u64,
}

/// Keyed deadlines of the peers.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum PeerTimer {
    /// Backoff, naughtiness or a guard refusal ends.
    Retry(PeerId),
    /// No longer listed: dropped.
    Drop(PeerId),
    /// A live REQ's EOSE, or a page's end, is due.
    Eose(PeerId, PeerSub),
    /// Connected long enough: failures forgotten.
    Healthy(PeerId),
    /// Move the checkpoint.
    Checkpoint(PeerId),
    /// Replace live REQs with the batched coverage.
    Batch(PeerId),
    /// A rate-limit pause ends.
    Unpause(PeerId),
    /// The daily full catch-up.
    Daily(PeerId),
}

/// Counts for metrics, by label.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerCounters {
    /// Catch-up jobs ended, by `(method, outcome)`.
    pub catchups: BTreeMap<(&'static str, &'static str), u64>,
    /// Connection failures, by kind.
    pub failures: BTreeMap<&'static str, u64>,
}

/// Every peer (see the module docs).
#[derive(Debug)]
pub(crate) struct Peers {
    config: RelaySync,
    /// Our own relay URL, normalized: never a peer.
    own: String,
    peers: BTreeMap<PeerId, Peer>,
    by_key: BTreeMap<String, PeerId>,
    timers: Timers<PeerTimer>,
    /// The seeded sequence jitter is drawn from.
    draws: u64,
    next_id: u64,
    connecting: usize,
    /// The listings version peers were last computed from.
    listings_seen: Option<u64>,
    /// Checkpoints per peer URL (restored from the journal, kept across drops).
    checkpoints: BTreeMap<String, Timestamp>,
    /// Naughty URLs and until when (restored from the journal).
    naughty: BTreeMap<String, Time>,
    counters: PeerCounters,
}

impl Peers {
    /// No peers yet; `own` is our relay URL, `seed` the engine's.
    pub(crate) fn new(config: RelaySync, own: &str, seed: u64) -> Peers {
        Peers {
            config,
            own: RelayUrl::parse(own).map_or_else(|_| own.to_owned(), |u| u.as_str().to_owned()),
            peers: BTreeMap::new(),
            by_key: BTreeMap::new(),
            timers: Timers::default(),
            draws: splitmix(seed ^ 0x6772_6173_702d_3032),
            next_id: 0,
            connecting: 0,
            listings_seen: None,
            checkpoints: BTreeMap::new(),
            naughty: BTreeMap::new(),
            counters: PeerCounters::default(),
        }
    }

    /// Whether relay sync is on.
    pub(crate) fn is_enabled(&self) -> bool {
        self.config.enabled
    }

    /// The earliest deadline.
    pub(crate) fn next_timer(&self) -> Option<Time> {
        self.timers.next()
    }

    /// Counts for metrics.
    pub(crate) fn counters(&self) -> &PeerCounters {
        &self.counters
    }

    fn draw(&mut self) -> u64 {
        self.draws = splitmix(self.draws);
        self.draws
    }

    /// A journalled checkpoint or naughty entry, at startup.
    pub(crate) fn restore(&mut self, record: &JournalRecord) {
        match record {
            JournalRecord::PeerCheckpoint { url, at } => {
                self.checkpoints
                    .insert(url.clone(), Timestamp::from_secs(*at));
            }
            JournalRecord::PeerNaughty { url, until, .. } => {
                self.naughty.insert(url.clone(), *until);
            }
            _ => {}
        }
    }

    /// Recomputes the peer set if the listings changed since the last call: new peers
    /// are created (and dialed when slots allow), peers no longer wanted are dropped
    /// after [`UNLISTED_GRACE`], connected peers re-check their coverage after
    /// [`BATCH`].
    pub(crate) fn refresh(&mut self, now: Time, listings: &RelayListings, out: &mut Vec<Effect>) {
        if !self.config.enabled || self.listings_seen == Some(listings.version()) {
            return;
        }
        self.listings_seen = Some(listings.version());
        let mut ranked: Vec<(bool, u32, String)> = self
            .config
            .bootstrap
            .iter()
            .map(|u| (true, u32::MAX, u.as_str().to_owned()))
            .collect();
        for (key, n) in listings.relays() {
            if !ranked.iter().any(|(_, _, k)| k == key) {
                ranked.push((false, n, key.to_owned()));
            }
        }
        ranked.retain(|(_, _, k)| *k != self.own);
        // Bootstrap, then by listing count, then URL.
        ranked.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
        ranked.truncate(self.config.max_relays);
        let wanted: BTreeMap<String, bool> = ranked.into_iter().map(|(b, _, k)| (k, b)).collect();
        let ids: Vec<PeerId> = self.peers.keys().copied().collect();
        for id in ids {
            let peer = self.peers.get_mut(&id).expect("listed");
            let now_wanted = wanted.contains_key(&peer.key);
            if peer.wanted && !now_wanted {
                self.timers
                    .set(PeerTimer::Drop(id), now.plus(UNLISTED_GRACE));
            } else if !peer.wanted && now_wanted {
                self.timers.cancel(&PeerTimer::Drop(id));
            }
            peer.wanted = now_wanted;
            match peer.state {
                State::Connected if !self.timers.is_armed(&PeerTimer::Batch(id)) => {
                    self.timers.set(PeerTimer::Batch(id), now.plus(BATCH));
                }
                // A listing changed: a guard refusal is tried again.
                State::Refused { retry: Some(_) } => {
                    peer.state = State::Waiting;
                    self.timers.cancel(&PeerTimer::Retry(id));
                }
                _ => {}
            }
        }
        for (key, bootstrap) in wanted {
            if !self.by_key.contains_key(&key) {
                self.create(now, key, bootstrap, out);
            }
        }
        self.pump_connects(out);
    }

    /// What connected peers cover may have grown (a new root): their live REQs are
    /// re-checked after [`BATCH`].
    pub(crate) fn coverage_changed(&mut self, now: Time) {
        let ids: Vec<PeerId> = self.connected().map(|(id, _)| id).collect();
        for id in ids {
            if !self.timers.is_armed(&PeerTimer::Batch(id)) {
                self.timers.set(PeerTimer::Batch(id), now.plus(BATCH));
            }
        }
    }

    fn create(&mut self, now: Time, key: String, bootstrap: bool, out: &mut Vec<Effect>) {
        self.next_id += 1;
        let id = PeerId(self.next_id);
        let url = RelayUrl::parse(&key);
        let (state, reason) = match (&url, self.naughty.get(&key)) {
            (Err(why), _) => (State::Refused { retry: None }, Some(why.clone())),
            (Ok(_), Some(until)) if *until > now => {
                self.timers.set(PeerTimer::Retry(id), *until);
                (
                    State::Naughty { until: *until },
                    Some("naughty (journalled)".to_owned()),
                )
            }
            (Ok(_), naughty) => {
                if naughty.is_some() {
                    self.forget_naughty(&key, out);
                }
                (State::Waiting, None)
            }
        };
        self.by_key.insert(key.clone(), id);
        self.peers.insert(
            id,
            Peer {
                key,
                url,
                state,
                backoff: Backoff::default(),
                bootstrap,
                wanted: true,
                reason,
                live_since: Timestamp::from_secs(0),
                covered: PeerItems::default(),
                live: BTreeMap::new(),
                truncated: false,
                queued: VecDeque::new(),
                running: BTreeMap::new(),
                paused_until: None,
                pauses: 0,
                bad: VecDeque::new(),
                finished: 0,
                capped: 0,
            },
        );
    }

    fn forget_naughty(&mut self, key: &str, out: &mut Vec<Effect>) {
        if self.naughty.remove(key).is_some() {
            out.push(Effect::Forget {
                key: JournalKey::PeerNaughty(key.to_owned()),
            });
        }
    }

    /// Dials waiting peers while fewer than [`CONNECTS_AT_ONCE`] attempts are out:
    /// bootstrap first, then in id order (the order they were listed).
    fn pump_connects(&mut self, out: &mut Vec<Effect>) {
        while self.connecting < CONNECTS_AT_ONCE {
            let next = self
                .peers
                .iter()
                .filter(|(_, p)| p.state == State::Waiting && p.wanted)
                .min_by_key(|(id, p)| (!p.bootstrap, **id))
                .map(|(id, _)| *id);
            let Some(id) = next else {
                return;
            };
            let peer = self.peers.get_mut(&id).expect("found");
            let Ok(url) = &peer.url else {
                peer.state = State::Refused { retry: None };
                continue;
            };
            out.push(Effect::PeerConnect {
                peer: id,
                url: url.clone(),
            });
            peer.state = State::Connecting;
            self.connecting += 1;
        }
    }

    /// The peers the engine must compute coverage for, with their keys.
    pub(crate) fn connected(&self) -> impl Iterator<Item = (PeerId, &str)> {
        self.peers
            .iter()
            .filter(|(_, p)| p.state == State::Connected)
            .map(|(id, p)| (*id, p.key.as_str()))
    }

    /// The key (normalized URL) of `peer`.
    pub(crate) fn key_of(&self, peer: PeerId) -> Option<&str> {
        self.peers.get(&peer).map(|p| p.key.as_str())
    }

    /// The connection is up: live REQs, then the catch-up of history up to their start.
    pub(crate) fn on_connected(
        &mut self,
        now: Time,
        id: PeerId,
        items: PeerItems,
        out: &mut Vec<Effect>,
    ) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return out.push(Effect::PeerDisconnect { peer: id });
        };
        if peer.state != State::Connecting {
            return;
        }
        self.connecting -= 1;
        peer.state = State::Connected;
        peer.reason = None;
        peer.live_since = Timestamp::from_secs(wall(now).as_secs().saturating_sub(LIVE_OVERLAP));
        self.timers
            .set(PeerTimer::Healthy(id), now.plus(HEALTHY_AFTER));
        self.timers
            .set(PeerTimer::Checkpoint(id), now.plus(CHECKPOINT_EVERY));
        let since = self
            .checkpoints
            .get(&peer.key)
            .map(|c| Timestamp::from_secs(c.as_secs().saturating_sub(CHECKPOINT_OVERLAP)));
        if !self.timers.is_armed(&PeerTimer::Daily(id)) {
            let at = self.daily_at(now);
            self.timers.set(PeerTimer::Daily(id), at);
        }
        self.cover(now, id, items, since, true, out);
        self.pump_connects(out);
    }

    fn daily_at(&mut self, now: Time) -> Time {
        let offset = self.draw() % (2 * DAILY_JITTER + 1);
        now.plus(DAILY)
            .plus(Duration::from_millis(offset))
            .minus(Duration::from_millis(DAILY_JITTER))
    }
}

#[cfg(test)]
mod tests;
