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

use std::collections::BTreeMap;

/// An interned identifier: an index into [`Idents`]. Orders by allocation, not by name —
/// where order reaches effects across identifiers, callers sort by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Ident(u32);

/// The interning table.
#[derive(Debug, Default)]
pub(crate) struct Idents {
    by_name: BTreeMap<Box<str>, Ident>,
    /// Names by index; `None` for a freed slot.
    names: Vec<Option<Box<str>>>,
    /// Freed indexes, reused lowest last-freed first (deterministic).
    free: Vec<u32>,
}

impl Idents {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interns_frees_and_reuses() {
        let mut t = Idents::default();
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
}
