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
//!
//! A freed handle must never be used again: after reuse it would name another
//! identifier. In debug builds and with the `checked-handles` feature (the simulator
//! turns it on) each handle carries its slot's generation, and every lookup asserts it
//! is current, so a stale handle panics at its first use instead of silently addressing
//! the identifier that took its slot. Release builds keep handles at 4 bytes.

use crate::keyed::{Keyed, KeyedMap};

/// An interned identifier: an index into [`Idents`]. Orders by allocation, not by name —
/// where order reaches effects across identifiers, callers sort by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Ident {
    index: u32,
    /// Which use of the slot this handle names (checked builds only).
    #[cfg(any(debug_assertions, feature = "checked-handles"))]
    generation: u32,
}

impl Ident {
    /// Its index (for iterating a set of handles from a rotating start).
    pub(crate) fn index(self) -> u32 {
        self.index
    }

    /// The lowest handle with this index (a bound for ranges of handles: it orders
    /// before every generation of the slot).
    pub(crate) fn from_index(index: u32) -> Self {
        Self::at(index, 0)
    }

    #[cfg_attr(
        not(any(debug_assertions, feature = "checked-handles")),
        expect(
            unused_variables,
            reason = "generations are kept in checked builds only"
        )
    )]
    fn at(index: u32, generation: u32) -> Self {
        Ident {
            index,
            #[cfg(any(debug_assertions, feature = "checked-handles"))]
            generation,
        }
    }
}

/// The generation of each slot, bumped when it is freed (checked builds only).
#[derive(Debug, Default)]
struct Generations {
    #[cfg(any(debug_assertions, feature = "checked-handles"))]
    of: Vec<u32>,
}

impl Generations {
    /// The current generation of slot `index`.
    #[cfg(any(debug_assertions, feature = "checked-handles"))]
    fn current(&self, index: u32) -> u32 {
        self.of.get(index as usize).copied().unwrap_or(0)
    }

    #[cfg(not(any(debug_assertions, feature = "checked-handles")))]
    fn current(&self, _index: u32) -> u32 {
        0
    }

    /// Slot `index` was freed: handles to it are stale from now on.
    fn bump(&mut self, index: u32) {
        #[cfg(any(debug_assertions, feature = "checked-handles"))]
        {
            let i = index as usize;
            if self.of.len() <= i {
                self.of.resize(i + 1, 0);
            }
            self.of[i] += 1;
        }
        #[cfg(not(any(debug_assertions, feature = "checked-handles")))]
        let _ = index;
    }

    /// Whether `id` names the current use of its slot (always, in unchecked builds).
    fn is_current(&self, id: Ident) -> bool {
        #[cfg(any(debug_assertions, feature = "checked-handles"))]
        return id.generation == self.current(id.index);
        #[cfg(not(any(debug_assertions, feature = "checked-handles")))]
        {
            let _ = id;
            true
        }
    }

    /// Panics (checked builds) unless `id` names the current use of its slot.
    #[track_caller]
    fn assert_current(&self, id: Ident) {
        #[cfg(any(debug_assertions, feature = "checked-handles"))]
        assert_eq!(
            id.generation,
            self.current(id.index),
            "a stale identifier handle (slot {}) was used after it was freed",
            id.index
        );
        #[cfg(not(any(debug_assertions, feature = "checked-handles")))]
        let _ = id;
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
    generations: Generations,
}

impl Idents {
    /// An empty table hashing names with `keys`.
    pub(crate) fn new(keys: Keyed) -> Self {
        Idents {
            by_name: keys.map(),
            names: Vec::new(),
            free: Vec::new(),
            generations: Generations::default(),
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
        let i = match self.free.pop() {
            Some(i) => {
                self.names[i as usize] = Some(name.into());
                i
            }
            None => {
                let i = u32::try_from(self.names.len()).expect("fewer than 2^32 identifiers");
                self.names.push(Some(name.into()));
                i
            }
        };
        let id = Ident::at(i, self.generations.current(i));
        self.by_name.insert(name.into(), id);
        id
    }

    /// The name of a live handle.
    #[track_caller]
    pub(crate) fn name(&self, id: Ident) -> &str {
        self.generations.assert_current(id);
        self.names
            .get(id.index as usize)
            .and_then(|n| n.as_deref())
            .expect("a live identifier handle")
    }

    /// Frees `id` for reuse: nothing may refer to it any more.
    pub(crate) fn free(&mut self, id: Ident) {
        if !self.generations.is_current(id) {
            return; // freed already: a stale handle frees nothing
        }
        if let Some(name) = self.names.get_mut(id.index as usize).and_then(Option::take) {
            self.by_name.remove(&name);
            self.free.push(id.index);
            self.generations.bump(id.index);
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
    /// The generation of the handle each filled slot was made with (checked builds).
    #[cfg(any(debug_assertions, feature = "checked-handles"))]
    made_with: Vec<u32>,
}

impl<V> Default for IdentMap<V> {
    fn default() -> Self {
        IdentMap {
            slots: Vec::new(),
            len: 0,
            #[cfg(any(debug_assertions, feature = "checked-handles"))]
            made_with: Vec::new(),
        }
    }
}

impl<V> IdentMap<V> {
    /// Panics (checked builds) if slot `d` holds a value made for another generation: a
    /// value left behind by an identifier that was freed, or a stale handle.
    #[track_caller]
    fn check(&self, d: &Ident) {
        #[cfg(any(debug_assertions, feature = "checked-handles"))]
        if self
            .slots
            .get(d.index as usize)
            .is_some_and(Option::is_some)
        {
            assert_eq!(
                self.made_with[d.index as usize], d.generation,
                "identifier slot {} addressed by a handle of another generation",
                d.index
            );
        }
        #[cfg(not(any(debug_assertions, feature = "checked-handles")))]
        let _ = d;
    }

    /// The handle slot `i` was filled with.
    fn handle(&self, i: usize) -> Ident {
        #[cfg(any(debug_assertions, feature = "checked-handles"))]
        return Ident::at(i as u32, self.made_with[i]);
        #[cfg(not(any(debug_assertions, feature = "checked-handles")))]
        Ident::at(i as u32, 0)
    }

    #[track_caller]
    pub(crate) fn get(&self, d: &Ident) -> Option<&V> {
        self.check(d);
        self.slots.get(d.index as usize)?.as_ref()
    }

    /// Like [`get`](Self::get) for a handle that may be stale by design — a lazily
    /// deleted index (a heap of deadlines) outlives the identifiers it named: in checked
    /// builds a handle of another generation finds nothing. (In unchecked builds it finds
    /// the slot's value; such indexes only ask "is this deadline still armed", which a
    /// value armed at the same time answers rightly for whichever identifier holds it.)
    pub(crate) fn get_current(&self, d: &Ident) -> Option<&V> {
        #[cfg(any(debug_assertions, feature = "checked-handles"))]
        if self.made_with.get(d.index as usize) != Some(&d.generation) {
            return None;
        }
        self.slots.get(d.index as usize)?.as_ref()
    }

    #[track_caller]
    pub(crate) fn get_mut(&mut self, d: &Ident) -> Option<&mut V> {
        self.check(d);
        self.slots.get_mut(d.index as usize)?.as_mut()
    }

    pub(crate) fn contains_key(&self, d: &Ident) -> bool {
        self.get(d).is_some()
    }

    #[track_caller]
    pub(crate) fn remove(&mut self, d: &Ident) -> Option<V> {
        self.check(d);
        let v = self.slots.get_mut(d.index as usize)?.take();
        self.len -= usize::from(v.is_some());
        v
    }

    /// The value of `d`, made with `make` if absent.
    #[track_caller]
    pub(crate) fn get_or_insert_with(&mut self, d: Ident, make: impl FnOnce() -> V) -> &mut V {
        self.check(&d);
        let i = d.index as usize;
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || None);
            #[cfg(any(debug_assertions, feature = "checked-handles"))]
            self.made_with.resize(i + 1, 0);
        }
        if self.slots[i].is_none() {
            self.len += 1;
            #[cfg(any(debug_assertions, feature = "checked-handles"))]
            {
                self.made_with[i] = d.generation;
            }
        }
        self.slots[i].get_or_insert_with(make)
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
            .filter_map(|(i, v)| Some((self.handle(i), v.as_ref()?)))
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
        assert_eq!(c.index(), a.index(), "a freed slot is reused");
        assert_eq!(t.name(c), "gamma");
        assert_eq!(t.len(), 2);
        t.free(a);
        assert_eq!(
            (t.len(), t.name(c)),
            (2, "gamma"),
            "a stale handle frees nothing"
        );
        t.free(c);
        t.free(c);
        assert_eq!(t.len(), 1, "freeing twice is harmless");
    }

    #[test]
    #[should_panic(expected = "stale identifier handle")]
    fn a_stale_handle_panics_instead_of_naming_the_slots_next_identifier() {
        let mut t = Idents::new(Keyed::new(1));
        let a = t.intern("alpha");
        t.free(a);
        let _beta = t.intern("beta");
        let _ = t.name(a);
    }

    #[test]
    #[should_panic(expected = "another generation")]
    fn a_value_left_for_a_freed_identifier_is_not_read_through_its_successor() {
        let mut t = Idents::new(Keyed::new(1));
        let a = t.intern("alpha");
        let mut m: IdentMap<u32> = IdentMap::default();
        m.get_or_insert_with(a, || 1);
        t.free(a); // a bug: the map still holds alpha's value
        let b = t.intern("beta");
        let _ = m.get(&b);
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
