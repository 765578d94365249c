//! Which events are "ours": accepted ids, what they reference, and what was deleted.
//!
//! Point lookups only (the hash tables are never iterated here), so hashing order cannot
//! leak into effects; they are keyed by the engine's seed ([`crate::keyed`]).
//!
//! Every accepted event (each waiting one among them) has an entry here, so authors are
//! interned: an accepted id keeps a 4-byte author number rather than a 32-byte key, and an
//! accepted coordinate is 8 bytes under its identifier rather than a 64-byte `Coordinate`
//! with its own copy of the identifier.

use crate::event::{Reference, identifier, own_coordinate, references};
use crate::keyed::{Keyed, KeyedMap, KeyedSet};
use nostr::prelude::{Coordinate, Event, EventId, PublicKey, Timestamp};

/// An interned author: an index into [`Related::authors`].
type Author = u32;

/// An accepted coordinate under its identifier: its author and kind.
type Pair = (Author, u16);

/// The acceptance index for related events and deletions.
#[derive(Debug)]
pub(crate) struct Related {
    /// Accepted (stored or waiting) event ids and their authors.
    accepted: KeyedMap<EventId, Author>,
    /// The author of every event ever accepted, by number (never shrinks: an author is
    /// 32 bytes plus its index entry, once, where `accepted` saves 28 bytes per event).
    authors: Vec<PublicKey>,
    /// The number of each of `authors`.
    author_numbers: KeyedMap<PublicKey, Author>,
    /// Coordinates of accepted addressable events (announcements among them): per
    /// identifier, the (author, kind) pairs, sorted.
    coords: KeyedMap<Box<str>, Vec<Pair>>,
    /// Ids referenced by accepted events: such an event is accepted when it arrives.
    referenced_ids: KeyedSet<EventId>,
    /// Coordinates referenced by accepted events.
    referenced_coords: KeyedSet<Coordinate>,
    /// Ids deleted by their authors.
    deleted: KeyedSet<EventId>,
    /// Coordinates deleted by their authors, up to a `created_at`.
    deleted_coords: KeyedMap<Coordinate, Timestamp>,
}

impl Related {
    /// An empty index whose tables are keyed by `keys`.
    pub(crate) fn new(keys: Keyed) -> Self {
        Related {
            accepted: keys.map(),
            authors: Vec::new(),
            author_numbers: keys.map(),
            coords: keys.map(),
            referenced_ids: keys.set(),
            referenced_coords: keys.set(),
            deleted: keys.set(),
            deleted_coords: keys.map(),
        }
    }

    /// Records an accepted event and what it references.
    pub(crate) fn accept(&mut self, event: &Event) {
        self.accept_with(event, references(event));
    }

    /// [`Related::accept`] with the event's references already parsed (parsing the
    /// coordinates is most of the cost of a related-event verdict: do it once).
    pub(crate) fn accept_with(&mut self, event: &Event, refs: Vec<Reference>) {
        let author = self.intern(&event.pubkey);
        self.accepted.insert(event.id, author);
        if event.kind.is_addressable() {
            // The coordinate of `own_coordinate`, without building it.
            let d = identifier(event).unwrap_or_default();
            let pair = (author, event.kind.as_u16());
            match self.coords.get_mut(d) {
                Some(pairs) => {
                    if let Err(i) = pairs.binary_search(&pair) {
                        pairs.insert(i, pair);
                    }
                }
                None => {
                    self.coords.insert(d.into(), vec![pair]);
                }
            }
        }
        for r in refs {
            match r {
                Reference::Id(id) => self.referenced_ids.insert(id),
                Reference::Coordinate(c) => self.referenced_coords.insert(c),
            };
        }
    }

    /// The number of `pk`, given one if it has none yet.
    fn intern(&mut self, pk: &PublicKey) -> Author {
        if let Some(n) = self.author_numbers.get(pk) {
            return *n;
        }
        let n = Author::try_from(self.authors.len()).expect("fewer than 2^32 authors");
        self.authors.push(*pk);
        self.author_numbers.insert(*pk, n);
        n
    }

    /// Where `c` is (or would be) kept: its identifier's pairs, and its own pair.
    fn coordinate_slot(&self, c: &Coordinate) -> Option<(&[Pair], Pair)> {
        let author = *self.author_numbers.get(&c.public_key)?;
        let pairs = self.coords.get(c.identifier.as_str())?;
        Some((pairs, (author, c.kind.as_u16())))
    }

    /// Forgets an accepted event (deleted, or expired from purgatory).
    pub(crate) fn unaccept(&mut self, id: &EventId) {
        self.accepted.remove(id);
    }

    /// Forgets the coordinate of an announcement that is no longer hosted or waiting.
    pub(crate) fn drop_coordinate(&mut self, c: &Coordinate) {
        let Some(i) = self
            .coordinate_slot(c)
            .and_then(|(pairs, pair)| pairs.binary_search(&pair).ok())
        else {
            return;
        };
        let d = c.identifier.as_str();
        if let Some(pairs) = self.coords.get_mut(d) {
            pairs.remove(i);
            if pairs.is_empty() {
                self.coords.remove(d);
            }
        }
    }

    pub(crate) fn is_accepted(&self, id: &EventId) -> bool {
        self.accepted.contains_key(id)
    }

    pub(crate) fn author_of(&self, id: &EventId) -> Option<PublicKey> {
        self.accepted.get(id).map(|n| self.authors[*n as usize])
    }

    pub(crate) fn knows_coordinate(&self, c: &Coordinate) -> bool {
        self.coordinate_slot(c)
            .is_some_and(|(pairs, pair)| pairs.binary_search(&pair).is_ok())
    }

    /// Whether `event` (whose references are `refs`) references, or is referenced by,
    /// anything accepted.
    pub(crate) fn is_related(&self, event: &Event, refs: &[Reference]) -> bool {
        if self.referenced_ids.contains(&event.id) {
            return true;
        }
        if own_coordinate(event).is_some_and(|c| self.referenced_coords.contains(&c)) {
            return true;
        }
        refs.iter().any(|r| match r {
            Reference::Id(id) => self.accepted.contains_key(id),
            Reference::Coordinate(c) => self.knows_coordinate(c),
        })
    }

    /// Whether `event` was deleted by its author (by id or by coordinate).
    pub(crate) fn is_deleted(&self, event: &Event) -> bool {
        self.deleted.contains(&event.id)
            || own_coordinate(event)
                .and_then(|c| self.deleted_coords.get(&c))
                .is_some_and(|until| event.created_at <= *until)
    }

    /// Records a deletion of ids and coordinates (already checked to be the author's).
    pub(crate) fn delete(&mut self, ids: &[EventId], coords: &[(Coordinate, Timestamp)]) {
        for id in ids {
            self.accepted.remove(id);
            self.deleted.insert(*id);
        }
        for (c, until) in coords {
            let e = self.deleted_coords.entry(c.clone()).or_insert(*until);
            *e = (*e).max(*until);
        }
    }

    /// Accepted event count, for metrics.
    pub(crate) fn len(&self) -> usize {
        self.accepted.len()
    }
}
