//! The maintainer sets (../shared/spec/MAINTAINERS.md): every row of its worked examples,
//! observed from outside the engine. A key is confirmed when its state, newest of all,
//! authorizes a push to the owner's repository; invited when that push is refused with
//! the invitation message; the flat column is the same probe under
//! `--maintainer-model listed`.

mod support;

use grasp_core::Effect;
use nostr::prelude::Keys;
use std::collections::BTreeSet;
use support::*;

/// The keys of the examples, by the letters MAINTAINERS.md uses.
fn k(name: char) -> Keys {
    key(match name {
        'O' => 1,
        'A' => 2,
        'R' => 3,
        'I' => 4,
        'Z' => 5,
        'X' => 6,
        'B' => 7,
        'Y' => 8,
        'C' => 9,
        'L' => 10,
        _ => unreachable!("no key {name}"),
    })
}

/// A role record `[letter, subject, bounds…]`.
fn role(letter: &str, subject: char, bounds: &[&str]) -> Vec<String> {
    let mut t = vec![letter.to_owned(), k(subject).public_key().to_hex()];
    t.extend(bounds.iter().map(|b| (*b).to_owned()));
    t
}

fn lead(subject: char) -> Vec<String> {
    role("M", subject, &[])
}

fn maint(subject: char) -> Vec<String> {
    role("m", subject, &[])
}

fn listing(names: &str) -> Vec<String> {
    let keys: Vec<Keys> = names.chars().map(k).collect();
    maintainers_tag(&keys.iter().collect::<Vec<_>>())
}

/// One row: the owner's hosted announcement's tags, then the other authors' own
/// announcements (in the order they arrive), and the expected sets.
struct Row {
    owner: Vec<Vec<String>>,
    others: Vec<(char, Vec<Vec<String>>)>,
    confirmed: &'static str,
    invited: &'static str,
    flat: &'static str,
}

/// The announcements of `row`, sent to a fresh engine.
fn world(row: &Row, listed: bool) -> Harness {
    let mut h = if listed {
        Harness::listed()
    } else {
        Harness::new()
    };
    let mut tags = vec![
        s(&["d", "r"]),
        s(&["clone", &our_clone(&k('O'), "r")]),
        s(&["relays", RELAY]),
    ];
    tags.extend(row.owner.iter().cloned());
    let ann = sign(&k('O'), nostr::prelude::Kind::GitRepoAnnouncement, 10, tags);
    assert_ok(h.send(&ann), true, PURGATORY);
    for (author, tags) in &row.others {
        h.send(&elsewhere(&k(*author), "r", 10, tags));
    }
    h
}

/// Whether `who`'s newest state authorizes a push to the owner's repository, and the
/// refusal message if not.
fn probe(row: &Row, listed: bool, who: char) -> Result<(), String> {
    let mut h = world(row, listed);
    let tip = oid(100 + u64::from(who as u8));
    let st = state(&k(who), "r", 50, &[("refs/heads/main", tip)], None);
    let (ok, msg) = h.send(&st);
    if !ok {
        return Err(msg);
    }
    let v = h.push(&repo(&k('O'), "r"), &[("refs/heads/main", Some(tip))]);
    if v.is_accepted() {
        assert!(
            h.is_stored(&st.id),
            "{who}'s state is released by the push it authorized"
        );
        return Ok(());
    }
    Err(v
        .refs
        .into_iter()
        .find_map(|(_, r)| r.err())
        .unwrap_or_default())
}

fn check(row: Row) {
    let universe = "OARIZXBYCL";
    let set = |listed: bool| -> BTreeSet<char> {
        universe
            .chars()
            .filter(|c| probe(&row, listed, *c).is_ok())
            .collect()
    };
    let expect = |s: &str| -> BTreeSet<char> { s.chars().collect() };
    assert_eq!(set(false), expect(row.confirmed), "confirmed (reciprocal)");
    assert_eq!(set(true), expect(row.flat), "the flat rule");
    let invited: BTreeSet<char> = universe
        .chars()
        .filter(|c| {
            probe(&row, false, *c).is_err_and(|m| {
                m.contains("is invited as a maintainer of 'r' but has not accepted")
            })
        })
        .collect();
    assert_eq!(invited, expect(row.invited), "invited");
}

#[test]
fn mutual_legacy_listings_confirm_both() {
    check(Row {
        owner: vec![listing("A")],
        others: vec![('A', vec![listing("O")])],
        confirmed: "OA",
        invited: "",
        flat: "OA",
    });
}

#[test]
fn a_listing_not_returned_is_an_invitation() {
    check(Row {
        owner: vec![listing("A")],
        others: vec![('A', vec![listing("R")])],
        confirmed: "O",
        invited: "A",
        flat: "OAR",
    });
}

#[test]
fn reciprocity_with_any_member_confirms_transitively() {
    check(Row {
        owner: vec![listing("A")],
        others: vec![('A', vec![listing("OR")]), ('R', vec![listing("A")])],
        confirmed: "OAR",
        invited: "",
        flat: "OAR",
    });
}

#[test]
fn an_invitee_in_the_legacy_tag_is_not_a_maintainer() {
    check(Row {
        owner: vec![lead('O'), maint('I'), listing("OI")],
        others: vec![],
        confirmed: "O",
        invited: "I",
        flat: "OI",
    });
}

#[test]
fn the_invitee_accepts() {
    check(Row {
        owner: vec![lead('O'), maint('I'), listing("OI")],
        others: vec![('I', vec![maint('I'), lead('O'), listing("IO")])],
        confirmed: "OI",
        invited: "",
        flat: "OI",
    });
}

#[test]
fn an_invitees_older_fork_does_not_rule_the_repository() {
    check(Row {
        owner: vec![lead('O'), maint('I')],
        others: vec![('I', vec![listing("Z")]), ('Z', vec![listing("I")])],
        confirmed: "O",
        invited: "I",
        flat: "OIZ",
    });
}

#[test]
fn role_mode_ignores_the_maintainers_tag() {
    check(Row {
        owner: vec![lead('O'), listing("OX")],
        others: vec![],
        confirmed: "O",
        invited: "",
        flat: "OX",
    });
}

#[test]
fn an_ended_record_grants_nothing() {
    check(Row {
        owner: vec![lead('O'), role("m", 'A', &["1", "9"])],
        others: vec![('A', vec![lead('O'), maint('A')])],
        confirmed: "O",
        invited: "",
        flat: "O",
    });
}

#[test]
fn a_maintainer_who_left_declines() {
    check(Row {
        owner: vec![lead('O'), role("m", 'A', &["1"])],
        others: vec![(
            'A',
            vec![role("M", 'O', &["2"]), role("m", 'A', &["2", "5"])],
        )],
        confirmed: "O",
        invited: "",
        flat: "OA",
    });
}

#[test]
fn moderators_have_no_push_rights() {
    check(Row {
        owner: vec![lead('O'), maint('B'), role("o", 'Y', &[])],
        others: vec![
            ('B', vec![lead('O'), maint('B')]),
            ('Y', vec![lead('O'), role("o", 'Y', &[])]),
        ],
        confirmed: "OB",
        invited: "",
        flat: "OB",
    });
}

#[test]
fn a_cycle_of_invitees_confirms_nobody() {
    check(Row {
        owner: vec![maint('B')],
        others: vec![('B', vec![maint('C')]), ('C', vec![maint('O')])],
        confirmed: "O",
        invited: "B",
        flat: "OBC",
    });
}

#[test]
fn a_pending_lead_leaves_nobody_confirmed() {
    let row = Row {
        owner: vec![lead('L'), maint('O')],
        others: vec![],
        confirmed: "",
        invited: "",
        flat: "OL",
    };
    let mut h = world(&row, false);
    let why = h
        .engine
        .purgatory_view()
        .into_iter()
        .find_map(|w| w.authority)
        .expect("the operator view says why nobody may push");
    assert!(why.contains("has not accepted"), "{why}");
    h.drain();
    check(row);
}

#[test]
fn conflicting_leads_leave_nobody_confirmed() {
    check(Row {
        owner: vec![lead('O'), lead('L')],
        others: vec![],
        confirmed: "",
        invited: "",
        flat: "OL",
    });
}

/// The acceptance flow: an invitee's state is accepted and waits (not authoritative)
/// although its data is here; their accepting announcement makes it count at once, and
/// the owner's repository is aligned with it without another push.
#[test]
fn an_invitees_state_counts_the_moment_they_accept() {
    const REMOTE: &str = "https://elsewhere.example/r.git";
    let mut h = Harness::new();
    let (owner, invitee) = (k('O'), k('I'));
    let mut tags = vec![
        s(&["d", "r"]),
        s(&["clone", &our_clone(&owner, "r"), REMOTE]),
        s(&["relays", RELAY]),
    ];
    tags.extend([lead('O'), maint('I'), listing("OI")]);
    h.send(&sign(
        &owner,
        nostr::prelude::Kind::GitRepoAnnouncement,
        10,
        tags,
    ));
    let ours = state(&owner, "r", 11, &[("refs/heads/main", oid(1))], None);
    h.send(&ours);
    assert!(
        h.push(&repo(&owner, "r"), &[("refs/heads/main", Some(oid(1)))])
            .is_accepted()
    );
    let theirs = state(&invitee, "r", 12, &[("refs/heads/main", oid(2))], None);
    assert_ok(
        h.send_from(&theirs, grasp_core::Origin::Sync),
        true,
        PURGATORY,
    );
    h.advance(std::time::Duration::from_millis(500));
    h.answer_list(REMOTE, &[("refs/heads/main", oid(2))]);
    h.answer_fetch(REMOTE, &[oid(2)]);
    assert!(
        !h.is_stored(&theirs.id),
        "its data is here, but an invitee's state governs nothing"
    );
    let note = h
        .engine
        .purgatory_view()
        .into_iter()
        .find(|w| w.id == theirs.id)
        .and_then(|w| w.authority)
        .expect("the view says the author is only invited");
    assert!(note.contains("is invited as a maintainer of 'r'"), "{note}");
    let pushed = h.push(&repo(&owner, "r"), &[("refs/heads/main", Some(oid(2)))]);
    let why = pushed.refs[0].1.clone().unwrap_err();
    assert!(why.contains("is invited as a maintainer of 'r'"), "{why}");
    let from = h.trace.len();
    let accepts = elsewhere(&invitee, "r", 20, &[maint('I'), lead('O')]);
    assert_ok(h.send(&accepts), true, "");
    assert!(h.is_stored(&theirs.id), "released the moment they accept");
    let aligned = h.trace[from..].iter().any(|(_, e)| {
        matches!(e, Effect::AlignRepo { repo: r, refs, .. }
            if *r == repo(&owner, "r") && refs.iter().any(|(_, o)| *o == oid(2)))
    });
    assert!(aligned, "the owner's repository follows the accepted state");
}

/// An invitee's state *stored* for their own fork here (so it waits for nothing) becomes
/// authoritative for the inviting repository when they accept: that repository is
/// aligned with it at once — its objects copied from the fork — not at the next push.
#[test]
fn an_accepted_invitees_stored_state_realigns_the_inviting_repository() {
    let mut h = Harness::new();
    let (owner, invitee) = (k('O'), k('I'));
    h.send(&announcement(&owner, "r", 10, &[], &[&invitee]));
    let ours = state(&owner, "r", 11, &[("refs/heads/main", oid(1))], None);
    h.send(&ours);
    assert!(
        h.push(&repo(&owner, "r"), &[("refs/heads/main", Some(oid(1)))])
            .is_accepted()
    );
    // The invitee's own fork here, with a newer state pushed to it.
    h.send(&announcement(&invitee, "r", 12, &[], &[]));
    let theirs = state(&invitee, "r", 13, &[("refs/heads/main", oid(2))], None);
    h.send(&theirs);
    assert!(
        h.push(&repo(&invitee, "r"), &[("refs/heads/main", Some(oid(2)))])
            .is_accepted()
    );
    assert!(h.is_stored(&theirs.id), "the fork's state is served");
    assert_eq!(
        h.refs[&repo(&owner, "r")].get("refs/heads/main"),
        Some(&oid(1)),
        "an invitation governs nothing"
    );
    // The invitee accepts: their fork's announcement now lists the owner back.
    let accepts = announcement(&invitee, "r", 14, &[], &[&owner]);
    assert_ok(h.send(&accepts), true, "");
    assert_eq!(
        h.refs[&repo(&owner, "r")].get("refs/heads/main"),
        Some(&oid(2)),
        "the inviting repository follows the accepted maintainer's newer state"
    );
    assert!(
        h.objects[&repo(&owner, "r")].contains(&oid(2)),
        "its objects were copied from the fork"
    );
    // And a departure does not roll it back.
    let leaves = announcement(&invitee, "r", 15, &[], &[]);
    assert_ok(h.send(&leaves), true, "");
    assert_eq!(
        h.refs[&repo(&owner, "r")].get("refs/heads/main"),
        Some(&oid(2))
    );
}
