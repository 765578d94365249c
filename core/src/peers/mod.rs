//! Relay sync's peers (GRASP-02 §2, §4, §5): which relays to sync from, each one's
//! connection state, backoff, rate limits, naughtiness, live subscriptions, catch-up jobs
//! and checkpoint — every decision, none of the I/O. The engine feeds it what the
//! runtime reports and the listings of its announcements; it answers with effects and
//! keeps its own deadlines.

mod backoff;
mod catch_up;
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

    /// Makes the live REQs cover `items` (replacing changed ones under their ids, closing
    /// those no longer needed) and queues catch-up jobs: for every item when `all`, else
    /// for the items not covered before; from `since` (`None`: full history).
    fn cover(
        &mut self,
        now: Time,
        id: PeerId,
        items: PeerItems,
        since: Option<Timestamp>,
        all: bool,
        out: &mut Vec<Effect>,
    ) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let new = if all {
            items.clone()
        } else {
            items.minus(&peer.covered)
        };
        let (reqs, truncated) = live_reqs(&items, peer.live_since);
        peer.truncated = truncated;
        let paused = peer.paused_until.is_some();
        for (n, filters) in reqs.into_iter().enumerate() {
            let n = u8::try_from(n).expect("at most ten live REQs");
            if peer.live.get(&n).is_some_and(|l| l.filters == filters) {
                continue;
            }
            peer.live.insert(
                n,
                LiveSub {
                    filters: filters.clone(),
                    eose: false,
                    pending: paused,
                },
            );
            if !paused {
                out.push(Effect::PeerReq {
                    peer: id,
                    sub: PeerSub::Live(n),
                    filters,
                });
                self.timers
                    .set(PeerTimer::Eose(id, PeerSub::Live(n)), now.plus(EOSE_WITHIN));
            }
        }
        let wanted = live_reqs(&items, peer.live_since).0.len();
        let extra: Vec<u8> = peer
            .live
            .keys()
            .copied()
            .filter(|n| usize::from(*n) >= wanted)
            .collect();
        for n in extra {
            peer.live.remove(&n);
            self.timers.cancel(&PeerTimer::Eose(id, PeerSub::Live(n)));
            out.push(Effect::PeerClose {
                peer: id,
                sub: PeerSub::Live(n),
            });
        }
        peer.covered = items;
        let discovery = all;
        for filter in filters(&new, discovery) {
            self.next_id += 1;
            let job = Job::new(
                JobId(self.next_id),
                filter,
                since,
                peer.live_since,
                self.config.page_size,
            );
            peer.queued.push_back(job);
        }
        self.start_jobs(now, id, out);
    }

    /// Starts queued jobs while fewer than [`JOBS_AT_ONCE`] run and no pause holds.
    fn start_jobs(&mut self, now: Time, id: PeerId, out: &mut Vec<Effect>) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if peer.state != State::Connected || peer.paused_until.is_some() {
            return;
        }
        while peer.running.len() < JOBS_AT_ONCE {
            let Some(job) = peer.queued.pop_front() else {
                return;
            };
            let sub = PeerSub::Page(job.id);
            out.push(Effect::PeerReq {
                peer: id,
                sub,
                filters: vec![job.page()],
            });
            self.timers
                .set(PeerTimer::Eose(id, sub), now.plus(EOSE_WITHIN));
            peer.running.insert(job.id, job);
        }
    }

    /// A live REQ's EOSE.
    pub(crate) fn on_eose(&mut self, id: PeerId, sub: PeerSub) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if let PeerSub::Live(n) = sub {
            if let Some(l) = peer.live.get_mut(&n) {
                l.eose = true;
                self.timers.cancel(&PeerTimer::Eose(id, sub));
            }
        }
    }

    /// A catch-up page ended.
    pub(crate) fn on_page_done(
        &mut self,
        now: Time,
        id: PeerId,
        job: JobId,
        (received, new, oldest): (u32, u32, Option<Timestamp>),
        out: &mut Vec<Effect>,
    ) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let Some(j) = peer.running.get_mut(&job) else {
            return;
        };
        let sub = PeerSub::Page(job);
        self.timers.cancel(&PeerTimer::Eose(id, sub));
        peer.pauses = 0;
        match j.page_done(received, new, oldest) {
            Next::Page(filter) => {
                out.push(Effect::PeerReq {
                    peer: id,
                    sub,
                    filters: vec![filter],
                });
                self.timers
                    .set(PeerTimer::Eose(id, sub), now.plus(EOSE_WITHIN));
            }
            Next::End(end) => self.end_job(now, id, job, end, out),
        }
    }

    fn end_job(&mut self, now: Time, id: PeerId, job: JobId, end: JobEnd, out: &mut Vec<Effect>) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let Some(j) = peer.running.remove(&job) else {
            return;
        };
        self.timers.cancel(&PeerTimer::Eose(id, PeerSub::Page(job)));
        out.push(Effect::PeerClose {
            peer: id,
            sub: PeerSub::Page(job),
        });
        *self
            .counters
            .catchups
            .entry((CatchUpMethod::Req.label(), end.label()))
            .or_default() += 1;
        match end {
            JobEnd::Finished => peer.finished += 1,
            JobEnd::Capped | JobEnd::Failed => peer.capped += 1,
        }
        // The last job of a clean run moves the checkpoint to the run's upper bound.
        if end == JobEnd::Finished && peer.running.is_empty() && peer.queued.is_empty() {
            let at = j.upper;
            let key = peer.key.clone();
            self.set_checkpoint(key, at, out);
        }
        self.start_jobs(now, id, out);
    }

    fn set_checkpoint(&mut self, url: String, at: Timestamp, out: &mut Vec<Effect>) {
        if self.checkpoints.get(&url).is_some_and(|c| *c >= at) {
            return;
        }
        self.checkpoints.insert(url.clone(), at);
        out.push(Effect::Persist {
            record: JournalRecord::PeerCheckpoint {
                url,
                at: at.as_secs(),
            },
        });
    }

    /// `CLOSED` for a subscription: a rate limit pauses new REQs; `auth-required:`
    /// leaves the REQ to the daily run; anything else ends a page's job.
    pub(crate) fn on_closed(
        &mut self,
        now: Time,
        id: PeerId,
        sub: PeerSub,
        message: &str,
        out: &mut Vec<Effect>,
    ) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        self.timers.cancel(&PeerTimer::Eose(id, sub));
        let limited = is_rate_limit(message);
        match sub {
            PeerSub::Live(n) => {
                if let Some(l) = peer.live.get_mut(&n) {
                    // Re-sent after the pause; an auth-required one waits for the next
                    // connection (its items are still caught up daily).
                    l.pending = limited;
                    l.eose = !limited;
                }
            }
            PeerSub::Page(job) => {
                if limited {
                    if let Some(j) = peer.running.remove(&job) {
                        peer.queued.push_front(j);
                    }
                } else {
                    self.end_job(now, id, job, JobEnd::Failed, out);
                }
            }
        }
        if limited {
            self.pause(now, id);
        }
    }

    /// A `NOTICE`: a rate-limit notice pauses new REQs.
    pub(crate) fn on_notice(&mut self, now: Time, id: PeerId, message: &str) {
        if is_rate_limit(message) {
            self.pause(now, id);
        }
    }

    fn pause(&mut self, now: Time, id: PeerId) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if peer.paused_until.is_some() {
            return;
        }
        let pause = RATE_PAUSE
            .saturating_mul(1 << peer.pauses.min(8))
            .min(RATE_PAUSE_MAX);
        peer.pauses += 1;
        let until = now.plus(pause);
        peer.paused_until = Some(until);
        self.timers.set(PeerTimer::Unpause(id), until);
    }

    /// Events the runtime dropped as bad: at [`BAD_LIMIT`] in [`BAD_WINDOW`], naughty.
    pub(crate) fn on_misbehaved(
        &mut self,
        now: Time,
        id: PeerId,
        count: u32,
        detail: &str,
        out: &mut Vec<Effect>,
    ) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        peer.bad.push_back((now, count));
        while peer
            .bad
            .front()
            .is_some_and(|(t, _)| now.since(*t) > BAD_WINDOW)
        {
            peer.bad.pop_front();
        }
        let total: u32 = peer.bad.iter().map(|(_, n)| *n).sum();
        if total >= BAD_LIMIT && matches!(peer.state, State::Connected | State::Connecting) {
            out.push(Effect::PeerDisconnect { peer: id });
            let why = format!("{total} bad events in 10 min (last: {detail})");
            self.fail(now, id, PeerFailureKind::NotWebsocket, why, true, out);
        }
    }

    /// The connection failed or ended.
    pub(crate) fn on_failed(
        &mut self,
        now: Time,
        id: PeerId,
        kind: PeerFailureKind,
        detail: String,
        out: &mut Vec<Effect>,
    ) {
        let naughty = matches!(
            kind,
            PeerFailureKind::Dns | PeerFailureKind::Tls | PeerFailureKind::NotWebsocket
        );
        self.fail(now, id, kind, detail, naughty, out);
    }

    fn fail(
        &mut self,
        now: Time,
        id: PeerId,
        kind: PeerFailureKind,
        detail: String,
        naughty: bool,
        out: &mut Vec<Effect>,
    ) {
        let draw = self.draw();
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        match peer.state {
            State::Connecting => self.connecting -= 1,
            State::Connected => {}
            // A late report about a connection already given up.
            _ => return,
        }
        *self.counters.failures.entry(kind.label()).or_default() += 1;
        peer.reason = Some(format!("{}: {detail}", kind.label()));
        let jobs: Vec<JobId> = peer.running.keys().copied().collect();
        peer.running.clear();
        peer.queued.clear();
        peer.live.clear();
        peer.covered = PeerItems::default();
        peer.paused_until = None;
        for job in jobs {
            self.timers.cancel(&PeerTimer::Eose(id, PeerSub::Page(job)));
        }
        for n in 0..u8::try_from(crate::peer_filters::LIVE_REQS).expect("small") {
            self.timers.cancel(&PeerTimer::Eose(id, PeerSub::Live(n)));
        }
        for t in [
            PeerTimer::Healthy(id),
            PeerTimer::Checkpoint(id),
            PeerTimer::Batch(id),
            PeerTimer::Unpause(id),
        ] {
            self.timers.cancel(&t);
        }
        let retry = if naughty {
            let until = now.plus(self.config.naughty_expiry);
            peer.state = State::Naughty { until };
            self.naughty.insert(peer.key.clone(), until);
            out.push(Effect::Persist {
                record: JournalRecord::PeerNaughty {
                    url: peer.key.clone(),
                    until,
                    reason: peer.reason.clone().unwrap_or_default(),
                },
            });
            until
        } else if kind == PeerFailureKind::Refused {
            let until = now.plus(REFUSED_RETRY);
            peer.state = State::Refused { retry: Some(until) };
            until
        } else if kind == PeerFailureKind::OverBudget {
            let until = now.plus(BUDGET_WINDOW);
            peer.state = State::Backoff { until };
            until
        } else {
            let until = peer.backoff.failed(now, self.config.max_backoff, draw);
            peer.state = State::Backoff { until };
            until
        };
        self.timers.set(PeerTimer::Retry(id), retry);
        self.pump_connects(out);
    }

    /// Handles the peers' deadlines due at `now`. `items` computes a peer's coverage.
    pub(crate) fn on_timeout(
        &mut self,
        now: Time,
        items: &mut dyn FnMut(&str) -> PeerItems,
        out: &mut Vec<Effect>,
    ) {
        while let Some(timer) = self.timers.pop_due(now) {
            match timer {
                PeerTimer::Retry(id) => {
                    let Some(peer) = self.peers.get_mut(&id) else {
                        continue;
                    };
                    if matches!(peer.state, State::Naughty { .. }) {
                        let key = peer.key.clone();
                        self.forget_naughty(&key, out);
                    }
                    let peer = self.peers.get_mut(&id).expect("present");
                    if matches!(
                        peer.state,
                        State::Backoff { .. } | State::Naughty { .. } | State::Refused { .. }
                    ) {
                        peer.state = State::Waiting;
                    }
                }
                PeerTimer::Drop(id) => self.drop_peer(id, out),
                PeerTimer::Eose(id, sub) => match sub {
                    PeerSub::Live(_) => {
                        out.push(Effect::PeerDisconnect { peer: id });
                        let why = format!("no EOSE for {} within 30 s", sub.wire_id());
                        self.fail(now, id, PeerFailureKind::Timeout, why, false, out);
                    }
                    PeerSub::Page(job) => self.end_job(now, id, job, JobEnd::Capped, out),
                },
                PeerTimer::Healthy(id) => {
                    if let Some(p) = self.peers.get_mut(&id) {
                        p.backoff.reset();
                    }
                }
                PeerTimer::Checkpoint(id) => {
                    let Some(peer) = self.peers.get(&id) else {
                        continue;
                    };
                    if peer.state != State::Connected {
                        continue;
                    }
                    if !peer.live.is_empty() && peer.live.values().all(|l| l.eose) {
                        let at =
                            Timestamp::from_secs(wall(now).as_secs().saturating_sub(LIVE_OVERLAP));
                        let key = peer.key.clone();
                        self.set_checkpoint(key, at, out);
                    }
                    self.timers
                        .set(PeerTimer::Checkpoint(id), now.plus(CHECKPOINT_EVERY));
                }
                PeerTimer::Batch(id) => {
                    let Some(key) = self.key_of(id).map(str::to_owned) else {
                        continue;
                    };
                    let covered = items(&key);
                    self.cover(now, id, covered, None, false, out);
                }
                PeerTimer::Unpause(id) => {
                    let Some(peer) = self.peers.get_mut(&id) else {
                        continue;
                    };
                    peer.paused_until = None;
                    for (n, l) in peer.live.iter_mut().filter(|(_, l)| l.pending) {
                        l.pending = false;
                        let sub = PeerSub::Live(*n);
                        out.push(Effect::PeerReq {
                            peer: id,
                            sub,
                            filters: l.filters.clone(),
                        });
                        self.timers
                            .set(PeerTimer::Eose(id, sub), now.plus(EOSE_WITHIN));
                    }
                    self.start_jobs(now, id, out);
                }
                PeerTimer::Daily(id) => {
                    let at = self.daily_at(now);
                    self.timers.set(PeerTimer::Daily(id), at);
                    let Some(peer) = self.peers.get(&id) else {
                        continue;
                    };
                    if peer.state == State::Connected && peer.queued.is_empty() {
                        let key = peer.key.clone();
                        let all = items(&key);
                        let live_since = wall(now).as_secs().saturating_sub(LIVE_OVERLAP);
                        self.peers.get_mut(&id).expect("present").live_since =
                            Timestamp::from_secs(live_since);
                        self.cover(now, id, all, None, true, out);
                    }
                }
            }
        }
        self.pump_connects(out);
    }

    fn drop_peer(&mut self, id: PeerId, out: &mut Vec<Effect>) {
        let Some(peer) = self.peers.get(&id) else {
            return;
        };
        if peer.wanted {
            return;
        }
        if matches!(peer.state, State::Connected | State::Connecting) {
            if peer.state == State::Connecting {
                self.connecting -= 1;
            }
            out.push(Effect::PeerDisconnect { peer: id });
        }
        let peer = self.peers.remove(&id).expect("present");
        self.by_key.remove(&peer.key);
        for t in [
            PeerTimer::Retry(id),
            PeerTimer::Healthy(id),
            PeerTimer::Checkpoint(id),
            PeerTimer::Batch(id),
            PeerTimer::Unpause(id),
            PeerTimer::Daily(id),
        ] {
            self.timers.cancel(&t);
        }
        for job in peer.running.keys() {
            self.timers
                .cancel(&PeerTimer::Eose(id, PeerSub::Page(*job)));
        }
        for n in peer.live.keys() {
            self.timers.cancel(&PeerTimer::Eose(id, PeerSub::Live(*n)));
        }
    }
}

/// Whether a peer's `CLOSED` or `NOTICE` asks us to slow down (GRASP-02 §5).
fn is_rate_limit(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.starts_with("rate-limited:")
        || ["rate limit", "rate-limit", "too many", "slow down"]
            .iter()
            .any(|p| m.contains(p))
}

#[cfg(test)]
mod tests;
