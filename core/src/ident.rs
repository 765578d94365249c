//! Identifiers (`d` tags) with engine state, interned as small integers.
//!
//! Purgatory groups, the need index, objects known present and the sync queue are all
//! per identifier, and a sync result touches each of them a few times: keyed by the name,
//! that was some twenty string-keyed B-tree lookups per input (a quarter of its
//! instructions in `memcmp`). Keyed by an [`Ident`], each is an integer comparison. The
//! name is looked up once, where an event or push names an identifier.
//!
//! An `Ident` lives while any per-identifier state refers to it and is then freed for
//! reuse ([`crate::engine::Engine::free_ident_if_idle`]): a hostile stream of identifiers
//! cannot grow the table beyond what purgatory and the sync queue hold at once.

use crate::keyed::{Keyed, KeyedMap};

/// An interned identifier: an index into [`Idents`]. Orders by allocation, not by name —
/// where order reaches effects across identifiers, callers sort by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Ident(u32);

impl Ident {
    /// Its index (for iterating a set of handles from a rotating start).
    pub(crate) fn index(self) -> u32 {
        self.0
    }

    /// The handle with this index (a bound for ranges of handles).
    pub(crate) fn from_index(i: u32) -> Self {
        Ident(i)
    }
}

/// The interning table. Names are found by a keyed hash (names come from events, so the
/// hash must be one their senders cannot aim at): an event's identifier is looked up a few
/// times per verdict, and in a B-tree of 10k names each lookup was some fourteen string
/// comparisons on cold nodes.
#[derive(Debug)]
pub(crate) struct Idents {
    by_name: KeyedMap<Box<str>, Ident>,
    /// Names by index; `None` for a freed slot.
    names: Vec<Option<Box<str>>>,
    /// Freed indexes, reused lowest last-freed first (deterministic).
    free: Vec<u32>,
}

impl Idents {
    /// An empty table hashing names with `keys`.
    pub(crate) fn new(keys: Keyed) -> Self {
        Idents {
            by_name: keys.map(),
            names: Vec::new(),
            free: Vec::new(),
        }
    }

    /// The handle of `name`, if it has one.
    pub(crate) fn get(&self, name: &str) -> Option<Ident> {
        self.by_name.get(name).copied()
    }

    /// The handle of `name`, made if needed.
    pub(crate) fn intern(&mut self, name: &str) -> Ident {
        if let Some(id) = self.get(name) {
            return id;
        }
        let id = match self.free.pop() {
            Some(i) => {
                self.names[i as usize] = Some(name.into());
                Ident(i)
            }
            None => {
                let i = u32::try_from(self.names.len()).expect("fewer than 2^32 identifiers");
                self.names.push(Some(name.into()));
                Ident(i)
            }
        };
        self.by_name.insert(name.into(), id);
        id
    }

    /// The name of a live handle.
    pub(crate) fn name(&self, id: Ident) -> &str {
        self.names
            .get(id.0 as usize)
            .and_then(|n| n.as_deref())
            .expect("a live identifier handle")
    }

    /// Frees `id` for reuse: nothing may refer to it any more.
    pub(crate) fn free(&mut self, id: Ident) {
        if let Some(name) = self.names.get_mut(id.0 as usize).and_then(Option::take) {
            self.by_name.remove(&name);
            self.free.push(id.0);
        }
    }

    /// Live handles.
    pub(crate) fn len(&self) -> usize {
        self.by_name.len()
    }
}

/// Per-identifier state addressed by handle: a dense vector, so a lookup is one index
/// (handles are reused, so it stays as long as the most identifiers held at once).
/// Mirrors the `BTreeMap` calls it replaced; iterates in handle order.
#[derive(Debug)]
pub(crate) struct IdentMap<V> {
    slots: Vec<Option<V>>,
    len: usize,
}

impl<V> Default for IdentMap<V> {
    fn default() -> Self {
        IdentMap {
            slots: Vec::new(),
            len: 0,
        }
    }
}

impl<V> IdentMap<V> {
    pub(crate) fn get(&self, d: &Ident) -> Option<&V> {
        self.slots.get(d.0 as usize)?.as_ref()
    }

    pub(crate) fn get_mut(&mut self, d: &Ident) -> Option<&mut V> {
        self.slots.get_mut(d.0 as usize)?.as_mut()
    }

    pub(crate) fn contains_key(&self, d: &Ident) -> bool {
        self.get(d).is_some()
    }

    pub(crate) fn remove(&mut self, d: &Ident) -> Option<V> {
        let v = self.slots.get_mut(d.0 as usize)?.take();
        self.len -= usize::from(v.is_some());
        v
    }

    /// The value of `d`, made with `make` if absent.
    pub(crate) fn get_or_insert_with(&mut self, d: Ident, make: impl FnOnce() -> V) -> &mut V {
        let i = d.0 as usize;
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || None);
        }
        let slot = &mut self.slots[i];
        if slot.is_none() {
            self.len += 1;
        }
        slot.get_or_insert_with(make)
    }

    /// The value of `d`, defaulted if absent.
    pub(crate) fn get_or_default(&mut self, d: Ident) -> &mut V
    where
        V: Default,
    {
        self.get_or_insert_with(d, V::default)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Entries in handle order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Ident, &V)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, v)| Some((Ident(i as u32), v.as_ref()?)))
    }

    /// Handles in order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = Ident> + '_ {
        self.iter().map(|(d, _)| d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interns_frees_and_reuses() {
        let mut t = Idents::new(Keyed::new(1));
        let a = t.intern("alpha");
        let b = t.intern("beta");
        assert_eq!(t.intern("alpha"), a);
        assert_ne!(a, b);
        assert_eq!(t.name(b), "beta");
        t.free(a);
        assert_eq!(t.get("alpha"), None);
        let c = t.intern("gamma");
        assert_eq!(c, a, "a freed slot is reused");
        assert_eq!(t.name(c), "gamma");
        assert_eq!(t.len(), 2);
        t.free(a);
        t.free(a);
        assert_eq!(t.len(), 1, "freeing twice is harmless");
    }

    #[test]
    fn ident_map_is_a_map() {
        let mut t = Idents::new(Keyed::new(1));
        let (a, b) = (t.intern("a"), t.intern("b"));
        let mut m: IdentMap<u32> = IdentMap::default();
        *m.get_or_default(b) += 2;
        *m.get_or_default(b) += 1;
        assert_eq!((m.get(&a), m.get(&b), m.len()), (None, Some(&3), 1));
        m.get_or_insert_with(a, || 7);
        assert_eq!(m.iter().collect::<Vec<_>>(), vec![(a, &7), (b, &3)]);
        assert_eq!(m.remove(&a), Some(7));
        assert_eq!(m.remove(&a), None);
        assert_eq!((m.len(), m.contains_key(&b)), (1, true));
        assert_eq!(m.keys().collect::<Vec<_>>(), vec![b]);
    }
}
