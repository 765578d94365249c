//! The vocabulary of relay sync (GRASP-02) shared by the engine and its runtime: who a
//! peer is, its subscriptions, catch-up jobs, and how a connection failed.

use serde::{Deserialize, Serialize};

/// One relay the engine syncs from. Allocated by the engine; a peer dropped and listed
/// again gets a new id, so a late report about the old connection cannot touch it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(pub(crate) u64);

impl PeerId {
    /// The raw number, for logs and the runtime's maps.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// One catch-up job of a peer (a run of pages over one filter).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(pub(crate) u64);

impl JobId {
    /// The raw number, for logs and the runtime's maps.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// A subscription on a peer's connection. Its [`PeerSub::wire_id`] is the REQ's
/// subscription id; [`PeerSub::parse`] reads one back from a peer's `EOSE`/`CLOSED`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PeerSub {
    /// A live subscription (one of at most [`crate::Config`]'s live REQs per peer),
    /// replaced under the same id when its filters change.
    Live(u8),
    /// One page of a catch-up job.
    Page(JobId),
}

impl PeerSub {
    /// The subscription id sent to the peer.
    pub fn wire_id(self) -> String {
        match self {
            PeerSub::Live(n) => format!("live-{n}"),
            PeerSub::Page(job) => format!("page-{}", job.0),
        }
    }

    /// The subscription a peer's message names, if it is one of ours.
    pub fn parse(wire: &str) -> Option<PeerSub> {
        if let Some(n) = wire.strip_prefix("live-") {
            return n.parse().ok().map(PeerSub::Live);
        }
        wire.strip_prefix("page-")
            .and_then(|n| n.parse().ok())
            .map(|n| PeerSub::Page(JobId(n)))
    }
}

/// Why a peer's connection failed, by what the engine does about it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PeerFailureKind {
    /// Our own guard refused the URL or every address it resolved to (private,
    /// loopback…): never dialed; retried when a listing changes or after a day.
    Refused,
    /// The name does not resolve: naughty.
    Dns,
    /// The TLS handshake or the certificate failed: naughty.
    Tls,
    /// The server answered, but not as a websocket (an HTTP page, a redirect): naughty.
    NotWebsocket,
    /// No upgrade in time, no pong, or a stall: backoff.
    Timeout,
    /// The connection could not be made, or it closed or broke: backoff.
    Disconnected,
    /// The peer used up its byte budget for the hour: cut until the window allows.
    OverBudget,
}

impl PeerFailureKind {
    /// The metric label (`graspd_relay_sync_failures_total{kind}`).
    pub fn label(&self) -> &'static str {
        match self {
            PeerFailureKind::Refused => "refused",
            PeerFailureKind::Dns => "dns",
            PeerFailureKind::Tls => "tls",
            PeerFailureKind::NotWebsocket => "not_websocket",
            PeerFailureKind::Timeout => "timeout",
            PeerFailureKind::Disconnected => "disconnected",
            PeerFailureKind::OverBudget => "over_budget",
        }
    }
}

/// How a catch-up job asks a peer for history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CatchUpMethod {
    /// Pages of `limit` events by `until` (NIP-01 REQ).
    Req,
}

impl CatchUpMethod {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            CatchUpMethod::Req => "req",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_ids_round_trip() {
        for sub in [
            PeerSub::Live(0),
            PeerSub::Live(9),
            PeerSub::Page(JobId(123)),
        ] {
            assert_eq!(PeerSub::parse(&sub.wire_id()), Some(sub));
        }
        for other in ["", "live-", "live-x", "page-", "x-1", "live-300"] {
            assert_eq!(PeerSub::parse(other), None, "{other}");
        }
    }
}
