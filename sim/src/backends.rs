//! The simulator's backends of the shared executor (`grasp-executor`, the very code the
//! daemon runs): the in-memory disk with faults (`grasp_executor::memory`), remote
//! servers answering from the world's plan as madsim tasks, madsim's clock, and an
//! observer that shows every effect, input and reply to the invariant checker.

use crate::check::Checker;
use crate::events::EPOCH_SECS;
use crate::planted::Planted;
use crate::remote::{self, Ask, Outcome};
use crate::trace::Trace;
use crate::world::World;
use async_trait::async_trait;
use futures_util::future::{BoxFuture, FutureExt};
use grasp_core::nostr::prelude::{EventId, Timestamp};
use grasp_core::{
    Effect, Engine, Failure, FailureKind, Input, Oid, RepoId, RequestId, ServePath, Time,
};
use grasp_executor::memory::Memory;
use grasp_executor::{Backends, Observer, Reply};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// What the driver, the observer and the remote tasks share.
pub(crate) struct Shared {
    pub(crate) checker: Checker,
    pub(crate) trace: Trace,
    /// Which incarnation of our server runs: tasks of a crashed one report nothing.
    pub(crate) epoch: u64,
    next_key: u64,
}

/// A handle on [`Shared`].
#[derive(Clone)]
pub(crate) struct SharedRef(Arc<Mutex<Shared>>);

impl SharedRef {
    pub(crate) fn new(checker: Checker, trace: Trace) -> Self {
        SharedRef(Arc::new(Mutex::new(Shared {
            checker,
            trace,
            epoch: 0,
            next_key: 1,
        })))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Shared> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The simulator's set of backends.
pub(crate) struct Sim;

impl Backends for Sim {
    type Store = Memory;
    type Journal = Memory;
    type Repos = Memory;
    type Remote = SimRemote;
    type Runtime = SimClock;
    type Observer = SimObserver;
}

/// madsim's clock, as the engine's: milliseconds since the run started.
#[derive(Clone)]
pub(crate) struct SimClock {
    pub(crate) start: madsim::time::Instant,
    /// Planted: the executor's timer fires this long after the engine's deadline.
    pub(crate) late: Duration,
}

impl SimClock {
    pub(crate) fn time(&self) -> Time {
        Time::from_millis(self.start.elapsed().as_millis() as u64)
    }
}

impl grasp_executor::Runtime for SimClock {
    fn now(&self) -> Time {
        self.time()
    }

    fn unix_now(&self) -> Timestamp {
        Timestamp::from_secs(EPOCH_SECS + self.time().as_millis() / 1000)
    }

    fn monotonic(&self) -> Duration {
        self.start.elapsed()
    }

    fn sleep_until(&self, deadline: Time) -> BoxFuture<'static, ()> {
        let wait = deadline.since(self.time()) + self.late;
        madsim::time::sleep(wait).boxed()
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) {
        madsim::task::spawn(task);
    }
}

/// The remote git servers of the world, answering after their latency (or hanging until
/// the fetch timeout), as madsim tasks.
#[derive(Clone)]
pub(crate) struct SimRemote {
    pub(crate) world: Arc<World>,
    pub(crate) shared: SharedRef,
    pub(crate) memory: Memory,
    pub(crate) clock: SimClock,
    pub(crate) epoch: u64,
    pub(crate) planted: Planted,
}

impl SimRemote {
    /// Asks the server behind `url`. The engine's requests are shown to the checker by
    /// the observer (when the engine decided them, and when their result is fed back);
    /// a planted extra probe is counted here, as the harness's own.
    async fn ask(&self, url: &str, domain: &str, ask: Ask) -> Outcome {
        let now = self.clock.time();
        let extra = (self.planted == Planted::ExtraRequest && ask == Ask::ListRefs).then(|| {
            let mut s = self.shared.lock();
            let extra = s.next_key;
            s.next_key += 1;
            s.checker.on_request(now, extra, url, domain, &ask, true);
            extra
        });
        let mut rng = madsim::rand::thread_rng();
        let (latency, outcome) = remote::answer(&self.world, url, &ask, now, &mut rng);
        let timeout = self.world.fetch_timeout;
        let answer = async {
            if outcome == Outcome::Hang {
                std::future::pending::<()>().await;
            }
            madsim::time::sleep(latency).await;
            outcome
        };
        let outcome = match madsim::time::timeout(timeout, answer).await {
            Ok(o) => o,
            Err(_) => Outcome::Failed(FailureKind::Timeout, format!("no answer in {timeout:?}")),
        };
        let mut s = self.shared.lock();
        if let (Some(extra), true) = (extra, s.epoch == self.epoch) {
            s.checker.on_request_done(extra);
        }
        outcome
    }

    fn current(&self) -> bool {
        self.shared.lock().epoch == self.epoch
    }
}

fn failed(kind: FailureKind, detail: String) -> Failure {
    Failure { kind, detail }
}

#[async_trait]
impl grasp_executor::Remote for SimRemote {
    async fn list_refs(&self, url: &str, domain: &str) -> Result<Vec<(String, Oid)>, Failure> {
        match self.ask(url, domain, Ask::ListRefs).await {
            Outcome::Refs(refs) => Ok(refs),
            Outcome::Failed(kind, detail) => Err(failed(kind, detail)),
            other => Err(failed(FailureKind::BadResponse, format!("{other:?}"))),
        }
    }

    async fn fetch(
        &self,
        url: &str,
        domain: &str,
        into: &RepoId,
        oids: &[Oid],
    ) -> Result<(Vec<Oid>, u64), Failure> {
        match self.ask(url, domain, Ask::Fetch(oids.to_vec())).await {
            // A fetch of a crashed incarnation wrote nothing (its git was killed).
            Outcome::Objects(_) if !self.current() => {
                Err(failed(FailureKind::Other, "the server went down".into()))
            }
            Outcome::Objects(got) => {
                if !self.memory.git(|d| d.add_objects(into, &got)) {
                    return Err(failed(FailureKind::Other, "repository is gone".into()));
                }
                let mut s = self.shared.lock();
                let fetched = s.checker.stats.fetched.entry(into.d.clone()).or_default();
                fetched.extend(&got);
                let bytes = 1_000 * got.len() as u64;
                Ok((got, bytes))
            }
            Outcome::Failed(kind, detail) => Err(failed(kind, detail)),
            other => Err(failed(FailureKind::BadResponse, format!("{other:?}"))),
        }
    }
}

/// Shows the executor's work to the checker and the trace. A reply goes to the
/// simulated client behind its token (the checker).
pub(crate) struct SimObserver {
    pub(crate) shared: SharedRef,
    pub(crate) memory: Memory,
    pub(crate) clock: SimClock,
    /// The checker's key and the URL of each of the engine's requests in flight.
    pub(crate) requests: BTreeMap<RequestId, (u64, String)>,
}

impl Observer for SimObserver {
    type ReplyTo = u64;

    fn reply(&mut self, to: u64, event_id: EventId, reply: Reply) {
        let now = self.clock.time();
        let durable = self.memory.was_durable(&event_id);
        self.shared
            .lock()
            .checker
            .on_delivered(now, to, event_id, &reply, durable);
    }

    fn decided(&mut self, now: Time, to: &u64, event_id: EventId, reply: &Reply, engine: &Engine) {
        let mut s = self.shared.lock();
        s.checker
            .on_reply(now, engine, *to, event_id, reply.accepted, &reply.message);
    }

    fn served(&mut self, _event: grasp_core::nostr::prelude::Event, _path: ServePath) {}

    fn watches_effects(&self) -> bool {
        true
    }

    fn executed(&mut self, now: Time, effect: &Effect, _engine: &Engine) {
        let mut guard = self.shared.lock();
        let s = &mut *guard;
        s.trace.effect(now, effect);
        let asked = match effect {
            Effect::ListRefs {
                request,
                url,
                domain,
            } => Some((*request, url, domain, Ask::ListRefs)),
            Effect::Fetch {
                request,
                url,
                domain,
                oids,
                ..
            } => Some((*request, url, domain, Ask::Fetch(oids.clone()))),
            _ => None,
        };
        if let Some((request, url, domain, ask)) = asked {
            let key = s.next_key;
            s.next_key += 1;
            s.checker.on_request(now, key, url, domain, &ask, false);
            self.requests.insert(request, (key, url.clone()));
        }
        self.memory
            .visible(|disk| s.checker.on_effect(now, effect, disk));
    }

    fn input(&mut self, now: Time, input: &Input, _engine: &Engine) {
        let mut s = self.shared.lock();
        s.trace.line(now, &format!("{input:?}"));
        let request = match input {
            Input::RefsListed { request, .. }
            | Input::Fetched { request, .. }
            | Input::RequestFailed { request, .. } => request,
            _ => return,
        };
        let Some((key, url)) = self.requests.remove(request) else {
            return;
        };
        if let Input::RefsListed { refs, .. } = input {
            s.checker.on_advertised(&url, refs);
        }
        s.checker.on_request_done(key);
    }
}
