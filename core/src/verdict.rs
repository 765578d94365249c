//! Event verdicts: what to do with each incoming event, by kind (BEHAVIOR.md §1–2).

use crate::effect::{Effect, ReplyToken, ServePath};
use crate::engine::{Engine, PURGATORY_MESSAGE};
use crate::event::{self, Announcement, Origin, PullRequest, StateRefs};
use crate::purgatory::Waiting;
use crate::repo::{RepoId, is_safe_identifier, npub};
use crate::repo_index::{AnnInfo, AnnStatus, StateInfo};
use crate::url_path::{decode_identifier, encode_identifier};
use crate::version::Version;
use nostr::prelude::{Coordinate, Event, Timestamp};

impl Engine {
    pub(crate) fn decide_event(
        &mut self,
        token: ReplyToken,
        e: Event,
        origin: Origin,
        received_at: Timestamp,
    ) {
        let id = e.id;
        if let Some(why) = self.curation_refusal_for_author(&e) {
            return self.reply(token, id, false, why);
        }
        let skew = self.config.max_future_skew.as_secs();
        if e.created_at.as_secs() > received_at.as_secs().saturating_add(skew) {
            return self.reply(
                token,
                id,
                false,
                "invalid: created_at is too far in the future",
            );
        }
        if self.related.is_deleted(&e) {
            return self.reply(
                token,
                id,
                false,
                "invalid: this event was deleted by its author",
            );
        }
        if self.purgatory.contains(&id) {
            return self.reply(token, id, true, "duplicate: in purgatory");
        }
        if self.related.is_accepted(&id) {
            return self.reply(token, id, true, "duplicate: already have this event");
        }
        if origin == Origin::Sync && self.purgatory.expired.contains(&id) {
            return self.reply(
                token,
                id,
                false,
                "invalid: previously expired from purgatory without its git data",
            );
        }
        if crate::user_events::is_protected(&e) {
            return self.reply(token, id, false, crate::user_events::PROTECTED_REFUSAL);
        }
        if self.on_user_event(token, &e) {
            return;
        }
        match e.kind {
            k if k == event::ANNOUNCEMENT => self.on_announcement(token, e, origin),
            k if k == event::STATE => self.on_state(token, e, origin),
            k if k == event::PULL_REQUEST || k == event::PULL_REQUEST_UPDATE => {
                match PullRequest::parse(&e) {
                    Some(pr) if self.tags_known_repo(&pr) => {
                        self.on_pull_request(token, e, origin, pr)
                    }
                    _ => self.on_related(token, e, origin),
                }
            }
            k if k == event::DELETION => self.on_deletion(token, e),
            _ => self.on_related(token, e, origin),
        }
    }

    fn curation_refusal_for_author(&self, e: &Event) -> Option<String> {
        let c = &self.config.curation;
        if c.deny_pubkeys.contains(&e.pubkey) {
            return Some("blocked: this pubkey is not allowed on this server".into());
        }
        None
    }

    fn curation_refusal_for_repo(
        &self,
        owner: &nostr::prelude::PublicKey,
        d: &str,
    ) -> Option<String> {
        let c = &self.config.curation;
        if !c.allow_pubkeys.is_empty() && !c.allow_pubkeys.contains(owner) {
            return Some("blocked: this server only hosts repositories of listed pubkeys".into());
        }
        if c.deny_identifiers.contains(d)
            || (!c.allow_identifiers.is_empty() && !c.allow_identifiers.contains(d))
        {
            return Some(format!(
                "blocked: repository identifier '{d}' is not hosted on this server"
            ));
        }
        None
    }

    /// `rate-limited:` when one more purgatory entry for this author or identifier would
    /// exceed a cap.
    /// A new bare repository for a waiting announcement would exceed the total cap.
    fn waiting_repos_refusal(&self) -> Option<String> {
        let cap = self.config.limits.waiting_repos_total;
        (self.repos.waiting_repos() >= cap).then(|| {
            format!(
                "rate-limited: {cap} repositories are already waiting for their git data here; try again later"
            )
        })
    }

    pub(crate) fn purgatory_cap_refusal(
        &self,
        author: &nostr::prelude::PublicKey,
        d: &str,
        bytes: usize,
        announcement: bool,
    ) -> Option<String> {
        let l = &self.config.limits;
        if self.purgatory.bytes() + bytes > l.purgatory_bytes_total {
            return Some(format!(
                "rate-limited: purgatory is full ({} bytes of waiting events)",
                l.purgatory_bytes_total
            ));
        }
        if self.purgatory.author_bytes(author) + bytes > l.purgatory_bytes_per_author {
            return Some(format!(
                "rate-limited: your events waiting for git data would exceed {} bytes",
                l.purgatory_bytes_per_author
            ));
        }
        if self.purgatory.len() >= l.purgatory_total {
            return Some(format!(
                "rate-limited: purgatory is full ({} entries)",
                l.purgatory_total
            ));
        }
        // A waiting announcement is bounded by the repositories-per-author cap instead.
        if !announcement && self.purgatory.count_author(author) >= l.purgatory_per_author {
            return Some(format!(
                "rate-limited: too many of your events wait for git data (limit {})",
                l.purgatory_per_author
            ));
        }
        if self.purgatory.count_identifier(self.ident(d)) >= l.purgatory_per_identifier {
            return Some(format!(
                "rate-limited: too many events wait for git data of '{d}' (limit {})",
                l.purgatory_per_identifier
            ));
        }
        None
    }

    /// The clone URL this server expects in an announcement of `(owner, d)`.
    pub(crate) fn our_clone_url(&self, owner: &nostr::prelude::PublicKey, d: &str) -> String {
        let base = self.config.public_url.as_str().trim_end_matches('/');
        format!("{base}/{}/{}.git", npub(owner), encode_identifier(d))
    }

    /// The relay URL this server expects in announcements.
    pub(crate) fn our_relay_url(&self) -> String {
        crate::config::relay_url_of(&self.config.public_url)
    }

    pub(crate) fn lists_our_clone_url(
        &self,
        a: &Announcement,
        owner: &nostr::prelude::PublicKey,
    ) -> bool {
        // `<base path>/<npub>/`, then the identifier segment, percent-decoded by the
        // same function as the git routes (the URL parser has encoded spaces and
        // non-ASCII already, and clients encode the rest).
        let prefix = format!(
            "{}/{}/",
            self.config.public_url.path().trim_end_matches('/'),
            npub(owner)
        );
        a.clone
            .iter()
            .filter_map(|u| url::Url::parse(u).ok())
            .any(|u| {
                matches!(u.scheme(), "http" | "https")
                    && crate::config::authority_of(&u).as_deref() == Some(self.authority.as_str())
                    && u.path()
                        .trim_end_matches('/')
                        .strip_prefix(prefix.as_str())
                        .and_then(|segment| segment.strip_suffix(".git"))
                        .and_then(|segment| decode_identifier(segment).ok())
                        .is_some_and(|d| d == a.d)
            })
    }

    pub(crate) fn lists_our_relay(&self, a: &Announcement) -> bool {
        let base = self.config.public_url.path().trim_end_matches('/');
        a.relays
            .iter()
            .filter_map(|u| url::Url::parse(u).ok())
            .any(|u| {
                matches!(u.scheme(), "ws" | "wss")
                    && crate::config::authority_of(&u).as_deref() == Some(self.authority.as_str())
                    && u.path().trim_end_matches('/') == base
            })
    }

    fn on_announcement(&mut self, token: ReplyToken, e: Event, origin: Origin) {
        let id = e.id;
        let owner = e.pubkey;
        let Some(a) = Announcement::parse(&e) else {
            return self.reply(
                token,
                id,
                false,
                "invalid: repository announcement has no d tag",
            );
        };
        let d = a.d.clone();
        if !is_safe_identifier(&d) {
            return self.reply(
                token,
                id,
                false,
                format!("invalid: identifier '{d}' cannot name a repository"),
            );
        }
        if let Some(why) = self.curation_refusal_for_repo(&owner, &d) {
            return self.reply(token, id, false, why);
        }
        let existing = self.repos.announcement(&owner, &d).cloned();
        if let Some(ex) = &existing {
            if !Version::new(e.created_at, e.id).supersedes(&Version::new(ex.created_at, ex.id)) {
                // Acknowledged (OK true): its author may delete it by id.
                self.related.accept(&e);
                return self.reply(
                    token,
                    id,
                    true,
                    "duplicate: a newer version of this announcement is already here",
                );
            }
        }
        let clone_ok = self.lists_our_clone_url(&a, &owner);
        let relay_ok = self.lists_our_relay(&a);
        let info = |hosted: bool, status: AnnStatus| AnnInfo {
            id,
            created_at: e.created_at,
            membership: a.membership.clone(),
            clone: a.clone.clone(),
            relays: crate::peers::relay_keys(&a.relays),
            hosted,
            status,
        };
        if clone_ok && relay_ok {
            match existing.as_ref().map(|x| (x.status, x.hosted)) {
                Some((AnnStatus::Served, hosted)) => {
                    if !hosted {
                        self.emit(Effect::CreateRepo {
                            repo: RepoId::new(owner, &d),
                        });
                    }
                    let change =
                        self.repos
                            .put_announcement(owner, &d, info(true, AnnStatus::Served));
                    self.related.accept(&e);
                    self.store(e, ServePath::Direct);
                    self.reply(token, id, true, "");
                    self.after_announcement(&owner, &d, change);
                }
                Some((status, _)) => {
                    // A replacement of a waiting announcement: it takes the old one's place
                    // and restarts the timer (a soft-expired one gets a bare repository
                    // again: within the cap).
                    if status == AnnStatus::SoftExpired {
                        if let Some(why) = self.waiting_repos_refusal() {
                            return self.reply(token, id, false, why);
                        }
                    }
                    if let Some(old) = self
                        .purgatory
                        .announcement_of(&owner, self.idents.get(&d))
                        .map(|x| x.event.id)
                    {
                        self.drop_entry(&old);
                    }
                    if status == AnnStatus::SoftExpired {
                        self.emit(Effect::CreateRepo {
                            repo: RepoId::new(owner, &d),
                        });
                    }
                    let change =
                        self.repos
                            .put_announcement(owner, &d, info(true, AnnStatus::Purgatory));
                    self.enter_purgatory(e, &d, Waiting::Announcement, origin, None);
                    self.reply(token, id, true, PURGATORY_MESSAGE);
                    self.after_announcement(&owner, &d, change);
                }
                None => {
                    let cap = self.config.limits.repos_per_author;
                    if self.repos.hosted_count(&owner) >= cap {
                        return self.reply(
                            token,
                            id,
                            false,
                            format!("rate-limited: you already host {cap} repositories here"),
                        );
                    }
                    if let Some(why) = self.waiting_repos_refusal() {
                        return self.reply(token, id, false, why);
                    }
                    let cap = self.config.limits.repos_per_identifier;
                    if self.repos.announcement_count(&d) >= cap {
                        return self.reply(
                            token,
                            id,
                            false,
                            format!("rate-limited: '{d}' already has {cap} repositories here"),
                        );
                    }
                    let bytes = crate::packed::json_len_of(&e);
                    if let Some(why) = self.purgatory_cap_refusal(&owner, &d, bytes, true) {
                        return self.reply(token, id, false, why);
                    }
                    self.emit(Effect::CreateRepo {
                        repo: RepoId::new(owner, &d),
                    });
                    let change =
                        self.repos
                            .put_announcement(owner, &d, info(true, AnnStatus::Purgatory));
                    self.enter_purgatory(e, &d, Waiting::Announcement, origin, None);
                    self.reply(token, id, true, PURGATORY_MESSAGE);
                    self.after_announcement(&owner, &d, change);
                }
            }
            return;
        }
        // It does not list us: accepted only from a key another owner's listings reach
        // (a candidate before declines are removed: an acceptance or a departure is exactly
        // the announcement that changes a confirmed set).
        let maintainer_elsewhere = self.repos.reached_by_other(&owner, &d);
        let was_waiting = existing
            .as_ref()
            .is_some_and(|x| x.status != AnnStatus::Served);
        if was_waiting || existing.as_ref().is_some_and(|x| x.hosted) {
            self.withdraw(&owner, &d);
        }
        if maintainer_elsewhere {
            let change = self
                .repos
                .put_announcement(owner, &d, info(false, AnnStatus::Served));
            self.related.accept(&e);
            self.store(e, ServePath::Direct);
            self.reply(token, id, true, "");
            self.after_announcement(&owner, &d, change);
            return;
        }
        let missing = match (clone_ok, relay_ok) {
            (false, false) => format!(
                "its clone tag ({}) and its relays tag ({})",
                self.our_clone_url(&owner, &d),
                self.our_relay_url()
            ),
            (false, true) => format!("its clone tag ({})", self.our_clone_url(&owner, &d)),
            _ => format!("its relays tag ({})", self.our_relay_url()),
        };
        self.reply(
            token,
            id,
            false,
            format!("blocked: announcement must list this server in {missing}"),
        );
    }

    /// Takes `(owner, d)` out of hosting: a replacement no longer lists us.
    fn withdraw(&mut self, owner: &nostr::prelude::PublicKey, d: &str) {
        if let Some(old) = self
            .purgatory
            .announcement_of(owner, self.idents.get(d))
            .map(|x| x.event.id)
        {
            self.drop_entry(&old);
        }
        if let Some(a) = self.repos.remove_announcement(owner, d) {
            if a.hosted && a.status != AnnStatus::SoftExpired {
                self.emit(Effect::DeleteRepo {
                    repo: RepoId::new(*owner, d),
                });
            }
            self.related
                .drop_coordinate(&Coordinate::new(event::ANNOUNCEMENT, *owner).identifier(d));
        }
    }

    fn on_state(&mut self, token: ReplyToken, e: Event, origin: Origin) {
        let id = e.id;
        let author = e.pubkey;
        let Some(d) = event::identifier(&e).map(str::to_owned) else {
            return self.reply(token, id, false, "invalid: repository state has no d tag");
        };
        if !self.repos.is_any_candidate(&author, &d) {
            let why = if self.repos.announcements(&d).next().is_none() {
                format!("blocked: no announcement of repository '{d}' is hosted here")
            } else {
                format!("blocked: you are not a maintainer of any announcement of '{d}' here")
            };
            return self.reply(token, id, false, why);
        }
        let key = Version::new(e.created_at, e.id);
        if self
            .repos
            .state(&author, &d)
            .is_some_and(|s| s.order_key() >= key)
        {
            // Acknowledged (OK true): its author may delete it by id.
            self.related.accept(&e);
            return self.reply(
                token,
                id,
                true,
                "duplicate: a newer state of yours is already stored",
            );
        }
        if let Some(p) = self.purgatory.state_of(&author, self.idents.get(&d)) {
            if Version::new(p.event.created_at, p.event.id) > key {
                // Acknowledged (OK true): its author may delete it by id.
                self.related.accept(&e);
                return self.reply(
                    token,
                    id,
                    true,
                    "duplicate: a newer state of yours is waiting",
                );
            }
        }
        let refs = StateRefs::parse(&e);
        if refs.has_refs() {
            let bytes = crate::packed::json_len_of(&e);
            if let Some(why) = self.purgatory_cap_refusal(&author, &d, bytes, false) {
                return self.reply(token, id, false, why);
            }
        }
        if let Some(old) = self
            .purgatory
            .state_of(&author, self.idents.get(&d))
            .map(|p| p.event.id)
        {
            self.supersede_entry(&old, id);
        }
        for owner in self.repos.waiting_owners(&author, &d) {
            self.refresh_announcement(&owner, &d);
        }
        if !refs.has_refs() {
            // Its author stopped tracking state: stored, authoritative for nothing.
            self.repos.put_state(
                author,
                &d,
                StateInfo {
                    id,
                    author,
                    created_at: e.created_at,
                    refs,
                },
            );
            self.related.accept(&e);
            self.store(e, ServePath::Direct);
            self.forget_superseded_by(&id);
            return self.reply(token, id, true, "");
        }
        let malformed = refs.malformed;
        let oids = refs.oids();
        self.enter_purgatory(e, &d, Waiting::State(refs), origin, Some(token));
        if malformed {
            return self.finalize_waiting(&id);
        }
        self.check_objects(&d, oids, Some(id), &[], &author);
    }

    /// Restarts a waiting announcement's timer (reviving a soft-expired one).
    pub(crate) fn refresh_announcement(&mut self, owner: &nostr::prelude::PublicKey, d: &str) {
        let Some(aid) = self
            .purgatory
            .announcement_of(owner, self.idents.get(d))
            .map(|x| x.event.id)
        else {
            return;
        };
        if self
            .repos
            .announcement(owner, d)
            .is_some_and(|a| a.status == AnnStatus::SoftExpired)
        {
            self.emit(Effect::CreateRepo {
                repo: RepoId::new(*owner, d),
            });
        }
        self.repos.set_status(owner, d, AnnStatus::Purgatory);
        let deadline = self.now.plus(self.config.purgatory_expiry);
        self.purgatory.set_expiry(&aid, deadline, None);
        let Some(entry) = self.purgatory.get(&aid) else {
            return;
        };
        let record = entry.persisted.then(|| entry.record());
        if let Some(record) = record {
            self.emit(Effect::Persist { record });
        }
    }
}
