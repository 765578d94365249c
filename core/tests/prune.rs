//! Issue 14, item 2: the objects of lapsed `refs/nostr/` placeholders are pruned — once
//! per repository and delay however many lapse — and a prune keeps what waiting events
//! still need although no ref names it yet.

mod support;

use grasp_core::nostr::prelude::{EventId, Keys};
use grasp_core::*;
use std::time::Duration;
use support::*;

const A: &str = "https://a.example/r.git";

fn config() -> Config {
    Config::new(OUR.parse().unwrap())
}

/// `owner`'s repository `r`, served with `main` at `oid(1)`; its announcement also lists
/// the remote `A`.
fn served(h: &mut Harness, owner: &Keys) -> RepoId {
    h.send(&announcement(owner, "r", 10, &[A], &[]));
    h.send(&state(owner, "r", 11, &[("refs/heads/main", oid(1))], None));
    let r = repo(owner, "r");
    assert!(
        h.push(&r, &[("refs/heads/main", Some(oid(1)))])
            .is_accepted()
    );
    r
}

fn placeholder(n: u8) -> String {
    format!("refs/nostr/{}", EventId::from_byte_array([n; 32]).to_hex())
}

fn prunes(h: &Harness, from: usize) -> Vec<(RepoId, Vec<Oid>)> {
    h.trace[from..]
        .iter()
        .filter_map(|(_, e)| match e {
            Effect::PruneObjects { repo, keep } => Some((repo.clone(), keep.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn lapsed_placeholders_are_pruned_once_per_repository_and_delay() {
    let mut h = Harness::with_config(config());
    let owner = key(1);
    let r = served(&mut h, &owner);
    for n in 1..=3u8 {
        let name = placeholder(n);
        assert!(
            h.push(&r, &[(&name, Some(oid(100 + u64::from(n))))])
                .is_accepted()
        );
        h.advance(Duration::from_secs(60));
    }
    let from = h.trace.len();
    // The three lapse a minute apart, 30 to 32 min after the first push; the prune is
    // due 5 min after the first lapse.
    h.advance(mins(30));
    assert_eq!(h.engine.metrics().placeholders, 0, "all three lapsed");
    assert!(
        prunes(&h, from).is_empty(),
        "no prune before its delay: {:?}",
        prunes(&h, from)
    );
    h.advance(mins(3));
    let done = prunes(&h, from);
    assert_eq!(done.len(), 1, "one prune for the three lapses: {done:?}");
    assert_eq!(done[0].0, r);
    let objects = &h.objects[&r];
    assert!(objects.contains(&oid(1)), "the branch's commit stays");
    for n in 101..=103 {
        assert!(!objects.contains(&oid(n)), "placeholder object {n} pruned");
    }
    h.advance(mins(60));
    assert_eq!(prunes(&h, from).len(), 1, "nothing lapsed since: no prune");
}

#[test]
fn a_prune_keeps_the_objects_waiting_events_need() {
    let mut cfg = config();
    cfg.prune_delay = Duration::ZERO;
    let mut h = Harness::with_config(cfg);
    let owner = key(1);
    let r = served(&mut h, &owner);
    assert!(h.push(&r, &[(&placeholder(1), Some(oid(7)))]).is_accepted());
    h.advance(mins(1));
    // A state naming two new commits; the sync finds one of them on A.
    let st = state(
        &owner,
        "r",
        12,
        &[("refs/heads/main", oid(5)), ("refs/heads/dev", oid(6))],
        None,
    );
    assert_ok(h.send(&st), true, PURGATORY);
    h.advance(Duration::from_secs(180));
    h.answer_list(A, &[("refs/heads/main", oid(5))]);
    h.answer_fetch(A, &[oid(5)]);
    assert!(
        h.objects[&r].contains(&oid(5)),
        "fetched, not yet referenced"
    );
    let from = h.trace.len();
    // The placeholder lapses (30 min after its push) while the state, a minute younger,
    // still waits for oid(6).
    h.advance(Duration::from_secs(26 * 60 + 30));
    let done = prunes(&h, from);
    assert_eq!(done.len(), 1, "{done:?}");
    assert!(done[0].1.contains(&oid(5)) && done[0].1.contains(&oid(6)));
    assert!(
        !h.objects[&r].contains(&oid(7)),
        "the placeholder's object went"
    );
    assert!(
        h.objects[&r].contains(&oid(5)),
        "the waiting state's fetched object stayed"
    );
    // Its last object arrives by a push: released, with both commits.
    assert!(
        h.push(
            &r,
            &[
                ("refs/heads/main", Some(oid(5))),
                ("refs/heads/dev", Some(oid(6)))
            ]
        )
        .is_accepted()
    );
    assert!(h.is_stored(&st.id));
}

#[test]
fn a_placeholder_dropped_over_budget_or_for_a_wrong_tip_is_pruned_too() {
    let mut cfg = config();
    cfg.prune_delay = Duration::ZERO;
    let mut h = Harness::with_config(cfg);
    let owner = key(1);
    let r = served(&mut h, &owner);
    let contributor = key(9);
    let pr = pull_request(&contributor, &owner, "r", 20, &oid(8).to_string(), &[]);
    let name = format!("refs/nostr/{}", pr.id.to_hex());
    assert!(h.push(&r, &[(&name, Some(oid(9)))]).is_accepted());
    let from = h.trace.len();
    // The PR names another tip: the placeholder's ref goes at once, and its object.
    assert_ok(h.send(&pr), true, PURGATORY);
    assert_eq!(prunes(&h, from).len(), 1);
    assert!(!h.objects[&r].contains(&oid(9)));
}
