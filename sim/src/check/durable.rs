//! Durability invariants: what an `OK true` promises survives crashes and shutdowns, and
//! the store serves the version the engine enforces. Judged against the in-memory disk's
//! ground truth (what reached its durable side), never the executor's bookkeeping.

use super::{ACKED_DURABLE, Checker, SERVED, SHUTDOWN, SURVIVES};
use crate::store::Store;
use grasp_core::nostr::prelude::EventId;
use grasp_core::{Engine, Time};
use grasp_executor::Reply;
use grasp_executor::memory::VersionOrder;

impl Checker {
    /// The reply for `token` reached its client. An `OK true` for an event the executor
    /// wrote (saved or journalled) must be durable by then.
    pub fn on_delivered(
        &mut self,
        now: Time,
        token: u64,
        id: EventId,
        reply: &Reply,
        durable: bool,
    ) {
        let _ = token;
        if !reply.accepted || !self.written.contains(&id) {
            return;
        }
        if !durable {
            let detail = format!("OK true for {id} sent before its write was durable");
            return self.fail(ACKED_DURABLE, now, detail);
        }
        self.acked.insert(id);
    }

    /// A new incarnation booted from the disk: every acknowledged event is served or
    /// waiting, unless it went legitimately (deleted, expired, replaced by a newer
    /// version, or its deadline passed while the server was down).
    pub fn after_boot(&mut self, now: Time, engine: &Engine, store: &Store) {
        // A save a crash lost may happen again: that is no double release.
        self.released.retain(|id| store.stored.contains(id));
        let expiry = self.config.purgatory_expiry;
        let mut lost = None;
        let mut gone = Vec::new();
        for id in &self.acked {
            if engine.is_waiting(id) || store.stored.contains(id) {
                continue;
            }
            let Some(fed) = self.fed.get(id) else {
                continue;
            };
            let legit = self.deleted.contains(id)
                || self.removed.contains(id)
                || self.expired.contains(id)
                || fed.at.plus(expiry) <= now
                || store.keeps_newer(&fed.event, VersionOrder::Nip01)
                || self.superseded(&fed.event);
            if legit {
                gone.push(*id);
            } else if lost.is_none() {
                lost = Some(*id);
            }
        }
        for id in gone {
            self.acked.remove(&id);
        }
        if let Some(id) = lost {
            let detail =
                format!("acknowledged {id} is neither stored nor waiting after the restart");
            self.fail(SURVIVES, now, detail);
        }
    }

    /// Whether a newer version of `event`'s coordinate was written (stored or
    /// journalled as waiting): a replaceable event's older version may go.
    fn superseded(&self, event: &grasp_core::nostr::prelude::Event) -> bool {
        let k = event.kind.as_u16();
        if !(30000..40000).contains(&k) {
            return false;
        }
        let d = event.tags.identifier();
        let newer = grasp_core::Version::new(event.created_at, event.id);
        self.fed.values().any(|f| {
            let e = &f.event;
            e.kind == event.kind
                && e.pubkey == event.pubkey
                && e.tags.identifier() == d
                && grasp_core::Version::new(e.created_at, e.id).supersedes(&newer)
                && self.written.contains(&e.id)
        })
    }

    /// A graceful shutdown ended: `settled` says whether every write reached the disk.
    pub fn on_shutdown(&mut self, now: Time, settled: bool) {
        if !settled {
            let detail = "writes in flight at shutdown never reached the disk".to_owned();
            self.fail(SHUTDOWN, now, detail);
        }
    }

    /// The version of every announcement and state the store serves is the one the
    /// engine authorizes pushes and releases with (save failures aside: the engine does
    /// not learn of them until the next start — docs/simulation.md).
    pub fn served_is_enforced(
        &mut self,
        now: Time,
        engine: &Engine,
        store: &Store,
        save_failed: impl Fn(&EventId) -> bool,
    ) {
        for e in &store.events {
            let kind = e.kind.as_u16();
            if kind != 30617 && kind != 30618 {
                continue;
            }
            let d = e.tags.identifier().unwrap_or_default();
            let enforced = engine.stored_version(kind, &e.pubkey, &d);
            if enforced == Some(e.id) || enforced.is_some_and(|x| save_failed(&x)) {
                continue;
            }
            let detail = format!(
                "the store serves {} as {}'s kind {kind} for '{d}', the engine enforces {enforced:?}",
                e.id, e.pubkey
            );
            return self.fail(SERVED, now, detail);
        }
    }
}
