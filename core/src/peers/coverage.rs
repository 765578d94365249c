//! A connected peer's coverage: live REQs, catch-up jobs page by page, checkpoints.

use super::*;

impl Peers {
    /// Makes the live REQs cover `items` (replacing changed ones under their ids, closing
    /// those no longer needed) and queues catch-up jobs: for every item when `all`, else
    /// for the items not covered before; from `since` (`None`: full history).
    pub(super) fn cover(
        &mut self,
        now: Time,
        id: PeerId,
        items: PeerItems,
        since: Option<Timestamp>,
        all: bool,
        out: &mut Vec<Effect>,
    ) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let new = if all {
            items.clone()
        } else {
            items.minus(&peer.covered)
        };
        let (reqs, truncated) = live_reqs(&items, peer.live_since);
        peer.truncated = truncated;
        let paused = peer.paused_until.is_some();
        for (n, filters) in reqs.into_iter().enumerate() {
            let n = u8::try_from(n).expect("at most ten live REQs");
            if peer.live.get(&n).is_some_and(|l| l.filters == filters) {
                continue;
            }
            peer.live.insert(
                n,
                LiveSub {
                    filters: filters.clone(),
                    eose: false,
                    pending: paused,
                },
            );
            if !paused {
                out.push(Effect::PeerReq {
                    peer: id,
                    sub: PeerSub::Live(n),
                    filters,
                });
                self.timers
                    .set(PeerTimer::Eose(id, PeerSub::Live(n)), now.plus(EOSE_WITHIN));
            }
        }
        let wanted = live_reqs(&items, peer.live_since).0.len();
        let extra: Vec<u8> = peer
            .live
            .keys()
            .copied()
            .filter(|n| usize::from(*n) >= wanted)
            .collect();
        for n in extra {
            peer.live.remove(&n);
            self.timers.cancel(&PeerTimer::Eose(id, PeerSub::Live(n)));
            out.push(Effect::PeerClose {
                peer: id,
                sub: PeerSub::Live(n),
            });
        }
        peer.covered = items;
        let discovery = all;
        for filter in filters(&new, discovery) {
            self.next_id += 1;
            let job = Job::new(
                JobId(self.next_id),
                filter,
                since,
                peer.live_since,
                self.config.page_size,
            );
            peer.queued.push_back(job);
        }
        self.start_jobs(now, id, out);
    }

    /// Starts queued jobs while fewer than [`JOBS_AT_ONCE`] run and no pause holds.
    pub(super) fn start_jobs(&mut self, now: Time, id: PeerId, out: &mut Vec<Effect>) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if peer.state != State::Connected || peer.paused_until.is_some() {
            return;
        }
        while peer.running.len() < JOBS_AT_ONCE {
            let Some(job) = peer.queued.pop_front() else {
                return;
            };
            let sub = PeerSub::Page(job.id);
            out.push(Effect::PeerReq {
                peer: id,
                sub,
                filters: vec![job.page()],
            });
            self.timers
                .set(PeerTimer::Eose(id, sub), now.plus(EOSE_WITHIN));
            peer.running.insert(job.id, job);
        }
    }

    /// A live REQ's EOSE.
    pub(crate) fn on_eose(&mut self, id: PeerId, sub: PeerSub) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if let PeerSub::Live(n) = sub {
            if let Some(l) = peer.live.get_mut(&n) {
                l.eose = true;
                self.timers.cancel(&PeerTimer::Eose(id, sub));
            }
        }
    }

    /// A catch-up page ended.
    pub(crate) fn on_page_done(
        &mut self,
        now: Time,
        id: PeerId,
        job: JobId,
        (received, new, oldest): (u32, u32, Option<Timestamp>),
        out: &mut Vec<Effect>,
    ) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let Some(j) = peer.running.get_mut(&job) else {
            return;
        };
        let sub = PeerSub::Page(job);
        self.timers.cancel(&PeerTimer::Eose(id, sub));
        peer.pauses = 0;
        match j.page_done(received, new, oldest) {
            Next::Page(filter) => {
                out.push(Effect::PeerReq {
                    peer: id,
                    sub,
                    filters: vec![filter],
                });
                self.timers
                    .set(PeerTimer::Eose(id, sub), now.plus(EOSE_WITHIN));
            }
            Next::End(end) => self.end_job(now, id, job, end, out),
        }
    }

    pub(super) fn end_job(
        &mut self,
        now: Time,
        id: PeerId,
        job: JobId,
        end: JobEnd,
        out: &mut Vec<Effect>,
    ) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let Some(j) = peer.running.remove(&job) else {
            return;
        };
        self.timers.cancel(&PeerTimer::Eose(id, PeerSub::Page(job)));
        out.push(Effect::PeerClose {
            peer: id,
            sub: PeerSub::Page(job),
        });
        *self
            .counters
            .catchups
            .entry((CatchUpMethod::Req.label(), end.label()))
            .or_default() += 1;
        match end {
            JobEnd::Finished => peer.finished += 1,
            JobEnd::Capped | JobEnd::Failed => peer.capped += 1,
        }
        // The last job of a clean run moves the checkpoint to the run's upper bound.
        if end == JobEnd::Finished && peer.running.is_empty() && peer.queued.is_empty() {
            let at = j.upper;
            let key = peer.key.clone();
            self.set_checkpoint(key, at, out);
        }
        self.start_jobs(now, id, out);
    }

    pub(super) fn set_checkpoint(&mut self, url: String, at: Timestamp, out: &mut Vec<Effect>) {
        if self.checkpoints.get(&url).is_some_and(|c| *c >= at) {
            return;
        }
        self.checkpoints.insert(url.clone(), at);
        out.push(Effect::Persist {
            record: JournalRecord::PeerCheckpoint {
                url,
                at: at.as_secs(),
            },
        });
    }
}
