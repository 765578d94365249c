//! Executing the engine's effects, in order, against the store, the hub, the bare
//! repositories and the journal. Remote requests are started here and finish as inputs.

use grasp_core::nostr::prelude::{Coordinate, EventId, Filter, PublicKey, Timestamp};
use grasp_core::{Effect, Input, JournalKey, Oid, RepoId};

use super::clock;
use super::convert::{hex_refs, repo_path};
use super::writes::Written;
use super::{Command, Driver};
use crate::git_ops;
use crate::relay::Verdict;

impl Driver {
    /// Drains and executes every effect. Object checks and remote requests run off this
    /// task and come back as inputs.
    ///
    /// The event-store saves of each drained batch start first, so that their commit
    /// overlaps the git work ordered before them (aligning a repository, copying
    /// objects): a release is visible that much sooner. Nothing observable moves
    /// earlier: a saved event is published, and its `OK` sent, only once the save is
    /// durable, which the driver handles after the batch (or the push/fetch settles);
    /// and no save moves past a deletion, which must see only the saves before it.
    pub(super) async fn execute(&mut self) {
        loop {
            let batch: Vec<Effect> = std::iter::from_fn(|| self.engine.poll_effect()).collect();
            if batch.is_empty() {
                return;
            }
            let mut rest = Vec::with_capacity(batch.len());
            let mut hoisting = true;
            for effect in batch {
                match effect {
                    Effect::StoreEvent { event, path } if hoisting && !self.writes.is_full() => {
                        self.writes.save(&self.store, *event, path);
                    }
                    other => {
                        hoisting &= !matches!(other, Effect::DeleteEvents { .. });
                        rest.push(other);
                    }
                }
            }
            for effect in rest {
                self.execute_one(effect).await;
            }
        }
    }

    async fn execute_one(&mut self, effect: Effect) {
        match effect {
            Effect::Reply {
                token,
                event_id,
                accepted,
                message,
            } => self.reply(token.0, event_id, accepted, message),
            Effect::StoreEvent { event, path } => {
                if self.writes.is_full() {
                    self.settle_one().await;
                }
                self.writes.save(&self.store, *event, path);
            }
            Effect::DeleteEvents {
                author,
                ids,
                coordinates,
            } => {
                // Deleting must see every save started before it.
                self.settle_saves().await;
                self.delete_events(author, ids, coordinates).await;
            }
            Effect::CreateRepo { repo } => {
                self.git("create repo", &repo, |repos, p| {
                    git_ops::create_bare_repo(repos, p).map(|_| ())
                })
                .await
            }
            Effect::DeleteRepo { repo } => {
                self.git("delete repo", &repo, |repos, p| {
                    git_ops::delete_repo(repos, p).map(|_| ())
                })
                .await
            }
            Effect::CheckObjects { check, repos, oids } => self.check_objects(check, repos, oids),
            Effect::ListRefs {
                request,
                url,
                domain,
            } => {
                let (tx, limits) = (self.tx.clone(), self.limits.clone());
                self.metrics.request_started(&domain);
                tokio::spawn(async move {
                    let input = match super::remote::list_refs(&url, &limits).await {
                        Ok(refs) => Input::RefsListed { request, refs },
                        Err(failure) => Input::RequestFailed { request, failure },
                    };
                    let _ = tx.send(Command::Result(input)).await;
                });
            }
            Effect::Fetch {
                request,
                url,
                domain,
                into,
                oids,
            } => {
                let (tx, limits) = (self.tx.clone(), self.limits.clone());
                self.metrics.request_started(&domain);
                let dir = match repo_path(&into) {
                    Ok(p) => self.repos.dir(&p),
                    Err(e) => {
                        let failure = grasp_core::Failure {
                            kind: grasp_core::FailureKind::Other,
                            detail: e.to_string(),
                        };
                        self.engine
                            .handle_input(clock::now(), Input::RequestFailed { request, failure });
                        return;
                    }
                };
                tokio::spawn(async move {
                    let input = match super::remote::fetch(&url, &dir, &oids, &limits).await {
                        Ok((present, bytes)) => Input::Fetched {
                            request,
                            present,
                            bytes,
                        },
                        Err(failure) => Input::RequestFailed { request, failure },
                    };
                    let _ = tx.send(Command::Result(input)).await;
                });
            }
            Effect::CopyObjects { from, to, oids } => {
                let (Ok(f), Ok(t)) = (repo_path(&from), repo_path(&to)) else {
                    tracing::warn!(%from, repo = %to, effect = "copy objects",
                        "failed: not a valid repository path");
                    return;
                };
                let (fd, td) = (self.repos.dir(&f), self.repos.dir(&t));
                let tips: Vec<String> = oids.iter().map(Oid::to_string).collect();
                self.blocking("copy objects", &to, move || {
                    git_ops::copy_objects(&fd, &td, &tips)
                })
                .await;
            }
            Effect::AlignRepo { repo, refs, head } => {
                let Some(p) = valid_path(&repo, "align refs") else {
                    return;
                };
                let dir = self.repos.dir(&p);
                let wanted = hex_refs(&refs);
                self.blocking("align refs", &repo, move || {
                    git_ops::align_refs(&dir, &wanted)?;
                    if let Some(h) = head.filter(|h| wanted.contains_key(h)) {
                        git_ops::set_head(&dir, &h)?;
                    }
                    Ok(())
                })
                .await;
            }
            Effect::SetRef { repo, name, target } => {
                let Some(p) = valid_path(&repo, "set ref") else {
                    return;
                };
                let (dir, repos) = (self.repos.dir(&p), self.repos.clone());
                self.blocking("set ref", &repo, move || match target {
                    Some(o) => git_ops::set_ref(&dir, &name, &o.to_string()),
                    None => git_ops::delete_ref(&dir, &name)
                        .and_then(|_| crate::prs::after_ref_deleted(&repos, &p)),
                })
                .await;
            }
            Effect::PruneObjects { repo, keep } => {
                let Some(p) = valid_path(&repo, "prune objects") else {
                    return;
                };
                let keep = keep.iter().map(Oid::to_string).collect();
                // In the background, one at a time, never during a push (housekeeping.rs).
                self.repos.housekeeping().prune(&self.repos.dir(&p), keep);
            }
            Effect::Persist { record } => {
                if self.writes.is_full() {
                    self.settle_one().await;
                }
                let key = record.key();
                self.writes.supersede(&key.to_string());
                let id = journal_event(&key);
                self.writes
                    .other(id, "journal record", self.journal.put(&record));
            }
            Effect::Forget { key } => {
                if self.writes.is_full() {
                    self.settle_one().await;
                }
                // A failed forget is logged; the record is dropped at its deadline anyway.
                if matches!(key, JournalKey::Waiting(_)) {
                    // After the release's save is durable (see `writes.rs`).
                    let journal = self.journal.clone();
                    self.writes
                        .after_earlier(key.to_string(), "journal forget", move || {
                            journal.forget(&key)
                        });
                } else {
                    self.writes
                        .other(None, "journal forget", self.journal.forget(&key));
                }
            }
        }
    }

    /// Answers the connection behind `token`, once the store writes started before it
    /// are durable. An OK true is downgraded to an error when the write it depends on
    /// (journal or store) failed: nothing is acknowledged that is not durable.
    fn reply(&mut self, token: u64, id: EventId, accepted: bool, message: String) {
        let Some(tx) = self.replies.remove(&token) else {
            return;
        };
        self.writes.reply(tx, id, Verdict { accepted, message });
    }

    /// Waits for the oldest write in flight (a save or a journal record) and handles it.
    pub(super) async fn settle_one(&mut self) {
        if let Some(written) = self.writes.next().await {
            self.on_written(written);
        }
    }

    /// Waits until every write started so far is durable (at shutdown).
    pub(super) async fn settle_writes(&mut self) {
        while !self.writes.is_idle() {
            self.settle_one().await;
        }
    }

    /// Waits until every event-store save started so far is durable and published
    /// (and the writes started before them): before deleting stored events, and before a
    /// push or fetch is reported done, so that what it released can be queried. Journal
    /// writes started after the last save may still be in flight; nothing waits on them.
    pub(super) async fn settle_saves(&mut self) {
        while self.writes.is_saving() {
            self.settle_one().await;
        }
    }

    /// A store write finished: publish the event to live subscribers (only now can a
    /// `REQ` find it too) and answer the replies that waited for it.
    pub(super) fn on_written(&mut self, mut written: Written) {
        match &written.outcome {
            Ok(()) => {
                if let Some((event, path)) = written.served.take() {
                    crate::activity::event_served(&event, path);
                    self.metrics.served(path);
                    self.hub.publish(event);
                }
            }
            Err(e) => tracing::error!(id = ?written.event_id, "{} failed: {e}", written.what),
        }
        self.writes.finish(&written);
    }

    async fn delete_events(
        &mut self,
        author: PublicKey,
        ids: Vec<EventId>,
        coordinates: Vec<(Coordinate, Timestamp)>,
    ) {
        if !ids.is_empty() {
            if let Err(e) = self
                .store
                .delete(Filter::new().author(author).ids(ids))
                .await
            {
                tracing::error!("cannot delete events: {e}");
            }
        }
        for (c, until) in coordinates {
            let f = Filter::new()
                .author(author)
                .kind(c.kind)
                .identifier(c.identifier)
                .until(until);
            if let Err(e) = self.store.delete(f).await {
                tracing::error!("cannot delete events: {e}");
            }
        }
    }

    /// Starts an object check off the engine task (it opens up to
    /// `grasp_core::Limits::repos_per_check` repositories); its answer comes back as an
    /// input like a fetch's. At most [`super::CHECKS_IN_FLIGHT`] run at once, so that a
    /// flood of checks cannot take every blocking thread from the git work the engine
    /// task waits for. A repository that cannot be read is logged and makes the answer
    /// [`Input::CheckFailed`]: what it would have held is unknown, not absent.
    fn check_objects(&mut self, check: grasp_core::CheckId, repos: Vec<RepoId>, oids: Vec<Oid>) {
        let mut failed = Vec::new();
        let mut dirs: Vec<(RepoId, std::path::PathBuf)> = Vec::with_capacity(repos.len());
        for r in repos {
            match repo_path(&r) {
                Ok(p) => dirs.push((r, self.repos.dir(&p))),
                Err(e) => failed.push((r, format!("not a valid repository path: {e}"))),
            }
        }
        let (tx, permits) = (self.tx.clone(), std::sync::Arc::clone(&self.checks));
        tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            let wanted = oids.len();
            let all: Vec<RepoId> = dirs.iter().map(|(r, _)| r.clone()).collect();
            let mut looked =
                match tokio::task::spawn_blocking(move || find_objects(&dirs, oids)).await {
                    Ok(looked) => looked,
                    Err(e) => Looked {
                        found: Vec::new(),
                        failed: all.into_iter().map(|r| (r, e.to_string())).collect(),
                        missing: wanted,
                    },
                };
            looked.failed.extend(failed);
            let _ = tx.send(Command::Result(check_answer(check, looked))).await;
        });
    }

    async fn git<F>(&mut self, what: &'static str, repo: &RepoId, f: F)
    where
        F: FnOnce(&crate::repo::Repos, &crate::repo::RepoPath) -> Result<(), git_ops::GitOpsError>
            + Send
            + 'static,
    {
        let Ok(p) = repo_path(repo) else {
            tracing::warn!(%repo, effect = what, "failed: not a valid repository path");
            return;
        };
        let repos = self.repos.clone();
        self.blocking(what, repo, move || f(&repos, &p)).await;
    }

    async fn blocking<F>(&mut self, what: &'static str, repo: &RepoId, f: F)
    where
        F: FnOnce() -> Result<(), git_ops::GitOpsError> + Send + 'static,
    {
        match tokio::task::spawn_blocking(f).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(%repo, effect = what, "failed: {e}"),
            Err(e) => tracing::warn!(%repo, effect = what, "panicked: {e}"),
        }
    }
}

/// The event a journal key is about: its write must be durable before that event's OK.
/// A domain's request window is about no event.
fn journal_event(key: &JournalKey) -> Option<EventId> {
    match key {
        JournalKey::Waiting(id) | JournalKey::Expired(id) | JournalKey::Placeholder(_, id) => {
            Some(*id)
        }
        JournalKey::DomainWindow(_) => None,
    }
}

/// `repo`'s path, or a warning naming the effect that cannot run (the engine only
/// names repositories it validated, so this is a bug, not a client's fault).
fn valid_path(repo: &RepoId, effect: &'static str) -> Option<crate::repo::RepoPath> {
    match repo_path(repo) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!(%repo, effect, "failed: not a valid repository path: {e}");
            None
        }
    }
}

/// What an object check saw.
#[derive(Debug, Default)]
pub(super) struct Looked {
    /// Each object found, with the repository it was found in.
    pub(super) found: Vec<(Oid, RepoId)>,
    /// The repositories that could not be read, and why.
    pub(super) failed: Vec<(RepoId, String)>,
    /// How many of the objects asked for were not found.
    pub(super) missing: usize,
}

/// The input a check's result is: [`Input::ObjectsChecked`] if every repository was
/// read or every object found anyway, else [`Input::CheckFailed`]. Each repository that
/// failed is logged here, once.
pub(super) fn check_answer(check: grasp_core::CheckId, looked: Looked) -> Input {
    for (repo, why) in &looked.failed {
        tracing::warn!(%repo, effect = "check objects", "failed: {why}");
    }
    if looked.failed.is_empty() || looked.missing == 0 {
        Input::ObjectsChecked {
            check,
            found: looked.found,
        }
    } else {
        Input::CheckFailed {
            check,
            found: looked.found,
        }
    }
}

/// For each of `oids`, the first of `dirs` (in order) that has it; a repository is
/// opened only while some object is still unfound, and asked only for those. A
/// repository that cannot be opened is reported, not read as empty.
pub(super) fn find_objects(dirs: &[(RepoId, std::path::PathBuf)], mut oids: Vec<Oid>) -> Looked {
    oids.sort();
    oids.dedup();
    let mut looked = Looked::default();
    for (repo, dir) in dirs {
        if oids.is_empty() {
            break;
        }
        let wanted: Vec<String> = oids.iter().map(Oid::to_string).collect();
        let have = match git_ops::existing_oids(dir, &wanted) {
            Ok(have) => have,
            Err(e) => {
                looked.failed.push((repo.clone(), e.to_string()));
                continue;
            }
        };
        oids.retain(|o| {
            let here = have.contains(&o.to_string());
            if here {
                looked.found.push((*o, repo.clone()));
            }
            !here
        });
    }
    looked.missing = oids.len();
    looked
}
