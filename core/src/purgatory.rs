//! Purgatory: accepted events waiting for their git data, placeholders for git-first pull
//! requests, and the memory of what expired.

use crate::effect::ReplyToken;
use crate::event::{Origin, StateRefs};
use crate::id_key::IdKey;
use crate::ident::{Ident, IdentMap};
use crate::journal::JournalRecord;
use crate::keyed::{Keyed, KeyedMap};
use crate::needs::NeedIndex;
use crate::oid::Oid;
use crate::packed::PackedEvent;
use crate::small_map::SmallMap;
use crate::time::Time;
use crate::timers::DeadlineSet;
use nostr::prelude::{Coordinate, EventId, PublicKey};
use std::collections::{BTreeMap, BTreeSet};

/// What an entry waits for.
#[derive(Clone, Debug)]
pub(crate) enum Waiting {
    /// A new announcement: waits for a state's data in its repository.
    Announcement,
    /// A state: waits for every object its refs name.
    State(StateRefs),
    /// A pull request or update: waits for its tip commit.
    Pr {
        /// Boxed: inline it would make every entry (mostly states) 48 bytes larger.
        pr: Box<PrTarget>,
        /// Never grown: a boxed slice of boxed strings, no capacity words.
        clone: Box<[Box<str>]>,
    },
}

/// What a waiting pull request names: its tip commit and the repositories it targets.
#[derive(Clone, Debug)]
pub(crate) struct PrTarget {
    pub(crate) tip: Result<Oid, Box<str>>,
    pub(crate) repos: Box<[Coordinate]>,
}

impl Waiting {
    /// How a parsed pull request waits: exact-size slices, kept for as long as it waits
    /// (collected from filters, its vectors had room for four: 256 bytes of coordinates
    /// for the usual one target; found with dhat, 10k waiting PRs).
    pub(crate) fn pull_request(pr: crate::event::PullRequest) -> Waiting {
        Waiting::Pr {
            pr: Box::new(PrTarget {
                tip: pr.tip.map_err(String::into_boxed_str),
                repos: pr.repos.into_boxed_slice(),
            }),
            clone: pr.clone.into_iter().map(String::into_boxed_str).collect(),
        }
    }
}

/// One waiting event.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) event: PackedEvent,
    /// The identifier it belongs to (its own `d`, or the repository's for a PR).
    pub(crate) ident: Ident,
    pub(crate) what: Waiting,
    pub(crate) origin: Origin,
    pub(crate) arrived: Time,
    pub(crate) deadline: Time,
    /// Written to the journal (acknowledged).
    pub(crate) persisted: bool,
    /// A verdict not sent yet, or the time a soft-expired announcement is forgotten.
    pub(crate) pending: Pending,
}

/// What an entry holds beyond its wait, if anything. Never both a verdict and a time to
/// forget: only states and pull requests wait for a verdict (from when they arrive until
/// an object check answers), only announcements soft-expire, and restored entries have
/// no verdict to send. So one field rather than two options, 16 bytes less per entry.
#[derive(Clone, Debug)]
pub(crate) enum Pending {
    /// Neither.
    Nothing,
    /// The verdict is not sent yet: it waits for an object check. The event is kept
    /// parsed until then, so that journalling it does not parse its JSON back (a third
    /// of a state verdict's cost at 100k entries).
    Reply(ReplyToken, Box<nostr::prelude::Event>),
    /// Soft-expired announcement: forgotten at this time.
    ForgetAt(Time),
}

impl Pending {
    /// A time to forget a (restored) soft-expired announcement, or nothing.
    pub(crate) fn forget_at(at: Option<Time>) -> Self {
        at.map_or(Pending::Nothing, Pending::ForgetAt)
    }
}

impl Entry {
    /// When a soft-expired announcement is forgotten.
    pub(crate) fn forget_at(&self) -> Option<Time> {
        match &self.pending {
            Pending::ForgetAt(t) => Some(*t),
            _ => None,
        }
    }

    /// The verdict that waits for an object check, if any.
    pub(crate) fn reply(&self) -> Option<ReplyToken> {
        match &self.pending {
            Pending::Reply(token, _) => Some(*token),
            _ => None,
        }
    }

    /// Takes the waiting verdict (it is being sent) with the parsed event.
    pub(crate) fn take_reply(&mut self) -> Option<(ReplyToken, Box<nostr::prelude::Event>)> {
        match std::mem::replace(&mut self.pending, Pending::Nothing) {
            Pending::Reply(token, event) => Some((token, event)),
            other => {
                self.pending = other;
                None
            }
        }
    }

    /// When the entry's expiry timer fires: its deadline, or for a soft-expired
    /// announcement the time it is forgotten.
    pub(crate) fn expires_at(&self) -> Time {
        self.forget_at().unwrap_or(self.deadline)
    }

    pub(crate) fn record(&self) -> JournalRecord {
        self.record_of(Box::new(self.event.unpack()))
    }

    /// [`Entry::record`] with the event already parsed.
    pub(crate) fn record_of(&self, event: Box<nostr::prelude::Event>) -> JournalRecord {
        JournalRecord::Waiting {
            event,
            origin: self.origin,
            arrived: self.arrived,
            deadline: self.deadline,
            forget_at: self.forget_at(),
        }
    }

    /// Object ids whose presence would satisfy this entry (empty for an announcement, whose
    /// needs are its authoritative state's; `None` when it can never be satisfied).
    pub(crate) fn own_needs(&self) -> Option<Vec<Oid>> {
        match &self.what {
            Waiting::Announcement => Some(Vec::new()),
            Waiting::State(s) if s.malformed => None,
            Waiting::State(s) => Some(s.oids()),
            Waiting::Pr { pr, .. } => pr.tip.as_ref().ok().map(|oid| vec![*oid]),
        }
    }

    /// The coordinate of an addressable entry (announcement, state), whose identifier is
    /// `d`, the event's own: so the event need not be unpacked.
    pub(crate) fn own_coordinate(&self, d: &str) -> Option<Coordinate> {
        let e = &self.event;
        e.kind
            .is_addressable()
            .then(|| Coordinate::new(e.kind, e.pubkey).identifier(d))
    }

    pub(crate) fn kind_label(&self) -> &'static str {
        match self.what {
            Waiting::Announcement => "announcement",
            Waiting::State(_) => "state",
            Waiting::Pr { .. } => "pull_request",
        }
    }
}

/// The per-author index key of an entry: announcements and states are one per
/// (identifier, author); pull requests are not indexed that way.
fn author_key(what: &Waiting) -> Option<bool> {
    match what {
        Waiting::Announcement => Some(false),
        Waiting::State(_) => Some(true),
        Waiting::Pr { .. } => None,
    }
}

/// The entries of one identifier: each is in `latest` or in `others`, not both (a set of
/// all its ids beside `latest` would cost ~37 bytes more per entry).
#[derive(Debug, Default)]
struct Group {
    /// The waiting announcement (`false`) or state (`true`) of each author: one per
    /// (identifier, author). Keyed inside the identifier's group, so a lookup allocates
    /// nothing and an entry does not carry its own copy of the identifier.
    /// A `SmallMap`: a `BTreeMap` node for the usual one or two was 731 bytes.
    latest: SmallMap<(PublicKey, bool), EventId>,
    /// Pull requests, and any announcement or state displaced from `latest` by a later
    /// one of the same author while it still waits (on restore, say).
    others: BTreeSet<IdKey>,
}

impl Group {
    fn len(&self) -> usize {
        self.latest.len() + self.others.len()
    }
}

/// One author's share of purgatory: events counted toward the per-author cap, and the
/// bytes of all its waiting events.
#[derive(Debug, Default, Clone, Copy)]
struct AuthorLoad {
    entries: usize,
    bytes: usize,
}

/// The purgatory store.
#[derive(Debug)]
pub(crate) struct Purgatory {
    /// Boxed: a B-tree node has room for eleven and is often half full, so inline entries
    /// would leave ~6 empty entry-sized slots per node; boxed they are one exact allocation.
    entries: BTreeMap<IdKey, Box<Entry>>,
    /// Every entry's expiry timer, earliest first ([`Entry::expires_at`]). Kept here, beside
    /// the entry that holds its time, rather than in the engine's two-map `Timers`: one
    /// 40-byte key per entry instead of two 48-byte ones.
    expiry: DeadlineSet<IdKey>,
    by_d: IdentMap<Group>,
    /// Entries per author, for the cap: hashed (authors are chosen by senders; keyed), as
    /// a B-tree of 32-byte keys cost a `memcmp` call per level on every entry and removal.
    per_author: KeyedMap<PublicKey, AuthorLoad>,
    /// Bytes of every waiting event's JSON.
    bytes: usize,
    pub(crate) placeholders: crate::placeholders::Placeholders,
    pub(crate) expired: crate::expired::ExpiredMemory,
    /// What the entries of each identifier need.
    pub(crate) needs: NeedIndex,
    /// The fresh object checks that come before expiry.
    pub(crate) final_check: crate::final_check::FinalCheck,
    /// Pull requests accepted by GRASP-06's relaxation (their `clone` names our `/prs/`
    /// URL, nothing they tag is here), by signer: capped per signer.
    pub(crate) relaxed: BTreeSet<(PublicKey, EventId)>,
    /// Records of superseded events kept until their successor's verdict settles.
    pub(crate) superseded: crate::superseded::SupersededRecords,
}

impl Purgatory {
    /// An empty purgatory hashing authors with `keys`.
    pub(crate) fn new(keys: Keyed) -> Self {
        Purgatory {
            entries: BTreeMap::new(),
            expiry: DeadlineSet::default(),
            by_d: IdentMap::default(),
            per_author: keys.map(),
            bytes: 0,
            placeholders: crate::placeholders::Placeholders::default(),
            expired: crate::expired::ExpiredMemory::default(),
            needs: NeedIndex::default(),
            final_check: crate::final_check::FinalCheck::default(),
            relaxed: BTreeSet::new(),
            superseded: Default::default(),
        }
    }

    pub(crate) fn get(&self, id: &EventId) -> Option<&Entry> {
        self.entries.get(&IdKey::from(id)).map(|e| &**e)
    }

    pub(crate) fn get_mut(&mut self, id: &EventId) -> Option<&mut Entry> {
        self.entries.get_mut(&IdKey::from(id)).map(|e| &mut **e)
    }

    pub(crate) fn contains(&self, id: &EventId) -> bool {
        self.entries.contains_key(&IdKey::from(id))
    }

    pub(crate) fn insert(&mut self, entry: Entry) {
        let id = entry.event.id;
        let key = IdKey::from(&id);
        if let Some(old) = self.entries.remove(&key) {
            self.unindex(&old);
        }
        let group = self.by_d.get_or_default(entry.ident);
        let displaced = match author_key(&entry.what) {
            Some(is_state) => group.latest.insert((entry.event.pubkey, is_state), id),
            None => Some(id),
        };
        if let Some(other) = displaced {
            group.others.insert(IdKey::from(&other));
        }
        let load = self.per_author.entry(entry.event.pubkey).or_default();
        let size = entry.event.json_len();
        // A waiting announcement is bounded by the repositories-per-author cap: counting it
        // here too made a new repository (announcement and state) cost two slots.
        load.entries += usize::from(!matches!(entry.what, Waiting::Announcement));
        load.bytes += size;
        self.bytes += size;
        self.needs.add(&entry);
        self.final_check.cover(entry.expires_at());
        self.expiry.insert(entry.expires_at(), key);
        self.entries.insert(key, Box::new(entry));
    }

    pub(crate) fn remove(&mut self, id: &EventId) -> Option<Entry> {
        let e = self.entries.remove(&IdKey::from(id))?;
        self.unindex(&e);
        self.relaxed.remove(&(e.event.pubkey, *id));
        Some(*e)
    }

    fn unindex(&mut self, e: &Entry) {
        self.needs.remove(e);
        // Absent when its timer was just popped ([`Purgatory::pop_expired`]).
        self.expiry.remove(e.expires_at(), IdKey::from(&e.event.id));
        if let Some(group) = self.by_d.get_mut(&e.ident) {
            if let Some(is_state) = author_key(&e.what) {
                let key = (e.event.pubkey, is_state);
                if group.latest.get(&key) == Some(&e.event.id) {
                    group.latest.remove(&key);
                }
            }
            group.others.remove(&IdKey::from(&e.event.id));
            if group.len() == 0 {
                self.by_d.remove(&e.ident);
            }
        }
        let size = e.event.json_len();
        self.bytes -= size;
        if let Some(load) = self.per_author.get_mut(&e.event.pubkey) {
            load.entries -= usize::from(!matches!(e.what, Waiting::Announcement));
            load.bytes -= size;
            if load.bytes == 0 {
                self.per_author.remove(&e.event.pubkey);
            }
        }
    }

    /// Moves the expiry of entry `id`: a new `deadline` (and `forget_at`, set when an
    /// announcement soft-expires, cleared when it is refreshed).
    pub(crate) fn set_expiry(&mut self, id: &EventId, deadline: Time, forget_at: Option<Time>) {
        let key = IdKey::from(id);
        let Some(e) = self.entries.get_mut(&key) else {
            return;
        };
        self.expiry.remove(e.expires_at(), key);
        e.deadline = deadline;
        match forget_at {
            Some(t) => {
                debug_assert!(e.reply().is_none(), "only announcements soft-expire");
                e.pending = Pending::ForgetAt(t);
            }
            None if e.forget_at().is_some() => e.pending = Pending::Nothing,
            None => {}
        }
        self.final_check.cover(e.expires_at());
        self.expiry.insert(e.expires_at(), key);
    }

    /// The earliest entry expiry; `None` while expiry is held for object checks (see
    /// [`crate::final_check`]).
    pub(crate) fn next_expiry(&self) -> Option<Time> {
        if self.final_check.is_holding() {
            return None;
        }
        self.expiry.next()
    }

    /// The entries expiring after `t`, earliest first.
    pub(crate) fn expiring_after(&self, t: Time) -> impl Iterator<Item = (Time, EventId)> + '_ {
        let from = Time::from_millis(t.as_millis().saturating_add(1));
        self.expiry
            .iter_from((from, IdKey::MIN))
            .map(|(t, k)| (*t, k.event_id()))
    }

    /// Removes and returns the entry whose expiry is earliest and due at `now`, if any
    /// (the entry stays: the caller expires it or sets its next expiry).
    pub(crate) fn pop_expired(&mut self, now: Time) -> Option<EventId> {
        if self.final_check.is_holding() {
            return None;
        }
        self.expiry.pop_due(now).map(|k| k.event_id())
    }

    /// The entries of `d`: announcements and states by author, then the others (pull
    /// requests among them) by id. Callers sort what they act on, or only test or count.
    pub(crate) fn entries_of(&self, d: Option<Ident>) -> impl Iterator<Item = &Entry> {
        d.and_then(|d| self.by_d.get(&d))
            .into_iter()
            .flat_map(|g| {
                g.latest
                    .values()
                    .map(IdKey::from)
                    .chain(g.others.iter().copied())
            })
            .filter_map(|id| self.entries.get(&id).map(|e| &**e))
    }

    /// The waiting state of `author` for `d`, if any (one per author: newer replaces older).
    pub(crate) fn state_of(&self, author: &PublicKey, d: Option<Ident>) -> Option<&Entry> {
        let id = self.by_d.get(&d?)?.latest.get(&(*author, true))?;
        self.get(id)
    }

    /// The waiting announcement of `owner` for `d`, if any.
    pub(crate) fn announcement_of(&self, owner: &PublicKey, d: Option<Ident>) -> Option<&Entry> {
        let id = self.by_d.get(&d?)?.latest.get(&(*owner, false))?;
        self.get(id)
    }

    pub(crate) fn identifiers(&self) -> impl Iterator<Item = Ident> + '_ {
        self.by_d.keys()
    }

    /// Whether any entry belongs to `d`.
    pub(crate) fn has_entries(&self, d: Ident) -> bool {
        self.by_d.contains_key(&d)
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values().map(|e| &**e)
    }

    /// Events waiting (placeholders are counted apart, against their own budget).
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Waiting events of `pk` that count toward the per-author cap (not announcements).
    pub(crate) fn count_author(&self, pk: &PublicKey) -> usize {
        self.per_author.get(pk).map_or(0, |l| l.entries)
    }

    /// Bytes of `pk`'s waiting events.
    pub(crate) fn author_bytes(&self, pk: &PublicKey) -> usize {
        self.per_author.get(pk).map_or(0, |l| l.bytes)
    }

    /// Bytes of every waiting event.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn count_identifier(&self, d: Option<Ident>) -> usize {
        d.and_then(|d| self.by_d.get(&d)).map_or(0, Group::len)
    }
}
