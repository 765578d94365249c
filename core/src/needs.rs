//! What the waiting events of each identifier need, kept up to date as entries come and
//! go, so that "is anything of `d` still missing?" — asked on every sync request result —
//! is a lookup instead of a scan of the identifier's entries with an allocation per entry.

use crate::engine::Engine;
use crate::ident::{Ident, IdentMap, Idents};
use crate::oid::Oid;
use crate::purgatory::{Entry, Purgatory, Waiting};
use crate::repo::RepoId;
use crate::repo_index::RepoIndex;
use crate::small_map::SmallMap;
use nostr::prelude::PublicKey;
use std::collections::{BTreeMap, BTreeSet};

/// Per identifier: the objects its waiting states and pull requests name, and the owners of
/// its waiting announcements (whose needs are their authoritative state's, which changes
/// apart from purgatory and so is looked up when asked). Counts, since entries may repeat.
/// Both in one slot per identifier: asked on every sync result, for two identifiers.
#[derive(Debug, Default)]
pub(crate) struct NeedIndex {
    by_d: IdentMap<IdentNeeds>,
}

#[derive(Debug, Default)]
struct IdentNeeds {
    /// `SmallMap`s: an identifier usually waits for one state's few objects and one
    /// announcement, and a `BTreeMap` node for one entry was ~420 bytes.
    oids: SmallMap<Oid, u32>,
    announcers: SmallMap<PublicKey, u32>,
}

impl NeedIndex {
    /// Counts what a new entry needs.
    pub(crate) fn add(&mut self, e: &Entry) {
        if matches!(e.what, Waiting::Announcement) {
            *self
                .by_d
                .get_or_default(e.ident)
                .announcers
                .get_or_default(e.event.pubkey) += 1;
            return;
        }
        let mut own = own_oids(e).peekable();
        if own.peek().is_none() {
            return;
        }
        let map = &mut self.by_d.get_or_default(e.ident).oids;
        for o in own {
            *map.get_or_default(o) += 1;
        }
    }

    /// Uncounts what a removed entry needed.
    pub(crate) fn remove(&mut self, e: &Entry) {
        let Some(needs) = self.by_d.get_mut(&e.ident) else {
            return;
        };
        if matches!(e.what, Waiting::Announcement) {
            uncount(&mut needs.announcers, [e.event.pubkey]);
        } else {
            uncount(&mut needs.oids, own_oids(e));
        }
        if needs.oids.is_empty() && needs.announcers.is_empty() {
            self.by_d.remove(&e.ident);
        }
    }
}

/// Object ids an entry's own data needs (none for announcements and unsatisfiable ones),
/// with repeats; the same as [`Entry::own_needs`] up to order and duplicates.
fn own_oids(e: &Entry) -> impl Iterator<Item = Oid> + '_ {
    let (refs, tip) = match &e.what {
        Waiting::State(s) if !s.malformed => (Some(s.refs.iter().map(|(_, o)| *o)), None),
        Waiting::Pr { pr, .. } => (None, pr.tip.as_ref().ok().copied()),
        _ => (None, None),
    };
    refs.into_iter().flatten().chain(tip)
}

fn uncount<K: Ord>(map: &mut SmallMap<K, u32>, keys: impl IntoIterator<Item = K>) {
    for k in keys {
        if let Some(n) = map.get_mut(&k) {
            *n -= 1;
            if *n == 0 {
                map.remove(&k);
            }
        }
    }
}

/// What `d` needs, answered without building the set: its entries' objects plus its
/// waiting announcements' authoritative objects, minus those known present (if given).
pub(crate) struct Needs<'a> {
    own: Option<&'a SmallMap<Oid, u32>>,
    /// From waiting announcements (rarely any).
    derived: Vec<Oid>,
    present: Option<&'a BTreeMap<Oid, RepoId>>,
}

impl Needs<'_> {
    fn missing(&self, o: &Oid) -> bool {
        self.present.is_none_or(|p| !p.contains_key(o))
    }

    /// Whether `o` is needed and not present.
    pub(crate) fn contains(&self, o: &Oid) -> bool {
        (self.own.is_some_and(|m| m.contains_key(o)) || self.derived.contains(o)) && self.missing(o)
    }

    /// Whether nothing is missing.
    pub(crate) fn is_empty(&self) -> bool {
        if self.present.is_none() {
            // Nothing of the identifier is here: the sizes say it, without reading the
            // B-tree's nodes (on every sync result, for two identifiers picked at random).
            return self.own.is_none_or(SmallMap::is_empty) && self.derived.is_empty();
        }
        let own = self.own.into_iter().flat_map(|m| m.keys());
        !own.chain(&self.derived).any(|o| self.missing(o))
    }

    /// The missing objects, sorted.
    pub(crate) fn to_set(&self) -> BTreeSet<Oid> {
        let own = self.own.into_iter().flat_map(|m| m.keys());
        own.chain(&self.derived)
            .filter(|o| self.missing(o))
            .copied()
            .collect()
    }
}

/// What the waiting events of `d` need, from the parts that decide it (a free function, so
/// callers can hold it while they mutate other parts of the engine).
pub(crate) fn needs_in<'a>(
    purgatory: &'a Purgatory,
    repos: &RepoIndex,
    idents: &Idents,
    present: &'a IdentMap<BTreeMap<Oid, RepoId>>,
    d: Ident,
) -> Needs<'a> {
    let mut view = wanted_in(purgatory, repos, idents, d);
    view.present = present.get(&d);
    view
}

/// Every object the waiting events of `d` need, present or not.
fn wanted_in<'a>(
    purgatory: &'a Purgatory,
    repos: &RepoIndex,
    idents: &Idents,
    d: Ident,
) -> Needs<'a> {
    let needs = purgatory.needs.by_d.get(&d);
    let mut derived = Vec::new();
    for owner in needs.into_iter().flat_map(|n| n.announcers.keys()) {
        if let Some(s) = repos.authoritative(&RepoId::new(*owner, idents.name(d))) {
            derived.extend(s.refs.oids());
        }
    }
    Needs {
        own: needs.map(|n| &n.oids),
        derived,
        present: None,
    }
}

impl Engine {
    /// What the waiting events of `d` still need (see [`Needs`]).
    pub(crate) fn needs_of(&self, d: Ident) -> Needs<'_> {
        needs_in(&self.purgatory, &self.repos, &self.idents, &self.present, d)
    }

    /// Every object the waiting events of `d` need, present or not.
    pub(crate) fn wanted_of(&self, d: Ident) -> Needs<'_> {
        wanted_in(&self.purgatory, &self.repos, &self.idents, d)
    }

    /// The objects the waiting events of `d` still need, as a set (empty for an
    /// identifier without a handle: nothing of it waits).
    pub(crate) fn needs(&self, d: Option<Ident>) -> BTreeSet<Oid> {
        d.map(|d| self.needs_of(d).to_set()).unwrap_or_default()
    }
}
