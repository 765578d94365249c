//! Seeds that found engine bugs, kept as regression cases: each was fixed in the engine
//! and runs with every sweep.

use grasp_sim::{Options, Shape, run_seed};

/// Fixed engine bug: `release_ready` released satisfiable waiting states in event-id order, so
/// an older state by another maintainer is aligned before a newer one in the same step.
/// After the push of the newer state's refs, the repository is aligned back to the older
/// state and then forward again (a transient rollback a fetching client can observe).
#[test]
fn seed_731_transient_rollback_in_release_order() {
    let opts = Options {
        strict_rollback: true,
        ..Options::default()
    };
    let r = run_seed(731, Shape::Busy, opts);
    if let Some(v) = r.violation {
        panic!(
            "{}: {} (replay: SIM_SEED=731 SIM_STRICT=1 scripts/sim)",
            v.invariant, v.detail
        );
    }
}

/// Engine bug: presence knowledge (`present`) outlives the repository that held the
/// objects. Data for `r0` is fetched into owner A's repository; A's announcement
/// soft-expires at 30 min and A's repository is deleted; a later fetch for `r0` into
/// co-owner B's repository runs the release path, which copies the remaining objects
/// "from" the deleted repository A and aligns B to refs whose objects B does not hold.
#[test]
fn seed_6361_release_after_source_repo_deleted() {
    let r = run_seed(6361, Shape::Governance, Options::default());
    if let Some(v) = r.violation {
        panic!(
            "{}: {} (replay: SIM_SEED=6361 scripts/sim)",
            v.invariant, v.detail
        );
    }
}

/// The eight seeds of the 700,000-seed sweep (issue 18), each with the invariant it broke
/// and the engine-level test of its root cause in `core/tests/deep_sweep.rs`.
const DEEP_SWEEP: &[(u64, Shape, &str)] = &[
    // A superseded state served with its objects split between two repositories.
    (
        146816,
        Shape::Governance,
        "a_superseded_state_is_served_whole_in_one_repository",
    ),
    // An attempt kept fetching into a repository deleted under it.
    (
        418619,
        Shape::Governance,
        "a_fetch_into_a_deleted_repository_is_asked_again_into_a_live_one",
    ),
    // An input at the deadline's millisecond saw the entry still waiting.
    (
        375416,
        Shape::Flood,
        "an_input_at_the_deadline_finds_the_entry_expired",
    ),
    (
        572291,
        Shape::Flood,
        "an_input_at_the_deadline_finds_the_entry_expired",
    ),
    (
        582546,
        Shape::Flood,
        "an_input_at_the_deadline_finds_the_entry_expired",
    ),
    (
        628487,
        Shape::Flood,
        "an_input_at_the_deadline_finds_the_entry_expired",
    ),
    // A restart forgot the domains' request windows.
    (
        154081,
        Shape::Restarts,
        "a_restart_resumes_each_domains_request_window",
    ),
    (
        224319,
        Shape::Restarts,
        "a_restart_resumes_each_domains_request_window",
    ),
];

#[test]
fn deep_sweep_seeds() {
    let mut broken = Vec::new();
    for &(seed, shape, test) in DEEP_SWEEP {
        let r = run_seed(seed, shape, Options::default());
        if let Some(v) = &r.violation {
            broken.push(format!(
                "seed {seed} ({shape:?}) {}: {} (engine test {test}; replay: {})",
                v.invariant,
                v.detail,
                r.replay()
            ));
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

/// Fixed engine bug (found by the executor's crash faults): a waiting state superseded by
/// a newer state of the same author whose verdict waits on an object check is dropped at
/// once, and its journal record forgotten (`drop_entry` in `verdict.rs`), while the newer
/// one is journalled only after its check answers. A crash (or a shutdown) in between
/// loses both: the acknowledged older state is neither stored nor waiting after the
/// restart. Now the superseded record is forgotten only once its successor is journalled,
/// released or gone (`core/src/superseded.rs`).
#[test]
fn superseded_state_forgotten_early() {
    for seed in [354, 3700, 7851, 9097] {
        let r = run_seed(seed, Shape::Restarts, Options::default());
        if let Some(v) = r.violation {
            panic!(
                "seed {seed}: {}: {} (replay: SIM_SEED={seed} scripts/sim)",
                v.invariant, v.detail
            );
        }
    }
}
