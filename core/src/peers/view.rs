//! The operator view of relay sync's peers (GRASP-02 §11).

use super::{Peers, State};
use crate::time::Time;

/// One peer as the operator view and the metrics show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerView {
    /// The normalized relay URL (or the refused raw value).
    pub url: String,
    /// `waiting`, `connecting`, `live`, `catching_up`, `backoff`, `rate_limited`,
    /// `naughty`, `dead` or `refused` (the `state` label of
    /// `graspd_relay_sync_peers`).
    pub state: &'static str,
    /// Why it failed last or is refused.
    pub reason: Option<String>,
    /// When it is tried again (backoff, naughtiness, a guard refusal).
    pub next_try: Option<Time>,
    /// Its checkpoint, in wall-clock seconds.
    pub checkpoint: Option<u64>,
    /// How it catches up (`req`).
    pub method: &'static str,
    /// Catch-up jobs running and queued.
    pub jobs: (usize, usize),
    /// Catch-up jobs finished, and capped or failed, since it was listed.
    pub jobs_done: (u64, u64),
    /// Failures since its last healthy connection.
    pub failures: u32,
    /// Its live REQs could not cover every root (the daily run still does).
    pub truncated: bool,
    /// A bootstrap relay rather than a listed one.
    pub bootstrap: bool,
}

impl Peers {
    /// Every peer, in URL order.
    pub(crate) fn view(&self, now: Time) -> Vec<PeerView> {
        let mut out: Vec<PeerView> = self
            .peers
            .values()
            .map(|p| {
                let (state, next_try) = match &p.state {
                    State::Waiting => ("waiting", None),
                    State::Connecting => ("connecting", None),
                    State::Connected if p.paused_until.is_some() => {
                        ("rate_limited", p.paused_until)
                    }
                    State::Connected if !p.running.is_empty() || !p.queued.is_empty() => {
                        ("catching_up", None)
                    }
                    State::Connected => ("live", None),
                    State::Backoff { until } if p.backoff.is_dead(now) => ("dead", Some(*until)),
                    State::Backoff { until } => ("backoff", Some(*until)),
                    State::Naughty { until } => ("naughty", Some(*until)),
                    State::Refused { retry } => ("refused", *retry),
                };
                PeerView {
                    url: p.key.clone(),
                    state,
                    reason: p.reason.clone(),
                    next_try,
                    checkpoint: self.checkpoints.get(&p.key).map(|c| c.as_secs()),
                    method: crate::peer::CatchUpMethod::Req.label(),
                    jobs: (p.running.len(), p.queued.len()),
                    jobs_done: (p.finished, p.capped),
                    failures: p.backoff.failures(),
                    truncated: p.truncated,
                    bootstrap: p.bootstrap,
                }
            })
            .collect();
        out.sort_by(|a, b| a.url.cmp(&b.url));
        out
    }
}
