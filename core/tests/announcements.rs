//! Scenarios "Announcements and acceptance" (SCENARIOS.md), decided by the engine alone.

mod support;

use grasp_core::nostr::prelude::{Event, Keys, Kind};
use grasp_core::*;
use support::*;

#[test]
fn ann_requires_service_in_clone_and_relays() {
    let mut h = Harness::new();
    let owner = key(1);
    let no_clone = sign(
        &owner,
        Kind::GitRepoAnnouncement,
        10,
        vec![
            s(&["d", "r"]),
            s(&["clone", "https://elsewhere.example/r.git"]),
            s(&["relays", RELAY]),
        ],
    );
    let got = h.send(&no_clone);
    assert_ok(got.clone(), false, "blocked:");
    assert!(got.1.contains("clone tag"), "{got:?}");
    let no_relay = sign(
        &owner,
        Kind::GitRepoAnnouncement,
        11,
        vec![
            s(&["d", "r"]),
            vec!["clone".into(), our_clone(&owner, "r")],
            s(&["relays", "wss://other.example"]),
        ],
    );
    let got = h.send(&no_relay);
    assert_ok(got.clone(), false, "blocked:");
    assert!(
        got.1.contains("relays tag") && !got.1.contains("clone tag"),
        "{got:?}"
    );
    // Our clone URL with another npub does not count.
    let other = key(2);
    let wrong_npub = sign(
        &owner,
        Kind::GitRepoAnnouncement,
        12,
        vec![
            s(&["d", "r"]),
            vec!["clone".into(), our_clone(&other, "r")],
            s(&["relays", "ws://grasp.test/"]),
        ],
    );
    assert_ok(h.send(&wrong_npub), false, "blocked:");
    assert!(
        h.objects.is_empty(),
        "a refused announcement created a repository"
    );
}

#[test]
fn ann_new_goes_to_purgatory() {
    let mut h = Harness::new();
    let owner = key(1);
    let ann = announcement(&owner, "r", 10, &[], &[]);
    assert_ok(h.send(&ann), true, PURGATORY);
    assert!(
        !h.is_stored(&ann.id),
        "a purgatory announcement must not be served"
    );
    assert!(
        h.objects.contains_key(&repo(&owner, "r")),
        "the bare repo is created at once"
    );
    assert!(
        h.journal.keys().any(|k| k.contains(&ann.id.to_hex())),
        "the entry is journalled"
    );
    assert!(h.engine.is_waiting(&ann.id));
}

#[test]
fn ann_released_by_push() {
    let mut h = Harness::new();
    let owner = key(1);
    let ann = announcement(&owner, "r", 10, &[], &[]);
    h.send(&ann);
    let st = state(
        &owner,
        "r",
        11,
        &[("refs/heads/main", oid(1))],
        Some("refs/heads/main"),
    );
    assert_ok(h.send(&st), true, PURGATORY);
    let v = h.push(&repo(&owner, "r"), &[("refs/heads/main", Some(oid(1)))]);
    assert!(v.is_accepted(), "{v:?}");
    assert!(
        h.is_stored(&ann.id) && h.is_stored(&st.id),
        "both released by the push"
    );
    assert!(h.stored.iter().all(|(_, p)| *p == ServePath::Push));
    assert!(
        h.journal.is_empty(),
        "released entries are forgotten: {:?}",
        h.journal.keys()
    );
}

#[test]
fn ann_replacement_served_at_once() {
    let mut h = Harness::new();
    let owner = key(1);
    h.send(&announcement(&owner, "r", 10, &[], &[]));
    let st = state(&owner, "r", 11, &[("refs/heads/main", oid(1))], None);
    h.send(&st);
    h.push(&repo(&owner, "r"), &[("refs/heads/main", Some(oid(1)))]);
    let newer = announcement(&owner, "r", 20, &["https://mirror.example/r.git"], &[]);
    assert_ok(h.send(&newer), true, "");
    assert!(h.is_stored(&newer.id));
    let older = announcement(&owner, "r", 5, &[], &[]);
    assert_ok(h.send(&older), true, "duplicate:");
    assert!(!h.is_stored(&older.id));
}

#[test]
fn ann_soft_expiry_and_revival() {
    let mut h = Harness::new();
    let owner = key(1);
    let ann = announcement(&owner, "r", 10, &[], &[]);
    h.send(&ann);
    let r = repo(&owner, "r");
    h.advance(mins(29));
    assert!(h.objects.contains_key(&r));
    h.advance(mins(1));
    assert!(
        !h.objects.contains_key(&r),
        "the bare repo is deleted at 30 min"
    );
    assert!(h.engine.is_waiting(&ann.id), "the event is kept");
    h.advance(mins(15));
    let st = state(&owner, "r", 11, &[("refs/heads/main", oid(1))], None);
    assert_ok(h.send(&st), true, PURGATORY);
    assert!(
        h.objects.contains_key(&r),
        "a late state recreates the repo"
    );
    h.advance(mins(29));
    assert!(h.objects.contains_key(&r), "and restarts the 30 min timer");
    assert!(
        h.push(&r, &[("refs/heads/main", Some(oid(1)))])
            .is_accepted()
    );
    assert!(h.is_stored(&ann.id) && h.is_stored(&st.id));
}

#[test]
fn ann_forgotten_after_24h() {
    let mut h = Harness::new();
    let owner = key(1);
    let ann = announcement(&owner, "r", 10, &[], &[]);
    h.send(&ann);
    h.advance(mins(30 + 24 * 60));
    assert!(!h.engine.is_waiting(&ann.id), "forgotten after 24 h");
    assert!(
        h.journal.keys().any(|k| k.starts_with("x:")),
        "remembered as expired"
    );
    assert_ok(
        h.send_from(&ann, Origin::Sync),
        false,
        "invalid: previously expired",
    );
    assert!(!h.objects.contains_key(&repo(&owner, "r")));
}

fn served_repo(h: &mut Harness, owner: &Keys, d: &str) -> Event {
    let ann = announcement(owner, d, 10, &[], &[]);
    h.send(&ann);
    h.send(&state(owner, d, 11, &[("refs/heads/main", oid(1))], None));
    assert!(
        h.push(&repo(owner, d), &[("refs/heads/main", Some(oid(1)))])
            .is_accepted()
    );
    assert!(h.is_stored(&ann.id));
    ann
}

#[test]
fn related_events_accepted() {
    let mut h = Harness::new();
    let owner = key(1);
    let ann = served_repo(&mut h, &owner, "r");
    let coord = format!("30617:{}:r", owner.public_key().to_hex());
    let user = key(5);
    let issue = sign(&user, Kind::GitIssue, 20, vec![s(&["a", &coord])]);
    let patch = sign(&user, Kind::GitPatch, 21, vec![s(&["a", &coord])]);
    assert_ok(h.send(&issue), true, "");
    assert_ok(h.send(&patch), true, "");
    let comment = sign(
        &user,
        Kind::Comment,
        22,
        vec![s(&["E", &issue.id.to_hex()])],
    );
    assert_ok(h.send(&comment), true, "");
    let status = sign(
        &owner,
        Kind::Custom(1631),
        23,
        vec![s(&["e", &patch.id.to_hex()])],
    );
    assert_ok(h.send(&status), true, "");
    let unknown = format!("30617:{}:nope", owner.public_key().to_hex());
    let stray = sign(&user, Kind::GitIssue, 24, vec![s(&["a", &unknown])]);
    assert_ok(h.send(&stray), false, "blocked:");
    assert!(h.is_stored(&ann.id));
}

#[test]
fn ann_maintainer_without_service_accepted() {
    let mut h = Harness::new();
    let (owner, m) = (key(1), key(2));
    h.send(&announcement(&owner, "r", 10, &[], &[&m]));
    let elsewhere = sign(
        &m,
        Kind::GitRepoAnnouncement,
        11,
        vec![
            s(&["d", "r"]),
            s(&["clone", "https://m.example/r.git"]),
            s(&["relays", "wss://m.example"]),
        ],
    );
    assert_ok(h.send(&elsewhere), true, "");
    assert!(h.is_stored(&elsewhere.id), "served at once");
    assert!(
        !h.objects.contains_key(&repo(&m, "r")),
        "no bare repo for it"
    );
}

#[test]
fn ann_timer_reset_and_withdrawal() {
    let mut h = Harness::new();
    let owner = key(1);
    let r = repo(&owner, "r");
    h.send(&announcement(&owner, "r", 10, &[], &[]));
    h.advance(mins(20));
    h.send(&state(
        &owner,
        "r",
        11,
        &[("refs/heads/main", oid(1))],
        None,
    )); // resets
    h.advance(mins(20));
    assert!(h.objects.contains_key(&r), "a state restarts the timer");
    h.send(&announcement(
        &owner,
        "r",
        12,
        &["https://x.example/r.git"],
        &[],
    )); // resets again
    h.advance(mins(25));
    assert!(
        h.objects.contains_key(&r),
        "a replacement restarts the timer"
    );
    let withdrawn = sign(
        &owner,
        Kind::GitRepoAnnouncement,
        13,
        vec![
            s(&["d", "r"]),
            s(&["clone", "https://x.example/r.git"]),
            s(&["relays", "wss://x.example"]),
        ],
    );
    assert_ok(h.send(&withdrawn), false, "blocked:");
    assert!(
        !h.objects.contains_key(&r),
        "a replacement that no longer lists us takes it out"
    );
    assert!(
        h.engine
            .purgatory_view()
            .iter()
            .all(|w| w.kind != "announcement")
    );
}

#[test]
fn related_by_any_reference() {
    let mut h = Harness::new();
    let owner = key(1);
    served_repo(&mut h, &owner, "r");
    let coord = format!("30617:{}:r", owner.public_key().to_hex());
    let user = key(5);
    let future_id = sign(&user, Kind::TextNote, 40, vec![s(&["t", "later"])]);
    let issue = sign(
        &user,
        Kind::GitIssue,
        20,
        vec![s(&["A", &coord]), s(&["q", &future_id.id.to_hex()])],
    );
    assert_ok(h.send(&issue), true, "");
    let reply = sign(
        &user,
        Kind::Comment,
        21,
        vec![s(&["e", &issue.id.to_hex()])],
    );
    let reply2 = sign(
        &user,
        Kind::Comment,
        22,
        vec![s(&["E", &reply.id.to_hex()])],
    );
    let quote = sign(&user, Kind::TextNote, 23, vec![s(&["q", &coord])]);
    assert_ok(h.send(&reply), true, "");
    assert_ok(h.send(&reply2), true, "");
    assert_ok(h.send(&quote), true, "");
    assert_ok(h.send(&future_id), true, ""); // forward: the issue q-tagged it first
}

#[test]
fn p_tag_not_a_reference() {
    let mut h = Harness::new();
    let owner = key(1);
    served_repo(&mut h, &owner, "r");
    let user = key(5);
    let other_d = format!("30617:{}:other", owner.public_key().to_hex());
    let c = sign(
        &user,
        Kind::Comment,
        20,
        vec![s(&["p", &owner.public_key().to_hex()]), s(&["A", &other_d])],
    );
    assert_ok(h.send(&c), false, "blocked:");
    let issue = sign(&user, Kind::GitIssue, 21, vec![s(&["a", &other_d])]);
    assert_ok(h.send(&issue), false, "blocked:");
}

#[test]
fn duplicate_in_purgatory() {
    let mut h = Harness::new();
    let owner = key(1);
    let ann = announcement(&owner, "r", 10, &[], &[]);
    h.send(&ann);
    let before = h.trace.len();
    assert_ok(h.send(&ann), true, "duplicate: in purgatory");
    let after: Vec<_> = h.trace[before..]
        .iter()
        .filter(|(_, e)| !matches!(e, Effect::Reply { .. }))
        .collect();
    assert!(after.is_empty(), "a duplicate changes nothing: {after:?}");
}

#[test]
fn purgatory_never_leaks() {
    let mut h = Harness::new();
    let owner = key(1);
    let ann = announcement(&owner, "r", 10, &[], &[]);
    let st = state(&owner, "r", 11, &[("refs/heads/main", oid(1))], None);
    h.send(&ann);
    h.send(&st);
    h.advance(mins(10));
    assert!(
        !h.is_stored(&ann.id) && !h.is_stored(&st.id),
        "nothing waiting reaches the store before release"
    );
}

#[test]
fn bad_signature_refused() {
    let owner = key(1);
    let mut e = announcement(&owner, "r", 10, &[], &[]);
    e.content = "tampered".into();
    assert!(
        VerifiedEvent::verify(e).is_err(),
        "an event whose id does not match is refused before the engine"
    );
    let mut e2 = announcement(&owner, "r", 10, &[], &[]);
    e2.sig = announcement(&key(2), "r", 10, &[], &[]).sig;
    assert!(
        VerifiedEvent::verify(e2).is_err(),
        "a wrong signature is refused"
    );
}

#[test]
fn unsafe_identifier_refused() {
    let mut h = Harness::new();
    let owner = key(1);
    for d in ["../x", "a/b", ".git"] {
        let ann = announcement(&owner, d, 10, &[], &[]);
        assert_ok(h.send(&ann), false, "invalid:");
    }
    assert!(h.objects.is_empty());
}
