//! Deadlines firing, and startup hydration (which is mostly deadlines being honoured).

use crate::deadlines::Deadline;
use crate::effect::Effect;
use crate::engine::{Engine, TimerKey};
use crate::event::{self, Announcement, Origin, PullRequest, StateRefs, VerifiedEvent};
use crate::ident::Ident;
use crate::journal::{JournalKey, JournalRecord};
use crate::oid::Oid;
use crate::packed::PackedEvent;
use crate::placeholders::Placeholder;
use crate::purgatory::{Entry, Pending, Waiting};
use crate::repo::RepoId;
use crate::repo_index::{AnnInfo, AnnStatus, StateInfo};
use crate::version::Version;

impl Engine {
    /// Before a live input at `now`: fires the deadlines due by then, so that no input —
    /// and no view taken after it — sees an entry or placeholder past its deadline. The
    /// timer that should have fired may be a moment behind the input that arrives at the
    /// same millisecond (a 700,000-seed sweep found expiries missed by exactly that).
    /// Hydration inputs skip it: [`crate::Input::Hydrated`] fires what expired while down.
    pub(crate) fn fire_due_expiries(&mut self) {
        let due = self
            .next_deadline(&[Deadline::Entry, Deadline::Keyed])
            .is_some_and(|(t, _)| t <= self.now);
        if due {
            self.on_timeout();
        }
    }

    /// Fires every due deadline in `(time, kind, key)` order: at equal times the checks
    /// before expiry first, then purgatory entries (in id order), placeholders, expired
    /// memories (in id order) and sync attempts, as when they were all kinds of one timer
    /// key in this order.
    pub(crate) fn on_timeout(&mut self) {
        let now = self.now;
        // Every source but the throttle, which the pump below serves.
        let fired = &Deadline::ALL[..Deadline::ALL.len() - 1];
        while let Some((_, source)) = self.next_deadline(fired).filter(|(t, _)| *t <= now) {
            match source {
                Deadline::FinalCheck => self.run_final_checks(),
                Deadline::Entry => {
                    if let Some(id) = self.purgatory.pop_expired(now) {
                        self.expire_entry(&id);
                    }
                }
                Deadline::Keyed => {
                    if let Some(key) = self.timers.pop_due(now) {
                        self.fire(key);
                    }
                }
                Deadline::Expired => {
                    if let Some(id) = self.purgatory.expired.pop_due(now) {
                        self.emit(Effect::Forget {
                            key: JournalKey::Expired(id),
                        });
                    }
                }
                Deadline::Sync => {
                    if let Some(d) = self.sync.pop_due(now) {
                        self.start_attempt(d);
                    }
                }
                Deadline::Peers => self.on_peer_timeout(),
                Deadline::Throttle => unreachable!("not among the sources fired here"),
            }
        }
        for domain in self.throttle.queued_domains() {
            self.pump(domain);
        }
        for domain in self.throttle.gc(now) {
            self.emit(Effect::Forget {
                key: JournalKey::DomainWindow(domain),
            });
        }
    }

    /// Runs a due timer other than an entry's. Not inlined: most timeouts fire nothing,
    /// and inline this made their path measurably slower (a larger stack frame).
    #[inline(never)]
    fn fire(&mut self, key: TimerKey) {
        match key {
            TimerKey::Placeholder(key) => self.expire_placeholder(&key.0, &key.1),
            TimerKey::Prune(repo) => self.prune_repo(&repo),
        }
    }

    #[inline(never)]
    fn expire_entry(&mut self, id: &nostr::prelude::EventId) {
        let Some(entry) = self.purgatory.get(id) else {
            return;
        };
        let ident = entry.ident;
        let owner = entry.event.pubkey;
        let announcement = matches!(entry.what, Waiting::Announcement);
        // Only an announcement needs its identifier's name (a copy: the handle may be
        // freed below).
        let d = if announcement {
            self.idents.name(ident).to_owned()
        } else {
            String::new()
        };
        if announcement && entry.forget_at().is_none() {
            // Soft expiry: the repository goes, the event stays for a late state.
            let (deadline, forget_at) = (
                entry.deadline,
                entry.deadline.plus(self.config.announcement_soft_expiry),
            );
            self.purgatory.set_expiry(id, deadline, Some(forget_at));
            self.repos.set_status(&owner, &d, AnnStatus::SoftExpired);
            self.emit(Effect::DeleteRepo {
                repo: RepoId::new(owner, &d),
            });
            self.persist_entry(id);
            self.counters.soft_expired += 1;
            self.settle_sync(ident);
            return;
        }
        let Some(entry) = self.purgatory.remove(id) else {
            return;
        };
        if announcement {
            self.repos.remove_announcement(&owner, &d);
            if let Some(c) = entry.own_coordinate(&d) {
                self.related.drop_coordinate(&c);
            }
        }
        self.related.unaccept(id);
        if entry.persisted {
            self.emit(Effect::Forget {
                key: JournalKey::Waiting(*id),
            });
        }
        self.forget_superseded_by(id);
        if let Some(token) = entry.reply() {
            self.reply(token, *id, true, crate::engine::PURGATORY_MESSAGE);
        }
        let until = self.now.plus(self.config.expired_memory);
        self.purgatory.expired.remember(id, until);
        self.emit(Effect::Persist {
            record: JournalRecord::Expired {
                event_id: *id,
                until,
            },
        });
        self.counters.expired += 1;
        self.settle_sync(ident);
    }

    fn expire_placeholder(&mut self, repo: &RepoId, id: &nostr::prelude::EventId) {
        if self.purgatory.placeholders.remove(repo, id).is_some() {
            self.emit(Effect::SetRef {
                repo: repo.clone(),
                name: format!("refs/nostr/{}", id.to_hex()),
                target: None,
            });
            self.emit(Effect::Forget {
                key: JournalKey::Placeholder(repo.clone(), *id),
            });
            self.counters.expired += 1;
            self.schedule_prune(repo);
        }
    }

    /// Startup: rebuild the indexes from a stored event. No effects.
    pub(crate) fn on_stored(&mut self, event: VerifiedEvent) {
        let e = event.into_event();
        self.note_root(&e);
        if e.kind == event::ANNOUNCEMENT {
            if let Some(a) = Announcement::parse(&e) {
                let newer = self.repos.announcement(&e.pubkey, &a.d).is_none_or(|x| {
                    Version::new(e.created_at, e.id).supersedes(&Version::new(x.created_at, x.id))
                });
                if newer {
                    let hosted =
                        self.lists_our_clone_url(&a, &e.pubkey) && self.lists_our_relay(&a);
                    let info = AnnInfo {
                        id: e.id,
                        created_at: e.created_at,
                        membership: a.membership.clone(),
                        clone: a.clone.clone(),
                        relays: crate::peers::relay_keys(&a.relays),
                        hosted,
                        status: AnnStatus::Served,
                    };
                    self.repos.put_announcement(e.pubkey, &a.d, info);
                }
            }
        } else if e.kind == event::STATE {
            if let Some(d) = event::identifier(&e) {
                let info = StateInfo {
                    id: e.id,
                    author: e.pubkey,
                    created_at: e.created_at,
                    refs: StateRefs::parse(&e),
                };
                if self
                    .repos
                    .state(&e.pubkey, d)
                    .is_none_or(|s| s.order_key() < info.order_key())
                {
                    self.repos.put_state(e.pubkey, d, info);
                }
            }
        } else if e.kind == event::PULL_REQUEST || e.kind == event::PULL_REQUEST_UPDATE {
            if let Some(pr) = PullRequest::parse(&e) {
                if let Ok(tip) = pr.tip {
                    self.pr_tips.insert(e.id, tip);
                    self.note_pr_scope(e.id, e.pubkey, &pr.repos);
                }
            }
        } else if e.kind == event::DELETION {
            let ids: Vec<nostr::prelude::EventId> = event::tag_values(&e, "e")
                .filter_map(|v| nostr::prelude::EventId::from_hex(v).ok())
                .collect();
            let coords: Vec<_> = event::tag_values(&e, "a")
                .filter_map(|v| nostr::prelude::Coordinate::parse(v).ok())
                .filter(|c| c.public_key == e.pubkey)
                .map(|c| (c, e.created_at))
                .collect();
            self.related.delete(&ids, &coords);
        }
        self.related.accept(&e);
    }

    /// Startup: a journal record back into purgatory with its original deadlines.
    pub(crate) fn on_restore(&mut self, record: JournalRecord) {
        match record {
            JournalRecord::Waiting {
                event,
                origin,
                arrived,
                deadline,
                forget_at,
            } => {
                let id = event.id;
                if self.related.is_accepted(&id) || self.related.is_deleted(&event) {
                    // Released (or deleted) just before a crash: the store already has it.
                    self.emit(Effect::Forget {
                        key: JournalKey::Waiting(id),
                    });
                    return;
                }
                let Some(d) = event::identifier(&event).map(str::to_owned).or_else(|| {
                    PullRequest::parse(&event)
                        .and_then(|p| p.repos.first().map(|c| c.identifier.clone()))
                }) else {
                    return;
                };
                if self.restored_is_superseded(&event, &d) {
                    self.emit(Effect::Forget {
                        key: JournalKey::Waiting(id),
                    });
                    return;
                }
                let what = if event.kind == event::ANNOUNCEMENT {
                    let Some(a) = Announcement::parse(&event) else {
                        return;
                    };
                    let status = if forget_at.is_some() {
                        AnnStatus::SoftExpired
                    } else {
                        AnnStatus::Purgatory
                    };
                    let info = AnnInfo {
                        id,
                        created_at: event.created_at,
                        membership: a.membership,
                        relays: crate::peers::relay_keys(&a.relays),
                        clone: a.clone,
                        hosted: true,
                        status,
                    };
                    self.repos.put_announcement(event.pubkey, &d, info);
                    Waiting::Announcement
                } else if event.kind == event::STATE {
                    Waiting::State(StateRefs::parse(&event))
                } else {
                    let Some(mut pr) = PullRequest::parse(&event) else {
                        return;
                    };
                    // Accepted by GRASP-06's relaxation (nothing it tags is here): counted
                    // per signer again, and not hunted, as on arrival.
                    if !self.tags_known_repo(&pr) && self.relaxed_identifier(&event).is_some() {
                        pr.clone.clear();
                        self.purgatory.relaxed.insert((event.pubkey, event.id));
                    }
                    Waiting::pull_request(pr)
                };
                self.related.accept(&event);
                let entry = Entry {
                    event: PackedEvent::pack(&event),
                    ident: self.idents.intern(&d),
                    what,
                    origin,
                    arrived,
                    deadline,
                    persisted: true,
                    pending: Pending::forget_at(forget_at),
                };
                self.purgatory.insert(entry);
            }
            JournalRecord::Placeholder {
                repo,
                event_id,
                oid,
                deadline,
                client,
            } => {
                self.timers.set(
                    TimerKey::Placeholder(Box::new((repo.clone(), event_id))),
                    deadline,
                );
                self.purgatory
                    .placeholders
                    .insert(repo, event_id, Placeholder { oid, client });
            }
            JournalRecord::Expired { event_id, until } => {
                self.purgatory.expired.remember(&event_id, until);
            }
            JournalRecord::DomainWindow { domain, starts } => {
                let now = self.now;
                self.throttle.restore_window(&domain, &starts, now);
            }
            record @ (JournalRecord::PeerCheckpoint { .. } | JournalRecord::PeerNaughty { .. }) => {
                self.peers.restore(&record);
            }
        }
    }

    /// Startup done: look for data that landed just before a crash (or while down), expire
    /// what expired while down (downtime counts) once those checks answered, and resume
    /// syncing.
    pub(crate) fn on_hydrated(&mut self) {
        // Peers are dialed from now on (`refresh_peers` runs after this input).
        self.peers_live = true;
        // In name order, as the effects were before identifiers were interned.
        let mut ds: Vec<(String, Ident)> = self
            .purgatory
            .identifiers()
            .map(|d| (self.idents.name(d).to_owned(), d))
            .collect();
        ds.sort();
        for (name, d) in ds {
            let needs: Vec<Oid> = self.needs(Some(d)).into_iter().collect();
            if !needs.is_empty() {
                // Data that landed just before a crash may be in any of them: once per start.
                let repos = self.repos.repos(&name);
                self.check_in(&name, repos, needs, None);
                self.schedule_sync(d, Origin::Sync);
            }
        }
        // Nothing expires before those checks answered (see `final_check.rs`).
        self.hold_expiry_for_checks();
        self.on_timeout();
    }

    /// Whether a restored waiting announcement or state is older than the version of its
    /// coordinate already stored or restored: a crash between a release's save and the
    /// removal of the older version's record leaves both on disk, and the older must not
    /// take the newer one's place (the store serves the newer: what the engine enforces
    /// must be the same). An older waiting version restored before it is dropped.
    fn restored_is_superseded(&mut self, event: &nostr::prelude::Event, d: &str) -> bool {
        let mine = Version::new(event.created_at, event.id);
        let ident = self.idents.get(d);
        let (kept, waiting) = if event.kind == event::ANNOUNCEMENT {
            (
                self.repos
                    .announcement(&event.pubkey, d)
                    .map(|a| Version::new(a.created_at, a.id)),
                self.purgatory.announcement_of(&event.pubkey, ident),
            )
        } else if event.kind == event::STATE {
            (
                self.repos
                    .state_of(&event.pubkey, d)
                    .map(StateInfo::order_key),
                self.purgatory.state_of(&event.pubkey, ident),
            )
        } else {
            return false;
        };
        let waiting = waiting.map(|e| (e.event.id, Version::new(e.event.created_at, e.event.id)));
        if kept.is_some_and(|k| k.supersedes(&mine)) {
            return true;
        }
        if let Some((older, _)) = waiting.filter(|(_, w)| mine.supersedes(w)) {
            self.drop_entry(&older);
        }
        false
    }
}
