//! What a connection still owes its subscriptions before their EOSE, within a byte budget.
//!
//! Each new REQ queues a *backfill*: its stored events, then its EOSE, then the live
//! events that matched it meanwhile (NIP-01 puts live events after EOSE). Backfills run
//! one at a time in arrival order, so a connection holds at most one [`Plan`] and one
//! page of stored events; the others wait holding only their filters. The budget counts
//! the bytes of the current page and of every held live event: a page is cut to what is
//! left of it (but never to more than half, so that live events keep room), and a live
//! event that does not fit closes its subscription with `CLOSED "error: …"` — the client
//! is told, instead of the relay buffering without bound for a client that cannot keep
//! up.

use std::collections::VecDeque;
use std::sync::Arc;

use nostr::prelude::{EventId, Filter, SubscriptionId, Timestamp};

use super::stored::{MAX_PAGE, Page, Plan};

/// The store read the connection must start for its current backfill.
#[derive(Debug)]
pub(crate) enum Read {
    /// List what the REQ will send.
    Plan { serial: u64, filters: Arc<[Filter]> },
    /// Read the next page of bodies.
    Page {
        serial: u64,
        sub: SubscriptionId,
        ids: Vec<EventId>,
        budget: usize,
    },
}

/// What the connection should do next for its backfills.
#[derive(Debug)]
pub(crate) enum Step {
    /// Nothing now (no backfill, a read in flight, or a page still being sent).
    Wait,
    /// Start this store read.
    Read(Read),
    /// The stored events of `sub` are all sent: send its EOSE, then these live events
    /// (serialized), which matched it meanwhile and are not among the stored ones.
    Finished {
        sub: SubscriptionId,
        live: Vec<Arc<str>>,
    },
}

/// A live event that matched a backfilling subscription.
#[derive(Debug)]
struct Held {
    created_at: Timestamp,
    id: EventId,
    json: Arc<str>,
}

#[derive(Debug)]
struct Backfill {
    sub: SubscriptionId,
    serial: u64,
    filters: Arc<[Filter]>,
    plan: Option<Plan>,
    held: Vec<Held>,
    held_bytes: usize,
}

/// The held live event does not fit the connection's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Overflow;

/// The backfills of one connection.
#[derive(Debug)]
pub(crate) struct Outbox {
    queue: VecDeque<Backfill>,
    /// `EVENT` messages of the head's current page, not yet sent.
    ready: VecDeque<String>,
    ready_bytes: usize,
    held_bytes: usize,
    budget: usize,
    next_serial: u64,
}

impl Outbox {
    /// An empty outbox allowed `budget` bytes of pages and held live events.
    pub(crate) fn new(budget: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            ready: VecDeque::new(),
            ready_bytes: 0,
            held_bytes: 0,
            budget: budget.max(1),
            next_serial: 0,
        }
    }

    /// Queues the backfill of a new (or replaced) subscription.
    pub(crate) fn open(&mut self, sub: SubscriptionId, filters: Arc<[Filter]>) {
        self.close(&sub);
        self.next_serial += 1;
        self.queue.push_back(Backfill {
            sub,
            serial: self.next_serial,
            filters,
            plan: None,
            held: Vec::new(),
            held_bytes: 0,
        });
    }

    /// Drops the backfill of `sub`, if it has one (CLOSE, or the subscription closed).
    pub(crate) fn close(&mut self, sub: &SubscriptionId) {
        let Some(at) = self.queue.iter().position(|b| &b.sub == sub) else {
            return;
        };
        if at == 0 {
            self.ready.clear();
            self.ready_bytes = 0;
        }
        if let Some(gone) = self.queue.remove(at) {
            self.held_bytes -= gone.held_bytes;
        }
    }

    /// Whether `sub` has not had its EOSE yet.
    pub(crate) fn is_backfilling(&self, sub: &SubscriptionId) -> bool {
        self.queue.iter().any(|b| &b.sub == sub)
    }

    /// Whether no backfill is left.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Holds a live event for `sub` until its EOSE, if it fits the budget.
    pub(crate) fn hold(
        &mut self,
        sub: &SubscriptionId,
        created_at: Timestamp,
        id: EventId,
        json: &Arc<str>,
    ) -> Result<(), Overflow> {
        let total = self.ready_bytes + self.held_bytes + json.len();
        let Some(backfill) = self.queue.iter_mut().find(|b| &b.sub == sub) else {
            return Ok(());
        };
        if total > self.budget {
            return Err(Overflow);
        }
        backfill.held.push(Held {
            created_at,
            id,
            json: Arc::clone(json),
        });
        backfill.held_bytes += json.len();
        self.held_bytes += json.len();
        Ok(())
    }

    /// The next message of the current page.
    pub(crate) fn pop_ready(&mut self) -> Option<String> {
        let text = self.ready.pop_front()?;
        self.ready_bytes -= text.len();
        Some(text)
    }

    /// Whether a page message waits to be sent.
    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// What to do next; `reading` says whether a store read is still in flight (at most
    /// one per connection).
    pub(crate) fn step(&mut self, reading: bool) -> Step {
        let budget = self.page_budget();
        let Some(head) = self.queue.front() else {
            return Step::Wait;
        };
        let Some(plan) = &head.plan else {
            return if reading {
                Step::Wait
            } else {
                Step::Read(Read::Plan {
                    serial: head.serial,
                    filters: Arc::clone(&head.filters),
                })
            };
        };
        if !self.ready.is_empty() {
            return Step::Wait;
        }
        if !plan.is_done() {
            return if reading {
                Step::Wait
            } else {
                Step::Read(Read::Page {
                    serial: head.serial,
                    sub: head.sub.clone(),
                    ids: plan.next_ids(budget, MAX_PAGE),
                    budget,
                })
            };
        }
        let Some(done) = self.queue.pop_front() else {
            return Step::Wait;
        };
        self.held_bytes -= done.held_bytes;
        let plan = done.plan.as_ref();
        let live = done
            .held
            .into_iter()
            .filter(|held| !plan.is_some_and(|p| p.contains(held.created_at, held.id)))
            .map(|held| held.json)
            .collect();
        Step::Finished {
            sub: done.sub,
            live,
        }
    }

    /// Applies a finished listing; ignored if its backfill is gone.
    pub(crate) fn planned(&mut self, serial: u64, plan: Plan) {
        if let Some(head) = self.queue.front_mut().filter(|h| h.serial == serial) {
            head.plan = Some(plan);
        }
    }

    /// Applies a finished page read; ignored if its backfill is gone.
    pub(crate) fn paged(&mut self, serial: u64, page: Page) {
        let Some(head) = self.queue.front_mut().filter(|h| h.serial == serial) else {
            return;
        };
        if let Some(plan) = head.plan.as_mut() {
            plan.advance(&page);
        }
        self.ready_bytes += page.texts.iter().map(String::len).sum::<usize>();
        self.ready.extend(page.texts);
    }

    /// The subscription a read of `serial` was for, if its backfill is still the head.
    pub(crate) fn head_sub(&self, serial: u64) -> Option<&SubscriptionId> {
        self.queue
            .front()
            .filter(|h| h.serial == serial)
            .map(|h| &h.sub)
    }

    /// Bytes a page may keep: what the held live events leave, at most half the budget.
    fn page_budget(&self) -> usize {
        self.budget
            .saturating_sub(self.held_bytes)
            .min(self.budget / 2)
            .max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid(s: &str) -> SubscriptionId {
        SubscriptionId::new(s)
    }

    fn id(n: u8) -> EventId {
        EventId::from_byte_array([n; 32])
    }

    fn filters() -> Arc<[Filter]> {
        Arc::from(vec![Filter::new()])
    }

    #[test]
    fn backfills_run_in_order_one_read_at_a_time() {
        let mut outbox = Outbox::new(1_000);
        assert!(matches!(outbox.step(false), Step::Wait));
        outbox.open(sid("a"), filters());
        outbox.open(sid("b"), filters());
        let Step::Read(Read::Plan { serial, .. }) = outbox.step(false) else {
            panic!("a lists first");
        };
        assert!(
            matches!(outbox.step(true), Step::Wait),
            "one read at a time"
        );
        outbox.planned(serial, Plan::empty_for_tests());
        match outbox.step(false) {
            Step::Finished { sub, live } => {
                assert_eq!(sub, sid("a"));
                assert!(live.is_empty());
            }
            other => panic!("a has nothing stored: {other:?}"),
        }
        let Step::Read(Read::Plan { serial: b, .. }) = outbox.step(false) else {
            panic!("then b");
        };
        assert_ne!(b, serial);
        // A result for a backfill that is gone changes nothing.
        outbox.planned(serial, Plan::empty_for_tests());
        assert!(matches!(outbox.step(false), Step::Read(Read::Plan { .. })));
        outbox.close(&sid("b"));
        assert!(outbox.is_empty());
    }

    #[test]
    fn held_live_events_are_bounded_and_come_after_eose() {
        let mut outbox = Outbox::new(100);
        outbox.open(sid("a"), filters());
        outbox.open(sid("b"), filters());
        let forty: Arc<str> = Arc::from("x".repeat(40));
        let at = Timestamp::from(1);
        assert_eq!(outbox.hold(&sid("b"), at, id(1), &forty), Ok(()));
        assert_eq!(outbox.hold(&sid("b"), at, id(2), &forty), Ok(()));
        assert_eq!(
            outbox.hold(&sid("a"), at, id(3), &forty),
            Err(Overflow),
            "120 bytes held would pass the 100-byte budget"
        );
        // The page budget shrinks to what the held events leave.
        assert_eq!(outbox.page_budget(), 20);
        outbox.close(&sid("b"));
        assert_eq!(outbox.page_budget(), 50, "at most half the budget");
        assert_eq!(outbox.hold(&sid("a"), at, id(3), &forty), Ok(()));
        let Step::Read(Read::Plan { serial, .. }) = outbox.step(false) else {
            panic!("a lists");
        };
        outbox.planned(serial, Plan::empty_for_tests());
        match outbox.step(false) {
            Step::Finished { sub, live } => {
                assert_eq!(sub, sid("a"));
                assert_eq!(live, vec![forty]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(outbox.held_bytes, 0);
    }

    #[test]
    fn a_page_is_sent_before_the_next_is_read_and_closing_the_head_drops_it() {
        let mut outbox = Outbox::new(1_000);
        outbox.open(sid("a"), filters());
        let Step::Read(Read::Plan { serial, .. }) = outbox.step(false) else {
            panic!("a lists");
        };
        outbox.planned(
            serial,
            Plan::for_tests(&[(5, id(1)), (5, id(2)), (4, id(3))]),
        );
        let Step::Read(Read::Page { ids, budget, .. }) = outbox.step(false) else {
            panic!("a reads a page");
        };
        assert_eq!(ids, vec![id(1), id(2), id(3)], "newest first, ties by id");
        assert_eq!(budget, 500);
        outbox.paged(
            serial,
            Page {
                texts: vec!["one".into(), "two".into()],
                consumed: 2,
                largest: 3,
            },
        );
        assert!(
            matches!(outbox.step(false), Step::Wait),
            "page not sent yet"
        );
        assert_eq!(outbox.pop_ready().as_deref(), Some("one"));
        assert_eq!(outbox.ready_bytes, 3);
        outbox.close(&sid("a"));
        assert!(!outbox.has_ready());
        assert_eq!(outbox.ready_bytes, 0);
        assert!(outbox.head_sub(serial).is_none());
    }
}
