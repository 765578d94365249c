//! The purgatory journal on disk: one redb table in `<data>/journal.redb`.
//!
//! Why redb and not a table in the event store's LMDB environment: nostr-lmdb does not
//! expose its environment, and an append-only log would need its own compaction. redb is
//! a well-kept, pure-Rust, ACID key-value store; every commit is durable (fsync) before
//! it returns, which is the guarantee "journalled before the OK" needs. Records are
//! small JSON documents keyed by `JournalKey`'s string form.
//!
//! Each value starts with a format byte ([`FORMAT`]), then the record's JSON. Values
//! written before the byte existed start with the JSON's `{` and are read as format 0
//! (the same JSON). A value that does not decode, or names a format this build does not
//! know (a downgrade), stops the start with an error naming its key: a record is an
//! acknowledged event or a budget, never dropped without the operator's say
//! (docs/sync.md, "The journal's format").

use std::path::Path;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use grasp_core::{JournalKey, JournalRecord};
use redb::{Database, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("purgatory");

/// The format byte of the records this build writes: format 1 is the byte, then the
/// [`JournalRecord`] JSON. A change to the JSON that old builds could misread takes the
/// next number; readers keep decoding every older one.
pub(crate) const FORMAT: u8 = 1;

/// The first byte of an unversioned (format 0) record: its JSON object's brace.
const FORMAT_0: u8 = b'{';

/// redb's page cache. Its default (1 GiB) kept every written page resident, ~1.5 KiB of
/// memory per purgatory entry; the journal is read once, at startup, and written in
/// batches, so a small cache costs nothing measurable. At 8 MiB the cache still held
/// the whole journal of a few thousand waiting repositories (2.6 KiB of journal each:
/// 2.6 KiB of graspd's 10.5 KiB per repository with 2,000 waiting, graspd-bench
/// `repos`) and, after a restart, the 7 MiB hydration had read; 2 MiB keeps the pages
/// near the root that every write walks (redb gives 90 % to reading, 10 % to writing).
const CACHE_BYTES: usize = 2 << 20;

/// Writes committed together at most; bounds one transaction's size and latency.
const MAX_BATCH: usize = 4096;

/// Errors of the journal: any of them means an acknowledgement cannot be given.
#[derive(Debug, Clone, thiserror::Error)]
#[error("purgatory journal: {0}")]
pub struct JournalError(String);

fn err(e: impl std::fmt::Display) -> JournalError {
    JournalError(e.to_string())
}

/// One queued change: a key and the value to put, or `None` to remove it.
struct Op {
    key: String,
    value: Option<Vec<u8>>,
    done: oneshot::Sender<Result<(), JournalError>>,
}

/// The journal; cheap to clone.
///
/// Writes go to one writer thread that commits everything queued in one transaction
/// (group commit): a burst of purgatory events costs one fsync, not one each, and each
/// caller still learns only once its own write is durable.
#[derive(Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<Database>,
    queue: Option<mpsc::Sender<Op>>,
    writer: Option<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish what is queued and exit; joining it
        // releases the database file before the journal is reopened.
        self.queue.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Journal {
    /// Opens or creates the journal file and starts its writer thread.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(err)?;
        let tx = db.begin_write().map_err(err)?;
        tx.open_table(TABLE).map_err(err)?;
        tx.commit().map_err(err)?;
        let db = Arc::new(db);
        let (queue, ops) = mpsc::channel();
        let writer_db = Arc::clone(&db);
        let writer = std::thread::Builder::new()
            .name("graspd-journal".into())
            .spawn(move || write_batches(&writer_db, &ops))
            .map_err(err)?;
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                queue: Some(queue),
                writer: Some(writer),
            }),
        })
    }

    /// Writes (or replaces) a record; resolves once it is durable. Queued at the call,
    /// so writes apply in call order even if their futures are awaited later.
    pub fn put(
        &self,
        record: &JournalRecord,
    ) -> impl Future<Output = Result<(), JournalError>> + Send + use<> {
        let value = encode(record);
        let key = record.key().to_string();
        let queued = value.map(|v| self.queue(key, Some(v)));
        async move { queued?.await.map_err(err)? }
    }

    /// Removes a record; resolves once that is durable. Queued at the call.
    pub fn forget(
        &self,
        key: &JournalKey,
    ) -> impl Future<Output = Result<(), JournalError>> + Send + use<> {
        let queued = self.queue(key.to_string(), None);
        async move { queued.await.map_err(err)? }
    }

    fn queue(
        &self,
        key: String,
        value: Option<Vec<u8>>,
    ) -> oneshot::Receiver<Result<(), JournalError>> {
        let (done, rx) = oneshot::channel();
        if let Some(queue) = &self.inner.queue {
            // A send error means the writer is gone; `done` is dropped with the op and
            // the receiver reports it.
            let _ = queue.send(Op { key, value, done });
        }
        rx
    }

    /// Calls `visit` with every record, for startup hydration, one at a time so that a
    /// large purgatory is never held twice in memory. Returns how many were visited.
    /// The first record that cannot be read is an error naming it (the start stops).
    pub fn for_each(&self, mut visit: impl FnMut(JournalRecord)) -> Result<usize, JournalError> {
        let tx = self.inner.db.begin_read().map_err(err)?;
        let table = tx.open_table(TABLE).map_err(err)?;
        let mut visited = 0;
        for row in table.iter().map_err(err)? {
            let (k, v) = row.map_err(err)?;
            visit(decode(k.value(), v.value())?);
            visited += 1;
        }
        Ok(visited)
    }

    /// Writes raw bytes under `key`, as another build or a fault would (tests).
    #[cfg(test)]
    pub(crate) fn put_raw(path: &Path, key: &str, value: &[u8]) {
        let db = Database::create(path).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(TABLE).unwrap().insert(key, value).unwrap();
        tx.commit().unwrap();
    }

    /// Every record (tests).
    #[cfg(test)]
    fn all(&self) -> Result<Vec<JournalRecord>, JournalError> {
        let mut out = Vec::new();
        self.for_each(|r| out.push(r))?;
        Ok(out)
    }
}

/// A record's stored form: [`FORMAT`], then its JSON.
pub(super) fn encode(record: &JournalRecord) -> Result<Vec<u8>, JournalError> {
    let mut value = vec![FORMAT];
    serde_json::to_writer(&mut value, record).map_err(err)?;
    Ok(value)
}

/// Reads a stored record of any known format; the error names its key.
fn decode(key: &str, value: &[u8]) -> Result<JournalRecord, JournalError> {
    let json = match value.first() {
        Some(&FORMAT_0) => value,
        Some(&FORMAT) => &value[1..],
        Some(&other) => {
            return Err(JournalError(format!(
                "record {key:?} has format {other}, which this graspd ({}) does not know \
                 (it reads formats 0 to {FORMAT}); was the journal written by a newer graspd?",
                env!("CARGO_PKG_VERSION")
            )));
        }
        None => return Err(JournalError(format!("record {key:?} is empty"))),
    };
    serde_json::from_slice(json)
        .map_err(|e| JournalError(format!("record {key:?} is unreadable: {e}")))
}

/// The writer thread: waits for a write, takes every write queued behind it (up to
/// [`MAX_BATCH`]), commits them in one transaction and answers each.
fn write_batches(db: &Database, ops: &mpsc::Receiver<Op>) {
    while let Ok(first) = ops.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match ops.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let outcome = commit(db, &batch);
        for op in batch {
            let _ = op.done.send(outcome.clone());
        }
    }
}

fn commit(db: &Database, batch: &[Op]) -> Result<(), JournalError> {
    let tx = db.begin_write().map_err(err)?;
    {
        let mut table = tx.open_table(TABLE).map_err(err)?;
        for op in batch {
            match &op.value {
                Some(v) => table.insert(op.key.as_str(), v.as_slice()).map(|_| ()),
                None => table.remove(op.key.as_str()).map(|_| ()),
            }
            .map_err(err)?;
        }
    }
    tx.commit().map_err(err)
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

    #[tokio::test]
    async fn writes_queued_together_apply_in_call_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.redb");
        let j = Journal::open(&path).unwrap();
        let records: Vec<JournalRecord> = (0..50u8)
            .map(|n| JournalRecord::Expired {
                event_id: EventId::from_slice(&[n; 32]).unwrap(),
                until: Time::from_millis(u64::from(n)),
            })
            .collect();
        // Queue every put, then forget the even ones, before awaiting anything.
        let puts: Vec<_> = records.iter().map(|r| j.put(r)).collect();
        let forgets: Vec<_> = records
            .iter()
            .step_by(2)
            .map(|r| j.forget(&r.key()))
            .collect();
        for w in puts {
            w.await.unwrap();
        }
        for w in forgets {
            w.await.unwrap();
        }
        drop(j);
        let j = Journal::open(&path).unwrap();
        let mut kept = j.all().unwrap();
        kept.sort_by_key(|r| r.key());
        let odd: Vec<JournalRecord> = records.into_iter().skip(1).step_by(2).collect();
        assert_eq!(kept, odd);
    }
}
