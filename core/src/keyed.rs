//! Hash tables keyed by the seed in [`crate::Config::hash_seed`].
//!
//! The engine's hash tables hold event ids and coordinates chosen by whoever sends events,
//! so their hash must be keyed with something the sender cannot guess, or collisions can
//! be crafted to make every lookup a scan. std's `RandomState` is keyed, but from the
//! operating system's randomness — which the pure core may not read. The same SipHash-1-3,
//! keyed by a seed the driver passes in, keeps both properties: the daemon draws the seed
//! at startup, the simulator derives it from its own seed (so runs replay exactly).
//! The tables are used for point lookups only, so hashing order never reaches effects.

use siphasher::sip::SipHasher13;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;

/// Builds SipHash-1-3 hashers with the engine's keys.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Keyed {
    k0: u64,
    k1: u64,
}

impl Keyed {
    /// Keys derived from `seed` (two words, so that neither is the seed itself).
    pub(crate) fn new(seed: u64) -> Self {
        let k0 = splitmix(seed);
        Keyed {
            k0,
            k1: splitmix(k0),
        }
    }

    /// An empty map hashed with these keys.
    pub(crate) fn map<K, V>(self) -> KeyedMap<K, V> {
        HashMap::with_hasher(self)
    }

    /// An empty set hashed with these keys.
    pub(crate) fn set<K>(self) -> KeyedSet<K> {
        HashSet::with_hasher(self)
    }
}

impl BuildHasher for Keyed {
    type Hasher = SipHasher13;

    fn build_hasher(&self) -> SipHasher13 {
        SipHasher13::new_with_keys(self.k0, self.k1)
    }
}

/// A hash map keyed by [`Keyed`].
pub(crate) type KeyedMap<K, V> = HashMap<K, V, Keyed>;

/// A hash set keyed by [`Keyed`].
pub(crate) type KeyedSet<K> = HashSet<K, Keyed>;

/// One step of SplitMix64: spreads a seed's bits over a word.
pub(crate) fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_hash_other_seed_other_hash() {
        let (a, b, c) = (Keyed::new(7), Keyed::new(7), Keyed::new(8));
        assert_eq!(a.hash_one("repo"), b.hash_one("repo"));
        assert_ne!(a.hash_one("repo"), c.hash_one("repo"));
        let mut m = a.map();
        m.insert("repo", 1);
        assert_eq!(m.get("repo"), Some(&1));
    }
}
