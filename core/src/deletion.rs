//! Kind 5: an author deletes their own events, stored or waiting, by id or coordinate.

use crate::effect::{Effect, ReplyToken, ServePath};
use crate::engine::Engine;
use crate::event::{self, tag_values};
use crate::purgatory::Waiting;
use crate::repo::RepoId;
use crate::repo_index::AnnStatus;
use nostr::prelude::{Coordinate, Event, EventId, Timestamp};

impl Engine {
    pub(crate) fn on_deletion(&mut self, token: ReplyToken, e: Event) {
        let id = e.id;
        let author = e.pubkey;
        let until = e.created_at;
        let mut ids: Vec<EventId> = Vec::new();
        let mut named_other = false;
        for v in tag_values(&e, "e") {
            let Ok(target) = EventId::from_hex(v) else {
                continue;
            };
            let by = self
                .purgatory
                .get(&target)
                .map(|x| x.event.pubkey)
                .or_else(|| self.related.author_of(&target));
            match by {
                Some(pk) if pk == author => ids.push(target),
                Some(_) => named_other = true,
                None => {}
            }
        }
        let mut coords: Vec<(Coordinate, Timestamp)> = Vec::new();
        for v in tag_values(&e, "a") {
            let Ok(c) = Coordinate::parse(v) else {
                continue;
            };
            if c.public_key != author {
                named_other |= self.related.knows_coordinate(&c);
                continue;
            }
            if self.knows_own_coordinate(&c) {
                coords.push((c, until));
            }
        }
        ids.sort();
        ids.dedup();
        if ids.is_empty() && coords.is_empty() {
            let why = if named_other {
                "invalid: a deletion may only name its author's own events"
            } else {
                "blocked: deletion names no event on this server"
            };
            return self.reply(token, id, false, why);
        }
        // Waiting entries named by id or coordinate.
        let mut waiting: Vec<EventId> = ids
            .iter()
            .filter(|i| self.purgatory.contains(i))
            .copied()
            .collect();
        for (c, until) in &coords {
            waiting.extend(
                self.purgatory
                    .entries_of(self.idents.get(&c.identifier))
                    .filter(|x| x.event.pubkey == author && x.event.created_at <= *until)
                    .filter(|x| x.own_coordinate(&c.identifier).as_ref() == Some(c))
                    .map(|x| x.event.id),
            );
        }
        waiting.sort();
        waiting.dedup();
        for wid in &waiting {
            let Some(entry) = self.purgatory.get(wid) else {
                continue;
            };
            let d = self.idents.name(entry.ident).to_owned();
            let is_ann = matches!(entry.what, Waiting::Announcement);
            self.drop_entry(wid);
            if is_ann {
                self.remove_hosted(&author, &d);
            }
        }
        // Stored announcements and states named by id or coordinate.
        for (c, until) in &coords {
            self.forget_stored(&author, &c.identifier, c.kind, |_, at| at <= *until);
        }
        for sid in &ids {
            if let Some(d) = self.stored_d_of(&author, sid) {
                self.forget_stored(&author, &d.0, d.1, |x, _| x == *sid);
            }
            self.pr_tips.remove(sid);
            self.drop_prs_refs(&author, sid);
        }
        self.related.delete(&ids, &coords);
        self.emit(Effect::DeleteEvents {
            author,
            ids,
            coordinates: coords,
        });
        self.related.accept(&e);
        self.store(e, ServePath::Direct);
        self.reply(token, id, true, "");
    }

    /// Whether the author's coordinate names something here (waiting or stored).
    fn knows_own_coordinate(&self, c: &Coordinate) -> bool {
        if self.related.knows_coordinate(c) {
            return true;
        }
        self.purgatory
            .entries_of(self.idents.get(&c.identifier))
            .any(|x| {
                x.event.pubkey == c.public_key
                    && x.own_coordinate(&c.identifier).as_ref() == Some(c)
            })
    }

    /// The identifier and kind of an author's stored announcement or state with this id.
    fn stored_d_of(
        &self,
        author: &nostr::prelude::PublicKey,
        id: &EventId,
    ) -> Option<(String, nostr::prelude::Kind)> {
        // Deletions are rare: a scan of the author's index entries is cheaper than keeping
        // an identifier per accepted id.
        self.repos.find_by_id(author, id)
    }

    /// Drops a stored announcement or state from the indexes when `matches(id, created_at)`.
    fn forget_stored(
        &mut self,
        author: &nostr::prelude::PublicKey,
        d: &str,
        kind: nostr::prelude::Kind,
        matches: impl Fn(EventId, Timestamp) -> bool,
    ) {
        if kind == event::ANNOUNCEMENT {
            if let Some(a) = self.repos.announcement(author, d) {
                if a.status == AnnStatus::Served && matches(a.id, a.created_at) {
                    self.remove_hosted(author, d);
                }
            }
        } else if kind == event::STATE {
            if let Some(s) = self.repos.state(author, d) {
                if matches(s.id, s.created_at) {
                    self.repos.remove_state(author, d);
                }
            }
        }
    }

    /// Removes an announcement from the index and its repository from disk.
    fn remove_hosted(&mut self, owner: &nostr::prelude::PublicKey, d: &str) {
        if let Some(a) = self.repos.remove_announcement(owner, d) {
            if a.hosted && a.status != AnnStatus::SoftExpired {
                self.emit(Effect::DeleteRepo {
                    repo: RepoId::new(*owner, d),
                });
            }
        }
    }
}
