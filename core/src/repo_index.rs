//! Announcements and latest states per identifier: maintainer sets and authority.

use crate::event::StateRefs;
use crate::keyed::{Keyed, KeyedMap};
use crate::repo::RepoId;
use nostr::prelude::{EventId, PublicKey, Timestamp};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Where an announcement stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AnnStatus {
    /// Stored and served.
    Served,
    /// Waiting in purgatory with its bare repository.
    Purgatory,
    /// Waited 30 min without data: repository deleted, event kept for revival.
    SoftExpired,
}

/// What the engine keeps of an announcement.
#[derive(Clone, Debug)]
pub(crate) struct AnnInfo {
    pub(crate) id: EventId,
    pub(crate) created_at: Timestamp,
    pub(crate) maintainers: Vec<PublicKey>,
    pub(crate) clone: Vec<String>,
    /// It lists this server: a bare repository exists for it here (unless soft-expired).
    pub(crate) hosted: bool,
    pub(crate) status: AnnStatus,
}

/// What the engine keeps of an author's latest stored state for an identifier.
#[derive(Clone, Debug)]
pub(crate) struct StateInfo {
    pub(crate) id: EventId,
    pub(crate) author: PublicKey,
    pub(crate) created_at: Timestamp,
    pub(crate) refs: StateRefs,
}

impl StateInfo {
    /// Its place in NIP-01 order (newest `created_at`, then lowest id).
    pub(crate) fn order_key(&self) -> crate::version::Version {
        crate::version::Version::new(self.created_at, self.id)
    }
}

/// The per-identifier repository index. Identifiers are found by a keyed hash (they come
/// from events; a verdict looks its identifier up here several times, and in B-trees of
/// 10k names each lookup was some fourteen string comparisons on cold nodes). Nothing
/// iterates over identifiers in an order that reaches effects.
#[derive(Debug)]
pub(crate) struct RepoIndex {
    anns: KeyedMap<String, BTreeMap<PublicKey, AnnInfo>>,
    states: KeyedMap<String, BTreeMap<PublicKey, StateInfo>>,
    /// Maintainer sets per identifier and owner, recomputed when an announcement of the
    /// identifier changes (rare) rather than on every decision (frequent).
    sets: KeyedMap<String, BTreeMap<PublicKey, BTreeSet<PublicKey>>>,
    /// Hosted announcements per owner (the repositories-per-author cap), kept as
    /// announcements come and go rather than counted over every identifier per verdict.
    hosted: BTreeMap<PublicKey, usize>,
    /// Per identifier, every key in the maintainer set of one of its hosted
    /// repositories; and per key, how many identifiers list it so (whose profile and
    /// relay list a client shows beside a repository, so they are accepted here).
    maintainers_of: KeyedMap<String, BTreeSet<PublicKey>>,
    maintaining: BTreeMap<PublicKey, u32>,
}

impl RepoIndex {
    /// An empty index hashing identifiers with `keys`.
    pub(crate) fn new(keys: Keyed) -> Self {
        RepoIndex {
            anns: keys.map(),
            states: keys.map(),
            sets: keys.map(),
            hosted: BTreeMap::new(),
            maintainers_of: keys.map(),
            maintaining: BTreeMap::new(),
        }
    }

    pub(crate) fn announcement(&self, owner: &PublicKey, d: &str) -> Option<&AnnInfo> {
        self.anns.get(d)?.get(owner)
    }

    pub(crate) fn announcement_mut(&mut self, owner: &PublicKey, d: &str) -> Option<&mut AnnInfo> {
        self.anns.get_mut(d)?.get_mut(owner)
    }

    /// How many announcements of `d` are indexed (for the per-identifier cap).
    pub(crate) fn announcement_count(&self, d: &str) -> usize {
        self.anns.get(d).map_or(0, BTreeMap::len)
    }

    pub(crate) fn announcements(&self, d: &str) -> impl Iterator<Item = (&PublicKey, &AnnInfo)> {
        self.anns.get(d).into_iter().flatten()
    }

    pub(crate) fn put_announcement(&mut self, owner: PublicKey, d: &str, info: AnnInfo) {
        let hosted = info.hosted;
        let old = self
            .anns
            .entry(d.to_owned())
            .or_default()
            .insert(owner, info);
        self.count_hosted(owner, old.is_some_and(|a| a.hosted), hosted);
        self.recompute_sets(d);
    }

    /// Moves `owner`'s hosted count from an announcement that was (`before`) to one that is
    /// (`after`) hosted.
    fn count_hosted(&mut self, owner: PublicKey, before: bool, after: bool) {
        match (before, after) {
            (false, true) => *self.hosted.entry(owner).or_default() += 1,
            (true, false) => {
                if let Some(n) = self.hosted.get_mut(&owner) {
                    *n -= 1;
                    if *n == 0 {
                        self.hosted.remove(&owner);
                    }
                }
            }
            _ => {}
        }
    }

    pub(crate) fn remove_announcement(&mut self, owner: &PublicKey, d: &str) -> Option<AnnInfo> {
        let m = self.anns.get_mut(d)?;
        let out = m.remove(owner);
        if m.is_empty() {
            self.anns.remove(d);
        }
        self.count_hosted(*owner, out.as_ref().is_some_and(|a| a.hosted), false);
        self.recompute_sets(d);
        out
    }

    fn recompute_sets(&mut self, d: &str) {
        let owners: Vec<PublicKey> = self.announcements(d).map(|(o, _)| *o).collect();
        if owners.is_empty() {
            self.sets.remove(d);
        } else {
            let sets = owners
                .into_iter()
                .map(|o| (o, self.compute_maintainers(&o, d)))
                .collect();
            self.sets.insert(d.to_owned(), sets);
        }
        self.recount_maintaining(d);
    }

    /// Brings the keys that maintain a hosted repository of `d` up to date.
    fn recount_maintaining(&mut self, d: &str) {
        let anns = self.anns.get(d);
        let now: BTreeSet<PublicKey> = self
            .sets
            .get(d)
            .into_iter()
            .flatten()
            .filter(|(owner, _)| {
                anns.and_then(|m| m.get(*owner))
                    .is_some_and(|a| a.hosted && a.status != AnnStatus::SoftExpired)
            })
            .flat_map(|(_, set)| set.iter().copied())
            .collect();
        let before = self.maintainers_of.remove(d).unwrap_or_default();
        for pk in before.difference(&now) {
            if let Some(n) = self.maintaining.get_mut(pk) {
                *n -= 1;
                if *n == 0 {
                    self.maintaining.remove(pk);
                }
            }
        }
        for pk in now.difference(&before) {
            *self.maintaining.entry(*pk).or_default() += 1;
        }
        if !now.is_empty() {
            self.maintainers_of.insert(d.to_owned(), now);
        }
    }

    /// Sets the status of `owner`'s announcement of `d` (a soft-expired one hosts nothing).
    pub(crate) fn set_status(&mut self, owner: &PublicKey, d: &str, status: AnnStatus) {
        if let Some(a) = self.announcement_mut(owner, d) {
            a.status = status;
            self.recount_maintaining(d);
        }
    }

    /// Whether `pk` is in the maintainer set of some repository hosted here.
    pub(crate) fn maintains_hosted(&self, pk: &PublicKey) -> bool {
        self.maintaining.contains_key(pk)
    }

    /// Whether `pk` is in the maintainer set of `(owner, d)`.
    pub(crate) fn is_maintainer(&self, owner: &PublicKey, d: &str, pk: &PublicKey) -> bool {
        match self.sets.get(d).and_then(|m| m.get(owner)) {
            Some(set) => set.contains(pk),
            None => owner == pk,
        }
    }

    /// Hosted announcements per owner, for the repositories-per-author cap.
    pub(crate) fn hosted_count(&self, owner: &PublicKey) -> usize {
        self.hosted.get(owner).copied().unwrap_or(0)
    }

    /// The recursive maintainer set of `(owner, d)`: the owner, the maintainers of the
    /// owner's announcement, and recursively those of each maintainer's own announcement
    /// with the same `d` (served or in purgatory). Cycle-safe.
    pub(crate) fn maintainers(&self, owner: &PublicKey, d: &str) -> BTreeSet<PublicKey> {
        match self.sets.get(d).and_then(|m| m.get(owner)) {
            Some(set) => set.clone(),
            None => BTreeSet::from([*owner]),
        }
    }

    fn compute_maintainers(&self, owner: &PublicKey, d: &str) -> BTreeSet<PublicKey> {
        let mut set = BTreeSet::from([*owner]);
        let mut queue = VecDeque::from([*owner]);
        let anns = self.anns.get(d);
        while let Some(pk) = queue.pop_front() {
            let Some(a) = anns.and_then(|m| m.get(&pk)) else {
                continue;
            };
            for m in &a.maintainers {
                if set.insert(*m) {
                    queue.push_back(*m);
                }
            }
        }
        set
    }

    /// Whether `author` is in the maintainer set of any announcement with this `d`.
    pub(crate) fn is_any_maintainer(&self, author: &PublicKey, d: &str) -> bool {
        self.announcements(d)
            .any(|(owner, _)| self.is_maintainer(owner, d, author))
    }

    /// The hosted repositories (with a bare repository now) `author`'s state governs.
    pub(crate) fn targets(&self, author: &PublicKey, d: &str) -> Vec<RepoId> {
        self.announcements(d)
            .filter(|(_, a)| a.hosted && a.status != AnnStatus::SoftExpired)
            .filter(|(owner, _)| self.is_maintainer(owner, d, author))
            .map(|(owner, _)| RepoId::new(*owner, d))
            .collect()
    }

    /// Soft-expired or purgatory announcements `author`'s state would revive or refresh.
    pub(crate) fn waiting_owners(&self, author: &PublicKey, d: &str) -> Vec<PublicKey> {
        self.announcements(d)
            .filter(|(_, a)| a.hosted && a.status != AnnStatus::Served)
            .filter(|(owner, _)| self.is_maintainer(owner, d, author))
            .map(|(owner, _)| *owner)
            .collect()
    }

    /// Every hosted repository of identifier `d` that exists now.
    pub(crate) fn repos(&self, d: &str) -> Vec<RepoId> {
        self.announcements(d)
            .filter(|(_, a)| a.hosted && a.status != AnnStatus::SoftExpired)
            .map(|(owner, _)| RepoId::new(*owner, d))
            .collect()
    }

    pub(crate) fn state(&self, author: &PublicKey, d: &str) -> Option<&StateInfo> {
        self.states.get(d)?.get(author)
    }

    pub(crate) fn put_state(&mut self, author: PublicKey, d: &str, info: StateInfo) {
        self.states
            .entry(d.to_owned())
            .or_default()
            .insert(author, info);
    }

    pub(crate) fn remove_state(&mut self, author: &PublicKey, d: &str) -> Option<StateInfo> {
        let m = self.states.get_mut(d)?;
        let out = m.remove(author);
        if m.is_empty() {
            self.states.remove(d);
        }
        out
    }

    /// The authoritative stored state for a repository: the newest state with refs among
    /// the latest states of its maintainer set.
    pub(crate) fn authoritative(&self, repo: &RepoId) -> Option<&StateInfo> {
        self.states
            .get(&repo.d)?
            .iter()
            .filter(|(pk, s)| {
                self.is_maintainer(&repo.owner, &repo.d, pk)
                    && s.refs.has_refs()
                    && !s.refs.malformed
            })
            .map(|(_, s)| s)
            .max_by_key(|s| s.order_key())
    }

    /// Stored states by maintainers of the repository (the candidates a push may align with).
    pub(crate) fn authorized_states(&self, repo: &RepoId) -> Vec<&StateInfo> {
        self.states
            .get(&repo.d)
            .into_iter()
            .flatten()
            .filter(|(pk, _)| self.is_maintainer(&repo.owner, &repo.d, pk))
            .map(|(_, s)| s)
            .collect()
    }

    /// The identifier and kind of `author`'s indexed announcement or state with this id.
    #[expect(
        clippy::disallowed_methods,
        reason = "an event id names one identifier at most: hash order cannot show"
    )]
    pub(crate) fn find_by_id(
        &self,
        author: &PublicKey,
        id: &EventId,
    ) -> Option<(String, nostr::prelude::Kind)> {
        let ann = self
            .anns
            .iter()
            .find(|(_, m)| m.get(author).is_some_and(|a| a.id == *id));
        if let Some((d, _)) = ann {
            return Some((d.clone(), nostr::prelude::Kind::GitRepoAnnouncement));
        }
        let st = self
            .states
            .iter()
            .find(|(_, m)| m.get(author).is_some_and(|s| s.id == *id));
        st.map(|(d, _)| (d.clone(), nostr::prelude::Kind::RepoState))
    }

    /// Number of announcements by status, for metrics.
    #[expect(clippy::disallowed_methods, reason = "a count: hash order cannot show")]
    pub(crate) fn count(&self, status: AnnStatus) -> usize {
        self.anns
            .values()
            .flat_map(|m| m.values())
            .filter(|a| a.status == status)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nostr::prelude::Keys;

    fn pk(n: u8) -> PublicKey {
        Keys::parse(&format!("{:064x}", u64::from(n) + 1))
            .unwrap()
            .public_key()
    }

    fn ann(maintainers: Vec<PublicKey>) -> AnnInfo {
        AnnInfo {
            id: EventId::from_slice(&[1; 32]).unwrap(),
            created_at: Timestamp::from_secs(1),
            maintainers,
            clone: vec![],
            hosted: true,
            status: AnnStatus::Served,
        }
    }

    #[test]
    fn recursive_cycle_safe_maintainers() {
        let mut idx = RepoIndex::new(Keyed::new(1));
        idx.put_announcement(pk(0), "x", ann(vec![pk(1)]));
        idx.put_announcement(pk(1), "x", ann(vec![pk(2)]));
        idx.put_announcement(pk(2), "x", ann(vec![pk(1), pk(0)]));
        let set = idx.maintainers(&pk(0), "x");
        assert_eq!(set, BTreeSet::from([pk(0), pk(1), pk(2)]));
        // another d is unrelated
        assert_eq!(idx.maintainers(&pk(0), "y"), BTreeSet::from([pk(0)]));
    }

    #[test]
    fn hosted_counts_follow_announcements() {
        let mut idx = RepoIndex::new(Keyed::new(1));
        idx.put_announcement(pk(0), "x", ann(vec![]));
        idx.put_announcement(pk(0), "y", ann(vec![]));
        idx.put_announcement(pk(0), "x", ann(vec![]));
        assert_eq!(
            idx.hosted_count(&pk(0)),
            2,
            "a replacement is not a new repository"
        );
        let elsewhere = AnnInfo {
            hosted: false,
            ..ann(vec![])
        };
        idx.put_announcement(pk(0), "y", elsewhere);
        assert_eq!(idx.hosted_count(&pk(0)), 1, "it no longer lists us");
        idx.remove_announcement(&pk(0), "x");
        idx.remove_announcement(&pk(0), "y");
        assert_eq!((idx.hosted_count(&pk(0)), idx.hosted.len()), (0, 0));
        assert_eq!(idx.hosted_count(&pk(1)), 0);
    }
}
