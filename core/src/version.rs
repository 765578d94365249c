//! The NIP-01 order of the versions of a replaceable or addressable event: the newest
//! `created_at` wins and, within one second, the **lowest** event id. Every comparison
//! of versions in the engine — announcements, states, pushes aligning with the newest
//! state, release order — goes through [`Version`], so the engine and the event store
//! (which applies the same rule) never disagree on which version is current. ngit relies
//! on the tie rule: a state it publishes in the same second as the previous one is mined
//! until its id is lower.

use nostr::prelude::{EventId, Timestamp};
use std::cmp::Ordering;

/// One version's place in NIP-01 order: a greater `Version` supersedes a smaller one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Version {
    /// When the version was created.
    pub created_at: Timestamp,
    /// Its event id (the tie-breaker: lower wins).
    pub id: EventId,
}

impl Version {
    /// The version of an event with these fields.
    pub fn new(created_at: Timestamp, id: EventId) -> Self {
        Version { created_at, id }
    }

    /// Whether this version supersedes `other` (is strictly newer in NIP-01 order).
    pub fn supersedes(&self, other: &Version) -> bool {
        self > other
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.created_at
            .cmp(&other.created_at)
            .then_with(|| other.id.cmp(&self.id))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(at: u64, id: u8) -> Version {
        Version::new(Timestamp::from_secs(at), EventId::from_byte_array([id; 32]))
    }

    #[test]
    fn newer_second_wins_then_lower_id() {
        assert!(v(11, 9).supersedes(&v(10, 1)), "a later second wins");
        assert!(
            v(10, 1).supersedes(&v(10, 2)),
            "same second: the lower id wins"
        );
        assert!(!v(10, 2).supersedes(&v(10, 1)));
        assert!(
            !v(10, 1).supersedes(&v(10, 1)),
            "a version does not supersede itself"
        );
        let newest = [v(10, 3), v(10, 1), v(9, 0), v(10, 2)].into_iter().max();
        assert_eq!(newest, Some(v(10, 1)));
    }
}
