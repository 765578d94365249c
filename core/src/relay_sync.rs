//! The engine's side of relay sync (GRASP-02): it feeds the peers component what the
//! runtime reports, tells it what each peer must cover, and emits what it decides.

use crate::effect::Effect;
use crate::engine::Engine;
use crate::peer::{JobId, PeerFailureKind, PeerId, PeerSub};
use crate::peer_filters::PeerItems;
use crate::peers::PeerView;
use crate::peers::Roots;
use crate::repo_index::{AnnStatus, RepoIndex};
use nostr::prelude::{Event, Timestamp};

/// What peer `key` is asked about: the identifiers whose announcements list it, their
/// served repositories' coordinates, and those repositories' roots.
fn peer_items(repos: &RepoIndex, roots: &Roots, key: &str) -> PeerItems {
    let mut items = PeerItems::default();
    for d in repos.relay_listings().identifiers(key) {
        items.ds.push(d.to_owned());
        for (owner, a) in repos.announcements(d) {
            if a.status == AnnStatus::Served {
                items.coords.push(format!("30617:{}:{d}", owner.to_hex()));
            }
        }
        items.roots.extend(roots.of(d));
    }
    items
}

impl Engine {
    /// Runs `f` on the peers component and emits the effects it decides.
    fn with_peers(&mut self, f: impl FnOnce(&mut Self, &mut Vec<Effect>)) {
        let mut out = Vec::new();
        f(self, &mut out);
        for e in out {
            self.emit(e);
        }
    }

    /// What peer `key` is asked about (see [`peer_items`]).
    pub(crate) fn peer_items(&self, key: &str) -> PeerItems {
        peer_items(&self.repos, &self.roots, key)
    }

    /// After every input: a changed peer set or coverage reaches the peers.
    pub(crate) fn refresh_peers(&mut self) {
        if !self.peers.is_enabled() || !self.peers_live {
            return;
        }
        let now = self.now;
        self.with_peers(|e, out| e.peers.refresh(now, e.repos.relay_listings(), out));
        if self.roots.version() != self.roots_seen {
            self.roots_seen = self.roots.version();
            self.peers.coverage_changed(now);
        }
    }

    /// An accepted event may be a root of a hosted repository.
    pub(crate) fn note_root(&mut self, event: &Event) {
        if !self.peers.is_enabled() {
            return;
        }
        let repos = &self.repos;
        self.roots
            .accepted(event, &|d| repos.announcement_count(d) > 0);
    }

    pub(crate) fn on_peer_timeout(&mut self) {
        let now = self.now;
        let mut out = Vec::new();
        let (repos, roots) = (&self.repos, &self.roots);
        self.peers
            .on_timeout(now, &mut |key| peer_items(repos, roots, key), &mut out);
        for e in out {
            self.emit(e);
        }
    }

    pub(crate) fn on_peer_connected(&mut self, peer: PeerId) {
        let now = self.now;
        let items = self
            .peers
            .key_of(peer)
            .map(|k| self.peer_items(k))
            .unwrap_or_default();
        self.with_peers(|e, out| e.peers.on_connected(now, peer, items, out));
    }

    pub(crate) fn on_peer_failed(&mut self, peer: PeerId, kind: PeerFailureKind, detail: String) {
        let now = self.now;
        self.with_peers(|e, out| e.peers.on_failed(now, peer, kind, detail, out));
    }

    pub(crate) fn on_peer_eose(&mut self, peer: PeerId, sub: PeerSub) {
        self.peers.on_eose(peer, sub);
    }

    pub(crate) fn on_peer_closed(&mut self, peer: PeerId, sub: PeerSub, message: &str) {
        let now = self.now;
        self.with_peers(|e, out| e.peers.on_closed(now, peer, sub, message, out));
    }

    pub(crate) fn on_peer_notice(&mut self, peer: PeerId, message: &str) {
        let now = self.now;
        self.peers.on_notice(now, peer, message);
    }

    pub(crate) fn on_page_done(
        &mut self,
        peer: PeerId,
        job: JobId,
        page: (u32, u32, Option<Timestamp>),
    ) {
        let now = self.now;
        self.with_peers(|e, out| e.peers.on_page_done(now, peer, job, page, out));
    }

    pub(crate) fn on_peer_misbehaved(&mut self, peer: PeerId, count: u32, detail: &str) {
        let now = self.now;
        self.with_peers(|e, out| e.peers.on_misbehaved(now, peer, count, detail, out));
    }

    /// Relay sync's peers, for the operator view and the peer metrics.
    pub fn peers_view(&self) -> Vec<PeerView> {
        self.peers.view(self.now)
    }

    /// Relay sync's counts (catch-ups by outcome, failures by kind).
    pub fn peer_counters(&self) -> &crate::peers::PeerCounters {
        self.peers.counters()
    }
}
