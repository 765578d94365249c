//! A peer's health: rate limits, bad events, failures, and the peers' deadlines.

use super::*;

impl Peers {
    /// `CLOSED` for a subscription: a rate limit pauses new REQs; `auth-required:`
    /// leaves the REQ to the daily run; anything else ends a page's job.
    pub(crate) fn on_closed(
        &mut self,
        now: Time,
        id: PeerId,
        sub: PeerSub,
        message: &str,
        out: &mut Vec<Effect>,
    ) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        self.timers.cancel(&PeerTimer::Eose(id, sub));
        let limited = is_rate_limit(message);
        match sub {
            PeerSub::Live(n) => {
                if let Some(l) = peer.live.get_mut(&n) {
                    // Re-sent after the pause; an auth-required one waits for the next
                    // connection (its items are still caught up daily).
                    l.pending = limited;
                    l.eose = !limited;
                }
            }
            PeerSub::Page(job) => {
                if limited {
                    if let Some(j) = peer.running.remove(&job) {
                        peer.queued.push_front(j);
                    }
                } else {
                    self.end_job(now, id, job, JobEnd::Failed, out);
                }
            }
        }
        if limited {
            self.pause(now, id);
        }
    }

    /// A `NOTICE`: a rate-limit notice pauses new REQs.
    pub(crate) fn on_notice(&mut self, now: Time, id: PeerId, message: &str) {
        if is_rate_limit(message) {
            self.pause(now, id);
        }
    }

    pub(super) fn pause(&mut self, now: Time, id: PeerId) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if peer.paused_until.is_some() {
            return;
        }
        let pause = RATE_PAUSE
            .saturating_mul(1 << peer.pauses.min(8))
            .min(RATE_PAUSE_MAX);
        peer.pauses += 1;
        let until = now.plus(pause);
        peer.paused_until = Some(until);
        self.timers.set(PeerTimer::Unpause(id), until);
    }

    /// Events the runtime dropped as bad: at [`BAD_LIMIT`] in [`BAD_WINDOW`], naughty.
    pub(crate) fn on_misbehaved(
        &mut self,
        now: Time,
        id: PeerId,
        count: u32,
        detail: &str,
        out: &mut Vec<Effect>,
    ) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        peer.bad.push_back((now, count));
        while peer
            .bad
            .front()
            .is_some_and(|(t, _)| now.since(*t) > BAD_WINDOW)
        {
            peer.bad.pop_front();
        }
        let total: u32 = peer.bad.iter().map(|(_, n)| *n).sum();
        if total >= BAD_LIMIT && matches!(peer.state, State::Connected | State::Connecting) {
            out.push(Effect::PeerDisconnect { peer: id });
            let why = format!("{total} bad events in 10 min (last: {detail})");
            self.fail(now, id, PeerFailureKind::NotWebsocket, why, true, out);
        }
    }

    /// The connection failed or ended.
    pub(crate) fn on_failed(
        &mut self,
        now: Time,
        id: PeerId,
        kind: PeerFailureKind,
        detail: String,
        out: &mut Vec<Effect>,
    ) {
        let naughty = matches!(
            kind,
            PeerFailureKind::Dns | PeerFailureKind::Tls | PeerFailureKind::NotWebsocket
        );
        self.fail(now, id, kind, detail, naughty, out);
    }

    pub(super) fn fail(
        &mut self,
        now: Time,
        id: PeerId,
        kind: PeerFailureKind,
        detail: String,
        naughty: bool,
        out: &mut Vec<Effect>,
    ) {
        let draw = self.draw();
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        match peer.state {
            State::Connecting => self.connecting -= 1,
            State::Connected => {}
            // A late report about a connection already given up.
            _ => return,
        }
        *self.counters.failures.entry(kind.label()).or_default() += 1;
        peer.reason = Some(format!("{}: {detail}", kind.label()));
        let jobs: Vec<JobId> = peer.running.keys().copied().collect();
        peer.running.clear();
        peer.queued.clear();
        peer.live.clear();
        peer.covered = PeerItems::default();
        peer.paused_until = None;
        for job in jobs {
            self.timers.cancel(&PeerTimer::Eose(id, PeerSub::Page(job)));
        }
        for n in 0..u8::try_from(crate::peer_filters::LIVE_REQS).expect("small") {
            self.timers.cancel(&PeerTimer::Eose(id, PeerSub::Live(n)));
        }
        for t in [
            PeerTimer::Healthy(id),
            PeerTimer::Checkpoint(id),
            PeerTimer::Batch(id),
            PeerTimer::Unpause(id),
        ] {
            self.timers.cancel(&t);
        }
        let retry = if naughty {
            let until = now.plus(self.config.naughty_expiry);
            peer.state = State::Naughty { until };
            self.naughty.insert(peer.key.clone(), until);
            out.push(Effect::Persist {
                record: JournalRecord::PeerNaughty {
                    url: peer.key.clone(),
                    until,
                    reason: peer.reason.clone().unwrap_or_default(),
                },
            });
            until
        } else if kind == PeerFailureKind::Refused {
            let until = now.plus(REFUSED_RETRY);
            peer.state = State::Refused { retry: Some(until) };
            until
        } else if kind == PeerFailureKind::OverBudget {
            let until = now.plus(BUDGET_WINDOW);
            peer.state = State::Backoff { until };
            until
        } else {
            let until = peer.backoff.failed(now, self.config.max_backoff, draw);
            peer.state = State::Backoff { until };
            until
        };
        self.timers.set(PeerTimer::Retry(id), retry);
        self.pump_connects(out);
    }

    /// Handles the peers' deadlines due at `now`. `items` computes a peer's coverage.
    pub(crate) fn on_timeout(
        &mut self,
        now: Time,
        items: &mut dyn FnMut(&str) -> PeerItems,
        out: &mut Vec<Effect>,
    ) {
        while let Some(timer) = self.timers.pop_due(now) {
            match timer {
                PeerTimer::Retry(id) => {
                    let Some(peer) = self.peers.get_mut(&id) else {
                        continue;
                    };
                    if matches!(peer.state, State::Naughty { .. }) {
                        let key = peer.key.clone();
                        self.forget_naughty(&key, out);
                    }
                    let peer = self.peers.get_mut(&id).expect("present");
                    if matches!(
                        peer.state,
                        State::Backoff { .. } | State::Naughty { .. } | State::Refused { .. }
                    ) {
                        peer.state = State::Waiting;
                    }
                }
                PeerTimer::Drop(id) => self.drop_peer(id, out),
                PeerTimer::Eose(id, sub) => match sub {
                    PeerSub::Live(_) => {
                        out.push(Effect::PeerDisconnect { peer: id });
                        let why = format!("no EOSE for {} within 30 s", sub.wire_id());
                        self.fail(now, id, PeerFailureKind::Timeout, why, false, out);
                    }
                    PeerSub::Page(job) => self.end_job(now, id, job, JobEnd::Capped, out),
                },
                PeerTimer::Healthy(id) => {
                    if let Some(p) = self.peers.get_mut(&id) {
                        p.backoff.reset();
                    }
                }
                PeerTimer::Checkpoint(id) => {
                    let Some(peer) = self.peers.get(&id) else {
                        continue;
                    };
                    if peer.state != State::Connected {
                        continue;
                    }
                    if !peer.live.is_empty() && peer.live.values().all(|l| l.eose) {
                        let at =
                            Timestamp::from_secs(wall(now).as_secs().saturating_sub(LIVE_OVERLAP));
                        let key = peer.key.clone();
                        self.set_checkpoint(key, at, out);
                    }
                    self.timers
                        .set(PeerTimer::Checkpoint(id), now.plus(CHECKPOINT_EVERY));
                }
                PeerTimer::Batch(id) => {
                    let Some(key) = self.key_of(id).map(str::to_owned) else {
                        continue;
                    };
                    let covered = items(&key);
                    self.cover(now, id, covered, None, false, out);
                }
                PeerTimer::Unpause(id) => {
                    let Some(peer) = self.peers.get_mut(&id) else {
                        continue;
                    };
                    peer.paused_until = None;
                    for (n, l) in peer.live.iter_mut().filter(|(_, l)| l.pending) {
                        l.pending = false;
                        let sub = PeerSub::Live(*n);
                        out.push(Effect::PeerReq {
                            peer: id,
                            sub,
                            filters: l.filters.clone(),
                        });
                        self.timers
                            .set(PeerTimer::Eose(id, sub), now.plus(EOSE_WITHIN));
                    }
                    self.start_jobs(now, id, out);
                }
                PeerTimer::Daily(id) => {
                    let at = self.daily_at(now);
                    self.timers.set(PeerTimer::Daily(id), at);
                    let Some(peer) = self.peers.get(&id) else {
                        continue;
                    };
                    if peer.state == State::Connected && peer.queued.is_empty() {
                        let key = peer.key.clone();
                        let all = items(&key);
                        let live_since = wall(now).as_secs().saturating_sub(LIVE_OVERLAP);
                        self.peers.get_mut(&id).expect("present").live_since =
                            Timestamp::from_secs(live_since);
                        self.cover(now, id, all, None, true, out);
                    }
                }
            }
        }
        self.pump_connects(out);
    }

    pub(super) fn drop_peer(&mut self, id: PeerId, out: &mut Vec<Effect>) {
        let Some(peer) = self.peers.get(&id) else {
            return;
        };
        if peer.wanted {
            return;
        }
        if matches!(peer.state, State::Connected | State::Connecting) {
            if peer.state == State::Connecting {
                self.connecting -= 1;
            }
            out.push(Effect::PeerDisconnect { peer: id });
        }
        let peer = self.peers.remove(&id).expect("present");
        self.by_key.remove(&peer.key);
        for t in [
            PeerTimer::Retry(id),
            PeerTimer::Healthy(id),
            PeerTimer::Checkpoint(id),
            PeerTimer::Batch(id),
            PeerTimer::Unpause(id),
            PeerTimer::Daily(id),
        ] {
            self.timers.cancel(&t);
        }
        for job in peer.running.keys() {
            self.timers
                .cancel(&PeerTimer::Eose(id, PeerSub::Page(*job)));
        }
        for n in peer.live.keys() {
            self.timers.cancel(&PeerTimer::Eose(id, PeerSub::Live(*n)));
        }
    }
}

/// Whether a peer's `CLOSED` or `NOTICE` asks us to slow down (GRASP-02 §5).
fn is_rate_limit(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.starts_with("rate-limited:")
        || ["rate limit", "rate-limit", "too many", "slow down"]
            .iter()
            .any(|p| m.contains(p))
}
