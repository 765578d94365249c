//! A purgatory event kept as its JSON text plus the few fields decisions read.
//!
//! A parsed [`Event`] is about as many bytes as its JSON, but in some fifteen small
//! allocations (each tag a vector of strings), and the allocator's per-chunk overhead
//! makes that ~300 B more resident memory per pull-request-like entry than one JSON
//! string (measured with 100k waiting PRs, docs/performance.md). Purgatory may hold a
//! hundred thousand events that are read in full only when they are released, expired,
//! journalled or shown; decisions read the id, author, time and kind, which stay parsed.

use nostr::prelude::{Event, EventId, Kind, PublicKey, Timestamp};

/// A waiting event: its identity parsed, its body as JSON.
#[derive(Clone, Debug)]
pub(crate) struct PackedEvent {
    pub(crate) id: EventId,
    pub(crate) pubkey: PublicKey,
    pub(crate) created_at: Timestamp,
    pub(crate) kind: Kind,
    json: Box<str>,
}

impl PackedEvent {
    /// Packs `event`.
    pub(crate) fn pack(event: &Event) -> Self {
        Self {
            id: event.id,
            pubkey: event.pubkey,
            created_at: event.created_at,
            kind: event.kind,
            json: serde_json::to_string(event)
                .expect("an event serializes to JSON")
                .into_boxed_str(),
        }
    }

    /// The whole event again.
    pub(crate) fn unpack(&self) -> Event {
        serde_json::from_str(&self.json).expect("an event packed by us parses back")
    }

    /// Bytes of the JSON text (for the memory accounting of the operator view).
    #[cfg(test)]
    pub(crate) fn json_len(&self) -> usize {
        self.json.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nostr::prelude::{EventBuilder, FinalizeEvent, Keys, Tag};

    #[test]
    fn unpacks_to_the_same_event() {
        let keys = Keys::generate();
        let tags = [
            Tag::parse(["a", "30617:abc:proj"]).unwrap(),
            Tag::parse(["c", "0123456789012345678901234567890123456789"]).unwrap(),
            Tag::parse([
                "clone",
                "https://a.example/x.git",
                "https://b.example/x.git",
            ])
            .unwrap(),
        ];
        let event = EventBuilder::new(Kind::Custom(1618), "a \"quoted\" body\n")
            .tags(tags)
            .finalize(&keys)
            .unwrap();
        let packed = PackedEvent::pack(&event);
        assert_eq!(packed.unpack(), event);
        assert_eq!(
            (packed.id, packed.pubkey, packed.created_at, packed.kind),
            (event.id, event.pubkey, event.created_at, event.kind)
        );
        assert!(packed.json_len() < 1024);
        assert!(
            packed.unpack().verify().is_ok(),
            "the signature still holds"
        );
    }
}
