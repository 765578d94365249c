//! Each planted bug must be caught by its named invariant within a bounded number of
//! seeds.

use grasp_sim::{Options, Planted, run_seed};

/// Seeds tried per planted bug before the test gives up.
const BOUND: u64 = 200;

#[test]
fn every_planted_bug_is_caught() {
    for planted in Planted::ALL {
        let want = planted.caught_by().expect("a planted bug");
        let shape = planted.shape();
        let caught = (0..BOUND).find_map(|seed| {
            let opts = Options {
                planted,
                ..Options::default()
            };
            let r = run_seed(seed, shape, opts);
            r.violation.map(|v| (seed, v))
        });
        let Some((seed, v)) = caught else {
            panic!("{planted:?} was not caught in {BOUND} seeds of {shape:?}");
        };
        println!(
            "{planted:?}: caught by {} at seed {seed}: {}",
            v.invariant, v.detail
        );
        assert_eq!(
            v.invariant, want,
            "{planted:?} should be caught by {want}, seed {seed} broke {} first: {}",
            v.invariant, v.detail
        );
    }
}
