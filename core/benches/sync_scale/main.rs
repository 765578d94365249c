//! Sync at scale: a real `grasp_core::Engine`, in virtual time, hunting the data of 1,000
//! waiting identifiers on 20 simulated remote servers (one domain each).
//!
//! Each identifier has an announcement listing this server and 2–4 of the remotes, a state
//! whose 1–3 ref tips are missing here, and for about a quarter a pull request whose tip is
//! missing too: 2–3 waiting events, all arriving by relay sync at once. Remotes answer a
//! ref advertisement with the refs they hold for that repository (a stale `main` at least)
//! and a fetch with the objects asked, each after 30–200 ms drawn from the seed, so many
//! requests overlap. The driver executes effects as a runtime would and moves virtual time
//! to the next reply or engine deadline, until every event is released and nothing is in
//! flight, or 35 min pass (the purgatory expiry is 30 min).
//!
//! Shapes, one row each: (a) all data on one listed remote, the others lacking it; (b) the
//! data split over two listed remotes; (c) like (a) with 3 remotes failing every request
//! (2 hang until the 120 s fetch timeout, 1 refuses); (d) like (a) with 80 % of the
//! identifiers on 5 hot remotes.
//!
//! **Minimum requests**: per identifier, one advertisement plus one fetch on each remote
//! that must contribute data (1 in a, c, d; 2 in b) — what a planner that knew where the
//! data is would need; the engine does not know and asks every listed remote. **Throttle
//! bound**: at most 30 requests per sliding 60 s per domain means the r-th request to a
//! domain starts ≥ ⌊(r−1)/30⌋ min after the first, and ≤ 5 in flight means ≥ ⌈r/5⌉ round
//! trips; the bound is the 500 ms relay-sync delay plus the slowest domain, with the 30 ms
//! fastest round trip — computed for the minimum requests and for the requests issued.
//! **Engine CPU** is real time inside `handle_input`/`handle_timeout`/`poll_effect`/
//! `poll_timeout` only, per input (events and check answers while ingesting; replies and
//! timeouts while syncing).
//!
//! Invariants, checked from what the driver executes (the bench panics with a sentence if
//! one breaks): ≤ 5 requests in flight and ≤ 30 started per sliding 60 s per domain; one
//! request in flight per (identifier, domain); only listed URLs, only advertised objects;
//! every waiting event released exactly once, by sync, and only once its objects are here;
//! every `AlignRepo`/`SetRef`/`CopyObjects` names objects the repository has.
//!
//! Run: `cargo bench -p grasp-core --bench sync_scale` (`-- --quick` for 200 identifiers,
//! `-- --seed N` for another layout). Prints a markdown table.
//! (A benchmark measures wall time; the clock ban is for the engine itself.)
#![allow(clippy::disallowed_methods)]

#[path = "../support/mod.rs"]
mod support;

mod driver;
mod world;

use driver::{Sim, T0};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use world::{Shape, World};

const SEED: u64 = 0x5eed_0007;

/// The throttle's lower bound on the time to finish `per_domain` requests (see above).
fn throttle_bound<'a>(per_domain: impl Iterator<Item = &'a u64>) -> Duration {
    let rtt = Duration::from_millis(30);
    let slowest = per_domain
        .filter(|r| **r > 0)
        .map(|&r| {
            let rate = Duration::from_secs(60 * ((r - 1) / 30)) + rtt;
            let concurrency = rtt * r.div_ceil(5) as u32;
            rate.max(concurrency).max(rtt * 2)
        })
        .max()
        .unwrap_or_default();
    Duration::from_millis(500) + slowest
}

fn mmss(d: Duration) -> String {
    let s = d.as_secs_f64();
    format!("{}:{:04.1}", (s / 60.0) as u64, s % 60.0)
}

struct Row {
    cells: Vec<String>,
    notes: String,
}

fn run(shape: Shape, n: usize, seed: u64) -> Row {
    let world = World::new(shape, n, seed);
    let mut sim = Sim::new(&world, seed);
    let real = Instant::now();
    sim.ingest();
    let (ingest_cpu, ingest_inputs) = (sim.engine.cpu, sim.engine.inputs);
    sim.run();
    let real = real.elapsed();
    let waiting = sim.waiting_count();
    assert_eq!(sim.replies, waiting, "every event gets exactly one OK");
    let left = sim.left();
    let mut waits: Vec<Duration> = sim.released.values().map(|t| t.since(T0)).collect();
    waits.sort();
    let all_at = waits.last().copied().unwrap_or_default();
    let pct = |p: usize| {
        waits
            .get(waits.len() * p / 100)
            .copied()
            .unwrap_or_default()
    };
    let min = world.minimum_per_domain();
    let issued: BTreeMap<String, u64> = sim
        .domains
        .iter()
        .map(|(d, l)| (d.clone(), l.lists + l.fetches))
        .collect();
    let listed: usize = world.idents.iter().map(|i| i.listed.len()).sum();
    let min_total: u64 = min.values().sum::<u64>() / 2;
    let lists: u64 = sim.domains.values().map(|l| l.lists).sum();
    let fetches: u64 = sim.domains.values().map(|l| l.fetches).sum();
    let failed: u64 = sim.domains.values().map(|l| l.failed).sum();
    let peak_flight = sim
        .domains
        .values()
        .map(|l| l.peak_in_flight)
        .max()
        .unwrap_or(0);
    let peak_window = sim
        .domains
        .values()
        .map(|l| l.peak_window)
        .max()
        .unwrap_or(0);
    let m = sim.engine().metrics();
    let sync_cpu = sim.engine.cpu - ingest_cpu;
    let sync_inputs = sim.engine.inputs - ingest_inputs;
    let us = |d: Duration, k: u64| d.as_secs_f64() * 1e6 / k.max(1) as f64;
    let released = if left.is_empty() {
        format!("{} / {waiting}", sim.released.len())
    } else {
        format!(
            "{} / {waiting} (**{} ids left**)",
            sim.released.len(),
            left.len()
        )
    };
    let (busiest, busiest_n) = issued
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(d, n)| (d.clone(), *n))
        .unwrap_or_default();
    let notes = format!(
        "{}: {listed} listed URLs; release wait p50 {} p90 {}; busiest domain {busiest} {busiest_n} requests \
         (minimum {}); engine at the end: {} in sync queue, {} waiting, {} expired; \
         {} objects fetched; engine inputs {ingest_inputs} ingesting, {sync_inputs} syncing; \
         real time {:.2} s{}",
        shape.label(),
        mmss(pct(50)),
        mmss(pct(90)),
        min.get(&busiest).copied().unwrap_or(0),
        m.sync_queue,
        m.purgatory_announcements + m.purgatory_states + m.purgatory_prs,
        m.counters.expired,
        m.counters.objects_fetched,
        real.as_secs_f64(),
        if left.is_empty() {
            String::new()
        } else {
            format!("; left: {:?}", left.iter().take(10).collect::<Vec<_>>())
        }
    );
    let cells = vec![
        shape.label().to_string(),
        n.to_string(),
        released,
        mmss(all_at),
        mmss(sim.now.since(T0)),
        mmss(throttle_bound(min.values())),
        mmss(throttle_bound(issued.values())),
        format!("{lists} / {min_total}"),
        format!("{fetches} / {min_total}"),
        failed.to_string(),
        m.counters.attempts.to_string(),
        format!("{peak_flight} / {peak_window}"),
        format!("{:.1} ms", sim.engine.cpu.as_secs_f64() * 1e3),
        format!(
            "{:.1} / {:.1}",
            us(ingest_cpu, ingest_inputs),
            us(sync_cpu, sync_inputs)
        ),
    ];
    Row { cells, notes }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let seed = args
        .iter()
        .position(|a| a == "--seed")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.parse().expect("--seed takes a number"))
        .unwrap_or(SEED);
    let n = if quick { 200 } else { 1_000 };
    println!("grasp-core sync at scale: {n} identifiers, 20 remotes, seed {seed}, virtual time\n");
    let header = [
        "shape",
        "ids",
        "events released",
        "all released (virtual)",
        "engine idle",
        "throttle bound (min requests)",
        "throttle bound (issued)",
        "advertisements / min",
        "fetches / min",
        "failed",
        "attempts",
        "peak in flight / per 60 s",
        "engine CPU",
        "µs per input (ingest / sync)",
    ];
    println!("| {} |", header.join(" | "));
    println!("|{}", "---|".repeat(header.len()));
    let mut notes = Vec::new();
    for shape in [Shape::OneHolder, Shape::Split, Shape::Failing, Shape::Hot] {
        let row = run(shape, n, seed);
        println!("| {} |", row.cells.join(" | "));
        notes.push(row.notes);
    }
    println!();
    for n in notes {
        println!("- {n}");
    }
}
