//! Executing the engine's effects: local ones against the in-memory [`crate::store::Store`],
//! remote ones as madsim tasks that sleep the server's latency (or hang until the fetch
//! timeout) and send their result back through the driver's channel.

use crate::driver::{Driver, Msg, Pending};
use crate::planted::Planted;
use crate::remote::{self, Ask, Outcome};
use grasp_core::{Effect, Failure, FailureKind, Input, Time};
use madsim::rand::Rng;
use std::time::Duration;

/// The share of object checks that fail in the faulty shape.
const CHECK_FAILURE_RATE: f64 = 0.2;

impl Driver {
    /// Executes one effect, in order, and shows it to the checker.
    pub(crate) fn execute(&mut self, now: Time, effect: Effect) {
        self.trace.effect(now, &effect);
        match &effect {
            Effect::Reply {
                token,
                event_id,
                accepted,
                message,
            } => {
                let engine = &self.engine;
                self.checker
                    .on_reply(now, engine, token.0, *event_id, *accepted, message);
            }
            Effect::StoreEvent { event, .. } => {
                self.store.store_event(event);
            }
            Effect::DeleteEvents {
                author,
                ids,
                coordinates,
            } => {
                self.store.delete_events(ids);
                let doomed: Vec<_> = self
                    .store
                    .events
                    .iter()
                    .filter(|e| e.pubkey == *author)
                    .filter(|e| {
                        coordinates.iter().any(|(c, until)| {
                            c.kind == e.kind
                                && e.created_at <= *until
                                && e.tags.identifier().as_deref() == Some(c.identifier.as_str())
                        })
                    })
                    .map(|e| e.id)
                    .collect();
                self.store.delete_events(&doomed);
            }
            Effect::CreateRepo { repo } => self.store.create_repo(repo),
            Effect::DeleteRepo { repo } => self.store.delete_repo(repo),
            Effect::CheckObjects { check, repos, oids } => {
                let key = self.key();
                self.checks
                    .insert(key, (*check, repos.clone(), oids.clone()));
                let delay = Duration::from_millis(self.rng.gen_range(0..5));
                let chan = self.chan.clone();
                madsim::task::spawn(async move {
                    madsim::time::sleep(delay).await;
                    chan.send(Msg::CheckDue { key });
                });
            }
            Effect::ListRefs {
                request,
                url,
                domain,
            } => {
                self.issue(now, Some(*request), url, domain, None, Ask::ListRefs);
                if self.planted == Planted::ExtraRequest {
                    self.issue(now, None, url, domain, None, Ask::ListRefs);
                }
            }
            Effect::Fetch {
                request,
                url,
                domain,
                into,
                oids,
            } => {
                let ask = Ask::Fetch(oids.clone());
                self.issue(now, Some(*request), url, domain, Some(into.clone()), ask);
            }
            Effect::CopyObjects { from, to, oids } => self.store.copy(from, to, oids),
            Effect::AlignRepo { repo, refs, head } => self.store.align(repo, refs, head),
            Effect::SetRef { repo, name, target } => self.store.set_ref(repo, name, *target),
            Effect::PruneObjects { repo, keep } => self.store.prune(repo, keep),
            Effect::Persist { record } => {
                self.store.journal.insert(record.key(), record.clone());
            }
            Effect::Forget { key } => {
                self.store.journal.remove(key);
            }
        }
        self.checker.on_effect(now, &effect, &self.store);
    }

    fn key(&mut self) -> u64 {
        self.next_key += 1;
        self.next_key
    }

    /// Sends a request to a simulated remote. `request` is `None` for the harness's own
    /// (planted) extra requests, whose results are dropped.
    fn issue(
        &mut self,
        now: Time,
        request: Option<grasp_core::RequestId>,
        url: &str,
        domain: &str,
        into: Option<grasp_core::RepoId>,
        ask: Ask,
    ) {
        let key = self.key();
        self.checker
            .on_request(now, key, url, domain, &ask, request.is_none());
        let (latency, outcome) = remote::answer(&self.plan.world, url, &ask, now, &mut self.rng);
        self.pending.insert(
            key,
            Pending {
                request,
                url: url.to_owned(),
                into,
                ask,
            },
        );
        let timeout = self.plan.world.fetch_timeout;
        let chan = self.chan.clone();
        madsim::task::spawn(async move {
            let answer = async {
                if outcome == Outcome::Hang {
                    std::future::pending::<()>().await;
                }
                madsim::time::sleep(latency).await;
                outcome
            };
            let outcome = match madsim::time::timeout(timeout, answer).await {
                Ok(o) => o,
                Err(_) => {
                    Outcome::Failed(FailureKind::Timeout, format!("no answer in {timeout:?}"))
                }
            };
            chan.send(Msg::Remote { key, outcome });
        });
    }

    /// A result came back: turn it into the engine's input.
    pub(crate) fn on_msg(&mut self, msg: Msg) {
        match msg {
            Msg::CheckDue { key } => {
                let Some((check, repos, oids)) = self.checks.remove(&key) else {
                    return;
                };
                let found: Vec<_> = if self.planted == Planted::PhantomObject && !repos.is_empty() {
                    oids.iter().map(|o| (*o, repos[0].clone())).collect()
                } else {
                    self.store.check(&repos, &oids)
                };
                // In the faulty shape some checks cannot read a repository (the daemon's
                // `CheckFailed`): what the others held is reported, the rest is unknown.
                if self.plan.shape == crate::shape::Shape::Faulty
                    && self.rng.gen_bool(CHECK_FAILURE_RATE)
                {
                    let half = found.len() / 2;
                    let found = found.into_iter().take(half).collect();
                    self.feed(Input::CheckFailed { check, found });
                } else {
                    self.feed(Input::ObjectsChecked { check, found });
                }
            }
            Msg::Remote { key, outcome } => {
                let Some(p) = self.pending.remove(&key) else {
                    return;
                };
                self.checker.on_request_done(key);
                let Some(request) = p.request else {
                    return;
                };
                let now = self.now();
                let failed = |kind, detail: String| Input::RequestFailed {
                    request,
                    failure: Failure { kind, detail },
                };
                let input = match (outcome, &p.ask, &p.into) {
                    (Outcome::Refs(refs), Ask::ListRefs, _) => {
                        self.checker.on_advertised(&p.url, &refs);
                        Input::RefsListed { request, refs }
                    }
                    (Outcome::Objects(oids), Ask::Fetch(_), Some(into)) => {
                        if self.store.add_objects(into, &oids) {
                            let d = into.d.clone();
                            self.checker
                                .stats
                                .fetched
                                .entry(d)
                                .or_default()
                                .extend(&oids);
                            let bytes = 1_000 * oids.len() as u64;
                            Input::Fetched {
                                request,
                                present: oids,
                                bytes,
                            }
                        } else {
                            failed(FailureKind::Other, "repository is gone".into())
                        }
                    }
                    (Outcome::Failed(kind, detail), _, _) => failed(kind, detail),
                    (other, _, _) => failed(FailureKind::BadResponse, format!("{other:?}")),
                };
                self.trace.line(now, &format!("{input:?}"));
                self.feed(input);
            }
        }
    }
}
