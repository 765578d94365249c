//! Engine time: a millisecond count on a clock the driver chooses.
//!
//! The core never reads a clock. Every input carries a [`Time`]; the driver decides what
//! it counts from. A daemon that must keep deadlines across restarts uses milliseconds
//! since the Unix epoch, so that downtime counts against purgatory deadlines; the
//! simulator uses its virtual clock.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// A point in engine time, in milliseconds.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Time(u64);

impl Time {
    /// The zero point of the driver's clock.
    pub const ZERO: Time = Time(0);

    /// A time from milliseconds on the driver's clock.
    pub const fn from_millis(ms: u64) -> Self {
        Time(ms)
    }

    /// Milliseconds on the driver's clock.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// This time plus `d`, saturating instead of overflowing.
    pub fn plus(self, d: Duration) -> Time {
        Time(
            self.0
                .saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        )
    }

    /// This time minus `d`, saturating at zero.
    pub fn minus(self, d: Duration) -> Time {
        Time(
            self.0
                .saturating_sub(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        )
    }

    /// The duration from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Time) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_saturates_and_since_clamps() {
        let t = Time::from_millis(u64::MAX - 1);
        assert_eq!(t.plus(Duration::from_secs(5)), Time::from_millis(u64::MAX));
        assert_eq!(
            Time::from_millis(5).since(Time::from_millis(10)),
            Duration::ZERO
        );
        assert_eq!(
            Time::from_millis(1500).since(Time::from_millis(500)),
            Duration::from_secs(1)
        );
    }
}
