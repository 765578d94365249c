//! Helpers shared by the bench binaries: deterministic keys and object ids, and events
//! fabricated without signatures (the engine never verifies; the runtime does).
#![allow(dead_code)]

use grasp_core::Oid;
use grasp_core::nostr::prelude::*;

/// A deterministic key from a small number.
pub fn keys(n: u64) -> Keys {
    Keys::parse(&format!("{:064x}", n + 1)).unwrap()
}

/// An object id made from a number, e.g. `oid(1)`.
pub fn oid(n: u64) -> Oid {
    Oid::parse(&format!("{n:040x}")).unwrap()
}

/// An event with a made-up id and signature: the engine never verifies (the runtime does),
/// so a benchmark can fabricate events at memory speed. `n` makes the id unique.
pub fn fake(pk: PublicKey, kind: Kind, created_at: u64, tags: Vec<Vec<String>>, n: u64) -> Event {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&n.to_be_bytes());
    id[8..16].copy_from_slice(&(kind.as_u16() as u64).to_be_bytes());
    let sig = Signature::from_slice(&[7u8; 64]).unwrap();
    let tags = Tags::from_list(tags.into_iter().map(|t| Tag::parse(t).unwrap()).collect());
    Event::new(
        EventId::from_slice(&id).unwrap(),
        pk,
        Timestamp::from_secs(created_at),
        kind,
        tags,
        "",
        sig,
    )
}

/// A tag from string slices.
pub fn sv(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}
