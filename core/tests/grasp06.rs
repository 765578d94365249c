//! GRASP-06, the contributor endpoint `/prs/<npub>/<d>.git` (docs: GRASP-06.md): the
//! decisions of the engine — the §4 push table, the §5 relaxation of pull requests naming
//! it, event-first and git-first release through the one release path, tip mismatches,
//! placeholder expiry and the caps.

mod support;

use grasp_core::nostr::prelude::{Event, EventId, Keys, Kind};
use grasp_core::*;
use support::*;

fn config() -> Config {
    let mut c = Config::new(OUR.parse().unwrap());
    c.grasp06 = true;
    c
}

fn on() -> Harness {
    Harness::with_config(config())
}

fn prs_url(author: &Keys, d: &str) -> String {
    format!("{OUR}/prs/{}/{d}.git", npub(&author.public_key()))
}

/// A pull request by `author` for `(target, d)` with tip `tip`, its `clone` naming `clone`.
fn pr(author: &Keys, target: &Keys, d: &str, at: u64, tip: Oid, clone: &str) -> Event {
    pull_request(author, target, d, at, &tip.to_string(), &[clone])
}

/// A contributor's relaxed pull request: tagging a coordinate nobody announced here.
fn relaxed(author: &Keys, d: &str, at: u64, tip: Oid) -> Event {
    pr(author, &key(90), d, at, tip, &prs_url(author, d))
}

fn nostr_ref(id: &EventId) -> String {
    format!("refs/nostr/{}", id.to_hex())
}

fn random_id(n: u8) -> EventId {
    EventId::from_byte_array([n; 32])
}

/// The reason the (single-ref) verdict gives, or "accepted".
fn reason(v: &PushVerdict) -> String {
    match &v.refs[0].1 {
        Ok(()) => "accepted".to_owned(),
        Err(why) => why.clone(),
    }
}

#[test]
fn prs_push_table_refusals() {
    let mut h = on();
    let c = key(1);
    let r = RepoId::prs(c.public_key(), "x");
    assert_eq!(
        reason(&h.push(&r, &[("refs/heads/main", Some(oid(1)))])),
        "only refs/nostr/<event-id> may be pushed to /prs/ URLs"
    );
    assert_eq!(
        reason(&h.push(&r, &[("refs/nostr/not-a-valid-event-id", Some(oid(1)))])),
        "refs/nostr/ refs must be named refs/nostr/<64 lowercase hex event id>"
    );
    let upper = format!("refs/nostr/{}", "A".repeat(64));
    assert!(reason(&h.push(&r, &[(&upper, Some(oid(1)))])).starts_with("refs/nostr/ refs must"));
    assert_eq!(
        reason(&h.push(&r, &[(&nostr_ref(&random_id(1)), None)])),
        "refs/nostr/<event-id> refs cannot be deleted by a push"
    );
    // One refused ref refuses the push: nothing is written, no placeholder made.
    let v = h.push(
        &r,
        &[
            (&nostr_ref(&random_id(2)), Some(oid(1))),
            ("refs/heads/main", Some(oid(1))),
        ],
    );
    assert!(!v.is_accepted());
    assert_eq!(h.engine.metrics().placeholders, 0);
    assert!(h.refs.get(&r).is_none_or(|m| m.is_empty()));
}

#[test]
fn prs_push_refused_for_known_events_of_another_scope() {
    let mut h = on();
    let (c, other) = (key(1), key(2));
    let p = relaxed(&c, "x", 10, oid(5));
    assert_ok(h.send(&p), true, PURGATORY);
    let want = |npub_of: &Keys, d: &str| {
        format!(
            "event {} is not a pull request by {} for '{d}'",
            p.id.to_hex(),
            npub(&npub_of.public_key())
        )
    };
    // By another npub's URL, or for another identifier.
    let r = RepoId::prs(other.public_key(), "x");
    assert_eq!(
        reason(&h.push(&r, &[(&nostr_ref(&p.id), Some(oid(5)))])),
        want(&other, "x")
    );
    let r = RepoId::prs(c.public_key(), "y");
    assert_eq!(
        reason(&h.push(&r, &[(&nostr_ref(&p.id), Some(oid(5)))])),
        want(&c, "y")
    );
    // A known event that is no pull request (a stored announcement).
    let a = announcement(&key(3), "x", 10, &[], &[]);
    h.send(&a);
    let r = RepoId::prs(c.public_key(), "x");
    assert_eq!(
        reason(&h.push(&r, &[(&nostr_ref(&a.id), Some(oid(5)))])),
        format!(
            "event {} is not a pull request by {} for 'x'",
            a.id.to_hex(),
            npub(&c.public_key())
        )
    );
    assert!(!h.is_stored(&p.id));
}

#[test]
fn prs_off_refuses_every_push_and_relaxes_nothing() {
    let mut h = Harness::new();
    let c = key(1);
    let r = RepoId::prs(c.public_key(), "x");
    assert!(
        !h.push(&r, &[(&nostr_ref(&random_id(1)), Some(oid(1)))])
            .is_accepted()
    );
    assert_ok(h.send(&relaxed(&c, "x", 10, oid(5))), false, "blocked:");
}

#[test]
fn relaxed_pr_conditions() {
    let mut h = on();
    let (c, other) = (key(1), key(2));
    assert_ok(h.send(&relaxed(&c, "x", 10, oid(5))), true, PURGATORY);
    let variants = [
        // Another host.
        pr(
            &c,
            &key(90),
            "x",
            11,
            oid(5),
            &format!("http://elsewhere.test/prs/{}/x.git", npub(&c.public_key())),
        ),
        // Another npub's /prs/ URL.
        pr(&c, &key(90), "x", 12, oid(5), &prs_url(&other, "x")),
        // A `d` its `a` tags do not name.
        pr(&c, &key(90), "x", 13, oid(5), &prs_url(&c, "y")),
        // A query.
        pr(
            &c,
            &key(90),
            "x",
            14,
            oid(5),
            &format!("{}?a=b", prs_url(&c, "x")),
        ),
    ];
    for e in &variants {
        assert_ok(h.send(e), false, "blocked:");
    }
    // Spelling latitude: host case, no `.git`, a trailing slash, an encoded identifier.
    let loose = format!("HTTP://GRASP.TEST/prs/{}/my%20repo/", npub(&c.public_key()));
    assert_ok(
        h.send(&pr(&c, &key(90), "my repo", 15, oid(6), &loose)),
        true,
        PURGATORY,
    );
    // Never relaxed: invalid events, other kinds.
    let future = pull_request(
        &c,
        &key(90),
        "x",
        3_000_000_000,
        &oid(5).to_string(),
        &[&prs_url(&c, "x")],
    );
    assert_ok(h.send(&future), false, "invalid:");
    let note = sign(
        &c,
        Kind::TextNote,
        10,
        vec![s(&["clone", &prs_url(&c, "x")])],
    );
    assert_ok(h.send(&note), false, "blocked:");
    assert_eq!(h.engine.metrics().prs_prs, 2);
}

#[test]
fn relaxed_pr_cap_per_author() {
    let mut cfg = config();
    cfg.prs_max_waiting_per_author = 2;
    let mut h = Harness::with_config(cfg);
    let c = key(1);
    for i in 0..2 {
        assert_ok(
            h.send(&relaxed(&c, "x", 10 + i, oid(5 + i))),
            true,
            PURGATORY,
        );
    }
    assert_ok(
        h.send(&relaxed(&c, "x", 20, oid(9))),
        false,
        "rate-limited: too many pull requests waiting for /prs/ pushes by this author",
    );
    // Another author has slots of their own.
    assert_ok(h.send(&relaxed(&key(2), "x", 20, oid(9))), true, PURGATORY);
}

#[test]
fn prs_event_first_release() {
    let mut h = on();
    let c = key(1);
    let p = relaxed(&c, "x", 10, oid(5));
    assert_ok(h.send(&p), true, PURGATORY);
    assert!(!h.is_stored(&p.id));
    let r = RepoId::prs(c.public_key(), "x");
    assert!(
        h.push(&r, &[(&nostr_ref(&p.id), Some(oid(5)))])
            .is_accepted()
    );
    assert!(
        h.is_stored(&p.id),
        "the push released the waiting pull request"
    );
    assert_eq!(h.engine.metrics().placeholders, 0);
    assert_eq!(h.engine.metrics().prs_prs, 0);
    // Pushing the same tip again is fine; another tip is refused.
    assert!(
        h.push(&r, &[(&nostr_ref(&p.id), Some(oid(5)))])
            .is_accepted()
    );
    assert!(reason(&h.push(&r, &[(&nostr_ref(&p.id), Some(oid(6)))])).contains("names tip"));
}

#[test]
fn prs_git_first_release() {
    let mut h = on();
    let c = key(1);
    let p = relaxed(&c, "x", 10, oid(5));
    let r = RepoId::prs(c.public_key(), "x");
    assert!(
        h.push(&r, &[(&nostr_ref(&p.id), Some(oid(5)))])
            .is_accepted()
    );
    assert_eq!(h.engine.metrics().prs_placeholders, 1);
    assert!(
        h.journal.keys().any(|k| k.starts_with("p:prs/")),
        "the scoped placeholder is journalled: {:?}",
        h.journal.keys()
    );
    assert_ok(h.send(&p), true, "");
    assert!(h.is_stored(&p.id));
    assert_eq!(h.engine.metrics().placeholders, 0);
    assert_eq!(h.refs[&r][&nostr_ref(&p.id)], oid(5), "the ref stays");
}

#[test]
fn prs_git_first_other_scope_is_not_taken() {
    // A placeholder under another npub's /prs/ repository does not release C's PR.
    let mut h = on();
    let (c, other) = (key(1), key(2));
    let p = relaxed(&c, "x", 10, oid(5));
    let r = RepoId::prs(other.public_key(), "x");
    assert!(
        h.push(&r, &[(&nostr_ref(&p.id), Some(oid(5)))])
            .is_accepted()
    );
    assert_ok(h.send(&p), true, PURGATORY);
    assert!(!h.is_stored(&p.id));
}

#[test]
fn prs_tip_mismatch() {
    let mut h = on();
    let c = key(1);
    let r = RepoId::prs(c.public_key(), "x");
    // Event first naming B; a push of A is refused and writes nothing.
    let p = relaxed(&c, "x", 10, oid(0xb));
    assert_ok(h.send(&p), true, PURGATORY);
    let v = h.push(&r, &[(&nostr_ref(&p.id), Some(oid(0xa)))]);
    assert_eq!(
        reason(&v),
        format!(
            "the pull request event {} names tip {}, not {}",
            p.id.to_hex(),
            oid(0xb),
            oid(0xa)
        )
    );
    assert!(!h.is_stored(&p.id));
    // Git first with A, then the PR naming B: the ref goes on arrival, the PR waits.
    let q = relaxed(&c, "x", 11, oid(0xb));
    assert!(
        h.push(&r, &[(&nostr_ref(&q.id), Some(oid(0xa)))])
            .is_accepted()
    );
    let from = h.trace.len();
    assert_ok(h.send(&q), true, PURGATORY);
    assert_effects(&h, from, &["SetRef { repo: RepoId(prs/"]);
    assert!(!h.refs[&r].contains_key(&nostr_ref(&q.id)));
    assert_eq!(h.engine.metrics().placeholders, 0);
    assert!(!h.is_stored(&q.id));
}

#[test]
fn prs_placeholder_expiry() {
    let mut h = on();
    let c = key(1);
    let r = RepoId::prs(c.public_key(), "x");
    let name = nostr_ref(&random_id(7));
    assert!(h.push(&r, &[(&name, Some(oid(1)))]).is_accepted());
    h.advance(mins(19));
    assert!(h.refs[&r].contains_key(&name), "kept before 20 min");
    h.advance(mins(2));
    assert!(!h.refs[&r].contains_key(&name), "gone at 20 min");
    assert_eq!(h.engine.metrics().placeholders, 0);
    assert!(h.journal.keys().all(|k| !k.starts_with("p:")));
}

#[test]
fn prs_placeholder_survives_a_restart_with_its_scope() {
    let mut h = on();
    let c = key(1);
    let r = RepoId::prs(c.public_key(), "x");
    let p = relaxed(&c, "x", 10, oid(5));
    assert!(
        h.push(&r, &[(&nostr_ref(&p.id), Some(oid(5)))])
            .is_accepted()
    );
    h.restart(config());
    assert_eq!(h.engine.metrics().prs_placeholders, 1);
    assert_ok(h.send(&p), true, "");
}

#[test]
fn prs_caps() {
    let mut h = on();
    let c = key(1);
    let r = RepoId::prs(c.public_key(), "x");
    for i in 0..20u8 {
        assert!(
            h.push(&r, &[(&nostr_ref(&random_id(i)), Some(oid(1)))])
                .is_accepted()
        );
    }
    let r2 = RepoId::prs(c.public_key(), "y");
    assert_eq!(
        reason(&h.push(&r2, &[(&nostr_ref(&random_id(99)), Some(oid(1)))])),
        format!(
            "too many unconfirmed pushes for {} (limit 20); publish the pull request event first",
            npub(&c.public_key())
        )
    );
    // A known event's push is no placeholder: the full slots do not block it.
    let p = relaxed(&c, "y", 10, oid(5));
    assert_ok(h.send(&p), true, PURGATORY);
    assert!(
        h.push(&r2, &[(&nostr_ref(&p.id), Some(oid(5)))])
            .is_accepted()
    );
    assert!(h.is_stored(&p.id));
    // More than 10 refs in one push: every ref refused.
    let names: Vec<String> = (100..111u8).map(|i| nostr_ref(&random_id(i))).collect();
    let updates: Vec<(&str, Option<Oid>)> =
        names.iter().map(|n| (n.as_str(), Some(oid(1)))).collect();
    let v = h.push(&RepoId::prs(key(2).public_key(), "x"), &updates);
    assert!(
        v.refs
            .iter()
            .all(|(_, r)| r == &Err("at most 10 refs per push here".to_owned()))
    );
}

#[test]
fn prs_mirror_one_way() {
    let mut h = on();
    let (owner, c) = (key(1), key(2));
    h.send(&announcement(&owner, "r", 10, &[], &[]));
    h.send(&state(
        &owner,
        "r",
        11,
        &[("refs/heads/main", oid(1))],
        None,
    ));
    assert!(
        h.push(&repo(&owner, "r"), &[("refs/heads/main", Some(oid(1)))])
            .is_accepted()
    );
    // A PR of the hosted repository, released by a /prs/ push.
    let p = pr(&c, &owner, "r", 12, oid(5), &prs_url(&c, "r"));
    assert_ok(h.send(&p), true, PURGATORY);
    let prs = RepoId::prs(c.public_key(), "r");
    assert!(
        h.push(&prs, &[(&nostr_ref(&p.id), Some(oid(5)))])
            .is_accepted()
    );
    assert!(h.is_stored(&p.id));
    let hosted = repo(&owner, "r");
    assert_eq!(h.refs[&hosted][&nostr_ref(&p.id)], oid(5));
    assert!(h.objects[&hosted].contains(&oid(5)));
    // A standard-endpoint push writes nothing under /prs/.
    let q = pull_request(&c, &owner, "r", 13, &oid(6).to_string(), &[]);
    assert_ok(h.send(&q), true, PURGATORY);
    let from = h.trace.len();
    assert!(
        h.push(&hosted, &[(&nostr_ref(&q.id), Some(oid(6)))])
            .is_accepted()
    );
    assert!(h.is_stored(&q.id));
    assert!(
        h.trace[from..]
            .iter()
            .all(|(_, e)| !format!("{e:?}").contains("RepoId(prs/")),
        "no effect touches a /prs/ repository"
    );
}

#[test]
fn prs_deletion_removes_the_ref() {
    let mut h = on();
    let c = key(1);
    let p = relaxed(&c, "x", 10, oid(5));
    assert_ok(h.send(&p), true, PURGATORY);
    let r = RepoId::prs(c.public_key(), "x");
    assert!(
        h.push(&r, &[(&nostr_ref(&p.id), Some(oid(5)))])
            .is_accepted()
    );
    let del = sign(&c, Kind::EventDeletion, 20, vec![s(&["e", &p.id.to_hex()])]);
    assert_ok(h.send(&del), true, "");
    assert!(!h.refs[&r].contains_key(&nostr_ref(&p.id)));
}

#[test]
fn prs_relaxed_count_survives_a_restart() {
    let mut cfg = config();
    cfg.prs_max_waiting_per_author = 1;
    let mut h = Harness::with_config(cfg.clone());
    let c = key(1);
    assert_ok(h.send(&relaxed(&c, "x", 10, oid(5))), true, PURGATORY);
    h.restart(cfg);
    assert_eq!(h.engine.metrics().prs_prs, 1);
    assert_ok(
        h.send(&relaxed(&c, "x", 11, oid(6))),
        false,
        "rate-limited: too many pull requests waiting",
    );
}

#[test]
fn prs_data_of_another_npub_does_not_release() {
    // C's PR waits; another npub pushes the same commit under an id of its own to its
    // own /prs/ repository: the objects are here, but not in C's scope.
    let mut h = on();
    let (c, other) = (key(1), key(2));
    let p = relaxed(&c, "x", 10, oid(5));
    assert_ok(h.send(&p), true, PURGATORY);
    let r = RepoId::prs(other.public_key(), "x");
    assert!(
        h.push(&r, &[(&nostr_ref(&random_id(3)), Some(oid(5)))])
            .is_accepted()
    );
    assert!(
        !h.is_stored(&p.id),
        "released from another npub's repository"
    );
    // C's own push releases it.
    let mine = RepoId::prs(c.public_key(), "x");
    assert!(
        h.push(&mine, &[(&nostr_ref(&p.id), Some(oid(5)))])
            .is_accepted()
    );
    assert!(h.is_stored(&p.id));
}

#[test]
fn prs_operator_view_lists_scope_and_deadline() {
    let mut h = on();
    let c = key(1);
    let p = relaxed(&c, "x", 10, oid(5));
    assert_ok(h.send(&p), true, PURGATORY);
    let r = RepoId::prs(c.public_key(), "y");
    assert!(
        h.push(&r, &[(&nostr_ref(&random_id(4)), Some(oid(1)))])
            .is_accepted()
    );
    let view = h.engine.purgatory_view();
    let pr_row = view
        .iter()
        .find(|w| w.id == p.id)
        .expect("the PR is listed");
    assert_eq!(pr_row.kind, "prs_pr");
    let ph = view
        .iter()
        .find(|w| w.id == random_id(4))
        .expect("the placeholder is listed");
    assert_eq!(
        (ph.kind, ph.d.as_str(), ph.author),
        ("prs_placeholder", "y", c.public_key())
    );
    assert_eq!(ph.deadline, h.now.plus(mins(20)));
}
