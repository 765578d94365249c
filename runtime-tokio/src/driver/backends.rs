//! The daemon's backends of the shared executor (`grasp-executor`): LMDB for events,
//! redb for the journal, git2 and the git CLI for repositories and remotes, tokio for
//! time and tasks, the hub and Prometheus for what the executor reports.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::{BoxFuture, FutureExt};
use grasp_core::nostr::prelude::{Coordinate, Event, EventId, PublicKey, Timestamp};
use grasp_core::{Failure, FailureKind, JournalKey, JournalRecord, Oid, RepoId, ServePath, Time};
use grasp_executor::{
    Backends, EventStore, Looked, Observer, Reply, Repositories, SaveOutcome, WriteError,
    deletion_filters,
};
use nostr_database::RejectedReason;
use tokio::sync::oneshot;

use super::convert::{hex_refs, repo_path};
use super::{Journal, RemoteLimits, RuntimeMetrics, clock};
use crate::git_ops;
use crate::relay::{Hub, Verdict};
use crate::repo::Repos;
use crate::store::{SaveStatus, Store};

/// The daemon's set of backends.
pub(crate) struct Daemon;

impl Backends for Daemon {
    type Store = Store;
    type Journal = Journal;
    type Repos = GitRepos;
    type Remote = GitRemote;
    type Runtime = Tokio;
    type Observer = Outlet;
}

#[async_trait]
impl EventStore for Store {
    fn save(&self, event: &Event) -> BoxFuture<'static, Result<SaveOutcome, WriteError>> {
        let (store, event) = (self.clone(), event.clone());
        async move {
            match store.save(&event).await {
                Ok(SaveStatus::Rejected(RejectedReason::Replaced)) => Ok(SaveOutcome::KeptOther),
                Ok(_) => Ok(SaveOutcome::Stored),
                Err(e) => Err(e.to_string()),
            }
        }
        .boxed()
    }

    async fn delete(
        &self,
        author: PublicKey,
        ids: Vec<EventId>,
        coordinates: Vec<(Coordinate, Timestamp)>,
    ) -> Result<(), WriteError> {
        for filter in deletion_filters(author, ids, coordinates) {
            Store::delete(self, filter)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    async fn for_each_event(
        &self,
        visit: &mut (dyn FnMut(Event) + Send),
    ) -> Result<usize, WriteError> {
        Store::for_each_event(self, visit)
            .await
            .map_err(|e| e.to_string())
    }
}

impl grasp_executor::Journal for Journal {
    fn put(&self, record: &JournalRecord) -> BoxFuture<'static, Result<(), WriteError>> {
        let write = Journal::put(self, record);
        async move { write.await.map_err(|e| e.to_string()) }.boxed()
    }

    fn forget(&self, key: &JournalKey) -> BoxFuture<'static, Result<(), WriteError>> {
        let write = Journal::forget(self, key);
        async move { write.await.map_err(|e| e.to_string()) }.boxed()
    }

    fn for_each_record(&self, visit: &mut dyn FnMut(JournalRecord)) -> Result<usize, WriteError> {
        Journal::for_each(self, visit).map_err(|e| e.to_string())
    }
}

/// The bare repositories under the data dir; git work runs on blocking threads.
#[derive(Clone)]
pub(crate) struct GitRepos {
    pub(crate) repos: Repos,
    /// GRASP-06 is on: `/prs/` repositories are adopted at startup too (when off, their
    /// data on disk is not touched).
    pub(crate) with_prs: bool,
}

impl GitRepos {
    fn dir(&self, repo: &RepoId) -> Result<PathBuf, String> {
        // The engine only names repositories it validated: a bad one is a bug, logged.
        repo_path(repo)
            .map(|p| self.repos.dir(&p))
            .map_err(|e| format!("not a valid repository path: {e}"))
    }

    async fn blocking(
        f: impl FnOnce() -> Result<(), git_ops::GitOpsError> + Send + 'static,
    ) -> Result<(), String> {
        match tokio::task::spawn_blocking(f).await {
            Ok(done) => done.map_err(|e| e.to_string()),
            Err(e) => Err(format!("panicked: {e}")),
        }
    }
}

#[async_trait]
impl Repositories for GitRepos {
    async fn create(&self, repo: &RepoId) -> Result<(), String> {
        let p = repo_path(repo).map_err(|e| format!("not a valid repository path: {e}"))?;
        let repos = self.repos.clone();
        Self::blocking(move || git_ops::create_bare_repo(&repos, &p).map(|_| ())).await
    }

    async fn delete(&self, repo: &RepoId) -> Result<(), String> {
        let p = repo_path(repo).map_err(|e| format!("not a valid repository path: {e}"))?;
        let repos = self.repos.clone();
        Self::blocking(move || git_ops::delete_repo(&repos, &p).map(|_| ())).await
    }

    async fn find_objects(&self, repos: Vec<RepoId>, oids: Vec<Oid>) -> Looked {
        let mut failed = Vec::new();
        let mut dirs: Vec<(RepoId, PathBuf)> = Vec::with_capacity(repos.len());
        for r in repos {
            match self.dir(&r) {
                Ok(d) => dirs.push((r, d)),
                Err(e) => failed.push((r, e)),
            }
        }
        let wanted = oids.len();
        let all: Vec<RepoId> = dirs.iter().map(|(r, _)| r.clone()).collect();
        let mut looked = match tokio::task::spawn_blocking(move || find_objects(&dirs, oids)).await
        {
            Ok(looked) => looked,
            Err(e) => Looked {
                found: Vec::new(),
                failed: all.into_iter().map(|r| (r, e.to_string())).collect(),
                missing: wanted,
            },
        };
        looked.failed.extend(failed);
        looked
    }

    async fn copy_objects(&self, from: &RepoId, to: &RepoId, oids: &[Oid]) -> Result<(), String> {
        let (fd, td) = (self.dir(from)?, self.dir(to)?);
        let tips: Vec<String> = oids.iter().map(Oid::to_string).collect();
        Self::blocking(move || git_ops::copy_objects(&fd, &td, &tips)).await
    }

    async fn align(
        &self,
        repo: &RepoId,
        refs: &[(String, Oid)],
        head: Option<&str>,
    ) -> Result<(), String> {
        let dir = self.dir(repo)?;
        let wanted = hex_refs(refs);
        let head = head.map(str::to_owned);
        Self::blocking(move || {
            git_ops::align_refs(&dir, &wanted)?;
            if let Some(h) = head.filter(|h| wanted.contains_key(h)) {
                git_ops::set_head(&dir, &h)?;
            }
            Ok(())
        })
        .await
    }

    async fn set_ref(&self, repo: &RepoId, name: &str, target: Option<Oid>) -> Result<(), String> {
        let p = repo_path(repo).map_err(|e| format!("not a valid repository path: {e}"))?;
        let (dir, repos) = (self.repos.dir(&p), self.repos.clone());
        let name = name.to_owned();
        Self::blocking(move || match target {
            Some(o) => git_ops::set_ref(&dir, &name, &o.to_string()),
            // A `/prs/` repository whose last ref went is removed (GRASP-06 §7).
            None => git_ops::delete_ref(&dir, &name)
                .and_then(|_| crate::prs::after_ref_deleted(&repos, &p)),
        })
        .await
    }

    fn prune(&self, repo: &RepoId, keep: Vec<Oid>) -> Result<(), String> {
        let dir = self.dir(repo)?;
        let keep = keep.iter().map(Oid::to_string).collect();
        // In the background, one at a time, never during a push (housekeeping.rs).
        self.repos.housekeeping().prune(&dir, keep);
        Ok(())
    }

    async fn nostr_refs(&self) -> Vec<(RepoId, EventId, Oid)> {
        let root = self.repos.root().to_path_buf();
        let prs = self.with_prs.then(|| self.repos.prs().root().to_path_buf());
        tokio::task::spawn_blocking(move || {
            let mut all = super::adopt::nostr_refs(&root, false);
            if let Some(prs) = prs {
                all.extend(super::adopt::nostr_refs(&prs, true));
            }
            all
        })
        .await
        .unwrap_or_default()
    }
}

/// For each of `oids`, the first of `dirs` (in order) that has it; a repository is
/// opened only while some object is still unfound, and asked only for those. A
/// repository that cannot be opened is reported, not read as empty.
pub(super) fn find_objects(dirs: &[(RepoId, PathBuf)], mut oids: Vec<Oid>) -> Looked {
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

/// Other git servers, through the git CLI with the SSRF guard (remote.rs).
#[derive(Clone)]
pub(crate) struct GitRemote {
    pub(crate) repos: Repos,
    pub(crate) limits: RemoteLimits,
}

#[async_trait]
impl grasp_executor::Remote for GitRemote {
    async fn list_refs(&self, url: &str, _domain: &str) -> Result<Vec<(String, Oid)>, Failure> {
        super::remote::list_refs(url, &self.limits).await
    }

    async fn fetch(
        &self,
        url: &str,
        _domain: &str,
        into: &RepoId,
        oids: &[Oid],
    ) -> Result<(Vec<Oid>, u64), Failure> {
        let dir = repo_path(into)
            .map(|p| self.repos.dir(&p))
            .map_err(|e| Failure {
                kind: FailureKind::Other,
                detail: e.to_string(),
            })?;
        super::remote::fetch(url, &dir, oids, &self.limits).await
    }
}

/// tokio, and the wall clock (deadlines keep counting while graspd is down).
#[derive(Clone)]
pub(crate) struct Tokio {
    started: std::time::Instant,
}

impl Tokio {
    pub(crate) fn new() -> Self {
        Self {
            started: std::time::Instant::now(),
        }
    }
}

impl grasp_executor::Runtime for Tokio {
    fn now(&self) -> Time {
        clock::now()
    }

    fn unix_now(&self) -> Timestamp {
        clock::unix_now()
    }

    fn monotonic(&self) -> Duration {
        self.started.elapsed()
    }

    fn sleep_until(&self, deadline: Time) -> BoxFuture<'static, ()> {
        tokio::time::sleep(clock::until(deadline)).boxed()
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) {
        tokio::spawn(task);
    }
}

/// Where the executor's replies and served events go: connections, live subscribers,
/// the activity log and the metrics.
pub(crate) struct Outlet {
    pub(crate) hub: Hub,
    pub(crate) metrics: RuntimeMetrics,
}

impl Observer for Outlet {
    type ReplyTo = oneshot::Sender<Verdict>;

    fn reply(&mut self, to: Self::ReplyTo, _event_id: EventId, reply: Reply) {
        let _ = to.send(Verdict {
            accepted: reply.accepted,
            message: reply.message,
        });
    }

    fn served(&mut self, event: Event, path: ServePath) {
        crate::activity::event_served(&event, path);
        self.metrics.served(path);
        self.hub.publish(event);
    }

    fn request_started(&mut self, domain: &str) {
        self.metrics.request_started(domain);
    }

    fn fetched(&mut self, bytes: u64) {
        self.metrics.fetched(bytes);
    }

    fn sync_released(&mut self, took: Duration) {
        self.metrics.sync_release(took);
    }
}
