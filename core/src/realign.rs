//! Re-aligning a served repository when an acceptance makes a newer stored state govern
//! it (MAINTAINERS.md: authority follows the confirmed set).
//!
//! An invitee's state is accepted (its author is a candidate) and may be stored — say it
//! governs the invitee's own fork here — before the invitee accepts. When they accept,
//! that state becomes authoritative for the inviting repository too; if it is newer than
//! what governed it, the repository must show it at once, not at the next push. Its
//! objects may sit in another repository of the identifier (the fork), so the engine
//! asks where they are (one object check, in the same repositories an event's check
//! looks in) and, when every object is found, copies what is missing and aligns the
//! refs through the one release path (`align_if_not_newer`). When some object is
//! nowhere here, the repository keeps its refs until a push or a state brings the data.

use crate::effect::{Effect, ServePath};
use crate::engine::{Engine, PendingCheck};
use crate::oid::Oid;
use crate::repo::RepoId;
use crate::repo_index::AnnStatus;
use nostr::prelude::PublicKey;
use std::collections::BTreeMap;

impl Engine {
    /// The repositories of `promoted` owners of `d` that are served (a waiting one is the
    /// release path's): asks where their newly authoritative state's objects are.
    pub(crate) fn realign_promoted(&mut self, d: &str, promoted: &[PublicKey]) {
        for owner in promoted {
            let served = self
                .repos
                .announcement(owner, d)
                .is_some_and(|a| a.hosted && a.status == AnnStatus::Served);
            if !served {
                continue;
            }
            let repo = RepoId::new(*owner, d);
            let Some(state) = self.repos.authoritative(&repo).cloned() else {
                continue;
            };
            let oids = state.refs.oids();
            let repos = self.check_repos(d, std::slice::from_ref(&repo), &state.author);
            if oids.is_empty() || repos.is_empty() {
                continue;
            }
            let check = self.next_check();
            self.checks.insert(
                check,
                PendingCheck {
                    d: d.to_owned(),
                    event: None,
                    gone: Vec::new(),
                    realign: vec![repo],
                    retries: 0,
                },
            );
            self.emit(Effect::CheckObjects { check, repos, oids });
        }
    }

    /// A re-alignment check answered with `found`: aligns each of its repositories whose
    /// authoritative state (as it is now) has every object somewhere here.
    pub(crate) fn realign_checked(&mut self, pending: &PendingCheck, found: &[(Oid, RepoId)]) {
        let sources: BTreeMap<Oid, RepoId> = found
            .iter()
            .filter(|(_, r)| r.d == pending.d && !pending.gone.contains(r))
            .map(|(o, r)| (*o, r.clone()))
            .collect();
        for repo in &pending.realign {
            let served = self
                .repos
                .announcement(&repo.owner, &repo.d)
                .is_some_and(|a| a.hosted && a.status == AnnStatus::Served);
            let Some(state) = self.repos.authoritative(repo).cloned() else {
                continue;
            };
            if served && state.refs.oids().iter().all(|o| sources.contains_key(o)) {
                self.align_if_not_newer(repo, &state, &sources, ServePath::Arrival);
            }
        }
    }
}
