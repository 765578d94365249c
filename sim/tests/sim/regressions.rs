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
