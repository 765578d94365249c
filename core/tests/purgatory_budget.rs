//! Purgatory is bounded by bytes as well as by count (issue 14), and a new repository
//! (its waiting announcement and state) costs its author one slot, not two.

mod support;

use grasp_core::nostr::prelude::Kind;
use grasp_core::*;
use support::*;

fn config() -> Config {
    Config::new(OUR.parse().unwrap())
}

#[test]
fn waiting_events_are_bounded_by_bytes_per_author_and_in_total() {
    let mut cfg = config();
    cfg.limits.purgatory_bytes_per_author = 4_000;
    cfg.limits.purgatory_bytes_total = 7_000;
    let mut h = Harness::with_config(cfg);
    let big = "x".repeat(1_500);
    let big_state = |k: &grasp_core::nostr::prelude::Keys, d: &str, o: u64| {
        let tags = vec![
            s(&["d", d]),
            vec!["refs/heads/main".into(), oid(o).to_string()],
        ];
        let e = grasp_core::nostr::prelude::EventBuilder::new(Kind::RepoState, big.clone())
            .tags(
                tags.into_iter()
                    .map(|t| grasp_core::nostr::prelude::Tag::parse(t).unwrap()),
            )
            .custom_created_at(grasp_core::nostr::prelude::Timestamp::from_secs(11));
        use grasp_core::nostr::prelude::FinalizeEvent;
        e.finalize(k).unwrap()
    };
    let (a, b) = (key(1), key(2));
    for d in ["r0", "r1"] {
        assert_ok(h.send(&announcement(&a, d, 10, &[], &[])), true, PURGATORY);
    }
    assert_ok(h.send(&big_state(&a, "r0", 1)), true, PURGATORY);
    let (ok, msg) = h.send(&big_state(&a, "r1", 2));
    assert!(
        !ok && msg.starts_with("rate-limited:") && msg.contains("4000 bytes"),
        "{msg}"
    );
    let before = h.engine.metrics().purgatory_bytes;
    assert!(before > 2_000, "{before}");
    // Another author: its own budget, until the total is reached.
    for d in ["s0", "s1"] {
        assert_ok(h.send(&announcement(&b, d, 10, &[], &[])), true, PURGATORY);
    }
    assert_ok(h.send(&big_state(&b, "s0", 3)), true, PURGATORY);
    let (ok, msg) = h.send(&big_state(&b, "s1", 4));
    assert!(!ok && msg.contains("purgatory is full"), "{msg}");
    h.advance(mins(31));
    assert_eq!(h.engine.metrics().purgatory_bytes, announcement_bytes(&h));
}

/// Soft-expired announcements still wait (24 h); their bytes are what is left.
fn announcement_bytes(h: &Harness) -> usize {
    let m = h.engine.metrics();
    assert_eq!(m.purgatory_states, 0);
    m.purgatory_bytes
}

#[test]
fn a_new_repository_costs_one_slot_of_the_per_author_cap() {
    let mut cfg = config();
    cfg.limits.purgatory_per_author = 2;
    let mut h = Harness::with_config(cfg);
    let a = key(1);
    for (i, d) in ["r0", "r1"].into_iter().enumerate() {
        assert_ok(h.send(&announcement(&a, d, 10, &[], &[])), true, PURGATORY);
        let st = state(&a, d, 11, &[("refs/heads/main", oid(i as u64 + 1))], None);
        assert_ok(h.send(&st), true, PURGATORY);
    }
    assert_ok(
        h.send(&announcement(&a, "r2", 10, &[], &[])),
        true,
        PURGATORY,
    );
    let st = state(&a, "r2", 11, &[("refs/heads/main", oid(9))], None);
    assert_ok(h.send(&st), false, "rate-limited:");
}

/// Each waiting announcement holds a bare repository; new keys are free, so a total cap
/// bounds them (issue: hostile input, item 7). A released repository frees its slot.
#[test]
fn waiting_repositories_have_a_total_cap() {
    let mut config = Config::new(OUR.parse().unwrap());
    config.limits.waiting_repos_total = 3;
    let mut h = Harness::with_config(config);
    for n in 1..=3 {
        assert_ok(
            h.send(&announcement(&key(n), "r", 10, &[], &[])),
            true,
            PURGATORY,
        );
    }
    let fourth = announcement(&key(4), "r", 10, &[], &[]);
    let (ok, msg) = h.send(&fourth);
    assert!(
        !ok && msg.starts_with("rate-limited:") && msg.contains("already waiting"),
        "{msg}"
    );
    assert!(
        !h.trace.iter().any(
            |(_, e)| matches!(e, Effect::CreateRepo { repo } if repo.owner == key(4).public_key())
        ),
        "no bare repository for the refused one"
    );
    // The first owner's data arrives: its announcement is served, a slot is free.
    let st = state(&key(1), "r", 11, &[("refs/heads/main", oid(1))], None);
    h.send(&st);
    assert!(
        h.push(&repo(&key(1), "r"), &[("refs/heads/main", Some(oid(1)))])
            .is_accepted()
    );
    assert_ok(h.send(&fourth), true, PURGATORY);
}
