//! Side-by-side rounds for the clone benchmark: who serves, in which order, and what
//! each operation cost in wall time and in CPU time of every process involved (CPU time
//! is the steadier figure on a shared machine: waiting for a core does not count).

use std::time::Duration;

use crate::report::{Row, median};

/// Who serves a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// graspd over smart HTTP.
    Graspd,
    /// git's own transport to a path (upload-pack / receive-pack over a pipe).
    Local,
    /// `git http-backend` behind the in-process CGI server.
    Backend,
}

/// The order of `sides` in round `round`: forwards on even rounds, backwards on odd
/// ones, so no side always runs first (after a quiet spell) or last.
pub fn order(sides: &[Side], round: usize) -> Vec<Side> {
    let mut sides = sides.to_vec();
    if round % 2 == 1 {
        sides.reverse();
    }
    sides
}

/// Seconds per side, round by round (every side has one sample per round).
#[derive(Debug, Default)]
pub struct Timings(Vec<(Side, Vec<f64>)>);

impl Timings {
    /// Records one sample of `side`.
    pub fn add(&mut self, side: Side, took: Duration) {
        match self.0.iter_mut().find(|(s, _)| *s == side) {
            Some((_, v)) => v.push(took.as_secs_f64()),
            None => self.0.push((side, vec![took.as_secs_f64()])),
        }
    }

    fn of(&self, side: Side) -> &[f64] {
        self.0
            .iter()
            .find(|(s, _)| *s == side)
            .map_or(&[], |(_, v)| v.as_slice())
    }

    /// The median of `side`, `1.23 s` style.
    pub fn secs(&self, side: Side) -> String {
        format!("{:.2} s", median(self.of(side)))
    }

    /// The median of `side`, `123 ms` style.
    pub fn ms(&self, side: Side) -> String {
        format!("{:.0} ms", median(self.of(side)) * 1e3)
    }

    /// The median over rounds of graspd's figure / `side`'s in the same round.
    pub fn ratio(&self, side: Side) -> f64 {
        let ratios: Vec<f64> = self
            .of(Side::Graspd)
            .iter()
            .zip(self.of(side))
            .map(|(g, r)| g / r.max(1e-3))
            .collect();
        median(&ratios)
    }

    /// A `clone` benchmark row: `what: measure`, graspd's median against `side`'s
    /// (`reference` names it in the table, `name` in the ratio), shown by `show`.
    pub fn row(&self, what: &str, measure: &str, show: Show, vs: (Side, &str, &str)) -> Row {
        let (side, name, reference) = vs;
        Row::new(
            "clone",
            format!("{what}: {measure} (ratio: graspd/{name})"),
            show(self, Side::Graspd),
        )
        .against(
            format!("{} {reference}", show(self, side)),
            self.ratio(side),
        )
    }
}

/// How a row shows a median: [`Timings::secs`] or [`Timings::ms`].
pub type Show = fn(&Timings, Side) -> String;

/// Wall time, CPU of everything, and CPU of the server process alone, per side.
#[derive(Debug, Default)]
pub struct Results {
    /// Wall time of the git command.
    pub wall: Timings,
    /// CPU of every process involved (see [`CpuUse::total`]).
    pub cpu: Timings,
    /// CPU of the server process alone (see [`CpuUse::server`]).
    pub server: Timings,
}

impl Results {
    /// Records one operation of `side`.
    pub fn add(&mut self, side: Side, took: Duration, cpu: CpuUse) {
        self.wall.add(side, took);
        self.cpu.add(side, cpu.total);
        self.server.add(side, cpu.server);
    }
}

/// Where CPU went during one operation.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    /// Every process involved: the git client and its helpers, the server, the git
    /// processes the server ran.
    pub total: Duration,
    /// The server process alone, without the git it ran: graspd; this process for the
    /// in-process http-backend server; nothing for git's local transport.
    pub server: Duration,
}

/// User + system CPU of a process itself and of the children it has waited for
/// (`utime + stime`, `cutime + cstime` of `/proc/<pid>/stat`).
fn parse_stat(stat: &str) -> (Duration, Duration) {
    // The command name (field 2) may contain spaces; fields after its ')' are fixed.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // USER_HZ is 100 on every Linux we run on: 10 ms per tick.
    let own = Duration::from_millis((ticks(11) + ticks(12)) * 10);
    let children = Duration::from_millis((ticks(13) + ticks(14)) * 10);
    (own, children)
}

/// CPU of process `pid` (`self` for this one) and of the children it waited for.
pub fn proc_cpu(pid: &str) -> (Duration, Duration) {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default())
}

/// CPU counters of this process and of graspd at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Meter {
    graspd_pid: u32,
    bench: (Duration, Duration),
    graspd: (Duration, Duration),
}

impl Meter {
    /// Reads the counters before an operation.
    pub fn start(graspd_pid: u32) -> Self {
        Self {
            graspd_pid,
            bench: proc_cpu("self"),
            graspd: proc_cpu(&graspd_pid.to_string()),
        }
    }

    /// The CPU used since [`start`](Self::start) by the operation of `side`. Waits a
    /// moment first, so that git processes that just exited are reaped and counted.
    pub async fn stop(self, side: Side) -> CpuUse {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let now = Self::start(self.graspd_pid);
        let delta = |a: Duration, b: Duration| a.saturating_sub(b);
        let bench_own = delta(now.bench.0, self.bench.0);
        let bench_children = delta(now.bench.1, self.bench.1);
        let graspd_own = delta(now.graspd.0, self.graspd.0);
        let graspd_children = delta(now.graspd.1, self.graspd.1);
        match side {
            Side::Graspd => CpuUse {
                total: bench_children + graspd_own + graspd_children,
                server: graspd_own,
            },
            Side::Local => CpuUse {
                total: bench_children,
                server: Duration::ZERO,
            },
            Side::Backend => CpuUse {
                total: bench_children + bench_own,
                server: bench_own,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_alternate_direction() {
        let sides = [Side::Graspd, Side::Local, Side::Backend];
        assert_eq!(order(&sides, 0), sides);
        assert_eq!(order(&sides, 1), [Side::Backend, Side::Local, Side::Graspd]);
        assert_eq!(order(&sides, 2), sides);
    }

    #[test]
    fn ratios_are_per_round() {
        let mut t = Timings::default();
        for (g, l) in [(2.0, 1.0), (3.0, 3.0), (10.0, 4.0)] {
            t.add(Side::Graspd, Duration::from_secs_f64(g));
            t.add(Side::Local, Duration::from_secs_f64(l));
        }
        // Per round: 2.0, 1.0, 2.5 → median 2.0 (not median(g)/median(l) = 1.0).
        assert!((t.ratio(Side::Local) - 2.0).abs() < 1e-9);
        assert_eq!(t.secs(Side::Graspd), "3.00 s");
        assert_eq!(t.ms(Side::Local), "3000 ms");
    }

    #[test]
    fn stat_fields_after_the_command_name() {
        let stat = "42 (git (x) y) S 1 2 3 4 5 6 7 8 9 10 150 25 300 7 20 0";
        assert_eq!(
            parse_stat(stat),
            (Duration::from_millis(1750), Duration::from_millis(3070))
        );
        assert_eq!(parse_stat(""), (Duration::ZERO, Duration::ZERO));
    }
}
