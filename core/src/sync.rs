//! Purgatory sync: per identifier, hunt for missing objects on the other servers its
//! announcements (and pull requests) name — debounced, backed off, throttled per domain,
//! asking each server only for what it advertises.

use crate::clone_url::CloneUrl;
use crate::effect::{Effect, RequestId, ServePath};
use crate::engine::Engine;
use crate::event::Origin;
use crate::ident::Ident;
use crate::input::{Failure, FailureKind};
use crate::needs::needs_in;
use crate::oid::Oid;
use crate::outcome::Outcome;
use crate::purgatory::Waiting;
use crate::repo::RepoId;
use crate::sync_queue::{Attempt, Cursor, KnownUrl, RequestInfo, RequestKind};
use crate::throttle::DomainId;
use crate::time::Time;
use smallvec::SmallVec;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Why a clone URL is never fetched from, or `None` if it may be.
pub fn url_refusal(url: &str, own_authority: &str) -> Option<String> {
    fetch_domain(url, own_authority).err()
}

/// The domain (throttle key) a clone URL is fetched under, or why it is never fetched
/// from: one parse ([`CloneUrl`]) for both, the same one the driver's guard makes.
fn fetch_domain(url: &str, own_authority: &str) -> Result<String, String> {
    let auth = CloneUrl::parse(url)?.authority();
    if auth == own_authority {
        return Err("this server's own URL".into());
    }
    Ok(auth)
}

impl Engine {
    /// A new waiting event for `d`: resets the backoff and brings the next attempt no later
    /// than its delay (3 min from a client, 500 ms from relay sync — a burst of relay-sync
    /// events is debounced to 500 ms after the last, for at most `sync_debounce_max`).
    pub(crate) fn schedule_sync(&mut self, d: Ident, origin: Origin) {
        let now = self.now;
        let delay = match origin {
            Origin::Client => self.config.client_delay,
            Origin::Sync => self.config.sync_delay,
        };
        let at = now.plus(delay);
        let max_debounce = self.config.sync_debounce_max;
        let entry = self.sync.entries.get_or_default(d);
        entry.attempts = 0;
        if entry.attempt.is_some() {
            entry.kicked = Some(entry.kicked.map_or(at, |k| k.min(at)));
            if entry.stragglers {
                // The next round is already scheduled: bring it forward.
                self.sync.set_timer_earlier(d, at);
            }
            return;
        }
        let current = entry.next_at;
        match (origin, entry.debounce_from, current) {
            (Origin::Sync, Some(from), Some(_)) => {
                self.sync.set_timer(d, at.min(from.plus(max_debounce)));
            }
            _ => {
                if current.is_none_or(|c| at < c) && origin == Origin::Sync {
                    entry.debounce_from = Some(now);
                }
                self.sync.set_timer_earlier(d, at);
            }
        }
    }

    /// The sync timer of `d` fired: start an attempt over every usable clone URL (or,
    /// while a hung request keeps the last one open, a new round of it).
    pub(crate) fn start_attempt(&mut self, d: Ident) {
        if self.sync.in_attempt(d) {
            return self.start_round(d);
        }
        let satisfied = self.needs_of(d).is_empty();
        let into = self.repos.repos(self.idents.name(d)).into_iter().next();
        let (Some(into), false) = (into, satisfied) else {
            return self.finish_attempt(d, satisfied);
        };
        let urls = self.clone_urls(d);
        let mut usable: Vec<(String, String)> = Vec::with_capacity(urls.len());
        let mut refused = Vec::new();
        for (url, verdict) in urls {
            match verdict {
                Ok(domain) => usable.push((domain, url)),
                Err(why) => refused.push((url, why)),
            }
        }
        // Grouped by domain, domains by name, each domain's URLs in the order listed.
        usable.sort_by(|a, b| a.0.cmp(&b.0));
        let now = self.now;
        let entry = self.sync.entries.get_or_default(d);
        entry.debounce_from = None;
        // Outcomes of URLs still named carry over; those of URLs no longer named go.
        let mut before: BTreeMap<String, Option<(Time, Outcome)>> = std::mem::take(&mut entry.urls)
            .into_iter()
            .map(|u| (u.url, u.last))
            .collect();
        let mut urls = Vec::with_capacity(usable.len() + refused.len());
        let mut cursors: SmallVec<[Cursor; 1]> = SmallVec::new();
        for (domain, url) in usable {
            let i = u32::try_from(urls.len()).expect("URLs per identifier are capped");
            match cursors.last_mut() {
                Some(c) if self.throttle.name(c.domain) == domain => c.end = i + 1,
                _ => cursors.push(Cursor {
                    domain: self.throttle.hold(&domain),
                    start: i,
                    next: i,
                    end: i + 1,
                    in_flight: None,
                    fetch_next: VecDeque::new(),
                }),
            }
            let last = before.remove(&url).flatten();
            urls.push(KnownUrl { url, last });
        }
        for (url, why) in refused {
            let last = Some((now, Outcome::Refused(why)));
            urls.push(KnownUrl { url, last });
        }
        let domains: Vec<DomainId> = cursors.iter().map(|c| c.domain).collect();
        let entry = self.sync.entries.get_or_default(d);
        entry.urls = urls;
        entry.attempt = Some(Attempt { into, cursors });
        self.counters.attempts += 1;
        for domain in domains {
            self.advance(d, domain);
        }
        self.finish_if_done(d);
    }

    /// Clone URLs of `d`: its announcements' and its waiting pull requests', deduplicated,
    /// each with its domain or the reason it is refused.
    fn clone_urls(&self, d: Ident) -> Vec<(String, Result<String, String>)> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        let name = self.idents.name(d);
        // A maintainer's own (non-hosting) announcement names clone servers only once
        // its author is confirmed for a repository hosted here.
        let from_anns = self
            .repos
            .announcements(name)
            .filter(|(author, a)| a.hosted || self.repos.confirmed_for_hosted(author, name))
            .flat_map(|(_, a)| a.clone.iter().cloned());
        let from_prs: Vec<String> = self
            .purgatory
            .entries_of(Some(d))
            .filter_map(|e| match &e.what {
                Waiting::Pr { clone, .. } => Some(clone.iter().map(|u| u.to_string())),
                _ => None,
            })
            .flatten()
            .collect();
        for url in from_anns.chain(from_prs) {
            if out.len() >= self.config.limits.urls_per_identifier {
                break;
            }
            if !seen.insert(url.clone()) {
                continue;
            }
            let verdict = fetch_domain(&url, &self.authority);
            out.push((url, verdict));
        }
        out
    }

    /// Issues the next request of `d` on `domain` if it has one and the domain a slot;
    /// returns whether a request went out.
    fn advance(&mut self, d: Ident, domain: DomainId) -> bool {
        let now = self.now;
        let missing = needs_in(&self.purgatory, &self.repos, &self.idents, &self.present, d);
        let elsewhere = self.fetching_elsewhere(d, domain);
        let Some(cursor) = self.sync.cursor_mut(d, domain) else {
            return false;
        };
        if cursor.in_flight.is_some() {
            return false;
        }
        if missing.is_empty() {
            cursor.next = cursor.end;
            cursor.fetch_next.clear();
        }
        let mut next = None;
        // Objects another domain's fetch is bringing are not asked for twice: they wait
        // here until that fetch ends (and are asked for if it failed).
        let mut deferred = Vec::new();
        while let Some((url, oids)) = cursor.fetch_next.pop_front() {
            let (later, now_): (Vec<Oid>, Vec<Oid>) = oids
                .into_iter()
                .filter(|o| missing.contains(o))
                .partition(|o| elsewhere.contains(o));
            if !later.is_empty() {
                deferred.push((url, later));
            }
            if !now_.is_empty() {
                next = Some((url, RequestKind::Fetch(now_)));
                break;
            }
        }
        for waiting in deferred.into_iter().rev() {
            cursor.fetch_next.push_front(waiting);
        }
        let next = next
            .or_else(|| (cursor.next < cursor.end).then_some((cursor.next, RequestKind::ListRefs)));
        let Some((url, kind)) = next else {
            self.throttle.forget(domain, d);
            return false;
        };
        if !self.throttle.acquire(domain, d, now) {
            // Keep the fetch for when our turn comes.
            if let RequestKind::Fetch(oids) = kind {
                cursor.fetch_next.push_front((url, oids));
            }
            return false;
        }
        if matches!(kind, RequestKind::ListRefs) {
            cursor.next += 1;
        }
        if let Some(record) = self.throttle.window_record(domain, now) {
            self.emit(Effect::Persist { record });
        }
        let request = self.next_request();
        let entry = self.sync.entries.get_mut(&d).expect("checked above");
        let attempt = entry
            .attempt
            .as_mut()
            .expect("an attempt is running: checked above");
        let cursor = attempt
            .cursor_mut(domain)
            .expect("cursor exists: checked above");
        cursor.in_flight = Some(request);
        let url_text = entry.urls[url as usize].url.clone();
        let into = matches!(kind, RequestKind::Fetch(_)).then(|| attempt.into.clone());
        let info = RequestInfo {
            d,
            domain,
            url,
            kind: kind.clone(),
            into: into.clone(),
        };
        self.sync.requests.insert(request, info);
        let domain = self.throttle.name(domain).to_owned();
        match (kind, into) {
            (RequestKind::Fetch(oids), Some(into)) => self.emit(Effect::Fetch {
                request,
                url: url_text,
                domain,
                into,
                oids,
            }),
            // Only a fetch names the repository it fills.
            _ => self.emit(Effect::ListRefs {
                request,
                url: url_text,
                domain,
            }),
        }
        true
    }

    /// Gives free slots of `domain` to the identifiers queued on it, in turn.
    pub(crate) fn pump(&mut self, domain: DomainId) {
        let now = self.now;
        while let Some(d) = self.throttle.peek_ready(domain, now) {
            if !self.advance(d, domain) {
                self.throttle.forget(domain, d);
                self.finish_if_done(d);
            }
        }
    }

    /// Ends the attempt of `d` when no domain has work left; when only requests to
    /// servers that hang are left, schedules the next attempt from the servers that
    /// answered (the hung requests keep their slots until their timeout, and their
    /// results are still used).
    fn finish_if_done(&mut self, d: Ident) {
        let Some(entry) = self.sync.entries.get(&d) else {
            return;
        };
        let Some(attempt) = entry.attempt.as_ref() else {
            return;
        };
        if attempt.cursors.iter().all(Cursor::idle) {
            let satisfied = self.needs_of(d).is_empty();
            return self.finish_attempt(d, satisfied);
        }
        if entry.stragglers || !attempt.only_stragglers_left() {
            return;
        }
        if self.needs_of(d).is_empty() {
            return; // the hung requests end it; nothing is left to hunt for
        }
        let entry = self.sync.entries.get_mut(&d).expect("checked above");
        entry.stragglers = true;
        entry.attempts += 1;
        let mut at = self.now.plus(self.config.backoff_after(entry.attempts));
        if let Some(k) = entry.kicked.take() {
            at = at.min(k.max(self.now));
        }
        self.sync.set_timer(d, at);
    }

    /// The next attempt of `d` is due while a hung request keeps the last one open: ask
    /// every idle domain again from its first URL; the hung domain goes on as it is.
    fn start_round(&mut self, d: Ident) {
        let Some(attempt) = self.sync.attempt_mut(d) else {
            return;
        };
        let mut idle = Vec::new();
        for c in attempt.cursors.iter_mut().filter(|c| c.idle()) {
            c.next = c.start;
            idle.push(c.domain);
        }
        if let Some(e) = self.sync.entries.get_mut(&d) {
            e.stragglers = false;
        }
        self.counters.attempts += 1;
        for domain in idle {
            self.advance(d, domain);
        }
        self.finish_if_done(d);
    }

    /// Schedules the next attempt by backoff, or leaves the queue when nothing is needed.
    fn finish_attempt(&mut self, d: Ident, satisfied: bool) {
        let Some(entry) = self.sync.entries.get_mut(&d) else {
            return;
        };
        if let Some(attempt) = entry.attempt.take() {
            for cursor in attempt.cursors {
                self.throttle.unhold(cursor.domain);
            }
        }
        if std::mem::take(&mut entry.stragglers) {
            // The next attempt was scheduled when only the hung requests were left.
            if satisfied {
                self.sync.cancel_timer(d);
                self.sync.entries.remove(&d);
                self.free_ident_if_idle(d);
            }
            return;
        }
        if satisfied {
            self.sync.cancel_timer(d);
            self.sync.entries.remove(&d);
            self.free_ident_if_idle(d);
            return;
        }
        entry.attempts += 1;
        let mut at = self.now.plus(self.config.backoff_after(entry.attempts));
        if let Some(k) = entry.kicked.take() {
            at = at.min(k.max(self.now));
        }
        self.sync.set_timer(d, at);
    }

    /// Drops the sync entry of `d` if no event of it needs objects and no request is out.
    /// Frees the identifier's handle if nothing else holds it.
    pub(crate) fn settle_sync(&mut self, d: Ident) {
        if self.needs_of(d).is_empty() && !self.sync.in_attempt(d) {
            self.sync.cancel_timer(d);
            self.sync.entries.remove(&d);
        }
        self.free_ident_if_idle(d);
    }

    fn complete_request(&mut self, request: RequestId, outcome: Outcome) -> Option<RequestInfo> {
        let info = self.sync.requests.remove(&request)?;
        self.throttle.release(info.domain);
        let now = self.now;
        // One lookup of the identifier for both its cursor and its outcome.
        if let Some(e) = self.sync.entries.get_mut(&info.d) {
            let attempt = e.attempt.as_mut();
            if let Some(a) = attempt {
                if let Some(c) = a
                    .cursor_mut(info.domain)
                    .filter(|c| c.in_flight == Some(request))
                {
                    c.in_flight = None;
                    if let Some(u) = e.urls.get_mut(info.url as usize) {
                        u.last = Some((now, outcome));
                    }
                }
            }
        }
        Some(info)
    }

    fn after_request(&mut self, info: &RequestInfo) {
        self.advance(info.d, info.domain);
        self.pump(info.domain);
        if self.throttle.take_global_freed() {
            // Every global slot was taken: identifiers queued on other domains for one may
            // go now, the domains in turn, until the slots are taken again.
            let mut tries = self.throttle.queued_domains_len();
            while tries > 0 && self.throttle.has_global_slot() {
                let Some(domain) = self.throttle.next_queued_for_global() else {
                    break;
                };
                self.pump(domain);
                tries -= 1;
            }
        }
        if matches!(info.kind, RequestKind::Fetch(_)) {
            // Fetches other domains deferred for this one's objects may go now.
            let others: Vec<DomainId> = self
                .sync
                .attempt_mut(info.d)
                .map(|a| {
                    a.cursors
                        .iter()
                        .filter(|c| c.domain != info.domain && c.in_flight.is_none())
                        .filter(|c| !c.fetch_next.is_empty())
                        .map(|c| c.domain)
                        .collect()
                })
                .unwrap_or_default();
            for domain in others {
                self.advance(info.d, domain);
            }
        }
        self.finish_if_done(info.d);
    }

    /// Objects of `d` that fetches in flight on domains other than `domain` are bringing.
    fn fetching_elsewhere(&self, d: Ident, domain: DomainId) -> BTreeSet<Oid> {
        let Some(attempt) = self.sync.entries.get(&d).and_then(|e| e.attempt.as_ref()) else {
            return BTreeSet::new();
        };
        attempt
            .cursors
            .iter()
            .filter(|c| c.domain != domain)
            .filter_map(|c| c.in_flight)
            .filter_map(|r| self.sync.requests.get(&r))
            .filter_map(|info| match &info.kind {
                RequestKind::Fetch(oids) => Some(oids.iter().copied()),
                RequestKind::ListRefs => None,
            })
            .flatten()
            .collect()
    }

    pub(crate) fn on_refs_listed(&mut self, request: RequestId, refs: Vec<(String, Oid)>) {
        let Some(info) = self.complete_request(request, Outcome::Advertised(refs.len())) else {
            return;
        };
        let missing = self.needs_of(info.d);
        let mut wanted: Vec<Oid> = refs
            .iter()
            .map(|(_, o)| *o)
            .filter(|o| missing.contains(o))
            .collect();
        wanted.sort();
        wanted.dedup();
        if !wanted.is_empty() {
            if let Some(c) = self.sync.cursor_mut(info.d, info.domain) {
                c.fetch_next.push_back((info.url, wanted));
            }
        }
        self.after_request(&info);
    }

    pub(crate) fn on_fetched(&mut self, request: RequestId, present: Vec<Oid>, bytes: u64) {
        let outcome = Outcome::Fetched(present.len(), bytes);
        let Some(info) = self.complete_request(request, outcome) else {
            return;
        };
        self.counters.objects_fetched += present.len() as u64;
        self.counters.bytes_fetched += bytes;
        if self.refetch_if_target_gone(&info) {
            return self.after_request(&info);
        }
        if let Some(into) = &info.into {
            self.note_present(info.d, present, into);
            self.release_ready(info.d, ServePath::Sync);
        }
        self.after_request(&info);
    }

    /// A fetch whose target repository was deleted while it ran (its announcement
    /// soft-expired): whatever it brought went with the repository, and its failure is
    /// ours, not the server's. It is asked again, into the attempt's new target, in this
    /// attempt — a backoff step for it would leave data that is ready waiting for minutes.
    /// Returns whether it was requeued.
    fn refetch_if_target_gone(&mut self, info: &RequestInfo) -> bool {
        let (RequestKind::Fetch(oids), Some(sent_into)) = (&info.kind, &info.into) else {
            return false;
        };
        let Some(attempt) = self.sync.attempt_mut(info.d) else {
            return false;
        };
        if attempt.into == *sent_into {
            return false;
        }
        let Some(cursor) = attempt.cursor_mut(info.domain) else {
            return false;
        };
        cursor.fetch_next.push_front((info.url, oids.clone()));
        true
    }

    /// Repository `gone` is being deleted: a running attempt of its identifier that fills
    /// it moves to another live repository of the identifier (if none is left, fetches
    /// have nowhere to go and the attempt ends as its requests fail).
    pub(crate) fn retarget_attempt(&mut self, d: Ident, gone: &RepoId) {
        if self.sync.attempt_mut(d).is_none_or(|a| a.into != *gone) {
            return;
        }
        let next = self
            .repos
            .repos(self.idents.name(d))
            .into_iter()
            .find(|r| r != gone);
        if let (Some(next), Some(a)) = (next, self.sync.attempt_mut(d)) {
            a.into = next;
        }
    }

    pub(crate) fn on_request_failed(&mut self, request: RequestId, failure: Failure) {
        let Failure { kind, detail } = failure;
        let outcome = Outcome::Failed(kind.clone(), detail);
        let Some(info) = self.complete_request(request, outcome) else {
            return;
        };
        *self.counters.failures.entry(kind.clone()).or_default() += 1;
        if kind == FailureKind::RateLimited {
            self.counters.remote_rate_limited += 1;
        }
        if self.refetch_if_target_gone(&info) {
            return self.after_request(&info);
        }
        // A server that refuses part of a multi-object fetch may still serve the rest:
        // ask again for each half (a few extra requests, never one full fetch per id).
        if let (FailureKind::NotOurRef, RequestKind::Fetch(oids)) = (&kind, &info.kind) {
            if oids.len() > 1 {
                let (a, b) = oids.split_at(oids.len() / 2);
                if let Some(c) = self.sync.cursor_mut(info.d, info.domain) {
                    c.fetch_next.push_front((info.url, b.to_vec()));
                    c.fetch_next.push_front((info.url, a.to_vec()));
                }
            }
        }
        self.after_request(&info);
    }
}
