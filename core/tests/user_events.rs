//! Events users' clients send to a GRASP relay (issue 13): a GRASP server list naming
//! this server, profiles and relay lists of hosted repositories' maintainers, and NIP-70
//! protected events (refused: no NIP-42 here).

mod support;

use grasp_core::nostr::prelude::Kind;
use support::*;

fn served(
    h: &mut Harness,
    owner: &grasp_core::nostr::prelude::Keys,
    m: &[&grasp_core::nostr::prelude::Keys],
) {
    h.send(&announcement(owner, "r", 10, &[], m));
    h.send(&state(owner, "r", 11, &[("refs/heads/main", oid(1))], None));
    assert!(
        h.push(&repo(owner, "r"), &[("refs/heads/main", Some(oid(1)))])
            .is_accepted()
    );
}

#[test]
fn a_grasp_server_list_naming_this_server_is_served() {
    let mut h = Harness::new();
    let user = key(9);
    let ours = sign(
        &user,
        Kind::Custom(10317),
        10,
        vec![s(&["g", RELAY]), s(&["g", "wss://other.example"])],
    );
    assert_ok(h.send(&ours), true, "");
    assert!(h.is_stored(&ours.id));
    let theirs = sign(
        &user,
        Kind::Custom(10317),
        11,
        vec![s(&["g", "wss://other.example"])],
    );
    assert_ok(h.send(&theirs), false, "blocked:");
}

#[test]
fn profiles_and_relay_lists_of_maintainers_are_accepted() {
    let mut h = Harness::new();
    let (owner, m, stranger) = (key(1), key(2), key(3));
    served(&mut h, &owner, &[&m]);
    // Only invited: m has not listed the owner back.
    let early = sign(&m, Kind::Metadata, 15, vec![]);
    assert_ok(h.send(&early), false, "blocked:");
    let accepts = elsewhere(&m, "r", 11, &[maintainers_tag(&[&owner])]);
    assert_ok(h.send(&accepts), true, "");
    for k in [&owner, &m] {
        for kind in [Kind::Metadata, Kind::RelayList] {
            let e = sign(k, kind, 20, vec![]);
            assert_ok(h.send(&e), true, "");
            assert!(h.is_stored(&e.id), "{kind} of a maintainer");
        }
    }
    let e = sign(&stranger, Kind::Metadata, 20, vec![]);
    assert_ok(h.send(&e), false, "blocked:");
    // Dropped from the set: no longer accepted.
    h.send(&announcement(&owner, "r", 30, &[], &[]));
    let later = sign(&m, Kind::Metadata, 40, vec![]);
    assert_ok(h.send(&later), false, "blocked:");
}

#[test]
fn protected_events_are_refused_with_auth_required() {
    let mut h = Harness::new();
    let owner = key(1);
    served(&mut h, &owner, &[]);
    let coord = format!("30617:{}:r", owner.public_key().to_hex());
    let issue = sign(
        &key(4),
        Kind::GitIssue,
        20,
        vec![s(&["a", &coord]), s(&["-"])],
    );
    let (ok, msg) = h.send(&issue);
    assert!(
        !ok && msg.starts_with("auth-required:") && msg.contains("NIP-70"),
        "{msg}"
    );
    assert!(!h.is_stored(&issue.id));
}
