//! Scenarios "State events and push authorization" (SCENARIOS.md).

mod support;

use grasp_core::nostr::prelude::{Keys, Kind};
use grasp_core::*;
use support::*;

fn setup(h: &mut Harness, owner: &Keys, maintainers: &[&Keys]) {
    let ann = announcement(owner, "r", 10, &[], maintainers);
    assert_ok(h.send(&ann), true, PURGATORY);
}

#[test]
fn state_first_then_push() {
    let mut h = Harness::new();
    let owner = key(1);
    setup(&mut h, &owner, &[]);
    let st = state(
        &owner,
        "r",
        11,
        &[("refs/heads/main", oid(1)), ("refs/heads/dev", oid(2))],
        Some("refs/heads/dev"),
    );
    assert_ok(h.send(&st), true, PURGATORY);
    let r = repo(&owner, "r");
    let v = h.push(
        &r,
        &[
            ("refs/heads/main", Some(oid(1))),
            ("refs/heads/dev", Some(oid(2))),
        ],
    );
    assert!(v.is_accepted(), "{v:?}");
    assert!(h.is_stored(&st.id));
    assert_eq!(
        h.heads.get(&r).map(String::as_str),
        Some("refs/heads/dev"),
        "HEAD follows the state"
    );
}

#[test]
fn push_first_then_state() {
    let mut h = Harness::new();
    let owner = key(1);
    setup(&mut h, &owner, &[]);
    let r = repo(&owner, "r");
    let v = h.push(&r, &[("refs/heads/main", Some(oid(1)))]);
    assert!(!v.is_accepted());
    let why = v.refs[0].1.clone().unwrap_err();
    assert!(why.contains("no state event"), "a readable reason: {why}");
    // The state is stored at once (its data is not here yet, so it waits) ...
    let st = state(&owner, "r", 11, &[("refs/heads/main", oid(1))], None);
    assert_ok(h.send(&st), true, PURGATORY);
    assert!(
        h.push(&r, &[("refs/heads/main", Some(oid(1)))])
            .is_accepted()
    );
    // ... and a later push matching a *stored* state is accepted too.
    let st2 = state(&owner, "r", 12, &[("refs/heads/main", oid(2))], None);
    h.objects.get_mut(&r).unwrap().insert(oid(2)); // objects uploaded by an earlier push
    assert_ok(h.send(&st2), true, "");
    assert!(h.is_stored(&st2.id), "data already present: stored at once");
    assert_eq!(
        h.refs[&r].get("refs/heads/main"),
        Some(&oid(2)),
        "aligned without a push"
    );
    assert!(
        h.push(&r, &[("refs/heads/main", Some(oid(2)))])
            .is_accepted()
    );
}

#[test]
fn push_must_fully_align() {
    let mut h = Harness::new();
    let owner = key(1);
    setup(&mut h, &owner, &[]);
    let r = repo(&owner, "r");
    h.send(&state(
        &owner,
        "r",
        11,
        &[("refs/heads/main", oid(1)), ("refs/heads/dev", oid(2))],
        None,
    ));
    let missing = h.push(&r, &[("refs/heads/main", Some(oid(1)))]);
    assert!(!missing.is_accepted(), "misses dev");
    assert!(
        missing.refs[0]
            .1
            .clone()
            .unwrap_err()
            .contains("refs/heads/dev")
    );
    let extra = h.push(
        &r,
        &[
            ("refs/heads/main", Some(oid(1))),
            ("refs/heads/dev", Some(oid(2))),
            ("refs/heads/extra", Some(oid(3))),
        ],
    );
    assert!(!extra.is_accepted(), "an extra branch");
    assert!(
        extra.refs[0]
            .1
            .clone()
            .unwrap_err()
            .contains("refs/heads/extra")
    );
    assert!(
        h.push(
            &r,
            &[
                ("refs/heads/main", Some(oid(1))),
                ("refs/heads/dev", Some(oid(2)))
            ]
        )
        .is_accepted()
    );
    // A branch the state omits may be deleted.
    h.refs
        .get_mut(&r)
        .unwrap()
        .insert("refs/heads/stale".into(), oid(1));
    assert!(h.push(&r, &[("refs/heads/stale", None)]).is_accepted());
}

#[test]
fn maintainer_push_accepted() {
    let mut h = Harness::listed();
    let (owner, m, x) = (key(1), key(2), key(3));
    setup(&mut h, &owner, &[&m]);
    let r = repo(&owner, "r");
    assert_ok(
        h.send(&state(&x, "r", 11, &[("refs/heads/main", oid(9))], None)),
        false,
        "blocked:",
    );
    let st = state(&m, "r", 12, &[("refs/heads/main", oid(1))], None);
    assert_ok(h.send(&st), true, PURGATORY);
    assert!(
        !h.push(&r, &[("refs/heads/main", Some(oid(9)))])
            .is_accepted()
    );
    assert!(
        h.push(&r, &[("refs/heads/main", Some(oid(1)))])
            .is_accepted()
    );
    assert!(h.is_stored(&st.id));
}

#[test]
fn recursive_maintainers() {
    let mut h = Harness::listed();
    let (owner, m1, m2) = (key(1), key(2), key(3));
    setup(&mut h, &owner, &[&m1]);
    // M1's own announcement (not listing us) lists M2, and M2's lists M1: a cycle.
    let a1 = sign(
        &m1,
        Kind::GitRepoAnnouncement,
        11,
        vec![
            s(&["d", "r"]),
            vec!["maintainers".into(), m2.public_key().to_hex()],
        ],
    );
    assert_ok(h.send(&a1), true, "");
    let a2 = sign(
        &m2,
        Kind::GitRepoAnnouncement,
        11,
        vec![
            s(&["d", "r"]),
            vec!["maintainers".into(), m1.public_key().to_hex()],
        ],
    );
    assert_ok(h.send(&a2), true, "");
    let st = state(&m2, "r", 12, &[("refs/heads/main", oid(1))], None);
    assert_ok(h.send(&st), true, PURGATORY);
    assert!(
        h.push(&repo(&owner, "r"), &[("refs/heads/main", Some(oid(1)))])
            .is_accepted()
    );
    assert!(h.is_stored(&st.id));
}

#[test]
fn newest_state_wins() {
    let mut h = Harness::listed();
    let (owner, m) = (key(1), key(2));
    setup(&mut h, &owner, &[&m]);
    let r = repo(&owner, "r");
    let old = state(&owner, "r", 11, &[("refs/heads/main", oid(1))], None);
    let new = state(&m, "r", 20, &[("refs/heads/main", oid(2))], None);
    h.send(&old);
    h.send(&new);
    let stale = h.push(&r, &[("refs/heads/main", Some(oid(1)))]);
    assert!(
        !stale.is_accepted(),
        "the older waiting state does not authorize a push"
    );
    assert!(
        h.push(&r, &[("refs/heads/main", Some(oid(2)))])
            .is_accepted()
    );
    assert!(h.is_stored(&new.id));
    // The older state's data arrives later (another push path would be refused; simulate a
    // fetch bringing it): it does not roll refs back.
    h.objects.get_mut(&r).unwrap().insert(oid(1));
    let older_push = h.push(&r, &[("refs/heads/main", Some(oid(1)))]);
    assert!(
        !older_push.is_accepted(),
        "a push aligned with an older state is refused"
    );
    assert_eq!(h.refs[&r]["refs/heads/main"], oid(2));
}

#[test]
fn state_syncs_all_owner_repos() {
    let mut h = Harness::new();
    let (owner, m) = (key(1), key(2));
    setup(&mut h, &owner, &[&m]);
    let am = announcement(&m, "r", 10, &[], &[&owner]);
    assert_ok(h.send(&am), true, PURGATORY);
    let st = state(
        &m,
        "r",
        12,
        &[("refs/heads/main", oid(1))],
        Some("refs/heads/main"),
    );
    h.send(&st);
    assert!(
        h.push(&repo(&m, "r"), &[("refs/heads/main", Some(oid(1)))])
            .is_accepted()
    );
    let ro = repo(&owner, "r");
    assert_eq!(
        h.refs[&ro].get("refs/heads/main"),
        Some(&oid(1)),
        "copied and aligned into the owner's repo"
    );
    assert!(h.objects[&ro].contains(&oid(1)));
    assert_eq!(
        h.heads.get(&ro).map(String::as_str),
        Some("refs/heads/main")
    );
    assert!(h.is_stored(&am.id), "both announcements released");
}

#[test]
fn state_malformed_oid_waits() {
    let mut h = Harness::new();
    let owner = key(1);
    setup(&mut h, &owner, &[]);
    let bad = sign(
        &owner,
        Kind::RepoState,
        11,
        vec![s(&["d", "r"]), s(&["refs/heads/main", "abc123"])],
    );
    assert_ok(h.send(&bad), true, PURGATORY);
    h.advance(mins(31));
    assert!(!h.engine.is_waiting(&bad.id), "it expires");
    assert!(!h.is_stored(&bad.id));
}

#[test]
fn head_tag_both_forms() {
    for head in ["ref: refs/heads/dev", "refs/heads/dev"] {
        let mut h = Harness::new();
        let owner = key(1);
        setup(&mut h, &owner, &[]);
        let st = sign(
            &owner,
            Kind::RepoState,
            11,
            vec![
                s(&["d", "r"]),
                vec!["refs/heads/dev".into(), oid(1).to_string()],
                s(&["HEAD", head]),
            ],
        );
        h.send(&st);
        let r = repo(&owner, "r");
        assert!(
            h.push(&r, &[("refs/heads/dev", Some(oid(1)))])
                .is_accepted()
        );
        assert_eq!(
            h.heads.get(&r).map(String::as_str),
            Some("refs/heads/dev"),
            "HEAD form {head:?}"
        );
    }
}

#[test]
fn state_applied_without_push() {
    let mut h = Harness::listed();
    let (owner, m) = (key(1), key(2));
    setup(&mut h, &owner, &[&m]);
    let r = repo(&owner, "r");
    h.send(&state(
        &owner,
        "r",
        11,
        &[("refs/heads/main", oid(1)), ("refs/heads/dev", oid(2))],
        None,
    ));
    assert!(
        h.push(
            &r,
            &[
                ("refs/heads/main", Some(oid(1))),
                ("refs/heads/dev", Some(oid(2)))
            ]
        )
        .is_accepted()
    );
    let newer = state(
        &m,
        "r",
        20,
        &[("refs/heads/dev", oid(2))],
        Some("refs/heads/dev"),
    );
    assert_ok(h.send(&newer), true, "");
    let branches: Vec<&String> = h.refs[&r].keys().collect();
    assert_eq!(
        branches,
        vec!["refs/heads/dev"],
        "main deleted, dev kept, no push"
    );
    assert_eq!(h.heads.get(&r).map(String::as_str), Some("refs/heads/dev"));
}

#[test]
fn release_before_push_response() {
    // The release happens within the PushApplied step itself: by the time the driver has
    // drained the effects of that one input (before it answers git), both are stored.
    let mut h = Harness::new();
    let owner = key(1);
    let ann = announcement(&owner, "r", 10, &[], &[]);
    h.send(&ann);
    let st = state(&owner, "r", 11, &[("refs/heads/main", oid(1))], None);
    h.send(&st);
    let mark = h.trace.len();
    h.push(&repo(&owner, "r"), &[("refs/heads/main", Some(oid(1)))]);
    assert_effects(&h, mark, &["AlignRepo", "StoreEvent", "StoreEvent"]);
    assert!(
        h.remote.is_empty(),
        "no remote work is needed for a push release"
    );
}

#[test]
fn maintainer_without_announcement() {
    let mut h = Harness::listed();
    let (owner, m) = (key(1), key(2));
    setup(&mut h, &owner, &[&m]);
    let st = state(&m, "r", 11, &[("refs/heads/main", oid(1))], None);
    assert_ok(h.send(&st), true, PURGATORY);
    assert!(
        h.push(&repo(&owner, "r"), &[("refs/heads/main", Some(oid(1)))])
            .is_accepted()
    );
}

#[test]
fn unauthorized_ref_namespaces() {
    let mut h = Harness::new();
    let owner = key(1);
    setup(&mut h, &owner, &[]);
    let v = h.push(
        &repo(&owner, "r"),
        &[
            ("refs/pull/1/head", Some(oid(1))),
            ("refs/meta/config", Some(oid(1))),
        ],
    );
    assert!(
        v.refs
            .iter()
            .all(|(_, r)| r.as_ref().unwrap_err().contains("only refs/heads"))
    );
    let unknown = h.push(&repo(&key(9), "r"), &[("refs/heads/main", Some(oid(1)))]);
    assert!(
        !unknown.is_accepted(),
        "pushes to repositories not hosted here are refused"
    );
}

#[test]
fn deletion_removes_purgatory_state() {
    for by_coordinate in [false, true] {
        let mut h = Harness::new();
        let owner = key(1);
        setup(&mut h, &owner, &[]);
        let st = state(&owner, "r", 11, &[("refs/heads/main", oid(1))], None);
        h.send(&st);
        let tag = if by_coordinate {
            s(&["a", &format!("30618:{}:r", owner.public_key().to_hex())])
        } else {
            s(&["e", &st.id.to_hex()])
        };
        let del = sign(
            &owner,
            Kind::EventDeletion,
            12,
            vec![tag, s(&["k", "30618"])],
        );
        assert_ok(h.send(&del), true, "");
        assert!(!h.engine.is_waiting(&st.id));
        assert!(
            !h.journal.keys().any(|k| k.contains(&st.id.to_hex())),
            "forgotten from the journal"
        );
        let v = h.push(&repo(&owner, "r"), &[("refs/heads/main", Some(oid(1)))]);
        assert!(!v.is_accepted(), "the deleted state authorizes nothing");
        assert!(!h.is_stored(&st.id));
    }
}

#[test]
fn deletion_accepted_for_purgatory_events() {
    let mut h = Harness::new();
    let (owner, x) = (key(1), key(3));
    setup(&mut h, &owner, &[]);
    let st = state(&owner, "r", 11, &[("refs/heads/main", oid(1))], None);
    h.send(&st);
    let not_yours = sign(
        &x,
        Kind::EventDeletion,
        12,
        vec![s(&["e", &st.id.to_hex()])],
    );
    assert_ok(h.send(&not_yours), false, "invalid:");
    assert!(h.engine.is_waiting(&st.id), "someone else cannot delete it");
    let del = sign(
        &owner,
        Kind::EventDeletion,
        12,
        vec![s(&["e", &st.id.to_hex()]), s(&["k", "30618"])],
    );
    assert_ok(h.send(&del), true, "");
    assert!(
        !h.push(&repo(&owner, "r"), &[("refs/heads/main", Some(oid(1)))])
            .is_accepted()
    );
    let again = h.send(&st);
    assert_ok(again.clone(), false, "invalid:");
    assert!(again.1.contains("deleted"));
}

#[test]
fn authorization_rechecked_at_release() {
    let mut h = Harness::new();
    let (owner, m) = (key(1), key(2));
    setup(&mut h, &owner, &[&m]);
    let st = state(&m, "r", 11, &[("refs/heads/main", oid(1))], None);
    assert_ok(h.send(&st), true, PURGATORY);
    // The owner drops M before the data arrives.
    h.send(&announcement(&owner, "r", 20, &[], &[]));
    let r = repo(&owner, "r");
    h.objects.get_mut(&r).unwrap().insert(oid(1));
    h.input(Input::PushApplied {
        repo: r.clone(),
        updates: vec![],
        refs: vec![("refs/heads/x".into(), oid(1))],
        client: None,
    });
    assert!(
        !h.is_stored(&st.id),
        "M is no longer authorized for the owner's repo"
    );
}
