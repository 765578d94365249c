//! The one release path: whatever brought git data here — a push, a fetch, or a check on
//! arrival — this code finds every satisfiable waiting event, re-checks authorization,
//! emits the git work that brings every governed repository into line, stores and
//! notifies the events, and forgets them from purgatory.

use crate::effect::{Effect, ServePath};
use crate::engine::Engine;
use crate::ident::Ident;
use crate::journal::JournalKey;
use crate::oid::Oid;
use crate::purgatory::Waiting;
use crate::repo::RepoId;
use crate::repo_index::{AnnStatus, StateInfo};
use crate::version::Version;
use nostr::prelude::EventId;
use std::collections::{BTreeMap, BTreeSet};

impl Engine {
    /// Records that `oids` exist in `repo`, for those some waiting event of `d` needs;
    /// returns whether there was any.
    pub(crate) fn note_present(
        &mut self,
        d: Ident,
        oids: impl IntoIterator<Item = Oid>,
        repo: &RepoId,
    ) -> bool {
        // From a contributor repository, objects known present elsewhere count too: it
        // may be the only source its own npub's pull requests may be released from.
        let needed = if repo.is_prs() {
            self.wanted_of(d)
        } else {
            self.needs_of(d)
        };
        let found: Vec<Oid> = oids.into_iter().filter(|o| needed.contains(o)).collect();
        if found.is_empty() {
            return false;
        }
        let map = self.present.get_or_default(d);
        for o in found {
            match map.entry(o) {
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(repo.clone());
                }
                // A contributor repository is a source for its own npub's pull requests
                // only: the latest one to hold the object replaces it (a hosted one
                // stays), so that another npub's push does not shadow the author's.
                std::collections::btree_map::Entry::Occupied(mut o) if o.get().is_prs() => {
                    o.insert(repo.clone());
                }
                std::collections::btree_map::Entry::Occupied(_) => {}
            }
        }
        true
    }

    fn is_present(&self, d: Ident, oid: &Oid) -> bool {
        self.present.get(&d).is_some_and(|p| p.contains_key(oid))
    }

    /// Releases every waiting event of `d` whose data is all here and whose author is
    /// authorized now. Repeats until nothing more is released, since a released state can
    /// satisfy a waiting announcement.
    pub(crate) fn release_ready(&mut self, d: Ident, path: ServePath) {
        if !self.present.contains_key(&d) {
            return; // nothing needed is known present: nothing can be satisfied
        }
        // Taken now: releasing the last entry frees the handle.
        let name = self.idents.name(d).to_owned();
        loop {
            let mut released = false;
            // Newest states first: an older state released in the same step then finds
            // a newer authoritative one and aligns nothing (no transient rollback).
            let mut ids: Vec<(bool, std::cmp::Reverse<Version>)> = self
                .purgatory
                .entries_of(Some(d))
                .map(|e| {
                    (
                        !matches!(e.what, Waiting::State(_)),
                        std::cmp::Reverse(Version::new(e.event.created_at, e.event.id)),
                    )
                })
                .collect();
            ids.sort();
            for id in ids.into_iter().map(|(_, std::cmp::Reverse(v))| v.id) {
                released |= self.try_release(&id, d, &name, path);
            }
            if !released {
                break;
            }
        }
        self.prune_present(d);
    }

    /// Releases waiting event `id` of identifier `d` (named `name`) if it can be.
    fn try_release(&mut self, id: &EventId, d: Ident, name: &str, path: ServePath) -> bool {
        let Some(entry) = self.purgatory.get(id) else {
            return false;
        };
        let author = entry.event.pubkey;
        match &entry.what {
            Waiting::State(refs) => {
                if refs.malformed || !refs.oids().iter().all(|o| self.is_present(d, o)) {
                    return false;
                }
                let targets = self.repos.targets(&author, name);
                if targets.is_empty() {
                    return false; // not (or no longer) authorized anywhere here
                }
                let info = StateInfo {
                    id: *id,
                    author,
                    created_at: entry.event.created_at,
                    refs: refs.clone(),
                };
                let sources = self.present.get(&d).cloned().unwrap_or_default();
                let mut aligned = false;
                for t in &targets {
                    aligned |= self.align_if_not_newer(t, &info, &sources, path);
                }
                if !aligned {
                    // A newer state governs every target, so none is aligned to this one;
                    // its objects may still lie in different repositories (one pushed to
                    // another owner's, one fetched here). Served, it must be whole in
                    // one: the author's own repository if it is a target, else the first.
                    let keeper = targets
                        .iter()
                        .find(|t| t.owner == author)
                        .unwrap_or(&targets[0])
                        .clone();
                    self.copy_missing(&keeper, &info, &sources);
                }
                if self
                    .repos
                    .state(&author, name)
                    .is_none_or(|s| s.order_key() < info.order_key())
                {
                    self.repos.put_state(author, name, info);
                }
                self.serve_waiting(id, path);
                true
            }
            Waiting::Pr { pr, .. } => {
                let Ok(tip) = pr.tip else {
                    return false;
                };
                if !self.is_present(d, &tip) {
                    return false;
                }
                let targets = self.pr_repos(&pr.repos);
                let Some(source) = self.present.get(&d).and_then(|p| p.get(&tip)).cloned() else {
                    return false;
                };
                // A contributor repository holds data for its own npub's pull requests only.
                if source.is_prs() && source.owner != author {
                    return false;
                }
                let repos = pr.repos.clone();
                for t in targets.iter().chain(&self.prs_repos_of(&author, &repos)) {
                    self.forget_placeholder(t, id);
                }
                self.mirror_pr(*id, tip, &source, &targets);
                self.pr_tips.insert(*id, tip);
                self.note_pr_scope(*id, author, &repos);
                self.serve_waiting(id, path);
                true
            }
            Waiting::Announcement => {
                let repo = RepoId::new(author, name);
                let Some(state) = self.repos.authoritative(&repo).cloned() else {
                    return false;
                };
                if !state.refs.oids().iter().all(|o| self.is_present(d, o)) {
                    return false;
                }
                let sources = self.present.get(&d).cloned().unwrap_or_default();
                self.align_if_not_newer(&repo, &state, &sources, path);
                // align_if_not_newer served the announcement.
                !self.purgatory.contains(id)
            }
        }
    }

    /// Brings `target` into line with `state` unless it has a newer authoritative state:
    /// copies missing objects from where they are, sets branches, tags and HEAD, and
    /// releases the target's waiting announcement. Returns whether it aligned `target`.
    pub(crate) fn align_if_not_newer(
        &mut self,
        target: &RepoId,
        state: &StateInfo,
        sources: &BTreeMap<Oid, RepoId>,
        path: ServePath,
    ) -> bool {
        if self
            .repos
            .authoritative(target)
            .is_some_and(|a| a.order_key() > state.order_key())
        {
            return false;
        }
        self.copy_missing(target, state, sources);
        self.emit(Effect::AlignRepo {
            repo: target.clone(),
            refs: state.refs.branches_and_tags().into_iter().collect(),
            head: state.refs.head.as_deref().map(str::to_owned),
        });
        if let Some(aid) = self
            .purgatory
            .announcement_of(&target.owner, self.idents.get(&target.d))
            .map(|e| e.event.id)
        {
            self.repos
                .set_status(&target.owner, &target.d, AnnStatus::Served);
            self.serve_waiting(&aid, path);
        }
        true
    }

    /// Copies into `target` the objects of `state` that are known present elsewhere.
    fn copy_missing(
        &mut self,
        target: &RepoId,
        state: &StateInfo,
        sources: &BTreeMap<Oid, RepoId>,
    ) {
        let mut by_source: BTreeMap<&RepoId, Vec<Oid>> = BTreeMap::new();
        for oid in state.refs.oids() {
            if let Some(src) = sources.get(&oid).filter(|s| *s != target) {
                by_source.entry(src).or_default().push(oid);
            }
        }
        for (from, oids) in by_source {
            self.emit(Effect::CopyObjects {
                from: from.clone(),
                to: target.clone(),
                oids,
            });
        }
    }

    /// Takes an event out of purgatory and serves it: store, notify, forget, answer.
    fn serve_waiting(&mut self, id: &EventId, path: ServePath) {
        let Some(entry) = self.take_entry(id) else {
            return;
        };
        self.counters.release_latency(self.now.since(entry.arrived));
        self.store(entry.event.unpack(), path);
        if entry.persisted {
            self.emit(Effect::Forget {
                key: JournalKey::Waiting(*id),
            });
        }
        self.forget_superseded_by(id);
        if let Some(token) = entry.reply() {
            self.reply(token, *id, true, "");
        }
    }

    /// Drops presence knowledge nobody needs any more.
    fn prune_present(&mut self, d: Ident) {
        if !self.present.contains_key(&d) {
            return;
        }
        let wanted: BTreeSet<Oid> = self.wanted_of(d).to_set();
        if let Some(map) = self.present.get_mut(&d) {
            map.retain(|o, _| wanted.contains(o));
            if map.is_empty() {
                self.present.remove(&d);
                self.free_ident_if_idle(d);
            }
        }
    }
}
