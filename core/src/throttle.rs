//! Per-domain request throttle: concurrency, a sliding window, and a round-robin queue of
//! identifiers waiting for a slot.
//!
//! Every request to a domain counts — ref advertisements and fetches alike. A saturated
//! domain only queues identifiers on that domain; other domains are unaffected.
//!
//! Domains are interned ([`DomainId`]): every sync result looks its domain up several
//! times (its slot, the queue, the cursor of each identifier it serves), and keyed by the
//! name that was a string-keyed B-tree search each — an eighth of a result's instructions
//! in `memcmp` with two hundred domains. A domain's handle lives while a sync attempt
//! holds it ([`Throttle::hold`] / [`Throttle::unhold`]) or it has requests, a queue or a
//! window; [`Throttle::gc`] frees it afterwards, so hostile clone URLs naming ever new
//! domains cannot grow the table.

use crate::ident::{Ident, IdentMap, Idents};
use crate::journal::JournalRecord;
use crate::keyed::Keyed;
use crate::time::Time;
use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

/// An interned domain (the authority of a clone URL).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct DomainId(Ident);

/// The state of one domain.
#[derive(Debug, Default)]
pub(crate) struct Domain {
    pub(crate) in_flight: u32,
    /// Start times of requests in the current window, oldest first.
    window: VecDeque<Time>,
    /// Identifiers waiting for a slot, served in turn.
    queue: VecDeque<Ident>,
    /// Who is queued: membership in O(log n); entries of `queue` not in it are stale
    /// (forgotten) and skipped, so forgetting never scans the queue.
    queued: BTreeSet<Ident>,
    /// Sync attempts that hold this domain's handle.
    holders: u32,
    /// Its window is in the journal (a `t:` record to forget when the domain is freed).
    journalled: bool,
    /// Requests ever made.
    pub(crate) requests: u64,
    /// Times an identifier had to queue because the domain was saturated.
    pub(crate) saturated: u64,
}

impl Domain {
    /// Drops window starts that have slid out of the window ending at `now`.
    fn prune(&mut self, window: Duration, now: Time) {
        while self.window.front().is_some_and(|t| t.plus(window) <= now) {
            self.window.pop_front();
        }
    }

    /// Drops forgotten identifiers from the front of the queue.
    fn clean_front(&mut self) {
        while self.queue.front().is_some_and(|q| !self.queued.contains(q)) {
            self.queue.pop_front();
        }
    }
}

/// All domains.
#[derive(Debug)]
pub(crate) struct Throttle {
    names: Idents,
    domains: IdentMap<Domain>,
    /// Domains with identifiers queued: the only ones a timeout may wake, so that
    /// `poll_timeout` — asked after every input — does not scan every domain.
    waiting: BTreeSet<Ident>,
    concurrency: u32,
    rate: u32,
    window: Duration,
    /// Requests in flight over every domain, and the most there may be.
    in_flight_total: u32,
    global: u32,
    /// A request ended while every global slot was taken: queued domains elsewhere may
    /// go now (the engine pumps them all, starting at a rotating one).
    global_freed: bool,
    /// The handle after the domain that got the last freed global slot, so that freed
    /// slots go round the queued domains.
    rotation: u32,
}

impl Throttle {
    pub(crate) fn new(concurrency: u32, rate: u32, window: Duration, keys: Keyed) -> Self {
        Throttle {
            names: Idents::new(keys),
            domains: IdentMap::default(),
            waiting: BTreeSet::new(),
            concurrency: concurrency.max(1),
            rate: rate.max(1),
            window,
            in_flight_total: 0,
            global: u32::MAX,
            global_freed: false,
            rotation: 0,
        }
    }

    /// Caps the requests in flight over every domain together.
    pub(crate) fn with_global_limit(mut self, global: u32) -> Self {
        self.global = global.max(1);
        self
    }

    /// Whether a global slot freed while all were taken since last asked.
    pub(crate) fn take_global_freed(&mut self) -> bool {
        std::mem::take(&mut self.global_freed)
    }

    /// The handle of `domain` for a sync attempt that will ask it, made if new. The attempt
    /// gives it back with [`Throttle::unhold`] when it ends.
    pub(crate) fn hold(&mut self, domain: &str) -> DomainId {
        let id = self.names.intern(domain);
        self.domains.get_or_default(id).holders += 1;
        DomainId(id)
    }

    /// An attempt that held `domain` ended.
    pub(crate) fn unhold(&mut self, domain: DomainId) {
        if let Some(d) = self.domains.get_mut(&domain.0) {
            d.holders = d.holders.saturating_sub(1);
        }
    }

    /// The name of a live domain handle.
    pub(crate) fn name(&self, domain: DomainId) -> &str {
        self.names.name(domain.0)
    }

    /// The state of `domain` with its window pruned to `now`.
    fn domain_at(&mut self, domain: DomainId, now: Time) -> Option<&mut Domain> {
        let d = self.domains.get_mut(&domain.0)?;
        d.prune(self.window, now);
        Some(d)
    }

    fn has_capacity(d: &Domain, concurrency: u32, rate: u32) -> bool {
        d.in_flight < concurrency && (d.window.len() as u32) < rate
    }

    /// Takes a slot for identifier `ident` if the domain has one and nobody is queued ahead;
    /// otherwise queues `ident` (once) and returns false.
    pub(crate) fn acquire(&mut self, domain: DomainId, ident: Ident, now: Time) -> bool {
        let (concurrency, rate) = (self.concurrency, self.rate);
        let global_free = self.in_flight_total < self.global;
        let Some(d) = self.domain_at(domain, now) else {
            debug_assert!(false, "acquire on a domain nobody holds");
            return false;
        };
        let free = global_free && Self::has_capacity(d, concurrency, rate);
        d.clean_front();
        let my_turn = d.queue.front().is_none_or(|q| *q == ident);
        let got = if free && my_turn {
            if d.queue.front().is_some_and(|q| *q == ident) {
                d.queue.pop_front();
                d.queued.remove(&ident);
            }
            d.in_flight += 1;
            d.window.push_back(now);
            d.requests += 1;
            d.journalled = true;
            self.in_flight_total += 1;
            true
        } else {
            if d.queued.insert(ident) {
                d.queue.push_back(ident);
                d.saturated += 1;
            }
            false
        };
        self.note_queue(domain);
        got
    }

    /// Keeps `waiting` in step with whether `domain` has identifiers queued.
    fn note_queue(&mut self, domain: DomainId) {
        if self
            .domains
            .get(&domain.0)
            .is_some_and(|d| !d.queued.is_empty())
        {
            self.waiting.insert(domain.0);
        } else {
            self.waiting.remove(&domain.0);
        }
    }

    /// A request to `domain` finished (either way).
    pub(crate) fn release(&mut self, domain: DomainId) {
        if let Some(d) = self.domains.get_mut(&domain.0) {
            d.in_flight = d.in_flight.saturating_sub(1);
        }
        if self.in_flight_total >= self.global {
            self.global_freed = true;
        }
        self.in_flight_total = self.in_flight_total.saturating_sub(1);
    }

    /// Requests in flight over every domain.
    #[cfg(test)]
    pub(crate) fn in_flight_total(&self) -> u32 {
        self.in_flight_total
    }

    /// The queued identifier whose turn it is, if the domain has a free slot now. It stays
    /// queued until it [`Throttle::acquire`]s or is [`Throttle::forget`]-ten.
    pub(crate) fn peek_ready(&mut self, domain: DomainId, now: Time) -> Option<Ident> {
        let (concurrency, rate) = (self.concurrency, self.rate);
        let global_full = self.in_flight_total >= self.global;
        // Pruned first, even when no global slot is free: `poll_timeout` reads the
        // window's front, which must not stay in the past.
        let d = self.domain_at(domain, now)?;
        if global_full || !Self::has_capacity(d, concurrency, rate) {
            return None;
        }
        d.clean_front();
        d.queue.front().copied()
    }

    /// Drops `ident` from the queue of `domain` (it has nothing left to ask there).
    pub(crate) fn forget(&mut self, domain: DomainId, ident: Ident) {
        if let Some(d) = self.domains.get_mut(&domain.0) {
            if d.queued.remove(&ident) {
                self.note_queue(domain);
            }
        }
    }

    /// Domains with queued identifiers, by name, for pumping after a timeout.
    pub(crate) fn queued_domains(&self) -> Vec<DomainId> {
        let mut out: Vec<DomainId> = self.waiting.iter().map(|id| DomainId(*id)).collect();
        out.sort_by(|a, b| self.name(*a).cmp(self.name(*b)));
        out
    }

    /// The next queued domain in turn for a freed global slot: the first queued one after
    /// the last one given (by handle, wrapping around), so freed slots go round the
    /// domains without sorting them all on every request that ends.
    pub(crate) fn next_queued_for_global(&mut self) -> Option<DomainId> {
        let after = self.rotation;
        let next = self
            .waiting
            .range(Ident::from_index(after)..)
            .next()
            .or_else(|| self.waiting.iter().next())
            .copied()?;
        self.rotation = next.index() + 1;
        Some(DomainId(next))
    }

    /// Whether a global slot is free.
    pub(crate) fn has_global_slot(&self) -> bool {
        self.in_flight_total < self.global
    }

    /// How many domains have identifiers queued.
    pub(crate) fn queued_domains_len(&self) -> usize {
        self.waiting.len()
    }

    /// When a window slot frees on a domain that has identifiers queued and is limited by
    /// its window (not by concurrency, whose release is an input).
    pub(crate) fn poll_timeout(&self) -> Option<Time> {
        self.waiting
            .iter()
            .filter_map(|id| self.domains.get(id))
            .filter(|d| !d.queued.is_empty() && d.in_flight < self.concurrency)
            .filter(|d| d.window.len() as u32 >= self.rate)
            .filter_map(|d| d.window.front().map(|t| t.plus(self.window)))
            .min()
    }

    /// The journal record of `domain`'s window, pruned to `now`: written after every
    /// request it starts, so that a restart resumes the window instead of a fresh budget.
    pub(crate) fn window_record(&mut self, domain: DomainId, now: Time) -> Option<JournalRecord> {
        let window = self.window;
        let d = self.domains.get_mut(&domain.0)?;
        d.prune(window, now);
        Some(JournalRecord::DomainWindow {
            domain: self.names.name(domain.0).to_owned(),
            starts: d.window.iter().copied().collect(),
        })
    }

    /// Startup: a domain's window from the journal. Only starts within `window` of `now`
    /// count; the domain is freed by [`Throttle::gc`] once they slide out (its record then
    /// forgotten).
    pub(crate) fn restore_window(&mut self, domain: &str, starts: &[Time], now: Time) {
        let window = self.window;
        let id = self.names.intern(domain);
        let d = self.domains.get_or_default(id);
        d.journalled = true;
        let mut all: Vec<Time> = d.window.iter().chain(starts).copied().collect();
        all.sort();
        // A journal cannot make a domain hold more than its budget (a corrupt or hostile
        // record): the newest `rate` starts are kept.
        let keep = all.len().saturating_sub(self.rate as usize);
        d.window = all.into_iter().skip(keep).collect();
        d.prune(window, now);
    }

    /// Drops idle domains: no attempt holds them and nothing is in flight, queued or in the
    /// window. Their handles are freed for reuse; the names of those whose window was in
    /// the journal are returned, for their records to be forgotten.
    pub(crate) fn gc(&mut self, now: Time) -> Vec<String> {
        let window = self.window;
        let idle: Vec<Ident> = self
            .domains
            .iter()
            .filter(|(_, d)| {
                d.holders == 0
                    && d.in_flight == 0
                    && d.queued.is_empty()
                    && d.window.back().is_none_or(|t| t.plus(window) <= now)
            })
            .map(|(id, _)| id)
            .collect();
        let mut forget = Vec::new();
        for id in idle {
            if self.domains.remove(&id).is_some_and(|d| d.journalled) {
                forget.push(self.names.name(id).to_owned());
            }
            self.names.free(id);
        }
        forget.sort();
        forget
    }

    /// Every domain with its name, by name (for metrics).
    pub(crate) fn domains(&self) -> Vec<(&str, &Domain)> {
        let mut out: Vec<(&str, &Domain)> = self
            .domains
            .iter()
            .map(|(id, d)| (self.names.name(id), d))
            .collect();
        out.sort_by(|a, b| a.0.cmp(b.0));
        out
    }

    /// Requests started in the sliding window ending at `now` (for invariants and views).
    pub(crate) fn in_window(&self, d: &Domain, now: Time) -> usize {
        d.window
            .iter()
            .filter(|t| t.plus(self.window) > now)
            .count()
    }

    /// Live domain handles (for tests: none may leak).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.domains.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Time {
        Time::from_millis(ms)
    }

    /// Handles for the names the tests use.
    fn ids() -> (Ident, Ident, Ident, Ident) {
        let mut t = crate::ident::Idents::new(Keyed::new(1));
        (t.intern("x"), t.intern("y"), t.intern("z"), t.intern("w"))
    }

    #[test]
    fn concurrency_then_round_robin() {
        let (x, y, z, w) = ids();
        let mut th = Throttle::new(2, 100, Duration::from_secs(60), Keyed::new(1));
        let a = th.hold("a");
        assert!(th.acquire(a, x, t(0)));
        assert!(th.acquire(a, y, t(0)));
        assert!(!th.acquire(a, z, t(0)));
        assert!(!th.acquire(a, x, t(0)));
        th.release(a);
        assert_eq!(th.peek_ready(a, t(1)), Some(z));
        // only the front may take the free slot
        assert!(!th.acquire(a, x, t(1)));
        assert!(th.acquire(a, z, t(1)));
        assert!(!th.acquire(a, w, t(1)));
        th.release(a);
        assert_eq!(th.peek_ready(a, t(2)), Some(x));
    }

    #[test]
    fn sliding_window_limits_and_wakes() {
        let (x, ..) = ids();
        let mut th = Throttle::new(10, 2, Duration::from_secs(60), Keyed::new(1));
        let (a, b) = (th.hold("a"), th.hold("b"));
        assert!(th.acquire(a, x, t(0)));
        th.release(a);
        assert!(th.acquire(a, x, t(10)));
        th.release(a);
        assert!(!th.acquire(a, x, t(20)));
        assert_eq!(th.poll_timeout(), Some(t(60_000)));
        assert_eq!(th.peek_ready(a, t(59_999)), None);
        assert_eq!(th.peek_ready(a, t(60_000)), Some(x));
        assert_eq!(th.queued_domains(), vec![a]);
        // another domain is unaffected
        assert!(th.acquire(b, x, t(20)));
        // nobody queued: no domain to wake
        th.forget(a, x);
        assert_eq!((th.poll_timeout(), th.queued_domains()), (None, vec![]));
    }

    #[test]
    fn idle_domains_are_freed_only_when_nothing_holds_them() {
        let (x, ..) = ids();
        let mut th = Throttle::new(10, 2, Duration::from_secs(60), Keyed::new(1));
        let a = th.hold("a");
        th.gc(t(0));
        assert_eq!(th.len(), 1, "held by an attempt");
        assert!(th.acquire(a, x, t(0)));
        th.unhold(a);
        th.gc(t(1));
        assert_eq!(th.len(), 1, "a request in flight");
        th.release(a);
        th.gc(t(59_999));
        assert_eq!(th.len(), 1, "its request still counts in the window");
        th.gc(t(60_000));
        assert_eq!(th.len(), 0);
        let b = th.hold("b");
        assert_eq!(
            th.name(b),
            "b",
            "a freed handle is reused under its new name"
        );
    }

    #[test]
    fn the_global_limit_caps_every_domain_together_and_frees_in_turn() {
        let (x, y, ..) = ids();
        let mut th =
            Throttle::new(5, 100, Duration::from_secs(60), Keyed::new(1)).with_global_limit(2);
        let (a, b, c) = (th.hold("a"), th.hold("b"), th.hold("c"));
        assert!(th.acquire(a, x, t(0)));
        assert!(th.acquire(b, x, t(0)));
        assert!(!th.acquire(c, x, t(0)), "two in flight over all domains");
        assert!(!th.acquire(a, y, t(0)));
        assert_eq!(th.in_flight_total(), 2);
        assert_eq!(th.peek_ready(c, t(1)), None, "no global slot");
        th.release(b);
        assert!(th.take_global_freed(), "a slot freed while all were taken");
        assert!(!th.take_global_freed());
        assert_eq!(th.next_queued_for_global(), Some(a));
        assert_eq!(th.next_queued_for_global(), Some(c), "the turn moves on");
        assert_eq!(th.next_queued_for_global(), Some(a), "and wraps around");
        assert_eq!(th.peek_ready(c, t(1)), Some(x));
    }

    /// Found by the sweep (seed 174): with every global slot taken, `peek_ready` returned
    /// before pruning the window, so `poll_timeout` kept answering a time in the past and
    /// the driver spun.
    #[test]
    fn a_full_global_limit_still_prunes_windows() {
        let (x, y, z, _) = ids();
        let mut th =
            Throttle::new(5, 1, Duration::from_secs(60), Keyed::new(1)).with_global_limit(1);
        let (a, b) = (th.hold("a"), th.hold("b"));
        assert!(th.acquire(a, x, t(0)));
        th.release(a);
        assert!(th.acquire(b, y, t(0)), "b takes the only global slot");
        assert!(!th.acquire(a, z, t(1)), "a queues: its window is full");
        assert_eq!(th.poll_timeout(), Some(t(60_000)));
        assert_eq!(th.peek_ready(a, t(70_000)), None, "no global slot");
        assert!(
            th.poll_timeout().is_none_or(|w| w > t(70_000)),
            "no deadline in the past: {:?}",
            th.poll_timeout()
        );
    }
}
