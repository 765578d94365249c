//! Pull requests and updates (wait for their tip commit) and related events (accepted
//! when they reference, or are referenced by, something accepted here).

use crate::effect::{Effect, ReplyToken, ServePath};
use crate::engine::{Engine, TimerKey};
use crate::event::{self, Origin, PullRequest};
use crate::purgatory::Waiting;
use crate::repo::RepoId;
use nostr::prelude::{Coordinate, Event};

impl Engine {
    pub(crate) fn tags_known_repo(&self, pr: &PullRequest) -> bool {
        pr.repos.iter().any(|c| {
            self.repos
                .announcement(&c.public_key, &c.identifier)
                .is_some()
        })
    }

    pub(crate) fn on_pull_request(
        &mut self,
        token: ReplyToken,
        e: Event,
        origin: Origin,
        pr: PullRequest,
    ) {
        let id = e.id;
        let Some(d) = pr
            .repos
            .iter()
            .find(|c| {
                self.repos
                    .announcement(&c.public_key, &c.identifier)
                    .is_some()
            })
            .map(|c| c.identifier.clone())
        else {
            return self.on_related(token, e, origin);
        };
        let bytes = crate::packed::json_len_of(&e);
        if let Some(why) = self.purgatory_cap_refusal(&e.pubkey, &d, bytes, false) {
            return self.reply(token, id, false, why);
        }
        self.wait_for_pr(token, e, origin, pr, &d);
    }

    /// An accepted pull request `e` (of identifier `d`) waits for its tip: git-first
    /// placeholders for its id are settled, then its tip is looked for where it can be —
    /// the hosted repositories it tags and its author's `/prs/` repositories.
    pub(crate) fn wait_for_pr(
        &mut self,
        token: ReplyToken,
        e: Event,
        origin: Origin,
        pr: PullRequest,
        d: &str,
    ) {
        let id = e.id;
        let hosted = self.pr_repos(&pr.repos);
        let contributed = self.prs_repos_of(&e.pubkey, &pr.repos);
        // A git-first placeholder: the right tip becomes the PR's; a wrong one is deleted
        // at once and the PR waits.
        for repo in hosted.iter().chain(&contributed) {
            let Some(ph) = self.purgatory.placeholders.remove(repo, &id) else {
                continue;
            };
            self.timers
                .cancel(&TimerKey::Placeholder(Box::new((repo.clone(), id))));
            self.emit(Effect::Forget {
                key: crate::journal::JournalKey::Placeholder(repo.clone(), id),
            });
            if pr.tip != Ok(ph.oid) {
                self.emit(Effect::SetRef {
                    repo: repo.clone(),
                    name: format!("refs/nostr/{}", id.to_hex()),
                    target: None,
                });
                self.schedule_prune(repo);
            }
        }
        let (tip, author) = (pr.tip.clone(), e.pubkey);
        self.enter_purgatory(e, d, Waiting::pull_request(pr), origin, Some(token));
        match tip {
            Ok(oid) if !hosted.is_empty() || !contributed.is_empty() => {
                let mut repos = self.check_repos(d, &hosted, &author);
                repos.extend(contributed.into_iter().filter(|r| r.d == d));
                self.check_in(d, repos, vec![oid], Some(id));
            }
            _ => self.finalize_waiting(&id),
        }
    }

    /// Every hosted repository of the repositories a pull request tags: the owners in the
    /// maintainer set of each tagged announcement.
    pub(crate) fn pr_repos(&self, tagged: &[Coordinate]) -> Vec<RepoId> {
        let mut out: Vec<RepoId> = tagged
            .iter()
            .flat_map(|c| {
                let set = self.repos.maintainers(&c.public_key, &c.identifier);
                self.repos
                    .repos(&c.identifier)
                    .into_iter()
                    .filter(move |r| set.contains(&r.owner))
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    pub(crate) fn on_related(&mut self, token: ReplyToken, e: Event, origin: Origin) {
        let id = e.id;
        let refs = event::references(&e);
        if !self.related.is_related(&e, &refs) {
            // GRASP-06 §5, tried just before the refusal.
            if let Some(d) = self.relaxed_identifier(&e) {
                return self.on_relaxed_pr(token, e, origin, d);
            }
            return self.reply(
                token,
                id,
                false,
                "blocked: event does not reference a repository or event hosted here",
            );
        }
        if matches!(e.kind, k if k == event::PULL_REQUEST || k == event::PULL_REQUEST_UPDATE) {
            if let Some(pr) = PullRequest::parse(&e) {
                if let Ok(tip) = pr.tip {
                    self.pr_tips.insert(id, tip);
                    self.note_pr_scope(id, e.pubkey, &pr.repos);
                }
            }
        }
        self.related.accept_with(&e, refs);
        self.store(e, ServePath::Direct);
        self.reply(token, id, true, "");
    }
}
