//! The driver: one madsim task that plays the workload against the engine in simulated
//! time — feed an input, drain and execute the effects in order, check the invariants,
//! then sleep until the next action, result or engine deadline. It never sleeps for real.

use crate::channel::Channel;
use crate::check::{self, Checker};
use crate::events::{EPOCH_SECS, pubkey};
use crate::oracle::Facts;
use crate::planted::Planted;
use crate::remote::Ask;
use crate::store::Store;
use crate::trace::Trace;
use crate::workload::{Action, Plan};
use grasp_core::nostr::prelude::Timestamp;
use grasp_core::{
    Engine, Input, JournalRecord, Oid, Origin, PushRequest, RefUpdate, ReplyToken, RepoId,
    RequestId, Time, VerifiedEvent,
};
use madsim::rand::GlobalRng;
use madsim::time::Instant;
use std::collections::BTreeMap;

/// Steps one run may take before the driver gives up (a livelock is a failure too).
pub const STEP_BUDGET: u64 = 200_000;

/// A message from a simulated request back to the driver.
pub(crate) enum Msg {
    /// A remote answered (or timed out).
    Remote {
        key: u64,
        outcome: crate::remote::Outcome,
    },
    /// An object check is due.
    CheckDue { key: u64 },
}

/// A remote request of the engine in flight.
pub(crate) struct Pending {
    pub(crate) request: Option<RequestId>,
    pub(crate) url: String,
    pub(crate) into: Option<RepoId>,
    pub(crate) ask: Ask,
}

/// The driver of one run.
pub struct Driver {
    pub(crate) plan: Plan,
    pub(crate) planted: Planted,
    pub(crate) engine: Engine,
    pub(crate) store: Store,
    /// The invariant checker.
    pub checker: Checker,
    /// The run's trace.
    pub trace: Trace,
    pub(crate) rng: GlobalRng,
    pub(crate) chan: Channel<Msg>,
    pub(crate) pending: BTreeMap<u64, Pending>,
    pub(crate) checks: BTreeMap<u64, (grasp_core::CheckId, Vec<RepoId>, Vec<Oid>)>,
    pub(crate) next_key: u64,
    next_token: u64,
    start: Instant,
}

impl Driver {
    /// A driver for `plan`, with `planted` bug, drawing from madsim's seeded `rng`.
    pub fn new(plan: Plan, planted: Planted, rng: GlobalRng, keep_trace: bool) -> Self {
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
        let mut engine = Engine::new(plan.config.clone());
        engine.handle_input(Time::ZERO, Input::Hydrated);
        Driver {
            engine,
            store: Store::default(),
            checker,
            trace: Trace::new(keep_trace),
            rng,
            chan: Channel::default(),
            pending: BTreeMap::new(),
            checks: BTreeMap::new(),
            next_key: 1,
            next_token: 1,
            start: Instant::now(),
            plan,
            planted,
        }
    }

    pub(crate) fn now(&self) -> Time {
        Time::from_millis(self.start.elapsed().as_millis() as u64)
    }

    fn failed(&self) -> bool {
        self.checker.violation.is_some()
    }

    /// Runs the plan to its end (or the first violation).
    pub async fn run(mut self) -> Self {
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
            while let Some(msg) = self.chan.try_recv() {
                self.on_msg(msg);
            }
            let now = self.now();
            self.engine.handle_timeout(now);
            self.settle(now);
            steps += 1;
            if steps > STEP_BUDGET {
                let why = format!("driver exceeded {STEP_BUDGET} steps");
                self.checker.violation.get_or_insert(check::Violation {
                    invariant: check::MEMORY,
                    at: now,
                    detail: why,
                });
            }
            let mut wake = self.plan.end;
            if let Some(t) = self.engine.poll_timeout() {
                let late = std::time::Duration::from_secs(600);
                let t = if self.planted == Planted::LateTimer {
                    t.plus(late)
                } else {
                    t
                };
                wake = wake.min(t);
            }
            if let Some((t, _)) = actions.get(next) {
                wake = wake.min(*t);
            }
            let now = self.now();
            if wake > now {
                let wait = wake.since(now);
                if let Ok(msg) = madsim::time::timeout(wait, self.chan.recv()).await {
                    self.on_msg(msg);
                }
            }
        }
        let now = self.now();
        if !self.failed() {
            self.checker.finish(now, &self.engine, &self.store);
        }
        self.checker.stats.steps = steps;
        self
    }

    /// Drains and executes effects, then checks the invariants.
    pub(crate) fn settle(&mut self, now: Time) {
        while let Some(effect) = self.engine.poll_effect() {
            self.execute(now, effect);
        }
        self.checker.after_step(now, &self.engine, &self.store);
    }

    pub(crate) fn feed(&mut self, input: Input) {
        let now = self.now();
        self.engine.handle_input(now, input);
        self.settle(now);
    }

    async fn act(&mut self, action: Action) {
        let now = self.now();
        match action {
            Action::Publish { event, origin } => self.publish(now, event, origin),
            Action::Push { owner, d, refs } => {
                let repo = RepoId::new(pubkey(owner), d.as_str());
                self.push(now, repo, refs, None);
            }
            Action::PushPr { owner, d, id, tip } => {
                let repo = RepoId::new(pubkey(owner), d.as_str());
                let name = format!("refs/nostr/{}", id.to_hex());
                self.push(now, repo, vec![(name, tip)], Some(tip));
            }
            Action::Restart { downtime } => self.restart(downtime).await,
        }
    }

    fn publish(&mut self, now: Time, event: grasp_core::nostr::prelude::Event, origin: Origin) {
        let token = self.next_token;
        self.next_token += 1;
        self.trace
            .line(now, &format!("Event {} {origin:?}", event.id));
        self.checker.on_fed(now, token, &event, origin);
        let mut fed_origin = origin;
        if origin == Origin::Sync {
            match self.planted {
                Planted::SyncAsClient => fed_origin = Origin::Client,
                Planted::DropNewEvent => {
                    let d = Facts::of(&event).and_then(|f| f.d().map(str::to_owned));
                    let in_backoff = self
                        .engine
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
        let received_at = Timestamp::from_secs(EPOCH_SECS + now.as_millis() / 1000);
        self.feed(Input::Event {
            token: ReplyToken(token),
            event: VerifiedEvent::assume_verified(event),
            origin: fed_origin,
            received_at,
        });
    }

    /// A push of `refs` (branch and tag refs, or one `refs/nostr/` ref when `pr_tip`).
    fn push(&mut self, now: Time, repo: RepoId, refs: Vec<(String, Oid)>, pr_tip: Option<Oid>) {
        let Some(local) = self.store.repos.get(&repo) else {
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
        let verdict = self.engine.handle_push_request(now, &request);
        self.trace
            .line(now, &format!("Push {repo} {:?}", verdict.refs));
        if !verdict.is_accepted() {
            return;
        }
        let oids: Vec<Oid> = refs.iter().map(|(_, o)| *o).collect();
        self.store.add_objects(&repo, &oids);
        match pr_tip {
            Some(_) => {
                for (n, o) in &refs {
                    self.store.set_ref(&repo, n, Some(*o));
                }
            }
            None => {
                let head = Some("refs/heads/main".to_owned());
                self.store.align(&repo, &refs, &head);
                self.checker
                    .on_push(now, &repo, &refs.iter().cloned().collect());
            }
        }
        let after = self
            .store
            .repos
            .get(&repo)
            .map(|r| r.refs.clone())
            .unwrap_or_default();
        self.feed(Input::PushApplied {
            repo,
            updates,
            refs: after.into_iter().collect(),
            client: None,
        });
    }

    /// Our server goes down: requests and connections die, time passes, and a new engine
    /// is built from the event store and the journal.
    async fn restart(&mut self, downtime: std::time::Duration) {
        self.pending.clear();
        self.checks.clear();
        self.trace.line(self.now(), &format!("Down {downtime:?}"));
        madsim::time::sleep(downtime).await;
        while self.chan.try_recv().is_some() {}
        let now = self.now();
        self.checker.on_restart(now);
        self.engine = Engine::new(self.plan.config.clone());
        for e in &self.store.events {
            let input = Input::Stored(VerifiedEvent::assume_verified(e.clone()));
            self.engine.handle_input(now, input);
        }
        let expiry = self.plan.config.purgatory_expiry;
        for rec in self.store.journal.values() {
            let mut rec = rec.clone();
            if let (Planted::FreshDeadline, JournalRecord::Waiting { deadline, .. }) =
                (self.planted, &mut rec)
            {
                *deadline = now.plus(expiry);
            }
            self.engine.handle_input(now, Input::Restore(rec));
        }
        self.trace.line(now, "Up");
        self.feed(Input::Hydrated);
    }
}
