//! Object checks: "which of these objects are here already?", asked when an event
//! arrives or an announcement appears, and what the answer releases.
//!
//! A check names what changed and where it can be, never everything an identifier
//! holds: strangers may announce any identifier, and a check over every repository of
//! `d` for every object its events wait for grew with each of them (issue 14 item 3:
//! 1.9 s per announcement at 600 repositories, on the engine task). So:
//! - an event's check looks for that event's objects only;
//! - a new or changed announcement checks only the objects of the states that now
//!   govern the repositories it affects (none for a stranger's announcement);
//! - every check looks in at most [`crate::Limits::repos_per_check`] repositories,
//!   those of the author's own maintainer set first, then those the author governs,
//!   then the rest of `d`; the driver may stop as soon as each object is found once.
//!
//! Answers may come at any time later; an answer naming a repository that was deleted
//! after the check was asked is not believed (it may have been read before the
//! deletion, and the repository re-created empty since).

use crate::effect::Effect;
use crate::effect::{CheckId, ServePath};
use crate::engine::{Engine, PendingCheck};
use crate::oid::Oid;
use crate::repo::RepoId;
use crate::repo_index::{AnnStatus, SetChange};
use nostr::prelude::{EventId, PublicKey};
use std::collections::{BTreeMap, BTreeSet};

/// How many times a failed check that expiry waits for is asked again
/// ([`crate::Input::CheckFailed`]): enough for a passing fault (a blocking pool
/// panic, a full file table), few enough that a repository that cannot be read does
/// not hold expiry for ever.
pub const MAX_CHECK_RETRIES: u8 = 2;

impl Engine {
    /// Asks which of `oids` exist in the repositories of `d` where data of `author` can
    /// be (`first` before any other); the answer runs the release path and, for `event`,
    /// sends its verdict.
    pub(crate) fn check_objects(
        &mut self,
        d: &str,
        oids: Vec<Oid>,
        event: Option<EventId>,
        first: &[RepoId],
        author: &PublicKey,
    ) -> Option<CheckId> {
        let repos = self.check_repos(d, first, author);
        self.check_in(d, repos, oids, event)
    }

    /// Asks which of `oids` exist in `repos` (of identifier `d`); returns the check, if
    /// one was asked.
    pub(crate) fn check_in(
        &mut self,
        d: &str,
        repos: Vec<RepoId>,
        oids: Vec<Oid>,
        event: Option<EventId>,
    ) -> Option<CheckId> {
        if repos.is_empty() || oids.is_empty() {
            if let Some(id) = event {
                self.finalize_waiting(&id);
            }
            return None;
        }
        let check = self.next_check();
        self.checks.insert(
            check,
            PendingCheck {
                d: d.to_owned(),
                event,
                gone: Vec::new(),
                realign: Vec::new(),
                retries: 0,
            },
        );
        self.emit(Effect::CheckObjects { check, repos, oids });
        Some(check)
    }

    /// The repositories of `d` (that exist now) a check for data of `author` looks in,
    /// at most [`crate::Limits::repos_per_check`]: `first`; then those of the owners in
    /// `author`'s own maintainer set (chosen by the author, not by whoever lists them);
    /// then those whose maintainer set holds `author` (aligned to its states); then the
    /// others of `d`, in key order. When every repository of `d` fits, the order is only
    /// `first`, then key order: nothing is left out, so the preference is not computed
    /// (it was a third of a state verdict's instructions).
    pub(crate) fn check_repos(&self, d: &str, first: &[RepoId], author: &PublicKey) -> Vec<RepoId> {
        let cap = self.config.limits.repos_per_check;
        if self.repos.announcement_count(d) <= cap {
            let mut all = self.repos.repos(d);
            let firsts: Vec<RepoId> = first.iter().filter(|r| all.contains(r)).cloned().collect();
            all.retain(|r| !firsts.contains(r));
            return firsts.into_iter().chain(all).collect();
        }
        let exists = |owner: &PublicKey| {
            self.repos
                .announcement(owner, d)
                .is_some_and(|a| a.hosted && a.status != AnnStatus::SoftExpired)
        };
        let own_set = self.repos.maintainers(author, d);
        let mut out: Vec<RepoId> = Vec::new();
        let mut seen: BTreeSet<PublicKey> = BTreeSet::new();
        let candidates = first
            .iter()
            .filter(|r| r.d == d)
            .map(|r| r.owner)
            .chain(own_set.iter().copied())
            .chain(self.repos.owners_confirming(d, author, |_| true).copied())
            .chain(self.repos.announcements(d).map(|(o, _)| *o));
        for owner in candidates {
            if out.len() >= cap {
                break;
            }
            if exists(&owner) && seen.insert(owner) {
                out.push(RepoId::new(owner, d));
            }
        }
        out
    }

    /// After `owner`'s announcement of `d` was stored or put in purgatory: the waiting
    /// announcements it affects — its own, and, if a confirmed set changed (an
    /// acceptance, a departure, new listings), those whose confirmed set holds `owner` —
    /// may now be governed by a stored state whose data is here. Checks those states'
    /// objects that are not known present (nothing else of `d` changed); when a set
    /// changed runs the release path (states that waited for authority may count now)
    /// and re-aligns the served repositories a newer state governs now.
    pub(crate) fn after_announcement(&mut self, owner: &PublicKey, d: &str, change: SetChange) {
        let changed = change.changed;
        let owners = if changed {
            self.repos.waiting_owners(owner, d)
        } else {
            // No one's confirmed set changed (a stranger's announcement, or a replacement
            // with the same maintainers): only its own repository may be new.
            vec![*owner]
        };
        let ident = self.ident(d);
        let mut by_state: BTreeMap<EventId, (PublicKey, Vec<Oid>)> = BTreeMap::new();
        for o in owners {
            if self.purgatory.announcement_of(&o, ident).is_none() {
                continue;
            }
            let Some(s) = self.repos.authoritative(&RepoId::new(o, d)) else {
                continue;
            };
            by_state
                .entry(s.id)
                .or_insert_with(|| (s.author, s.refs.oids()));
        }
        for (author, oids) in by_state.into_values() {
            let missing: Vec<Oid> = oids
                .into_iter()
                .filter(|o| {
                    ident.is_none_or(|i| !self.present.get(&i).is_some_and(|p| p.contains_key(o)))
                })
                .collect();
            self.check_objects(d, missing, None, &[], &author);
        }
        if changed {
            if let Some(ident) = ident {
                self.release_ready(ident, ServePath::Arrival);
            }
        }
        self.realign_promoted(d, &change.promoted);
    }

    /// A repository is deleted: answers to checks asked before, which may have read it
    /// before it went, no longer tell where objects are.
    pub(crate) fn distrust_checks_of(&mut self, repo: &RepoId) {
        for pending in self.checks.values_mut() {
            if pending.d == repo.d && !pending.gone.contains(repo) {
                pending.gone.push(repo.clone());
            }
        }
    }

    /// Whether waiting entry `id`'s own objects are all known present.
    fn is_satisfied(&self, id: &EventId) -> bool {
        let Some(entry) = self.purgatory.get(id) else {
            return false;
        };
        // Nothing known present for the identifier (the usual answer "not found"): no
        // need to read the entry's needs.
        let Some(present) = self.present.get(&entry.ident) else {
            return false;
        };
        entry
            .own_needs()
            .is_some_and(|oids| !oids.is_empty() && oids.iter().all(|o| present.contains_key(o)))
    }

    pub(crate) fn on_objects_checked(&mut self, check: CheckId, found: Vec<(Oid, RepoId)>) {
        let Some(pending) = self.checks.remove(&check) else {
            return;
        };
        self.apply_found(&pending, found);
        if self.final_check_answered(check) {
            // The checks expiry waited for are in: what they did not release expires now.
            self.on_timeout();
        }
    }

    /// A check could not read every repository: what it found counts, what it did not
    /// find is not taken as absent. A check that expiry waits for is asked again (the
    /// same identifier's needs, all its repositories) up to [`MAX_CHECK_RETRIES`]
    /// times; after that expiry goes by the deadlines, as if no check had been made.
    pub(crate) fn on_check_failed(&mut self, check: CheckId, found: Vec<(Oid, RepoId)>) {
        let Some(pending) = self.checks.remove(&check) else {
            return;
        };
        self.apply_found(&pending, found);
        if !self.purgatory.final_check.is_held(check) {
            // An event's own check: its verdict is given (it waits), and the check before
            // its deadline looks again.
            return;
        }
        if pending.retries < MAX_CHECK_RETRIES
            && let Some(d) = self.ident(&pending.d)
        {
            let needs: Vec<Oid> = self.needs(Some(d)).into_iter().collect();
            let repos = self.repos.repos(&pending.d);
            if let Some(again) = self.check_in(&pending.d, repos, needs, None) {
                if let Some(p) = self.checks.get_mut(&again) {
                    p.retries = pending.retries + 1;
                }
                self.purgatory.final_check.hold(again);
            }
        }
        if self.final_check_answered(check) {
            self.on_timeout();
        }
    }

    /// Notes what a check found and runs what it can release; gives the verdict of the
    /// event that waited for it.
    fn apply_found(&mut self, pending: &PendingCheck, found: Vec<(Oid, RepoId)>) {
        if !pending.realign.is_empty() {
            self.realign_checked(pending, &found);
        }
        if let Some(d) = self.ident(&pending.d) {
            let mut by_repo: BTreeMap<RepoId, Vec<Oid>> = BTreeMap::new();
            for (oid, repo) in found {
                if repo.d == pending.d && !pending.gone.contains(&repo) {
                    by_repo.entry(repo).or_default().push(oid);
                }
            }
            let mut useful = false;
            for (repo, oids) in by_repo {
                useful |= self.note_present(d, oids, &repo);
            }
            // The event asked for may be satisfied by objects known present elsewhere.
            useful |= pending.event.is_some_and(|id| self.is_satisfied(&id));
            // Otherwise nothing needed was found, nothing can have become releasable, and
            // the release path walks every waiting event of `d`: skipped.
            if useful {
                self.release_ready(d, ServePath::Arrival);
            }
        }
        if let Some(id) = pending.event {
            self.finalize_waiting(&id);
        }
    }
}
