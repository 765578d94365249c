//! The purgatory journal: what a restart needs to rebuild purgatory with its deadlines.

use crate::event::Origin;
use crate::oid::Oid;
use crate::repo::RepoId;
use crate::time::Time;
use nostr::prelude::{Event, EventId};
use serde::{Deserialize, Serialize};
use std::fmt;

/// One journal record. Deadlines are absolute [`Time`]s, so time spent down counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JournalRecord {
    /// An event waiting in purgatory (announcement, state or pull request).
    Waiting {
        /// The event (purgatory events live nowhere else). Boxed, as in
        /// [`crate::Effect::StoreEvent`]: inline it made every effect 232 bytes.
        event: Box<Event>,
        /// Where it came from.
        origin: Origin,
        /// When it arrived.
        arrived: Time,
        /// When it expires (or, for an announcement, soft-expires).
        deadline: Time,
        /// For a soft-expired announcement: when it is forgotten.
        forget_at: Option<Time>,
    },
    /// A commit pushed to `refs/nostr/<event_id>` before its pull request arrived.
    Placeholder {
        /// The repository it was pushed to.
        repo: RepoId,
        /// The event id named by the ref.
        event_id: EventId,
        /// The pushed commit.
        oid: Oid,
        /// When the placeholder and its ref are removed.
        deadline: Time,
        /// The address it was pushed from, for the per-address budget (absent in records
        /// written before that budget existed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<String>,
    },
    /// An event that expired without its data, remembered so sync does not requeue it.
    Expired {
        /// The event id.
        event_id: EventId,
        /// When the memory lapses.
        until: Time,
    },
    /// The start times of the requests made to a remote domain in its current sliding
    /// window: a restart must not forget them, or a server in a crash loop would send the
    /// domain a fresh per-minute budget after every start.
    DomainWindow {
        /// The domain (a clone URL's authority).
        domain: String,
        /// Request start times, oldest first.
        starts: Vec<Time>,
    },
    /// How far relay sync has caught up with a peer: a restart catches up from 10 min
    /// before it, not from the beginning (GRASP-02 §4).
    PeerCheckpoint {
        /// The peer's normalized relay URL.
        url: String,
        /// Wall-clock seconds (a `created_at` bound).
        at: u64,
    },
    /// A peer that misbehaved, left alone until `until` across restarts.
    PeerNaughty {
        /// The peer's normalized relay URL.
        url: String,
        /// When it may be contacted again.
        until: Time,
        /// Why, for the operator view.
        reason: String,
    },
}

/// The key a journal record is stored and forgotten under.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum JournalKey {
    /// A waiting event.
    Waiting(EventId),
    /// A placeholder.
    Placeholder(RepoId, EventId),
    /// An expiry memory.
    Expired(EventId),
    /// A domain's request window.
    DomainWindow(String),
    /// A peer's checkpoint.
    PeerCheckpoint(String),
    /// A naughty peer.
    PeerNaughty(String),
}

impl JournalRecord {
    /// The key this record is stored under.
    pub fn key(&self) -> JournalKey {
        match self {
            JournalRecord::Waiting { event, .. } => JournalKey::Waiting(event.id),
            JournalRecord::Placeholder { repo, event_id, .. } => {
                JournalKey::Placeholder(repo.clone(), *event_id)
            }
            JournalRecord::Expired { event_id, .. } => JournalKey::Expired(*event_id),
            JournalRecord::DomainWindow { domain, .. } => JournalKey::DomainWindow(domain.clone()),
            JournalRecord::PeerCheckpoint { url, .. } => JournalKey::PeerCheckpoint(url.clone()),
            JournalRecord::PeerNaughty { url, .. } => JournalKey::PeerNaughty(url.clone()),
        }
    }
}

/// Keys render as stable strings (`w:<id>`, `p:<npub>/<d>.git:<id>`, `x:<id>`, `t:<domain>`,
/// `c:<relay>`, `n:<relay>`), usable as
/// database keys or file names by the driver.
impl fmt::Display for JournalKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JournalKey::Waiting(id) => write!(f, "w:{}", id.to_hex()),
            // `p:prs/<npub>/…` for a contributor repository's (scoped) placeholder.
            JournalKey::Placeholder(repo, id) => write!(f, "p:{}:{}", repo.path(), id.to_hex()),
            JournalKey::Expired(id) => write!(f, "x:{}", id.to_hex()),
            JournalKey::DomainWindow(domain) => write!(f, "t:{domain}"),
            JournalKey::PeerCheckpoint(url) => write!(f, "c:{url}"),
            JournalKey::PeerNaughty(url) => write!(f, "n:{url}"),
        }
    }
}
