//! The event store: embedded LMDB through `nostr-lmdb`.
//!
//! A thin wrapper so that the rest of the daemon depends on a few operations rather than
//! on the whole `NostrDatabase` trait, and so that the choice of backend stays in one
//! file. The store does not verify signatures and has no size limit: callers verify
//! (the relay does) and the relay enforces the size limit. Purgatory events are never
//! saved here; they are saved only when the engine releases them.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::sync::Arc;

use nostr::prelude::{Event, EventId, Filter, Timestamp};
use nostr_database::{NostrDatabase, SaveEventStatus};
use nostr_lmdb::NostrLmdb;

/// LMDB reserves address space, not disk, for its map: large on 64-bit so that the
/// store never hits "map full", modest on 32-bit where address space is scarce.
#[cfg(target_pointer_width = "64")]
const MAP_SIZE: usize = 32 << 30;
#[cfg(not(target_pointer_width = "64"))]
const MAP_SIZE: usize = 2 << 30;

/// Events read per page during hydration; bounds the memory of one page.
const HYDRATION_PAGE: usize = 2_000;

/// A failure of the event store.
#[derive(Debug, thiserror::Error)]
#[error("event store: {0}")]
pub struct StoreError(#[from] nostr_database::error::Error);

/// The outcome of saving one event, as far as the relay and the engine care.
pub type SaveStatus = SaveEventStatus;

/// Handle to the event store; cheap to clone and share between tasks.
#[derive(Debug, Clone)]
pub struct Store {
    db: Arc<NostrLmdb>,
}

impl Store {
    /// Opens (creating if needed) the store in `dir`, typically `<data>/events`.
    ///
    /// NIP-09 deletions are processed by the store itself (a stored kind 5 removes the
    /// author's named events and refuses them later), which is what a relay must do
    /// for stored events; the engine handles purgatory.
    pub async fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = NostrLmdb::builder(dir).map_size(MAP_SIZE).build().await?;
        Ok(Self { db: Arc::new(db) })
    }

    /// Saves an already verified event; replaceable/addressable replacement and
    /// deletions are applied by the store.
    pub async fn save(&self, event: &Event) -> Result<SaveStatus, StoreError> {
        Ok(self.db.save_event(event).await?)
    }

    /// Returns the stored events matching `filter`, newest first, at most
    /// `filter.limit` of them.
    pub async fn query(&self, filter: Filter) -> Result<Vec<Event>, StoreError> {
        let events: BTreeSet<Event> = self.db.query(filter).await?;
        // `Event`'s order is newest first, then by id: exactly the order REQ wants.
        Ok(events.into_iter().collect())
    }

    /// The ids and timestamps of the stored events matching `filter`, newest first (ties
    /// by id), at most `filter.limit` of them, without reading their bodies into memory:
    /// 40 bytes per event, so a REQ can list what it will send before it pages the
    /// bodies. Events past their NIP-40 expiration are left out.
    pub async fn list_ids(&self, filter: Filter) -> Result<Vec<(EventId, Timestamp)>, StoreError> {
        Ok(self.db.negentropy_items(filter).await?)
    }

    /// Deletes every stored event matching `filter`.
    pub async fn delete(&self, filter: Filter) -> Result<(), StoreError> {
        Ok(self.db.delete(filter).await?)
    }

    /// Looks up one event by id.
    pub async fn event_by_id(&self, id: &EventId) -> Result<Option<Event>, StoreError> {
        Ok(self.db.event_by_id(id).await?)
    }

    /// Calls `visit` for every stored event, newest first, reading pages of bounded
    /// size so that hydrating the engine at startup never holds the whole store in
    /// memory. Each event is visited exactly once.
    pub async fn for_each_event<F>(&self, mut visit: F) -> Result<usize, StoreError>
    where
        F: FnMut(Event),
    {
        let mut count = 0usize;
        let mut until: Option<Timestamp> = None;
        // Ids already visited at the boundary timestamp: the next page starts at that
        // same second (`until` is inclusive), so those events come back once more.
        let mut seen_at_boundary: HashSet<EventId> = HashSet::new();
        loop {
            let mut filter = Filter::new().limit(HYDRATION_PAGE);
            if let Some(until) = until {
                filter = filter.until(until);
            }
            let page = self.query(filter).await?;
            let full_page = page.len() >= HYDRATION_PAGE;
            let Some(oldest) = page.last().map(|event| event.created_at) else {
                break;
            };
            let newest = page.first().map(|event| event.created_at);
            if full_page && newest == Some(oldest) {
                // A whole page inside one second: read that second without a limit so
                // that the paging cannot stall on it.
                let second = Filter::new().since(oldest).until(oldest);
                for event in self.query(second).await? {
                    if seen_at_boundary.insert(event.id) {
                        count += 1;
                        visit(event);
                    }
                }
                if oldest.as_secs() == 0 {
                    break;
                }
                until = Some(Timestamp::from(oldest.as_secs() - 1));
                seen_at_boundary.clear();
                continue;
            }
            let mut next_boundary = HashSet::new();
            for event in page {
                if event.created_at == oldest {
                    next_boundary.insert(event.id);
                }
                if !seen_at_boundary.contains(&event.id) {
                    count += 1;
                    visit(event);
                }
            }
            if !full_page {
                break;
            }
            seen_at_boundary = next_boundary;
            until = Some(oldest);
        }
        Ok(count)
    }

    /// Every stored event, newest first. Convenient for tests and small stores; the
    /// daemon's hydration uses [`Store::for_each_event`].
    pub async fn all_events(&self) -> Result<Vec<Event>, StoreError> {
        let mut all = Vec::new();
        self.for_each_event(|event| all.push(event)).await?;
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use nostr::prelude::{EventBuilder, FinalizeEvent, Keys, Kind};

    use super::*;
    use crate::test_keys::keys;

    fn note(keys: &Keys, text: &str, at: u64) -> Event {
        EventBuilder::new(Kind::TextNote, text)
            .custom_created_at(Timestamp::from(at))
            .finalize(keys)
            .expect("sign")
    }

    #[tokio::test]
    async fn save_query_delete_roundtrip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("events")).await.expect("open");
        let keys = keys(1);
        let old = note(&keys, "old", 1_000);
        let new = note(&keys, "new", 2_000);
        assert!(store.save(&old).await.expect("save").is_success());
        assert!(store.save(&new).await.expect("save").is_success());
        assert!(!store.save(&new).await.expect("save again").is_success());

        let found = store
            .query(Filter::new().author(keys.public_key()))
            .await
            .expect("query");
        assert_eq!(found, vec![new.clone(), old.clone()], "newest first");
        let limited = store.query(Filter::new().limit(1)).await.expect("query");
        assert_eq!(limited, vec![new.clone()]);

        assert_eq!(
            store.event_by_id(&old.id).await.expect("get"),
            Some(old.clone())
        );
        store
            .delete(Filter::new().id(old.id))
            .await
            .expect("delete");
        assert_eq!(store.event_by_id(&old.id).await.expect("get"), None);
    }

    #[tokio::test]
    async fn for_each_event_pages_through_everything_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).await.expect("open");
        let keys = keys(1);
        // More than a page, many sharing a second (including a page-sized clump).
        let mut expected = HashSet::new();
        for i in 0..(HYDRATION_PAGE as u64 + 700) {
            let at = if i < HYDRATION_PAGE as u64 + 10 {
                5_000
            } else {
                5_000 - i
            };
            let event = note(&keys, &format!("n{i}"), at);
            expected.insert(event.id);
            store.save(&event).await.expect("save");
        }
        for i in 0..50u64 {
            let event = note(&keys, &format!("late{i}"), 9_000 + i % 3);
            expected.insert(event.id);
            store.save(&event).await.expect("save");
        }
        let mut seen = HashSet::new();
        let count = store
            .for_each_event(|event| assert!(seen.insert(event.id), "visited twice"))
            .await
            .expect("iterate");
        assert_eq!(count, expected.len());
        assert_eq!(seen, expected);
    }
}
