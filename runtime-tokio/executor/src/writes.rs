//! Durable writes in flight — event-store saves and purgatory-journal records — so that
//! the engine task never waits for a disk commit between two events.
//!
//! nostr-lmdb commits whatever is queued on its writer thread in one transaction, and so
//! does our journal (see `journal.rs`): writes issued together cost one commit, writes
//! awaited one by one cost one commit (one fsync) each, which capped ingest at the
//! disk's commit rate. The engine task therefore starts a write and moves on; what must
//! not happen before the write is durable waits for it here:
//! - the `OK` of an event (nothing is acknowledged that is not durable; a failed write
//!   of that event turns an `OK true` into an `error:`), kept in effect order behind
//!   every write started before it;
//! - publishing a saved event to live subscribers (never before a `REQ` could find it);
//! - anything that reads or deletes stored events, and the end of a push or a fetch,
//!   which settle every write first (the driver does that).
//!
//! Completions are handled in the order the writes were started, so live subscribers see
//! events in effect order. The number of writes in flight is capped.
//!
//! One write waits to *start*: removing a released event's purgatory record
//! ([`Writes::after_earlier`]). The store save and the journal commit on two threads, in
//! two databases; started together, the removal could be durable first, and a crash
//! between the two commits would lose an acknowledged event. Started once the save is
//! durable, a crash leaves at worst both, which the restart heals (the record of an
//! event already stored is dropped).

use std::collections::VecDeque;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesOrdered;
use grasp_core::nostr::prelude::{Event, EventId};
use grasp_core::{JournalKey, JournalRecord, ServePath};

use crate::backends::{EventStore, Reply, SaveOutcome};

/// Saves in flight before the engine task waits for the oldest: enough for the writer
/// thread to batch a busy second's events, few enough to bound memory.
const MAX_IN_FLIGHT: usize = 1024;

/// How many failed ids are remembered for replies still to come; a failure is rare and
/// its reply follows within the same batch, so a short memory is enough.
const MAX_FAILED: usize = 256;

/// One write that finished.
pub struct Written {
    /// The event whose `OK` depends on this write.
    pub event_id: Option<EventId>,
    /// For a store save: the event to publish, and how it came to be served.
    pub served: Option<(Event, ServePath)>,
    /// What was written, for the log.
    pub what: &'static str,
    /// Whether it was an event-store save (its `served` may be taken already).
    pub is_save: bool,
    /// The error, if the write is not durable.
    pub outcome: Result<(), String>,
    /// For a journal write: what to write again if it failed.
    pub journal: Option<JournalWrite>,
}

/// A journal write, kept so that a failed one can be retried (unless a later write of
/// the same key came since: its `generation` is no longer the key's newest).
#[derive(Clone, Debug)]
pub struct JournalWrite {
    /// The record's key.
    pub key: JournalKey,
    /// The record to put, or `None` to forget the key.
    pub record: Option<JournalRecord>,
    /// The write's number among the writes of its key.
    pub generation: u64,
}

/// An `OK` waiting for the saves started before it.
struct DeferredReply<R> {
    /// Saves that must be complete first (a count of saves started).
    after: u64,
    reply: R,
    event_id: EventId,
    verdict: Reply,
}

/// Starts a write that had to wait for the writes before it.
type StartWrite = Box<dyn FnOnce() -> BoxFuture<'static, Result<(), String>> + Send>;

/// A write waiting for the writes started before it to be durable.
struct DeferredWrite {
    after: u64,
    /// The released event whose save it follows: if that save failed, it never starts.
    follows: EventId,
    journal: Option<JournalWrite>,
    /// Its journal key, so that a later write of the same key cancels it.
    key: String,
    what: &'static str,
    start: StartWrite,
}

/// Saves in flight and the replies (to an `R`) that wait for them.
pub struct Writes<R> {
    in_flight: FuturesOrdered<BoxFuture<'static, Written>>,
    started: u64,
    finished: u64,
    /// Event-store saves among the writes in flight.
    saves: usize,
    replies: VecDeque<DeferredReply<R>>,
    failed: VecDeque<EventId>,
    /// Never non-empty while nothing is in flight: they start as the writes before finish.
    deferred: VecDeque<DeferredWrite>,
    /// Events whose failed save is being retried.
    retrying: Vec<EventId>,
}

impl<R> Default for Writes<R> {
    fn default() -> Self {
        Self {
            in_flight: FuturesOrdered::new(),
            started: 0,
            finished: 0,
            saves: 0,
            replies: VecDeque::new(),
            failed: VecDeque::new(),
            deferred: VecDeque::new(),
            retrying: Vec::new(),
        }
    }
}

impl<R> Writes<R> {
    /// Whether no save is in flight.
    pub fn is_idle(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// Whether an event-store save is in flight (journal writes aside).
    pub fn is_saving(&self) -> bool {
        self.saves > 0
    }

    /// Whether the cap is reached and the caller should wait for [`Writes::next`].
    pub fn is_full(&self) -> bool {
        self.in_flight.len() >= MAX_IN_FLIGHT
    }

    /// Starts saving `event` in `store`; it is published once durable.
    pub fn save(&mut self, store: &impl EventStore, event: Event, path: ServePath) {
        let (id, kind) = (event.id, event.kind.as_u16());
        let saving = store.save(&event);
        let save = async move {
            if saving.await? == SaveOutcome::KeptOther {
                // The engine and the store order versions by the same NIP-01 rule
                // (grasp_core::Version), so this means they disagree: say so loudly.
                tracing::error!(
                    %id,
                    kind,
                    "the event store kept another version than the engine chose"
                );
            }
            Ok::<(), String>(())
        };
        self.start(Some(event.id), Some((event, path)), "store event", save);
    }

    /// Saves `event` again once `pause` is over: its first save failed. Writes that
    /// wait for that save ([`Writes::after_earlier`]) wait for this one instead.
    pub fn retry_save(
        &mut self,
        store: &impl EventStore,
        event: Event,
        path: ServePath,
        pause: BoxFuture<'static, ()>,
    ) {
        self.retrying.push(event.id);
        let (store, copy) = (store.clone(), event.clone());
        let save = async move {
            pause.await;
            store.save(&copy).await.map(|_| ())
        };
        self.start(
            Some(event.id),
            Some((event, path)),
            "store event (retry)",
            save,
        );
    }

    /// Starts `write`, which makes something about `event_id` durable (a journal record).
    pub fn other<F, E>(
        &mut self,
        event_id: Option<EventId>,
        what: &'static str,
        write: F,
        journal: Option<JournalWrite>,
    ) where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        let write = async move { write.await.map_err(|e| e.to_string()) };
        self.start_write(event_id, None, what, write, journal);
    }

    /// Starts `start()` (a journal write of `key`) once every write started so far is
    /// durable: at once when none is in flight. If a write about `follows` failed, it
    /// does not start (the released event's record stays, and restores it on restart).
    pub fn after_earlier<F, W, E>(
        &mut self,
        key: String,
        follows: EventId,
        what: &'static str,
        start: F,
        journal: Option<JournalWrite>,
    ) where
        F: FnOnce() -> W + Send + 'static,
        W: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        // `start` runs when the write starts (a journal write is queued at its call).
        let start: StartWrite = Box::new(move || {
            let write = start();
            Box::pin(async move { write.await.map_err(|e| e.to_string()) })
        });
        if self.is_idle() {
            if !self.failed.contains(&follows) {
                self.start_write(None, None, what, start(), journal);
            }
            return;
        }
        self.deferred.push_back(DeferredWrite {
            after: self.started,
            follows,
            journal,
            key,
            what,
            start,
        });
    }

    /// A write of `key` is about to start: a deferred write of the same key, which the
    /// engine ordered before it, must not land after it.
    pub fn supersede(&mut self, key: &str) {
        self.deferred.retain(|d| d.key != key);
    }

    fn start<F>(
        &mut self,
        event_id: Option<EventId>,
        served: Option<(Event, ServePath)>,
        what: &'static str,
        write: F,
    ) where
        F: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.start_write(event_id, served, what, write, None);
    }

    fn start_write<F>(
        &mut self,
        event_id: Option<EventId>,
        served: Option<(Event, ServePath)>,
        what: &'static str,
        write: F,
        journal: Option<JournalWrite>,
    ) where
        F: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.started += 1;
        let is_save = served.is_some();
        self.saves += usize::from(is_save);
        self.in_flight.push_back(Box::pin(async move {
            let outcome = write.await;
            Written {
                event_id,
                served,
                what,
                is_save,
                outcome,
                journal,
            }
        }));
    }

    /// Answers at once when no save is in flight, otherwise once every save started so
    /// far has finished. A failed save of this very event downgrades an `OK true`.
    pub fn reply(
        &mut self,
        reply: R,
        event_id: EventId,
        verdict: Reply,
        send: &mut impl FnMut(R, EventId, Reply),
    ) {
        if self.is_idle() {
            send(reply, event_id, self.checked(event_id, verdict));
            return;
        }
        self.replies.push_back(DeferredReply {
            after: self.started,
            reply,
            event_id,
            verdict,
        });
    }

    /// The next finished save, in start order; `None` when nothing is in flight. The
    /// caller publishes or logs it, then calls [`Writes::finish`].
    pub async fn next(&mut self) -> Option<Written> {
        self.in_flight.next().await
    }

    /// Records a finished save, starts the deferred writes that no longer wait (unless
    /// the save they follow failed), and sends every reply that no longer waits.
    pub fn finish(&mut self, written: &Written, send: &mut impl FnMut(R, EventId, Reply)) {
        self.finished += 1;
        self.saves -= usize::from(written.is_save);
        if let Some(id) = written.event_id {
            if written.outcome.is_err() {
                if self.failed.len() == MAX_FAILED {
                    self.failed.pop_front();
                }
                self.failed.push_back(id);
            } else {
                // A retry that succeeded is durable now, whatever failed before.
                self.failed.retain(|f| *f != id);
                self.retrying.retain(|f| *f != id);
            }
        }
        let mut waiting_on_retry = Vec::new();
        while self
            .deferred
            .front()
            .is_some_and(|d| d.after <= self.finished)
        {
            let Some(mut d) = self.deferred.pop_front() else {
                break;
            };
            if self.retrying.contains(&d.follows) {
                // Behind the retry of the save it follows.
                d.after = self.started;
                waiting_on_retry.push(d);
                continue;
            }
            if self.failed.contains(&d.follows) {
                tracing::warn!(id = %d.follows, "{} skipped: the release's save failed", d.what);
                continue;
            }
            self.start_write(None, None, d.what, (d.start)(), d.journal);
        }
        for d in waiting_on_retry.into_iter().rev() {
            self.deferred.push_front(d);
        }
        self.answer_ready(send);
    }

    fn answer_ready(&mut self, send: &mut impl FnMut(R, EventId, Reply)) {
        while self
            .replies
            .front()
            .is_some_and(|r| r.after <= self.finished)
        {
            let Some(r) = self.replies.pop_front() else {
                break;
            };
            let verdict = self.checked(r.event_id, r.verdict);
            send(r.reply, r.event_id, verdict);
        }
    }

    fn checked(&self, event_id: EventId, verdict: Reply) -> Reply {
        if verdict.accepted && self.failed.contains(&event_id) {
            Reply::refuse("error: could not write the event durably; try again")
        } else {
            verdict
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_channel::oneshot;
    use futures_executor::block_on;
    use futures_util::FutureExt;
    use grasp_core::nostr::prelude::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    type Answer = oneshot::Sender<Reply>;

    fn event(n: u64) -> Event {
        let keys = Keys::parse(&format!("{:064x}", n + 1)).expect("key");
        EventBuilder::new(Kind::TextNote, format!("note {n}"))
            .finalize(&keys)
            .expect("sign")
    }

    fn ok() -> Reply {
        Reply {
            accepted: true,
            message: String::new(),
        }
    }

    fn send(tx: Answer, _: EventId, r: Reply) {
        let _ = tx.send(r);
    }

    /// Drives finished writes the way the executor does.
    fn settle(writes: &mut Writes<Answer>) -> Vec<EventId> {
        let mut order = Vec::new();
        while let Some(w) = block_on(writes.next()) {
            order.extend(w.event_id);
            writes.finish(&w, &mut send);
        }
        order
    }

    #[test]
    fn a_reply_waits_for_the_saves_started_before_it() {
        let mut writes = Writes::default();
        let (gate, opened) = oneshot::channel::<()>();
        let first = event(1);
        writes.start(Some(first.id), None, "test", async move {
            let _ = opened.await;
            Ok(())
        });
        let (tx, mut rx) = oneshot::channel();
        writes.reply(tx, first.id, ok(), &mut send);
        assert!(writes.next().now_or_never().is_none(), "the save is gated");
        assert_eq!(
            rx.try_recv(),
            Ok(None),
            "the OK went out before its save was durable"
        );
        gate.send(()).expect("save waits");
        assert_eq!(settle(&mut writes), vec![first.id]);
        assert!(
            rx.try_recv()
                .expect("answered")
                .expect("once durable")
                .accepted
        );
    }

    #[test]
    fn a_failed_save_turns_its_ok_into_an_error_and_a_later_success_clears_it() {
        let mut writes = Writes::default();
        let e = event(2);
        writes.other(Some(e.id), "journal", async { Err("disk full") }, None);
        let (tx, mut rx) = oneshot::channel();
        writes.reply(tx, e.id, ok(), &mut send);
        settle(&mut writes);
        let verdict = rx.try_recv().expect("answered").expect("answered");
        assert!(!verdict.accepted);
        assert!(verdict.message.starts_with("error:"), "{}", verdict.message);

        writes.other(Some(e.id), "journal", async { Ok::<(), String>(()) }, None);
        let (tx, mut rx) = oneshot::channel();
        writes.reply(tx, e.id, ok(), &mut send);
        settle(&mut writes);
        let verdict = rx.try_recv().expect("answered").expect("answered");
        assert!(verdict.accepted, "the retry was durable");
    }

    #[test]
    fn saves_finish_in_start_order_and_replies_follow_them() {
        let mut writes = Writes::default();
        let (slow_gate, slow) = oneshot::channel::<()>();
        let (a, b) = (event(3), event(4));
        writes.start(Some(a.id), None, "test", async move {
            let _ = slow.await;
            Ok(())
        });
        writes.start(Some(b.id), None, "test", async { Ok(()) });
        let (tx, mut rx) = oneshot::channel();
        writes.reply(tx, b.id, ok(), &mut send);
        assert!(
            writes.next().now_or_never().is_none(),
            "a is first, and gated"
        );
        assert_eq!(
            rx.try_recv(),
            Ok(None),
            "b's OK must wait for a, started earlier"
        );
        slow_gate.send(()).expect("save waits");
        assert_eq!(settle(&mut writes), vec![a.id, b.id]);
        assert!(rx.try_recv().expect("answered").expect("answered").accepted);
    }

    #[test]
    fn a_deferred_write_starts_only_once_the_earlier_save_is_durable() {
        let mut writes = Writes::default();
        let (gate, opened) = oneshot::channel::<()>();
        let saved = event(6);
        writes.start(Some(saved.id), None, "save", async move {
            let _ = opened.await;
            Ok(())
        });
        let started = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&started);
        writes.after_earlier(
            "k".into(),
            saved.id,
            "forget",
            move || {
                flag.store(true, Ordering::SeqCst);
                async { Ok::<(), String>(()) }
            },
            None,
        );
        assert!(writes.next().now_or_never().is_none());
        assert!(
            !started.load(Ordering::SeqCst),
            "the forget started before the save was durable"
        );
        gate.send(()).expect("save waits");
        let first = block_on(writes.next()).expect("the save");
        writes.finish(&first, &mut send);
        assert!(started.load(Ordering::SeqCst));
        assert_eq!(settle(&mut writes), Vec::<EventId>::new());
        assert!(writes.is_idle());
    }

    #[test]
    fn a_later_write_of_the_same_key_cancels_a_deferred_one() {
        let mut writes: Writes<Answer> = Writes::default();
        writes.start(None, None, "save", async { Ok(()) });
        let ran = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&ran);
        writes.after_earlier(
            "k".into(),
            event(7).id,
            "forget",
            move || {
                flag.store(true, Ordering::SeqCst);
                async { Ok::<(), String>(()) }
            },
            None,
        );
        writes.supersede("k");
        settle(&mut writes);
        assert!(!ran.load(Ordering::SeqCst));
    }

    #[test]
    fn a_forget_that_follows_a_failed_release_save_never_starts() {
        let mut writes: Writes<Answer> = Writes::default();
        let released = event(8);
        writes.start(Some(released.id), None, "save", async {
            Err("disk full".to_owned())
        });
        let ran = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&ran);
        writes.after_earlier(
            "k".into(),
            released.id,
            "forget",
            move || {
                flag.store(true, Ordering::SeqCst);
                async { Ok::<(), String>(()) }
            },
            None,
        );
        settle(&mut writes);
        assert!(
            !ran.load(Ordering::SeqCst),
            "the journal record of an event whose save failed was forgotten: it is lost"
        );
        assert!(writes.is_idle());
    }

    #[test]
    fn with_nothing_in_flight_a_reply_goes_out_at_once() {
        let mut writes = Writes::default();
        let (tx, mut rx) = oneshot::channel();
        writes.reply(tx, event(5).id, ok(), &mut send);
        assert!(rx.try_recv().expect("answered").expect("at once").accepted);
    }
}
