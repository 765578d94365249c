//! NIP-01 order of replaceable and addressable versions (issue 13): newest `created_at`
//! wins and, within one second, the lowest event id — as the event store and ngit apply
//! it (ngit mines a nonce until a same-second state's id is lower than the previous one's).

mod support;

use grasp_core::nostr::prelude::{Event, Keys};
use grasp_core::*;
use support::*;

/// Two states by `author` for `d` created in the same second, each naming its own commit
/// on main: `(lower id, higher id)`.
fn same_second_pair(author: &Keys, d: &str) -> (Event, Event) {
    let a = state(author, d, 50, &[("refs/heads/main", oid(1))], None);
    let b = state(author, d, 50, &[("refs/heads/main", oid(2))], None);
    if a.id < b.id { (a, b) } else { (b, a) }
}

fn main_of(e: &Event) -> Oid {
    let tag = e
        .tags
        .iter()
        .find(|t| t.as_slice().first().map(String::as_str) == Some("refs/heads/main"))
        .expect("a main ref");
    Oid::parse(&tag.as_slice()[1]).unwrap()
}

fn hosted(h: &mut Harness, owner: &Keys) {
    h.send(&announcement(owner, "r", 10, &[], &[]));
}

/// The push of the lower-id state's refs is accepted and the other refused, whichever
/// order the two arrived in, whether they wait for data or not.
#[test]
fn same_second_states_lowest_id_rules_pushes() {
    for lower_first in [true, false] {
        for data_present in [false, true] {
            let mut h = Harness::new();
            let owner = key(1);
            hosted(&mut h, &owner);
            let (low, high) = same_second_pair(&owner, "r");
            let r = repo(&owner, "r");
            if data_present {
                let objs = h.objects.entry(r.clone()).or_default();
                objs.insert(main_of(&low));
                objs.insert(main_of(&high));
            }
            let (first, second) = if lower_first {
                (&low, &high)
            } else {
                (&high, &low)
            };
            let case = format!("lower first: {lower_first}, data present: {data_present}");
            h.send(first);
            let (ok, msg) = h.send(second);
            assert!(ok, "{case}: {msg}");
            if lower_first {
                assert!(
                    msg.starts_with("duplicate:"),
                    "{case}: the higher id is superseded: {msg}"
                );
            }
            if !data_present {
                let wrong = h.push(&r, &[("refs/heads/main", Some(main_of(&high)))]);
                assert!(
                    !wrong.is_accepted(),
                    "{case}: the higher id's refs are refused"
                );
                let right = h.push(&r, &[("refs/heads/main", Some(main_of(&low)))]);
                assert!(right.is_accepted(), "{case}: {right:?}");
            }
            assert!(h.is_stored(&low.id), "{case}: the lower id is served");
            assert_eq!(
                h.refs.get(&r).and_then(|m| m.get("refs/heads/main")),
                Some(&main_of(&low)),
                "{case}: the repository follows the lower id"
            );
        }
    }
}

/// Same-second announcements: the lowest id is the current one.
#[test]
fn same_second_announcements_lowest_id_wins() {
    let owner = key(1);
    let m = key(2);
    let a = announcement(&owner, "r", 10, &[], &[&m]);
    let b = announcement(&owner, "r", 10, &[], &[]);
    let (low, high) = if a.id < b.id { (a, b) } else { (b, a) };
    for order in [[&low, &high], [&high, &low]] {
        let mut h = Harness::new();
        h.send(order[0]);
        let (ok, msg) = h.send(order[1]);
        assert!(ok, "{msg}");
        if order[0].id == low.id {
            assert!(
                msg.starts_with("duplicate:"),
                "the higher id is superseded: {msg}"
            );
        } else {
            assert!(
                !msg.starts_with("duplicate:"),
                "the lower id replaces: {msg}"
            );
        }
    }
}

/// A deletion naming a version graspd acknowledged as superseded (`duplicate:`) is
/// accepted, and a later copy of that version is never served.
#[test]
fn deleting_an_acknowledged_superseded_version_is_accepted_and_remembered() {
    let mut h = Harness::new();
    let owner = key(1);
    hosted(&mut h, &owner);
    let newer = state(&owner, "r", 60, &[("refs/heads/main", oid(1))], None);
    let older = state(&owner, "r", 50, &[("refs/heads/main", oid(2))], None);
    h.send(&newer);
    assert_ok(h.send(&older), true, "duplicate:");
    let deletion = sign(
        &owner,
        grasp_core::nostr::prelude::Kind::EventDeletion,
        70,
        vec![s(&["e", &older.id.to_hex()])],
    );
    assert_ok(h.send(&deletion), true, "");
    let (_, msg) = h.send(&older);
    assert!(!h.is_stored(&older.id), "a later copy is not served: {msg}");
}
