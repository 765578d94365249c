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
use grasp_core::ServePath;
use grasp_core::nostr::prelude::{Event, EventId};

use crate::relay::Verdict;
use crate::store::{SaveStatus, Store};
use nostr_database::RejectedReason;

/// Saves in flight before the engine task waits for the oldest: enough for the writer
/// thread to batch a busy second's events, few enough to bound memory.
const MAX_IN_FLIGHT: usize = 1024;

/// How many failed ids are remembered for replies still to come; a failure is rare and
/// its reply follows within the same batch, so a short memory is enough.
const MAX_FAILED: usize = 256;

/// One write that finished.
pub(super) struct Written {
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
}

/// An `OK` waiting for the saves started before it.
struct DeferredReply {
    /// Saves that must be complete first (a count of saves started).
    after: u64,
    reply: tokio::sync::oneshot::Sender<Verdict>,
    event_id: EventId,
    verdict: Verdict,
}

/// Starts a write that had to wait for the writes before it.
type StartWrite = Box<dyn FnOnce() -> BoxFuture<'static, Result<(), String>> + Send>;

/// A write waiting for the writes started before it to be durable.
struct DeferredWrite {
    after: u64,
    /// Its journal key, so that a later write of the same key cancels it.
    key: String,
    what: &'static str,
    start: StartWrite,
}

/// Saves in flight and the replies that wait for them.
#[derive(Default)]
pub(super) struct Writes {
    in_flight: FuturesOrdered<BoxFuture<'static, Written>>,
    started: u64,
    finished: u64,
    /// Event-store saves among the writes in flight.
    saves: usize,
    replies: VecDeque<DeferredReply>,
    failed: VecDeque<EventId>,
    /// Never non-empty while nothing is in flight: they start as the writes before finish.
    deferred: VecDeque<DeferredWrite>,
}

impl Writes {
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
    pub fn save(&mut self, store: &Store, event: Event, path: ServePath) {
        let (store, copy) = (store.clone(), event.clone());
        let save = async move {
            let saved = store.save(&copy).await.map_err(|e| e.to_string())?;
            if let SaveStatus::Rejected(RejectedReason::Replaced) = saved {
                // The engine and the store order versions by the same NIP-01 rule
                // (grasp_core::Version), so this means they disagree: say so loudly.
                tracing::error!(
                    id = %copy.id,
                    kind = copy.kind.as_u16(),
                    "the event store kept another version than the engine chose"
                );
            }
            Ok::<(), String>(())
        };
        self.start(Some(event.id), Some((event, path)), "store event", save);
    }

    /// Starts `write`, which makes something about `event_id` durable (a journal record).
    pub fn other<F, E>(&mut self, event_id: Option<EventId>, what: &'static str, write: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        let write = async move { write.await.map_err(|e| e.to_string()) };
        self.start(event_id, None, what, write);
    }

    /// Starts `start()` (a journal write of `key`) once every write started so far is
    /// durable: at once when none is in flight.
    pub fn after_earlier<F, W, E>(&mut self, key: String, what: &'static str, start: F)
    where
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
            self.start(None, None, what, start());
            return;
        }
        self.deferred.push_back(DeferredWrite {
            after: self.started,
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
            }
        }));
    }

    /// Answers at once when no save is in flight, otherwise once every save started so
    /// far has finished. A failed save of this very event downgrades an `OK true`.
    pub fn reply(
        &mut self,
        reply: tokio::sync::oneshot::Sender<Verdict>,
        event_id: EventId,
        verdict: Verdict,
    ) {
        if self.is_idle() {
            let _ = reply.send(self.checked(event_id, verdict));
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

    /// Records a finished save and sends every reply that no longer waits.
    pub fn finish(&mut self, written: &Written) {
        self.finished += 1;
        self.saves -= usize::from(written.is_save);
        while self
            .deferred
            .front()
            .is_some_and(|d| d.after <= self.finished)
        {
            if let Some(d) = self.deferred.pop_front() {
                self.start(None, None, d.what, (d.start)());
            }
        }
        let Some(id) = written.event_id else {
            self.answer_ready();
            return;
        };
        if written.outcome.is_err() {
            if self.failed.len() == MAX_FAILED {
                self.failed.pop_front();
            }
            self.failed.push_back(id);
        } else {
            // A retry that succeeded is durable now, whatever failed before.
            self.failed.retain(|f| *f != id);
        }
        self.answer_ready();
    }

    fn answer_ready(&mut self) {
        while self
            .replies
            .front()
            .is_some_and(|r| r.after <= self.finished)
        {
            let Some(r) = self.replies.pop_front() else {
                break;
            };
            let verdict = self.checked(r.event_id, r.verdict);
            let _ = r.reply.send(verdict);
        }
    }

    fn checked(&self, event_id: EventId, verdict: Verdict) -> Verdict {
        if verdict.accepted && self.failed.contains(&event_id) {
            Verdict::refuse("error: could not write the event durably; try again")
        } else {
            verdict
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use grasp_core::nostr::prelude::*;
    use tokio::sync::oneshot;

    fn event(n: u64) -> Event {
        EventBuilder::new(Kind::TextNote, format!("note {n}"))
            .finalize(&Keys::generate())
            .expect("sign")
    }

    fn ok() -> Verdict {
        Verdict {
            accepted: true,
            message: String::new(),
        }
    }

    /// Drives finished saves the way the driver does.
    async fn settle(writes: &mut Writes) -> Vec<EventId> {
        let mut order = Vec::new();
        while let Some(w) = writes.next().await {
            order.extend(w.event_id);
            writes.finish(&w);
        }
        order
    }

    #[tokio::test]
    async fn a_reply_waits_for_the_saves_started_before_it() {
        let mut writes = Writes::default();
        let (gate, opened) = oneshot::channel::<()>();
        let first = event(1);
        writes.start(Some(first.id), None, "test", async move {
            let _ = opened.await;
            Ok(())
        });
        let (tx, mut rx) = oneshot::channel();
        writes.reply(tx, first.id, ok());
        tokio::task::yield_now().await;
        assert!(
            rx.try_recv().is_err(),
            "the OK went out before its save was durable"
        );
        gate.send(()).expect("save waits");
        assert_eq!(settle(&mut writes).await, vec![first.id]);
        assert!(rx.try_recv().expect("answered once durable").accepted);
    }

    #[tokio::test]
    async fn a_failed_save_turns_its_ok_into_an_error_and_a_later_success_clears_it() {
        let mut writes = Writes::default();
        let e = event(2);
        writes.other(Some(e.id), "journal", async { Err("disk full") });
        let (tx, rx) = oneshot::channel();
        writes.reply(tx, e.id, ok());
        settle(&mut writes).await;
        let verdict = rx.await.expect("answered");
        assert!(!verdict.accepted);
        assert!(verdict.message.starts_with("error:"), "{}", verdict.message);

        writes.other(Some(e.id), "journal", async { Ok::<(), String>(()) });
        let (tx, rx) = oneshot::channel();
        writes.reply(tx, e.id, ok());
        settle(&mut writes).await;
        assert!(
            rx.await.expect("answered").accepted,
            "the retry was durable"
        );
    }

    #[tokio::test]
    async fn saves_finish_in_start_order_and_replies_follow_them() {
        let mut writes = Writes::default();
        let (slow_gate, slow) = oneshot::channel::<()>();
        let (a, b) = (event(3), event(4));
        writes.start(Some(a.id), None, "test", async move {
            let _ = slow.await;
            Ok(())
        });
        writes.start(Some(b.id), None, "test", async { Ok(()) });
        let (tx, mut rx) = oneshot::channel();
        writes.reply(tx, b.id, ok());
        tokio::task::yield_now().await;
        assert!(
            rx.try_recv().is_err(),
            "b's OK must wait for a, started earlier"
        );
        slow_gate.send(()).expect("save waits");
        assert_eq!(settle(&mut writes).await, vec![a.id, b.id]);
        assert!(rx.try_recv().expect("answered").accepted);
    }

    #[tokio::test]
    async fn a_deferred_write_starts_only_once_the_earlier_save_is_durable() {
        let mut writes = Writes::default();
        let (gate, opened) = oneshot::channel::<()>();
        let saved = event(6);
        writes.start(Some(saved.id), None, "save", async move {
            let _ = opened.await;
            Ok(())
        });
        let started = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&started);
        writes.after_earlier("k".into(), "forget", move || {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            async { Ok::<(), String>(()) }
        });
        tokio::task::yield_now().await;
        assert!(
            !started.load(std::sync::atomic::Ordering::SeqCst),
            "the forget started before the save was durable"
        );
        gate.send(()).expect("save waits");
        let first = writes.next().await.expect("the save");
        writes.finish(&first);
        assert!(started.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(settle(&mut writes).await, Vec::<EventId>::new());
        assert!(writes.is_idle());
    }

    #[tokio::test]
    async fn a_later_write_of_the_same_key_cancels_a_deferred_one() {
        let mut writes = Writes::default();
        writes.start(None, None, "save", async { Ok(()) });
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&ran);
        writes.after_earlier("k".into(), "forget", move || {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            async { Ok::<(), String>(()) }
        });
        writes.supersede("k");
        settle(&mut writes).await;
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[test]
    fn with_nothing_in_flight_a_reply_goes_out_at_once() {
        let mut writes = Writes::default();
        let (tx, mut rx) = oneshot::channel();
        writes.reply(tx, event(5).id, ok());
        assert!(rx.try_recv().expect("answered at once").accepted);
    }
}
