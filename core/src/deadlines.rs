//! Every source of engine deadlines, in one list: [`crate::Engine::poll_timeout`] (when
//! to call back) and the timeout handler (what to fire, in which order) read the same
//! list, so a new timer cannot be armed without being fired, or fired without being
//! asked for.

use crate::engine::Engine;
use crate::time::Time;

/// A kind of deadline the engine keeps. At equal times they fire in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Deadline {
    /// The look for present objects before entries expire (`final_check.rs`).
    FinalCheck,
    /// A purgatory entry's expiry.
    Entry,
    /// A keyed timer: placeholders, debounced sync delays, prunes (`TimerKey`).
    Keyed,
    /// The end of an expired event's memory (a resend is refused until then).
    Expired,
    /// A sync attempt (retries, backoff).
    Sync,
    /// Relay sync's peers: backoff, liveness, checkpoints, batching (`peers/`).
    Peers,
    /// A throttle window that frees a request slot: fired after the others, by pumping
    /// the queued domains.
    Throttle,
}

impl Deadline {
    /// Every source, in firing order at equal times.
    pub(crate) const ALL: [Deadline; 7] = [
        Deadline::FinalCheck,
        Deadline::Entry,
        Deadline::Keyed,
        Deadline::Expired,
        Deadline::Sync,
        Deadline::Peers,
        Deadline::Throttle,
    ];
}

impl Engine {
    /// When `source` next needs the engine.
    pub(crate) fn deadline_of(&self, source: Deadline) -> Option<Time> {
        match source {
            Deadline::FinalCheck => self.next_final_check(),
            Deadline::Entry => self.purgatory.next_expiry(),
            Deadline::Keyed => self.timers.next(),
            Deadline::Expired => self.purgatory.expired.next(),
            Deadline::Sync => self.sync.next_timer(),
            Deadline::Peers => self.peers.next_timer(),
            Deadline::Throttle => self.throttle.poll_timeout(),
        }
    }

    /// The earliest deadline of the sources `among`, with its source (ties in
    /// [`Deadline`] order).
    pub(crate) fn next_deadline(&self, among: &[Deadline]) -> Option<(Time, Deadline)> {
        among
            .iter()
            .filter_map(|s| self.deadline_of(*s).map(|t| (t, *s)))
            .min()
    }
}
