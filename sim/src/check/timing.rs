//! Time invariants, checked after every step: deadlines (across restarts), liveness,
//! bounded memory, and the backoff reset on a new event.

use super::{BACKOFF, Checker, DEADLINES, LIVENESS, MEMORY};
use crate::oracle::Facts;
use crate::store::Store;
use grasp_core::nostr::prelude::EventId;
use grasp_core::{Engine, Origin, RepoId, Time};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

impl Checker {
    /// Checks the engine's observable state after a step at `now`.
    pub fn after_step(&mut self, now: Time, engine: &Engine, store: &Store) {
        self.check_touched(now, store);
        let view = engine.purgatory_view();
        let expiry = self.config.purgatory_expiry;
        let mut per_d: BTreeMap<&str, usize> = BTreeMap::new();
        for w in &view {
            *per_d.entry(w.d.as_str()).or_default() += 1;
            if w.kind == "announcement" {
                continue;
            }
            let Some(arrived) = self.waiting.get(&w.id).copied() else {
                continue;
            };
            let due = arrived.plus(expiry);
            if w.deadline != due {
                let detail = format!("{} {} expires at {}, due {due}", w.kind, w.id, w.deadline);
                self.fail(DEADLINES, now, detail);
            } else if now >= due && !engine.is_holding_expiry() {
                let detail = format!("{} {} still waits at {now}, due {due}", w.kind, w.id);
                self.fail(DEADLINES, now, detail);
            }
            if w.kind == "state" {
                self.check_liveness(now, w.id, arrived, store);
            }
        }
        let limits = self.config.limits.clone();
        let m = engine.metrics();
        let total = m.purgatory_announcements + m.purgatory_states + m.purgatory_prs;
        if total > limits.purgatory_total {
            self.fail(MEMORY, now, format!("{total} purgatory entries"));
        }
        if m.placeholders > limits.placeholders_total {
            self.fail(MEMORY, now, format!("{} placeholders", m.placeholders));
        }
        if let Some((d, n)) = per_d
            .iter()
            .find(|(_, n)| **n > limits.purgatory_per_identifier)
        {
            self.fail(MEMORY, now, format!("{n} purgatory entries for {d}"));
        }
        let busy: BTreeSet<String> = per_d
            .keys()
            .map(|d| (*d).to_owned())
            .chain(self.identifiers_in_flight().cloned())
            .collect();
        // An idle identifier may stay queued until its running attempt ends or its next
        // timer fires, which must be near.
        let soon = now.plus(
            self.config
                .client_delay
                .max(self.config.backoff_after(u32::MAX)),
        );
        let stale = (m.sync_queue > busy.len())
            .then(|| engine.sync_view())
            .into_iter()
            .flatten()
            .find(|s| !busy.contains(&s.d) && s.next_attempt.is_some_and(|t| t > soon));
        if let Some(s) = stale {
            let detail = format!(
                "idle {} stays queued (next attempt {:?})",
                s.d, s.next_attempt
            );
            self.fail(MEMORY, now, detail);
        }
        if m.sync_queue > self.stats.identifiers.max(busy.len()) {
            self.fail(MEMORY, now, format!("sync queue of {}", m.sync_queue));
        }
        if m.identifiers > self.stats.identifiers.max(busy.len()) {
            let detail = format!("{} interned identifiers", m.identifiers);
            self.fail(MEMORY, now, detail);
        }
        if m.domains.len() > self.world.domains.len() {
            self.fail(MEMORY, now, format!("{} throttle domains", m.domains.len()));
        }
        self.stats.max_purgatory = self.stats.max_purgatory.max(total);
    }

    /// After a new waiting state or pull request: its identifier's backoff is reset and
    /// the next attempt is due within the origin's delay.
    pub(super) fn check_backoff_reset(
        &mut self,
        now: Time,
        engine: &Engine,
        facts: Option<&Facts>,
        origin: Origin,
    ) {
        let Some(d) = facts.and_then(Facts::d) else {
            return;
        };
        let delay = match origin {
            Origin::Client => self.config.client_delay,
            Origin::Sync => self.config.sync_delay,
        };
        let view = engine.sync_view();
        let Some(s) = view.iter().find(|s| s.d == d) else {
            return self.fail(BACKOFF, now, format!("{d} has no sync entry"));
        };
        if s.attempts != 0 {
            let detail = format!("{d} kept {} attempts after a new event", s.attempts);
            return self.fail(BACKOFF, now, detail);
        }
        if let Some(next) = s.next_attempt.filter(|t| *t > now.plus(delay)) {
            let detail = format!("{d} next attempt at {next}, later than {now} + {delay:?}");
            self.fail(BACKOFF, now, detail);
        }
    }

    /// When every object a state needs is advertised by a healthy server its identifier
    /// lists, or `None` if that never happens.
    fn ready_at(&mut self, id: EventId, d: &str) -> Option<(Time, Duration)> {
        if let Some(r) = self.ready.get(&id) {
            return *r;
        }
        let r = self
            .compute_ready(id)
            .map(|t| (t, self.liveness_bound(id, d)));
        self.ready.insert(id, r);
        r
    }

    fn compute_ready(&self, id: EventId) -> Option<Time> {
        let Some(Facts::State { d, refs }) = self.fed.get(&id)?.facts.as_ref() else {
            return None;
        };
        let urls = self.authority.clone_urls(d);
        let mut ready = Time::ZERO;
        for oid in refs.values() {
            let best = urls
                .iter()
                .filter_map(|u| self.world.repo(u))
                .filter(|(srv, repo)| {
                    srv.faults.is_healthy() && repo.is_some_and(|r| r.lies.is_empty())
                })
                .filter_map(|(_, repo)| repo?.advertised_from(oid))
                .min()?;
            ready = ready.max(best);
        }
        Some(ready)
    }

    /// How long after its data is ready an attempt may still take for state `id` of
    /// identifier `d`: the longest backoff, then — twice, for the round running when the
    /// data appeared and the next — every URL of a domain that holds the data on a healthy
    /// server, in turn (a flaky one listed on the same domain may hang until the timeout;
    /// one on another domain delays nothing: the next attempt is scheduled from the
    /// servers that answered), plus the throttle's queue under everyone's load. Per
    /// object the best such domain counts, and the slowest object decides.
    fn liveness_bound(&self, id: EventId, d: &str) -> Duration {
        let cost = |url: &str| -> u64 {
            self.world.repo(url).map_or(100, |(srv, _)| {
                let rtt = 2 * srv.latency_ms.1;
                let hang = if srv.faults.is_healthy() { 0 } else { 120_000 };
                2 * (rtt + hang)
            })
        };
        let urls = self.authority.clone_urls(d);
        let mut per_domain: BTreeMap<String, u64> = BTreeMap::new();
        for u in &urls {
            if let Some((srv, _)) = self.world.repo(u) {
                *per_domain.entry(srv.domain.clone()).or_default() += cost(u);
            }
        }
        let refs = match self.fed.get(&id).and_then(|f| f.facts.as_ref()) {
            Some(Facts::State { refs, .. }) => refs.values().copied().collect(),
            _ => Vec::new(),
        };
        let sequential = refs
            .iter()
            .filter_map(|oid| {
                urls.iter()
                    .filter_map(|u| self.world.repo(u))
                    .filter(|(srv, repo)| {
                        srv.faults.is_healthy()
                            && repo.is_some_and(|r| {
                                r.lies.is_empty() && r.advertised_from(oid).is_some()
                            })
                    })
                    .filter_map(|(srv, _)| per_domain.get(&srv.domain).copied())
                    .min()
            })
            .max()
            .unwrap_or(0);
        let load = self.stats.identifiers.max(1) as u64;
        let queue = 60_000 * (2 * load * 3).div_ceil(u64::from(self.config.domain_rate));
        let backoff = self.config.backoff_after(u32::MAX).as_millis() as u64;
        Duration::from_millis(backoff + sequential * 2 + queue + 10_000)
    }

    fn check_liveness(&mut self, now: Time, id: EventId, arrived: Time, store: &Store) {
        let Some(fed) = self.fed.get(&id) else {
            return;
        };
        let Some(Facts::State { d, .. }) = &fed.facts else {
            return;
        };
        let (d, author, origin) = (d.clone(), fed.event.pubkey, fed.origin);
        let newest = self.newest_state.get(&(author, d.clone())).map(|k| k.1);
        if newest != Some(id) || self.deleted.contains(&id) {
            return;
        }
        let Some((ready, bound)) = self.ready_at(id, &d) else {
            return;
        };
        let start = ready.max(arrived.plus(match origin {
            Origin::Client => self.config.client_delay,
            Origin::Sync => self.config.sync_delay,
        }));
        let due = start.max(self.up_since).plus(bound);
        if due >= arrived.plus(self.config.purgatory_expiry) || now <= due {
            return;
        }
        let owners = self.authority.owners_for(&author, &d);
        let live = owners
            .iter()
            .any(|o| store.repos.contains_key(&RepoId::new(*o, d.as_str())));
        if live {
            let detail =
                format!("state {id} of {d}: data ready at {ready}, still waiting at {now}");
            self.fail(LIVENESS, now, detail);
        }
    }
}
