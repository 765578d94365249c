//! Environment knobs shared by the simulation tests.

use grasp_sim::{Planted, RunResult, Shape};

/// Seeds of the CI sweep that break an invariant because of an engine bug not fixed yet
/// (see `regressions.rs`): `(seed, invariant, note)`. The sweep reports them and goes on.
/// Empty: every engine bug the sweep found so far is fixed and kept in `regressions.rs`.
pub const KNOWN_BUGS: &[(u64, &str, &str)] = &[];

/// The note of a known engine bug this failure is, if it is one.
pub fn known_bug(seed: u64, invariant: &str) -> Option<&'static str> {
    KNOWN_BUGS
        .iter()
        .find(|(s, i, _)| *s == seed && *i == invariant)
        .map(|(_, _, note)| *note)
}

/// `SIM_SEED`: replay just this seed.
pub fn seed() -> Option<u64> {
    std::env::var("SIM_SEED")
        .ok()
        .map(|s| s.parse().expect("SIM_SEED is a number"))
}

/// `SIM_SEEDS`: how many seeds the sweep runs (default 10 000).
pub fn seeds() -> u64 {
    std::env::var("SIM_SEEDS")
        .ok()
        .map_or(10_000, |s| s.parse().expect("SIM_SEEDS is a number"))
}

/// `SIM_FROM`: the first seed of the sweep (default 0), so sweeps can explore fresh ranges.
pub fn from() -> u64 {
    std::env::var("SIM_FROM")
        .ok()
        .map_or(0, |s| s.parse().expect("SIM_FROM is a number"))
}

/// `SIM_SHAPE`: force a shape.
pub fn shape() -> Option<Shape> {
    let s = std::env::var("SIM_SHAPE").ok()?;
    Some(
        *Shape::ALL
            .iter()
            .find(|x| format!("{x:?}") == s)
            .expect("a known SIM_SHAPE"),
    )
}

/// `SIM_PLANTED`: plant a bug.
pub fn planted() -> Planted {
    std::env::var("SIM_PLANTED")
        .ok()
        .map_or(Planted::None, |s| {
            *Planted::ALL
                .iter()
                .find(|x| format!("{x:?}") == s)
                .expect("a known SIM_PLANTED")
        })
}

/// Panics with the violation, the trace tail and the replay line.
pub fn fail(r: &RunResult) -> ! {
    print_tail(r);
    panic!("{}", describe(r));
}

/// The trace tail of a failed run, to stderr.
pub fn print_tail(r: &RunResult) {
    let tail: Vec<&String> = r.trace.iter().rev().take(40).rev().collect();
    for l in tail {
        eprintln!("  {l}");
    }
}

/// One line: the broken invariant, where, and the replay command.
pub fn describe(r: &RunResult) -> String {
    let v = r.violation.as_ref().expect("a violation");
    format!(
        "invariant {} broken at {} (seed {}, shape {:?}): {}\nreplay: {}",
        v.invariant,
        v.at,
        r.seed,
        r.shape,
        v.detail,
        r.replay()
    )
}
