//! Many keys announcing one identifier (issue 14 item 3): what one more stranger costs
//! must not grow with the strangers already there, and the object checks that replace
//! "every repository × every waiting object" still find data where it is.

mod support;

use grasp_core::nostr::prelude::{Keys, Kind};
use grasp_core::*;
use support::*;

/// The shared identifier.
const D: &str = "d";

/// `(checks, repositories × objects summed over them)` among the effects since `from`.
fn check_sizes(h: &Harness, from: usize) -> (usize, usize) {
    h.trace[from..]
        .iter()
        .filter_map(|(_, e)| match e {
            Effect::CheckObjects { repos, oids, .. } => Some(repos.len() * oids.len()),
            _ => None,
        })
        .fold((0, 0), |(n, sum), size| (n + 1, sum + size))
}

/// The repositories of each object check since `from`.
fn checked_repos(h: &Harness, from: usize) -> Vec<Vec<RepoId>> {
    h.trace[from..]
        .iter()
        .filter_map(|(_, e)| match e {
            Effect::CheckObjects { repos, .. } => Some(repos.clone()),
            _ => None,
        })
        .collect()
}

/// Strangers `first..first + n`, each announcing `D` (listing this server).
fn strangers(h: &mut Harness, first: u64, n: u64) {
    for i in first..first + n {
        assert_ok(
            h.send(&announcement(&key(i), D, 10, &[], &[])),
            true,
            PURGATORY,
        );
    }
}

#[test]
fn a_strangers_announcement_checks_nothing_of_the_repositories_already_there() {
    let mut h = Harness::new();
    let maintainer = key(0);
    assert_ok(
        h.send(&announcement(&maintainer, D, 10, &[], &[])),
        true,
        PURGATORY,
    );
    let waiting = state(
        &maintainer,
        D,
        11,
        &[("refs/heads/main", oid(1)), ("refs/heads/dev", oid(2))],
        Some("refs/heads/main"),
    );
    assert_ok(h.send(&waiting), true, PURGATORY);

    let from = h.trace.len();
    strangers(&mut h, 1, 1);
    let first = check_sizes(&h, from);
    strangers(&mut h, 2, 599);
    let from = h.trace.len();
    strangers(&mut h, 601, 1);
    let last = check_sizes(&h, from);
    assert_eq!(
        (first, last),
        ((0, 0), (0, 0)),
        "a stranger's announcement (no state governs its repository) asked object checks \
         (count, repositories × objects) of the 1st and of the 601st: it changed nothing \
         the maintainer's waiting state could be found in"
    );
    assert!(
        !h.is_stored(&waiting.id),
        "nothing arrived for the waiting state"
    );
}

#[test]
fn a_state_check_looks_in_a_bounded_set_of_repositories_led_by_the_authors_own() {
    let mut h = Harness::new();
    strangers(&mut h, 1, 600);
    let author = key(601);
    assert_ok(
        h.send(&announcement(&author, D, 10, &[], &[])),
        true,
        PURGATORY,
    );
    let from = h.trace.len();
    let st = state(
        &author,
        D,
        11,
        &[("refs/heads/main", oid(1))],
        Some("refs/heads/main"),
    );
    assert_ok(h.send(&st), true, PURGATORY);
    let checks = checked_repos(&h, from);
    let cap = Limits::default().repos_per_check;
    assert_eq!(checks.len(), 1, "one check for the state: {checks:?}");
    assert!(
        checks[0].len() <= cap,
        "the state's check looked in {} of the 601 repositories of '{D}', more than {cap}",
        checks[0].len()
    );
    assert_eq!(
        checks[0].first(),
        Some(&repo(&author, D)),
        "the author's own repository is looked in first"
    );
}

#[test]
fn a_co_maintainer_among_many_strangers_is_aligned_from_the_maintainers_repository() {
    let mut h = Harness::new();
    let (m, c) = (key(0), key(1000));
    assert_ok(
        h.send(&announcement(&m, D, 10, &[], &[&c])),
        true,
        PURGATORY,
    );
    let st = state(
        &m,
        D,
        11,
        &[("refs/heads/main", oid(1))],
        Some("refs/heads/main"),
    );
    assert_ok(h.send(&st), true, PURGATORY);
    assert!(
        h.push(&repo(&m, D), &[("refs/heads/main", Some(oid(1)))])
            .is_accepted()
    );
    assert!(h.is_stored(&st.id), "the push released the state");
    // More strangers than one check looks at, in whatever key order.
    strangers(&mut h, 1, 3 * Limits::default().repos_per_check as u64);
    let ann = announcement(&c, D, 12, &[], &[&m]);
    h.send(&ann);
    assert!(
        h.is_stored(&ann.id),
        "the co-maintainer's announcement waits although the state governing it has its \
         data in the maintainer's repository"
    );
    assert_eq!(
        h.refs[&repo(&c, D)].get("refs/heads/main"),
        Some(&oid(1)),
        "the co-maintainer's repository was aligned"
    );
}

#[test]
fn a_repository_governed_by_a_maintainer_hosting_nothing_is_aligned_from_another_it_governs() {
    for reciprocal in [false, true] {
        governed_by_a_maintainer_hosting_nothing(reciprocal);
    }
}

/// X hosts nothing here; under the reciprocal rule it accepts, with an announcement
/// elsewhere listing both owners.
fn governed_by_a_maintainer_hosting_nothing(reciprocal: bool) {
    let mut h = if reciprocal {
        Harness::new()
    } else {
        Harness::listed()
    };
    let (owner, x, mirror) = (key(0), key(2000), key(1000));
    assert_ok(
        h.send(&announcement(&owner, D, 10, &[], &[&x])),
        true,
        PURGATORY,
    );
    if reciprocal {
        let accept = elsewhere(&x, D, 10, &[maintainers_tag(&[&owner, &mirror])]);
        assert_ok(h.send(&accept), true, "");
    }
    // X announces nothing here; its state governs the owner's repository.
    let st = state(
        &x,
        D,
        11,
        &[("refs/heads/main", oid(1))],
        Some("refs/heads/main"),
    );
    assert_ok(h.send(&st), true, PURGATORY);
    assert!(
        h.push(&repo(&owner, D), &[("refs/heads/main", Some(oid(1)))])
            .is_accepted()
    );
    assert!(h.is_stored(&st.id), "the push released X's state");
    strangers(&mut h, 1, 3 * Limits::default().repos_per_check as u64);
    let ann = announcement(&mirror, D, 12, &[], &[&x]);
    h.send(&ann);
    assert!(
        h.is_stored(&ann.id),
        "a repository governed by X's state waits although the data is in the owner's"
    );
}

#[test]
fn an_answer_naming_a_repository_deleted_since_the_check_is_not_believed() {
    let mut h = Harness::new();
    let (m, y) = (key(0), key(1));
    assert_ok(h.send(&announcement(&m, D, 10, &[], &[])), true, PURGATORY);
    assert_ok(h.send(&announcement(&y, D, 10, &[], &[])), true, PURGATORY);
    let sy = state(
        &y,
        D,
        11,
        &[("refs/heads/main", oid(1))],
        Some("refs/heads/main"),
    );
    assert_ok(h.send(&sy), true, PURGATORY);
    assert!(
        h.push(&repo(&y, D), &[("refs/heads/main", Some(oid(1)))])
            .is_accepted()
    );
    // M's state names the same commit: its check finds it in Y's repository, but the
    // answer comes after Y withdrew (the driver read the repository before it went).
    h.hold_checks = true;
    let sm = state(
        &m,
        D,
        12,
        &[("refs/heads/main", oid(1))],
        Some("refs/heads/main"),
    );
    h.post(&sm);
    assert_eq!(h.held_checks.len(), 1, "M's state asked a check");
    assert_ok(h.send(&elsewhere(&y, D, 13, &[])), false, "blocked:");
    assert!(
        !h.objects.contains_key(&repo(&y, D)),
        "Y's repository was deleted"
    );
    h.hold_checks = false;
    h.answer_checks();
    assert_eq!(
        h.replies[&sm.id].last(),
        Some(&(true, PURGATORY.to_owned())),
        "M's state waits: the objects were found in a repository deleted since"
    );
    assert!(!h.is_stored(&sm.id));
}

#[test]
fn a_state_whose_objects_are_known_present_beyond_its_check_is_released() {
    let mut config = Config::new(OUR.parse().unwrap());
    config.limits.repos_per_check = 1;
    let mut h = Harness::with_config(config);
    let (m, p, x) = (key(0), key(1), key(2));
    assert_ok(h.send(&announcement(&m, D, 10, &[], &[])), true, PURGATORY);
    // M's state keeps oid 1 wanted (it waits for oid 2 too).
    let sm = state(
        &m,
        D,
        11,
        &[("refs/heads/main", oid(1)), ("refs/heads/dev", oid(2))],
        Some("refs/heads/main"),
    );
    assert_ok(h.send(&sm), true, PURGATORY);
    assert_ok(h.send(&announcement(&p, D, 10, &[], &[])), true, PURGATORY);
    let sp = state(
        &p,
        D,
        11,
        &[("refs/heads/main", oid(1))],
        Some("refs/heads/main"),
    );
    assert_ok(h.send(&sp), true, PURGATORY);
    assert!(
        h.push(&repo(&p, D), &[("refs/heads/main", Some(oid(1)))])
            .is_accepted()
    );
    assert!(h.is_stored(&sp.id) && !h.is_stored(&sm.id));
    // X's state names oid 1, known present in P's repository; its check looks only in
    // X's own (the cap is 1) and finds nothing.
    assert_ok(h.send(&announcement(&x, D, 10, &[], &[])), true, PURGATORY);
    let from = h.trace.len();
    let sx = state(
        &x,
        D,
        12,
        &[("refs/heads/main", oid(1))],
        Some("refs/heads/main"),
    );
    h.send(&sx);
    assert_eq!(checked_repos(&h, from), vec![vec![repo(&x, D)]]);
    assert!(
        h.is_stored(&sx.id),
        "X's state waits although its one object is known present here"
    );
    assert_eq!(h.refs[&repo(&x, D)].get("refs/heads/main"), Some(&oid(1)));
}

#[test]
fn announcements_of_one_identifier_are_capped_and_replacements_are_not() {
    let mut config = Config::new(OUR.parse().unwrap());
    config.limits.repos_per_identifier = 3;
    let mut h = Harness::with_config(config);
    strangers(&mut h, 1, 3);
    let over = announcement(&key(4), D, 10, &[], &[]);
    let got = h.send(&over);
    assert_ok(got.clone(), false, "rate-limited:");
    assert!(got.1.contains("'d' already has 3 repositories"), "{got:?}");
    assert!(
        !h.objects.contains_key(&repo(&key(4), D)),
        "a refused announcement created a repository"
    );
    // Another identifier is not affected.
    assert_ok(
        h.send(&announcement(&key(4), "other", 10, &[], &[])),
        true,
        PURGATORY,
    );
    // An owner already here may replace their announcement.
    assert_ok(
        h.send(&announcement(&key(1), D, 11, &[], &[])),
        true,
        PURGATORY,
    );
    // One withdraws: there is room again.
    assert_ok(h.send(&elsewhere(&key(2), D, 12, &[])), false, "blocked:");
    assert_ok(
        h.send(&announcement(&key(4), D, 13, &[], &[])),
        true,
        PURGATORY,
    );
}

/// `owner`'s repository of `D`, listing `maintainers`, served with its state (main at
/// `oid(1)`) pushed.
fn served_with_data(h: &mut Harness, owner: &Keys, maintainers: &[&Keys]) {
    let ann = announcement(owner, D, 10, &[], maintainers);
    assert_ok(h.send(&ann), true, PURGATORY);
    let st = state(
        owner,
        D,
        11,
        &[("refs/heads/main", oid(1))],
        Some("refs/heads/main"),
    );
    assert_ok(h.send(&st), true, PURGATORY);
    assert!(
        h.push(&repo(owner, D), &[("refs/heads/main", Some(oid(1)))])
            .is_accepted()
    );
    assert!(h.is_stored(&st.id));
}

#[test]
fn a_changed_maintainer_list_reaches_the_waiting_repositories_that_list_its_owner() {
    // The flat rule: a listing alone makes a maintainer.
    let mut h = Harness::listed();
    let (o, a, x) = (key(0), key(1), key(2));
    // X's repository is served with its data.
    served_with_data(&mut h, &x, &[]);
    // O lists A, who announces nothing yet: O's repository waits, governed by no state.
    let ao = announcement(&o, D, 12, &[], &[&a]);
    assert_ok(h.send(&ao), true, PURGATORY);
    // A, a maintainer of O's repository hosting elsewhere, lists X: O's maintainer set
    // now holds X, whose state has its data here.
    let tags = vec![
        s(&["d", D]),
        s(&["clone", "https://elsewhere.example/d.git"]),
        s(&["relays", "wss://elsewhere.example"]),
        vec!["maintainers".into(), x.public_key().to_hex()],
    ];
    let aa = sign(&a, Kind::GitRepoAnnouncement, 13, tags);
    assert_ok(h.send(&aa), true, "");
    assert!(
        h.is_stored(&ao.id),
        "O's announcement waits although X's state now governs it and its data is here"
    );
    assert_eq!(h.refs[&repo(&o, D)].get("refs/heads/main"), Some(&oid(1)));
}

#[test]
fn an_acceptance_reaches_the_waiting_repositories_it_confirms_a_maintainer_of() {
    // The reciprocal rule: O invites A; X (served here, with its data) lists A. When A
    // accepts — listing O and X — both A and X become confirmed maintainers of O's
    // repository, and X's state, whose data is here, governs it at once.
    let mut h = Harness::new();
    let (o, a, x) = (key(0), key(1), key(2));
    served_with_data(&mut h, &x, &[&a]);
    let ao = announcement(&o, D, 12, &[], &[&a]);
    assert_ok(h.send(&ao), true, PURGATORY);
    assert!(!h.is_stored(&ao.id), "X is not O's maintainer yet");
    let aa = elsewhere(&a, D, 13, &[maintainers_tag(&[&o, &x])]);
    assert_ok(h.send(&aa), true, "");
    assert!(
        h.is_stored(&ao.id),
        "O's announcement waits although A's acceptance made X's state govern it"
    );
    assert_eq!(h.refs[&repo(&o, D)].get("refs/heads/main"), Some(&oid(1)));
}
