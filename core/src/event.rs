//! Events as the engine sees them: verified once by the runtime, parsed here into the
//! NIP-34 facts the engine decides on.

use crate::oid::Oid;
use nostr::prelude::{Coordinate, Event, EventId, Kind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An event whose id and signature have been checked.
///
/// The runtime verifies (secp256k1 is the costly part of ingest, and it can run on any
/// thread) and hands the engine this type, so the engine never verifies twice and cannot
/// be fed an unverified event by mistake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedEvent(Event);

impl VerifiedEvent {
    /// Checks the id and signature of `event`.
    pub fn verify(event: Event) -> Result<Self, nostr::prelude::Error> {
        event.verify()?;
        Ok(VerifiedEvent(event))
    }

    /// Wraps an event that was verified before, e.g. one read back from our own store or
    /// journal, which only ever hold verified events.
    pub fn assume_verified(event: Event) -> Self {
        VerifiedEvent(event)
    }

    /// The event.
    pub fn event(&self) -> &Event {
        &self.0
    }

    /// The event, unwrapped.
    pub fn into_event(self) -> Event {
        self.0
    }
}

/// Where an event came from: it decides how long the sync waits before hunting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Origin {
    /// Published by a client: a push usually follows, so the hunt waits 3 min.
    Client,
    /// Arrived through relay sync: its data is likely elsewhere already, wait 500 ms.
    Sync,
}

/// The NIP-34 kinds the engine treats specially.
pub(crate) const ANNOUNCEMENT: Kind = Kind::GitRepoAnnouncement;
pub(crate) const STATE: Kind = Kind::RepoState;
pub(crate) const PULL_REQUEST: Kind = Kind::GitPullRequest;
pub(crate) const PULL_REQUEST_UPDATE: Kind = Kind::GitPullRequestUpdate;
pub(crate) const DELETION: Kind = Kind::EventDeletion;

/// All values of every tag named `name` (tags are multi-value: one `clone` tag may list
/// several URLs).
pub(crate) fn tag_values<'a>(event: &'a Event, name: &'a str) -> impl Iterator<Item = &'a str> {
    event
        .tags
        .iter()
        .filter_map(move |t| {
            let s = t.as_slice();
            (s.first().map(String::as_str) == Some(name)).then(|| s[1..].iter().map(String::as_str))
        })
        .flatten()
        .filter(|v| !v.is_empty())
}

/// The first value of the first tag named `name`.
pub(crate) fn first_tag_value<'a>(event: &'a Event, name: &str) -> Option<&'a str> {
    event.tags.iter().find_map(|t| {
        let s = t.as_slice();
        (s.first().map(String::as_str) == Some(name))
            .then(|| s.get(1).map(String::as_str))
            .flatten()
    })
}

/// The `d` tag, if any (an empty `d` is a valid identifier for NIP-01, not for us).
pub(crate) fn identifier(event: &Event) -> Option<&str> {
    first_tag_value(event, "d")
}

/// What a repository announcement says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Announcement {
    pub(crate) d: String,
    pub(crate) clone: Vec<String>,
    pub(crate) relays: Vec<String>,
    pub(crate) membership: crate::membership::Membership,
}

impl Announcement {
    pub(crate) fn parse(event: &Event) -> Option<Announcement> {
        let d = identifier(event)?.to_owned();
        Some(Announcement {
            d,
            clone: tag_values(event, "clone").map(str::to_owned).collect(),
            relays: tag_values(event, "relays").map(str::to_owned).collect(),
            membership: crate::membership::Membership::parse(event),
        })
    }
}

/// What a repository state says: its refs, HEAD, and whether every ref value is an oid.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub(crate) struct StateRefs {
    /// `refs/heads/*` and `refs/tags/*` (and other `refs/*`) names with valid object ids,
    /// sorted by name, one per name (the last tag naming it wins). A sorted slice rather
    /// than a map: a state names a few refs, and a map's node costs ~600 bytes per entry.
    /// Boxed slice and names (not `Vec`/`String`): never grown, so no capacity words to
    /// keep, 16 bytes less per ref and per state (one is kept per waiting state).
    pub(crate) refs: Box<[(Box<str>, Oid)]>,
    /// The branch HEAD points at, e.g. `refs/heads/main`.
    pub(crate) head: Option<Box<str>>,
    /// Some ref value was not an object id: the state can never be satisfied.
    pub(crate) malformed: bool,
}

impl StateRefs {
    /// Parses the ref tags of a 30618 event. Peeled `^{}` names are ignored; values after
    /// the object id are parent hints and ignored too.
    pub(crate) fn parse(event: &Event) -> StateRefs {
        let mut out = StateRefs::default();
        let mut refs: Vec<(Box<str>, Oid)> = Vec::new();
        for t in event.tags.iter() {
            let s = t.as_slice();
            let (Some(name), Some(value)) = (s.first(), s.get(1)) else {
                continue;
            };
            if name == "HEAD" {
                let target = value.strip_prefix("ref: ").unwrap_or(value).trim();
                if target.starts_with("refs/heads/") {
                    out.head = Some(target.into());
                }
                continue;
            }
            if !name.starts_with("refs/") || name.ends_with("^{}") {
                continue;
            }
            match Oid::parse(value) {
                Some(oid) => refs.push((name.as_str().into(), oid)),
                None => out.malformed = true,
            }
        }
        // Later tags first, so the stable sort and dedup keep the last tag of each name.
        refs.reverse();
        refs.sort_by(|a, b| a.0.cmp(&b.0));
        refs.dedup_by(|later, kept| later.0 == kept.0);
        out.refs = refs.into_boxed_slice();
        out
    }

    /// A state with no ref tags: its author stopped tracking state; not authoritative.
    pub(crate) fn has_refs(&self) -> bool {
        !self.refs.is_empty() || self.malformed
    }

    /// The branch and tag refs, the part a push must align with.
    pub(crate) fn branches_and_tags(&self) -> BTreeMap<String, Oid> {
        self.refs
            .iter()
            .filter(|(n, _)| is_branch_or_tag(n))
            .map(|(n, o)| (n.to_string(), *o))
            .collect()
    }

    /// The distinct object ids the state needs.
    pub(crate) fn oids(&self) -> Vec<Oid> {
        let mut v: Vec<Oid> = self.refs.iter().map(|(_, o)| *o).collect();
        v.sort();
        v.dedup();
        v
    }
}

/// `refs/heads/*` or `refs/tags/*`: the refs a state governs.
pub fn is_branch_or_tag(name: &str) -> bool {
    name.starts_with("refs/heads/") || name.starts_with("refs/tags/")
}

/// What a pull request (1618) or pull-request update (1619) says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PullRequest {
    /// The repositories it tags (`a` tags of kind 30617).
    pub(crate) repos: Vec<Coordinate>,
    /// The tip commit, or the raw text when it is not an object id.
    pub(crate) tip: Result<Oid, String>,
    pub(crate) clone: Vec<String>,
}

impl PullRequest {
    /// `None` when the event has no `c` tag.
    pub(crate) fn parse(event: &Event) -> Option<PullRequest> {
        let c = first_tag_value(event, "c")?;
        let repos = tag_values(event, "a")
            .filter_map(|v| Coordinate::parse(v).ok())
            .filter(|c| c.kind == ANNOUNCEMENT)
            .collect();
        Some(PullRequest {
            repos,
            tip: Oid::parse(c).ok_or_else(|| c.to_owned()),
            clone: tag_values(event, "clone").map(str::to_owned).collect(),
        })
    }
}

/// A reference from one event to another, through `a`/`A`/`e`/`E`/`q` tags.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Reference {
    Id(EventId),
    Coordinate(Coordinate),
}

/// Every event id and coordinate `event` references through `a`, `A`, `e`, `E` and `q`
/// (`q` holds either). `p` tags confer nothing and are not read.
pub(crate) fn references(event: &Event) -> Vec<Reference> {
    let mut out = Vec::new();
    for t in event.tags.iter() {
        let s = t.as_slice();
        let (Some(name), Some(value)) = (s.first(), s.get(1)) else {
            continue;
        };
        match name.as_str() {
            "e" | "E" => out.extend(EventId::from_hex(value).ok().map(Reference::Id)),
            "a" | "A" => out.extend(Coordinate::parse(value).ok().map(Reference::Coordinate)),
            "q" => {
                if let Ok(id) = EventId::from_hex(value) {
                    out.push(Reference::Id(id));
                } else if let Ok(c) = Coordinate::parse(value) {
                    out.push(Reference::Coordinate(c));
                }
            }
            _ => {}
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The coordinate of an addressable event (kinds 30000–39999 with a `d` tag).
pub(crate) fn own_coordinate(event: &Event) -> Option<Coordinate> {
    if !event.kind.is_addressable() {
        return None;
    }
    Some(
        Coordinate::new(event.kind, event.pubkey).identifier(identifier(event).unwrap_or_default()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use nostr::prelude::{EventBuilder, FinalizeEvent, Keys, Tag};

    fn ev(kind: Kind, tags: Vec<Vec<&str>>) -> Event {
        let tags = tags.into_iter().map(|t| Tag::parse(t).unwrap());
        EventBuilder::new(kind, "")
            .tags(tags)
            .finalize(&Keys::generate())
            .unwrap()
    }

    #[test]
    fn state_parses_both_head_forms_and_ignores_peeled() {
        let oid = "1".repeat(40);
        for head in ["ref: refs/heads/dev", "refs/heads/dev"] {
            let e = ev(
                STATE,
                vec![
                    vec!["d", "x"],
                    vec!["refs/heads/dev", &oid, "parent-hint"],
                    vec!["refs/tags/v1^{}", &oid],
                    vec!["HEAD", head],
                ],
            );
            let s = StateRefs::parse(&e);
            assert_eq!(s.head.as_deref(), Some("refs/heads/dev"));
            assert_eq!(s.refs.len(), 1);
            assert!(!s.malformed);
        }
    }

    #[test]
    fn malformed_oid_marks_state() {
        let e = ev(
            STATE,
            vec![vec!["d", "x"], vec!["refs/heads/main", "abc123"]],
        );
        let s = StateRefs::parse(&e);
        assert!(s.malformed && s.has_refs() && s.refs.is_empty());
    }

    #[test]
    fn multi_value_tags() {
        let pk1 = Keys::generate().public_key().to_hex();
        let pk2 = Keys::generate().public_key().to_hex();
        let e = ev(
            ANNOUNCEMENT,
            vec![
                vec!["d", "x"],
                vec!["clone", "http://a/x.git", "http://b/x.git"],
                vec!["maintainers", &pk1, &pk2],
            ],
        );
        let a = Announcement::parse(&e).unwrap();
        assert_eq!(a.clone.len(), 2);
        assert_eq!(a.membership.flat().len(), 2);
    }

    #[test]
    fn references_skip_p_tags_and_read_q_both_ways() {
        let id = EventId::from_slice(&[7u8; 32]).unwrap().to_hex();
        let pk = Keys::generate().public_key();
        let coord = format!("30617:{}:x", pk.to_hex());
        let e = ev(
            Kind::TextNote,
            vec![vec!["p", &pk.to_hex()], vec!["q", &id], vec!["q", &coord]],
        );
        assert_eq!(references(&e).len(), 2);
    }
}
