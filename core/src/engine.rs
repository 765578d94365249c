//! The engine: owns every part, dispatches inputs, queues effects, exposes the earliest
//! deadline.

use crate::config::Config;
use crate::effect::{CheckId, Effect, ReplyToken, RequestId, ServePath};
use crate::effect_queue::EffectQueue;
use crate::event::{Origin, VerifiedEvent};
use crate::ident::{Ident, IdentMap, Idents};
use crate::input::{Input, PushRequest, PushVerdict};
use crate::keyed::{Keyed, KeyedMap};
use crate::metrics::Counters;
use crate::oid::Oid;
use crate::purgatory::Purgatory;
use crate::related::Related;
use crate::repo::RepoId;
use crate::repo_index::RepoIndex;
use crate::sync_queue::SyncQueue;
use crate::throttle::Throttle;
use crate::time::Time;
use crate::timers::Timers;
use nostr::prelude::EventId;
use std::collections::BTreeMap;

/// The OK message of an event that waits in purgatory.
pub const PURGATORY_MESSAGE: &str = "purgatory: won't be served until git data arrives";

/// What a deadline is for, besides purgatory entries (whose expiry the purgatory indexes
/// itself, and which fire before these at the same time: see [`Engine::on_timeout`]).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerKey {
    /// A git-first placeholder lapses. Boxed: it is rare, and inline it would make every
    /// key three times larger. (Memories of expired events lapse in
    /// [`crate::expired::ExpiredMemory`], at equal times after these.)
    Placeholder(Box<(RepoId, EventId)>),
    /// A repository whose placeholders lapsed is pruned of the objects nothing needs
    /// (see [`crate::Effect::PruneObjects`]).
    Prune(Box<RepoId>),
}

/// A pending object check and what asked for it.
#[derive(Clone, Debug)]
pub(crate) struct PendingCheck {
    /// By name: the identifier's handle may be freed and reused before the answer.
    pub(crate) d: String,
    /// The event whose verdict waits for this check.
    pub(crate) event: Option<EventId>,
    /// Repositories of `d` deleted since the check was asked: not believed in its answer.
    pub(crate) gone: Vec<RepoId>,
    /// Served repositories to re-align with their authoritative state once its objects
    /// are found (see `realign.rs`).
    pub(crate) realign: Vec<RepoId>,
    /// How many failed checks this one repeats (see [`Input::CheckFailed`]).
    pub(crate) retries: u8,
}

/// The GRASP engine: a deterministic state machine with no I/O.
///
/// Methods come in three groups:
/// - **inputs**: [`Engine::handle_input`], [`Engine::handle_push_request`] and
///   [`Engine::handle_timeout`], each given the current [`Time`]. Time must not go
///   backwards; an earlier `now` is treated as the latest seen.
/// - **outputs**: [`Engine::poll_effect`] drains effects in the order they must run;
///   [`Engine::poll_timeout`] is the earliest deadline of every part.
/// - **getters** for metrics and the operator view ([`Engine::metrics`],
///   [`Engine::purgatory_view`], [`Engine::sync_view`]).
pub struct Engine {
    pub(crate) config: Config,
    pub(crate) authority: String,
    pub(crate) now: Time,
    pub(crate) effects: EffectQueue,
    pub(crate) repos: RepoIndex,
    pub(crate) related: Related,
    pub(crate) purgatory: Purgatory,
    /// Handles of the identifiers that purgatory, `present` and the sync queue hold.
    pub(crate) idents: Idents,
    pub(crate) timers: Timers<TimerKey>,
    pub(crate) sync: SyncQueue,
    pub(crate) throttle: Throttle,
    pub(crate) checks: BTreeMap<CheckId, PendingCheck>,
    /// Needed objects known present locally, per identifier, with a repository holding each.
    pub(crate) present: IdentMap<BTreeMap<Oid, RepoId>>,
    /// Tips of stored pull requests and updates, for `refs/nostr/<id>` pushes.
    pub(crate) pr_tips: KeyedMap<EventId, Oid>,
    /// Author and tagged repositories of stored pull requests, kept only with GRASP-06
    /// on: a `/prs/<npub>/<d>` push names a stored one only if it is `npub`'s, for `d`.
    pub(crate) pr_scopes: KeyedMap<EventId, crate::prs::PrScope>,
    pub(crate) counters: Counters,
    /// Relay sync's peers (GRASP-02).
    pub(crate) peers: crate::peers::Peers,
    /// Accepted roots per hosted identifier, for the peers' thread filters.
    pub(crate) roots: crate::peers::Roots,
    /// The roots version the peers last saw.
    pub(crate) roots_seen: u64,
    /// Hydration is over: peers may be dialed.
    pub(crate) peers_live: bool,
    next_id: u64,
}

impl Engine {
    /// A fresh engine. Feed it the stored events and journal records
    /// ([`Input::Stored`], [`Input::Restore`]) and then [`Input::Hydrated`] before live input.
    pub fn new(config: Config) -> Self {
        let keys = Keyed::new(config.hash_seed);
        let model = config.maintainer_model;
        let throttle = Throttle::new(
            config.domain_concurrency,
            config.domain_rate,
            config.domain_window,
            keys,
        )
        .with_global_limit(config.remote_concurrency);
        let peers = crate::peers::Peers::new(
            config.relay_sync.clone(),
            &crate::config::relay_url_of(&config.public_url),
            config.hash_seed,
        );
        Engine {
            authority: config.authority(),
            config,
            now: Time::ZERO,
            effects: EffectQueue::default(),
            repos: RepoIndex::new(keys, model),
            related: Related::new(keys),
            purgatory: Purgatory::new(keys),
            idents: Idents::new(keys),
            timers: Timers::default(),
            sync: SyncQueue::default(),
            throttle,
            checks: BTreeMap::new(),
            present: IdentMap::default(),
            pr_tips: keys.map(),
            pr_scopes: keys.map(),
            counters: Counters::default(),
            peers,
            roots: crate::peers::Roots::default(),
            roots_seen: 0,
            peers_live: false,
            next_id: 1,
        }
    }

    /// The configuration the engine runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Handles one input. Results come out of [`Engine::poll_effect`].
    pub fn handle_input(&mut self, now: Time, input: Input) {
        self.advance_clock(now);
        if !matches!(
            input,
            Input::Stored(_) | Input::Restore(_) | Input::Hydrated
        ) {
            self.fire_due_expiries();
        }
        match input {
            Input::Event {
                token,
                event,
                origin,
                received_at,
                peer: _,
            } => self.on_event(token, event, origin, received_at),
            Input::PushApplied {
                repo,
                updates,
                refs,
                client,
            } => self.on_push_applied(repo, updates, refs, client),
            Input::RefsSeen { repo, refs } => self.on_refs_seen(&repo, &refs),
            Input::ObjectsChecked { check, found } => self.on_objects_checked(check, found),
            Input::CheckFailed { check, found } => self.on_check_failed(check, found),
            Input::RefsListed { request, refs } => self.on_refs_listed(request, refs),
            Input::Fetched {
                request,
                present,
                bytes,
            } => self.on_fetched(request, present, bytes),
            Input::RequestFailed { request, failure } => self.on_request_failed(request, failure),
            Input::PeerConnected { peer } => self.on_peer_connected(peer),
            Input::PeerFailed { peer, kind, detail } => self.on_peer_failed(peer, kind, detail),
            Input::PeerEose { peer, sub } => self.on_peer_eose(peer, sub),
            Input::PeerClosed { peer, sub, message } => self.on_peer_closed(peer, sub, &message),
            Input::PeerNotice { peer, message } => self.on_peer_notice(peer, &message),
            Input::PageDone {
                peer,
                job,
                received,
                new,
                oldest,
            } => self.on_page_done(peer, job, (received, new, oldest)),
            Input::PeerMisbehaved {
                peer,
                count,
                detail,
            } => self.on_peer_misbehaved(peer, count, &detail),
            Input::Stored(event) => self.on_stored(event),
            Input::Restore(record) => self.on_restore(record),
            Input::Hydrated => self.on_hydrated(),
        }
        self.refresh_peers();
    }

    /// Decides a push before git writes anything: per ref, accepted or refused with a
    /// reason for the git client.
    pub fn handle_push_request(&mut self, now: Time, request: &PushRequest) -> PushVerdict {
        self.advance_clock(now);
        self.fire_due_expiries();
        self.decide_push(request)
    }

    /// Handles every deadline due at `now`. Calling it early or twice is harmless.
    pub fn handle_timeout(&mut self, now: Time) {
        self.advance_clock(now);
        self.on_timeout();
        self.refresh_peers();
    }

    /// The next effect to execute, in order.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop()
    }

    /// The earliest deadline of every part (see [`crate::deadlines::Deadline`]): purgatory
    /// expiry and the checks before it, placeholders and other keyed timers, expired
    /// memories, sync attempts, throttle windows. `None` when nothing is scheduled.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.next_deadline(&crate::deadlines::Deadline::ALL)
            .map(|(t, _)| t)
    }

    fn advance_clock(&mut self, now: Time) {
        self.now = self.now.max(now);
    }

    pub(crate) fn emit(&mut self, effect: Effect) {
        if let Effect::DeleteRepo { repo } = &effect {
            self.distrust_checks_of(repo);
            // Objects known present there are gone with it.
            if let Some(d) = self.idents.get(&repo.d) {
                self.retarget_attempt(d, repo);
                if let Some(map) = self.present.get_mut(&d) {
                    map.retain(|_, r| r != repo);
                    if map.is_empty() {
                        self.present.remove(&d);
                        self.free_ident_if_idle(d);
                    }
                }
            }
        }
        self.effects.push(effect);
    }

    pub(crate) fn reply(
        &mut self,
        token: ReplyToken,
        event_id: EventId,
        accepted: bool,
        message: impl Into<String>,
    ) {
        self.emit(Effect::Reply {
            token,
            event_id,
            accepted,
            message: message.into(),
        });
    }

    pub(crate) fn store(&mut self, event: nostr::prelude::Event, path: ServePath) {
        self.counters.served(path);
        self.note_root(&event);
        self.emit(Effect::StoreEvent {
            event: Box::new(event),
            path,
        });
    }

    /// The handle of identifier `d`, if anything of it is held.
    pub(crate) fn ident(&self, d: &str) -> Option<Ident> {
        self.idents.get(d)
    }

    /// Frees the handle of `d` once no purgatory entry or sync state refers to it. (Requests in flight belong to a running attempt, which keeps
    /// its sync state; checks in flight name the identifier, not the handle.)
    pub(crate) fn free_ident_if_idle(&mut self, d: Ident) {
        if self.purgatory.has_entries(d) {
            return;
        }
        // Known-present objects matter only to waiting events: with none left, forget them
        // (a deleted or expired entry's objects would otherwise be remembered forever).
        self.present.remove(&d);
        if !self.sync.entries.contains_key(&d) {
            self.idents.free(d);
        }
    }

    pub(crate) fn next_check(&mut self) -> CheckId {
        self.next_id += 1;
        CheckId(self.next_id)
    }

    pub(crate) fn next_request(&mut self) -> RequestId {
        self.next_id += 1;
        RequestId(self.next_id)
    }

    pub(crate) fn on_event(
        &mut self,
        token: ReplyToken,
        event: VerifiedEvent,
        origin: Origin,
        received_at: nostr::prelude::Timestamp,
    ) {
        self.counters.events_in += 1;
        self.decide_event(token, event.into_event(), origin, received_at);
    }
}
