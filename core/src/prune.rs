//! Pruning the objects of lapsed placeholders.
//!
//! Anyone may push a `refs/nostr/<id>` placeholder; when it lapses its ref goes, and its
//! objects would stay on disk for good (git's own gc spares unreachable objects for two
//! weeks, and runs only when loose objects pile up). So a lapse arms a prune of its
//! repository after [`crate::Config::prune_delay`]: one timer per repository, which
//! further lapses join, so that however many placeholders lapse a repository is pruned at
//! most once per delay. When it fires, the engine names what must survive although no ref
//! reaches it yet — every object the waiting events of that identifier need (fetched or
//! pushed ahead of their release), and the states that govern the repository — and the
//! driver removes the rest.

use crate::effect::Effect;
use crate::engine::{Engine, TimerKey};
use crate::oid::Oid;
use crate::repo::RepoId;
use std::collections::BTreeSet;

impl Engine {
    /// A placeholder of `repo` lapsed or was dropped: arm its repository's prune, unless
    /// one is armed already.
    pub(crate) fn schedule_prune(&mut self, repo: &RepoId) {
        let key = TimerKey::Prune(Box::new(repo.clone()));
        if !self.timers.is_armed(&key) {
            let at = self.now.plus(self.config.prune_delay);
            self.timers.set(key, at);
        }
    }

    /// The prune of `repo` is due: emit it with the objects to keep.
    pub(crate) fn prune_repo(&mut self, repo: &RepoId) {
        let mut keep: BTreeSet<Oid> = self
            .ident(&repo.d)
            .map(|d| self.wanted_of(d).to_set())
            .unwrap_or_default();
        for state in self.repos.authorized_states(repo) {
            keep.extend(state.refs.oids());
        }
        self.emit(Effect::PruneObjects {
            repo: repo.clone(),
            keep: keep.into_iter().collect(),
        });
    }
}
