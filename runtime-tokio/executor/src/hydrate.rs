//! Building an engine from the backends' durable state, the one way: the daemon at
//! startup and the simulator after every crash both call [`hydrate`].

use grasp_core::{Engine, Input, JournalRecord, Time, VerifiedEvent};

use crate::backends::{EventStore, Journal, Repositories};

/// What hydration read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hydrated {
    /// Stored events fed.
    pub stored: usize,
    /// Journal records restored.
    pub journal: usize,
    /// `refs/nostr/` refs without a record, adopted as placeholders.
    pub adopted: usize,
}

/// Feeds `engine` every stored event, every journal record and the orphan placeholders,
/// then `Hydrated`. An unreadable store or journal stops it: starting without them would
/// forget acknowledged events.
///
/// Orphans: a push's placeholder record is written after git moved the ref, and the
/// push's report does not wait for it (the ref itself is durable in git). A crash in
/// between leaves a ref without a record, which would then never expire nor count
/// against the placeholder budgets; the repository holds all a placeholder is, so it is
/// rebuilt here with a fresh deadline (the original is unknown: a crash extends a
/// placeholder's life by at most one expiry) and no client address, and recorded.
pub async fn hydrate(
    engine: &mut Engine,
    now: Time,
    store: &impl EventStore,
    journal: &impl Journal,
    repos: &impl Repositories,
) -> Result<Hydrated, String> {
    let mut visit = |e| engine.handle_input(now, Input::Stored(VerifiedEvent::assume_verified(e)));
    let stored = store
        .for_each_event(&mut visit)
        .await
        .map_err(|e| format!("event store: {e}"))?;
    let journalled = journal
        .for_each_record(&mut |r| engine.handle_input(now, Input::Restore(r)))
        .map_err(|e| format!("purgatory journal: {e}"))?;
    let deadline = now.plus(engine.config().purgatory_expiry);
    let mut adopted = 0;
    for (repo, event_id, oid) in repos.nostr_refs().await {
        if engine.is_known_nostr_ref(&repo, &event_id) {
            continue;
        }
        let record = JournalRecord::Placeholder {
            repo,
            event_id,
            oid,
            deadline,
            client: None,
        };
        if let Err(e) = journal.put(&record).await {
            tracing::error!("cannot record an adopted placeholder: {e}");
        }
        engine.handle_input(now, Input::Restore(record));
        adopted += 1;
    }
    engine.handle_input(now, Input::Hydrated);
    Ok(Hydrated {
        stored,
        journal: journalled,
        adopted,
    })
}
