//! Named invariants, checked by observing what the driver feeds the engine and the
//! effects it executes — never by trusting the engine's own bookkeeping for the property
//! under test.
//!
//! The driver calls the `on_*` hooks as things happen, [`Checker::after_step`] after
//! every step, and [`Checker::finish`] at the end. The first violation is kept.

mod durable;
mod effects;
mod requests;
mod timing;

use crate::oracle::{Authority, Facts};
use crate::report::RunStats;
use crate::world::World;
use grasp_core::nostr::prelude::{Event, EventId, PublicKey, Timestamp};
use grasp_core::{Config, Engine, Origin, PURGATORY_MESSAGE, RepoId, Time};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// ≤ 5 in flight and ≤ 30 per sliding 60 s per domain, counted from executed requests.
pub const THROTTLE: &str = "throttle_never_exceeded";
/// At most one request in flight per (identifier, domain).
pub const ONE_IN_FLIGHT: &str = "one_in_flight_per_identifier_domain";
/// No request to our own domain or to a URL the guard refuses.
pub const NO_OWN: &str = "no_request_to_own_domain_or_refused_url";
/// A fetch asks a server only for objects it advertised to this engine.
pub const UNADVERTISED: &str = "never_ask_for_unadvertised";
/// Released events have their data in the repository and an authorized author.
pub const RELEASE: &str = "release_only_when_present_and_authorized";
/// No event is stored twice.
pub const DOUBLE: &str = "no_double_release";
/// A repository is never aligned to an older state than before.
pub const ROLLBACK: &str = "no_rollback";
/// At the end every purgatory entry was released, expired or deleted.
pub const ENDS: &str = "every_entry_ends";
/// Data available on healthy servers long enough means release within the bound.
pub const LIVENESS: &str = "liveness";
/// Deadlines are arrival + expiry, across restarts too.
pub const DEADLINES: &str = "deadlines_across_restarts";
/// Purgatory, sync queue and throttle stay within their bounds.
pub const MEMORY: &str = "bounded_memory";
/// Every event fed gets exactly one verdict.
pub const ANSWERED: &str = "every_event_answered";
/// A new waiting event resets the backoff and brings the next attempt within its delay.
pub const BACKOFF: &str = "new_event_resets_backoff";

/// An `OK true` for an event the executor wrote goes out only once that write is durable.
pub const ACKED_DURABLE: &str = "ok_only_when_durable";
/// Every acknowledged event is served or waiting after a crash and restart.
pub const SURVIVES: &str = "acknowledged_survives_crash";
/// The store serves the version of each state and announcement the engine enforces.
pub const SERVED: &str = "served_state_is_enforced_state";
/// A graceful shutdown settles every write in flight.
pub const SHUTDOWN: &str = "shutdown_settles_writes";

/// Every invariant name.
pub const ALL: [&str; 17] = [
    THROTTLE,
    ONE_IN_FLIGHT,
    NO_OWN,
    UNADVERTISED,
    RELEASE,
    DOUBLE,
    ROLLBACK,
    ENDS,
    LIVENESS,
    DEADLINES,
    MEMORY,
    ANSWERED,
    BACKOFF,
    ACKED_DURABLE,
    SURVIVES,
    SERVED,
    SHUTDOWN,
];

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The invariant's name.
    pub invariant: &'static str,
    /// Simulated time.
    pub at: Time,
    /// What happened.
    pub detail: String,
}

#[derive(Debug, Default)]
struct DomainLoad {
    in_flight: u32,
    starts: VecDeque<Time>,
}

#[derive(Debug)]
struct Fed {
    event: Event,
    facts: Option<Facts>,
    at: Time,
    origin: Origin,
}

/// The invariant checker of one run.
#[derive(Debug)]
pub struct Checker {
    config: Config,
    world: World,
    /// The first violation seen.
    pub violation: Option<Violation>,
    /// Figures for the sweep report.
    pub stats: RunStats,
    domains: BTreeMap<String, DomainLoad>,
    per_ident: BTreeMap<(String, String), u32>,
    requests: BTreeMap<u64, (String, String, bool)>,
    advertised: BTreeMap<String, BTreeSet<grasp_core::Oid>>,
    fed: BTreeMap<EventId, Fed>,
    tokens: BTreeMap<u64, (EventId, bool)>,
    authority: Authority,
    waiting: BTreeMap<EventId, Time>,
    deleted: BTreeSet<EventId>,
    newest_state: BTreeMap<(PublicKey, String), (Timestamp, EventId)>,
    floors: BTreeMap<RepoId, (Timestamp, EventId)>,
    released: BTreeSet<EventId>,
    touched: BTreeSet<RepoId>,
    /// Check `no_rollback` after every effect rather than after every step (this also
    /// flags a rollback undone within the same step).
    pub strict_rollback: bool,
    /// Per waiting state: when its data is ready on healthy servers, and the liveness bound.
    ready: BTreeMap<EventId, Option<(Time, std::time::Duration)>>,
    up_since: Time,
    /// Events the executor saved or journalled as waiting.
    written: BTreeSet<EventId>,
    /// Events whose `OK true` reached the client after a write.
    acked: BTreeSet<EventId>,
    /// Events a `DeleteEvents` effect removed.
    removed: BTreeSet<EventId>,
    /// Events that expired.
    expired: BTreeSet<EventId>,
}

impl Checker {
    /// A checker for a run of `config` in `world`.
    pub fn new(config: &Config, world: &World) -> Self {
        Checker {
            config: config.clone(),
            world: world.clone(),
            violation: None,
            stats: RunStats::default(),
            domains: BTreeMap::new(),
            per_ident: BTreeMap::new(),
            requests: BTreeMap::new(),
            advertised: BTreeMap::new(),
            fed: BTreeMap::new(),
            tokens: BTreeMap::new(),
            authority: Authority::new(config.maintainer_model),
            waiting: BTreeMap::new(),
            deleted: BTreeSet::new(),
            newest_state: BTreeMap::new(),
            floors: BTreeMap::new(),
            released: BTreeSet::new(),
            touched: BTreeSet::new(),
            strict_rollback: false,
            ready: BTreeMap::new(),
            up_since: Time::ZERO,
            written: BTreeSet::new(),
            acked: BTreeSet::new(),
            removed: BTreeSet::new(),
            expired: BTreeSet::new(),
        }
    }

    fn fail(&mut self, invariant: &'static str, at: Time, detail: String) {
        if self.violation.is_none() {
            self.violation = Some(Violation {
                invariant,
                at,
                detail,
            });
        }
    }

    /// The driver fed `event` with reply token `token`.
    pub fn on_fed(&mut self, now: Time, token: u64, event: &Event, origin: Origin) {
        let facts = Facts::of(event);
        if let Some(Facts::State { d, .. }) = &facts {
            let k = (event.pubkey, d.clone());
            let key = (event.created_at, event.id);
            let newest = self.newest_state.entry(k).or_insert(key);
            *newest = (*newest).max(key);
        }
        self.stats.events += 1;
        self.tokens.insert(token, (event.id, false));
        self.fed.insert(
            event.id,
            Fed {
                event: event.clone(),
                facts,
                at: now,
                origin,
            },
        );
    }

    /// The engine's verdict on the event behind `token`.
    pub fn on_reply(
        &mut self,
        now: Time,
        engine: &Engine,
        token: u64,
        id: EventId,
        accepted: bool,
        message: &str,
    ) {
        match self.tokens.get_mut(&token) {
            Some((_, true)) => self.fail(ANSWERED, now, format!("token {token} answered twice")),
            Some((want, answered)) if *want == id => *answered = true,
            Some(_) => self.fail(
                ANSWERED,
                now,
                format!("token {token} answered for another event"),
            ),
            None => {}
        }
        let Some(fed) = self.fed.get(&id) else {
            return;
        };
        let (origin, facts, event) = (fed.origin, fed.facts.clone(), fed.event.clone());
        if accepted && message == PURGATORY_MESSAGE && engine.is_waiting(&id) {
            self.waiting.entry(id).or_insert(fed.at);
            if matches!(facts, Some(Facts::State { .. } | Facts::Pr { .. })) {
                self.check_backoff_reset(now, engine, facts.as_ref(), origin);
            }
        }
        if !accepted && message.starts_with("rate-limited") {
            self.stats.rate_limited += 1;
        }
        if !accepted || message.starts_with("duplicate") {
            return;
        }
        match facts {
            Some(Facts::Announcement {
                d,
                maintainers,
                clone,
            }) if self.authority.accept(&event, &d, &maintainers, &clone) => {
                // The maintainer set changed: authority may legitimately move back.
                self.floors.retain(|r, _| r.d != d);
            }
            Some(Facts::Deletion(ids)) => {
                // A deleted state no longer holds its repositories' floor.
                self.floors.retain(|_, k| !ids.contains(&k.1));
                self.deleted.extend(ids);
            }
            _ => {}
        }
    }

    /// Our server restarted at `now`: connections and requests of the old process are gone.
    pub fn on_restart(&mut self, now: Time) {
        self.tokens.retain(|_, (_, answered)| *answered);
        for (_, (domain, d, extra)) in std::mem::take(&mut self.requests) {
            self.end_load(&domain, &d, extra);
        }
        self.advertised.clear();
        self.up_since = now;
        self.stats.restarts += 1;
    }

    /// Called at the end of the run, after running past every expiry.
    pub fn finish(&mut self, now: Time, engine: &Engine, store: &crate::store::Store) {
        self.after_step(now, engine, store);
        for w in engine.purgatory_view() {
            if !w.soft_expired {
                let detail = format!("{} {} of {} still waits at the end", w.kind, w.id, w.d);
                self.fail(ENDS, now, detail);
            }
        }
        for rec in store.journal.values() {
            if let grasp_core::JournalRecord::Waiting {
                event,
                forget_at: None,
                ..
            } = rec
            {
                let detail = format!("journal still holds waiting {}", event.id);
                self.fail(ENDS, now, detail);
            }
        }
        if let Some((t, (id, _))) = self.tokens.iter().find(|(_, (_, a))| !a) {
            self.fail(ANSWERED, now, format!("token {t} for {id} never answered"));
        }
        self.stats.finish(&self.world);
    }
}
