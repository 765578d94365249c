//! Our server's durable side, in memory: bare repositories (objects, refs, HEAD), the
//! relay's event store, and the purgatory journal. It executes the engine's local
//! effects and survives restarts (only the engine is rebuilt).

use grasp_core::nostr::prelude::{Event, EventId};
use grasp_core::{JournalKey, JournalRecord, Oid, RepoId};
use std::collections::{BTreeMap, BTreeSet};

/// One bare repository.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalRepo {
    /// Objects it holds.
    pub objects: BTreeSet<Oid>,
    /// Every ref.
    pub refs: BTreeMap<String, Oid>,
    /// The branch HEAD points at.
    pub head: Option<String>,
}

/// Everything our server keeps on disk.
#[derive(Clone, Debug, Default)]
pub struct Store {
    /// Bare repositories.
    pub repos: BTreeMap<RepoId, LocalRepo>,
    /// Stored events, in store order (their order on restart).
    pub events: Vec<Event>,
    /// Ids of stored events.
    pub stored: BTreeSet<EventId>,
    /// The purgatory journal.
    pub journal: BTreeMap<JournalKey, JournalRecord>,
}

impl Store {
    /// `git init --bare` if absent.
    pub fn create_repo(&mut self, repo: &RepoId) {
        self.repos.entry(repo.clone()).or_default();
    }

    /// Deletes the repository.
    pub fn delete_repo(&mut self, repo: &RepoId) {
        self.repos.remove(repo);
    }

    /// Which of `oids` exist in which of `repos` (the first repository holding each).
    pub fn check(&self, repos: &[RepoId], oids: &[Oid]) -> Vec<(Oid, RepoId)> {
        oids.iter()
            .filter_map(|o| {
                repos
                    .iter()
                    .find(|r| self.repos.get(*r).is_some_and(|l| l.objects.contains(o)))
                    .map(|r| (*o, r.clone()))
            })
            .collect()
    }

    /// Adds objects to a repository; false if it does not exist.
    pub fn add_objects(&mut self, repo: &RepoId, oids: &[Oid]) -> bool {
        match self.repos.get_mut(repo) {
            Some(r) => {
                r.objects.extend(oids.iter().copied());
                true
            }
            None => false,
        }
    }

    /// Copies the objects `from` holds among `oids` into `to`.
    pub fn copy(&mut self, from: &RepoId, to: &RepoId, oids: &[Oid]) {
        let have: Vec<Oid> = self
            .repos
            .get(from)
            .map(|r| {
                oids.iter()
                    .filter(|o| r.objects.contains(o))
                    .copied()
                    .collect()
            })
            .unwrap_or_default();
        self.add_objects(to, &have);
    }

    /// Makes the branches and tags exactly `refs` and points HEAD at `head` if it exists.
    pub fn align(&mut self, repo: &RepoId, refs: &[(String, Oid)], head: &Option<String>) {
        let Some(r) = self.repos.get_mut(repo) else {
            return;
        };
        r.refs.retain(|n, _| !grasp_core::is_branch_or_tag(n));
        r.refs.extend(refs.iter().cloned());
        if let Some(h) = head.as_ref().filter(|h| r.refs.contains_key(*h)) {
            r.head = Some(h.clone());
        }
    }

    /// Sets or deletes one ref.
    pub fn set_ref(&mut self, repo: &RepoId, name: &str, target: Option<Oid>) {
        let Some(r) = self.repos.get_mut(repo) else {
            return;
        };
        match target {
            Some(o) => r.refs.insert(name.to_owned(), o),
            None => r.refs.remove(name),
        };
    }

    /// Stores an event (the relay database); false if it was stored before.
    pub fn store_event(&mut self, event: &Event) -> bool {
        if !self.stored.insert(event.id) {
            return false;
        }
        self.events.push(event.clone());
        true
    }

    /// Removes stored events (NIP-09) by id.
    pub fn delete_events(&mut self, ids: &[EventId]) {
        for id in ids {
            if self.stored.remove(id) {
                self.events.retain(|e| e.id != *id);
            }
        }
    }

    /// `git prune` (without a grace period: the harshest): every object that no ref of
    /// the repository names and `keep` does not list goes.
    pub fn prune(&mut self, repo: &RepoId, keep: &[Oid]) {
        if let Some(r) = self.repos.get_mut(repo) {
            let named: BTreeSet<Oid> = r.refs.values().copied().collect();
            r.objects.retain(|o| named.contains(o) || keep.contains(o));
        }
    }

    /// Whether a repository holds every one of `oids`.
    pub fn holds_all(&self, repo: &RepoId, oids: &[Oid]) -> bool {
        self.repos
            .get(repo)
            .is_some_and(|r| oids.iter().all(|o| r.objects.contains(o)))
    }

    /// The branch and tag refs of a repository.
    pub fn branches(&self, repo: &RepoId) -> BTreeMap<String, Oid> {
        self.repos
            .get(repo)
            .map(|r| {
                r.refs
                    .iter()
                    .filter(|(n, _)| grasp_core::is_branch_or_tag(n))
                    .map(|(n, o)| (n.clone(), *o))
                    .collect()
            })
            .unwrap_or_default()
    }
}
