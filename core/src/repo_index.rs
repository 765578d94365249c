//! Announcements and latest states per identifier: maintainer sets and authority.

use crate::event::StateRefs;
use crate::keyed::{Keyed, KeyedMap};
use crate::maintainer_set::{MaintainerModel, MaintainerSets};
use crate::membership::Membership;
use crate::peers::RelayListings;
use crate::repo::RepoId;
use crate::small_map::SmallMap;
use nostr::prelude::{EventId, PublicKey, Timestamp};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

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
    pub(crate) membership: Membership,
    pub(crate) clone: Vec<String>,
    /// Its `relays` as peer keys (`peers::listings::relay_keys`).
    pub(crate) relays: Vec<String>,
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

impl AnnInfo {
    /// Whether it waits in purgatory with a bare repository of its own.
    fn is_waiting_repo(&self) -> bool {
        self.hosted && self.status == AnnStatus::Purgatory
    }
}

impl StateInfo {
    /// Its place in NIP-01 order (newest `created_at`, then lowest id).
    pub(crate) fn order_key(&self) -> crate::version::Version {
        crate::version::Version::new(self.created_at, self.id)
    }
}

/// Whether `pk` is a confirmed maintainer of `owner`'s repository, given the sets of its
/// identifier (an owner without stored sets stands alone).
fn confirms(
    sets: Option<&BTreeMap<PublicKey, MaintainerSets>>,
    owner: &PublicKey,
    pk: &PublicKey,
) -> bool {
    match sets.and_then(|m| m.get(owner)) {
        Some(sets) => sets.is_confirmed(pk),
        None => owner == pk,
    }
}

/// What a key that is only invited to maintain `d` is told, and the operator view shows.
pub(crate) fn invited_message(pk: &PublicKey, d: &str) -> String {
    format!(
        "{} is invited as a maintainer of '{d}' but has not accepted: their announcement must list a confirmed maintainer",
        crate::repo::npub(pk)
    )
}

/// An owner whose sets may change, as it was before the change.
struct Affected {
    owner: PublicKey,
    confirmed: BTreeSet<PublicKey>,
    counted: BTreeSet<PublicKey>,
    authority: Option<crate::version::Version>,
}

/// What an announcement's change did to the confirmed maintainer sets of its identifier.
#[derive(Debug, Default)]
pub(crate) struct SetChange {
    /// Some confirmed set changed (an acceptance, a departure, new listings): states that
    /// waited for authority may count now.
    pub(crate) changed: bool,
    /// Owners whose repository is now governed by a newer stored state than before (a
    /// maintainer's acceptance made their state count): the repository is re-aligned.
    pub(crate) promoted: Vec<PublicKey>,
}

/// The per-identifier repository index. Identifiers are found by a keyed hash (they come
/// from events; a verdict looks its identifier up here several times, and in B-trees of
/// 10k names each lookup was some fourteen string comparisons on cold nodes). Nothing
/// iterates over identifiers in an order that reaches effects.
#[derive(Debug)]
pub(crate) struct RepoIndex {
    /// Per identifier, each owner's announcement: usually one, which a `SmallMap` holds in
    /// one exact allocation (a `BTreeMap` node for it was 1.7 KiB).
    anns: KeyedMap<String, SmallMap<PublicKey, AnnInfo>>,
    states: KeyedMap<String, BTreeMap<PublicKey, StateInfo>>,
    /// Maintainer sets per identifier and owner, recomputed when an announcement they
    /// depend on changes (rare) rather than on every decision (frequent). Only owners
    /// who do not stand alone have an entry: a stranger's repository costs none.
    sets: KeyedMap<String, BTreeMap<PublicKey, MaintainerSets>>,
    model: MaintainerModel,
    /// Hosted announcements per owner (the repositories-per-author cap), kept as
    /// announcements come and go rather than counted over every identifier per verdict.
    hosted: BTreeMap<PublicKey, usize>,
    /// Hosted announcements waiting in purgatory, each with a bare repository on disk
    /// (keys are free, so the per-author cap alone does not bound them).
    waiting_repos: usize,
    /// The `relays` of every announcement held here.
    listings: RelayListings,
    /// Per key, in how many hosted repositories it is a confirmed maintainer (whose
    /// profile and relay list a client shows beside a repository, so they are accepted
    /// here). Kept by difference as sets and hosting change.
    maintaining: BTreeMap<PublicKey, u32>,
}

impl RepoIndex {
    /// An empty index hashing identifiers with `keys`, computing maintainer sets under
    /// `model`.
    pub(crate) fn new(keys: Keyed, model: MaintainerModel) -> Self {
        RepoIndex {
            anns: keys.map(),
            states: keys.map(),
            sets: keys.map(),
            model,
            hosted: BTreeMap::new(),
            waiting_repos: 0,
            listings: RelayListings::default(),
            maintaining: BTreeMap::new(),
        }
    }

    pub(crate) fn announcement(&self, owner: &PublicKey, d: &str) -> Option<&AnnInfo> {
        self.anns.get(d)?.get(owner)
    }

    /// `author`'s latest stored state for `d`.
    pub(crate) fn state_of(&self, author: &PublicKey, d: &str) -> Option<&StateInfo> {
        self.states.get(d)?.get(author)
    }

    pub(crate) fn announcement_mut(&mut self, owner: &PublicKey, d: &str) -> Option<&mut AnnInfo> {
        self.anns.get_mut(d)?.get_mut(owner)
    }

    /// How many announcements of `d` are indexed (for the per-identifier cap).
    pub(crate) fn announcement_count(&self, d: &str) -> usize {
        self.anns.get(d).map_or(0, SmallMap::len)
    }

    pub(crate) fn announcements(&self, d: &str) -> impl Iterator<Item = (&PublicKey, &AnnInfo)> {
        self.anns.get(d).into_iter().flatten()
    }

    /// Puts `owner`'s latest announcement of `d`; returns what it changed in the
    /// confirmed sets of `d`.
    pub(crate) fn put_announcement(
        &mut self,
        owner: PublicKey,
        d: &str,
        info: AnnInfo,
    ) -> SetChange {
        let hosted = info.hosted;
        let waiting = info.is_waiting_repo();
        let before = self.snapshot(&owner, d);
        let old = self
            .anns
            .entry(d.to_owned())
            .or_default()
            .insert(owner, info);
        self.count_hosted(owner, old.as_ref().is_some_and(|a| a.hosted), hosted);
        self.count_waiting(old.as_ref().is_some_and(AnnInfo::is_waiting_repo), waiting);
        let new_relays = self
            .anns
            .get(d)
            .and_then(|m| m.get(&owner))
            .map(|a| a.relays.clone())
            .unwrap_or_default();
        if old.as_ref().map(|a| &a.relays) != Some(&new_relays) {
            if let Some(old) = &old {
                self.listings.remove(d, &old.relays);
            }
            self.listings.add(d, &new_relays);
        }
        self.recompute_sets(d, before)
    }

    fn count_waiting(&mut self, before: bool, after: bool) {
        match (before, after) {
            (false, true) => self.waiting_repos += 1,
            (true, false) => self.waiting_repos -= 1,
            _ => {}
        }
    }

    /// Which relays the accepted announcements list (the peers of relay sync).
    pub(crate) fn relay_listings(&self) -> &RelayListings {
        &self.listings
    }

    /// Hosted announcements waiting with a bare repository, for the total cap.
    pub(crate) fn waiting_repos(&self) -> usize {
        self.waiting_repos
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

    /// Removes `owner`'s announcement of `d`; the sets that depended on it are recomputed.
    pub(crate) fn remove_announcement(&mut self, owner: &PublicKey, d: &str) -> Option<AnnInfo> {
        let before = self.snapshot(owner, d);
        let m = self.anns.get_mut(d)?;
        let out = m.remove(owner);
        if m.is_empty() {
            self.anns.remove(d);
        }
        self.count_hosted(*owner, out.as_ref().is_some_and(|a| a.hosted), false);
        self.count_waiting(out.as_ref().is_some_and(AnnInfo::is_waiting_repo), false);
        if let Some(a) = &out {
            self.listings.remove(d, &a.relays);
        }
        self.recompute_sets(d, before);
        out
    }

    /// Before `author`'s announcement of `d` changes: the owners whose sets may change
    /// with it — the author and every owner whose listings reach it (an owner standing
    /// alone reaches only itself, so a stranger's announcement touches one set, not
    /// every owner's) — with their confirmed sets and maintainer-count contributions.
    fn snapshot(&self, author: &PublicKey, d: &str) -> Vec<Affected> {
        let mut owners: Vec<PublicKey> = self
            .sets
            .get(d)
            .into_iter()
            .flatten()
            .filter(|(o, s)| *o != author && s.reaches(author))
            .map(|(o, _)| *o)
            .collect();
        owners.push(*author);
        owners
            .into_iter()
            .map(|owner| Affected {
                owner,
                confirmed: self.sets(&owner, d).confirmed().clone(),
                counted: self.contribution(&owner, d),
                authority: self.authority_key(&owner, d),
            })
            .collect()
    }

    /// The version of the state that governs `owner`'s repository of `d`.
    fn authority_key(&self, owner: &PublicKey, d: &str) -> Option<crate::version::Version> {
        self.authoritative(&RepoId::new(*owner, d))
            .map(StateInfo::order_key)
    }

    /// Recomputes the sets of the `affected` owners of `d` (the announcements have
    /// changed already) and brings the maintainer counts up to date.
    fn recompute_sets(&mut self, d: &str, affected: Vec<Affected>) -> SetChange {
        let memberships: BTreeMap<PublicKey, &Membership> = self
            .announcements(d)
            .map(|(o, a)| (*o, &a.membership))
            .collect();
        let computed: Vec<(PublicKey, Option<MaintainerSets>)> = affected
            .iter()
            .map(|a| {
                let o = &a.owner;
                let sets = memberships
                    .contains_key(o)
                    .then(|| MaintainerSets::compute(*o, &memberships, self.model))
                    .filter(|s| !s.is_alone(o));
                (*o, sets)
            })
            .collect();
        for (o, sets) in computed {
            match sets {
                Some(sets) => {
                    self.sets.entry(d.to_owned()).or_default().insert(o, sets);
                }
                None => {
                    if let Some(m) = self.sets.get_mut(d) {
                        m.remove(&o);
                        if m.is_empty() {
                            self.sets.remove(d);
                        }
                    }
                }
            }
        }
        let mut change = SetChange::default();
        for a in affected {
            let now = self.contribution(&a.owner, d);
            self.count_maintaining(&a.counted, &now);
            if *self.sets(&a.owner, d).confirmed() == a.confirmed {
                continue;
            }
            change.changed = true;
            if self.authority_key(&a.owner, d) > a.authority {
                change.promoted.push(a.owner);
            }
        }
        change
    }

    /// What `owner`'s repository of `d` adds to the maintainer counts: its confirmed
    /// maintainers while it is hosted and not soft-expired.
    fn contribution(&self, owner: &PublicKey, d: &str) -> BTreeSet<PublicKey> {
        let live = self
            .announcement(owner, d)
            .is_some_and(|a| a.hosted && a.status != AnnStatus::SoftExpired);
        if live {
            self.sets(owner, d).confirmed().clone()
        } else {
            BTreeSet::new()
        }
    }

    fn count_maintaining(&mut self, before: &BTreeSet<PublicKey>, after: &BTreeSet<PublicKey>) {
        for pk in before.difference(after) {
            if let Some(n) = self.maintaining.get_mut(pk) {
                *n -= 1;
                if *n == 0 {
                    self.maintaining.remove(pk);
                }
            }
        }
        for pk in after.difference(before) {
            *self.maintaining.entry(*pk).or_default() += 1;
        }
    }

    /// Sets the status of `owner`'s announcement of `d` (a soft-expired one hosts nothing).
    pub(crate) fn set_status(&mut self, owner: &PublicKey, d: &str, status: AnnStatus) {
        let before = self.contribution(owner, d);
        if let Some(a) = self.announcement_mut(owner, d) {
            let was = a.is_waiting_repo();
            a.status = status;
            let is = a.is_waiting_repo();
            self.count_waiting(was, is);
            let after = self.contribution(owner, d);
            self.count_maintaining(&before, &after);
        }
    }

    /// Whether `pk` is in the maintainer set of some repository hosted here.
    pub(crate) fn maintains_hosted(&self, pk: &PublicKey) -> bool {
        self.maintaining.contains_key(pk)
    }

    /// The maintainer sets of `(owner, d)`.
    pub(crate) fn sets(&self, owner: &PublicKey, d: &str) -> Cow<'_, MaintainerSets> {
        match self.sets.get(d).and_then(|m| m.get(owner)) {
            Some(sets) => Cow::Borrowed(sets),
            None => Cow::Owned(MaintainerSets::alone(*owner)),
        }
    }

    /// Whether `pk` is a confirmed maintainer of `(owner, d)`: authority for pushes,
    /// alignment and release.
    pub(crate) fn is_maintainer(&self, owner: &PublicKey, d: &str, pk: &PublicKey) -> bool {
        confirms(self.sets.get(d), owner, pk)
    }

    /// The owners of `d` whose announcement passes `keep` and whose confirmed set holds
    /// `pk`. The sets of `d` are looked up once (a keyed hash of the name), not once per
    /// announcement: a state's verdict asks this several times.
    pub(crate) fn owners_confirming<'a>(
        &'a self,
        d: &'a str,
        pk: &'a PublicKey,
        keep: impl Fn(&AnnInfo) -> bool + 'a,
    ) -> impl Iterator<Item = &'a PublicKey> + 'a {
        let sets = self.sets.get(d);
        self.announcements(d)
            .filter(move |(_, a)| keep(a))
            .filter(move |(owner, _)| confirms(sets, owner, pk))
            .map(|(owner, _)| owner)
    }

    /// Hosted announcements per owner, for the repositories-per-author cap.
    pub(crate) fn hosted_count(&self, owner: &PublicKey) -> usize {
        self.hosted.get(owner).copied().unwrap_or(0)
    }

    /// The confirmed maintainers of `(owner, d)`.
    pub(crate) fn maintainers(&self, owner: &PublicKey, d: &str) -> BTreeSet<PublicKey> {
        match self.sets.get(d).and_then(|m| m.get(owner)) {
            Some(sets) => sets.confirmed().clone(),
            None => BTreeSet::from([*owner]),
        }
    }

    /// Whether `author` is a candidate maintainer of some announcement of `d` (its states
    /// are accepted; they count once it is confirmed).
    pub(crate) fn is_any_candidate(&self, author: &PublicKey, d: &str) -> bool {
        let sets = self.sets.get(d);
        self.announcements(d)
            .any(|(owner, _)| match sets.and_then(|m| m.get(owner)) {
                Some(sets) => sets.is_candidate(author),
                None => owner == author,
            })
    }

    /// Whether another owner's listings reach `author` (declines not removed): its
    /// announcement of `d` is stored although it does not list this server, since it may
    /// be exactly the acceptance or departure that changes a confirmed set.
    pub(crate) fn reached_by_other(&self, author: &PublicKey, d: &str) -> bool {
        self.sets
            .get(d)
            .into_iter()
            .flatten()
            .any(|(o, s)| o != author && s.reaches(author))
    }

    /// If `pk` is only invited to maintain a repository of `d` (and confirmed for none):
    /// what to tell it and the operator.
    pub(crate) fn invited_note(&self, pk: &PublicKey, d: &str) -> Option<String> {
        let sets = self.sets.get(d)?;
        let confirmed = sets.values().any(|s| s.is_confirmed(pk));
        let invited = sets.values().any(|s| s.is_invited(pk));
        (invited && !confirmed).then(|| invited_message(pk, d))
    }

    /// If nobody is confirmed to maintain `(owner, d)`, why (nobody may push to it).
    pub(crate) fn no_seed_note(&self, owner: &PublicKey, d: &str) -> Option<String> {
        let why = self.sets.get(d)?.get(owner)?.no_seed()?.describe();
        Some(format!("nobody may push to '{d}' yet: {why}"))
    }

    /// Whether `author` is a confirmed maintainer of some hosted repository of `d`: only
    /// then does its (non-hosting) announcement contribute clone URLs.
    pub(crate) fn confirmed_for_hosted(&self, author: &PublicKey, d: &str) -> bool {
        self.owners_confirming(d, author, |a| a.hosted)
            .next()
            .is_some()
    }

    /// The hosted repositories (with a bare repository now) `author`'s state governs.
    pub(crate) fn targets(&self, author: &PublicKey, d: &str) -> Vec<RepoId> {
        self.owners_confirming(d, author, |a| {
            a.hosted && a.status != AnnStatus::SoftExpired
        })
        .map(|owner| RepoId::new(*owner, d))
        .collect()
    }

    /// Soft-expired or purgatory announcements `author`'s state would revive or refresh.
    pub(crate) fn waiting_owners(&self, author: &PublicKey, d: &str) -> Vec<PublicKey> {
        self.owners_confirming(d, author, |a| a.hosted && a.status != AnnStatus::Served)
            .copied()
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
#[path = "repo_index_tests.rs"]
mod tests;
