//! Which events are "ours": accepted ids, what they reference, and what was deleted.
//!
//! Point lookups only (`HashMap`/`HashSet` are never iterated here), so hashing order
//! cannot leak into effects.

use crate::event::{Reference, own_coordinate, references};
use nostr::prelude::{Coordinate, Event, EventId, PublicKey, Timestamp};
use std::collections::{HashMap, HashSet};

/// The acceptance index for related events and deletions.
#[derive(Debug, Default)]
pub(crate) struct Related {
    /// Accepted (stored or waiting) event ids and their authors.
    accepted: HashMap<EventId, PublicKey>,
    /// Coordinates of accepted addressable events (announcements among them).
    coords: HashSet<Coordinate>,
    /// Ids referenced by accepted events: such an event is accepted when it arrives.
    referenced_ids: HashSet<EventId>,
    /// Coordinates referenced by accepted events.
    referenced_coords: HashSet<Coordinate>,
    /// Ids deleted by their authors.
    deleted: HashSet<EventId>,
    /// Coordinates deleted by their authors, up to a `created_at`.
    deleted_coords: HashMap<Coordinate, Timestamp>,
}

impl Related {
    /// Records an accepted event and what it references.
    pub(crate) fn accept(&mut self, event: &Event) {
        self.accept_with(event, references(event));
    }

    /// [`Related::accept`] with the event's references already parsed (parsing the
    /// coordinates is most of the cost of a related-event verdict: do it once).
    pub(crate) fn accept_with(&mut self, event: &Event, refs: Vec<Reference>) {
        self.accepted.insert(event.id, event.pubkey);
        if let Some(c) = own_coordinate(event) {
            self.coords.insert(c);
        }
        for r in refs {
            match r {
                Reference::Id(id) => self.referenced_ids.insert(id),
                Reference::Coordinate(c) => self.referenced_coords.insert(c),
            };
        }
    }

    /// Forgets an accepted event (deleted, or expired from purgatory).
    pub(crate) fn unaccept(&mut self, event: &Event) {
        self.accepted.remove(&event.id);
    }

    /// Forgets the coordinate of an announcement that is no longer hosted or waiting.
    pub(crate) fn drop_coordinate(&mut self, c: &Coordinate) {
        self.coords.remove(c);
    }

    pub(crate) fn is_accepted(&self, id: &EventId) -> bool {
        self.accepted.contains_key(id)
    }

    pub(crate) fn author_of(&self, id: &EventId) -> Option<PublicKey> {
        self.accepted.get(id).copied()
    }

    pub(crate) fn knows_coordinate(&self, c: &Coordinate) -> bool {
        self.coords.contains(c)
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
            Reference::Coordinate(c) => self.coords.contains(c),
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
