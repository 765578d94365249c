//! A token bucket for the per-connection event rate.
//!
//! A bucket rather than a fixed window because clients legitimately publish bursts
//! (a repository announcement, its state, a batch of patches: hundreds at once) and
//! then little; the bucket lets the burst through and still caps the sustained rate.

use std::time::Instant;

/// Allows `burst` events at once and `rate` per second sustained.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens refilling at `rate` per second from `now`.
    pub fn new(burst: u32, rate: f64, now: Instant) -> Self {
        let capacity = f64::from(burst.max(1));
        Self {
            capacity,
            rate: rate.max(0.0),
            tokens: capacity,
            last: now,
        }
    }

    /// Takes one token if there is one at `now`.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn burst_then_sustained_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(500, 100.0, start);
        for i in 0..500 {
            assert!(bucket.try_take(start), "burst event {i} refused");
        }
        assert!(!bucket.try_take(start), "the 501st at once is refused");
        let later = start + Duration::from_millis(100);
        let granted = (0..20).filter(|_| bucket.try_take(later)).count();
        assert_eq!(granted, 10, "100/s gives 10 tokens in 100 ms");
        // Refill never exceeds the burst size.
        let much_later = later + Duration::from_secs(3600);
        let granted = (0..1000).filter(|_| bucket.try_take(much_later)).count();
        assert_eq!(granted, 500);
    }

    #[test]
    fn time_going_backwards_grants_nothing_extra() {
        let start = Instant::now() + Duration::from_secs(10);
        let mut bucket = TokenBucket::new(1, 1.0, start);
        assert!(bucket.try_take(start));
        assert!(!bucket.try_take(start - Duration::from_secs(5)));
        assert!(!bucket.try_take(start));
    }
}
