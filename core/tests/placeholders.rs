//! Git-first placeholders have a budget of their own (issue 14): anonymous
//! `refs/nostr/<id>` pushes can neither fill purgatory's events' total nor exceed their
//! per-push, per-repository, per-address and total limits — each checked before git writes.

mod support;

use grasp_core::nostr::prelude::{EventId, Keys};
use grasp_core::*;
use support::*;

fn served(h: &mut Harness, owner: &Keys) {
    h.send(&announcement(owner, "r", 10, &[], &[]));
    h.send(&state(owner, "r", 11, &[("refs/heads/main", oid(1))], None));
    assert!(
        h.push(&repo(owner, "r"), &[("refs/heads/main", Some(oid(1)))])
            .is_accepted()
    );
}

/// `n` refs/nostr/ refs naming made-up event ids, starting at `from`.
fn made_up(from: u8, n: u8) -> Vec<String> {
    (from..from + n)
        .map(|i| format!("refs/nostr/{}", EventId::from_byte_array([i; 32]).to_hex()))
        .collect()
}

fn push_refs(h: &mut Harness, r: &RepoId, refs: &[String]) -> PushVerdict {
    let updates: Vec<(&str, Option<Oid>)> =
        refs.iter().map(|n| (n.as_str(), Some(oid(7)))).collect();
    h.push(r, &updates)
}

fn config() -> Config {
    Config::new(OUR.parse().unwrap())
}

#[test]
fn placeholders_never_count_toward_the_events_total() {
    let mut cfg = config();
    cfg.limits.purgatory_total = 3;
    let mut h = Harness::with_config(cfg);
    let owner = key(1);
    served(&mut h, &owner);
    let r = repo(&owner, "r");
    assert!(push_refs(&mut h, &r, &made_up(1, 10)).is_accepted());
    assert_eq!(h.engine.metrics().placeholders, 10);
    let other = key(2);
    assert_ok(
        h.send(&announcement(&other, "o", 10, &[], &[])),
        true,
        PURGATORY,
    );
    let st = state(&other, "o", 11, &[("refs/heads/main", oid(2))], None);
    assert_ok(h.send(&st), true, PURGATORY);
}

#[test]
fn a_push_of_too_many_new_placeholders_is_refused_whole() {
    let mut cfg = config();
    cfg.limits.placeholders_per_push = 2;
    let mut h = Harness::with_config(cfg);
    let owner = key(1);
    served(&mut h, &owner);
    let r = repo(&owner, "r");
    let v = push_refs(&mut h, &r, &made_up(1, 3));
    assert!(!v.is_accepted());
    for (name, verdict) in &v.refs {
        let why = verdict
            .as_ref()
            .expect_err("every new placeholder is refused");
        assert!(why.contains("limit 2"), "{name}: {why}");
    }
    assert_eq!(h.engine.metrics().placeholders, 0, "git wrote nothing");
    assert!(push_refs(&mut h, &r, &made_up(1, 2)).is_accepted());
    // Pushing the same placeholders again creates none.
    assert!(push_refs(&mut h, &r, &made_up(1, 2)).is_accepted());
    assert_eq!(h.engine.metrics().placeholders, 2);
}

#[test]
fn placeholders_are_capped_per_repository_per_address_and_in_total() {
    let mut cfg = config();
    cfg.limits.placeholders_per_repo = 3;
    cfg.limits.placeholders_per_client = 4;
    cfg.limits.placeholders_total = 6;
    let mut h = Harness::with_config(cfg);
    let (a, b, c) = (key(1), key(2), key(3));
    for k in [&a, &b, &c] {
        served(&mut h, k);
    }
    let refused = |v: &PushVerdict| -> String {
        v.refs
            .iter()
            .find_map(|(_, r)| r.clone().err())
            .expect("a refusal")
    };
    h.client = Some("192.0.2.1".into());
    assert!(push_refs(&mut h, &repo(&a, "r"), &made_up(1, 3)).is_accepted());
    let why = refused(&push_refs(&mut h, &repo(&a, "r"), &made_up(10, 1)));
    assert!(
        why.starts_with("rate-limited:") && why.contains("repository"),
        "{why}"
    );
    assert!(push_refs(&mut h, &repo(&b, "r"), &made_up(20, 1)).is_accepted());
    let why = refused(&push_refs(&mut h, &repo(&b, "r"), &made_up(21, 1)));
    assert!(why.contains("your address"), "{why}");
    h.client = Some("192.0.2.2".into());
    assert!(push_refs(&mut h, &repo(&b, "r"), &made_up(30, 2)).is_accepted());
    let why = refused(&push_refs(&mut h, &repo(&c, "r"), &made_up(40, 1)));
    assert!(why.contains("this server"), "{why}");
    assert_eq!(h.engine.metrics().placeholders, 6);
    // Expired placeholders free their budget, across a restart too.
    h.restart(config_with_total(6));
    assert_eq!(h.engine.metrics().placeholders, 6);
    h.advance(mins(31));
    assert_eq!(h.engine.metrics().placeholders, 0);
    assert!(push_refs(&mut h, &repo(&c, "r"), &made_up(40, 1)).is_accepted());
}

fn config_with_total(n: usize) -> Config {
    let mut cfg = config();
    cfg.limits.placeholders_total = n;
    cfg
}
