//! Figures of one run and of a sweep: what happened, and how close fetch planning came to
//! the fewest requests that could have fetched the same objects.

use crate::world::World;
use grasp_core::Oid;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// What one run did.
#[derive(Clone, Debug, Default)]
pub struct RunStats {
    /// Events fed to the engine.
    pub events: u64,
    /// Identifiers in the workload.
    pub identifiers: usize,
    /// Restarts.
    pub restarts: u64,
    /// Purgatory releases by path.
    pub released: BTreeMap<String, u64>,
    /// Purgatory entries expired.
    pub expired: u64,
    /// Requests per domain.
    pub requests: BTreeMap<String, u64>,
    /// Longest time from "data ready on a healthy server, and the event's delay passed"
    /// to release.
    pub worst_latency_ms: u64,
    /// The event of that longest wait, with its times (for replays).
    pub worst_latency_of: String,
    /// Largest purgatory seen.
    pub max_purgatory: usize,
    /// Objects fetched per identifier.
    pub fetched: BTreeMap<String, BTreeSet<Oid>>,
    /// The fewest requests (an advertisement and a fetch per server) that could have
    /// fetched the same objects.
    pub min_requests: u64,
    /// Driver steps.
    pub steps: u64,
    /// Events refused with `rate-limited:` (purgatory caps).
    pub rate_limited: u64,
    /// Most requests seen in flight to one domain, and in one 60 s window.
    pub peak_load: (u32, usize),
}

impl RunStats {
    /// Computes the derived figures at the end of a run.
    pub fn finish(&mut self, world: &World) {
        self.min_requests = self
            .fetched
            .iter()
            .map(|(d, objs)| 2 * cover(world, d, objs))
            .sum();
    }

    /// Requests over all domains.
    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }
}

/// Greedy set cover: how many servers are needed to fetch `objs` of `d`.
fn cover(world: &World, d: &str, objs: &BTreeSet<Oid>) -> u64 {
    let sets: Vec<BTreeSet<Oid>> = world
        .servers
        .iter()
        .filter_map(|s| s.repos.get(d))
        .map(|r| {
            r.advertised
                .iter()
                .filter(|o| objs.contains(o))
                .copied()
                .collect()
        })
        .collect();
    let mut left = objs.clone();
    let mut n = 0;
    while !left.is_empty() {
        let best = sets.iter().max_by_key(|s| s.intersection(&left).count());
        match best {
            Some(s) if s.intersection(&left).next().is_some() => {
                left.retain(|o| !s.contains(o));
                n += 1;
            }
            _ => break,
        }
    }
    n
}

/// Totals over a sweep.
#[derive(Clone, Debug, Default)]
pub struct SweepReport {
    /// Seeds run.
    pub seeds: u64,
    /// Events fed.
    pub events: u64,
    /// Releases by path.
    pub released: BTreeMap<String, u64>,
    /// Expiries.
    pub expired: u64,
    /// Restarts.
    pub restarts: u64,
    /// Requests per domain name (domains are named alike across seeds).
    pub requests: BTreeMap<String, u64>,
    /// Worst release latency after the data was ready, and its seed.
    pub worst_latency: (u64, u64),
    /// Requests made by seeds that fetched something, and their minimum.
    pub requests_vs_min: (u64, u64),
    /// Largest purgatory seen.
    pub max_purgatory: usize,
    /// Driver steps.
    pub steps: u64,
    /// Events refused by purgatory caps.
    pub rate_limited: u64,
    /// Peak requests in flight to one domain, and in one window.
    pub peak_load: (u32, usize),
    /// Wall-clock seconds.
    pub wall_secs: f64,
}

impl SweepReport {
    /// Adds one run.
    pub fn add(&mut self, seed: u64, s: &RunStats) {
        self.seeds += 1;
        self.events += s.events;
        for (k, v) in &s.released {
            *self.released.entry(k.clone()).or_default() += v;
        }
        self.expired += s.expired;
        self.restarts += s.restarts;
        for (k, v) in &s.requests {
            *self.requests.entry(k.clone()).or_default() += v;
        }
        if s.worst_latency_ms > self.worst_latency.0 {
            self.worst_latency = (s.worst_latency_ms, seed);
        }
        if s.min_requests > 0 {
            self.requests_vs_min.0 += s.total_requests();
            self.requests_vs_min.1 += s.min_requests;
        }
        self.max_purgatory = self.max_purgatory.max(s.max_purgatory);
        self.steps += s.steps;
        self.rate_limited += s.rate_limited;
        self.peak_load.0 = self.peak_load.0.max(s.peak_load.0);
        self.peak_load.1 = self.peak_load.1.max(s.peak_load.1);
    }

    /// Merges another report (e.g. of another shape).
    pub fn merge(&mut self, o: &SweepReport) {
        self.seeds += o.seeds;
        self.events += o.events;
        for (k, v) in &o.released {
            *self.released.entry(k.clone()).or_default() += v;
        }
        self.expired += o.expired;
        self.restarts += o.restarts;
        for (k, v) in &o.requests {
            *self.requests.entry(k.clone()).or_default() += v;
        }
        if o.worst_latency.0 > self.worst_latency.0 {
            self.worst_latency = o.worst_latency;
        }
        self.requests_vs_min.0 += o.requests_vs_min.0;
        self.requests_vs_min.1 += o.requests_vs_min.1;
        self.max_purgatory = self.max_purgatory.max(o.max_purgatory);
        self.steps += o.steps;
        self.rate_limited += o.rate_limited;
        self.peak_load.0 = self.peak_load.0.max(o.peak_load.0);
        self.peak_load.1 = self.peak_load.1.max(o.peak_load.1);
        self.wall_secs += o.wall_secs;
    }
}

impl fmt::Display for SweepReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per = |x: u64| x as f64 / self.seeds.max(1) as f64;
        writeln!(f, "seeds run:            {}", self.seeds)?;
        writeln!(f, "events per seed:      {:.1}", per(self.events))?;
        writeln!(f, "releases:             {:?}", self.released)?;
        writeln!(
            f,
            "expiries:             {} ({:.1}/seed)",
            self.expired,
            per(self.expired)
        )?;
        writeln!(f, "restarts:             {}", self.restarts)?;
        let total: u64 = self.requests.values().sum();
        writeln!(f, "requests:             {total} ({:.1}/seed)", per(total))?;
        for (d, n) in &self.requests {
            writeln!(f, "  {d:<18} {n}")?;
        }
        let (ms, seed) = self.worst_latency;
        writeln!(
            f,
            "worst release latency after data ready and delay: {:.1} s (seed {seed})",
            ms as f64 / 1000.0
        )?;
        let (made, min) = self.requests_vs_min;
        let ratio = made as f64 / min.max(1) as f64;
        writeln!(
            f,
            "requests vs minimum (seeds that fetched): {made} / {min} = {ratio:.2}x"
        )?;
        writeln!(f, "largest purgatory:    {}", self.max_purgatory)?;
        writeln!(f, "refused by caps:      {}", self.rate_limited)?;
        let (fl, win) = self.peak_load;
        writeln!(
            f,
            "peak per domain:      {fl} in flight, {win} per 60 s window"
        )?;
        writeln!(f, "driver steps:         {}", self.steps)?;
        let rate = self.seeds as f64 / self.wall_secs.max(1e-9);
        write!(
            f,
            "wall time:            {:.1} s ({rate:.0} seeds/s per thread)",
            self.wall_secs
        )
    }
}
