//! Purgatory sync: per identifier, hunt for missing objects on the other servers its
//! announcements (and pull requests) name — debounced, backed off, throttled per domain,
//! asking each server only for what it advertises.

use crate::config::authority_of;
use crate::effect::{Effect, RequestId, ServePath};
use crate::engine::Engine;
use crate::event::Origin;
use crate::ident::{Ident, IdentMap};
use crate::input::{Failure, FailureKind};
use crate::needs::needs_in;
use crate::oid::Oid;
use crate::outcome::Outcome;
use crate::purgatory::Waiting;
use crate::repo::RepoId;
use crate::time::Time;
use crate::timers::Timers;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// The sync state of one identifier.
#[derive(Debug, Default)]
pub(crate) struct SyncEntry {
    /// Attempts since the last reset (a new event resets it).
    pub(crate) attempts: u32,
    /// Start of a relay-sync debounce window, while the first hunt is pending.
    debounce_from: Option<Time>,
    /// The attempt in progress.
    attempt: Option<Attempt>,
    /// A new event arrived during the attempt: the next one is due no later than this.
    kicked: Option<Time>,
    /// The last outcome per URL, for operators.
    pub(crate) outcomes: BTreeMap<String, (Time, Outcome)>,
}

#[derive(Debug)]
struct Attempt {
    into: RepoId,
    cursors: BTreeMap<String, Cursor>,
}

/// One domain's progress within an attempt: at most one request in flight.
#[derive(Debug, Default)]
struct Cursor {
    urls: VecDeque<String>,
    in_flight: Option<RequestId>,
    /// Fetches to make next on this domain: what a listed server advertises (split in
    /// halves when a server refuses part of a multi-object fetch).
    fetch_next: VecDeque<(String, Vec<Oid>)>,
}

#[derive(Debug, Clone)]
pub(crate) enum RequestKind {
    ListRefs,
    Fetch(Vec<Oid>),
}

/// A request in flight.
#[derive(Debug, Clone)]
pub(crate) struct RequestInfo {
    pub(crate) d: Ident,
    pub(crate) domain: String,
    pub(crate) url: String,
    pub(crate) kind: RequestKind,
}

/// Every identifier's sync state and the requests in flight.
#[derive(Debug, Default)]
pub(crate) struct SyncQueue {
    pub(crate) entries: IdentMap<SyncEntry>,
    pub(crate) requests: BTreeMap<RequestId, RequestInfo>,
    /// Each identifier's next attempt. Apart from the engine's other timers so that this
    /// index holds only identifiers (not every purgatory entry); attempts due at the same
    /// time start after every other timer of that time, in the order their identifiers
    /// were interned.
    pub(crate) timers: Timers<Ident>,
}

impl SyncQueue {
    fn cursor_mut(&mut self, d: Ident, domain: &str) -> Option<&mut Cursor> {
        self.entries
            .get_mut(&d)?
            .attempt
            .as_mut()?
            .cursors
            .get_mut(domain)
    }

    /// Whether an attempt for `d` is running.
    pub(crate) fn in_attempt(&self, d: Ident) -> bool {
        self.entries.get(&d).is_some_and(|e| e.attempt.is_some())
    }
}

/// Why a clone URL is never fetched from, or `None` if it may be.
pub fn url_refusal(url: &str, own_authority: &str) -> Option<String> {
    let Ok(u) = url::Url::parse(url) else {
        return Some("not a valid URL".into());
    };
    if !matches!(u.scheme(), "http" | "https") {
        return Some(format!(
            "scheme '{}' is not allowed (http and https only)",
            u.scheme()
        ));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Some("URLs with credentials are not fetched".into());
    }
    let Some(auth) = authority_of(&u) else {
        return Some("URL has no host".into());
    };
    if auth == own_authority {
        return Some("this server's own URL".into());
    }
    None
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
            return;
        }
        let key = d;
        let current = self.sync.timers.get(&key);
        match (origin, entry.debounce_from, current) {
            (Origin::Sync, Some(from), Some(_)) => {
                self.sync.timers.set(key, at.min(from.plus(max_debounce)));
            }
            _ => {
                if current.is_none_or(|c| at < c) && origin == Origin::Sync {
                    entry.debounce_from = Some(now);
                }
                self.sync.timers.set_earlier(key, at);
            }
        }
    }

    /// The sync timer of `d` fired: start an attempt over every usable clone URL.
    pub(crate) fn start_attempt(&mut self, d: Ident) {
        let satisfied = self.needs_of(d).is_empty();
        let into = self.repos.repos(self.idents.name(d)).into_iter().next();
        let (Some(into), false) = (into, satisfied) else {
            return self.finish_attempt(d, satisfied);
        };
        let urls = self.clone_urls(d);
        let entry = self.sync.entries.get_or_default(d);
        entry.debounce_from = None;
        let mut cursors: BTreeMap<String, Cursor> = BTreeMap::new();
        for (url, verdict) in urls {
            match verdict {
                Ok(domain) => cursors.entry(domain).or_default().urls.push_back(url),
                Err(why) => {
                    entry
                        .outcomes
                        .insert(url, (self.now, Outcome::Refused(why)));
                }
            }
        }
        self.counters.attempts += 1;
        entry.attempt = Some(Attempt { into, cursors });
        let domains: Vec<String> = entry
            .attempt
            .as_ref()
            .map(|a| a.cursors.keys().cloned().collect())
            .unwrap_or_default();
        for domain in &domains {
            self.advance(d, domain);
        }
        self.finish_if_done(d);
    }

    /// Clone URLs of `d`: its announcements' and its waiting pull requests', deduplicated,
    /// each with its domain or the reason it is refused.
    fn clone_urls(&self, d: Ident) -> Vec<(String, Result<String, String>)> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        let from_anns = self
            .repos
            .announcements(self.idents.name(d))
            .flat_map(|(_, a)| a.clone.iter().cloned());
        let from_prs: Vec<String> = self
            .purgatory
            .entries_of(Some(d))
            .filter_map(|e| match &e.what {
                Waiting::Pr { clone, .. } => Some(clone.clone()),
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
            let verdict = match url_refusal(&url, &self.authority) {
                None => Ok(url::Url::parse(&url)
                    .ok()
                    .and_then(|u| authority_of(&u))
                    .unwrap_or_default()),
                Some(why) => Err(why),
            };
            out.push((url, verdict));
        }
        out
    }

    /// Issues the next request of `d` on `domain` if it has one and the domain a slot;
    /// returns whether a request went out.
    fn advance(&mut self, d: Ident, domain: &str) -> bool {
        let now = self.now;
        let missing = needs_in(&self.purgatory, &self.repos, &self.idents, &self.present, d);
        let Some(cursor) = self.sync.cursor_mut(d, domain) else {
            return false;
        };
        if cursor.in_flight.is_some() {
            return false;
        }
        if missing.is_empty() {
            cursor.urls.clear();
            cursor.fetch_next.clear();
        }
        let mut next = None;
        while let Some((url, oids)) = cursor.fetch_next.pop_front() {
            let oids: Vec<Oid> = oids.into_iter().filter(|o| missing.contains(o)).collect();
            if !oids.is_empty() {
                next = Some((url, RequestKind::Fetch(oids)));
                break;
            }
        }
        let next = next.or_else(|| {
            cursor
                .urls
                .front()
                .cloned()
                .map(|u| (u, RequestKind::ListRefs))
        });
        let Some((url, kind)) = next else {
            self.throttle.forget(domain, d);
            return false;
        };
        if !self.throttle.acquire(domain, d, now) {
            // Keep the fetch for when our turn comes.
            if let (RequestKind::Fetch(oids), Some(c)) = (&kind, self.cursor_mut(d, domain)) {
                c.fetch_next.push_front((url, oids.clone()));
            }
            return false;
        }
        let request = self.next_request();
        let cursor = self
            .cursor_mut(d, domain)
            .expect("cursor exists: checked above");
        if matches!(kind, RequestKind::ListRefs) {
            cursor.urls.pop_front();
        }
        cursor.in_flight = Some(request);
        let info = RequestInfo {
            d,
            domain: domain.to_owned(),
            url: url.clone(),
            kind: kind.clone(),
        };
        self.sync.requests.insert(request, info);
        match kind {
            RequestKind::ListRefs => self.emit(Effect::ListRefs {
                request,
                url,
                domain: domain.to_owned(),
            }),
            RequestKind::Fetch(oids) => {
                // Only a fetch names the repository it fills.
                let into = self
                    .sync
                    .entries
                    .get(&d)
                    .and_then(|e| e.attempt.as_ref())
                    .map(|a| a.into.clone())
                    .expect("an attempt is running");
                self.emit(Effect::Fetch {
                    request,
                    url,
                    domain: domain.to_owned(),
                    into,
                    oids,
                })
            }
        }
        true
    }

    fn cursor_mut(&mut self, d: Ident, domain: &str) -> Option<&mut Cursor> {
        self.sync.cursor_mut(d, domain)
    }

    /// Gives free slots of `domain` to the identifiers queued on it, in turn.
    pub(crate) fn pump(&mut self, domain: &str) {
        let now = self.now;
        while let Some(d) = self.throttle.peek_ready(domain, now) {
            if !self.advance(d, domain) {
                self.throttle.forget(domain, d);
                self.finish_if_done(d);
            }
        }
    }

    /// Ends the attempt of `d` when no domain has work left.
    fn finish_if_done(&mut self, d: Ident) {
        let done = self
            .sync
            .entries
            .get(&d)
            .and_then(|e| e.attempt.as_ref())
            .is_some_and(|a| {
                a.cursors
                    .values()
                    .all(|c| c.in_flight.is_none() && c.urls.is_empty() && c.fetch_next.is_empty())
            });
        if done {
            let satisfied = self.needs_of(d).is_empty();
            self.finish_attempt(d, satisfied);
        }
    }

    /// Schedules the next attempt by backoff, or leaves the queue when nothing is needed.
    fn finish_attempt(&mut self, d: Ident, satisfied: bool) {
        let key = d;
        let Some(entry) = self.sync.entries.get_mut(&d) else {
            return;
        };
        entry.attempt = None;
        if satisfied {
            self.sync.entries.remove(&d);
            self.sync.timers.cancel(&key);
            self.free_ident_if_idle(d);
            return;
        }
        entry.attempts += 1;
        let mut at = self.now.plus(self.config.backoff_after(entry.attempts));
        if let Some(k) = entry.kicked.take() {
            at = at.min(k.max(self.now));
        }
        self.sync.timers.set(key, at);
    }

    /// Drops the sync entry of `d` if no event of it needs objects and no request is out.
    /// Frees the identifier's handle if nothing else holds it.
    pub(crate) fn settle_sync(&mut self, d: Ident) {
        if self.needs_of(d).is_empty() && !self.sync.in_attempt(d) {
            self.sync.entries.remove(&d);
            self.sync.timers.cancel(&d);
        }
        self.free_ident_if_idle(d);
    }

    fn complete_request(&mut self, request: RequestId, outcome: Outcome) -> Option<RequestInfo> {
        let info = self.sync.requests.remove(&request)?;
        self.throttle.release(&info.domain);
        let now = self.now;
        // One lookup of the identifier for both its outcome and its cursor.
        if let Some(e) = self.sync.entries.get_mut(&info.d) {
            match e.outcomes.get_mut(&info.url) {
                Some(slot) => *slot = (now, outcome),
                None => {
                    e.outcomes.insert(info.url.clone(), (now, outcome));
                }
            }
            let cursor = e
                .attempt
                .as_mut()
                .and_then(|a| a.cursors.get_mut(&info.domain));
            if let Some(c) = cursor.filter(|c| c.in_flight == Some(request)) {
                c.in_flight = None;
            }
        }
        Some(info)
    }

    fn after_request(&mut self, info: &RequestInfo) {
        self.advance(info.d, &info.domain);
        self.pump(&info.domain);
        self.finish_if_done(info.d);
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
            if let Some(c) = self.cursor_mut(info.d, &info.domain) {
                c.fetch_next.push_back((info.url.clone(), wanted));
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
        let into = match &info.kind {
            RequestKind::Fetch(_) => self
                .sync
                .entries
                .get(&info.d)
                .and_then(|e| e.attempt.as_ref())
                .map(|a| a.into.clone()),
            RequestKind::ListRefs => None,
        };
        if let Some(into) = into {
            self.note_present(info.d, present, &into);
            self.release_ready(info.d, ServePath::Sync);
        }
        self.after_request(&info);
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
        // A server that refuses part of a multi-object fetch may still serve the rest:
        // ask again for each half (a few extra requests, never one full fetch per id).
        if let (FailureKind::NotOurRef, RequestKind::Fetch(oids)) = (&kind, &info.kind) {
            if oids.len() > 1 {
                let (a, b) = oids.split_at(oids.len() / 2);
                if let Some(c) = self.cursor_mut(info.d, &info.domain) {
                    c.fetch_next.push_front((info.url.clone(), b.to_vec()));
                    c.fetch_next.push_front((info.url.clone(), a.to_vec()));
                }
            }
        }
        self.after_request(&info);
    }
}
