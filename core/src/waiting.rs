//! Entering purgatory, the delayed verdict after an object check, and leaving it other
//! than by release (superseded, withdrawn, deleted).

use crate::effect::{Effect, ReplyToken};
use crate::engine::{Engine, PURGATORY_MESSAGE};
use crate::event::Origin;
use crate::packed::PackedEvent;
use crate::purgatory::{Entry, Pending, Waiting};
use nostr::prelude::Event;

impl Engine {
    /// Puts an event into purgatory (not yet journalled if its verdict waits on a check).
    pub(crate) fn enter_purgatory(
        &mut self,
        e: Event,
        d: &str,
        what: Waiting,
        origin: Origin,
        reply: Option<ReplyToken>,
    ) {
        let id = e.id;
        let deadline = self.now.plus(self.config.purgatory_expiry);
        self.related.accept(&e);
        if self.purgatory.expired.forget(&id) {
            // Back in purgatory: its memory as expired goes from the journal too.
            self.emit(Effect::Forget {
                key: crate::journal::JournalKey::Expired(id),
            });
        }
        let mut entry = Entry {
            event: PackedEvent::pack(&e),
            ident: self.idents.intern(d),
            what,
            origin,
            arrived: self.now,
            deadline,
            persisted: reply.is_none(),
            pending: Pending::Nothing,
        };
        // Journalled now, or kept parsed for when its verdict is sent.
        let record = match reply {
            Some(token) => {
                entry.pending = Pending::Reply(token, Box::new(e));
                None
            }
            None => Some(entry.record_of(Box::new(e))),
        };
        self.purgatory.insert(entry);
        self.counters.entered_purgatory += 1;
        if let Some(record) = record {
            self.emit(Effect::Persist { record });
        }
    }

    pub(crate) fn persist_entry(&mut self, id: &nostr::prelude::EventId) {
        if let Some(entry) = self.purgatory.get_mut(id) {
            entry.persisted = true;
            let record = entry.record();
            self.emit(Effect::Persist { record });
        }
    }

    /// The verdict of an event that waited for a check and is still waiting: journal it,
    /// acknowledge it, and schedule the hunt for its data.
    pub(crate) fn finalize_waiting(&mut self, id: &nostr::prelude::EventId) {
        let Some(entry) = self.purgatory.get_mut(id) else {
            return;
        };
        let Some((token, event)) = entry.take_reply() else {
            return;
        };
        entry.persisted = true;
        let record = entry.record_of(event);
        let (d, origin) = (entry.ident, entry.origin);
        self.emit(Effect::Persist { record });
        self.forget_superseded_by(id);
        self.reply(token, *id, true, PURGATORY_MESSAGE);
        self.schedule_sync(d, origin);
    }

    /// Removes a purgatory entry that was superseded, withdrawn or deleted.
    pub(crate) fn drop_entry(&mut self, id: &nostr::prelude::EventId) {
        if let Some(entry) = self.take_entry(id) {
            if entry.persisted {
                self.emit(Effect::Forget {
                    key: crate::journal::JournalKey::Waiting(*id),
                });
            }
            self.forget_superseded_by(id);
            if let Some(token) = entry.reply() {
                self.reply(token, *id, false, "invalid: superseded before a verdict");
            }
        }
    }

    /// A waiting state superseded by `new`, whose verdict waits on a check: it leaves
    /// purgatory now, its journal record once `new`'s verdict settles (superseded.rs).
    pub(crate) fn supersede_entry(
        &mut self,
        old: &nostr::prelude::EventId,
        new: nostr::prelude::EventId,
    ) {
        let Some(entry) = self.take_entry(old) else {
            return;
        };
        let carried = self.purgatory.superseded.take(old);
        if entry.persisted {
            self.purgatory.superseded.defer(new, *old);
        } else if let Some(older) = carried {
            self.purgatory.superseded.defer(new, older);
        }
        if let Some(token) = entry.reply() {
            self.reply(token, *old, false, "invalid: superseded before a verdict");
        }
    }

    /// `new`'s verdict settled (journalled, released, refused, gone): the record of the
    /// event it superseded goes now.
    pub(crate) fn forget_superseded_by(&mut self, new: &nostr::prelude::EventId) {
        if let Some(old) = self.purgatory.superseded.take(new) {
            self.emit(Effect::Forget {
                key: crate::journal::JournalKey::Waiting(old),
            });
        }
    }

    /// Takes entry `id` out of purgatory, freeing its identifier's handle if nothing else
    /// holds it.
    pub(crate) fn take_entry(&mut self, id: &nostr::prelude::EventId) -> Option<Entry> {
        let entry = self.purgatory.remove(id)?;
        self.free_ident_if_idle(entry.ident);
        Some(entry)
    }
}
