//! Deadlines, keyed: the one place every engine timer lives.
//!
//! Each key has at most one deadline; the earliest is cached (asked on every timeout and
//! poll). This is the expiring-map pattern: a `BTreeMap<Key, Time>` plus a
//! `BTreeSet<(Time, Key)>` index. Purgatory entries, which keep their own deadlines, need
//! only the index: [`DeadlineSet`].

use crate::time::Time;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

/// Keyed deadlines.
#[derive(Debug)]
pub(crate) struct Timers<K: Ord + Clone> {
    by_key: BTreeMap<K, Time>,
    by_time: DeadlineSet<K>,
}

impl<K: Ord + Clone> Default for Timers<K> {
    fn default() -> Self {
        Timers {
            by_key: BTreeMap::new(),
            by_time: DeadlineSet::default(),
        }
    }
}

impl<K: Ord + Clone> Timers<K> {
    /// Sets (or moves) the deadline of `key`.
    pub(crate) fn set(&mut self, key: K, at: Time) {
        match self.by_key.entry(key) {
            Entry::Vacant(v) => {
                let key = v.key().clone();
                v.insert(at);
                self.by_time.insert(at, key);
            }
            Entry::Occupied(mut o) => {
                let old = o.insert(at);
                if old != at {
                    let key = o.key().clone();
                    let key = self
                        .by_time
                        .remove(old, key)
                        .expect("indexed: both maps hold every key");
                    self.by_time.insert(at, key);
                }
            }
        }
    }

    /// Removes the deadline of `key`.
    pub(crate) fn cancel(&mut self, key: &K) {
        if let Some(old) = self.by_key.remove(key) {
            self.by_time.remove(old, key.clone());
        }
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Time> {
        self.by_time.next()
    }

    /// Removes and returns the earliest key due at `now`, if any.
    pub(crate) fn pop_due(&mut self, now: Time) -> Option<K> {
        let k = self.by_time.pop_due(now)?;
        self.by_key.remove(&k);
        Some(k)
    }

    /// Number of armed deadlines.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }
}

/// Deadlines whose times their owners keep (so no key → time map): one ordered set, its
/// earliest time cached, since the engine asks for it on every timeout and poll.
#[derive(Debug)]
pub(crate) struct DeadlineSet<K: Ord> {
    set: BTreeSet<(Time, K)>,
    earliest: Option<Time>,
}

impl<K: Ord> Default for DeadlineSet<K> {
    fn default() -> Self {
        DeadlineSet {
            set: BTreeSet::new(),
            earliest: None,
        }
    }
}

impl<K: Ord> DeadlineSet<K> {
    fn cache(&mut self) {
        self.earliest = self.set.first().map(|(t, _)| *t);
    }

    /// Arms `key` at `at`.
    pub(crate) fn insert(&mut self, at: Time, key: K) {
        self.set.insert((at, key));
        self.cache();
    }

    /// Disarms `key` armed at `at`, returning the key it held (`None` if not armed).
    pub(crate) fn remove(&mut self, at: Time, key: K) -> Option<K> {
        let (_, key) = self.set.take(&(at, key))?;
        self.cache();
        Some(key)
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Time> {
        self.earliest
    }

    /// Removes and returns the earliest key due at `now`, if any.
    pub(crate) fn pop_due(&mut self, now: Time) -> Option<K> {
        if self.earliest? > now {
            return None;
        }
        let (_, k) = self.set.pop_first()?;
        self.cache();
        Some(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_first_and_moves() {
        let mut t = Timers::default();
        t.set("a", Time::from_millis(10));
        t.set("b", Time::from_millis(5));
        t.set("a", Time::from_millis(1));
        assert_eq!(t.next(), Some(Time::from_millis(1)));
        assert_eq!(t.pop_due(Time::from_millis(0)), None);
        assert_eq!(t.pop_due(Time::from_millis(5)), Some("a"));
        assert_eq!(t.pop_due(Time::from_millis(5)), Some("b"));
        assert_eq!(t.pop_due(Time::from_millis(100)), None);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn deadline_set_earliest_first() {
        let mut s = DeadlineSet::default();
        s.insert(Time::from_millis(10), "a");
        s.insert(Time::from_millis(5), "b");
        s.insert(Time::from_millis(5), "a");
        s.remove(Time::from_millis(10), "a");
        assert_eq!(s.next(), Some(Time::from_millis(5)));
        assert_eq!(s.pop_due(Time::from_millis(4)), None);
        assert_eq!(s.pop_due(Time::from_millis(5)), Some("a"));
        assert_eq!(s.pop_due(Time::from_millis(5)), Some("b"));
        assert_eq!((s.next(), s.pop_due(Time::from_millis(99))), (None, None));
    }
}
