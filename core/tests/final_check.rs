//! Issue 14, item 8: objects that arrived by a path the engine did not see (a git child
//! that outlived a killed graspd, a push straight into the bare repository) are found by
//! a fresh check before anything expires — while running, shortly before each deadline,
//! and at startup before what expired while down is expired.

mod support;

use grasp_core::nostr::prelude::{Event, Keys};
use grasp_core::*;
use std::time::Duration;
use support::*;

fn config() -> Config {
    Config::new(OUR.parse().unwrap())
}

/// `owner`'s repository `r`, served with `main` at `oid(1)`, and a newer state naming
/// `oid(5)` waiting for it.
fn waiting_state(h: &mut Harness, owner: &Keys) -> Event {
    h.send(&announcement(owner, "r", 10, &[], &[]));
    h.send(&state(owner, "r", 11, &[("refs/heads/main", oid(1))], None));
    let r = repo(owner, "r");
    assert!(
        h.push(&r, &[("refs/heads/main", Some(oid(1)))])
            .is_accepted()
    );
    let st = state(owner, "r", 12, &[("refs/heads/main", oid(5))], None);
    assert_ok(h.send(&st), true, PURGATORY);
    st
}

/// A state waiting in `r`, 35 min on (past its 30 min deadline) with the checks before
/// the deadline held unanswered.
fn past_deadline_checks_held() -> (Harness, Keys, Event) {
    let mut h = Harness::with_config(config());
    let owner = key(1);
    let st = waiting_state(&mut h, &owner);
    h.hold_checks = true;
    h.advance(mins(35));
    (h, owner, st)
}

/// Like [`past_deadline_checks_held`], with the check before the deadline taken.
fn past_deadline_check_held() -> (Harness, Keys, Event, CheckId) {
    let (mut h, owner, st) = past_deadline_checks_held();
    let (check, _) = h.held_checks.pop().expect("a check before the deadline");
    (h, owner, st, check)
}

/// The state's commit lands and `main` moves, without the engine hearing of it.
fn landed_unseen(h: &mut Harness, owner: &Keys) {
    let r = repo(owner, "r");
    h.objects.entry(r.clone()).or_default().insert(oid(5));
    h.refs
        .entry(r)
        .or_default()
        .insert("refs/heads/main".into(), oid(5));
}

#[test]
fn data_that_landed_unseen_is_found_before_the_deadline() {
    let mut h = Harness::with_config(config());
    let owner = key(1);
    let st = waiting_state(&mut h, &owner);
    landed_unseen(&mut h, &owner);
    // Nothing looks until the check shortly before the deadline (30 min).
    h.advance(mins(28));
    assert!(!h.is_stored(&st.id), "released before anything looked");
    h.advance(Duration::from_secs(119));
    assert!(
        h.is_stored(&st.id),
        "released by the check before its deadline, not expired"
    );
    let served = h
        .stored
        .iter()
        .find(|(e, _)| e.id == st.id)
        .map(|(_, p)| *p);
    assert_eq!(served, Some(ServePath::Arrival));
}

#[test]
fn a_busy_purgatory_costs_one_check_per_lead_not_per_entry() {
    let mut h = Harness::with_config(config());
    let owner = key(1);
    h.send(&announcement(&owner, "r", 10, &[], &[]));
    // 60 states a second apart (each newer, each waiting for its own commit).
    for i in 0..60u64 {
        let st = state(
            &owner,
            "r",
            20 + i,
            &[("refs/heads/main", oid(100 + i))],
            None,
        );
        assert_ok(h.send(&st), true, PURGATORY);
        h.advance(Duration::from_secs(1));
    }
    let from = h.trace.len();
    h.advance(mins(31));
    let checks = h.trace[from..]
        .iter()
        .filter(|(_, e)| matches!(e, Effect::CheckObjects { .. }))
        .count();
    assert!(
        (1..=3).contains(&checks),
        "60 entries due within a minute: {checks} checks"
    );
    assert_eq!(h.engine.metrics().purgatory_states, 0, "all expired");
}

#[test]
fn at_startup_data_that_landed_while_down_is_seen_before_overdue_entries_expire() {
    let mut h = Harness::with_config(config());
    let owner = key(1);
    let st = waiting_state(&mut h, &owner);
    // Down for 40 min, past the state's deadline; its commit landed meanwhile.
    landed_unseen(&mut h, &owner);
    h.now = h.now.plus(mins(40));
    h.restart(config());
    assert!(
        h.is_stored(&st.id),
        "released at startup, not expired while down"
    );
    assert!(!h.engine.is_holding_expiry(), "the startup checks answered");
}

#[test]
fn at_startup_what_is_still_missing_expires_once_the_checks_answered() {
    let mut h = Harness::with_config(config());
    let owner = key(1);
    let st = waiting_state(&mut h, &owner);
    h.now = h.now.plus(mins(40));
    h.restart(config());
    assert!(!h.is_stored(&st.id));
    assert_eq!(h.engine.metrics().purgatory_states, 0, "expired");
    assert!(
        h.journal.keys().all(|k| !k.starts_with("w:")),
        "{:?}",
        h.journal.keys()
    );
}

#[test]
fn a_push_that_changed_nothing_releases_what_the_advertised_refs_satisfy() {
    let mut h = Harness::with_config(config());
    let owner = key(1);
    let st = waiting_state(&mut h, &owner);
    landed_unseen(&mut h, &owner);
    let r = repo(&owner, "r");
    let refs: Vec<(String, Oid)> = h.refs[&r].iter().map(|(n, o)| (n.clone(), *o)).collect();
    h.input(Input::RefsSeen { repo: r, refs });
    assert!(h.is_stored(&st.id), "released by the advertised refs");
}

#[test]
fn advertised_refs_neither_extend_nor_journal_a_waiting_announcement() {
    let mut h = Harness::with_config(config());
    let owner = key(1);
    assert_ok(
        h.send(&announcement(&owner, "r", 10, &[], &[])),
        true,
        PURGATORY,
    );
    let before = h.engine.purgatory_view();
    h.advance(mins(10));
    let from = h.trace.len();
    for _ in 0..3 {
        h.input(Input::RefsSeen {
            repo: repo(&owner, "r"),
            refs: Vec::new(),
        });
    }
    assert!(
        h.trace[from..].is_empty(),
        "an anonymous advertisement changed something: {:?}",
        &h.trace[from..]
    );
    assert_eq!(h.engine.purgatory_view()[0].deadline, before[0].deadline);
}

#[test]
fn nothing_expires_while_the_check_before_it_has_not_answered() {
    let mut h = Harness::with_config(config());
    let owner = key(1);
    let st = waiting_state(&mut h, &owner);
    // The check before the deadline goes out 30 s before it; its answer is held.
    h.hold_checks = true;
    h.advance(mins(29) + Duration::from_secs(45));
    let (check, _) = h.held_checks.pop().expect("a check before the deadline");
    assert!(h.engine.is_holding_expiry());
    // Past the deadline: the entry still waits for the answer.
    h.advance(mins(5));
    assert_eq!(h.engine.metrics().purgatory_states, 1, "expired unchecked");
    assert!(
        h.engine.poll_timeout().is_none_or(|t| t > h.now),
        "a held expiry must not busy-loop the timer"
    );
    // The commit landed in the meantime: the late answer releases the state.
    landed_unseen(&mut h, &owner);
    h.input(Input::ObjectsChecked {
        check,
        found: vec![(oid(5), repo(&owner, "r"))],
    });
    assert!(h.is_stored(&st.id), "released by the late answer");
    assert!(!h.engine.is_holding_expiry());
}

#[test]
fn a_late_answer_that_finds_nothing_expires_the_entry_at_once() {
    let (mut h, _, st, check) = past_deadline_check_held();
    assert_eq!(h.engine.metrics().purgatory_states, 1, "expired unchecked");
    h.input(Input::ObjectsChecked {
        check,
        found: Vec::new(),
    });
    assert!(!h.is_stored(&st.id));
    assert_eq!(
        h.engine.metrics().purgatory_states,
        0,
        "expired on the answer"
    );
}

#[test]
fn a_purgatory_expiry_shorter_than_the_lead_still_gets_its_check() {
    let mut c = config();
    c.purgatory_expiry = Duration::from_secs(20);
    let mut h = Harness::with_config(c);
    let owner = key(1);
    // A first entry moves the checks past a second one's deadline.
    let first = waiting_state(&mut h, &owner);
    h.advance(Duration::from_secs(5));
    let second = state(&owner, "r", 13, &[("refs/heads/main", oid(6))], None);
    assert_ok(h.send(&second), true, PURGATORY);
    let r = repo(&owner, "r");
    h.objects.entry(r).or_default().insert(oid(6));
    h.advance(Duration::from_secs(30));
    assert!(!h.is_stored(&first.id), "its commit never came");
    assert!(
        h.is_stored(&second.id),
        "the second entry had its check before it expired"
    );
}

/// A check before the deadline that could not read the repositories is no answer: the
/// entry does not expire on it, the check is asked again, and the retry's answer counts.
#[test]
fn a_failed_check_is_asked_again_and_not_read_as_absent() {
    let (mut h, owner, st, check) = past_deadline_check_held();
    assert_eq!(h.engine.metrics().purgatory_states, 1, "expired unchecked");
    h.input(Input::CheckFailed {
        check,
        found: Vec::new(),
    });
    assert_eq!(
        h.engine.metrics().purgatory_states,
        1,
        "a failed check expired the entry as if its data were absent"
    );
    assert!(h.engine.is_holding_expiry(), "expiry waits for the retry");
    let (again, _) = h.held_checks.pop().expect("the check is asked again");
    assert_ne!(again, check);
    landed_unseen(&mut h, &owner);
    h.input(Input::ObjectsChecked {
        check: again,
        found: vec![(oid(5), repo(&owner, "r"))],
    });
    assert!(h.is_stored(&st.id), "released by the retry's answer");
    assert!(!h.engine.is_holding_expiry());
}

/// Checks that keep failing are retried a bounded number of times; then expiry goes by
/// the deadline alone (a repository that cannot be read must not hold purgatory for
/// ever).
#[test]
fn a_check_that_keeps_failing_ends_after_its_retries() {
    let (mut h, _, st) = past_deadline_checks_held();
    for n in 0..=MAX_CHECK_RETRIES {
        let (check, _) = h
            .held_checks
            .pop()
            .unwrap_or_else(|| panic!("attempt {n} asked"));
        assert_eq!(h.engine.metrics().purgatory_states, 1, "attempt {n}");
        h.input(Input::CheckFailed {
            check,
            found: Vec::new(),
        });
    }
    assert!(h.held_checks.is_empty(), "no check after the last retry");
    assert!(!h.engine.is_holding_expiry());
    assert!(!h.is_stored(&st.id));
    assert_eq!(
        h.engine.metrics().purgatory_states,
        0,
        "expired by its deadline"
    );
}

/// What a failed check found in the repositories it could read still releases.
#[test]
fn what_a_failed_check_found_counts() {
    let (mut h, owner, st, check) = past_deadline_check_held();
    landed_unseen(&mut h, &owner);
    h.input(Input::CheckFailed {
        check,
        found: vec![(oid(5), repo(&owner, "r"))],
    });
    assert!(h.is_stored(&st.id), "released by what was found");
}

/// An event whose own check failed gets its verdict: it waits in purgatory.
#[test]
fn an_event_whose_check_failed_waits() {
    let mut h = Harness::with_config(config());
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
    assert!(
        h.push(&r, &[("refs/heads/main", Some(oid(1)))])
            .is_accepted()
    );
    h.hold_checks = true;
    let st = state(&owner, "r", 12, &[("refs/heads/main", oid(5))], None);
    h.post(&st);
    let (check, _) = h.held_checks.pop().expect("the event's check");
    assert!(
        !h.replies.contains_key(&st.id),
        "the verdict waits for the check"
    );
    h.input(Input::CheckFailed {
        check,
        found: Vec::new(),
    });
    assert_eq!(
        h.replies.get(&st.id).map(Vec::as_slice),
        Some(&[(true, PURGATORY.to_owned())][..])
    );
}
