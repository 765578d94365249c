//! NIP-34 (and friends) event builders, signed with nostr-sdk.
//!
//! Tags are written as plain string lists, the way they appear on the wire, so a test
//! reads like the event it sends.

use nostr_sdk::prelude::{Event, EventBuilder, EventId, Keys, Kind, PublicKey, Tag, Timestamp};

use crate::server::Graspd;

/// Kind of a repository announcement.
pub const ANNOUNCEMENT: u16 = 30617;
/// Kind of a repository state.
pub const STATE: u16 = 30618;
/// Kind of a patch.
pub const PATCH: u16 = 1617;
/// Kind of a pull request.
pub const PULL_REQUEST: u16 = 1618;
/// Kind of a pull request update.
pub const PULL_REQUEST_UPDATE: u16 = 1619;
/// Kind of an issue.
pub const ISSUE: u16 = 1621;
/// Kind of an "open" status.
pub const STATUS_OPEN: u16 = 1630;
/// Kind of a NIP-22 comment.
pub const COMMENT: u16 = 1111;
/// Kind of a deletion request.
pub const DELETION: u16 = 5;
/// Kind of a short text note.
pub const NOTE: u16 = 1;

/// A clone URL on a host that refuses connections (port 9 on loopback), for
/// announcements that must not list this server. Never leaves the machine.
pub fn elsewhere_clone(owner: &PublicKey, d: &str) -> String {
    format!("http://127.0.0.1:9/{}/{d}.git", crate::server::npub(owner))
}

/// A relay URL that refuses connections (see [`elsewhere_clone`]).
pub const ELSEWHERE_RELAY: &str = "ws://127.0.0.1:9";

/// Now, as a nostr timestamp.
pub fn now() -> Timestamp {
    Timestamp::now()
}

/// Now plus `offset` seconds (negative: in the past).
pub fn at(offset: i64) -> Timestamp {
    let now = Timestamp::now().as_secs() as i64;
    Timestamp::from((now + offset).max(0) as u64)
}

/// Signs an event of `kind` with `tags` (each a wire tag: name then values).
pub fn sign(
    keys: &Keys,
    kind: u16,
    content: &str,
    tags: Vec<Vec<String>>,
    created_at: Timestamp,
) -> Event {
    let tags: Vec<Tag> = tags
        .into_iter()
        .map(|t| Tag::parse(t).expect("non-empty tag"))
        .collect();
    EventBuilder::new(Kind::from(kind), content)
        .tags(tags)
        .custom_created_at(created_at)
        .sign_with_keys(keys)
        .expect("signing")
}

/// Builds a wire tag from string slices.
pub fn tag(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| (*s).to_owned()).collect()
}

/// `30617:<owner hex>:<d>`.
pub fn coordinate(owner: &PublicKey, d: &str) -> String {
    format!("{ANNOUNCEMENT}:{}:{d}", owner.to_hex())
}

/// `30618:<author hex>:<d>`.
pub fn state_coordinate(author: &PublicKey, d: &str) -> String {
    format!("{STATE}:{}:{d}", author.to_hex())
}

/// A repository announcement (kind 30617), built step by step.
#[derive(Debug, Clone)]
pub struct Announcement {
    /// The `d` identifier.
    pub d: String,
    /// URLs of the `clone` tag (one tag, several values).
    pub clone: Vec<String>,
    /// URLs of the `relays` tag.
    pub relays: Vec<String>,
    /// The `maintainers` tag (omitted when empty).
    pub maintainers: Vec<PublicKey>,
    /// Further tags.
    pub extra: Vec<Vec<String>>,
    /// `created_at`.
    pub created_at: Timestamp,
}

impl Announcement {
    /// An announcement by `owner` that lists `server` in both `clone` and `relays`.
    pub fn on(server: &Graspd, owner: &PublicKey, d: &str) -> Self {
        Self {
            d: d.to_owned(),
            clone: vec![server.repo_url(owner, d)],
            relays: vec![server.relay_url()],
            maintainers: Vec::new(),
            extra: Vec::new(),
            created_at: now(),
        }
    }

    /// An announcement that lists only another (unreachable, loopback) server.
    pub fn elsewhere(owner: &PublicKey, d: &str) -> Self {
        Self {
            d: d.to_owned(),
            clone: vec![elsewhere_clone(owner, d)],
            relays: vec![ELSEWHERE_RELAY.to_owned()],
            maintainers: Vec::new(),
            extra: Vec::new(),
            created_at: now(),
        }
    }

    /// Sets the maintainers.
    pub fn maintainers(mut self, maintainers: &[PublicKey]) -> Self {
        self.maintainers = maintainers.to_vec();
        self
    }

    /// Adds a tag.
    pub fn with_tag(mut self, parts: &[&str]) -> Self {
        self.extra.push(tag(parts));
        self
    }

    /// Sets `created_at`.
    pub fn created_at(mut self, created_at: Timestamp) -> Self {
        self.created_at = created_at;
        self
    }

    /// Signs it.
    pub fn sign(&self, keys: &Keys) -> Event {
        let mut tags = vec![
            tag(&["d", &self.d]),
            tag(&["name", &self.d]),
            tag(&["description", "a test repository"]),
        ];
        if !self.clone.is_empty() {
            let mut clone = vec!["clone".to_owned()];
            clone.extend(self.clone.iter().cloned());
            tags.push(clone);
        }
        if !self.relays.is_empty() {
            let mut relays = vec!["relays".to_owned()];
            relays.extend(self.relays.iter().cloned());
            tags.push(relays);
        }
        if !self.maintainers.is_empty() {
            let mut maintainers = vec!["maintainers".to_owned()];
            maintainers.extend(self.maintainers.iter().map(PublicKey::to_hex));
            tags.push(maintainers);
        }
        tags.extend(self.extra.iter().cloned());
        sign(keys, ANNOUNCEMENT, "", tags, self.created_at)
    }
}

/// A repository state (kind 30618): `refs` as `(ref name, object id)`, `head` as the
/// `HEAD` tag value (e.g. `"ref: refs/heads/main"`), if any.
pub fn state(
    keys: &Keys,
    d: &str,
    refs: &[(&str, &str)],
    head: Option<&str>,
    created_at: Timestamp,
) -> Event {
    let mut tags = vec![tag(&["d", d])];
    for (name, oid) in refs {
        tags.push(tag(&[name, oid]));
    }
    if let Some(head) = head {
        tags.push(tag(&["HEAD", head]));
    }
    sign(keys, STATE, "", tags, created_at)
}

/// A state with `refs/heads/main` at `oid` and `HEAD` on it.
pub fn main_state(keys: &Keys, d: &str, oid: &str, created_at: Timestamp) -> Event {
    state(
        keys,
        d,
        &[("refs/heads/main", oid)],
        Some("ref: refs/heads/main"),
        created_at,
    )
}

/// A pull request (kind 1618) tagging the repositories `repos` (coordinates), with
/// tip `tip` and `clone` URLs.
pub fn pull_request(
    keys: &Keys,
    repos: &[String],
    tip: &str,
    clone: &[String],
    created_at: Timestamp,
) -> Event {
    let mut tags: Vec<Vec<String>> = repos.iter().map(|c| tag(&["a", c])).collect();
    tags.push(tag(&["subject", "a test pull request"]));
    tags.push(tag(&["c", tip]));
    if !clone.is_empty() {
        let mut c = vec!["clone".to_owned()];
        c.extend(clone.iter().cloned());
        tags.push(c);
    }
    sign(keys, PULL_REQUEST, "please merge", tags, created_at)
}

/// A pull request update (kind 1619) for `pr`, with the new tip `tip`.
pub fn pull_request_update(
    keys: &Keys,
    repos: &[String],
    pr: &Event,
    tip: &str,
    clone: &[String],
    created_at: Timestamp,
) -> Event {
    let mut tags: Vec<Vec<String>> = repos.iter().map(|c| tag(&["a", c])).collect();
    let pr_id = pr.id.to_hex();
    let pr_author = pr.pubkey.to_hex();
    tags.push(tag(&["E", &pr_id]));
    tags.push(tag(&["P", &pr_author]));
    tags.push(tag(&["e", &pr_id]));
    tags.push(tag(&["c", tip]));
    if !clone.is_empty() {
        let mut c = vec!["clone".to_owned()];
        c.extend(clone.iter().cloned());
        tags.push(c);
    }
    sign(keys, PULL_REQUEST_UPDATE, "", tags, created_at)
}

/// An issue (kind 1621) on the repository `repo` (a coordinate).
pub fn issue(keys: &Keys, repo: &str, subject: &str) -> Event {
    sign(
        keys,
        ISSUE,
        "something is wrong",
        vec![tag(&["a", repo]), tag(&["subject", subject])],
        now(),
    )
}

/// A patch (kind 1617) on the repository `repo`.
pub fn patch(keys: &Keys, repo: &str) -> Event {
    sign(
        keys,
        PATCH,
        "From 0000 Mon Sep 17 00:00:00 2001\nSubject: [PATCH] test\n\n---\n",
        vec![tag(&["a", repo]), tag(&["t", "root"])],
        now(),
    )
}

/// A NIP-22 comment (kind 1111) on the root event `root` (in repository `repo`).
pub fn comment(keys: &Keys, root: &Event, repo: &str) -> Event {
    let id = root.id.to_hex();
    let pk = root.pubkey.to_hex();
    let kind = root.kind.as_u16().to_string();
    sign(
        keys,
        COMMENT,
        "a comment",
        vec![
            tag(&["E", &id, "", &pk]),
            tag(&["K", &kind]),
            tag(&["P", &pk]),
            tag(&["A", repo]),
            tag(&["e", &id, "", &pk]),
            tag(&["k", &kind]),
            tag(&["p", &pk]),
        ],
        now(),
    )
}

/// A status (kind 1630, open) on `root`.
pub fn status_open(keys: &Keys, root: &Event, repo: &str) -> Event {
    sign(
        keys,
        STATUS_OPEN,
        "",
        vec![
            tag(&["e", &root.id.to_hex(), "", "root"]),
            tag(&["a", repo]),
        ],
        now(),
    )
}

/// A kind-1 note with exactly `tags`.
pub fn note(keys: &Keys, content: &str, tags: Vec<Vec<String>>) -> Event {
    sign(keys, NOTE, content, tags, now())
}

/// A deletion request (kind 5) for events by id and/or coordinate, with `k` tags.
pub fn deletion(
    keys: &Keys,
    ids: &[EventId],
    coordinates: &[String],
    kinds: &[u16],
    created_at: Timestamp,
) -> Event {
    let mut tags: Vec<Vec<String>> = ids.iter().map(|id| tag(&["e", &id.to_hex()])).collect();
    tags.extend(coordinates.iter().map(|c| tag(&["a", c])));
    tags.extend(kinds.iter().map(|k| tag(&["k", &k.to_string()])));
    sign(keys, DELETION, "deleted by the test", tags, created_at)
}
