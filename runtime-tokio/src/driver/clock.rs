//! The engine's clock in the daemon: milliseconds since the Unix epoch.
//!
//! Wall-clock time, so that deadlines journalled before a restart keep counting while
//! graspd is down (BEHAVIOR.md: downtime counts). The engine treats an earlier `now` as
//! the latest it has seen, so a clock step backwards cannot move deadlines.

use std::time::{SystemTime, UNIX_EPOCH};

use grasp_core::Time;
use grasp_core::nostr::prelude::Timestamp;

/// Now, on the engine's clock.
pub fn now() -> Time {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    Time::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// Now, in nostr seconds.
pub fn unix_now() -> Timestamp {
    Timestamp::from_secs(now().as_millis() / 1000)
}

/// How long until `deadline` from now (zero if past).
pub fn until(deadline: Time) -> std::time::Duration {
    deadline.since(now())
}
