//! Git-first placeholders: a commit pushed to `refs/nostr/<event-id>` before the pull
//! request with that id arrived. Anyone may push one (no key is needed), so they have a
//! budget of their own — per push, per repository, per client address and in total —
//! checked before git writes anything, and never counted against the events waiting in
//! purgatory (an anonymous flood of placeholder refs once filled the events' total and
//! locked every announcement, state and pull request out).

use crate::config::Limits;
use crate::oid::Oid;
use crate::repo::RepoId;
use nostr::prelude::EventId;
use std::collections::BTreeMap;

/// One placeholder: the pushed commit, and who pushed it (for the per-address budget).
#[derive(Clone, Debug)]
pub(crate) struct Placeholder {
    pub(crate) oid: Oid,
    pub(crate) client: Option<String>,
}

/// Every placeholder, with the counts its budget is checked against.
#[derive(Debug, Default)]
pub(crate) struct Placeholders {
    map: BTreeMap<(RepoId, EventId), Placeholder>,
    per_repo: BTreeMap<RepoId, usize>,
    per_client: BTreeMap<String, usize>,
}

impl Placeholders {
    /// Placeholders held.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether `(repo, id)` has a placeholder.
    pub(crate) fn contains(&self, repo: &RepoId, id: &EventId) -> bool {
        self.map.contains_key(&(repo.clone(), *id))
    }

    /// Placeholders in the contributor repositories (`/prs/<npub>/…`) of `owner`, for
    /// GRASP-06's per-npub budget. Walks the repositories holding any (few per npub).
    pub(crate) fn count_prs_of(&self, owner: &nostr::prelude::PublicKey) -> usize {
        self.per_repo
            .iter()
            .filter(|(r, _)| r.is_prs() && r.owner == *owner)
            .map(|(_, n)| *n)
            .sum()
    }

    /// The placeholders of contributor repositories, for the operator view.
    pub(crate) fn iter_prs(&self) -> impl Iterator<Item = (&RepoId, &EventId)> {
        self.map
            .keys()
            .filter(|(r, _)| r.is_prs())
            .map(|(r, id)| (r, id))
    }

    /// Placeholders in contributor repositories, for the `prs_placeholder` gauge.
    pub(crate) fn count_prs(&self) -> usize {
        self.per_repo
            .iter()
            .filter(|(r, _)| r.is_prs())
            .map(|(_, n)| *n)
            .sum()
    }

    /// Why `new` more placeholders for `repo` from `client` would exceed the budget, as
    /// the reason `git push` shows; `None` if they fit.
    pub(crate) fn refusal(
        &self,
        limits: &Limits,
        repo: &RepoId,
        client: Option<&str>,
        new: usize,
    ) -> Option<String> {
        if new == 0 {
            return None;
        }
        if new > limits.placeholders_per_push {
            return Some(format!(
                "too many new refs/nostr/ refs in one push ({new}, limit {})",
                limits.placeholders_per_push
            ));
        }
        let in_repo = self.per_repo.get(repo).copied().unwrap_or(0);
        if in_repo + new > limits.placeholders_per_repo {
            return Some(format!(
                "rate-limited: this repository holds {in_repo} refs/nostr/ refs whose pull request has not arrived (limit {})",
                limits.placeholders_per_repo
            ));
        }
        let from_client = client.map_or(0, |c| self.per_client.get(c).copied().unwrap_or(0));
        if from_client + new > limits.placeholders_per_client {
            return Some(format!(
                "rate-limited: your address holds {from_client} refs/nostr/ refs whose pull request has not arrived (limit {})",
                limits.placeholders_per_client
            ));
        }
        if self.map.len() + new > limits.placeholders_total {
            return Some(format!(
                "rate-limited: this server holds its limit of refs/nostr/ refs waiting for their pull request ({})",
                limits.placeholders_total
            ));
        }
        None
    }

    /// Adds (or resets) a placeholder. A reset keeps its counts.
    pub(crate) fn insert(&mut self, repo: RepoId, id: EventId, p: Placeholder) {
        let client = p.client.clone();
        if let Some(old) = self.map.insert((repo.clone(), id), p) {
            self.uncount(&repo, old.client.as_deref());
        }
        *self.per_repo.entry(repo).or_default() += 1;
        if let Some(c) = client {
            *self.per_client.entry(c).or_default() += 1;
        }
    }

    /// Removes a placeholder.
    pub(crate) fn remove(&mut self, repo: &RepoId, id: &EventId) -> Option<Placeholder> {
        let p = self.map.remove(&(repo.clone(), *id))?;
        self.uncount(repo, p.client.as_deref());
        Some(p)
    }

    fn uncount(&mut self, repo: &RepoId, client: Option<&str>) {
        if let Some(n) = self.per_repo.get_mut(repo) {
            *n -= 1;
            if *n == 0 {
                self.per_repo.remove(repo);
            }
        }
        if let Some(c) = client {
            if let Some(n) = self.per_client.get_mut(c) {
                *n -= 1;
                if *n == 0 {
                    self.per_client.remove(c);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nostr::prelude::Keys;

    fn repo(n: u8) -> RepoId {
        let keys = Keys::parse(&format!("{:064x}", u64::from(n) + 1)).unwrap();
        RepoId::new(keys.public_key(), "r")
    }

    fn id(n: u8) -> EventId {
        EventId::from_byte_array([n; 32])
    }

    fn ph(client: &str) -> Placeholder {
        Placeholder {
            oid: Oid::parse(&"1".repeat(40)).unwrap(),
            client: Some(client.to_owned()),
        }
    }

    fn limits() -> Limits {
        Limits {
            placeholders_per_push: 2,
            placeholders_per_repo: 3,
            placeholders_per_client: 4,
            placeholders_total: 5,
            ..Limits::default()
        }
    }

    #[test]
    fn each_budget_refuses_with_its_own_reason() {
        let l = limits();
        let mut p = Placeholders::default();
        assert!(
            p.refusal(&l, &repo(1), Some("a"), 3)
                .unwrap()
                .contains("one push")
        );
        for i in 0..3 {
            p.insert(repo(1), id(i), ph("a"));
        }
        let r = p.refusal(&l, &repo(1), Some("b"), 1).unwrap();
        assert!(r.contains("this repository"), "{r}");
        p.insert(repo(2), id(9), ph("a"));
        let r = p.refusal(&l, &repo(3), Some("a"), 1).unwrap();
        assert!(r.contains("your address"), "{r}");
        p.insert(repo(3), id(8), ph("b"));
        let r = p.refusal(&l, &repo(4), Some("c"), 1).unwrap();
        assert!(r.contains("this server"), "{r}");
        assert!(p.refusal(&l, &repo(4), Some("c"), 0).is_none());
    }

    #[test]
    fn a_reset_keeps_counts_and_removal_frees_them() {
        let l = limits();
        let mut p = Placeholders::default();
        p.insert(repo(1), id(1), ph("a"));
        p.insert(repo(1), id(1), ph("b"));
        assert_eq!(p.len(), 1);
        assert!(p.remove(&repo(1), &id(1)).is_some());
        assert!(p.per_repo.is_empty() && p.per_client.is_empty());
        assert!(p.refusal(&l, &repo(1), Some("a"), 2).is_none());
    }
}
