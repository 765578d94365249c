//! Journal records of superseded waiting events that must outlive their successor's
//! verdict.
//!
//! A waiting state superseded by a newer one whose verdict waits on an object check
//! leaves purgatory at once, but its journal record may go only once the newer one is
//! journalled, released or gone: the newer one is not acknowledged yet, and a crash in
//! between would otherwise lose the acknowledged older one (found by the simulator's
//! crash faults, seeds 354, 3700, 7851 and 9097 of the Restarts shape).

use std::collections::BTreeMap;

use nostr::prelude::EventId;

/// For each waiting event with an unsent verdict, the superseded event whose journal
/// record is forgotten when that verdict settles.
#[derive(Debug, Default)]
pub(crate) struct SupersededRecords {
    after: BTreeMap<EventId, EventId>,
}

impl SupersededRecords {
    /// `old`'s record is forgotten once `new`'s verdict settles.
    pub(crate) fn defer(&mut self, new: EventId, old: EventId) {
        self.after.insert(new, old);
    }

    /// The record waiting for `new`'s verdict, if any.
    pub(crate) fn take(&mut self, new: &EventId) -> Option<EventId> {
        self.after.remove(new)
    }
}
