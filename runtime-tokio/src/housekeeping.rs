//! Upkeep of the bare repositories, off the paths users wait on.
//!
//! Two jobs, each run by one background task, one job at a time over every repository
//! (so that no number of requests makes us run more than one `git` of this kind at once),
//! and at most one pending job of each kind per repository (requests for a repository
//! already queued are merged):
//! - **maintenance** after a push: `git maintenance run --auto`, which `git receive-pack`
//!   would run itself before exiting — and so before the push's response ends, the
//!   client waiting for it. graspd's receive-pack runs with `receive.autogc=false`.
//! - **prune**: removing the objects no ref reaches (those of expired `refs/nostr/`
//!   placeholders), asked for by the engine with the objects its waiting events still
//!   need (kept), and with a grace period for objects that just landed. A prune never
//!   runs while a push into that repository is in flight: a push holds a
//!   [`PushGuard`] from before git starts until git exits, and a prune that finds one
//!   held is postponed rather than waited for, so that it never delays a push.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::{Notify, OwnedRwLockReadGuard, RwLock};
use tokio::time::Instant;

/// How long a prune waits before trying again when a push into its repository runs.
const POSTPONE: Duration = Duration::from_secs(5);

/// The background upkeep of the repositories; cheap to clone.
#[derive(Clone)]
pub struct Housekeeping {
    inner: Arc<Inner>,
}

struct Inner {
    grace: Duration,
    postpone: Duration,
    /// Per repository: pushes hold it shared, a prune exclusively.
    locks: Mutex<HashMap<PathBuf, Arc<RwLock<()>>>>,
    queue: Mutex<Queue>,
    wake: Notify,
    worker: OnceLock<()>,
    stats: Stats,
}

/// Jobs waiting, one entry per repository, in request order.
#[derive(Default)]
struct Queue {
    jobs: BTreeMap<PathBuf, Job>,
    order: VecDeque<PathBuf>,
}

#[derive(Default)]
struct Job {
    maintenance: bool,
    /// The roots to keep, when a prune is asked for.
    prune: Option<Vec<String>>,
    not_before: Option<Instant>,
}

/// What the task has done so far (for logs and tests).
#[derive(Default)]
struct Stats {
    maintained: AtomicU64,
    pruned: AtomicU64,
    postponed: AtomicU64,
}

/// Held by a push for as long as its `git receive-pack` runs: no prune of that
/// repository starts meanwhile.
pub struct PushGuard {
    _guard: OwnedRwLockReadGuard<()>,
}

impl std::fmt::Debug for Housekeeping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Housekeeping")
            .field("grace", &self.inner.grace)
            .finish_non_exhaustive()
    }
}

impl Housekeeping {
    /// Upkeep whose prunes keep every object younger than `grace`.
    pub fn new(grace: Duration) -> Self {
        Self::with_postpone(grace, POSTPONE)
    }

    fn with_postpone(grace: Duration, postpone: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                grace,
                postpone,
                locks: Mutex::new(HashMap::new()),
                queue: Mutex::new(Queue::default()),
                wake: Notify::new(),
                worker: OnceLock::new(),
                stats: Stats::default(),
            }),
        }
    }

    /// Taken by a push into `dir` before git starts; waits while a prune of `dir` runs.
    pub async fn push_guard(&self, dir: &Path) -> PushGuard {
        PushGuard {
            _guard: self.lock_of(dir).read_owned().await,
        }
    }

    /// A push landed in `dir`: git's automatic maintenance runs soon, in the background.
    pub fn after_push(&self, dir: &Path) {
        self.enqueue(dir, |job| job.maintenance = true);
    }

    /// Removes the objects of `dir` no ref reaches, except those reachable from `keep`.
    pub fn prune(&self, dir: &Path, keep: Vec<String>) {
        self.enqueue(dir, |job| {
            // A later request knows the engine's needs better; merge rather than replace,
            // so that nothing an earlier request kept is lost.
            let mut roots = job.prune.take().unwrap_or_default();
            roots.extend(keep);
            roots.sort_unstable();
            roots.dedup();
            job.prune = Some(roots);
        });
    }

    fn enqueue(&self, dir: &Path, change: impl FnOnce(&mut Job)) {
        self.start_worker();
        {
            let mut queue = lock(&self.inner.queue);
            if !queue.jobs.contains_key(dir) {
                queue.order.push_back(dir.to_owned());
            }
            change(queue.jobs.entry(dir.to_owned()).or_default());
        }
        self.inner.wake.notify_one();
    }

    fn start_worker(&self) {
        self.inner.worker.get_or_init(|| {
            tokio::spawn(work(Arc::clone(&self.inner)));
        });
    }

    fn lock_of(&self, dir: &Path) -> Arc<RwLock<()>> {
        lock_of(&self.inner, dir)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn lock_of(inner: &Inner, dir: &Path) -> Arc<RwLock<()>> {
    let mut locks = lock(&inner.locks);
    // Drop the locks nobody holds, so the map stays the size of the repositories in use.
    if locks.len() > 1024 {
        locks.retain(|_, l| Arc::strong_count(l) > 1);
    }
    Arc::clone(locks.entry(dir.to_owned()).or_default())
}

/// The background task: takes the first job due, runs it, and sleeps when none is.
async fn work(inner: Arc<Inner>) {
    loop {
        let (next, wait) = take_due(&inner);
        match next {
            Some((dir, job)) => run(&inner, dir, job).await,
            None => match wait {
                Some(at) => {
                    tokio::select! {
                        () = inner.wake.notified() => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
                None => inner.wake.notified().await,
            },
        }
    }
}

/// The first job that is due, or else when the earliest postponed one will be.
fn take_due(inner: &Inner) -> (Option<(PathBuf, Job)>, Option<Instant>) {
    let now = Instant::now();
    let mut queue = lock(&inner.queue);
    let Queue { jobs, order } = &mut *queue;
    let due = order.iter().position(|dir| {
        jobs.get(dir)
            .is_some_and(|j| j.not_before.is_none_or(|t| t <= now))
    });
    if let Some(i) = due {
        if let Some(dir) = order.remove(i) {
            let job = jobs.remove(&dir).unwrap_or_default();
            return (Some((dir, job)), None);
        }
    }
    let wait = jobs.values().filter_map(|j| j.not_before).min();
    (None, wait)
}

async fn run(inner: &Arc<Inner>, dir: PathBuf, job: Job) {
    if let Some(keep) = job.prune {
        match Arc::clone(&lock_of(inner, &dir)).try_write_owned() {
            Ok(exclusive) => {
                let (d, grace) = (dir.clone(), inner.grace);
                let done = tokio::task::spawn_blocking(move || {
                    crate::git_ops::prune_unreachable(&d, &keep, grace)
                })
                .await;
                drop(exclusive);
                match done {
                    Ok(Ok(p)) => tracing::info!(
                        dir = %dir.display(),
                        repacked = p.repacked,
                        loose_before = p.loose.0,
                        loose_after = p.loose.1,
                        "pruned unreachable objects"
                    ),
                    Ok(Err(e)) => tracing::warn!(dir = %dir.display(), "prune failed: {e}"),
                    Err(e) => tracing::error!(dir = %dir.display(), "prune panicked: {e}"),
                }
                inner.stats.pruned.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                // A push is in flight: try again later, with whatever else is asked by then.
                inner.stats.postponed.fetch_add(1, Ordering::Relaxed);
                let mut queue = lock(&inner.queue);
                let Queue { jobs, order } = &mut *queue;
                if !jobs.contains_key(&dir) {
                    order.push_back(dir.clone());
                }
                let again = jobs.entry(dir.clone()).or_default();
                let mut roots = again.prune.take().unwrap_or_default();
                roots.extend(keep);
                roots.sort_unstable();
                roots.dedup();
                again.prune = Some(roots);
                again.maintenance |= job.maintenance;
                again.not_before = Some(Instant::now() + inner.postpone);
                return;
            }
        }
    }
    if job.maintenance {
        let d = dir.clone();
        match tokio::task::spawn_blocking(move || crate::git_ops::auto_maintenance(&d)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(dir = %dir.display(), "git maintenance failed: {e}"),
            Err(e) => tracing::error!(dir = %dir.display(), "git maintenance panicked: {e}"),
        }
        inner.stats.maintained.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git_ops::test_util::{commit, init_bare};
    use crate::git_ops::{delete_ref, existing_oids};

    fn has(dir: &Path, oid: &str) -> bool {
        existing_oids(dir, &[oid.to_owned()]).unwrap().contains(oid)
    }

    async fn until(what: &str, check: impl Fn() -> bool) {
        let waited = tokio::time::timeout(Duration::from_secs(20), async {
            while !check() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(waited.is_ok(), "{what} did not happen");
    }

    #[tokio::test]
    async fn a_prune_waits_for_the_push_in_flight_and_never_delays_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = init_bare(tmp.path(), "r.git");
        let doomed = commit(&dir, "refs/nostr/doomed", "placeholder");
        delete_ref(&dir, "refs/nostr/doomed").unwrap();
        let hk = Housekeeping::with_postpone(Duration::ZERO, Duration::from_millis(10));
        let push = hk.push_guard(&dir).await;
        hk.prune(&dir, Vec::new());
        let stats = &hk.inner.stats;
        until("the prune is postponed", || {
            stats.postponed.load(Ordering::Relaxed) >= 2
        })
        .await;
        assert!(has(&dir, &doomed), "nothing pruned while a push runs");
        // Another push starts at once while the prune waits.
        let second = tokio::time::timeout(Duration::from_secs(20), hk.push_guard(&dir)).await;
        assert!(second.is_ok(), "a waiting prune blocked a push");
        assert_eq!(stats.pruned.load(Ordering::Relaxed), 0);
        drop((push, second));
        until("the prune runs", || {
            stats.pruned.load(Ordering::Relaxed) == 1
        })
        .await;
        assert!(!has(&dir, &doomed), "pruned once the pushes ended");
    }

    #[tokio::test]
    async fn requests_for_one_repository_merge() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = init_bare(tmp.path(), "r.git");
        let a = commit(&dir, "refs/nostr/a", "a");
        let b = commit(&dir, "refs/nostr/b", "b");
        delete_ref(&dir, "refs/nostr/a").unwrap();
        delete_ref(&dir, "refs/nostr/b").unwrap();
        let hk = Housekeeping::with_postpone(Duration::ZERO, Duration::from_millis(10));
        let push = hk.push_guard(&dir).await;
        hk.prune(&dir, vec![a.clone()]);
        hk.prune(&dir, vec![b.clone()]);
        hk.after_push(&dir);
        drop(push);
        let stats = &hk.inner.stats;
        until("the jobs run", || {
            stats.pruned.load(Ordering::Relaxed) >= 1
                && stats.maintained.load(Ordering::Relaxed) >= 1
        })
        .await;
        assert!(has(&dir, &a) && has(&dir, &b), "both requests' roots kept");
        assert!(stats.pruned.load(Ordering::Relaxed) <= 2);
    }
}
