//! The memory of events that expired from purgatory without their data, so that relay
//! sync does not queue them again (BEHAVIOR.md §4), each until its own time.
//!
//! Every expiry adds one, at now + a fixed span: later than all the others, so a binary
//! heap push stays at the end of one vector (a B-tree set and a key-to-time map paid two
//! descents through cold nodes per expiry). The times are kept in the map; the heap skips
//! entries that no longer match it ([`DeadlineHeap`]).

use crate::id_key::IdKey;
use crate::time::Time;
use crate::timers::DeadlineHeap;
use nostr::prelude::EventId;
use std::collections::BTreeMap;

/// Expired events, each remembered until its time.
#[derive(Debug, Default)]
pub(crate) struct ExpiredMemory {
    until: BTreeMap<IdKey, Time>,
    due: DeadlineHeap<IdKey>,
}

impl ExpiredMemory {
    /// Remembers `id` until `until` (replacing an earlier memory of it).
    pub(crate) fn remember(&mut self, id: &EventId, until: Time) {
        let key = IdKey::from(id);
        self.until.insert(key, until);
        let map = &self.until;
        self.due
            .push(until, key, map.len(), |t, k| map.get(&k) == Some(&t));
    }

    /// Forgets `id`; whether it was remembered.
    pub(crate) fn forget(&mut self, id: &EventId) -> bool {
        let known = self.until.remove(&IdKey::from(id)).is_some();
        let map = &self.until;
        self.due.settle(|t, k| map.get(&k) == Some(&t));
        known
    }

    /// Whether `id` is remembered as expired.
    pub(crate) fn contains(&self, id: &EventId) -> bool {
        self.until.contains_key(&IdKey::from(id))
    }

    /// When the next memory lapses.
    pub(crate) fn next(&self) -> Option<Time> {
        self.due.next()
    }

    /// Removes and returns a memory that lapses at `now` or before, if any.
    pub(crate) fn pop_due(&mut self, now: Time) -> Option<EventId> {
        let key = self.due.pop_due(now)?;
        self.until.remove(&key);
        let map = &self.until;
        self.due.settle(|t, k| map.get(&k) == Some(&t));
        Some(key.event_id())
    }

    /// Memories held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.until.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> EventId {
        EventId::from_byte_array([n; 32])
    }

    #[test]
    fn lapses_in_time_order_and_forgets() {
        let at = Time::from_millis;
        let mut m = ExpiredMemory::default();
        m.remember(&id(2), at(10));
        m.remember(&id(1), at(10));
        m.remember(&id(3), at(20));
        m.remember(&id(3), at(5));
        assert!(m.forget(&id(2)));
        assert!(!m.forget(&id(2)));
        assert_eq!((m.next(), m.len()), (Some(at(5)), 2));
        assert_eq!(m.pop_due(at(4)), None);
        assert_eq!(m.pop_due(at(10)), Some(id(3)), "moved to 5");
        assert_eq!(m.pop_due(at(10)), Some(id(1)));
        assert_eq!(
            (m.pop_due(at(99)), m.next(), m.contains(&id(3))),
            (None, None, false)
        );
    }
}
