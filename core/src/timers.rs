//! Deadlines, keyed: the one place every engine timer lives.
//!
//! Each key has at most one deadline; the earliest is cached (asked on every timeout and
//! poll). This is the expiring-map pattern: a `BTreeMap<Key, Time>` plus a
//! `BTreeSet<(Time, Key)>` index. Purgatory entries, which keep their own deadlines, need
//! only the index: [`DeadlineSet`].

use crate::time::Time;
use std::cmp::Reverse;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

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

    /// The deadline of `key`, if it has one.
    pub(crate) fn deadline_of(&self, key: &K) -> Option<Time> {
        self.by_key.get(key).copied()
    }

    /// Whether `key` has a deadline.
    pub(crate) fn is_armed(&self, key: &K) -> bool {
        self.by_key.contains_key(key)
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

    /// The deadlines from `from` on, earliest first.
    pub(crate) fn iter_from(&self, from: (Time, K)) -> impl Iterator<Item = &(Time, K)> {
        self.set.range(from..)
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

/// Deadlines whose owners keep their times, as a binary heap with lazy removal: moving or
/// cancelling a deadline only changes the owner's record, and the heap skips entries that
/// no longer match it (`valid`). A new deadline is usually later than most armed ones
/// (now + a backoff), so a push sifts up a level or two near the end of one vector — a
/// B-tree set paid a remove and an insert, each a descent through cold nodes, on every
/// move (most of the sync queue's timer cost at 10k identifiers). Stale entries are
/// dropped when they outnumber the live ones, so the heap stays within twice the armed
/// keys. Ties pop in key order, as from an ordered set.
#[derive(Debug)]
pub(crate) struct DeadlineHeap<K: Ord + Copy> {
    heap: BinaryHeap<Reverse<(Time, K)>>,
}

impl<K: Ord + Copy> Default for DeadlineHeap<K> {
    fn default() -> Self {
        DeadlineHeap {
            heap: BinaryHeap::new(),
        }
    }
}

impl<K: Ord + Copy> DeadlineHeap<K> {
    /// Arms `key` at `at` (the owner records `at`; earlier arms of `key` turn stale).
    /// `armed` is how many keys are armed after this, `valid` whether `(at, key)` is still
    /// armed.
    pub(crate) fn push(&mut self, at: Time, key: K, armed: usize, valid: impl Fn(Time, K) -> bool) {
        self.heap.push(Reverse((at, key)));
        if self.heap.len() > 2 * armed + 64 {
            self.heap.retain(|Reverse((t, k))| valid(*t, *k));
            self.settle(valid);
        } else if self
            .heap
            .peek()
            .is_some_and(|Reverse((t, k))| *k == key && *t != at)
        {
            // The top was this key's earlier deadline, now stale. (Any other top was
            // valid before the push and still is.)
            self.settle(valid);
        }
    }

    /// Drops stale entries from the top, so that [`DeadlineHeap::next`] is true; call
    /// after disarming a key.
    pub(crate) fn settle(&mut self, valid: impl Fn(Time, K) -> bool) {
        while let Some(Reverse((t, k))) = self.heap.peek() {
            if valid(*t, *k) {
                return;
            }
            self.heap.pop();
        }
    }

    /// The earliest deadline (true after every change was settled).
    pub(crate) fn next(&self) -> Option<Time> {
        self.heap.peek().map(|Reverse((t, _))| *t)
    }

    /// Removes and returns the earliest key due at `now`, if any; the owner disarms it and
    /// then settles.
    pub(crate) fn pop_due(&mut self, now: Time) -> Option<K> {
        match self.heap.peek() {
            Some(Reverse((t, _))) if *t <= now => self.heap.pop().map(|Reverse((_, k))| k),
            _ => None,
        }
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

    #[test]
    fn deadline_heap_skips_moved_and_cancelled_keys() {
        use std::cell::RefCell;
        let at = |ms| Time::from_millis(ms);
        // The owner's records: key -> deadline.
        let armed: RefCell<BTreeMap<&str, Time>> = RefCell::default();
        let valid = |t: Time, k: &str| armed.borrow().get(k) == Some(&t);
        let mut h = DeadlineHeap::default();
        let arm = |h: &mut DeadlineHeap<&str>, k, t| {
            armed.borrow_mut().insert(k, t);
            let n = armed.borrow().len();
            h.push(t, k, n, valid);
        };
        arm(&mut h, "a", at(10));
        arm(&mut h, "b", at(5));
        arm(&mut h, "a", at(1));
        arm(&mut h, "c", at(5));
        armed.borrow_mut().remove("a");
        h.settle(valid);
        assert_eq!(h.next(), Some(at(5)), "a's deadlines are stale");
        assert_eq!(h.pop_due(at(4)), None);
        assert_eq!(h.pop_due(at(5)), Some("b"), "ties in key order");
        armed.borrow_mut().remove("b");
        h.settle(valid);
        assert_eq!(h.pop_due(at(5)), Some("c"));
        armed.borrow_mut().remove("c");
        h.settle(valid);
        assert_eq!(h.next(), None, "a's stale deadline at 10 was dropped too");
        // Moving the earliest key later: its old deadline, on top, goes at once.
        arm(&mut h, "d", at(30));
        arm(&mut h, "e", at(40));
        arm(&mut h, "d", at(50));
        assert_eq!(
            h.next(),
            Some(at(40)),
            "d's stale deadline at 30 is not the next"
        );
        assert_eq!(h.pop_due(at(45)), Some("e"));
        armed.borrow_mut().remove("e");
        h.settle(valid);
        assert_eq!(h.pop_due(at(50)), Some("d"));
        armed.borrow_mut().remove("d");
        h.settle(valid);
        // Moving one key back and forth many times keeps the heap bounded.
        for i in 0..1000 {
            arm(&mut h, "x", at(100 + i % 7));
        }
        assert!(
            h.heap.len() <= 2 + 64,
            "{} entries for one armed key",
            h.heap.len()
        );
    }
}
