//! One server's disk, in memory: bare repositories (objects, refs, HEAD), the relay's
//! event store and the purgatory journal. Plain data with the operations the effects
//! need; [`super::Memory`] keeps two of them (what is visible and what is durable).

use std::collections::{BTreeMap, BTreeSet};

use grasp_core::nostr::prelude::{Coordinate, Event, EventId, PublicKey, Timestamp};
use grasp_core::{JournalKey, JournalRecord, Oid, RepoId, Version};

/// One bare repository.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalRepo {
    /// Objects it holds (opaque ids: holding one means holding what it reaches).
    pub objects: BTreeSet<Oid>,
    /// Every ref.
    pub refs: BTreeMap<String, Oid>,
    /// The branch HEAD points at.
    pub head: Option<String>,
}

/// Everything a server keeps on disk.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    /// Bare repositories.
    pub repos: BTreeMap<RepoId, LocalRepo>,
    /// Stored events, in store order (their order on restart).
    pub events: Vec<Event>,
    /// Ids of stored events.
    pub stored: BTreeSet<EventId>,
    /// The purgatory journal.
    pub journal: BTreeMap<JournalKey, JournalRecord>,
}

/// How the store orders versions of a replaceable event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VersionOrder {
    /// NIP-01: newest `created_at`, then the lowest id (what LMDB and the engine do).
    #[default]
    Nip01,
    /// The oldest version wins (a comparator turned around), kept to show that the
    /// simulator catches a store and an engine that disagree on versions.
    Reversed,
}

impl VersionOrder {
    /// Whether the store keeps `a` rather than `b` (two versions of one coordinate).
    fn prefers(self, a: &Event, b: &Event) -> bool {
        let (a, b) = (
            Version::new(a.created_at, a.id),
            Version::new(b.created_at, b.id),
        );
        match self {
            VersionOrder::Nip01 => a.supersedes(&b),
            VersionOrder::Reversed => b.supersedes(&a),
        }
    }
}

/// A save's effect on the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// Newly stored.
    New,
    /// Stored before.
    Again,
    /// Another version of the same coordinate is kept instead.
    KeptOther,
}

fn coordinate_of(e: &Event) -> Option<(u16, PublicKey, String)> {
    let k = e.kind.as_u16();
    let d = if (30000..40000).contains(&k) {
        e.tags.identifier().unwrap_or_default().to_owned()
    } else if (10000..20000).contains(&k) || k == 0 || k == 3 {
        String::new()
    } else {
        return None;
    };
    Some((k, e.pubkey, d))
}

/// Whether an accepted deletion by `author` of `ids` and `coordinates` (each up to its
/// timestamp) removes `e`.
pub fn is_deleted_by(
    e: &Event,
    author: &PublicKey,
    ids: &[EventId],
    coordinates: &[(Coordinate, Timestamp)],
) -> bool {
    e.pubkey == *author
        && (ids.contains(&e.id)
            || coordinates.iter().any(|(c, until)| {
                c.kind == e.kind
                    && e.created_at <= *until
                    && e.tags.identifier() == Some(c.identifier.clone())
            }))
}

impl Disk {
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
    pub fn align(&mut self, repo: &RepoId, refs: &[(String, Oid)], head: Option<&str>) {
        let Some(r) = self.repos.get_mut(repo) else {
            return;
        };
        r.refs.retain(|n, _| !grasp_core::is_branch_or_tag(n));
        r.refs.extend(refs.iter().cloned());
        if let Some(h) = head.filter(|h| r.refs.contains_key(*h)) {
            r.head = Some(h.to_owned());
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

    /// Whether the store keeps a newer version of `event`'s coordinate (so that saving
    /// it changes nothing).
    pub fn keeps_newer(&self, event: &Event, order: VersionOrder) -> bool {
        let Some(c) = coordinate_of(event) else {
            return false;
        };
        self.events
            .iter()
            .filter(|e| coordinate_of(e).as_ref() == Some(&c))
            .any(|e| order.prefers(e, event))
    }

    /// Stores an event as a relay database does: of a replaceable event only the
    /// newest version in `order` is kept.
    pub fn store_event(&mut self, event: &Event, order: VersionOrder) -> Stored {
        if self.stored.contains(&event.id) {
            return Stored::Again;
        }
        if let Some(c) = coordinate_of(event) {
            if self.keeps_newer(event, order) {
                return Stored::KeptOther;
            }
            let older: Vec<EventId> = self
                .events
                .iter()
                .filter(|e| coordinate_of(e).as_ref() == Some(&c))
                .map(|e| e.id)
                .collect();
            self.delete_events(&older);
        }
        self.stored.insert(event.id);
        self.events.push(event.clone());
        Stored::New
    }

    /// Removes stored events by id.
    pub fn delete_events(&mut self, ids: &[EventId]) {
        for id in ids {
            if self.stored.remove(id) {
                self.events.retain(|e| e.id != *id);
            }
        }
    }

    /// Deletes `author`'s events among `ids` and every version of each coordinate up to
    /// its timestamp (an accepted NIP-09 deletion).
    pub fn delete_by(
        &mut self,
        author: &PublicKey,
        ids: &[EventId],
        coordinates: &[(Coordinate, Timestamp)],
    ) {
        let doomed: Vec<EventId> = self
            .events
            .iter()
            .filter(|e| is_deleted_by(e, author, ids, coordinates))
            .map(|e| e.id)
            .collect();
        self.delete_events(&doomed);
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

    /// The stored version of `author`'s replaceable event of `kind` for `d`.
    pub fn served_version(&self, kind: u16, author: &PublicKey, d: &str) -> Option<EventId> {
        let c = (kind, *author, d.to_owned());
        self.events
            .iter()
            .find(|e| coordinate_of(e).as_ref() == Some(&c))
            .map(|e| e.id)
    }
}
