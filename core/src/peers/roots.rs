//! The accepted roots of each repository — issues, patches, pull requests — whose
//! replies relay sync asks peers for (GRASP-02 §3, the `thread` group).

use std::collections::BTreeMap;

use nostr::prelude::{Event, EventId, Kind, Timestamp};

use crate::event::tag_values;

/// Roots kept per identifier, newest first: more than live coverage can hold
/// (`peer_filters`), and a bound on what a busy repository costs.
pub(crate) const ROOTS_PER_IDENTIFIER: usize = 1000;

/// Whether `kind` starts a thread.
fn is_root(kind: Kind) -> bool {
    matches!(kind, Kind::GitPatch | Kind::GitIssue | Kind::GitPullRequest)
}

/// Per identifier, its roots by `(created_at, id)`.
#[derive(Debug, Default)]
pub(crate) struct Roots {
    by_d: BTreeMap<String, BTreeMap<(Timestamp, EventId), ()>>,
    version: u64,
}

impl Roots {
    /// `event` was accepted (stored): a root of the repositories its `a` tags name is
    /// remembered under their identifiers, when `hosted` says one is ours.
    pub(crate) fn accepted(&mut self, event: &Event, hosted: &dyn Fn(&str) -> bool) {
        if !is_root(event.kind) {
            return;
        }
        for a in tag_values(event, "a") {
            let mut parts = a.splitn(3, ':');
            let (Some("30617"), Some(_), Some(d)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if !hosted(d) {
                continue;
            }
            let roots = self.by_d.entry(d.to_owned()).or_default();
            roots.insert((event.created_at, event.id), ());
            if roots.len() > ROOTS_PER_IDENTIFIER {
                roots.pop_first();
            }
            self.version += 1;
        }
    }

    /// The roots of `d`, newest first.
    pub(crate) fn of(&self, d: &str) -> impl Iterator<Item = EventId> + '_ {
        self.by_d
            .get(d)
            .into_iter()
            .flat_map(|m| m.keys().rev().map(|(_, id)| *id))
    }

    /// Changes with every root added.
    pub(crate) fn version(&self) -> u64 {
        self.version
    }
}
