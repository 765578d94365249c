//! In-memory backends with faults: the event store, the journal and the repositories of
//! one server, for the simulator (and anything else that runs the executor without a
//! disk).
//!
//! [`Memory`] keeps two [`Disk`]s: what is *visible* (what the running process reads)
//! and what is *durable* (what survives a crash). A write is applied to the visible disk
//! when it is queued, and to the durable one when its future resolves after the
//! simulated fsync; [`Memory::crash`] throws the visible disk away. Git operations are
//! durable when they return, as git's own files are. Faults ([`Faults`]) make writes,
//! checks and git operations fail, fsyncs slow, and — to plant bugs the simulator must
//! catch — fsyncs lie and the store disagree with the engine on version order.

mod disk;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::{BoxFuture, FutureExt};
use grasp_core::nostr::prelude::{Coordinate, Event, EventId, PublicKey, Timestamp};
use grasp_core::{JournalKey, JournalRecord, Oid, RepoId};

pub use disk::{Disk, LocalRepo, Stored, VersionOrder, is_deleted_by};

use crate::backends::{EventStore, Journal, Looked, Repositories, SaveOutcome, WriteError};

/// Sleeps on the caller's clock (madsim's in the simulator).
pub type Sleep = Arc<dyn Fn(Duration) -> BoxFuture<'static, ()> + Send + Sync>;

/// What goes wrong, and how often (shares are 0.0–1.0).
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Share of event saves and journal writes that fail (nothing is written).
    pub write_failure: f64,
    /// How long an fsync takes, in milliseconds (low, high).
    pub fsync_ms: (u64, u64),
    /// Share of object checks that cannot read a repository.
    pub check_failure: f64,
    /// How long an object check takes, in milliseconds (low, high).
    pub check_ms: (u64, u64),
    /// Share of git writes (copy, align, set ref) that fail.
    pub git_failure: f64,
    /// How long a git operation takes, in milliseconds (low, high): a crash can land
    /// between two effects only if something takes time.
    pub git_ms: (u64, u64),
    /// Planted: a write reports durable before it is (a lying disk cache); only every
    /// fourth write flushes what came before.
    pub lying_fsync: bool,
    /// Planted: object checks report every object present in the first repository.
    pub phantom_objects: bool,
    /// How the store orders versions (planted: not as the engine does).
    pub version_order: VersionOrder,
}

/// A durable write, as it reaches the durable disk.
#[derive(Clone, Debug)]
enum Op {
    Save(Box<Event>),
    Put(Box<JournalRecord>),
    Forget(JournalKey),
}

struct State {
    visible: Disk,
    durable: Disk,
    faults: Faults,
    rng: fastrand::Rng,
    /// Writes a lying fsync acknowledged and has not made durable.
    lagging: Vec<Op>,
    /// Writes queued and not yet durable, in call order: a disk's single writer makes
    /// them durable in that order (an fsync covers everything queued before it).
    queued: std::collections::VecDeque<(u64, Op)>,
    writes: u64,
    /// Events whose save or journal write failed (the simulator's ground truth).
    failed: Vec<EventId>,
    /// Events whose save or waiting record reached the durable disk at some point.
    ever_durable: std::collections::BTreeSet<EventId>,
}

impl State {
    fn apply(&mut self, op: &Op, durable: bool) {
        let order = self.faults.version_order;
        let disk = if durable {
            &mut self.durable
        } else {
            &mut self.visible
        };
        let about = match op {
            Op::Save(e) => {
                disk.store_event(e, order);
                Some(e.id)
            }
            Op::Put(r) => {
                disk.journal.insert(r.key(), (**r).clone());
                match r.key() {
                    JournalKey::Waiting(id) => Some(id),
                    _ => None,
                }
            }
            Op::Forget(k) => {
                disk.journal.remove(k);
                None
            }
        };
        if durable {
            self.ever_durable.extend(about);
        }
    }

    fn millis(&mut self, (low, high): (u64, u64)) -> Duration {
        Duration::from_millis(self.rng.u64(low..=high.max(low)))
    }

    fn chance(&mut self, share: f64) -> bool {
        share > 0.0 && self.rng.f64() < share
    }
}

/// One server's disk in memory; cheap to clone (all clones share it). It is the event
/// store, the journal and the repositories at once.
#[derive(Clone)]
pub struct Memory {
    state: Arc<Mutex<State>>,
    sleep: Sleep,
}

impl Memory {
    /// An empty disk with `faults`, drawing from a generator seeded with `seed`,
    /// sleeping with `sleep`.
    pub fn new(faults: Faults, seed: u64, sleep: Sleep) -> Self {
        let state = State {
            visible: Disk::default(),
            durable: Disk::default(),
            faults,
            rng: fastrand::Rng::with_seed(seed),
            lagging: Vec::new(),
            queued: Default::default(),
            writes: 0,
            failed: Vec::new(),
            ever_durable: Default::default(),
        };
        Self {
            state: Arc::new(Mutex::new(state)),
            sleep,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding it is a failed run already.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads what the running server sees.
    pub fn visible<R>(&self, f: impl FnOnce(&Disk) -> R) -> R {
        f(&self.lock().visible)
    }

    /// Reads what would survive a crash now.
    pub fn durable<R>(&self, f: impl FnOnce(&Disk) -> R) -> R {
        f(&self.lock().durable)
    }

    /// Changes the repositories as a client's push does (git writes: durable at once).
    pub fn git<R>(&self, f: impl Fn(&mut Disk) -> R) -> R {
        let mut s = self.lock();
        f(&mut s.durable);
        f(&mut s.visible)
    }

    /// The process dies: what was not durable is gone.
    pub fn crash(&self) {
        let mut s = self.lock();
        s.lagging.clear();
        s.queued.clear();
        s.visible = s.durable.clone();
    }

    /// The events whose save or journal write failed.
    pub fn failed_writes(&self) -> Vec<EventId> {
        self.lock().failed.clone()
    }

    /// Whether `id`'s save or waiting record was ever durable (what an `OK true` for
    /// it promises).
    pub fn was_durable(&self, id: &EventId) -> bool {
        self.lock().ever_durable.contains(id)
    }

    /// Whether nothing is in flight: every visible write is durable (after a shutdown).
    pub fn is_settled(&self) -> bool {
        let s = self.lock();
        s.visible.stored == s.durable.stored && s.visible.journal == s.durable.journal
    }

    /// Changes the faults (a shape's phase, a planted bug).
    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    /// Queues `op`: visible now, durable after the fsync; or failed, visible never.
    fn write(&self, op: Op, about: Option<EventId>) -> BoxFuture<'static, Result<(), WriteError>> {
        let mut guard = self.lock();
        let s = &mut *guard;
        let delay = s.millis(s.faults.fsync_ms);
        if s.chance(s.faults.write_failure) {
            s.failed.extend(about);
            drop(guard);
            let sleep = (self.sleep)(delay);
            return async move {
                sleep.await;
                Err("injected write failure".to_owned())
            }
            .boxed();
        }
        s.apply(&op, false);
        s.writes += 1;
        if s.faults.lying_fsync {
            s.lagging.push(op);
            if s.writes.is_multiple_of(4) {
                for op in std::mem::take(&mut s.lagging) {
                    s.apply(&op, true);
                }
            }
            return async { Ok(()) }.boxed();
        }
        let seq = s.writes;
        s.queued.push_back((seq, op));
        drop(guard);
        let (state, sleep) = (Arc::clone(&self.state), (self.sleep)(delay));
        async move {
            sleep.await;
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            while s.queued.front().is_some_and(|(n, _)| *n <= seq) {
                if let Some((_, op)) = s.queued.pop_front() {
                    s.apply(&op, true);
                }
            }
            Ok(())
        }
        .boxed()
    }

    /// Sleeps a git operation's time, then fails it by the fault share or runs `f`.
    async fn git_op(&self, fails: bool, f: impl Fn(&mut Disk)) -> Result<(), String> {
        let (delay, failed) = {
            let mut guard = self.lock();
            let s = &mut *guard;
            let delay = s.millis(s.faults.git_ms);
            let failed = fails && s.chance(s.faults.git_failure);
            (delay, failed)
        };
        (self.sleep)(delay).await;
        if failed {
            return Err("injected git failure".to_owned());
        }
        self.git(f);
        Ok(())
    }
}

#[async_trait]
impl EventStore for Memory {
    fn save(&self, event: &Event) -> BoxFuture<'static, Result<SaveOutcome, WriteError>> {
        let kept_other = {
            let s = self.lock();
            s.visible.keeps_newer(event, s.faults.version_order)
        };
        let write = self.write(Op::Save(Box::new(event.clone())), Some(event.id));
        async move {
            write.await?;
            Ok(if kept_other {
                SaveOutcome::KeptOther
            } else {
                SaveOutcome::Stored
            })
        }
        .boxed()
    }

    async fn delete(
        &self,
        author: PublicKey,
        ids: Vec<EventId>,
        coordinates: Vec<(Coordinate, Timestamp)>,
    ) -> Result<(), WriteError> {
        self.git(|d| d.delete_by(&author, &ids, &coordinates));
        Ok(())
    }

    async fn for_each_event(
        &self,
        visit: &mut (dyn FnMut(Event) + Send),
    ) -> Result<usize, WriteError> {
        let events = self.visible(|d| d.events.clone());
        let n = events.len();
        events.into_iter().for_each(visit);
        Ok(n)
    }
}

impl Journal for Memory {
    fn put(&self, record: &JournalRecord) -> BoxFuture<'static, Result<(), WriteError>> {
        let about = match record.key() {
            JournalKey::Waiting(id) => Some(id),
            _ => None,
        };
        self.write(Op::Put(Box::new(record.clone())), about)
    }

    fn forget(&self, key: &JournalKey) -> BoxFuture<'static, Result<(), WriteError>> {
        self.write(Op::Forget(key.clone()), None)
    }

    fn for_each_record(&self, visit: &mut dyn FnMut(JournalRecord)) -> Result<usize, WriteError> {
        let records: Vec<JournalRecord> = self.visible(|d| d.journal.values().cloned().collect());
        let n = records.len();
        records.into_iter().for_each(visit);
        Ok(n)
    }
}

#[async_trait]
impl Repositories for Memory {
    async fn create(&self, repo: &RepoId) -> Result<(), String> {
        self.git_op(false, |d| d.create_repo(repo)).await
    }

    async fn delete(&self, repo: &RepoId) -> Result<(), String> {
        self.git_op(false, |d| d.delete_repo(repo)).await
    }

    async fn find_objects(&self, repos: Vec<RepoId>, oids: Vec<Oid>) -> Looked {
        let (delay, fails, phantom) = {
            let mut guard = self.lock();
            let s = &mut *guard;
            let delay = s.millis(s.faults.check_ms);
            let fails = s.chance(s.faults.check_failure);
            (delay, fails, s.faults.phantom_objects)
        };
        (self.sleep)(delay).await;
        let mut oids = oids;
        oids.sort();
        oids.dedup();
        let mut found = match (phantom, repos.first()) {
            (true, Some(first)) => oids.iter().map(|o| (*o, first.clone())).collect(),
            _ => self.visible(|d| d.check(&repos, &oids)),
        };
        let mut failed = Vec::new();
        if fails && let Some(first) = repos.first() {
            // A repository could not be read: half of what was found is reported, the
            // rest is unknown.
            found.truncate(found.len() / 2);
            failed.push((first.clone(), "injected read failure".to_owned()));
        }
        let missing = oids.len() - found.len();
        Looked {
            found,
            failed,
            missing,
        }
    }

    async fn copy_objects(&self, from: &RepoId, to: &RepoId, oids: &[Oid]) -> Result<(), String> {
        self.git_op(true, |d| d.copy(from, to, oids)).await
    }

    async fn align(
        &self,
        repo: &RepoId,
        refs: &[(String, Oid)],
        head: Option<&str>,
    ) -> Result<(), String> {
        self.git_op(true, |d| d.align(repo, refs, head)).await
    }

    async fn set_ref(&self, repo: &RepoId, name: &str, target: Option<Oid>) -> Result<(), String> {
        self.git_op(true, |d| d.set_ref(repo, name, target)).await
    }

    fn prune(&self, repo: &RepoId, keep: Vec<Oid>) -> Result<(), String> {
        self.git(|d| d.prune(repo, &keep));
        Ok(())
    }

    async fn nostr_refs(&self) -> Vec<(RepoId, EventId, Oid)> {
        self.visible(|d| {
            d.repos
                .iter()
                .flat_map(|(repo, r)| {
                    r.refs.iter().filter_map(move |(name, oid)| {
                        let hex = name.strip_prefix("refs/nostr/")?;
                        let id = EventId::from_hex(hex).ok().filter(|_| hex.len() == 64)?;
                        Some((repo.clone(), id, *oid))
                    })
                })
                .collect()
        })
    }
}
