//! Signed NIP-34 events for the workload: deterministic keys, and builders for
//! announcements, states, pull requests and deletions.
//!
//! Signatures are real (schnorr over the event id) but are not verified again: the sim
//! hands the engine [`grasp_core::VerifiedEvent::assume_verified`] events it signed itself.

use grasp_core::Oid;
use grasp_core::nostr::prelude::{
    Event, EventBuilder, EventId, FinalizeUnsignedEvent, Keys, Kind, PublicKey, Tag, Timestamp,
};
use std::cell::RefCell;

/// The `created_at` of simulated time zero (2023-11-14).
pub const EPOCH_SECS: u64 = 1_700_000_000;

thread_local! {
    static KEYS: RefCell<Vec<Keys>> = const { RefCell::new(Vec::new()) };
}

/// Initializes, outside any simulation, everything that draws OS randomness on first
/// use in a thread (the secp256k1 context, std's hash seeds, the key cache), so that a
/// seed consumes the simulator's RNG identically whether it runs first or later.
pub fn warm_up() {
    let _ = std::collections::HashMap::<u8, u8>::new();
    let _ = sign(0, Kind::TextNote, vec![tag(&["t", "warm"])], 0);
}

/// The keys of simulated user `n` (deterministic: secret key `n + 1`), cached per thread.
pub fn user(n: usize) -> Keys {
    KEYS.with(|k| {
        let mut k = k.borrow_mut();
        while k.len() <= n {
            let i = k.len();
            k.push(Keys::parse(&format!("{:064x}", i + 1)).expect("a valid secret key"));
        }
        k[n].clone()
    })
}

/// The public key of simulated user `n`.
pub fn pubkey(n: usize) -> PublicKey {
    user(n).public_key()
}

/// Signs `kind` with `tags` as user `n` at `created_at` (seconds after [`EPOCH_SECS`]).
pub fn sign(n: usize, kind: Kind, tags: Vec<Vec<String>>, created_at: u64) -> Event {
    let keys = user(n);
    let tags: Vec<Tag> = tags
        .into_iter()
        .map(|t| Tag::parse(t).expect("a non-empty tag"))
        .collect();
    let mut unsigned = EventBuilder::new(kind, "")
        .tags(tags)
        .custom_created_at(Timestamp::from_secs(EPOCH_SECS + created_at))
        .finalize_unsigned(keys.public_key());
    let id: EventId = unsigned.id();
    let sig = keys.sign_schnorr(id.as_bytes());
    Event::new(
        id,
        unsigned.pubkey,
        unsigned.created_at,
        unsigned.kind,
        unsigned.tags,
        unsigned.content,
        sig,
    )
}

fn tag(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| (*s).to_owned()).collect()
}

/// A repository announcement (30617) by `owner` for `d`.
pub fn announcement(
    owner: usize,
    d: &str,
    clone: &[String],
    relay: &str,
    maintainers: &[usize],
    created_at: u64,
) -> Event {
    let mut clone_tag = vec!["clone".to_owned()];
    clone_tag.extend(clone.iter().cloned());
    let mut tags = vec![tag(&["d", d]), clone_tag, tag(&["relays", relay])];
    if !maintainers.is_empty() {
        let mut m = vec!["maintainers".to_owned()];
        m.extend(maintainers.iter().map(|u| pubkey(*u).to_hex()));
        tags.push(m);
    }
    sign(owner, Kind::GitRepoAnnouncement, tags, created_at)
}

/// A repository state (30618) by `author` for `d`: each `(ref, oid)` plus `HEAD` at the
/// first branch.
pub fn state(author: usize, d: &str, refs: &[(String, Oid)], created_at: u64) -> Event {
    let mut tags = vec![tag(&["d", d])];
    for (name, oid) in refs {
        tags.push(vec![name.clone(), oid.to_string()]);
    }
    if let Some((head, _)) = refs.iter().find(|(n, _)| n.starts_with("refs/heads/")) {
        tags.push(vec!["HEAD".into(), format!("ref: {head}")]);
    }
    sign(author, Kind::RepoState, tags, created_at)
}

/// A pull request (1618) by `author` to `(owner, d)` with tip `tip`, fetchable from `clone`.
pub fn pull_request(
    author: usize,
    owner: usize,
    d: &str,
    tip: Oid,
    clone: &[String],
    created_at: u64,
) -> Event {
    let a = format!("30617:{}:{d}", pubkey(owner).to_hex());
    let mut clone_tag = vec!["clone".to_owned()];
    clone_tag.extend(clone.iter().cloned());
    let tags = vec![
        tag(&["a", &a]),
        tag(&["c", &tip.to_string()]),
        clone_tag,
        tag(&["subject", "sim"]),
    ];
    sign(author, Kind::GitPullRequest, tags, created_at)
}

/// A deletion (kind 5) by `author` of `ids`.
pub fn deletion(author: usize, ids: &[EventId], created_at: u64) -> Event {
    let tags = ids.iter().map(|id| tag(&["e", &id.to_hex()])).collect();
    sign(author, Kind::EventDeletion, tags, created_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_validly_signed_and_deterministic_in_id() {
        let oid = Oid::parse(&"ab".repeat(20)).unwrap();
        let a = state(1, "r", &[("refs/heads/main".into(), oid)], 5);
        let b = state(1, "r", &[("refs/heads/main".into(), oid)], 5);
        assert_eq!(a.id, b.id);
        a.verify().expect("a valid signature");
        assert_eq!(a.pubkey, pubkey(1));
    }
}
