//! The stored events of a REQ, read from the store a page at a time instead of whole.
//!
//! A REQ first lists what it will send ([`Plan::list`]): per filter, the ids and
//! timestamps of its newest `limit` matches — 40 bytes each, no bodies — merged and
//! deduplicated in the NIP-01 order (newest first, ties by id). Pages are then slices of
//! that fixed list, so a `created_at` tie at a page boundary can neither drop nor repeat
//! an event; paging with `until` could not promise that, since the store cannot start a
//! query in the middle of one second's events. Bodies are read one page at a time
//! ([`read_page`]), and only once the previous page has gone to the socket: a client that
//! reads slowly pauses its own query instead of making the relay hold its whole answer
//! (issue 14 item 5: ten slow readers of 80 MB of stored events held 905 MB). A page
//! keeps at most the byte budget it is given (always at least one event); the next page
//! is sized from the largest event seen so far.
//!
//! Every read from the store goes through the [`QueryGate`], which bounds the reads
//! running at once; others wait their turn in order.

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use nostr::prelude::{Event, EventId, Filter, RelayMessage, SubscriptionId, Timestamp};
use tokio::sync::{Semaphore, oneshot};

use crate::store::{Store, StoreError};

/// Most events one page asks the store for; with events at the size limit (256 KiB by
/// default) a page read holds at most 16 MiB while it is cut to its budget.
pub(crate) const MAX_PAGE: usize = 64;

/// Events asked for in the first page, before any size is known.
const FIRST_PAGE: usize = 8;

/// One event a REQ will send, in the order it will be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) created_at: Timestamp,
    pub(crate) id: EventId,
}

impl Entry {
    /// NIP-01's order: newest first, ties by id (the order of [`Event`] itself).
    fn order(&self, other: &Self) -> std::cmp::Ordering {
        other
            .created_at
            .cmp(&self.created_at)
            .then_with(|| self.id.cmp(&other.id))
    }
}

/// What one REQ still has to send from the store.
#[derive(Debug)]
pub(crate) struct Plan {
    entries: Vec<Entry>,
    next: usize,
    largest: usize,
}

impl Plan {
    /// Lists the stored events matching `filters` (each capped at `max_limit`, a
    /// filter's own smaller `limit` winning), merged in the order they are sent.
    pub(crate) async fn list(
        store: &Store,
        filters: &[Filter],
        max_limit: usize,
    ) -> Result<Self, StoreError> {
        let mut entries = Vec::new();
        for filter in filters {
            let limit = filter.limit.map_or(max_limit, |l| l.min(max_limit));
            if limit == 0 {
                continue;
            }
            let mut filter = filter.clone();
            filter.limit = Some(limit);
            let listed = store.list_ids(filter).await?;
            entries.extend(
                listed
                    .into_iter()
                    .map(|(id, created_at)| Entry { created_at, id }),
            );
        }
        entries.sort_unstable_by(Entry::order);
        entries.dedup_by_key(|entry| entry.id);
        entries.shrink_to_fit();
        Ok(Self {
            entries,
            next: 0,
            largest: 0,
        })
    }

    /// Whether every listed event has been read.
    pub(crate) fn is_done(&self) -> bool {
        self.next >= self.entries.len()
    }

    /// The ids of the next page for a page `budget` in bytes, at most `max_page` of
    /// them: as many as fit if each were as large as the largest event seen so far.
    pub(crate) fn next_ids(&self, budget: usize, max_page: usize) -> Vec<EventId> {
        let count = budget.checked_div(self.largest).unwrap_or(FIRST_PAGE);
        let count = count.clamp(1, max_page.max(1));
        self.entries[self.next..]
            .iter()
            .take(count)
            .map(|entry| entry.id)
            .collect()
    }

    /// Moves past what `page` covered.
    pub(crate) fn advance(&mut self, page: &Page) {
        self.next = (self.next + page.consumed).min(self.entries.len());
        self.largest = self.largest.max(page.largest);
    }

    /// Whether the event `(created_at, id)` is one this REQ lists (a live event that
    /// arrived while the stored ones were read must not be sent twice).
    pub(crate) fn contains(&self, created_at: Timestamp, id: EventId) -> bool {
        let wanted = Entry { created_at, id };
        self.entries
            .binary_search_by(|entry| entry.order(&wanted))
            .is_ok()
    }
}

#[cfg(test)]
impl Plan {
    /// A plan listing nothing.
    pub(crate) fn empty_for_tests() -> Self {
        Self::for_tests(&[])
    }

    /// A plan listing `(created_at, id)` pairs.
    pub(crate) fn for_tests(entries: &[(u64, EventId)]) -> Self {
        let mut entries: Vec<Entry> = entries
            .iter()
            .map(|&(at, id)| Entry {
                created_at: Timestamp::from(at),
                id,
            })
            .collect();
        entries.sort_unstable_by(Entry::order);
        Self {
            entries,
            next: 0,
            largest: 0,
        }
    }
}

/// One page of stored events, as the `EVENT` messages to send.
#[derive(Debug, Default)]
pub(crate) struct Page {
    /// The messages, in order.
    pub(crate) texts: Vec<String>,
    /// How many listed events the page covers: those it holds and those deleted since
    /// they were listed (skipped).
    pub(crate) consumed: usize,
    /// The largest message read (whether kept or not), to size the next page.
    pub(crate) largest: usize,
}

/// Reads the bodies of `ids` (in the order given) and renders them as `EVENT` messages
/// for subscription `sub`, keeping no more than `budget` bytes of them (but always the
/// first). Events that are no longer stored (deleted or replaced since they were
/// listed) are skipped; the ones past the budget are left for the next page.
pub(crate) async fn read_page(
    store: &Store,
    sub: &SubscriptionId,
    ids: Vec<EventId>,
    budget: usize,
) -> Result<Page, StoreError> {
    let mut found: HashMap<EventId, Event> = store
        .query(Filter::new().ids(ids.iter().copied()))
        .await?
        .into_iter()
        .map(|event| (event.id, event))
        .collect();
    let mut page = Page::default();
    let mut bytes = 0usize;
    for id in ids {
        let Some(event) = found.remove(&id) else {
            page.consumed += 1;
            continue;
        };
        let text = RelayMessage::Event {
            subscription_id: Cow::Borrowed(sub),
            event: Cow::Borrowed(&event),
        }
        .as_json();
        page.largest = page.largest.max(text.len());
        if !page.texts.is_empty() && bytes + text.len() > budget {
            break;
        }
        bytes += text.len();
        page.texts.push(text);
        page.consumed += 1;
    }
    Ok(page)
}

/// The `EVENT` message carrying `event_json` (an event already serialized, so that one
/// live event matching several subscriptions is serialized once) for subscription `sub`.
pub(crate) fn event_text(sub: &SubscriptionId, event_json: &str) -> String {
    let sub = serde_json::Value::String(sub.to_string());
    format!("[\"EVENT\",{sub},{event_json}]")
}

/// Bounds the reads of stored events running at once over every connection.
///
/// A read runs on a task of its own that holds its permit until the store has answered,
/// so a client that disconnects or closes its subscription mid-read cannot have more
/// reads running than the gate allows; a read whose requester is gone by the time it
/// gets its permit is skipped. Each connection has at most one read waiting, so the
/// queue is bounded by the number of connections.
#[derive(Debug, Clone)]
pub(crate) struct QueryGate {
    permits: Arc<Semaphore>,
}

impl QueryGate {
    /// A gate letting `concurrent` reads run at once.
    pub(crate) fn new(concurrent: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrent.max(1))),
        }
    }

    /// Runs `read` once a permit is free; its result arrives on the receiver.
    pub(crate) fn run<T, F>(&self, read: F) -> oneshot::Receiver<T>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let permits = Arc::clone(&self.permits);
        tokio::spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else {
                return;
            };
            if tx.is_closed() {
                return;
            }
            let _ = tx.send(read.await);
        });
        rx
    }

    /// Reads running now (for tests).
    #[cfg(test)]
    pub(crate) fn running(&self, concurrent: usize) -> usize {
        concurrent - self.permits.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use nostr::prelude::{EventBuilder, FinalizeEvent, Keys, Kind};

    use super::*;
    use crate::test_keys::keys;

    fn note(keys: &Keys, text: &str, at: u64, kind: u16) -> Event {
        EventBuilder::new(Kind::from(kind), text)
            .custom_created_at(Timestamp::from(at))
            .finalize(keys)
            .expect("sign")
    }

    /// Everything a REQ with `filters` sends, paged with `max_page` and `budget` exactly
    /// as a connection pages it.
    async fn stream(
        store: &Store,
        filters: &[Filter],
        max_limit: usize,
        budget: usize,
        max_page: usize,
    ) -> (Vec<Event>, usize) {
        let sub = SubscriptionId::new("s");
        let mut plan = Plan::list(store, filters, max_limit).await.expect("list");
        let mut sent = Vec::new();
        let mut pages = 0;
        while !plan.is_done() {
            let ids = plan.next_ids(budget, max_page);
            assert!(!ids.is_empty() && ids.len() <= max_page);
            let page = read_page(store, &sub, ids, budget).await.expect("page");
            assert!(page.consumed > 0, "a page always moves on");
            for text in &page.texts {
                let value: serde_json::Value = serde_json::from_str(text).expect("json");
                assert_eq!(value[0], "EVENT");
                assert_eq!(value[1], "s");
                sent.push(Event::from_json(value[2].to_string()).expect("event"));
            }
            plan.advance(&page);
            pages += 1;
        }
        (sent, pages)
    }

    /// What the relay sent before paging: each filter's stored events collected whole,
    /// merged newest first.
    async fn collected(store: &Store, filters: &[Filter], max_limit: usize) -> Vec<Event> {
        let mut all = BTreeSet::new();
        for filter in filters {
            let mut filter = filter.clone();
            let limit = filter.limit.map_or(max_limit, |l| l.min(max_limit));
            if limit == 0 {
                continue;
            }
            filter.limit = Some(limit);
            all.extend(store.query(filter).await.expect("query"));
        }
        all.into_iter().collect()
    }

    #[tokio::test]
    async fn pages_across_created_at_ties_send_each_event_once_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).await.expect("open");
        let (a, b) = (keys(1), keys(2));
        // Seven events in one second (a run longer than any page), others around it.
        let mut events = Vec::new();
        for i in 0..7 {
            events.push(note(&a, &format!("tie {i}"), 5_000, 1));
        }
        for i in 0..5u64 {
            events.push(note(&a, &format!("before {i}"), 4_990 + i, 1));
            events.push(note(&b, &format!("after {i}"), 5_001 + i % 2, 7));
        }
        for event in &events {
            assert!(store.save(event).await.expect("save").is_success());
        }

        let all = [Filter::new()];
        for max_page in [1, 2, 3] {
            let (sent, pages) = stream(&store, &all, 100, usize::MAX, max_page).await;
            let expected = collected(&store, &all, 100).await;
            assert_eq!(expected.len(), events.len());
            assert_eq!(sent, expected, "page size {max_page}");
            assert_eq!(pages, events.len().div_ceil(max_page));
        }

        // Overlapping filters with limits: each filter's newest `limit`, merged, each
        // event once; the tie is cut by a limit in the middle of the second.
        let overlapping = [
            Filter::new().author(a.public_key()).limit(9),
            Filter::new().kind(Kind::from(1)).limit(4),
            Filter::new().kind(Kind::from(7)).limit(3),
            Filter::new().limit(0),
        ];
        let (sent, _) = stream(&store, &overlapping, 100, usize::MAX, 2).await;
        assert_eq!(sent, collected(&store, &overlapping, 100).await);
        assert_eq!(
            sent.len(),
            9 + 3,
            "a's 9 (kind 1 is a subset of them) and b's 3"
        );
        let ties = sent.iter().filter(|e| e.created_at.as_secs() == 5_000);
        assert_eq!(ties.count(), 7);

        // The relay's cap applies over a filter's own limit.
        let (sent, _) = stream(&store, &[Filter::new().limit(50)], 6, usize::MAX, 4).await;
        assert_eq!(sent, collected(&store, &[Filter::new()], 6).await);
        assert_eq!(sent.len(), 6);
    }

    #[tokio::test]
    async fn a_page_keeps_its_byte_budget_and_skips_deleted_events() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).await.expect("open");
        let author = keys(3);
        let events: Vec<Event> = (0..20u64)
            .map(|i| {
                note(
                    &author,
                    &format!("{i:04}{}", "x".repeat(996)),
                    1_000 + i / 3,
                    1,
                )
            })
            .collect();
        for event in &events {
            store.save(event).await.expect("save");
        }
        let sub = SubscriptionId::new("s");
        let mut plan = Plan::list(&store, &[Filter::new()], 100)
            .await
            .expect("list");
        // Each message is about 1,350 bytes.
        let first = plan.next_ids(3_000, MAX_PAGE);
        assert_eq!(first.len(), FIRST_PAGE, "nothing is known of sizes yet");
        // Two messages fit in 3,000 bytes; the rest of the page is left for later.
        let page = read_page(&store, &sub, first, 3_000).await.expect("page");
        assert_eq!((page.texts.len(), page.consumed), (2, 2));
        assert!(page.texts.iter().map(String::len).sum::<usize>() <= 3_000);
        plan.advance(&page);
        assert_eq!(
            plan.next_ids(3_000, MAX_PAGE).len(),
            2,
            "sized from what was seen"
        );
        // A budget below one event still sends one.
        let page = read_page(&store, &sub, plan.next_ids(10, MAX_PAGE), 10)
            .await
            .expect("page");
        assert_eq!((page.texts.len(), page.consumed), (1, 1));
        plan.advance(&page);

        // Deleted since the listing: skipped, and counted as covered.
        let ids = plan.next_ids(100_000, MAX_PAGE);
        let gone = ids[1];
        store.delete(Filter::new().id(gone)).await.expect("delete");
        let page = read_page(&store, &sub, ids.clone(), 100_000)
            .await
            .expect("page");
        assert_eq!(page.consumed, ids.len());
        assert_eq!(page.texts.len(), ids.len() - 1);
        assert!(page.texts.iter().all(|t| !t.contains(&gone.to_hex())));
        plan.advance(&page);
        assert!(plan.is_done());
    }

    #[test]
    fn event_text_is_the_nostr_event_message() {
        let event = note(&keys(5), "quote \" and \\", 1, 1);
        let sub = SubscriptionId::new("a \"sub\"");
        assert_eq!(
            event_text(&sub, &event.as_json()),
            RelayMessage::event(sub.clone(), event).as_json()
        );
    }

    #[tokio::test]
    async fn plan_knows_what_it_lists() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).await.expect("open");
        let author = keys(4);
        let listed = note(&author, "listed", 2_000, 1);
        let other = note(&author, "other", 2_000, 7);
        store.save(&listed).await.expect("save");
        store.save(&other).await.expect("save");
        let plan = Plan::list(&store, &[Filter::new().kind(Kind::from(1))], 10)
            .await
            .expect("list");
        assert!(plan.contains(listed.created_at, listed.id));
        assert!(!plan.contains(other.created_at, other.id));
        assert!(!plan.contains(Timestamp::from(1_999), listed.id));
    }

    #[tokio::test]
    async fn the_gate_bounds_reads_running_at_once_and_skips_abandoned_ones() {
        let gate = QueryGate::new(2);
        let (release, released) = tokio::sync::watch::channel(false);
        let started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut receivers = Vec::new();
        for _ in 0..5 {
            let mut released = released.clone();
            let started = Arc::clone(&started);
            receivers.push(gate.run(async move {
                started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = released.wait_for(|r| *r).await;
            }));
        }
        for _ in 0..1_000 {
            if started.load(std::sync::atomic::Ordering::SeqCst) == 2 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(gate.running(2), 2);
        // Two of the waiting three are abandoned: they never run.
        drop(receivers.pop());
        drop(receivers.pop());
        release.send(true).expect("release");
        for rx in receivers {
            rx.await.expect("ran");
        }
        assert_eq!(started.load(std::sync::atomic::Ordering::SeqCst), 3);
    }
}
