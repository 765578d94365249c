//! The seed sweep: every shape, `SIM_SEEDS` seeds in all, or one `SIM_SEED`.

use crate::common;
use grasp_sim::{Options, Planted, Shape, SweepReport, run_seed, sweep};

fn run_shapes(shapes: &[Shape]) -> SweepReport {
    let total = common::seeds();
    let per = total.div_ceil(Shape::ALL.len() as u64);
    let mut report = SweepReport::default();
    for shape in shapes {
        let i = Shape::ALL.iter().position(|s| s == shape).expect("a shape") as u64;
        // Seeds of a shape are those `Shape::for_seed` maps to it.
        let seeds = (0..per).map(|k| k * Shape::ALL.len() as u64 + i);
        let n = Shape::ALL.len();
        println!(
            "shape {shape:?}: seeds {i}, {}, ... {} (every {n}th)",
            i + n as u64,
            (per - 1) * n as u64 + i
        );
        let (r, failures) = sweep(seeds, None, Planted::None);
        println!(
            "shape {shape:?}: {} seeds passed in {:.1} s",
            r.seeds, r.wall_secs
        );
        report.merge(&r);
        for f in failures {
            let v = f.violation.as_ref().expect("a failure");
            match common::known_bug(f.seed, v.invariant) {
                Some(note) => println!("seed {} hits a known engine bug ({note})", f.seed),
                None => {
                    let opts = Options {
                        planted: f.planted,
                        keep_trace: true,
                        ..Options::default()
                    };
                    common::fail(&run_seed(f.seed, f.shape, opts))
                }
            }
        }
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
