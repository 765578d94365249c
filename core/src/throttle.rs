//! Per-domain request throttle: concurrency, a sliding window, and a round-robin queue of
//! identifiers waiting for a slot.
//!
//! Every request to a domain counts — ref advertisements and fetches alike. A saturated
//! domain only queues identifiers on that domain; other domains are unaffected.

use crate::ident::Ident;
use crate::time::Time;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

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
    domains: BTreeMap<String, Domain>,
    concurrency: u32,
    rate: u32,
    window: Duration,
}

impl Throttle {
    pub(crate) fn new(concurrency: u32, rate: u32, window: Duration) -> Self {
        Throttle {
            domains: BTreeMap::new(),
            concurrency: concurrency.max(1),
            rate: rate.max(1),
            window,
        }
    }

    /// The state of `domain` with its window pruned to `now`, made if new (one lookup; the
    /// name is copied only when the domain is first seen).
    fn domain_at(&mut self, domain: &str, now: Time) -> &mut Domain {
        if !self.domains.contains_key(domain) {
            self.domains.insert(domain.to_owned(), Domain::default());
        }
        let d = self.domains.get_mut(domain).expect("inserted above");
        d.prune(self.window, now);
        d
    }

    fn has_capacity(d: &Domain, concurrency: u32, rate: u32) -> bool {
        d.in_flight < concurrency && (d.window.len() as u32) < rate
    }

    /// Takes a slot for identifier `ident` if the domain has one and nobody is queued ahead;
    /// otherwise queues `ident` (once) and returns false.
    pub(crate) fn acquire(&mut self, domain: &str, ident: Ident, now: Time) -> bool {
        let (concurrency, rate) = (self.concurrency, self.rate);
        let d = self.domain_at(domain, now);
        let free = Self::has_capacity(d, concurrency, rate);
        d.clean_front();
        let my_turn = d.queue.front().is_none_or(|q| *q == ident);
        if free && my_turn {
            if d.queue.front().is_some_and(|q| *q == ident) {
                d.queue.pop_front();
                d.queued.remove(&ident);
            }
            d.in_flight += 1;
            d.window.push_back(now);
            d.requests += 1;
            true
        } else {
            if d.queued.insert(ident) {
                d.queue.push_back(ident);
                d.saturated += 1;
            }
            false
        }
    }

    /// A request to `domain` finished (either way).
    pub(crate) fn release(&mut self, domain: &str) {
        if let Some(d) = self.domains.get_mut(domain) {
            d.in_flight = d.in_flight.saturating_sub(1);
        }
    }

    /// The queued identifier whose turn it is, if the domain has a free slot now. It stays
    /// queued until it [`Throttle::acquire`]s or is [`Throttle::forget`]-ten.
    pub(crate) fn peek_ready(&mut self, domain: &str, now: Time) -> Option<Ident> {
        let (concurrency, rate, window) = (self.concurrency, self.rate, self.window);
        let d = self.domains.get_mut(domain)?;
        d.prune(window, now);
        if !Self::has_capacity(d, concurrency, rate) {
            return None;
        }
        d.clean_front();
        d.queue.front().copied()
    }

    /// Drops `ident` from every queue (it has nothing left to ask).
    pub(crate) fn forget(&mut self, domain: &str, ident: Ident) {
        if let Some(d) = self.domains.get_mut(domain) {
            d.queued.remove(&ident);
        }
    }

    /// Domains with queued identifiers, for pumping after a timeout.
    pub(crate) fn queued_domains(&self) -> Vec<String> {
        self.domains
            .iter()
            .filter(|(_, d)| !d.queued.is_empty())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// When a window slot frees on a domain that has identifiers queued and is limited by
    /// its window (not by concurrency, whose release is an input).
    pub(crate) fn poll_timeout(&self) -> Option<Time> {
        self.domains
            .values()
            .filter(|d| !d.queued.is_empty() && d.in_flight < self.concurrency)
            .filter(|d| d.window.len() as u32 >= self.rate)
            .filter_map(|d| d.window.front().map(|t| t.plus(self.window)))
            .min()
    }

    /// Drops idle domains with nothing in flight, queued or in the window.
    pub(crate) fn gc(&mut self, now: Time) {
        let window = self.window;
        self.domains.retain(|_, d| {
            d.in_flight > 0
                || !d.queued.is_empty()
                || d.window.back().is_some_and(|t| t.plus(window) > now)
        });
    }

    pub(crate) fn domains(&self) -> impl Iterator<Item = (&String, &Domain)> {
        self.domains.iter()
    }

    /// Requests started in the sliding window ending at `now` (for invariants and views).
    pub(crate) fn in_window(&self, domain: &str, now: Time) -> usize {
        self.domains.get(domain).map_or(0, |d| {
            d.window
                .iter()
                .filter(|t| t.plus(self.window) > now)
                .count()
        })
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
        let mut t = crate::ident::Idents::default();
        (t.intern("x"), t.intern("y"), t.intern("z"), t.intern("w"))
    }

    #[test]
    fn concurrency_then_round_robin() {
        let (x, y, z, w) = ids();
        let mut th = Throttle::new(2, 100, Duration::from_secs(60));
        assert!(th.acquire("a", x, t(0)));
        assert!(th.acquire("a", y, t(0)));
        assert!(!th.acquire("a", z, t(0)));
        assert!(!th.acquire("a", x, t(0)));
        th.release("a");
        assert_eq!(th.peek_ready("a", t(1)), Some(z));
        // only the front may take the free slot
        assert!(!th.acquire("a", x, t(1)));
        assert!(th.acquire("a", z, t(1)));
        assert!(!th.acquire("a", w, t(1)));
        th.release("a");
        assert_eq!(th.peek_ready("a", t(2)), Some(x));
    }

    #[test]
    fn sliding_window_limits_and_wakes() {
        let (x, ..) = ids();
        let mut th = Throttle::new(10, 2, Duration::from_secs(60));
        assert!(th.acquire("a", x, t(0)));
        th.release("a");
        assert!(th.acquire("a", x, t(10)));
        th.release("a");
        assert!(!th.acquire("a", x, t(20)));
        assert_eq!(th.poll_timeout(), Some(t(60_000)));
        assert_eq!(th.peek_ready("a", t(59_999)), None);
        assert_eq!(th.peek_ready("a", t(60_000)), Some(x));
        // another domain is unaffected
        assert!(th.acquire("b", x, t(20)));
    }
}
