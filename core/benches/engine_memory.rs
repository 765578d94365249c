//! Engine memory per purgatory entry with 1k, 10k and 100k waiting states, and as many
//! waiting pull requests (each with a target, a tip and a clone URL of its own), each size
//! in a fresh process (so no earlier phase's freed memory is reused).
//! Run: `cargo bench -p grasp-core --bench engine_memory` (`-- --quick` for 1k and 10k).
//! Apart from the `engine` bench because it needs a counting global allocator, and
//! stats_alloc can wrap only the system allocator in a `static` on stable Rust (graspd
//! runs on jemalloc: the held bytes are requested sizes, the same on either; resident
//! memory is the system allocator's here, graspd's own in `graspd-bench memory`).

mod support;
use grasp_core::nostr::prelude::*;
use support::{fake, oid, sv};
// Shared with the engine bench, which uses the rest of it.
#[allow(dead_code)]
#[path = "support/world.rs"]
mod world;
use world::{Fixture, author_of, fixture, world_from};

fn rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Counts the bytes the program has asked for and not yet freed, so the engine's own
/// memory can be told apart from the allocator's slack (reported separately as RSS).
#[global_allocator]
static ALLOC: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

/// Bytes asked for and not freed. stats_alloc already adds a `realloc`'s growth to
/// `bytes_allocated` (and its shrinking to `bytes_deallocated`); `bytes_reallocated` is the
/// same delta again, so adding it counted every grown-then-kept buffer (each event's JSON,
/// serialized into a growing `Vec`) twice.
fn live_bytes() -> isize {
    let s = ALLOC.stats();
    s.bytes_allocated as isize - s.bytes_deallocated as isize
}

/// Engine memory per purgatory entry, measured in a fresh process (so no earlier phase's
/// freed memory is reused). Two figures: the bytes the engine holds (counted by the
/// allocator above) for its `n` waiting states beyond the same engine with none, minus
/// the events' JSON (the part the target excludes); and the resident growth per entry
/// (allocator slack included) beyond that JSON.
fn memory(n: usize, prs: bool) {
    // (bytes held, KiB resident) grown while `f` runs.
    fn grown<T>(f: impl FnOnce() -> T) -> (T, isize, isize) {
        let (b, r) = (live_bytes(), rss_kib().unwrap_or(0) as isize);
        let out = f();
        let (b2, r2) = (live_bytes(), rss_kib().unwrap_or(0) as isize);
        (out, b2 - b, (r2 - r) * 1024)
    }
    let (f, fixture_bytes, fixture_rss) = grown(|| {
        let f = fixture(n);
        if prs { with_prs(f) } else { f }
    });
    let json: usize = f.states.iter().map(|e| e.as_json().len()).sum();
    let (empty, empty_bytes, empty_rss) = grown(|| Fixture {
        owners: f.owners.clone(),
        authors: f.authors.clone(),
        announcements: f.announcements.clone(),
        states: Vec::new(),
        ids: f.ids,
    });
    // `world_from` consumes its fixture (the engine keeps what it needs), so what a world
    // holds is what grew plus the fixture it freed.
    let (base, base_bytes, base_rss) = grown(|| world_from(empty));
    let (w, world_bytes, world_rss) = grown(|| world_from(f));
    let held = (world_bytes + fixture_bytes) - (base_bytes + empty_bytes);
    let resident = (world_rss + fixture_rss) - (base_rss + empty_rss);
    let per = |bytes: isize| (bytes as f64 - json as f64) / n as f64;
    println!(
        "{:>5.0} bytes/entry held by the engine excluding the event JSON \
         ({:.0} resident; JSON {:.0} B/event)",
        per(held),
        per(resident),
        json as f64 / n as f64
    );
    drop((base, w));
}

/// The world of `f` with its waiting states replaced by as many pull requests: each
/// names one announced repository, a tip commit, and a fork to fetch it from.
fn with_prs(mut f: Fixture) -> Fixture {
    let n = f.states.len();
    let idents = (n / 10).max(1);
    let mut ids = f.ids;
    f.states = (0..n)
        .map(|j| {
            let i = j % idents;
            let owner = f.owners[i % f.owners.len()].public_key();
            // Authors as for the states (a per-author cost is not a per-entry one).
            let author = author_of(&f.authors, i, j / idents).public_key();
            ids += 1;
            fake(
                author,
                Kind::GitPullRequest,
                30 + j as u64,
                vec![
                    sv(&["a", &format!("30617:{}:repo{i}", owner.to_hex())]),
                    sv(&["p", &owner.to_hex()]),
                    sv(&["subject", &format!("change {j}")]),
                    sv(&["c", &oid(5_000_000 + j as u64).to_string()]),
                    sv(&[
                        "clone",
                        &format!("https://fork{}.example/repo{i}.git", j % 97),
                    ]),
                ],
                ids,
            )
        })
        .collect();
    f.ids = ids;
    f
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--size") {
        let prs = args.iter().any(|a| a == "--prs");
        return memory(args[i + 1].parse().expect("--size <entries>"), prs);
    }
    let sizes: &[usize] = if args.iter().any(|a| a == "--quick") {
        &[1_000, 10_000]
    } else {
        &[1_000, 10_000, 100_000]
    };
    println!("grasp-core engine memory");
    for (what, flag) in [("states", None), ("pull requests", Some("--prs"))] {
        for &n in sizes {
            let exe = std::env::current_exe().expect("own path");
            let out = std::process::Command::new(exe)
                .args(["--size", &n.to_string()])
                .args(flag)
                .output()
                .expect("memory probe runs");
            print!(
                "{n:>7} {what:<13}: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
}
