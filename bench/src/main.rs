//! `graspd-bench`: what users feel, measured on a real graspd beside a reference run on
//! the same machine in the same run (shared machines are noisy; ratios hold where
//! absolute times drift).
//!
//! - `ingest`: EVENT→OK over 4 websocket connections vs the same events written straight
//!   into a bare nostr-lmdb store.
//! - `release`: from git data landing (push finished, fetch finished) to the event
//!   reaching a live subscriber.
//! - `clone`: clone from graspd vs a local `git clone --no-local` and vs `git
//!   http-backend`; graspd's memory growth during a large push and clone.
//! - `push`: `git push` exit time of a one-commit push vs the same push to `git
//!   http-backend`.
//! - `memory`: graspd's resident memory per purgatory entry with 100k entries.
//! - `idle`: graspd's resident memory per idle websocket with 10,000 open.
//! - `flood`: slowloris and idle-socket floods from one address against the defaults.
//! - `slowreq`: graspd's peak memory while slow readers take 80 MB of stored events
//!   each, and while clients send 0.84 MB filters.
//! - `samed`: 1,000 keys announcing one identifier, and an unrelated user's latency.
//! - `repos`: graspd's resident memory and disk per waiting repository (announcement,
//!   state, bare repository) with 10,000 waiting.
//!
//! Sync at scale is an engine benchmark (`cargo bench -p grasp-core --bench
//! sync_scale`); `scripts/bench` runs everything. Every server binds 127.0.0.1 only.
//! The graspd measured is the one of this binary's profile (`target/release/graspd`,
//! built on first use by the test harness) unless `GRASPD_BIN` names another.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod clone;
mod flood;
mod histogram;
mod http_backend;
mod idle;
mod ingest;
mod load;
mod memory;
mod push_exit;
mod push_fetch;
mod release;
mod repo_gen;
mod report;
mod repos;
mod rounds;
mod samed;
mod slowreq;
mod tap;

use clap::{Parser, ValueEnum};
use grasp_tests::server::Options;

/// Which benchmarks to run, at which size.
#[derive(Debug, Parser)]
#[command(
    name = "graspd-bench",
    about = "End-to-end benchmarks of graspd against references"
)]
struct Args {
    /// The benchmarks to run (all when none is named).
    #[arg(value_enum)]
    benches: Vec<Bench>,
    /// Smaller workloads (for a quick check; the numbers in docs use the full size).
    #[arg(long)]
    quick: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Bench {
    Ingest,
    Release,
    Clone,
    Push,
    Memory,
    Idle,
    Flood,
    Slowreq,
    Samed,
    Repos,
}

/// The workload size.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    quick: bool,
}

impl Scale {
    /// `quick` in a quick run, `full` otherwise.
    pub fn pick<T>(self, quick: T, full: T) -> T {
        if self.quick { quick } else { full }
    }
}

/// graspd as an operator would run it, except that the per-connection event rate limit
/// is lifted (the benchmark measures the server, not the limiter; the default allows a
/// burst of 500 events, then 100/s per connection) and loopback remotes are allowed.
pub fn graspd_options() -> Options {
    Options::default()
        .flag("--event-burst", "1000000")
        .flag("--event-rate", "1000000")
        .flag("--log-level", "info")
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let scale = Scale { quick: args.quick };
    let benches = if args.benches.is_empty() {
        vec![
            Bench::Release,
            Bench::Ingest,
            Bench::Clone,
            Bench::Push,
            Bench::Memory,
            Bench::Idle,
            Bench::Flood,
            Bench::Slowreq,
            Bench::Samed,
            Bench::Repos,
        ]
    } else {
        args.benches
    };
    let mut rows = Vec::new();
    for bench in benches {
        eprintln!("== {bench:?}");
        let found = match bench {
            Bench::Ingest => ingest::run(scale).await,
            Bench::Release => release::run(scale).await,
            Bench::Clone => clone::run(scale).await,
            Bench::Push => push_exit::run(scale).await,
            Bench::Memory => memory::run(scale).await,
            Bench::Idle => idle::run(scale).await,
            Bench::Flood => flood::run(scale).await,
            Bench::Slowreq => slowreq::run(scale).await,
            Bench::Samed => samed::run(scale).await,
            Bench::Repos => repos::run(scale).await,
        };
        println!("{}", report::table(&found));
        rows.extend(found);
    }
    println!("## all results\n\n{}", report::table(&rows));
}
