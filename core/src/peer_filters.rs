//! What is asked of a peer (GRASP-02 §3): the four groups of filters built from the
//! identifiers listing it, the accepted coordinates of their repositories, and the ids
//! of their accepted roots — chunked to the peer-friendly sizes of the spec.

use nostr::prelude::{EventId, Filter, Kind, SingleLetterTag};

/// Values per filter, at most.
pub(crate) const VALUES_PER_FILTER: usize = 100;
/// Filters per REQ, at most.
pub(crate) const FILTERS_PER_REQ: usize = 10;
/// Live REQs per peer, at most.
pub(crate) const LIVE_REQS: usize = 10;

/// What one peer is asked about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PeerItems {
    /// Identifiers of the hosted announcements listing the peer (`#d` of states).
    pub(crate) ds: Vec<String>,
    /// Accepted coordinates `30617:<pk>:<d>` of their served repositories.
    pub(crate) coords: Vec<String>,
    /// Ids of their accepted roots (issues, patches, pull requests), newest first.
    pub(crate) roots: Vec<EventId>,
}

impl PeerItems {
    /// The items of `self` not in `old`: what a full-history catch-up must fetch when
    /// coverage grows.
    pub(crate) fn minus(&self, old: &PeerItems) -> PeerItems {
        PeerItems {
            ds: self
                .ds
                .iter()
                .filter(|d| !old.ds.contains(d))
                .cloned()
                .collect(),
            coords: self
                .coords
                .iter()
                .filter(|c| !old.coords.contains(c))
                .cloned()
                .collect(),
            roots: self
                .roots
                .iter()
                .filter(|r| !old.roots.contains(r))
                .copied()
                .collect(),
        }
    }

    /// Whether there is nothing to ask.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.ds.is_empty() && self.coords.is_empty() && self.roots.is_empty()
    }
}

fn tag(c: char, upper: bool) -> SingleLetterTag {
    let c = if upper { c.to_ascii_uppercase() } else { c };
    SingleLetterTag::from_char(c).expect("an ASCII letter")
}

/// Every filter for `items`, in the spec's table order: discovery (only with
/// `discovery`), states, repository events, thread events.
pub(crate) fn filters(items: &PeerItems, discovery: bool) -> Vec<Filter> {
    let mut out = Vec::new();
    if discovery {
        out.push(Filter::new().kind(Kind::GitRepoAnnouncement));
    }
    for chunk in items.ds.chunks(VALUES_PER_FILTER) {
        out.push(
            Filter::new()
                .kind(Kind::RepoState)
                .custom_tags(tag('d', false), chunk.iter().cloned()),
        );
    }
    for chunk in items.coords.chunks(VALUES_PER_FILTER) {
        for (c, upper) in [('a', false), ('a', true), ('q', false)] {
            out.push(Filter::new().custom_tags(tag(c, upper), chunk.iter().cloned()));
        }
    }
    for chunk in items.roots.chunks(VALUES_PER_FILTER) {
        let hex: Vec<String> = chunk.iter().map(EventId::to_hex).collect();
        for (c, upper) in [('e', false), ('e', true), ('q', false)] {
            out.push(Filter::new().custom_tags(tag(c, upper), hex.iter().cloned()));
        }
    }
    out
}

/// The live REQs for `items`: at most [`LIVE_REQS`] of at most [`FILTERS_PER_REQ`]
/// filters, each with `since`. Beyond that the oldest roots leave live coverage (the
/// daily catch-up still covers them); the second value says whether that happened.
pub(crate) fn live_reqs(
    items: &PeerItems,
    since: nostr::prelude::Timestamp,
) -> (Vec<Vec<Filter>>, bool) {
    let all = filters(items, true);
    let room = LIVE_REQS * FILTERS_PER_REQ;
    let truncated = all.len() > room;
    let reqs = all
        .into_iter()
        .take(room)
        .map(|f| f.since(since))
        .collect::<Vec<_>>()
        .chunks(FILTERS_PER_REQ)
        .map(<[Filter]>::to_vec)
        .collect();
    (reqs, truncated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nostr::prelude::Timestamp;

    fn items(ds: usize, coords: usize, roots: usize) -> PeerItems {
        PeerItems {
            ds: (0..ds).map(|i| format!("d{i}")).collect(),
            coords: (0..coords)
                .map(|i| format!("30617:{i:064x}:d{i}"))
                .collect(),
            roots: (0..roots)
                .map(|i| EventId::from_byte_array([u8::try_from(i % 256).unwrap(); 32]))
                .collect(),
        }
    }

    #[test]
    fn groups_come_in_table_order_with_the_spec_tags() {
        let f = filters(&items(1, 1, 1), true);
        let json: Vec<String> = f
            .iter()
            .map(|f| serde_json::to_string(f).unwrap())
            .collect();
        assert_eq!(json[0], r#"{"kinds":[30617]}"#);
        assert_eq!(json[1], r##"{"kinds":[30618],"#d":["d0"]}"##);
        for (i, t) in ["#a", "#A", "#q", "#e", "#E", "#q"].iter().enumerate() {
            assert!(json[2 + i].contains(&format!("\"{t}\"")), "{}", json[2 + i]);
        }
        assert_eq!(f.len(), 8);
    }

    #[test]
    fn values_are_chunked_and_live_coverage_is_capped() {
        let f = filters(&items(250, 0, 0), false);
        assert_eq!(f.len(), 3, "100 + 100 + 50 identifiers");
        let (reqs, truncated) = live_reqs(&items(1, 1, 4000), Timestamp::from_secs(5));
        assert!(truncated);
        assert_eq!(reqs.len(), LIVE_REQS);
        assert!(reqs.iter().all(|r| r.len() <= FILTERS_PER_REQ));
        assert!(
            reqs.iter()
                .flatten()
                .all(|f| f.since == Some(Timestamp::from_secs(5)))
        );
        let (reqs, truncated) = live_reqs(&items(2, 2, 2), Timestamp::from_secs(5));
        assert_eq!((reqs.len(), truncated), (1, false));
    }

    #[test]
    fn minus_keeps_only_new_items() {
        let new = items(3, 2, 0).minus(&items(2, 2, 0));
        assert_eq!(new.ds, ["d2"]);
        assert!(new.coords.is_empty());
        assert!(items(2, 2, 2).minus(&items(2, 2, 2)).is_empty());
    }
}
