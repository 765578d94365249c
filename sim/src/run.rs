//! Running seeds: one seed in its own madsim runtime, a sweep over many, and the line
//! that replays a failure.

use crate::check::Violation;
use crate::driver::Driver;
use crate::planted::Planted;
use crate::report::{RunStats, SweepReport};
use crate::shape::Shape;
use crate::workload;
use std::time::Instant;

/// How to run a seed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// The planted bug, if any.
    pub planted: Planted,
    /// Keep the trace lines (for printing).
    pub keep_trace: bool,
    /// Check `no_rollback` after every effect, not after every step.
    pub strict_rollback: bool,
}

/// The result of one seed.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// The seed.
    pub seed: u64,
    /// The workload shape.
    pub shape: Shape,
    /// The planted bug, if any.
    pub planted: Planted,
    /// Hash of the effect trace (equal for two runs of one seed).
    pub trace_hash: u64,
    /// Trace lines.
    pub trace_len: u64,
    /// The kept trace lines (only when asked for).
    pub trace: Vec<String>,
    /// What happened.
    pub stats: RunStats,
    /// The first broken invariant.
    pub violation: Option<Violation>,
}

impl RunResult {
    /// The one-line command that replays this run.
    pub fn replay(&self) -> String {
        replay_command(self.seed, self.shape, self.planted)
    }
}

/// The one-line command that replays a seed.
pub fn replay_command(seed: u64, shape: Shape, planted: Planted) -> String {
    let mut cmd = format!("SIM_SEED={seed}");
    if shape != Shape::for_seed(seed) {
        cmd += &format!(" SIM_SHAPE={shape:?}");
    }
    if planted != Planted::None {
        cmd += &format!(" SIM_PLANTED={planted:?}");
    }
    cmd + " scripts/sim"
}

/// Runs one seed of `shape` with `opts` in a fresh madsim runtime seeded by `seed`.
pub fn run_seed(seed: u64, shape: Shape, opts: Options) -> RunResult {
    run_in(seed, shape, opts, move |rng| workload::generate(shape, rng))
}

/// Runs a hand-built `plan` (a scenario) under seed `seed`: the seed only drives latency
/// draws and task scheduling.
pub fn run_plan(seed: u64, plan: workload::Plan, opts: Options) -> RunResult {
    let shape = plan.shape;
    run_in(seed, shape, opts, move |_| plan)
}

fn run_in(
    seed: u64,
    shape: Shape,
    opts: Options,
    plan: impl FnOnce(&mut madsim::rand::GlobalRng) -> workload::Plan + 'static,
) -> RunResult {
    crate::events::warm_up();
    let rt = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    let (stats, violation, trace) = rt.block_on(async move {
        let mut rng = madsim::rand::thread_rng();
        let plan = plan(&mut rng);
        let driver = Driver::new(plan, opts.planted, rng, opts.keep_trace);
        driver.set_strict_rollback(opts.strict_rollback);
        driver.run().await.finish_parts()
    });
    RunResult {
        seed,
        shape,
        planted: opts.planted,
        trace_hash: trace.hash(),
        trace_len: trace.len(),
        trace: trace.lines().to_vec(),
        stats,
        violation,
    }
}

/// Runs `seeds` (each with its own shape, or `shape` for all): the report of the passing
/// seeds and every failing result.
pub fn sweep(
    seeds: impl IntoIterator<Item = u64>,
    shape: Option<Shape>,
    planted: Planted,
) -> (SweepReport, Vec<RunResult>) {
    let started = Instant::now();
    let mut report = SweepReport::default();
    let mut failures = Vec::new();
    for seed in seeds {
        let shape = shape.unwrap_or_else(|| Shape::for_seed(seed));
        let opts = Options {
            planted,
            ..Options::default()
        };
        let r = run_seed(seed, shape, opts);
        if let Some(v) = &r.violation {
            println!(
                "seed {seed} FAILED {}: {} — replay: {}",
                v.invariant,
                v.detail,
                r.replay()
            );
            failures.push(r);
        } else {
            report.add(seed, &r.stats);
        }
    }
    report.wall_secs = started.elapsed().as_secs_f64();
    (report, failures)
}
