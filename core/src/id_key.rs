//! Event ids as map keys that compare without a `memcmp` call.
//!
//! An `EventId` compares as a 32-byte slice: a libc call per comparison, a dozen or more
//! per lookup in a map of 100k entries. Four big-endian words compare inline and in the
//! same order (lexicographic by byte), so maps keyed by this iterate exactly as before.

use nostr::prelude::EventId;

/// An event id as four big-endian words, ordered exactly like the id's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct IdKey([u64; 4]);

impl From<&EventId> for IdKey {
    fn from(id: &EventId) -> Self {
        let b = id.as_bytes();
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i * 8..i * 8 + 8]);
            u64::from_be_bytes(w)
        };
        IdKey([word(0), word(1), word(2), word(3)])
    }
}

impl IdKey {
    /// The smallest key (all-zero id), a lower bound for ranges.
    pub(crate) const MIN: IdKey = IdKey([0; 4]);

    /// The event id back.
    pub(crate) fn event_id(&self) -> EventId {
        let mut b = [0u8; 32];
        for (i, w) in self.0.iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&w.to_be_bytes());
        }
        EventId::from_byte_array(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_like_the_bytes() {
        let ids: Vec<EventId> = [[0u8; 32], [1; 32], [255; 32]]
            .into_iter()
            .chain((0..32).map(|i| {
                let mut b = [7u8; 32];
                b[i] = 200;
                b
            }))
            .map(|b| EventId::from_slice(&b).unwrap())
            .collect();
        for a in &ids {
            assert_eq!(IdKey::from(a).event_id(), *a);
            for b in &ids {
                assert_eq!(IdKey::from(a).cmp(&IdKey::from(b)), a.cmp(b));
            }
        }
    }
}
