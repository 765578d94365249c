//! An ordered map for the per-identifier maps that usually hold one or two entries.
//!
//! A `BTreeMap` allocates a whole node of eleven key and value slots for its first
//! entry: for one waiting repository (graspd-bench `repos`, issue 14 item 7) that was
//! 1,776 bytes for the announcement index's one `(owner, AnnInfo)`, 731 for
//! purgatory's group of two and ~400 each for the need index's two maps — some 3.3 KiB
//! of a 12.8 KiB repository. Here up to [`INLINE_MAX`] entries live in a sorted vector
//! of exact capacity (one allocation of exactly their size); beyond it, the map becomes a
//! `BTreeMap`, so an identifier with thousands of entries (a state naming many refs,
//! many keys announcing one identifier) keeps logarithmic inserts. Iteration is in key
//! order either way, as a `BTreeMap`'s.

use std::collections::BTreeMap;

/// Entries kept in the sorted vector at most; one more turns it into a tree.
const INLINE_MAX: usize = 8;

/// An ordered map: a sorted vector while small, a `BTreeMap` once large.
#[derive(Clone, Debug)]
pub(crate) enum SmallMap<K, V> {
    /// At most [`INLINE_MAX`] entries, sorted by key, capacity equal to length.
    Small(Vec<(K, V)>),
    /// More than that (it stays a tree if it shrinks again).
    Tree(BTreeMap<K, V>),
}

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        SmallMap::Small(Vec::new())
    }
}

impl<K: Ord, V> SmallMap<K, V> {
    pub(crate) fn len(&self) -> usize {
        match self {
            SmallMap::Small(v) => v.len(),
            SmallMap::Tree(t) => t.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn get(&self, k: &K) -> Option<&V> {
        match self {
            SmallMap::Small(v) => v.binary_search_by(|(x, _)| x.cmp(k)).ok().map(|i| &v[i].1),
            SmallMap::Tree(t) => t.get(k),
        }
    }

    pub(crate) fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        match self {
            SmallMap::Small(v) => v
                .binary_search_by(|(x, _)| x.cmp(k))
                .ok()
                .map(|i| &mut v[i].1),
            SmallMap::Tree(t) => t.get_mut(k),
        }
    }

    pub(crate) fn contains_key(&self, k: &K) -> bool {
        self.get(k).is_some()
    }

    /// Puts `v` at `k`; returns the value it replaced.
    pub(crate) fn insert(&mut self, k: K, v: V) -> Option<V> {
        let (_, old) = self.slot(k, || v, true);
        old
    }

    /// The value at `k`, the default put there first if there is none.
    pub(crate) fn get_or_default(&mut self, k: K) -> &mut V
    where
        V: Default,
    {
        self.slot(k, V::default, false).0
    }

    pub(crate) fn remove(&mut self, k: &K) -> Option<V> {
        match self {
            SmallMap::Small(v) => {
                let i = v.binary_search_by(|(x, _)| x.cmp(k)).ok()?;
                let (_, out) = v.remove(i);
                v.shrink_to_fit();
                Some(out)
            }
            SmallMap::Tree(t) => t.remove(k),
        }
    }

    /// In key order.
    pub(crate) fn iter(&self) -> Iter<'_, K, V> {
        match self {
            SmallMap::Small(v) => Iter::Small(v.iter()),
            SmallMap::Tree(t) => Iter::Tree(t.iter()),
        }
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &K> {
        self.iter().map(|(k, _)| k)
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }

    /// The slot of `k`, made with `make` if absent (or, if `replace`, always); with the
    /// value it replaced.
    fn slot(&mut self, k: K, make: impl FnOnce() -> V, replace: bool) -> (&mut V, Option<V>) {
        if let SmallMap::Small(v) = self
            && v.len() >= INLINE_MAX
            && v.binary_search_by(|(x, _)| x.cmp(&k)).is_err()
        {
            *self = SmallMap::Tree(std::mem::take(v).into_iter().collect());
        }
        match self {
            SmallMap::Small(v) => match v.binary_search_by(|(x, _)| x.cmp(&k)) {
                Ok(i) => {
                    let old = replace.then(|| std::mem::replace(&mut v[i].1, make()));
                    (&mut v[i].1, old)
                }
                Err(i) => {
                    v.reserve_exact(1);
                    v.insert(i, (k, make()));
                    (&mut v[i].1, None)
                }
            },
            SmallMap::Tree(t) => match t.entry(k) {
                std::collections::btree_map::Entry::Occupied(o) => {
                    let slot = o.into_mut();
                    let old = replace.then(|| std::mem::replace(slot, make()));
                    (slot, old)
                }
                std::collections::btree_map::Entry::Vacant(e) => (e.insert(make()), None),
            },
        }
    }
}

/// [`SmallMap::iter`]'s iterator.
pub(crate) enum Iter<'a, K, V> {
    Small(std::slice::Iter<'a, (K, V)>),
    Tree(std::collections::btree_map::Iter<'a, K, V>),
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Small(i) => i.next().map(|(k, v)| (k, v)),
            Iter::Tree(i) => i.next(),
        }
    }
}

impl<'a, K: Ord, V> IntoIterator for &'a SmallMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = Iter<'a, K, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, u16),
        Bump(u8),
        Remove(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..24u8, any::<u16>()).prop_map(|(k, v)| Op::Insert(k, v)),
            (0..24u8).prop_map(Op::Bump),
            (0..24u8).prop_map(Op::Remove),
        ]
    }

    proptest! {
        /// Any sequence of operations leaves it equal to a `BTreeMap` given the same,
        /// across the switch from vector to tree (24 keys, eight inline).
        #[test]
        fn behaves_as_a_btreemap(ops in proptest::collection::vec(op(), 0..200)) {
            let mut small = SmallMap::default();
            let mut model = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => prop_assert_eq!(small.insert(k, v), model.insert(k, v)),
                    Op::Bump(k) => {
                        let s = small.get_or_default(k);
                        *s = s.wrapping_add(1);
                        let m = model.entry(k).or_default();
                        *m = m.wrapping_add(1);
                    }
                    Op::Remove(k) => prop_assert_eq!(small.remove(&k), model.remove(&k)),
                }
                prop_assert_eq!(small.len(), model.len());
                prop_assert!(small.iter().eq(model.iter()));
                for k in 0..24u8 {
                    prop_assert_eq!(small.get(&k), model.get(&k));
                }
            }
        }
    }

    #[test]
    fn small_maps_hold_exactly_their_entries() {
        let mut m = SmallMap::default();
        m.insert(2u8, 'b');
        m.insert(1, 'a');
        let SmallMap::Small(v) = &m else {
            panic!("two entries stay inline");
        };
        assert_eq!(v.capacity(), 2, "no spare slots");
        for k in 3..=9 {
            m.insert(k, 'x');
        }
        assert!(matches!(m, SmallMap::Tree(_)), "nine entries make a tree");
        assert_eq!(
            m.keys().copied().collect::<Vec<_>>(),
            (1..=9).collect::<Vec<_>>()
        );
    }
}
