//! Push authorization ("full alignment", decided before git writes anything) and what
//! happens once git has written a push.

use crate::effect::{Effect, ServePath};
use crate::engine::{Engine, TimerKey};
use crate::event::is_branch_or_tag;
use crate::input::{PushRequest, PushVerdict, RefUpdate};
use crate::journal::{JournalKey, JournalRecord};
use crate::oid::Oid;
use crate::placeholders::Placeholder;
use crate::purgatory::Waiting;
use crate::repo::RepoId;
use crate::repo_index::AnnStatus;
use crate::version::Version;
use nostr::prelude::EventId;
use std::collections::BTreeMap;

/// What `refs/nostr/<x>` names, if the ref is in that namespace.
pub(crate) fn nostr_ref_id(name: &str) -> Option<Result<EventId, ()>> {
    let rest = name.strip_prefix("refs/nostr/")?;
    let ok = rest.len() == 64
        && rest
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    Some(if ok {
        EventId::from_hex(rest).map_err(|_| ())
    } else {
        Err(())
    })
}

impl Engine {
    pub(crate) fn decide_push(&self, req: &PushRequest) -> PushVerdict {
        let repo = &req.repo;
        if repo.is_prs() {
            return self.decide_prs_push(req);
        }
        let hosted = self
            .repos
            .announcement(&repo.owner, &repo.d)
            .is_some_and(|a| a.hosted && a.status != AnnStatus::SoftExpired);
        if !hosted {
            let why = "no announcement of this repository is hosted here".to_owned();
            return PushVerdict {
                refs: req
                    .updates
                    .iter()
                    .map(|u| (u.name.clone(), Err(why.clone())))
                    .collect(),
            };
        }
        let state_refs: Vec<&RefUpdate> = req
            .updates
            .iter()
            .filter(|u| is_branch_or_tag(&u.name))
            .collect();
        let state_verdict = if state_refs.is_empty() {
            Ok(())
        } else {
            self.aligns_with_state(req)
        };
        let placeholder_verdict = self.placeholder_budget(req);
        let refs = req
            .updates
            .iter()
            .map(|u| {
                let r = if is_branch_or_tag(&u.name) {
                    state_verdict.clone()
                } else if let Some(id) = nostr_ref_id(&u.name) {
                    self.decide_nostr_ref(u, id).and_then(|()| {
                        match (&placeholder_verdict, self.makes_placeholder(&req.repo, u)) {
                            (Err(why), true) => Err(why.clone()),
                            _ => Ok(()),
                        }
                    })
                } else {
                    Err("only refs/heads/*, refs/tags/* and refs/nostr/<event-id> may be pushed here".to_owned())
                };
                (u.name.clone(), r)
            })
            .collect();
        PushVerdict { refs }
    }

    /// Whether `refs/nostr/<id>` in `repo` is accounted for: a placeholder, a waiting or
    /// a stored pull request. At startup the driver adopts any other as a placeholder: a
    /// ref git wrote just before a crash, before (or without) its journal record.
    pub fn is_known_nostr_ref(&self, repo: &RepoId, id: &EventId) -> bool {
        self.purgatory.placeholders.contains(repo, id)
            || self.purgatory.contains(id)
            || self.pr_tips.contains_key(id)
    }

    /// Whether update `u` of `repo` would create a new placeholder: a `refs/nostr/<id>`
    /// whose event is neither waiting nor stored, and which has none yet.
    pub(crate) fn makes_placeholder(&self, repo: &RepoId, u: &RefUpdate) -> bool {
        let Some(Ok(id)) = nostr_ref_id(&u.name) else {
            return false;
        };
        u.new.is_some()
            && !self.purgatory.contains(&id)
            && !self.pr_tips.contains_key(&id)
            && !self.purgatory.placeholders.contains(repo, &id)
    }

    /// The placeholder budget for the new placeholders a push would create, checked
    /// before git writes anything: every such ref is refused when they do not all fit.
    fn placeholder_budget(&self, req: &PushRequest) -> Result<(), String> {
        let new = req
            .updates
            .iter()
            .filter(|u| self.makes_placeholder(&req.repo, u))
            .count();
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

    fn decide_nostr_ref(&self, u: &RefUpdate, id: Result<EventId, ()>) -> Result<(), String> {
        let Ok(id) = id else {
            return Err(
                "refs/nostr/ refs must be named refs/nostr/<64 lowercase hex event id>".to_owned(),
            );
        };
        let Some(new) = u.new else {
            return Err("refs/nostr/<event-id> refs cannot be deleted by a push".to_owned());
        };
        let known = self
            .purgatory
            .get(&id)
            .and_then(|e| match &e.what {
                Waiting::Pr { pr, .. } => Some(pr.tip.clone()),
                _ => None,
            })
            .or_else(|| self.pr_tips.get(&id).map(|t| Ok(*t)));
        match known {
            Some(Ok(tip)) if tip != new => Err(format!(
                "the pull request event {} names tip {tip}, not {new}",
                id.to_hex()
            )),
            Some(Err(raw)) => Err(format!(
                "the pull request event names tip '{raw}', which is not an object id"
            )),
            // Unknown id: git first; a placeholder is (re)set when the push lands.
            _ => Ok(()),
        }
    }

    /// Full alignment: the branches and tags after the push equal exactly the refs of the
    /// newest state (stored or waiting) by a maintainer of the repository.
    fn aligns_with_state(&self, req: &PushRequest) -> Result<(), String> {
        let mut after: BTreeMap<String, Oid> = req
            .current
            .iter()
            .filter(|(n, _)| is_branch_or_tag(n))
            .map(|(n, o)| (n.clone(), *o))
            .collect();
        for u in req.updates.iter().filter(|u| is_branch_or_tag(&u.name)) {
            match u.new {
                Some(o) => after.insert(u.name.clone(), o),
                None => after.remove(&u.name),
            };
        }
        let repo = &req.repo;
        let set = self.repos.maintainers(&repo.owner, &repo.d);
        let mut candidates: Vec<(Version, BTreeMap<String, Oid>)> = self
            .repos
            .authorized_states(repo)
            .into_iter()
            .filter(|s| s.refs.has_refs() && !s.refs.malformed)
            .map(|s| (s.order_key(), s.refs.branches_and_tags()))
            .collect();
        candidates.extend(
            self.purgatory
                .entries_of(self.idents.get(&repo.d))
                .filter(|e| set.contains(&e.event.pubkey))
                .filter_map(|e| match &e.what {
                    Waiting::State(s) if !s.malformed => Some((
                        Version::new(e.event.created_at, e.event.id),
                        s.branches_and_tags(),
                    )),
                    _ => None,
                }),
        );
        // The newest authorized state (stored or waiting) decides: a push may not
        // align the repository with an older one.
        let invited = || self.invited_match(repo, &after);
        let Some((_, newest)) = candidates.iter().max_by_key(|(k, _)| *k) else {
            if let Some(why) = invited() {
                return Err(why);
            }
            return Err(format!(
                "no state event (kind 30618) by a maintainer of '{}' announces these refs; publish one first",
                repo.d
            ));
        };
        if *newest == after {
            return Ok(());
        }
        Err(invited().unwrap_or_else(|| explain_mismatch(newest, &after)))
    }

    /// If the refs after a push are exactly those of a state by a key that is only
    /// invited to maintain `repo`: the refusal that says so.
    fn invited_match(&self, repo: &RepoId, after: &BTreeMap<String, Oid>) -> Option<String> {
        let sets = self.repos.sets(&repo.owner, &repo.d);
        let stored = sets.invited().iter().filter_map(|pk| {
            let s = self.repos.state(pk, &repo.d)?;
            (s.refs.branches_and_tags() == *after).then_some(*pk)
        });
        let waiting = self
            .purgatory
            .entries_of(self.idents.get(&repo.d))
            .filter(|e| sets.is_invited(&e.event.pubkey))
            .filter(|e| matches!(&e.what, Waiting::State(s) if s.branches_and_tags() == *after))
            .map(|e| e.event.pubkey);
        let pk = stored.chain(waiting).next()?;
        Some(crate::repo_index::invited_message(&pk, &repo.d))
    }

    pub(crate) fn on_push_applied(
        &mut self,
        repo: RepoId,
        updates: Vec<RefUpdate>,
        refs: Vec<(String, Oid)>,
        client: Option<String>,
    ) {
        let d = repo.d.clone();
        // refs/nostr/<id>: a waiting PR is satisfied below; a stored one is mirrored; an
        // unknown id gets a placeholder.
        for u in &updates {
            let (Some(Ok(id)), Some(new)) = (nostr_ref_id(&u.name), u.new) else {
                continue;
            };
            if self.purgatory.contains(&id) {
                continue;
            }
            if self.pr_tips.get(&id) == Some(&new) {
                let targets = self.stored_pr_repos(&id, &repo);
                self.mirror_pr(id, new, &repo, &targets);
                continue;
            }
            let placeholders = &self.purgatory.placeholders;
            let new_one = !placeholders.contains(&repo, &id);
            let over = placeholders
                .refusal(&self.config.limits, &repo, client.as_deref(), 1)
                .is_some()
                || (repo.is_prs()
                    && placeholders.count_prs_of(&repo.owner)
                        >= self.config.prs_placeholders_per_npub);
            if new_one && over {
                // Over budget although the push was accepted (concurrent pushes decided
                // before either landed): the ref goes, nothing is held for it.
                self.emit(Effect::SetRef {
                    repo: repo.clone(),
                    name: u.name.clone(),
                    target: None,
                });
                self.schedule_prune(&repo);
                continue;
            }
            let deadline = self.now.plus(self.placeholder_expiry(&repo));
            let placeholder = Placeholder {
                oid: new,
                client: client.clone(),
            };
            self.purgatory
                .placeholders
                .insert(repo.clone(), id, placeholder);
            self.timers.set(
                TimerKey::Placeholder(Box::new((repo.clone(), id))),
                deadline,
            );
            self.emit(Effect::Persist {
                record: JournalRecord::Placeholder {
                    repo: repo.clone(),
                    event_id: id,
                    oid: new,
                    deadline,
                    client: client.clone(),
                },
            });
        }
        let ident = self.ident(&d);
        // A contributor repository is nobody's announcement.
        let waiting_ann =
            !repo.is_prs() && self.purgatory.announcement_of(&repo.owner, ident).is_some();
        if let Some(ident) = ident {
            self.note_present(ident, refs.iter().map(|(_, o)| *o), &repo);
            self.release_ready(ident, ServePath::Push);
            // Nothing left to hunt for: the sync entry goes now, not at its next timer.
            self.settle_sync(ident);
        }
        // A push that aligns with the stored authoritative state: set HEAD here and bring
        // the other repositories it governs into line.
        let branches: BTreeMap<String, Oid> = refs
            .iter()
            .filter(|(n, _)| is_branch_or_tag(n))
            .map(|(n, o)| (n.clone(), *o))
            .collect();
        let moved_branches = updates.iter().any(|u| is_branch_or_tag(&u.name));
        if let Some(state) = self
            .repos
            .authoritative(&repo)
            .cloned()
            .filter(|_| moved_branches)
        {
            if state.refs.branches_and_tags() == branches {
                let sources: BTreeMap<Oid, RepoId> = state
                    .refs
                    .oids()
                    .into_iter()
                    .map(|o| (o, repo.clone()))
                    .collect();
                for target in self.repos.targets(&state.author, &d) {
                    self.align_if_not_newer(&target, &state, &sources, ServePath::Push);
                }
            }
        }
        let still_waiting = || {
            self.purgatory
                .announcement_of(&repo.owner, self.ident(&d))
                .is_some()
        };
        if waiting_ann && still_waiting() {
            self.refresh_announcement(&repo.owner, &d);
        }
    }

    /// Where a stored pull request pushed to `pushed` is mirrored: after a push to a
    /// hosted repository, the hosted repositories of its identifier; after a `/prs/`
    /// push, the owner repositories of every coordinate it tags that is served here.
    fn stored_pr_repos(&self, id: &EventId, pushed: &RepoId) -> Vec<RepoId> {
        if pushed.is_prs() {
            return self
                .pr_scopes
                .get(id)
                .map(|s| self.pr_repos(&s.repos))
                .unwrap_or_default();
        }
        self.repos.repos(&pushed.d)
    }

    /// Copies a pull request's tip into every target and sets `refs/nostr/<id>` there.
    pub(crate) fn mirror_pr(&mut self, id: EventId, tip: Oid, source: &RepoId, targets: &[RepoId]) {
        let name = format!("refs/nostr/{}", id.to_hex());
        for t in targets {
            if t != source {
                self.emit(Effect::CopyObjects {
                    from: source.clone(),
                    to: t.clone(),
                    oids: vec![tip],
                });
            }
            self.emit(Effect::SetRef {
                repo: t.clone(),
                name: name.clone(),
                target: Some(tip),
            });
        }
    }

    pub(crate) fn forget_placeholder(&mut self, repo: &RepoId, id: &EventId) {
        if self.purgatory.placeholders.remove(repo, id).is_some() {
            self.timers
                .cancel(&TimerKey::Placeholder(Box::new((repo.clone(), *id))));
            self.emit(Effect::Forget {
                key: JournalKey::Placeholder(repo.clone(), *id),
            });
        }
    }
}

/// A readable reason why the refs after a push differ from the newest authorized state.
fn explain_mismatch(state: &BTreeMap<String, Oid>, after: &BTreeMap<String, Oid>) -> String {
    for (name, oid) in after {
        match state.get(name) {
            None => {
                return format!(
                    "{name} is not in the latest state event; publish a state that includes it"
                );
            }
            Some(s) if s != oid => {
                return format!("{name} would be {oid} but the latest state event says {s}");
            }
            _ => {}
        }
    }
    if let Some(name) = state.keys().find(|n| !after.contains_key(*n)) {
        return format!("the latest state event also names {name}; push all its refs together");
    }
    "the refs after this push do not match any authorized state event".to_owned()
}
