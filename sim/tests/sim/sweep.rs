//! The seed sweep: every shape, `SIM_SEEDS` seeds in all, or one `SIM_SEED`.

use crate::common;
use grasp_sim::{Options, Planted, Shape, SweepReport, run_seed, sweep};

/// Sweeps `SIM_SEEDS` seeds from `SIM_FROM` for `shapes` (each seed runs the shape
/// `Shape::for_seed` maps it to) and reports every failing seed of every shape before it
/// fails: a sweep that stopped at its first failure hid the others.
fn run_shapes(shapes: &[Shape]) -> SweepReport {
    let (from, total) = (common::from(), common::seeds());
    let n = Shape::ALL.len() as u64;
    let mut report = SweepReport::default();
    let mut failed = Vec::new();
    for shape in shapes {
        let i = Shape::ALL.iter().position(|s| s == shape).expect("a shape") as u64;
        // Seeds of a shape are those `Shape::for_seed` maps to it.
        let first = from + (i + n - from % n) % n;
        let seeds: Vec<u64> = (first..from + total).step_by(n as usize).collect();
        if let (Some(a), Some(z)) = (seeds.first(), seeds.last()) {
            println!(
                "shape {shape:?}: seeds {a}, {}, ... {z} (every {n}th)",
                a + n
            );
        }
        let (r, failures) = sweep(seeds, None, Planted::None);
        let (made, min) = r.requests_vs_min;
        println!(
            "shape {shape:?}: {} seeds passed in {:.1} s, {} failed; worst release latency {:.1} s (seed {}); requests vs minimum {:.2}x",
            r.seeds,
            r.wall_secs,
            failures.len(),
            r.worst_latency.0 as f64 / 1000.0,
            r.worst_latency.1,
            made as f64 / min.max(1) as f64
        );
        report.merge(&r);
        for f in failures {
            let v = f.violation.as_ref().expect("a failure");
            match common::known_bug(f.seed, v.invariant) {
                Some(note) => println!("seed {} hits a known engine bug ({note})", f.seed),
                None => failed.push(f),
            }
        }
    }
    if !failed.is_empty() {
        let mut lines = Vec::new();
        for f in &failed {
            let opts = Options {
                planted: f.planted,
                keep_trace: true,
                ..Options::default()
            };
            let r = run_seed(f.seed, f.shape, opts);
            eprintln!("== seed {} ({:?})", r.seed, r.shape);
            common::print_tail(&r);
            lines.push(common::describe(&r));
        }
        panic!("{} seeds failed:\n{}", failed.len(), lines.join("\n"));
    }
    report
}

#[test]
fn sweep_a() {
    if common::seed().is_some() {
        return;
    }
    let r = run_shapes(&[Shape::Flood, Shape::Restarts, Shape::Basic]);
    println!("== sweep report (Flood, Restarts, Basic)\n{r}");
}

#[test]
fn sweep_b() {
    if common::seed().is_some() {
        return;
    }
    let r = run_shapes(&[
        Shape::Busy,
        Shape::Partial,
        Shape::Faulty,
        Shape::Governance,
    ]);
    println!("== sweep report (Busy, Partial, Faulty, Governance)\n{r}");
}

#[test]
fn replay_one_seed() {
    let Some(seed) = common::seed() else {
        return;
    };
    let shape = common::shape().unwrap_or_else(|| Shape::for_seed(seed));
    let planted = common::planted();
    println!("seed {seed} shape {shape:?} planted {planted:?}");
    let opts = Options {
        planted,
        keep_trace: true,
        strict_rollback: std::env::var("SIM_STRICT").is_ok(),
    };
    let r = run_seed(seed, shape, opts);
    println!(
        "trace hash {:016x} ({} lines), stats {:?}",
        r.trace_hash, r.trace_len, r.stats
    );
    if std::env::var("SIM_TRACE").is_ok() {
        for l in &r.trace {
            println!("{l}");
        }
    }
    if r.violation.is_some() {
        common::fail(&r);
    }
}
