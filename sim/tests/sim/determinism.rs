//! Each of a few seeds runs twice; the trace hashes must be equal.

use grasp_sim::{Options, Shape, run_seed};

#[test]
fn same_seed_same_trace() {
    for (i, shape) in Shape::ALL.iter().enumerate() {
        for seed in [i as u64, 1_000 + i as u64] {
            // The first run in a fresh thread, as a replay would be; the second after it.
            let shape = *shape;
            let a = std::thread::spawn(move || run_seed(seed, shape, Options::default()))
                .join()
                .expect("the first run");
            let b = run_seed(seed, shape, Options::default());
            println!(
                "seed {seed} {shape:?}: {:016x} ({} lines)",
                a.trace_hash, a.trace_len
            );
            assert!(a.trace_len > 10, "seed {seed} did almost nothing");
            assert_eq!(
                (a.trace_hash, a.trace_len),
                (b.trace_hash, b.trace_len),
                "seed {seed} ({shape:?}) diverged: replay with {}",
                a.replay()
            );
        }
    }
}
