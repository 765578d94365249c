//! Scenarios "Persistence and hostile input" that the engine decides: hydration keeps
//! purgatory with its original deadlines; downtime counts; hostile URLs are refused.

mod support;

use grasp_core::nostr::prelude::Keys;
use grasp_core::*;
use std::time::Duration;
use support::*;

fn config() -> Config {
    Config::new(OUR.parse().unwrap())
}

#[test]
fn restart_keeps_purgatory() {
    let mut h = Harness::new();
    let (owner, m) = (key(1), key(2));
    let ann = announcement(&owner, "r", 10, &[], &[&m]);
    h.send(&ann);
    // m accepts: its own announcement lists the owner back.
    assert_ok(
        h.send(&elsewhere(&m, "r", 10, &[maintainers_tag(&[&owner])])),
        true,
        "",
    );
    let states = [
        state(&owner, "r", 11, &[("refs/heads/main", oid(1))], None),
        state(&m, "r", 12, &[("refs/heads/main", oid(1))], None),
    ];
    for st in &states {
        assert_ok(h.send(st), true, PURGATORY);
    }
    let other = key(3);
    h.send(&announcement(&other, "o", 10, &[], &[]));
    let st3 = state(&other, "o", 11, &[("refs/heads/main", oid(3))], None);
    h.send(&st3);
    // Two PRs need an accepted repo: serve "o" first.
    let mut waiting_before = h.engine.purgatory_view();
    h.advance(mins(10));
    let deadlines: Vec<(String, Time)> = waiting_before
        .drain(..)
        .map(|w| (w.id.to_hex(), w.deadline))
        .collect();
    h.restart(config());
    let after = h.engine.purgatory_view();
    for (id, deadline) in &deadlines {
        let w = after
            .iter()
            .find(|w| &w.id.to_hex() == id)
            .unwrap_or_else(|| panic!("{id} lost on restart"));
        assert_eq!(w.deadline, *deadline, "the original deadline is kept");
    }
    assert!(
        h.push(&repo(&owner, "r"), &[("refs/heads/main", Some(oid(1)))])
            .is_accepted()
    );
    assert!(
        h.is_stored(&ann.id) && states.iter().all(|s| h.is_stored(&s.id)),
        "a push releases them"
    );
    assert!(h.engine.is_waiting(&st3.id));
}

#[test]
fn restart_keeps_prs_and_placeholders() {
    let mut h = Harness::new();
    let owner = key(1);
    h.send(&announcement(&owner, "r", 10, &[], &[]));
    h.send(&state(
        &owner,
        "r",
        11,
        &[("refs/heads/main", oid(1))],
        None,
    ));
    let r = repo(&owner, "r");
    h.push(&r, &[("refs/heads/main", Some(oid(1)))]);
    let pr1 = pull_request(&key(5), &owner, "r", 20, &oid(7).to_string(), &[]);
    let pr2 = pull_request(&key(6), &owner, "r", 21, &oid(8).to_string(), &[]);
    h.send(&pr1);
    h.send(&pr2);
    let early = pull_request(&key(5), &owner, "r", 22, &oid(9).to_string(), &[]);
    h.push(
        &r,
        &[(&format!("refs/nostr/{}", early.id.to_hex()), Some(oid(9)))],
    );
    h.restart(config());
    assert!(h.engine.is_waiting(&pr1.id) && h.engine.is_waiting(&pr2.id));
    h.push(
        &r,
        &[(&format!("refs/nostr/{}", pr1.id.to_hex()), Some(oid(7)))],
    );
    assert!(h.is_stored(&pr1.id));
    assert_ok(h.send(&early), true, "");
    assert!(
        h.is_stored(&early.id),
        "the placeholder survived the restart"
    );
}

#[test]
fn downtime_counts() {
    let mut h = Harness::new();
    let owner = key(1);
    h.send(&announcement(&owner, "r", 10, &[], &[]));
    let st = state(&owner, "r", 11, &[("refs/heads/main", oid(1))], None);
    h.send(&st);
    h.advance(mins(25));
    // Down for 10 minutes: the driver's clock keeps running.
    h.now = h.now.plus(mins(10));
    h.restart(config());
    assert!(
        !h.engine.is_waiting(&st.id),
        "expired on restart, not given a fresh 30 min"
    );
    assert!(
        h.journal
            .keys()
            .any(|k| k == &format!("x:{}", st.id.to_hex()))
    );
}

#[test]
fn expired_event_sent_again_by_a_client_waits_again() {
    let mut h = Harness::new();
    let owner = key(1);
    h.send(&announcement(&owner, "r", 10, &[], &[]));
    let st = state(&owner, "r", 11, &[("refs/heads/main", oid(1))], None);
    h.send(&st);
    h.advance(mins(31));
    let memory = format!("x:{}", st.id.to_hex());
    assert!(!h.engine.is_waiting(&st.id) && h.journal.contains_key(&memory));
    assert_ok(h.send(&st), true, PURGATORY);
    assert!(h.engine.is_waiting(&st.id));
    assert!(
        !h.journal.contains_key(&memory),
        "no longer remembered as expired, in the journal too: {:?}",
        h.journal.keys()
    );
    h.restart(config());
    assert!(h.engine.is_waiting(&st.id), "and it waits across a restart");
}

#[test]
fn released_before_crash_is_forgotten_on_restart() {
    let mut h = Harness::new();
    let owner = key(1);
    let ann = announcement(&owner, "r", 10, &[], &[]);
    h.send(&ann);
    // The store has the event but the journal still has it (crash between the two).
    let record = h.journal.values().next().unwrap().clone();
    h.stored.push((ann.clone(), ServePath::Push));
    h.restart(config());
    assert!(!h.engine.is_waiting(&ann.id));
    assert!(
        !h.journal.values().any(|r| r == &record),
        "the stale record is forgotten"
    );
}

#[test]
fn an_older_waiting_announcement_left_by_a_crash_does_not_replace_the_stored_newer_one() {
    // A newer announcement was released (stored) while the older one's waiting record
    // was still being forgotten: a crash leaves both. The store serves the newer; the
    // engine must enforce the newer too (found by the simulator's served = enforced
    // invariant, seed 9979 of the Restarts shape).
    let mut h = Harness::new();
    let owner = key(1);
    let older = announcement(&owner, "r", 10, &[], &[]);
    h.send(&older);
    let record = h.journal.values().next().unwrap().clone();
    let newer = announcement(&owner, "r", 20, &[], &[]);
    h.stored.push((newer.clone(), ServePath::Push));
    h.journal.clear();
    h.journal.insert(record.key().to_string(), record.clone());
    h.restart(config());
    assert_eq!(
        h.engine.stored_version(30617, &owner.public_key(), "r"),
        Some(newer.id),
        "the engine enforces the stored (newer) announcement"
    );
    assert!(!h.engine.is_waiting(&older.id));
    assert!(
        !h.journal.values().any(|r| r == &record),
        "the older version's record is forgotten"
    );
}

#[test]
fn an_older_waiting_state_left_by_a_crash_does_not_replace_the_stored_newer_one() {
    let mut h = Harness::new();
    let owner = key(1);
    h.send(&announcement(&owner, "r", 10, &[], &[]));
    let older = state(&owner, "r", 11, &[("refs/heads/main", oid(1))], None);
    h.send(&older);
    assert!(h.engine.is_waiting(&older.id));
    let newer = state(&owner, "r", 12, &[("refs/heads/main", oid(2))], None);
    h.stored.push((newer.clone(), ServePath::Push));
    h.restart(config());
    assert_eq!(
        h.engine.stored_version(30618, &owner.public_key(), "r"),
        Some(newer.id)
    );
    assert!(
        !h.engine.is_waiting(&older.id),
        "the older state no longer waits"
    );
}

#[test]
fn a_waiting_state_superseded_by_one_still_checked_survives_a_crash() {
    // The newer state's verdict waits on its object check; a crash before it answers
    // must not lose the acknowledged older one (simulator seeds 354, 3700, 7851, 9097).
    let mut h = Harness::new();
    let owner = key(1);
    h.send(&announcement(&owner, "r", 10, &[], &[]));
    let older = state(&owner, "r", 11, &[("refs/heads/main", oid(1))], None);
    assert_ok(h.send(&older), true, "purgatory:");
    h.hold_checks = true;
    let newer = state(&owner, "r", 12, &[("refs/heads/main", oid(2))], None);
    h.post(&newer);
    assert!(
        h.journal.contains_key(&format!("w:{}", older.id)),
        "the older state's record stays while the newer one's verdict is pending"
    );
    h.hold_checks = false;
    h.held_checks.clear();
    h.restart(config());
    assert!(
        h.engine.is_waiting(&older.id),
        "the acknowledged state survives the crash"
    );
}

#[test]
fn a_superseded_states_record_goes_once_its_successor_is_journalled() {
    let mut h = Harness::new();
    let owner = key(1);
    h.send(&announcement(&owner, "r", 10, &[], &[]));
    let older = state(&owner, "r", 11, &[("refs/heads/main", oid(1))], None);
    h.send(&older);
    let newer = state(&owner, "r", 12, &[("refs/heads/main", oid(2))], None);
    assert_ok(h.send(&newer), true, "purgatory:");
    assert!(h.journal.contains_key(&format!("w:{}", newer.id)));
    assert!(
        !h.journal.contains_key(&format!("w:{}", older.id)),
        "the superseded record is forgotten"
    );
}

#[test]
fn push_before_crash_released_on_restart() {
    // git wrote the push, the daemon died before the engine heard of it: on restart the
    // objects are found by the hydration check.
    let mut h = Harness::new();
    let owner = key(1);
    h.send(&announcement(&owner, "r", 10, &[], &[]));
    let st = state(&owner, "r", 11, &[("refs/heads/main", oid(1))], None);
    h.send(&st);
    let r = repo(&owner, "r");
    h.objects.get_mut(&r).unwrap().insert(oid(1));
    h.restart(config());
    assert!(h.is_stored(&st.id));
}

#[test]
fn clone_url_scheme_guard() {
    let mut h = Harness::new();
    let owner: Keys = key(1);
    let bad = [
        "file:///etc/passwd",
        "ext::sh -c id",
        "ssh://git@host/r.git",
        "git://host/r.git",
        "https://user:pw@host.example/r.git",
    ];
    let ann = announcement(&owner, "r", 10, &bad, &[]);
    h.send(&ann);
    h.send_from(
        &state(&owner, "r", 11, &[("refs/heads/main", oid(1))], None),
        Origin::Sync,
    );
    h.advance(Duration::from_millis(500));
    assert!(
        h.remote.is_empty(),
        "nothing hostile is fetched: {:?}",
        h.remote
    );
    let view = h.engine.sync_view();
    for u in bad {
        assert!(
            view[0]
                .urls
                .iter()
                .any(|(url, _, why)| url == u && why.starts_with("refused")),
            "the reason for {u} is visible: {:?}",
            view[0].urls
        );
    }
}

#[test]
fn purgatory_caps_refuse_clearly() {
    // The per-author cap counts waiting states and pull requests; a waiting announcement
    // is bounded by the repositories-per-author cap instead (issue 14: a new repository
    // cost two slots).
    let mut c = config();
    c.limits.purgatory_per_author = 2;
    let mut h = Harness::with_config(c);
    let owner = key(1);
    for (i, d) in ["a", "b", "c"].into_iter().enumerate() {
        assert_ok(
            h.send(&announcement(&owner, d, 10, &[], &[])),
            true,
            PURGATORY,
        );
        let st = state(
            &owner,
            d,
            11,
            &[("refs/heads/main", oid(i as u64 + 1))],
            None,
        );
        let want = if i < 2 {
            (true, PURGATORY)
        } else {
            (false, "rate-limited:")
        };
        assert_ok(h.send(&st), want.0, want.1);
    }
}

#[test]
fn repositories_per_author_cap() {
    let mut c = config();
    c.limits.repos_per_author = 2;
    let mut h = Harness::with_config(c);
    let (owner, other) = (key(1), key(2));
    for d in ["a", "b"] {
        assert_ok(
            h.send(&announcement(&owner, d, 10, &[], &[])),
            true,
            PURGATORY,
        );
    }
    assert_ok(
        h.send(&announcement(&owner, "c", 10, &[], &[])),
        false,
        "rate-limited: you already host 2 repositories here",
    );
    assert!(!h.objects.contains_key(&repo(&owner, "c")));
    assert_ok(
        h.send(&announcement(&owner, "a", 11, &[], &[])),
        true,
        PURGATORY,
    );
    assert_ok(
        h.send(&announcement(&other, "c", 10, &[], &[])),
        true,
        PURGATORY,
    );
}
