//! Reconnection backoff of one peer (GRASP-02 §5): 5 s doubling to the maximum, ±20 %
//! jitter drawn from the engine's seed, reset after 5 min connected; after 24 h of
//! failing the peer is "dead" and tried once a day.

use std::time::Duration;

use crate::keyed::splitmix;
use crate::time::Time;

/// The first delay.
const FIRST: Duration = Duration::from_secs(5);
/// Connected this long, a peer's failures are forgotten.
pub(crate) const HEALTHY_AFTER: Duration = Duration::from_secs(5 * 60);
/// Failing this long, a peer is dead.
const DEAD_AFTER: Duration = Duration::from_secs(24 * 3600);
/// A dead peer's one try a day.
const DEAD_RETRY: Duration = Duration::from_secs(24 * 3600);

/// A peer's failure history.
#[derive(Clone, Debug, Default)]
pub(crate) struct Backoff {
    /// Failures since the last healthy connection.
    failures: u32,
    /// When the first of them happened.
    failing_since: Option<Time>,
}

impl Backoff {
    /// Records a failure at `now`; returns when to try again. `draw` is a fresh value of
    /// the engine's seeded sequence (the jitter).
    pub(crate) fn failed(&mut self, now: Time, max: Duration, draw: u64) -> Time {
        self.failures = self.failures.saturating_add(1);
        let since = *self.failing_since.get_or_insert(now);
        if now.since(since) >= DEAD_AFTER {
            return now.plus(DEAD_RETRY);
        }
        let doublings = (self.failures - 1).min(20);
        let base = FIRST.saturating_mul(1 << doublings).min(max);
        now.plus(jitter(base, draw))
    }

    /// The peer stayed connected [`HEALTHY_AFTER`]: its next failure starts over at 5 s.
    pub(crate) fn reset(&mut self) {
        *self = Backoff::default();
    }

    /// Whether the peer has failed for a day or more (shown as "dead").
    pub(crate) fn is_dead(&self, now: Time) -> bool {
        self.failing_since
            .is_some_and(|since| now.since(since) >= DEAD_AFTER)
    }

    /// Failures since the last healthy connection.
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }
}

/// `base` ± 20 %, by `draw`.
pub(crate) fn jitter(base: Duration, draw: u64) -> Duration {
    let ms = u64::try_from(base.as_millis()).unwrap_or(u64::MAX);
    let span = ms / 5; // 20 %
    if span == 0 {
        return base;
    }
    let offset = splitmix(draw) % (2 * span + 1);
    Duration::from_millis(ms - span + offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_up_to_the_maximum_then_daily() {
        let mut b = Backoff::default();
        let max = Duration::from_secs(3600);
        let mut now = Time::from_millis(1_000_000);
        let mut delays = Vec::new();
        for i in 0..12 {
            let at = b.failed(now, max, i);
            delays.push(at.since(now).as_secs_f64());
            now = at;
        }
        let expected = [
            5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0, 1280.0, 2560.0,
        ];
        for (d, e) in delays.iter().zip(expected) {
            assert!((e * 0.8..=e * 1.2).contains(d), "{d} vs {e}");
        }
        assert!(
            (2880.0..=4320.0).contains(&delays[11]),
            "capped: {delays:?}"
        );
        // A day of failing: dead, tried once a day.
        let later = now.plus(DEAD_AFTER);
        assert!(b.is_dead(later));
        assert_eq!(b.failed(later, max, 99).since(later), DEAD_RETRY);
        b.reset();
        assert_eq!((b.failures(), b.is_dead(later)), (0, false));
    }

    #[test]
    fn jitter_stays_within_twenty_percent_and_varies() {
        let base = Duration::from_secs(10);
        let all: Vec<Duration> = (0..100).map(|i| jitter(base, i)).collect();
        assert!(all.iter().all(|d| (8000..=12000).contains(&d.as_millis())));
        assert!(all.iter().any(|d| *d != all[0]), "not constant");
    }
}
