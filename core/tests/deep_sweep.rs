//! Engine bugs a 700,000-seed simulation sweep found (issue 18), each reduced to the
//! smallest engine-level case; the seeds themselves replay in `sim/tests/sim/regressions.rs`.

mod support;

use grasp_core::nostr::prelude::Keys;
use grasp_core::*;
use std::time::Duration;
use support::*;

fn config() -> Config {
    Config::new(OUR.parse().unwrap())
}

fn main_state(author: &Keys, d: &str, at: u64, o: Oid) -> grasp_core::nostr::prelude::Event {
    state(author, d, at, &[("refs/heads/main", o)], None)
}

/// Seeds 375416, 572291, 582546, 628487: an input arriving at the very millisecond of an
/// entry's deadline found the entry still waiting — its timer is handled after the input.
/// Every live input now fires the deadlines due by its `now` first.
#[test]
fn an_input_at_the_deadline_finds_the_entry_expired() {
    let mut h = Harness::new();
    let owner = key(1);
    h.send(&announcement(&owner, "r", 10, &[], &[]));
    let st = main_state(&owner, "r", 11, oid(1));
    assert_ok(h.send(&st), true, PURGATORY);
    // The clock reaches the deadline; the timer has not fired yet when an input arrives.
    h.now = h.now.plus(h.engine.config().purgatory_expiry);
    h.send(&announcement(&key(2), "other", 10, &[], &[]));
    assert!(
        !h.engine.is_waiting(&st.id),
        "a state is never seen waiting at or past its deadline"
    );
    assert!(
        h.journal.contains_key(&format!("x:{}", st.id.to_hex())),
        "it expired, and is remembered as expired: {:?}",
        h.journal.keys()
    );
}

/// Seed 146816: a state whose objects lie in two repositories of its identifier — one
/// pushed to another owner's repository, one arriving in the repository it governs —
/// was served without being whole anywhere, because a newer state governs its target
/// and so nothing was aligned (or copied) for it.
#[test]
fn a_superseded_state_is_served_whole_in_one_repository() {
    let mut h = Harness::listed();
    let (a, b, c) = (key(1), key(2), key(3));
    // A's repository lists B as maintainer; C has an unrelated repository of the same `d`.
    h.send(&announcement(&a, "r", 10, &[], &[&b]));
    h.send(&announcement(&c, "r", 10, &[], &[]));
    // B's state (older) needs oid 1 and oid 2.
    let old = state(
        &b,
        "r",
        20,
        &[("refs/heads/main", oid(1)), ("refs/heads/dev", oid(2))],
        Some("refs/heads/main"),
    );
    assert_ok(h.send(&old), true, PURGATORY);
    // oid 1 is pushed to C's repository, for C's own state.
    h.send(&main_state(&c, "r", 21, oid(1)));
    assert!(
        h.push(&repo(&c, "r"), &[("refs/heads/main", Some(oid(1)))])
            .is_accepted()
    );
    assert!(h.engine.is_waiting(&old.id), "oid 2 is still missing");
    // A's newer state names oid 2; its push brings oid 2 into A's repository.
    let new = state(
        &a,
        "r",
        30,
        &[("refs/heads/main", oid(3)), ("refs/heads/dev", oid(2))],
        Some("refs/heads/main"),
    );
    h.send(&new);
    let pushed = h.push(
        &repo(&a, "r"),
        &[
            ("refs/heads/main", Some(oid(3))),
            ("refs/heads/dev", Some(oid(2))),
        ],
    );
    assert!(pushed.is_accepted(), "{pushed:?}");
    assert!(h.is_stored(&new.id) && h.is_stored(&old.id));
    let whole = h
        .objects
        .iter()
        .any(|(r, objs)| r.d == "r" && objs.contains(&oid(1)) && objs.contains(&oid(2)));
    assert!(
        whole,
        "the served state's objects are together in one repository: {:?}",
        h.objects
    );
    assert_eq!(
        h.refs[&repo(&a, "r")].get("refs/heads/main"),
        Some(&oid(3)),
        "and the newer state still rules A's repository"
    );
}

/// Seed 418619: the repository a sync attempt fetched into was deleted while a fetch
/// ran (its announcement soft-expired); the attempt kept fetching into the deleted
/// repository, every fetch failed, and the state — its data ready on the remote — waited
/// a whole backoff step more. The attempt now moves to a live repository and asks again.
#[test]
fn a_fetch_into_a_deleted_repository_is_asked_again_into_a_live_one() {
    const X: &str = "https://x.example/r.git";
    let mut h = Harness::new();
    // Two owners of `r`, the first of which the attempt fills (their repositories are
    // ordered by owner key).
    let (mut a, mut b) = (key(1), key(2));
    if repo(&b, "r") < repo(&a, "r") {
        std::mem::swap(&mut a, &mut b);
    }
    // A's announcement waits with no state and soft-expires 30 min after it arrived.
    h.send(&announcement(&a, "r", 10, &[X], &[]));
    h.advance(mins(26));
    h.send(&announcement(&b, "r", 10, &[X], &[]));
    let st = main_state(&b, "r", 11, oid(1));
    assert_ok(h.send(&st), true, PURGATORY);
    h.advance(mins(3));
    h.answer_list(X, &[("refs/heads/main", oid(1))]);
    let fetch = h.remote.last().cloned().expect("a fetch");
    let Remote::Fetch { into, .. } = &fetch else {
        panic!("expected a fetch, got {fetch:?}");
    };
    assert_eq!(
        into,
        &repo(&a, "r"),
        "the attempt fills A's repository first"
    );
    // A soft-expires while the fetch runs: its repository is deleted.
    h.advance(mins(2));
    let deleted = h
        .trace
        .iter()
        .any(|(_, e)| matches!(e, Effect::DeleteRepo { repo: r } if *r == repo(&a, "r")));
    assert!(deleted, "A's repository is deleted while the fetch runs");
    h.answer_fetch(X, &[oid(1)]);
    let again = h.remote.last().cloned();
    assert!(
        matches!(&again, Some(Remote::Fetch { into, .. }) if *into == repo(&b, "r")),
        "asked again at once, into B's live repository: {again:?}"
    );
    h.answer_fetch(X, &[oid(1)]);
    assert!(h.is_stored(&st.id), "and released");
}

/// Seeds 154081, 224319: a restart forgot each domain's sliding window, so a server that
/// restarts (in a crash loop, say) sent a remote a fresh per-minute budget each time.
/// The window is journalled as requests start and restored on hydration.
#[test]
fn a_restart_resumes_each_domains_request_window() {
    let mut cfg = config();
    cfg.domain_rate = 2;
    let mut h = Harness::with_config(cfg.clone());
    let owner = key(1);
    for i in 0..4 {
        let d = format!("r{i}");
        let url = format!("https://a.example/{d}.git");
        h.send(&announcement(&owner, &d, 10, &[url.as_str()], &[]));
        h.send(&main_state(&owner, &d, 11, oid(i + 1)));
    }
    h.advance(Duration::from_secs(180));
    assert_eq!(
        h.remote.len(),
        2,
        "two requests: the domain's budget per minute"
    );
    let first = h.now;
    assert!(
        h.journal.contains_key("t:a.example"),
        "the window is journalled: {:?}",
        h.journal.keys()
    );
    h.now = h.now.plus(Duration::from_secs(1));
    h.restart(cfg.clone());
    h.advance(Duration::from_secs(30));
    assert!(
        h.remote.is_empty(),
        "no request within the window the last run used up: {:?}",
        h.remote
    );
    h.now = first.plus(Duration::from_secs(59));
    h.advance(Duration::from_secs(1));
    assert_eq!(
        h.remote.len(),
        2,
        "a new window, a new budget: {:?}",
        h.remote
    );
    // Every request fails until the states expire; once the domain is idle past its
    // window, its record is forgotten.
    for _ in 0..40 {
        let urls: Vec<String> = h.remote.iter().map(|r| r.url().to_owned()).collect();
        for url in urls {
            h.fail(&url, FailureKind::Unreachable);
        }
        h.advance(mins(1));
    }
    assert!(h.remote.is_empty(), "nothing left to ask: {:?}", h.remote);
    assert!(
        !h.journal.contains_key("t:a.example"),
        "an idle domain's window leaves the journal: {:?}",
        h.journal.keys()
    );
}
