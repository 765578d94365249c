//! The executor: owns the engine, executes its effects in order against the backends,
//! and turns what comes back into inputs.
//!
//! Its owner drives it with two calls: [`Executor::wait`] (cancel-safe: the next result,
//! finished write or engine deadline) and [`Executor::handle`], plus the entry points for
//! what clients do ([`Executor::submit`], [`Executor::push_request`],
//! [`Executor::pushed`], [`Executor::refs_seen`]). The daemon selects between its command
//! channel and `wait`; the simulator between its workload and `wait`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use futures_channel::mpsc;
use futures_util::future::FutureExt;
use futures_util::stream::StreamExt;
use grasp_core::nostr::prelude::{Event, EventId, Filter};
use grasp_core::{
    CheckId, Effect, Engine, Input, JournalKey, JournalRecord, Oid, Origin, PushRequest,
    PushVerdict, RefUpdate, ReplyToken, RepoId, VerifiedEvent,
};

use crate::backends::{
    Backends, EventStore, Journal, Looked, Observer, Parts, Remote, Reply, Repositories, Runtime,
};
use crate::writes::{JournalWrite, Writes, Written};

/// Object checks running at once: each opens up to `Limits::repos_per_check`
/// repositories, and a flood of checks must not take every blocking thread from the git
/// work the executor waits for.
pub const CHECKS_IN_FLIGHT: usize = 4;

/// How long a failed event save waits before it is tried again.
const SAVE_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// Something the executor waits for, returned by [`Executor::wait`].
pub enum Wake {
    /// A remote request or object check finished (boxed, as an input is large).
    Done(Box<Done>),
    /// A durable write finished (boxed: it carries a whole event).
    Written(Box<Written>),
    /// The engine's earliest deadline passed.
    Deadline,
}

/// The result of work the executor started off its own task.
#[derive(Debug)]
pub enum Done {
    /// An object check's answer.
    Check(Input),
    /// A remote request's answer.
    Request(Input),
}

/// The one executor of engine effects (see the crate docs).
pub struct Executor<B: Backends> {
    engine: Engine,
    store: B::Store,
    journal: B::Journal,
    repos: B::Repos,
    remote: B::Remote,
    runtime: B::Runtime,
    observer: B::Observer,
    writes: Writes<<B::Observer as Observer>::ReplyTo>,
    replies: HashMap<u64, <B::Observer as Observer>::ReplyTo>,
    next_token: u64,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: mpsc::UnboundedReceiver<Done>,
    checks_running: usize,
    checks_queued: VecDeque<(CheckId, Vec<RepoId>, Vec<Oid>)>,
    /// When the engine decided the effects being executed (what the observer is told:
    /// git work inside a batch takes time, the decisions do not).
    decided_at: grasp_core::Time,
    /// The newest write's number for each journal key with a write in flight: a failed
    /// write is retried only while it is still its key's newest (shared with the retry,
    /// which checks again when it queues).
    journal_writes: Arc<Mutex<HashMap<JournalKey, u64>>>,
    next_journal_write: u64,
}

impl<B: Backends> Executor<B> {
    /// An executor of `engine` (hydrated already: see [`crate::hydrate`]). Call
    /// [`Executor::execute`] next to run the effects hydration left.
    pub fn new(engine: Engine, parts: Parts<B>) -> Self {
        let (done_tx, done_rx) = mpsc::unbounded();
        let parts_now = parts.runtime.now();
        Self {
            engine,
            store: parts.store,
            journal: parts.journal,
            repos: parts.repos,
            remote: parts.remote,
            runtime: parts.runtime,
            observer: parts.observer,
            writes: Writes::default(),
            replies: HashMap::new(),
            next_token: 0,
            done_tx,
            done_rx,
            checks_running: 0,
            checks_queued: VecDeque::new(),
            decided_at: parts_now,
            journal_writes: Arc::default(),
            next_journal_write: 0,
        }
    }

    /// The engine, for views and checks.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The observer, for views.
    pub fn observer(&self) -> &B::Observer {
        &self.observer
    }

    /// The observer, for the simulator's checker.
    pub fn observer_mut(&mut self) -> &mut B::Observer {
        &mut self.observer
    }

    /// An event from a client (or a relay sync): decided, executed, its `OK` sent to
    /// `reply_to` once what it depends on is durable.
    pub async fn submit(
        &mut self,
        event: Event,
        origin: Origin,
        reply_to: <B::Observer as Observer>::ReplyTo,
    ) {
        self.next_token += 1;
        let token = self.next_token;
        self.replies.insert(token, reply_to);
        let input = Input::Event {
            token: ReplyToken(token),
            event: VerifiedEvent::assume_verified(event),
            origin,
            received_at: self.runtime.unix_now(),
            peer: None,
        };
        self.feed(input).await;
    }

    /// Whether the push `request` may go ahead (decided before git writes anything).
    pub fn push_request(&mut self, request: &PushRequest) -> PushVerdict {
        self.engine.handle_push_request(self.runtime.now(), request)
    }

    /// A push was applied: what it released is servable when this returns.
    pub async fn pushed(
        &mut self,
        repo: RepoId,
        updates: Vec<RefUpdate>,
        refs: Vec<(String, Oid)>,
        client: Option<String>,
    ) {
        let input = Input::PushApplied {
            repo,
            updates,
            refs,
            client,
        };
        self.feed(input).await;
        self.settle_saves().await;
    }

    /// A push's ref advertisement showed `refs` (an "Everything up-to-date" retry).
    pub async fn refs_seen(&mut self, repo: RepoId, refs: Vec<(String, Oid)>) {
        self.feed(Input::RefsSeen { repo, refs }).await;
    }

    /// Feeds `input` and executes what follows.
    async fn feed(&mut self, input: Input) {
        self.decided_at = self.runtime.now();
        self.engine.handle_input(self.decided_at, input);
        self.execute().await;
    }

    /// Handles the engine's deadlines that passed, if any — also those that pass while
    /// their effects execute (git work takes time).
    async fn on_deadlines(&mut self) {
        loop {
            let now = self.runtime.now();
            if self.engine.poll_timeout().is_none_or(|t| t > now) {
                return;
            }
            self.decided_at = now;
            self.engine.handle_timeout(now);
            self.execute().await;
        }
    }

    /// The next thing to handle. Cancel-safe: dropping the future loses nothing.
    pub async fn wait(&mut self) -> Wake {
        let deadline = self.engine.poll_timeout();
        let sleep = match deadline {
            Some(t) => self.runtime.sleep_until(t),
            None => futures_util::future::pending().boxed(),
        };
        let writes = &mut self.writes;
        let written = async move {
            if !writes.is_idle() {
                if let Some(w) = writes.next().await {
                    return w;
                }
            }
            futures_util::future::pending().await
        };
        futures_util::select_biased! {
            done = self.done_rx.next() => match done {
                Some(done) => Wake::Done(Box::new(done)),
                // The executor holds a sender: the channel never closes.
                None => Wake::Deadline,
            },
            w = written.fuse() => Wake::Written(Box::new(w)),
            () = sleep.fuse() => Wake::Deadline,
        }
    }

    /// Handles what [`Executor::wait`] returned, then any deadline that passed meanwhile
    /// (a stream of results never starves the engine's timers).
    pub async fn handle(&mut self, wake: Wake) {
        match wake {
            Wake::Written(w) => self.on_written(*w),
            Wake::Deadline => {}
            Wake::Done(done) => self.on_done(*done).await,
        }
        self.on_deadlines().await;
    }

    async fn on_done(&mut self, done: Done) {
        match done {
            Done::Check(input) => {
                self.checks_running -= 1;
                self.start_queued_checks();
                self.observer
                    .input(self.runtime.now(), &input, &self.engine);
                self.feed(input).await;
            }
            Done::Request(input) => {
                self.observer
                    .input(self.runtime.now(), &input, &self.engine);
                let Input::Fetched { bytes, .. } = &input else {
                    return self.feed(input).await;
                };
                self.observer.fetched(*bytes);
                let started = self.runtime.monotonic();
                let released_before = self.engine.counters().released_sync;
                self.feed(input).await;
                // The histogram times releases: a fetch that released nothing is not one.
                if self.engine.counters().released_sync > released_before {
                    self.settle_saves().await;
                    let took = self.runtime.monotonic().saturating_sub(started);
                    self.observer.sync_released(took);
                }
            }
        }
    }

    /// Settles every write in flight: at shutdown, nothing acknowledged is left undurable.
    pub async fn shutdown(mut self) -> B::Observer {
        self.settle_writes().await;
        self.observer
    }

    /// Drains and executes every effect. Object checks and remote requests run off this
    /// task and come back through [`Executor::wait`].
    ///
    /// The event-store saves of each drained batch start first, so that their commit
    /// overlaps the git work ordered before them (aligning a repository, copying
    /// objects): a release is visible that much sooner. Nothing observable moves
    /// earlier: a saved event is published, and its `OK` sent, only once the save is
    /// durable; and no save moves past a deletion, which must see only the saves before it.
    pub async fn execute(&mut self) {
        let watching = self.observer.watches_effects();
        loop {
            let batch: Vec<Effect> = std::iter::from_fn(|| self.engine.poll_effect()).collect();
            if batch.is_empty() {
                return;
            }
            // Each effect, or the hoisted save's effect for the observer alone.
            let mut rest: Vec<(bool, Effect)> = Vec::with_capacity(batch.len());
            let mut hoisting = true;
            for effect in batch {
                match effect {
                    Effect::StoreEvent { event, path } if hoisting && !self.writes.is_full() => {
                        if watching {
                            let shown = Effect::StoreEvent {
                                event: event.clone(),
                                path,
                            };
                            rest.push((false, shown));
                        }
                        self.writes.save(&self.store, *event, path);
                    }
                    other => {
                        hoisting &= !matches!(other, Effect::DeleteEvents { .. });
                        rest.push((true, other));
                    }
                }
            }
            for (run, effect) in rest {
                if run {
                    self.execute_one(&effect).await;
                }
                // In the engine's order, whatever the execution order.
                self.observer
                    .executed(self.decided_at, &effect, &self.engine);
            }
        }
    }

    async fn execute_one(&mut self, effect: &Effect) {
        match effect {
            Effect::Reply {
                token,
                event_id,
                accepted,
                message,
            } => self.reply(token.0, *event_id, *accepted, message.clone()),
            Effect::StoreEvent { event, path } => {
                if self.writes.is_full() {
                    self.settle_one().await;
                }
                self.writes.save(&self.store, (**event).clone(), *path);
            }
            Effect::DeleteEvents {
                author,
                ids,
                coordinates,
            } => {
                // Deleting must see every save started before it.
                self.settle_saves().await;
                let deleted = self
                    .store
                    .delete(*author, ids.clone(), coordinates.clone())
                    .await;
                if let Err(e) = deleted {
                    tracing::error!("cannot delete events: {e}");
                }
            }
            Effect::CreateRepo { repo } => {
                let done = self.repos.create(repo).await;
                log_git("create repo", repo, done);
            }
            Effect::DeleteRepo { repo } => {
                let done = self.repos.delete(repo).await;
                log_git("delete repo", repo, done);
            }
            Effect::CheckObjects { check, repos, oids } => {
                self.checks_queued
                    .push_back((*check, repos.clone(), oids.clone()));
                self.start_queued_checks();
            }
            Effect::ListRefs {
                request,
                url,
                domain,
            } => {
                self.observer.request_started(domain);
                let (remote, tx, request) = (self.remote.clone(), self.done_tx.clone(), *request);
                let (url, domain) = (url.clone(), domain.clone());
                self.runtime.spawn(
                    async move {
                        let input = match remote.list_refs(&url, &domain).await {
                            Ok(refs) => Input::RefsListed { request, refs },
                            Err(failure) => Input::RequestFailed { request, failure },
                        };
                        let _ = tx.unbounded_send(Done::Request(input));
                    }
                    .boxed(),
                );
            }
            Effect::Fetch {
                request,
                url,
                domain,
                into,
                oids,
            } => {
                self.observer.request_started(domain);
                let (remote, tx, request) = (self.remote.clone(), self.done_tx.clone(), *request);
                let (url, domain) = (url.clone(), domain.clone());
                let (into, oids) = (into.clone(), oids.clone());
                self.runtime.spawn(
                    async move {
                        let input = match remote.fetch(&url, &domain, &into, &oids).await {
                            Ok((present, bytes)) => Input::Fetched {
                                request,
                                present,
                                bytes,
                            },
                            Err(failure) => Input::RequestFailed { request, failure },
                        };
                        let _ = tx.unbounded_send(Done::Request(input));
                    }
                    .boxed(),
                );
            }
            Effect::CopyObjects { from, to, oids } => {
                let done = self.repos.copy_objects(from, to, oids).await;
                log_git("copy objects", to, done);
            }
            Effect::AlignRepo { repo, refs, head } => {
                let done = self.repos.align(repo, refs, head.as_deref()).await;
                log_git("align refs", repo, done);
            }
            Effect::SetRef { repo, name, target } => {
                let done = self.repos.set_ref(repo, name, *target).await;
                log_git("set ref", repo, done);
            }
            Effect::PruneObjects { repo, keep } => {
                log_git("prune objects", repo, self.repos.prune(repo, keep.clone()));
            }
            Effect::Persist { record } => {
                if self.writes.is_full() {
                    self.settle_one().await;
                }
                let key = record.key();
                self.writes.supersede(&key.to_string());
                let redo = self.journal_write(key.clone(), Some(record.clone()));
                let write = self.journal.put(record);
                self.writes
                    .other(journal_event(&key), "journal record", write, Some(redo));
            }
            // Relay sync (GRASP-02) decides these only when `RelaySync::enabled`, which no
            // backend set turns on until the websocket client lands (docs/sync.md).
            Effect::PeerConnect { peer, url } => {
                tracing::warn!(peer = peer.get(), %url, "relay sync has no client here: not dialed");
            }
            Effect::PeerDisconnect { .. } | Effect::PeerReq { .. } | Effect::PeerClose { .. } => {}
            Effect::Forget { key } => {
                if self.writes.is_full() {
                    self.settle_one().await;
                }
                let redo = self.journal_write(key.clone(), None);
                if let JournalKey::Waiting(id) = key {
                    // After the release's save is durable (see `writes.rs`); not at all
                    // if that save failed: the record brings the event back on restart.
                    let (journal, key, id) = (self.journal.clone(), key.clone(), *id);
                    let start = move || journal.forget(&key);
                    self.writes.after_earlier(
                        redo.key.to_string(),
                        id,
                        "journal forget",
                        start,
                        Some(redo),
                    );
                } else {
                    let write = self.journal.forget(key);
                    self.writes.other(None, "journal forget", write, Some(redo));
                }
            }
        }
    }

    /// Numbers a new journal write of `key` (the newest, from now on).
    fn journal_write(&mut self, key: JournalKey, record: Option<JournalRecord>) -> JournalWrite {
        self.next_journal_write += 1;
        let generation = self.next_journal_write;
        let mut newest = self
            .journal_writes
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        newest.insert(key.clone(), generation);
        JournalWrite {
            key,
            record,
            generation,
        }
    }

    /// A journal write failed: write it again after a pause, unless a later write of
    /// its key came meanwhile (checked again when the retry queues). A failed journal
    /// write left in place would leave a stale record that a restart restores.
    fn retry_journal(&mut self, event_id: Option<EventId>, redo: JournalWrite) {
        let newest = Arc::clone(&self.journal_writes);
        let is_newest = move |w: &JournalWrite| {
            let newest = newest.lock().unwrap_or_else(|p| p.into_inner());
            newest.get(&w.key) == Some(&w.generation)
        };
        if !is_newest(&redo) {
            return;
        }
        let pause = self
            .runtime
            .sleep_until(self.runtime.now().plus(SAVE_RETRY_PAUSE));
        let (journal, again) = (self.journal.clone(), redo.clone());
        let write = async move {
            pause.await;
            if !is_newest(&again) {
                return Ok(());
            }
            match &again.record {
                Some(r) => journal.put(r).await,
                None => journal.forget(&again.key).await,
            }
        };
        self.writes
            .other(event_id, "journal write (retry)", write, Some(redo));
    }

    /// Starts queued object checks while fewer than [`CHECKS_IN_FLIGHT`] run; each
    /// answers through [`Executor::wait`] like a fetch.
    fn start_queued_checks(&mut self) {
        while self.checks_running < CHECKS_IN_FLIGHT {
            let Some((check, repos, oids)) = self.checks_queued.pop_front() else {
                return;
            };
            self.checks_running += 1;
            let (backend, tx) = (self.repos.clone(), self.done_tx.clone());
            self.runtime.spawn(
                async move {
                    let looked = backend.find_objects(repos, oids).await;
                    let _ = tx.unbounded_send(Done::Check(check_answer(check, looked)));
                }
                .boxed(),
            );
        }
    }

    /// Answers the client behind `token` once the writes started before are durable. An
    /// OK true is downgraded to an error when the write it depends on failed: nothing is
    /// acknowledged that is not durable.
    fn reply(&mut self, token: u64, id: EventId, accepted: bool, message: String) {
        let Some(to) = self.replies.remove(&token) else {
            return;
        };
        let reply = Reply { accepted, message };
        self.observer
            .decided(self.decided_at, &to, id, &reply, &self.engine);
        let observer = &mut self.observer;
        self.writes.reply(to, id, reply, &mut |to, id, r| {
            observer.reply(to, id, r);
        });
    }

    /// Waits for the oldest write in flight and handles it.
    async fn settle_one(&mut self) {
        if let Some(written) = self.writes.next().await {
            self.on_written(written);
        }
    }

    /// Waits until every write started so far is durable.
    async fn settle_writes(&mut self) {
        while !self.writes.is_idle() {
            self.settle_one().await;
        }
    }

    /// Waits until every event-store save started so far is durable and published (and
    /// the writes before them): before deleting stored events, and before a push or
    /// fetch is reported done, so that what it released can be queried.
    async fn settle_saves(&mut self) {
        while self.writes.is_saving() {
            self.settle_one().await;
        }
    }

    /// A write finished: publish a saved event (only now can a `REQ` find it too) and
    /// answer the replies that waited for it.
    fn on_written(&mut self, mut written: Written) {
        match &written.outcome {
            Ok(()) => {
                if let Some((event, path)) = written.served.take() {
                    self.observer.served(event, path);
                }
            }
            Err(e) => {
                tracing::error!(id = ?written.event_id, "{} failed: {e}", written.what);
                if let Some(redo) = written.journal.take() {
                    self.retry_journal(written.event_id, redo);
                }
                if let Some((event, path)) = written.served.take() {
                    // The engine counts it stored: the store must follow. Retried after
                    // a pause (a full disk must not spin); its OK, if still waiting, says
                    // `error:` all the same, and the journal record of a released event
                    // stays until the retry is durable (writes.rs).
                    let pause = self
                        .runtime
                        .sleep_until(self.runtime.now().plus(SAVE_RETRY_PAUSE));
                    self.writes.retry_save(&self.store, event, path, pause);
                }
            }
        }
        if let (Ok(()), Some(w)) = (&written.outcome, &written.journal) {
            let mut newest = self
                .journal_writes
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if newest.get(&w.key) == Some(&w.generation) {
                newest.remove(&w.key);
            }
        }
        let observer = &mut self.observer;
        self.writes.finish(&written, &mut |to, id, r| {
            observer.reply(to, id, r);
        });
    }
}

/// The event a journal key is about: its write must be durable before that event's OK.
/// A domain's request window is about no event.
fn journal_event(key: &JournalKey) -> Option<EventId> {
    match key {
        JournalKey::Waiting(id) | JournalKey::Expired(id) | JournalKey::Placeholder(_, id) => {
            Some(*id)
        }
        JournalKey::DomainWindow(_)
        | JournalKey::PeerCheckpoint(_)
        | JournalKey::PeerNaughty(_) => None,
    }
}

/// A git effect that failed is logged once, with the repository and the effect.
fn log_git(effect: &'static str, repo: &RepoId, done: Result<(), String>) {
    if let Err(e) = done {
        tracing::warn!(%repo, effect, "failed: {e}");
    }
}

/// The input a check's result is: [`Input::ObjectsChecked`] if every repository was read
/// or every object found anyway, else [`Input::CheckFailed`] (what an unreadable
/// repository would have held is unknown, not absent). Each repository that failed is
/// logged here, once.
pub fn check_answer(check: CheckId, looked: Looked) -> Input {
    for (repo, why) in &looked.failed {
        tracing::warn!(%repo, effect = "check objects", "failed: {why}");
    }
    if looked.failed.is_empty() || looked.missing == 0 {
        Input::ObjectsChecked {
            check,
            found: looked.found,
        }
    } else {
        Input::CheckFailed {
            check,
            found: looked.found,
        }
    }
}

/// Deletion filters of an engine `DeleteEvents`, for stores that speak NIP-01 filters.
pub fn deletion_filters(
    author: grasp_core::nostr::prelude::PublicKey,
    ids: Vec<EventId>,
    coordinates: Vec<(
        grasp_core::nostr::prelude::Coordinate,
        grasp_core::nostr::prelude::Timestamp,
    )>,
) -> Vec<Filter> {
    let mut filters = Vec::with_capacity(1 + coordinates.len());
    if !ids.is_empty() {
        filters.push(Filter::new().author(author).ids(ids));
    }
    for (c, until) in coordinates {
        filters.push(
            Filter::new()
                .author(author)
                .kind(c.kind)
                .identifier(c.identifier)
                .until(until),
        );
    }
    filters
}
