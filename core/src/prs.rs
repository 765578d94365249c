//! GRASP-06 pushes: the contributor endpoint `/prs/<npub>/<d>.git`, where anyone may push
//! the commits of a pull request. The signed pull request is the only credential, so a
//! push there may only set `refs/nostr/<event-id>`, and only for an id that is unknown
//! (a placeholder scoped to the URL's npub and identifier) or names a pull request by
//! that npub for that identifier with that tip (GRASP-06.md §4). What lands goes through
//! the one release path ([`crate::release`]).

use crate::engine::Engine;
use crate::input::{PushRequest, PushVerdict, RefUpdate};
use crate::oid::Oid;
use crate::purgatory::Waiting;
use crate::push::nostr_ref_id;
use crate::repo::{RepoId, npub};
use nostr::prelude::{Coordinate, EventId, PublicKey};

/// Who signed a stored pull request and what it tags: what a `/prs/` push for its id is
/// checked against.
#[derive(Clone, Debug)]
pub(crate) struct PrScope {
    pub(crate) author: PublicKey,
    pub(crate) repos: Box<[Coordinate]>,
}

/// What the engine knows of an event id a `/prs/` push names.
enum Known {
    /// Neither stored nor waiting: the push makes a placeholder.
    Unknown,
    /// Stored or waiting, and not a pull request we know the scope of.
    Other,
    /// A pull request or update: signer, tagged repositories, tip.
    Pr {
        author: PublicKey,
        repos: Vec<Coordinate>,
        tip: Result<Oid, String>,
    },
}

impl Engine {
    /// The §4 verdict on a push to contributor repository `req.repo`. Every ref is
    /// refused when GRASP-06 is off or the push names more refs than allowed; a refused
    /// ref makes git run for none.
    pub(crate) fn decide_prs_push(&self, req: &PushRequest) -> PushVerdict {
        let all = |why: String| PushVerdict {
            refs: req
                .updates
                .iter()
                .map(|u| (u.name.clone(), Err(why.clone())))
                .collect(),
        };
        if !self.config.grasp06 {
            return all("contributor pushes (GRASP-06) are not served here".to_owned());
        }
        let cap = self.config.prs_refs_per_push;
        if req.updates.len() > cap {
            return all(format!("at most {cap} refs per push here"));
        }
        let budget = self.prs_placeholder_budget(req);
        let refs = req
            .updates
            .iter()
            .map(|u| {
                let r = self.decide_prs_ref(&req.repo, u).and_then(|()| {
                    match (&budget, self.makes_placeholder(&req.repo, u)) {
                        (Err(why), true) => Err(why.clone()),
                        _ => Ok(()),
                    }
                });
                (u.name.clone(), r)
            })
            .collect();
        PushVerdict { refs }
    }

    fn decide_prs_ref(&self, repo: &RepoId, u: &RefUpdate) -> Result<(), String> {
        let Some(id) = nostr_ref_id(&u.name) else {
            return Err("only refs/nostr/<event-id> may be pushed to /prs/ URLs".to_owned());
        };
        let Ok(id) = id else {
            return Err(
                "refs/nostr/ refs must be named refs/nostr/<64 lowercase hex event id>".to_owned(),
            );
        };
        let Some(new) = u.new else {
            return Err("refs/nostr/<event-id> refs cannot be deleted by a push".to_owned());
        };
        let not_ours = || {
            format!(
                "event {} is not a pull request by {} for '{}'",
                id.to_hex(),
                npub(&repo.owner),
                repo.d
            )
        };
        match self.known(&id) {
            Known::Unknown => Ok(()),
            Known::Other => Err(not_ours()),
            Known::Pr { author, repos, tip } => {
                if author != repo.owner || !repos.iter().any(|c| c.identifier == repo.d) {
                    return Err(not_ours());
                }
                match tip {
                    Ok(tip) if tip == new => Ok(()),
                    Ok(tip) => Err(format!(
                        "the pull request event {} names tip {tip}, not {new}",
                        id.to_hex()
                    )),
                    Err(raw) => Err(format!(
                        "the pull request event names tip '{raw}', which is not an object id"
                    )),
                }
            }
        }
    }

    fn known(&self, id: &EventId) -> Known {
        if let Some(e) = self.purgatory.get(id) {
            return match &e.what {
                Waiting::Pr { pr, .. } => Known::Pr {
                    author: e.event.pubkey,
                    repos: pr.repos.to_vec(),
                    tip: pr.tip.clone().map_err(String::from),
                },
                _ => Known::Other,
            };
        }
        match (self.pr_tips.get(id), self.pr_scopes.get(id)) {
            (Some(tip), Some(scope)) => Known::Pr {
                author: scope.author,
                repos: scope.repos.to_vec(),
                tip: Ok(*tip),
            },
            (Some(_), None) => Known::Other,
            (None, _) if self.related.is_accepted(id) => Known::Other,
            (None, _) => Known::Unknown,
        }
    }

    /// The per-npub budget of unconfirmed `/prs/` pushes, then the general placeholder
    /// budget (per push, per address, in total). Only ids no event is known for count:
    /// filling an npub's slots cannot block pushes for published pull requests.
    fn prs_placeholder_budget(&self, req: &PushRequest) -> Result<(), String> {
        let new = req
            .updates
            .iter()
            .filter(|u| self.makes_placeholder(&req.repo, u))
            .count();
        if new == 0 {
            return Ok(());
        }
        let cap = self.config.prs_placeholders_per_npub;
        let held = self.purgatory.placeholders.count_prs_of(&req.repo.owner);
        if held + new > cap {
            return Err(format!(
                "too many unconfirmed pushes for {} (limit {cap}); publish the pull request event first",
                npub(&req.repo.owner)
            ));
        }
        let limits = &self.config.limits;
        match self
            .purgatory
            .placeholders
            .refusal(limits, &req.repo, req.client.as_deref(), new)
        {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    /// The contributor repositories a pull request by `author` tagging `repos` may have
    /// its commits in (none with GRASP-06 off): `/prs/<author>/<d>` per tagged `d`.
    pub(crate) fn prs_repos_of(&self, author: &PublicKey, repos: &[Coordinate]) -> Vec<RepoId> {
        if !self.config.grasp06 {
            return Vec::new();
        }
        let mut out: Vec<RepoId> = repos
            .iter()
            .filter(|c| crate::repo::is_safe_identifier(&c.identifier))
            .map(|c| RepoId::prs(*author, c.identifier.clone()))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Remembers a stored pull request's scope (GRASP-06 on only).
    pub(crate) fn note_pr_scope(&mut self, id: EventId, author: PublicKey, repos: &[Coordinate]) {
        if self.config.grasp06 {
            self.pr_scopes.insert(
                id,
                PrScope {
                    author,
                    repos: repos.into(),
                },
            );
        }
    }

    /// How long a placeholder in `repo` is kept: GRASP-06's own expiry in `/prs/`.
    pub(crate) fn placeholder_expiry(&self, repo: &RepoId) -> std::time::Duration {
        if repo.is_prs() {
            self.config.prs_placeholder_expiry
        } else {
            self.config.purgatory_expiry
        }
    }

    /// A stored pull request's author deleted it (NIP-09): its `/prs/` refs go too.
    pub(crate) fn drop_prs_refs(&mut self, author: &PublicKey, id: &EventId) {
        let Some(scope) = self.pr_scopes.get(id).cloned() else {
            return;
        };
        if scope.author != *author {
            return;
        }
        self.pr_scopes.remove(id);
        for repo in self.prs_repos_of(author, &scope.repos) {
            self.emit(crate::effect::Effect::SetRef {
                repo: repo.clone(),
                name: format!("refs/nostr/{}", id.to_hex()),
                target: None,
            });
            self.schedule_prune(&repo);
        }
    }
}
