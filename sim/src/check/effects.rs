//! Effect invariants: what is released, stored and aligned, judged against the local
//! store and the harness's own model of authority.

use super::{Checker, DEADLINES, DOUBLE, RELEASE, ROLLBACK};
use crate::oracle::Facts;
use crate::store::Store;
use grasp_core::nostr::prelude::{Event, EventId};
use grasp_core::{Effect, JournalKey, JournalRecord, Oid, RepoId, ServePath, Time};
use std::collections::BTreeMap;

impl Checker {
    /// An effect was just executed against `store`.
    pub fn on_effect(&mut self, now: Time, effect: &Effect, store: &Store) {
        match effect {
            Effect::StoreEvent { event, path } => {
                self.written.insert(event.id);
                self.on_store(now, event, *path, store);
            }
            Effect::Persist {
                record: JournalRecord::Waiting { event, .. },
            } => {
                self.written.insert(event.id);
            }
            Effect::DeleteEvents {
                author,
                ids,
                coordinates,
            } => {
                let doomed: Vec<EventId> = self
                    .fed
                    .values()
                    .filter(|f| {
                        grasp_executor::memory::is_deleted_by(&f.event, author, ids, coordinates)
                    })
                    .map(|f| f.event.id)
                    .collect();
                self.removed.extend(doomed);
            }
            Effect::AlignRepo { repo, refs, .. } => {
                let Some(local) = store.repos.get(repo) else {
                    return;
                };
                if let Some((n, o)) = refs.iter().find(|(_, o)| !local.objects.contains(o)) {
                    let detail = format!("{repo} aligned {n} -> {o}, which it does not hold");
                    self.fail(RELEASE, now, detail);
                }
                if self.strict_rollback {
                    let refs: BTreeMap<String, Oid> = refs.iter().cloned().collect();
                    self.aligned(now, repo, &refs, "aligned");
                } else {
                    self.touched.insert(repo.clone());
                }
            }
            Effect::SetRef {
                repo,
                name,
                target: Some(o),
            } if store
                .repos
                .get(repo)
                .is_some_and(|r| !r.objects.contains(o)) =>
            {
                let detail = format!("{repo} {name} -> {o}, which it does not hold");
                self.fail(RELEASE, now, detail);
            }
            Effect::Forget {
                key: JournalKey::Waiting(id),
            } => {
                self.waiting.remove(id);
            }
            Effect::Persist {
                record: JournalRecord::Expired { event_id, .. },
            } => {
                self.stats.expired += 1;
                self.expired.insert(*event_id);
                if let Some(arrived) = self.waiting.remove(event_id) {
                    let due = arrived.plus(self.config.purgatory_expiry);
                    if now < due {
                        let detail = format!("{event_id} expired at {now}, due {due}");
                        self.fail(DEADLINES, now, detail);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_store(&mut self, now: Time, event: &Event, path: ServePath, store: &Store) {
        let id = event.id;
        if !self.released.insert(id) {
            self.fail(DOUBLE, now, format!("{id} stored twice (path {path:?})"));
        }
        let arrived = self.waiting.remove(&id);
        if path == ServePath::Direct {
            return;
        }
        *self.stats.released.entry(format!("{path:?}")).or_default() += 1;
        if let (Some(Some((ready, _))), Some(arrived)) = (self.ready.get(&id), arrived) {
            // From when the engine may first look: the data ready, the event here and its
            // origin's delay passed (3 min for a client's: a choice, not a wait).
            let delay = match self.fed.get(&id).map(|f| f.origin) {
                Some(grasp_core::Origin::Client) => self.config.client_delay,
                _ => self.config.sync_delay,
            };
            let from = (*ready).max(arrived.plus(delay)).max(self.up_since);
            let waited = now.as_millis().saturating_sub(from.as_millis());
            if waited > self.stats.worst_latency_ms {
                self.stats.worst_latency_ms = waited;
                self.stats.worst_latency_of =
                    format!("{id}: ready {ready}, arrived {arrived}, released {now}");
            }
        }
        let facts = self.fed.get(&id).and_then(|f| f.facts.clone());
        match facts {
            Some(Facts::State { d, refs }) if !refs.is_empty() => {
                let owners = self.authority.owners_for(&event.pubkey, &d);
                if owners.is_empty() {
                    let detail = format!("state {id} of {d} released, author not a maintainer");
                    return self.fail(RELEASE, now, detail);
                }
                // In a repository it governs, or — when a newer state governs them all, so
                // that none is aligned to it — anywhere on this server.
                let oids: Vec<Oid> = refs.values().copied().collect();
                let held = store
                    .repos
                    .keys()
                    .any(|r| r.d == d && store.holds_all(r, &oids));
                if !held {
                    let detail = format!("state {id} of {d} released without its data");
                    self.fail(RELEASE, now, detail);
                }
            }
            Some(Facts::Pr { d, tip, .. }) => {
                let held = store
                    .repos
                    .iter()
                    .any(|(r, l)| r.d == d && l.objects.contains(&tip));
                if !held {
                    let detail = format!("pull request {id} of {d} released without {tip}");
                    self.fail(RELEASE, now, detail);
                }
            }
            _ => {}
        }
    }

    /// A push the engine accepted was applied: it must not roll the repository back.
    pub fn on_push(&mut self, now: Time, repo: &RepoId, refs: &BTreeMap<String, Oid>) {
        self.aligned(now, repo, refs, "pushed");
    }

    /// `repo`'s branches and tags became `refs`: they must be an authorized state's, not
    /// older than one the repository had before.
    /// The repositories aligned during the step, judged by where they ended up.
    pub(super) fn check_touched(&mut self, now: Time, store: &Store) {
        for repo in std::mem::take(&mut self.touched) {
            if store.repos.contains_key(&repo) {
                self.aligned(now, &repo, &store.branches(&repo), "aligned");
            }
        }
    }

    fn aligned(&mut self, now: Time, repo: &RepoId, refs: &BTreeMap<String, Oid>, how: &str) {
        let closure = self.authority.closure(&repo.owner, &repo.d);
        let best = self
            .fed
            .values()
            .filter(|f| closure.contains(&f.event.pubkey))
            .filter(|f| {
                matches!(&f.facts, Some(Facts::State { d, refs: r }) if *d == repo.d && r == refs)
            })
            .map(|f| (f.event.created_at, f.event.id))
            .max();
        let Some(key) = best else {
            let detail = format!("{repo} {how} to refs no authorized state names: {refs:?}");
            return self.fail(ROLLBACK, now, detail);
        };
        match self.floors.get(repo) {
            Some(floor) if *floor > key => {
                let detail = format!("{repo} {how} to state {} older than {}", key.1, floor.1);
                self.fail(ROLLBACK, now, detail);
            }
            _ => {
                self.floors.insert(repo.clone(), key);
            }
        }
    }
}
