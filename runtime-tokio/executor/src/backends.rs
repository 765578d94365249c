//! What the executor runs effects against. The daemon implements these with LMDB, redb,
//! git2 and the git CLI, and tokio; the simulator with the in-memory backends of
//! [`crate::memory`] (faults included) and madsim. Nothing here knows which.
//!
//! Writes that must keep their call order (event saves, journal records) are plain
//! methods returning a `'static` future: the write is *queued at the call* and the
//! future only reports when it is durable, so the executor can start many and await them
//! later (group commit). Everything else is an `async fn` (async-trait).

use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use grasp_core::nostr::prelude::{Coordinate, Event, EventId, PublicKey, Timestamp};
use grasp_core::{
    Effect, Engine, Failure, JournalKey, JournalRecord, Oid, RepoId, ServePath, Time,
};

/// A write that did not become durable, and why (for the log).
pub type WriteError = String;

/// What an event store did with a save.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveOutcome {
    /// Stored (or already there).
    Stored,
    /// The store kept another version of this replaceable event than the engine chose:
    /// the two disagree on version order, which must never happen (logged loudly).
    KeptOther,
}

/// The relay's event store.
#[async_trait]
pub trait EventStore: Clone + Send + Sync + 'static {
    /// Queues a save of `event`; the future resolves once it is durable.
    fn save(&self, event: &Event) -> BoxFuture<'static, Result<SaveOutcome, WriteError>>;
    /// Deletes `author`'s events among `ids`, and every version of each coordinate up to
    /// its timestamp (a NIP-09 deletion the engine accepted).
    async fn delete(
        &self,
        author: PublicKey,
        ids: Vec<EventId>,
        coordinates: Vec<(Coordinate, Timestamp)>,
    ) -> Result<(), WriteError>;
    /// Calls `visit` once for every stored event (hydration).
    async fn for_each_event(
        &self,
        visit: &mut (dyn FnMut(Event) + Send),
    ) -> Result<usize, WriteError>;
}

/// The purgatory journal.
pub trait Journal: Clone + Send + Sync + 'static {
    /// Queues a write (or replacement) of `record`; resolves once durable.
    fn put(&self, record: &JournalRecord) -> BoxFuture<'static, Result<(), WriteError>>;
    /// Queues the removal of `key`; resolves once durable.
    fn forget(&self, key: &JournalKey) -> BoxFuture<'static, Result<(), WriteError>>;
    /// Calls `visit` for every record (hydration). An unreadable record is an error:
    /// it is an acknowledged event or a budget, never skipped silently.
    fn for_each_record(&self, visit: &mut dyn FnMut(JournalRecord)) -> Result<usize, WriteError>;
}

/// What an object check saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Looked {
    /// Each object found, with the repository it was found in.
    pub found: Vec<(Oid, RepoId)>,
    /// The repositories that could not be read, and why.
    pub failed: Vec<(RepoId, String)>,
    /// How many of the objects asked for were not found.
    pub missing: usize,
}

/// The bare repositories on this server.
#[async_trait]
pub trait Repositories: Clone + Send + Sync + 'static {
    /// `git init --bare`, if absent.
    async fn create(&self, repo: &RepoId) -> Result<(), String>;
    /// Removes the repository.
    async fn delete(&self, repo: &RepoId) -> Result<(), String>;
    /// For each of `oids`, the first of `repos` (in order) holding it; a repository that
    /// cannot be read is reported in [`Looked::failed`], never read as empty.
    async fn find_objects(&self, repos: Vec<RepoId>, oids: Vec<Oid>) -> Looked;
    /// Copies what `from` holds of `oids` (and what they reach) into `to`.
    async fn copy_objects(&self, from: &RepoId, to: &RepoId, oids: &[Oid]) -> Result<(), String>;
    /// Makes `repo`'s branches and tags exactly `refs`, and HEAD `head` if it is one.
    async fn align(
        &self,
        repo: &RepoId,
        refs: &[(String, Oid)],
        head: Option<&str>,
    ) -> Result<(), String>;
    /// Sets (or with `None` deletes) one ref.
    async fn set_ref(&self, repo: &RepoId, name: &str, target: Option<Oid>) -> Result<(), String>;
    /// Schedules dropping what no ref reaches and `keep` does not list, in the
    /// background (a prune never races a push).
    fn prune(&self, repo: &RepoId, keep: Vec<Oid>) -> Result<(), String>;
    /// Every `refs/nostr/<64 hex>` ref on disk (adopted at startup when unknown).
    async fn nostr_refs(&self) -> Vec<(RepoId, EventId, Oid)>;
}

/// Other git servers.
#[async_trait]
pub trait Remote: Clone + Send + Sync + 'static {
    /// `git ls-remote url`. `domain` is the engine's name for the URL's throttle
    /// domain (for accounting; the URL alone says where to go).
    async fn list_refs(&self, url: &str, domain: &str) -> Result<Vec<(String, Oid)>, Failure>;
    /// Fetches `oids` from `url` into `into`; the objects now present and the bytes read.
    async fn fetch(
        &self,
        url: &str,
        domain: &str,
        into: &RepoId,
        oids: &[Oid],
    ) -> Result<(Vec<Oid>, u64), Failure>;
}

/// Time and tasks.
pub trait Runtime: Clone + Send + Sync + 'static {
    /// Now, on the engine's clock.
    fn now(&self) -> Time;
    /// Now, in nostr seconds (an event's `received_at`).
    fn unix_now(&self) -> Timestamp;
    /// A monotonic reading, for the latency metrics only.
    fn monotonic(&self) -> Duration;
    /// Resolves at `deadline` on the engine's clock (at once when past).
    fn sleep_until(&self, deadline: Time) -> BoxFuture<'static, ()>;
    /// Runs `task` concurrently with the executor.
    fn spawn(&self, task: BoxFuture<'static, ()>);
}

/// An `OK` for a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// `true` or `false`.
    pub accepted: bool,
    /// The message, prefixed as NIP-01 says.
    pub message: String,
}

impl Reply {
    /// A refusal with `message`.
    pub fn refuse(message: impl Into<String>) -> Self {
        Self {
            accepted: false,
            message: message.into(),
        }
    }
}

/// What the executor tells its owner: replies to send, events now servable, and what it
/// does (for metrics, the log and the simulator's checker).
pub trait Observer: Send + 'static {
    /// Whoever waits for an `OK` (a connection's reply channel, a test's token).
    type ReplyTo: Send + 'static;
    /// Sends `reply` for `event_id`: only once every write it depends on is durable
    /// (and as an `error:` if one failed).
    fn reply(&mut self, to: Self::ReplyTo, event_id: EventId, reply: Reply);
    /// The engine decided `reply` for `to` (it is sent by [`Observer::reply`] later).
    fn decided(
        &mut self,
        _now: Time,
        _to: &Self::ReplyTo,
        _event_id: EventId,
        _reply: &Reply,
        _engine: &Engine,
    ) {
    }
    /// `event`'s save is durable: publish it to live subscribers.
    fn served(&mut self, event: Event, path: ServePath);
    /// Whether [`Observer::executed`] wants every effect (hoisted saves are cloned for
    /// it: off in the daemon).
    fn watches_effects(&self) -> bool {
        false
    }
    /// An effect the engine decided at `now` was executed (started, for writes), in
    /// the engine's order.
    fn executed(&mut self, _now: Time, _effect: &Effect, _engine: &Engine) {}
    /// A result is about to be fed to the engine.
    fn input(&mut self, _now: Time, _input: &grasp_core::Input, _engine: &Engine) {}
    /// A remote request to `domain` started.
    fn request_started(&mut self, _domain: &str) {}
    /// A fetch read `bytes`.
    fn fetched(&mut self, _bytes: u64) {}
    /// A fetch released events; they were servable `took` after its result came in.
    fn sync_released(&mut self, _took: Duration) {}
}

/// The backends of one executor, named once.
pub trait Backends: Send + 'static {
    /// The relay's events.
    type Store: EventStore;
    /// The purgatory journal.
    type Journal: Journal;
    /// The bare repositories.
    type Repos: Repositories;
    /// Other git servers.
    type Remote: Remote;
    /// Time and tasks.
    type Runtime: Runtime;
    /// Replies, publishing, metrics.
    type Observer: Observer;
}

/// One value of each backend.
pub struct Parts<B: Backends> {
    /// See [`Backends::Store`].
    pub store: B::Store,
    /// See [`Backends::Journal`].
    pub journal: B::Journal,
    /// See [`Backends::Repos`].
    pub repos: B::Repos,
    /// See [`Backends::Remote`].
    pub remote: B::Remote,
    /// See [`Backends::Runtime`].
    pub runtime: B::Runtime,
    /// See [`Backends::Observer`].
    pub observer: B::Observer,
}
