//! The purgatory journal on disk: one redb table in `<data>/journal.redb`.
//!
//! Why redb and not a table in the event store's LMDB environment: nostr-lmdb does not
//! expose its environment, and an append-only log would need its own compaction. redb is
//! a well-kept, pure-Rust, ACID key-value store; every commit is durable (fsync) before
//! it returns, which is the guarantee "journalled before the OK" needs. Records are
//! small JSON documents keyed by `JournalKey`'s string form.

use std::path::Path;
use std::sync::Arc;

use grasp_core::{JournalKey, JournalRecord};
use redb::{Database, ReadableTable, TableDefinition};

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("purgatory");

/// Errors of the journal: any of them means an acknowledgement cannot be given.
#[derive(Debug, thiserror::Error)]
#[error("purgatory journal: {0}")]
pub struct JournalError(String);

fn err(e: impl std::fmt::Display) -> JournalError {
    JournalError(e.to_string())
}

/// The journal; cheap to clone.
#[derive(Clone)]
pub struct Journal {
    db: Arc<Database>,
}

impl Journal {
    /// Opens or creates the journal file.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let db = Database::create(path).map_err(err)?;
        let tx = db.begin_write().map_err(err)?;
        tx.open_table(TABLE).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(Self { db: Arc::new(db) })
    }

    /// Writes (or replaces) a record durably.
    pub async fn put(&self, record: &JournalRecord) -> Result<(), JournalError> {
        let key = record.key().to_string();
        let value = serde_json::to_vec(record).map_err(err)?;
        self.write(move |t| t.insert(key.as_str(), value.as_slice()).map(|_| ()))
            .await
    }

    /// Removes a record durably.
    pub async fn forget(&self, key: &JournalKey) -> Result<(), JournalError> {
        let key = key.to_string();
        self.write(move |t| t.remove(key.as_str()).map(|_| ()))
            .await
    }

    async fn write<F>(&self, f: F) -> Result<(), JournalError>
    where
        F: FnOnce(&mut redb::Table<&str, &[u8]>) -> Result<(), redb::StorageError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || {
            let tx = db.begin_write().map_err(err)?;
            {
                let mut table = tx.open_table(TABLE).map_err(err)?;
                f(&mut table).map_err(err)?;
            }
            tx.commit().map_err(err)
        })
        .await
        .map_err(err)?
    }

    /// Every record, for startup hydration. Unreadable records are skipped with a log
    /// line rather than blocking the start.
    pub fn all(&self) -> Result<Vec<JournalRecord>, JournalError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(TABLE).map_err(err)?;
        let mut out = Vec::new();
        for row in table.iter().map_err(err)? {
            let (k, v) = row.map_err(err)?;
            match serde_json::from_slice::<JournalRecord>(v.value()) {
                Ok(r) => out.push(r),
                Err(e) => {
                    tracing::error!(key = k.value(), "unreadable journal record skipped: {e}")
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use grasp_core::Time;
    use grasp_core::nostr::prelude::EventId;

    #[tokio::test]
    async fn put_forget_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.redb");
        let j = Journal::open(&path).unwrap();
        let id = EventId::from_slice(&[3; 32]).unwrap();
        let rec = JournalRecord::Expired {
            event_id: id,
            until: Time::from_millis(5),
        };
        j.put(&rec).await.unwrap();
        let other = JournalRecord::Expired {
            event_id: EventId::from_slice(&[4; 32]).unwrap(),
            until: Time::from_millis(6),
        };
        j.put(&other).await.unwrap();
        j.forget(&other.key()).await.unwrap();
        drop(j);
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.all().unwrap(), vec![rec]);
    }
}
