//! The sync queue's state: per identifier, its backoff, next attempt and the attempt in
//! progress (cursors per domain, URLs, outcomes), and the requests in flight. The logic
//! that drives it is in [`crate::sync`].

use crate::effect::RequestId;
use crate::ident::{Ident, IdentMap};
use crate::oid::Oid;
use crate::outcome::Outcome;
use crate::repo::RepoId;
use crate::throttle::DomainId;
use crate::time::Time;
use crate::timers::DeadlineHeap;
use smallvec::SmallVec;
use std::collections::{BTreeMap, VecDeque};

/// The sync state of one identifier: kept in one slot of a dense table, with as few heap
/// objects as it can (a sync result touches the states of two identifiers at random, and
/// at 100k waiting entries each heap object is a cache miss — docs/performance.md).
#[derive(Debug, Default)]
pub(crate) struct SyncEntry {
    /// Attempts since the last reset (a new event resets it).
    pub(crate) attempts: u32,
    /// When the next attempt starts (also indexed in [`SyncQueue`]'s deadline set).
    pub(crate) next_at: Option<Time>,
    /// Start of a relay-sync debounce window, while the first hunt is pending.
    pub(crate) debounce_from: Option<Time>,
    /// The attempt in progress.
    pub(crate) attempt: Option<Attempt>,
    /// A new event arrived during the attempt: the next one is due no later than this.
    pub(crate) kicked: Option<Time>,
    /// Every server of the running attempt that could answer has: only requests still
    /// in flight (a server that hangs) keep it open, and the next attempt is already
    /// scheduled by backoff from the servers that answered. When that time comes, the
    /// idle domains are asked again while the hung request keeps its slot.
    pub(crate) stragglers: bool,
    /// The clone URLs of the last attempt, each with its last outcome: the usable ones
    /// grouped by domain (domains by name, URLs as listed; cursors and requests name them
    /// by index), then the refused ones. Replaced when an attempt starts, outcomes of URLs
    /// still named carried over; a result writes its URL's outcome by index (a URL-keyed
    /// search per result compared cold strings).
    pub(crate) urls: Vec<KnownUrl>,
}

impl SyncEntry {
    /// The last outcome per URL, sorted by URL.
    pub(crate) fn last_outcomes(&self) -> Vec<(&str, Time, &Outcome)> {
        let mut out: Vec<(&str, Time, &Outcome)> = self
            .urls
            .iter()
            .filter_map(|u| u.last.as_ref().map(|(t, o)| (u.url.as_str(), *t, o)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(b.0));
        out
    }
}

/// A clone URL an identifier names, and what the last request to it came to.
#[derive(Debug)]
pub(crate) struct KnownUrl {
    pub(crate) url: String,
    pub(crate) last: Option<(Time, Outcome)>,
}

#[derive(Debug)]
pub(crate) struct Attempt {
    pub(crate) into: RepoId,
    /// One per domain, by domain name. Most identifiers name one other server: its cursor
    /// is kept inline, so a result reaches it without another cache miss.
    pub(crate) cursors: SmallVec<[Cursor; 1]>,
}

impl Attempt {
    pub(crate) fn cursor_mut(&mut self, domain: DomainId) -> Option<&mut Cursor> {
        self.cursors.iter_mut().find(|c| c.domain == domain)
    }
}

/// One domain's progress within an attempt: at most one request in flight.
#[derive(Debug)]
pub(crate) struct Cursor {
    pub(crate) domain: DomainId,
    /// The domain's URLs are `urls[start..end]` of the identifier.
    pub(crate) start: u32,
    /// The URLs still to ask for their refs: `urls[next..end]` of the identifier.
    pub(crate) next: u32,
    pub(crate) end: u32,
    pub(crate) in_flight: Option<RequestId>,
    /// Fetches to make next on this domain: what a listed server (by URL index)
    /// advertises, split in halves when a server refuses part of a multi-object fetch.
    pub(crate) fetch_next: VecDeque<(u32, Vec<Oid>)>,
}

impl Cursor {
    pub(crate) fn idle(&self) -> bool {
        self.in_flight.is_none() && self.next >= self.end && self.fetch_next.is_empty()
    }

    /// Nothing more can be asked on this domain until its request in flight answers.
    fn blocked(&self) -> bool {
        self.in_flight.is_some()
    }
}

impl Attempt {
    /// Whether every domain is idle or waiting on a request in flight, at least one idle:
    /// the servers that could answer have, and the rest hang.
    pub(crate) fn only_stragglers_left(&self) -> bool {
        self.cursors.iter().all(|c| c.idle() || c.blocked())
            && self.cursors.iter().any(Cursor::idle)
            && !self.cursors.iter().all(Cursor::idle)
    }
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
    pub(crate) domain: DomainId,
    /// Index of its URL in the identifier's list.
    pub(crate) url: u32,
    pub(crate) kind: RequestKind,
    /// For a fetch, the repository it fills: the attempt's target when it was sent (the
    /// target moves if that repository is deleted meanwhile).
    pub(crate) into: Option<RepoId>,
}

/// Every identifier's sync state and the requests in flight.
#[derive(Debug, Default)]
pub(crate) struct SyncQueue {
    pub(crate) entries: IdentMap<SyncEntry>,
    pub(crate) requests: BTreeMap<RequestId, RequestInfo>,
    /// Each identifier's next attempt (times kept in the entries). Apart from the engine's
    /// other timers so that this index holds only identifiers (not every purgatory entry);
    /// attempts due at the same time start after every other timer of that time, in
    /// handle order.
    pub(crate) due: DeadlineHeap<Ident>,
    /// Entries with a next attempt armed.
    pub(crate) armed: usize,
}

/// Whether the deadline `(at, d)` of the sync heap is still armed (the heap deletes
/// lazily, so `d` may be a handle freed since).
fn armed_at(entries: &IdentMap<SyncEntry>, at: Time, d: Ident) -> bool {
    entries
        .get_current(&d)
        .is_some_and(|e| e.next_at == Some(at))
}

impl SyncQueue {
    pub(crate) fn attempt_mut(&mut self, d: Ident) -> Option<&mut Attempt> {
        self.entries.get_mut(&d)?.attempt.as_mut()
    }

    pub(crate) fn cursor_mut(&mut self, d: Ident, domain: DomainId) -> Option<&mut Cursor> {
        self.attempt_mut(d)?.cursor_mut(domain)
    }

    /// Whether an attempt for `d` is running.
    pub(crate) fn in_attempt(&self, d: Ident) -> bool {
        self.entries.get(&d).is_some_and(|e| e.attempt.is_some())
    }

    /// Sets (or moves) the next attempt of `d`, whose entry exists.
    pub(crate) fn set_timer(&mut self, d: Ident, at: Time) {
        let Some(e) = self.entries.get_mut(&d) else {
            return;
        };
        match e.next_at.replace(at) {
            Some(old) if old == at => return,
            Some(_) => {}
            None => self.armed += 1,
        }
        let entries = &self.entries;
        self.due
            .push(at, d, self.armed, |t, k| armed_at(entries, t, k));
    }

    /// Moves the next attempt of `d` earlier only (or sets it if unset).
    pub(crate) fn set_timer_earlier(&mut self, d: Ident, at: Time) {
        let current = self.entries.get(&d).and_then(|e| e.next_at);
        if current.is_none_or(|c| at < c) {
            self.set_timer(d, at);
        }
    }

    pub(crate) fn cancel_timer(&mut self, d: Ident) {
        if self
            .entries
            .get_mut(&d)
            .and_then(|e| e.next_at.take())
            .is_some()
        {
            self.armed -= 1;
            let entries = &self.entries;
            self.due.settle(|t, k| armed_at(entries, t, k));
        }
    }

    /// The earliest next attempt.
    pub(crate) fn next_timer(&self) -> Option<Time> {
        self.due.next()
    }

    /// The identifier whose attempt is due at `now`, if any (its timer disarmed).
    pub(crate) fn pop_due(&mut self, now: Time) -> Option<Ident> {
        let d = self.due.pop_due(now)?;
        if let Some(e) = self.entries.get_mut(&d) {
            if e.next_at.take().is_some() {
                self.armed -= 1;
            }
        }
        let entries = &self.entries;
        self.due.settle(|t, k| armed_at(entries, t, k));
        Some(d)
    }
}
