//! What every benchmark reports: rows of a markdown table, latency percentiles, and the
//! CPU time and resident memory of a process read from Linux `/proc`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// One measured figure, beside its reference and target when it has them.
#[derive(Debug, Clone)]
pub struct Row {
    /// Which benchmark (e.g. `ingest`).
    pub bench: &'static str,
    /// What was measured.
    pub what: String,
    /// The figure, formatted with its unit.
    pub value: String,
    /// The same load against the reference, when there is one.
    pub reference: String,
    /// graspd / reference, when both exist (in the sense noted in `what`).
    pub ratio: String,
    /// The target this figure answers to, and whether it holds.
    pub target: String,
}

impl Row {
    /// A figure without a reference.
    pub fn new(bench: &'static str, what: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            bench,
            what: what.into(),
            value: value.into(),
            reference: String::new(),
            ratio: String::new(),
            target: String::new(),
        }
    }

    /// Adds the reference figure and the ratio.
    pub fn against(mut self, reference: impl Into<String>, ratio: f64) -> Self {
        self.reference = reference.into();
        self.ratio = format!("{ratio:.2}");
        self
    }

    /// Adds the target and whether `met`.
    pub fn target(mut self, target: &str, met: bool) -> Self {
        let mark = if met { "met" } else { "NOT met" };
        self.target = format!("{target}: {mark}");
        self
    }
}

/// The rows as a markdown table.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| bench | measure | graspd | reference | ratio | target |\n|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            r.bench, r.what, r.value, r.reference, r.ratio, r.target
        );
    }
    out
}

/// The `q`-quantile (0..=1) of `samples` by nearest rank; zero when empty.
pub fn quantile(samples: &[Duration], q: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// `1.23 ms` style.
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// The median of `values` (which must not be empty).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// User + system CPU time of process `pid` so far, from `/proc/<pid>/stat`.
///
/// The kernel counts in clock ticks; `USER_HZ` is 100 on every Linux architecture we
/// run on, so the resolution is 10 ms — benchmarks measure over seconds.
pub fn cpu_time(pid: u32) -> Duration {
    crate::rounds::proc_cpu(&pid.to_string()).0
}

/// Resident memory of process `pid` in KiB (`VmRSS`), zero if it cannot be read.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Samples a process's resident memory every 5 ms on a thread of its own, to find the
/// peak during an operation (a push, a clone) without slowing it.
pub struct RssSampler {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    /// Starts sampling `pid`.
    pub fn start(pid: u32) -> Self {
        Self::start_with(pid, rss_kib)
    }

    /// Starts sampling `read(pid)` (e.g. anonymous memory only, leaving out the
    /// memory-mapped event store's file pages).
    pub fn start_with(pid: u32, read: fn(u32) -> u64) -> Self {
        let peak = Arc::new(AtomicU64::new(read(pid)));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (Arc::clone(&peak), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(read(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Self {
            peak,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops sampling; returns the peak in KiB.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&samples, 0.5), Duration::from_millis(50));
        assert_eq!(quantile(&samples, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&samples, 1.0), Duration::from_millis(100));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn own_process_has_memory_and_cpu() {
        let pid = std::process::id();
        assert!(rss_kib(pid) > 0);
        let spin = std::time::Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_add(1);
        }
        assert!(x > 0);
        assert!(cpu_time(pid) > Duration::ZERO);
    }
}
