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
    let hosted_deadline = now.plus(engine.config().purgatory_expiry);
    // A contributor (`/prs/`) placeholder lives GRASP-06's shorter time.
    let prs_deadline = now.plus(engine.config().prs_placeholder_expiry);
    let mut adopted = 0;
    for (repo, event_id, oid) in repos.nostr_refs().await {
        if engine.is_known_nostr_ref(&repo, &event_id) {
            continue;
        }
        let deadline = if repo.is_prs() {
            prs_deadline
        } else {
            hosted_deadline
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{Faults, Memory};
    use futures_util::FutureExt;
    use grasp_core::nostr::prelude::{EventId, Keys};
    use grasp_core::{Config, JournalKey, Oid, RepoId};
    use std::sync::Arc;

    fn memory() -> Memory {
        Memory::new(Faults::default(), 1, Arc::new(|_| async {}.boxed()))
    }

    fn deadline_of(m: &Memory, repo: &RepoId, id: EventId) -> Option<Time> {
        m.durable(
            |d| match d.journal.get(&JournalKey::Placeholder(repo.clone(), id)) {
                Some(JournalRecord::Placeholder { deadline, .. }) => Some(*deadline),
                _ => None,
            },
        )
    }

    #[test]
    fn orphan_refs_are_adopted_with_their_namespaces_expiry() {
        let m = memory();
        let owner = Keys::parse(&format!("{:064x}", 7))
            .expect("key")
            .public_key();
        let (hosted, prs) = (RepoId::new(owner, "r"), RepoId::prs(owner, "r"));
        let oid = Oid::parse(&"ab".repeat(20)).expect("oid");
        let (a, b) = (
            EventId::from_byte_array([0; 32]),
            EventId::from_byte_array([1; 32]),
        );
        m.git(|d| {
            d.create_repo(&hosted);
            d.create_repo(&prs);
            d.add_objects(&hosted, &[oid]);
            d.add_objects(&prs, &[oid]);
            d.set_ref(&hosted, &format!("refs/nostr/{}", a.to_hex()), Some(oid));
            d.set_ref(&prs, &format!("refs/nostr/{}", b.to_hex()), Some(oid));
        });
        let mut config = Config::new("https://our.test/".parse().expect("url"));
        config.grasp06 = true;
        let (expiry, prs_expiry) = (config.purgatory_expiry, config.prs_placeholder_expiry);
        assert_ne!(expiry, prs_expiry);
        let mut engine = Engine::new(config);
        let now = Time::from_millis(1_000_000);
        let hydrated =
            futures_executor::block_on(hydrate(&mut engine, now, &m, &m, &m)).expect("reads");
        assert_eq!(hydrated.adopted, 2);
        assert_eq!(deadline_of(&m, &hosted, a), Some(now.plus(expiry)));
        assert_eq!(
            deadline_of(&m, &prs, b),
            Some(now.plus(prs_expiry)),
            "a /prs/ placeholder lives --prs-placeholder-expiry"
        );
    }
}
