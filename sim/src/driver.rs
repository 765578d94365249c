//! The driver: one madsim task that plays the workload against the daemon's own
//! executor (`grasp_executor::Executor`, with the in-memory backends) in simulated time —
//! apply the due actions, wait for whatever the executor waits for (a result, a write, a
//! deadline) or the next action, handle it, check the invariants. A restart crashes the
//! executor wherever it is — in the middle of a batch of effects, with writes in flight —
//! or shuts it down, and boots a new one from what the disk kept.

use crate::backends::{SharedRef, Sim, SimClock, SimObserver, SimRemote};
use crate::check::{self, Checker};
use crate::events::pubkey;
use crate::oracle::Facts;
use crate::planted::Planted;
use crate::shape::Shape;
use crate::trace::Trace;
use crate::workload::{Action, Plan};
use futures_util::FutureExt;
use grasp_core::{Engine, JournalRecord, Oid, Origin, PushRequest, RefUpdate, RepoId, Time};
use grasp_executor::memory::{Faults, Memory, VersionOrder};
use grasp_executor::{Executor, Parts};
use madsim::rand::{GlobalRng, Rng};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Steps one run may take before the driver gives up (a livelock is a failure too).
pub const STEP_BUDGET: u64 = 400_000;

/// The driver of one run.
pub struct Driver {
    plan: Plan,
    planted: Planted,
    memory: Memory,
    shared: SharedRef,
    exec: Option<Executor<Sim>>,
    clock: SimClock,
    rng: GlobalRng,
    next_token: u64,
}

/// The disk's faults for a shape: slow fsyncs everywhere, failed writes where restarts
/// show what they cost, failed checks and git writes in the faulty shape.
fn faults(shape: Shape, planted: Planted) -> Faults {
    let mut f = Faults {
        fsync_ms: (0, 3),
        check_ms: (0, 4),
        git_ms: (0, 1),
        ..Faults::default()
    };
    match shape {
        // Failing git writes (`git_failure`) are not injected yet: the engine does not
        // learn of them (docs/simulation.md, "What is not simulated yet").
        Shape::Faulty => f.check_failure = 0.2,
        Shape::Restarts => {
            f.fsync_ms = (1, 40);
            f.write_failure = 0.02;
        }
        _ => {}
    }
    f.lying_fsync = planted == Planted::LyingFsync;
    f.phantom_objects = planted == Planted::PhantomObject;
    if planted == Planted::StoreOrder {
        f.version_order = VersionOrder::Reversed;
    }
    f
}

impl Driver {
    /// A driver for `plan`, with `planted` bug, drawing from madsim's seeded `rng`.
    pub fn new(plan: Plan, planted: Planted, mut rng: GlobalRng, keep_trace: bool) -> Self {
        let mut checker = Checker::new(&plan.config, &plan.world);
        checker.stats.identifiers = plan
            .actions
            .iter()
            .filter_map(|(_, a)| match a {
                Action::Publish { event, .. } => Facts::of(event)?.d().map(str::to_owned),
                _ => None,
            })
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let clock = SimClock {
            start: madsim::time::Instant::now(),
            late: if planted == Planted::LateTimer {
                Duration::from_secs(600)
            } else {
                Duration::ZERO
            },
        };
        let sleep: grasp_executor::memory::Sleep = Arc::new(|d| madsim::time::sleep(d).boxed());
        let memory = Memory::new(faults(plan.shape, planted), rng.r#gen(), sleep);
        Driver {
            memory,
            shared: SharedRef::new(checker, Trace::new(keep_trace)),
            exec: None,
            clock,
            rng,
            next_token: 1,
            plan,
            planted,
        }
    }

    fn now(&self) -> Time {
        self.clock.time()
    }

    fn failed(&self) -> bool {
        self.shared.lock().checker.violation.is_some()
    }

    fn exec(&mut self) -> &mut Executor<Sim> {
        self.exec.as_mut().expect("the server is up")
    }

    /// What the run found and its trace, once it is over.
    pub fn finish_parts(&self) -> (crate::report::RunStats, Option<check::Violation>, Trace) {
        let s = self.shared.lock();
        (
            s.checker.stats.clone(),
            s.checker.violation.clone(),
            s.trace.clone(),
        )
    }

    /// Check `no_rollback` after every effect (see [`Checker::strict_rollback`]).
    pub fn set_strict_rollback(&self, strict: bool) {
        self.shared.lock().checker.strict_rollback = strict;
    }

    /// Runs the plan to its end (or the first violation).
    pub async fn run(mut self) -> Self {
        self.boot().await;
        let actions = std::mem::take(&mut self.plan.actions);
        let mut next = 0;
        let mut steps = 0u64;
        loop {
            let now = self.now();
            if now >= self.plan.end || self.failed() {
                break;
            }
            while next < actions.len() && actions[next].0 <= now && !self.failed() {
                let action = actions[next].1.clone();
                next += 1;
                self.act(action).await;
            }
            let wake = actions
                .get(next)
                .map_or(self.plan.end, |(t, _)| *t)
                .min(self.plan.end);
            // A restart cuts whatever the executor is doing when its time comes.
            let crash = actions[next..]
                .iter()
                .find(|(_, a)| matches!(a, Action::Restart { .. }))
                .map(|(t, _)| *t);
            self.step(wake, crash).await;
            steps += 1;
            if steps > STEP_BUDGET {
                let why = format!("driver exceeded {STEP_BUDGET} steps");
                self.shared.lock().checker.fail_memory(self.now(), why);
            }
        }
        let now = self.now();
        if !self.failed() {
            let engine = self.exec.as_ref().expect("the server is up").engine();
            let (memory, shared) = (&self.memory, &self.shared);
            memory.visible(|d| shared.lock().checker.finish(now, engine, d));
            self.shut_down(false).await;
        }
        self.shared.lock().checker.stats.steps = steps;
        self
    }

    /// Waits for the executor (until `wake` at most) and handles what it waited for,
    /// unless the crash at `crash` comes first.
    async fn step(&mut self, wake: Time, crash: Option<Time>) {
        let now = self.now();
        let sleep = madsim::time::sleep(wake.since(now));
        let exec = self.exec.as_mut().expect("the server is up");
        let woke = futures_util::select_biased! {
            w = exec.wait().fuse() => Some(w),
            () = sleep.fuse() => None,
        };
        // Woken for an action: a deadline due at the same instant is handled first.
        let woke = woke.or(Some(grasp_executor::Wake::Deadline));
        if let Some(w) = woke {
            let cut = match crash {
                Some(t) => madsim::time::sleep(t.since(self.now())).boxed(),
                None => futures_util::future::pending().boxed(),
            };
            let exec = self.exec.as_mut().expect("the server is up");
            futures_util::select_biased! {
                () = exec.handle(w).fuse() => {},
                () = cut.fuse() => {
                    self.shared.lock().trace.line(self.now(), "cut by the crash");
                },
            }
        }
        self.after_step();
    }

    fn after_step(&mut self) {
        let now = self.now();
        let Some(exec) = &self.exec else {
            return;
        };
        let (memory, shared) = (&self.memory, &self.shared);
        let failed = memory.failed_writes();
        memory.visible(|d| {
            let mut s = shared.lock();
            s.checker.after_step(now, exec.engine(), d);
            let failed = |id: &_| failed.contains(id);
            s.checker.served_is_enforced(now, exec.engine(), d, failed);
        });
    }

    async fn act(&mut self, action: Action) {
        // A deadline due at the action's instant comes first (as in the daemon, whose
        // timer and commands race: either order is possible, and this one is checked).
        if let Some(exec) = self.exec.as_mut() {
            exec.handle(grasp_executor::Wake::Deadline).await;
        }
        let now = self.now();
        match action {
            Action::Publish { event, origin } => self.publish(now, event, origin).await,
            Action::Push { owner, d, refs } => {
                let repo = RepoId::new(pubkey(owner), d.as_str());
                self.push(now, repo, refs, None).await;
            }
            Action::PushPr { owner, d, id, tip } => {
                let repo = RepoId::new(pubkey(owner), d.as_str());
                let name = format!("refs/nostr/{}", id.to_hex());
                self.push(now, repo, vec![(name, tip)], Some(tip)).await;
            }
            Action::Restart { downtime } => self.restart(downtime).await,
        }
        self.after_step();
    }

    async fn publish(
        &mut self,
        now: Time,
        event: grasp_core::nostr::prelude::Event,
        origin: Origin,
    ) {
        let token = self.next_token;
        self.next_token += 1;
        {
            let mut s = self.shared.lock();
            s.trace.line(now, &format!("Event {} {origin:?}", event.id));
            s.checker.on_fed(now, token, &event, origin);
        }
        let mut fed_origin = origin;
        if origin == Origin::Sync {
            match self.planted {
                Planted::SyncAsClient => fed_origin = Origin::Client,
                Planted::DropNewEvent => {
                    let d = Facts::of(&event).and_then(|f| f.d().map(str::to_owned));
                    let in_backoff = self
                        .exec()
                        .engine()
                        .sync_view()
                        .iter()
                        .any(|s| Some(&s.d) == d.as_ref() && s.attempts > 0);
                    if in_backoff {
                        return;
                    }
                }
                _ => {}
            }
        }
        self.exec().submit(event, fed_origin, token).await;
    }

    /// A push of `refs` (branch and tag refs, or one `refs/nostr/` ref when `pr_tip`).
    async fn push(
        &mut self,
        now: Time,
        repo: RepoId,
        refs: Vec<(String, Oid)>,
        pr_tip: Option<Oid>,
    ) {
        let Some(local) = self.memory.visible(|d| d.repos.get(&repo).cloned()) else {
            return;
        };
        let current: Vec<(String, Oid)> = local.refs.iter().map(|(n, o)| (n.clone(), *o)).collect();
        let mut updates: Vec<RefUpdate> = refs
            .iter()
            .filter(|(n, o)| local.refs.get(n) != Some(o))
            .map(|(n, o)| RefUpdate {
                name: n.clone(),
                old: local.refs.get(n).copied(),
                new: Some(*o),
            })
            .collect();
        if pr_tip.is_none() {
            let wanted: BTreeMap<&String, &Oid> = refs.iter().map(|(n, o)| (n, o)).collect();
            updates.extend(
                local
                    .refs
                    .iter()
                    .filter(|(n, _)| grasp_core::is_branch_or_tag(n) && !wanted.contains_key(n))
                    .map(|(n, o)| RefUpdate {
                        name: n.clone(),
                        old: Some(*o),
                        new: None,
                    }),
            );
        }
        if updates.is_empty() {
            return;
        }
        let request = PushRequest {
            repo: repo.clone(),
            current,
            updates: updates.clone(),
            client: None,
        };
        let verdict = self.exec().push_request(&request);
        self.shared
            .lock()
            .trace
            .line(now, &format!("Push {repo} {:?}", verdict.refs));
        if !verdict.is_accepted() {
            return;
        }
        let oids: Vec<Oid> = refs.iter().map(|(_, o)| *o).collect();
        self.memory.git(|d| {
            d.add_objects(&repo, &oids);
            match pr_tip {
                Some(_) => {
                    for (n, o) in &refs {
                        d.set_ref(&repo, n, Some(*o));
                    }
                }
                None => d.align(&repo, &refs, Some("refs/heads/main")),
            }
        });
        if pr_tip.is_none() {
            let refs = refs.iter().cloned().collect();
            self.shared.lock().checker.on_push(now, &repo, &refs);
        }
        let after = self
            .memory
            .visible(|d| d.repos.get(&repo).map(|r| r.refs.clone()))
            .unwrap_or_default();
        let after = after.into_iter().collect();
        self.exec().pushed(repo, updates, after, None).await;
    }

    /// Boots our server from what the disk holds: the one hydration, a new executor.
    async fn boot(&mut self) {
        let now = self.now();
        let epoch = self.shared.lock().epoch;
        let mut engine = Engine::new(self.plan.config.clone());
        let m = &self.memory;
        grasp_executor::hydrate(&mut engine, now, m, m, m)
            .await
            .expect("the in-memory disk always reads");
        let parts = Parts::<Sim> {
            store: m.clone(),
            journal: m.clone(),
            repos: m.clone(),
            remote: SimRemote {
                world: Arc::new(self.plan.world.clone()),
                shared: self.shared.clone(),
                memory: m.clone(),
                clock: self.clock.clone(),
                epoch,
                planted: self.planted,
            },
            runtime: self.clock.clone(),
            observer: SimObserver {
                shared: self.shared.clone(),
                memory: m.clone(),
                clock: self.clock.clone(),
                requests: BTreeMap::new(),
            },
        };
        let mut exec = Executor::new(engine, parts);
        exec.execute().await;
        self.exec = Some(exec);
        let now = self.now();
        let exec = self.exec.as_ref().expect("just booted");
        let (memory, shared) = (&self.memory, &self.shared);
        memory.visible(|d| shared.lock().checker.after_boot(now, exec.engine(), d));
    }

    /// Stops our server: a graceful shutdown (writes settle), or a crash.
    async fn shut_down(&mut self, crash: bool) {
        let Some(exec) = self.exec.take() else {
            return;
        };
        let now = self.now();
        if crash {
            drop(exec);
        } else {
            if self.planted == Planted::NoSettle {
                drop(exec);
            } else {
                exec.shutdown().await;
            }
            let settled = self.memory.is_settled();
            self.shared.lock().checker.on_shutdown(now, settled);
        }
        self.memory.crash();
        if self.planted == Planted::TornJournal {
            // A disk that loses a durable record at a crash.
            self.memory.git(|d| {
                let first = d
                    .journal
                    .iter()
                    .find(|(_, r)| matches!(r, JournalRecord::Waiting { .. }))
                    .map(|(k, _)| k.clone());
                if let Some(k) = first {
                    d.journal.remove(&k);
                }
            });
        }
    }

    /// Our server goes down — crashed where it stood, or shut down — time passes, and a
    /// new one boots from the disk.
    async fn restart(&mut self, downtime: Duration) {
        let crash = self.rng.gen_bool(0.5);
        self.shut_down(crash).await;
        {
            let mut s = self.shared.lock();
            s.epoch += 1;
            let now = self.clock.time();
            let how = if crash { "Crash" } else { "Down" };
            s.trace.line(now, &format!("{how} {downtime:?}"));
        }
        madsim::time::sleep(downtime).await;
        let now = self.now();
        self.shared.lock().checker.on_restart(now);
        if self.planted == Planted::FreshDeadline {
            let expiry = self.plan.config.purgatory_expiry;
            self.memory.git(|d| {
                for rec in d.journal.values_mut() {
                    if let JournalRecord::Waiting { deadline, .. } = rec {
                        *deadline = now.plus(expiry);
                    }
                }
            });
        }
        self.boot().await;
        self.shared.lock().trace.line(self.now(), "Up");
    }
}

impl check::Checker {
    /// The run exceeded its step budget.
    pub(crate) fn fail_memory(&mut self, at: Time, why: String) {
        self.violation.get_or_insert(check::Violation {
            invariant: check::MEMORY,
            at,
            detail: why,
        });
    }
}
