//! The virtual-time driver: executes the engine's effects like a runtime, answers remote
//! requests from the simulated servers after their latency, and checks the invariants from
//! what it executes (never from the engine's own bookkeeping).

use crate::world::{Fault, OUR, World};
use grasp_core::nostr::prelude::{EventId, Timestamp};
use grasp_core::{
    Config, Effect, Engine, Failure, FailureKind, Input, Oid, Origin, ReplyToken, RepoId,
    RequestId, Time, VerifiedEvent,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// The runtime's hard limit on one request (`--fetch-timeout`).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(120);
/// Give up this long after the events arrived (past the 30 min purgatory expiry).
pub const DEADLINE: Duration = Duration::from_secs(35 * 60);
pub const T0: Time = Time::from_millis(1_000_000);

enum Reply {
    Refs(Vec<(String, Oid)>),
    Fetched(RepoId, Vec<Oid>),
    Failed(FailureKind),
}

struct Pending {
    request: RequestId,
    domain: String,
    key: (usize, String),
    reply: Reply,
}

/// Per-domain request accounting, kept by the driver.
#[derive(Default)]
pub struct DomainLog {
    in_flight: u32,
    window: VecDeque<Time>,
    pub lists: u64,
    pub fetches: u64,
    pub failed: u64,
    pub peak_in_flight: u32,
    pub peak_window: usize,
}

/// The engine with a stopwatch around every call (and nothing else).
pub struct Timed {
    engine: Engine,
    pub cpu: Duration,
    pub inputs: u64,
}

impl Timed {
    fn input(&mut self, now: Time, input: Input) {
        let t = Instant::now();
        self.engine.handle_input(now, input);
        self.cpu += t.elapsed();
        self.inputs += 1;
    }
    fn timeout(&mut self, now: Time) {
        let t = Instant::now();
        self.engine.handle_timeout(now);
        self.cpu += t.elapsed();
        self.inputs += 1;
    }
    fn effect(&mut self) -> Option<Effect> {
        let t = Instant::now();
        let e = self.engine.poll_effect();
        self.cpu += t.elapsed();
        e
    }
    fn deadline(&mut self) -> Option<Time> {
        let t = Instant::now();
        let d = self.engine.poll_timeout();
        self.cpu += t.elapsed();
        d
    }
}

pub struct Sim<'w> {
    world: &'w World,
    pub engine: Timed,
    pub now: Time,
    rng: crate::world::Rng,
    seq: u64,
    pending: BTreeMap<(Time, u64), Pending>,
    pub domains: BTreeMap<String, DomainLog>,
    /// (identifier, domain) pairs with a request in flight.
    busy: HashSet<(usize, String)>,
    advertised: HashMap<String, HashSet<Oid>>,
    objects: HashMap<RepoId, HashSet<Oid>>,
    /// Every waiting event: its identifier and the objects it needs.
    waiting: HashMap<EventId, (usize, Vec<Oid>)>,
    pub released: HashMap<EventId, Time>,
    pub replies: usize,
}

impl<'w> Sim<'w> {
    pub fn new(world: &'w World, seed: u64) -> Self {
        let mut engine = Engine::new(Config::new(OUR.parse().unwrap()));
        engine.handle_input(T0, Input::Hydrated);
        let waiting = world
            .idents
            .iter()
            .enumerate()
            .flat_map(|(i, id)| id.events.iter().map(move |(e, o)| (e.id, (i, o.clone()))))
            .collect();
        Sim {
            world,
            engine: Timed {
                engine,
                cpu: Duration::ZERO,
                inputs: 0,
            },
            now: T0,
            rng: crate::world::Rng::new(seed.rotate_left(17)),
            seq: 0,
            pending: BTreeMap::new(),
            domains: BTreeMap::new(),
            busy: HashSet::new(),
            advertised: HashMap::new(),
            objects: HashMap::new(),
            waiting,
            released: HashMap::new(),
            replies: 0,
        }
    }

    /// Every event arrives at T0 through relay sync; each must wait in purgatory.
    pub fn ingest(&mut self) {
        let received_at = Timestamp::from_secs(2_000_000_000);
        let mut token = 0;
        for id in &self.world.idents {
            for (e, _) in &id.events {
                token += 1;
                let event = VerifiedEvent::assume_verified(e.clone());
                let input = Input::Event {
                    token: ReplyToken(token),
                    event,
                    origin: Origin::Sync,
                    received_at,
                    peer: None,
                };
                self.engine.input(self.now, input);
                self.drain();
            }
        }
    }

    /// Runs until every event is released and the engine has nothing left in flight, or
    /// until the deadline.
    pub fn run(&mut self) {
        let end = T0.plus(DEADLINE);
        loop {
            self.drain();
            if self.released.len() == self.waiting.len() && self.pending.is_empty() {
                break;
            }
            let reply_at = self.pending.keys().next().map(|(t, _)| *t);
            let timer = self.engine.deadline();
            let next = match (reply_at, timer) {
                (Some(r), Some(t)) => r.min(t),
                (r, t) => match r.or(t) {
                    Some(x) => x,
                    None => break,
                },
            };
            if next > end {
                break;
            }
            self.now = self.now.max(next);
            if reply_at == Some(next) {
                let (_, p) = self.pending.pop_first().unwrap();
                self.deliver(p);
            } else {
                self.engine.timeout(self.now);
            }
        }
    }

    pub fn waiting_count(&self) -> usize {
        self.waiting.len()
    }

    pub fn engine(&self) -> &Engine {
        &self.engine.engine
    }

    fn deliver(&mut self, p: Pending) {
        self.busy.remove(&p.key);
        let log = self.domains.get_mut(&p.domain).unwrap();
        log.in_flight -= 1;
        let input = match p.reply {
            Reply::Refs(refs) => Input::RefsListed {
                request: p.request,
                refs,
            },
            Reply::Fetched(into, oids) => {
                self.objects.entry(into).or_default().extend(oids.iter());
                Input::Fetched {
                    request: p.request,
                    present: oids,
                    bytes: 4096,
                }
            }
            Reply::Failed(kind) => {
                log.failed += 1;
                let detail = "simulated".into();
                let failure = Failure { kind, detail };
                Input::RequestFailed {
                    request: p.request,
                    failure,
                }
            }
        };
        self.engine.input(self.now, input);
    }

    /// Starts a remote request: checks the throttle invariants, schedules the reply.
    fn request(
        &mut self,
        request: RequestId,
        url: &str,
        domain: &str,
        fetch: Option<(RepoId, Vec<Oid>)>,
    ) {
        let now = self.now;
        let &(k, i) = self
            .world
            .urls
            .get(url)
            .unwrap_or_else(|| panic!("the engine asked {url}, which no announcement lists"));
        let remote = &self.world.remotes[k];
        assert_eq!(
            remote.domain, domain,
            "the engine put {url} on domain {domain}"
        );
        let log = self.domains.entry(domain.to_owned()).or_default();
        while log
            .window
            .front()
            .is_some_and(|t| t.plus(Duration::from_secs(60)) <= now)
        {
            log.window.pop_front();
        }
        log.in_flight += 1;
        log.window.push_back(now);
        log.peak_in_flight = log.peak_in_flight.max(log.in_flight);
        log.peak_window = log.peak_window.max(log.window.len());
        assert!(
            log.in_flight <= 5,
            "{domain} has {} requests in flight at {now:?}, more than 5",
            log.in_flight
        );
        assert!(
            log.window.len() <= 30,
            "{domain} got {} requests in the 60 s up to {now:?}, more than 30",
            log.window.len()
        );
        assert!(
            self.busy.insert((i, domain.to_owned())),
            "identifier {} has two requests in flight on {domain}",
            self.world.idents[i].d
        );
        match &fetch {
            None => log.lists += 1,
            Some(_) => log.fetches += 1,
        }
        let latency = Duration::from_millis(self.rng.range(30, 200));
        let (at, reply) = match remote.fault {
            Fault::Hang => (now.plus(FETCH_TIMEOUT), Reply::Failed(FailureKind::Timeout)),
            Fault::Refuse => (now.plus(latency), Reply::Failed(FailureKind::Unreachable)),
            Fault::Healthy => {
                let refs = remote.refs.get(&i).cloned().unwrap_or_default();
                let reply = match fetch {
                    None => {
                        self.advertised
                            .insert(url.to_owned(), refs.iter().map(|(_, o)| *o).collect());
                        Reply::Refs(refs)
                    }
                    Some((into, oids)) => {
                        let adv = self.advertised.get(url);
                        for o in &oids {
                            assert!(
                                adv.is_some_and(|a| a.contains(o)),
                                "the engine asked {url} for {o}, which it never advertised"
                            );
                        }
                        assert_eq!(
                            into, self.world.idents[i].repo,
                            "a fetch for {url} went into another repository"
                        );
                        Reply::Fetched(into, oids)
                    }
                };
                (now.plus(latency), reply)
            }
        };
        self.seq += 1;
        let key = (i, domain.to_owned());
        let domain = domain.to_owned();
        self.pending.insert(
            (at, self.seq),
            Pending {
                request,
                domain,
                key,
                reply,
            },
        );
    }

    /// Executes effects in order until the engine has none left.
    fn drain(&mut self) {
        while let Some(effect) = self.engine.effect() {
            match effect {
                Effect::Reply {
                    event_id,
                    accepted,
                    message,
                    ..
                } => {
                    self.replies += 1;
                    assert!(
                        accepted && message.starts_with("purgatory:"),
                        "event {event_id} should wait in purgatory, got OK {accepted} {message:?}"
                    );
                }
                Effect::StoreEvent { event, path } => self.on_store(event.id, path),
                Effect::CheckObjects { check, repos, oids } => {
                    let found = oids
                        .into_iter()
                        .filter_map(|o| {
                            repos
                                .iter()
                                .find(|r| self.objects.get(*r).is_some_and(|s| s.contains(&o)))
                                .map(|r| (o, r.clone()))
                        })
                        .collect();
                    self.engine
                        .input(self.now, Input::ObjectsChecked { check, found });
                }
                Effect::ListRefs {
                    request,
                    url,
                    domain,
                } => self.request(request, &url, &domain, None),
                Effect::Fetch {
                    request,
                    url,
                    domain,
                    into,
                    oids,
                } => self.request(request, &url, &domain, Some((into, oids))),
                Effect::CopyObjects { from, to, oids } => {
                    for o in &oids {
                        assert!(
                            self.has(&from, o),
                            "the engine copied {o} from {from:?}, which lacks it"
                        );
                    }
                    self.objects.entry(to).or_default().extend(oids);
                }
                Effect::AlignRepo { repo, refs, .. } => {
                    for (name, o) in &refs {
                        assert!(
                            self.has(&repo, o),
                            "the engine aligned {} {name} to {o}, which is not there",
                            repo.d
                        );
                    }
                }
                Effect::SetRef {
                    repo,
                    name,
                    target: Some(o),
                } => {
                    assert!(
                        self.has(&repo, &o),
                        "the engine set {} {name} to {o}, which is not there",
                        repo.d
                    );
                }
                Effect::CreateRepo { repo } => {
                    self.objects.entry(repo).or_default();
                }
                Effect::DeleteRepo { repo } => panic!("the engine deleted {} during sync", repo.d),
                Effect::DeleteEvents { .. } => panic!("nothing here deletes events"),
                Effect::SetRef { .. }
                | Effect::Persist { .. }
                | Effect::Forget { .. }
                | Effect::PruneObjects { .. }
                | Effect::PeerConnect { .. }
                | Effect::PeerDisconnect { .. }
                | Effect::PeerReq { .. }
                | Effect::PeerClose { .. } => {}
            }
        }
    }

    fn has(&self, repo: &RepoId, o: &Oid) -> bool {
        self.objects.get(repo).is_some_and(|s| s.contains(o))
    }

    fn on_store(&mut self, id: EventId, path: grasp_core::ServePath) {
        let Some((i, needs)) = self.waiting.get(&id) else {
            panic!("the engine stored event {id}, which is not one of the waiting events");
        };
        let ident = &self.world.idents[*i];
        for o in needs {
            assert!(
                self.has(&ident.repo, o),
                "event {id} of {} was released before its object {o} was here",
                ident.d
            );
        }
        assert_eq!(
            path,
            grasp_core::ServePath::Sync,
            "event {id} was released by {path:?}, not by sync"
        );
        if let Some(first) = self.released.insert(id, self.now) {
            panic!(
                "event {id} of {} was released twice (at {first:?} and {:?})",
                ident.d, self.now
            );
        }
    }

    /// Events never released, by identifier.
    pub fn left(&self) -> BTreeSet<String> {
        self.waiting
            .iter()
            .filter(|(id, _)| !self.released.contains_key(id))
            .map(|(_, (i, _))| self.world.idents[*i].d.clone())
            .collect()
    }
}
