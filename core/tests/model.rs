//! Model-based property test: random sequences of events, pushes, remote answers, failures,
//! time steps and restarts, with the engine's invariants checked after every step.

mod support;

use grasp_core::nostr::prelude::{Event, EventId, Keys, Kind};
use grasp_core::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use support::*;

const DS: [&str; 7] = ["r0", "r1", "r2", "r3", "r4", "r5", "r6"];
const REMOTES: [&str; 3] = [
    "https://a.example/x.git",
    "https://b.example/x.git",
    "https://a.example/y.git",
];

#[derive(Clone, Debug)]
enum Step {
    Announce {
        owner: u8,
        d: u8,
        remotes: u8,
        maint: u8,
    },
    State {
        author: u8,
        d: u8,
        tip: u8,
        sync: bool,
    },
    Pr {
        author: u8,
        owner: u8,
        d: u8,
        tip: u8,
    },
    PushState {
        owner: u8,
        d: u8,
    },
    PushNostr {
        owner: u8,
        d: u8,
        which: u8,
        tip: u8,
    },
    Delete {
        which: u8,
    },
    Answer {
        ok: bool,
        pick: u8,
    },
    Advance {
        ms: u32,
    },
    Restart,
    /// Every identifier announced with remotes and given a relay-synced state at once.
    Burst {
        owner: u8,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => (0..3u8, 0..7u8, 0..8u8, 0..4u8).prop_map(|(owner, d, remotes, maint)| Step::Announce { owner, d, remotes, maint }),
        1 => (0..3u8, 0..7u8, 0..6u8, any::<bool>()).prop_map(|(author, d, tip, sync)| Step::State { author, d, tip, sync }),
        1 => (3..5u8, 0..3u8, 0..7u8, 0..6u8).prop_map(|(author, owner, d, tip)| Step::Pr { author, owner, d, tip }),
        1 => (0..3u8, 0..7u8).prop_map(|(owner, d)| Step::PushState { owner, d }),
        1 => (0..3u8, 0..7u8, any::<u8>(), 0..6u8).prop_map(|(owner, d, which, tip)| Step::PushNostr { owner, d, which, tip }),
        1 => any::<u8>().prop_map(|which| Step::Delete { which }),
        4 => (any::<bool>(), any::<u8>()).prop_map(|(ok, pick)| Step::Answer { ok, pick }),
        3 => prop_oneof![1..2_000u32, 10_000..200_000u32, 600_000..2_400_000u32].prop_map(|ms| Step::Advance { ms }),
        1 => Just(Step::Restart),
        1 => (0..3u8).prop_map(|owner| Step::Burst { owner }),
    ]
}

/// What each remote server holds: tips 0..6 spread over servers, some nowhere.
fn server_has(url: &str) -> Vec<Oid> {
    match url {
        u if u.contains("a.example/x") => vec![oid(0), oid(1), oid(2)],
        u if u.contains("b.example") => vec![oid(2), oid(3)],
        _ => vec![oid(4)],
    }
}

struct Model {
    h: Harness,
    sent: Vec<Event>,
    started: Vec<(String, Time)>,
    last_state_by_author: BTreeMap<(u8, u8), u64>,
    clock: u64,
}

impl Model {
    fn new() -> Self {
        Model {
            h: Harness::new(),
            sent: Vec::new(),
            started: Vec::new(),
            last_state_by_author: BTreeMap::new(),
            clock: 100,
        }
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn send(&mut self, e: Event, origin: Origin) {
        let before = self.h.replies.get(&e.id).map_or(0, Vec::len);
        self.h.send_from(&e, origin);
        let after = self.h.replies.get(&e.id).map_or(0, Vec::len);
        assert_eq!(after, before + 1, "exactly one OK per EVENT");
        self.sent.push(e);
    }

    fn apply(&mut self, step: &Step) {
        match *step {
            Step::Announce {
                owner,
                d,
                remotes,
                maint,
            } => {
                let urls: Vec<&str> = (0..3)
                    .filter(|i| remotes & (1 << i) != 0)
                    .map(|i| REMOTES[i])
                    .collect();
                let ms: Vec<Keys> = (0..3u64)
                    .filter(|i| maint & (1 << i) != 0)
                    .map(key)
                    .collect();
                let mref: Vec<&Keys> = ms.iter().collect();
                let at = self.tick();
                self.send(
                    announcement(&key(owner.into()), DS[d as usize], at, &urls, &mref),
                    Origin::Client,
                );
            }
            Step::State {
                author,
                d,
                tip,
                sync,
            } => {
                let at = self.tick();
                self.last_state_by_author.insert((author, d), at);
                let e = state(
                    &key(author.into()),
                    DS[d as usize],
                    at,
                    &[("refs/heads/main", oid(tip.into()))],
                    None,
                );
                self.send(e, if sync { Origin::Sync } else { Origin::Client });
            }
            Step::Pr {
                author,
                owner,
                d,
                tip,
            } => {
                let at = self.tick();
                let e = pull_request(
                    &key(author.into()),
                    &key(owner.into()),
                    DS[d as usize],
                    at,
                    &oid(tip.into()).to_string(),
                    &[REMOTES[1]],
                );
                self.send(e, Origin::Client);
            }
            Step::PushState { owner, d } => {
                // Push what the newest waiting or stored state of this identifier says.
                let d_s = DS[d as usize];
                let newest = self
                    .sent
                    .iter()
                    .filter(|e| {
                        e.kind == Kind::RepoState && e.tags.identifier().as_deref() == Some(d_s)
                    })
                    .max_by_key(|e| (e.created_at, e.id));
                if let Some(e) = newest {
                    let tip = e
                        .tags
                        .iter()
                        .find(|t| t.as_slice()[0] == "refs/heads/main")
                        .map(|t| t.as_slice()[1].clone());
                    if let Some(o) = tip.and_then(|t| Oid::parse(&t)) {
                        let r = repo(&key(owner.into()), d_s);
                        if self.h.refs.contains_key(&r) {
                            self.h.push(&r, &[("refs/heads/main", Some(o))]);
                        }
                    }
                }
            }
            Step::PushNostr {
                owner,
                d,
                which,
                tip,
            } => {
                let prs: Vec<EventId> = self
                    .sent
                    .iter()
                    .filter(|e| e.kind == Kind::GitPullRequest)
                    .map(|e| e.id)
                    .collect();
                let id = prs
                    .get(which as usize % (prs.len() + 1))
                    .copied()
                    .unwrap_or(EventId::from_slice(&[which; 32]).unwrap());
                let r = repo(&key(owner.into()), DS[d as usize]);
                if self.h.refs.contains_key(&r) {
                    self.h.push(
                        &r,
                        &[(
                            &format!("refs/nostr/{}", id.to_hex()),
                            Some(oid(tip.into())),
                        )],
                    );
                }
            }
            Step::Delete { which } => {
                if self.sent.is_empty() {
                    return;
                }
                let target = self.sent[which as usize % self.sent.len()].clone();
                let keys = (0..5u64)
                    .map(key)
                    .find(|k| k.public_key() == target.pubkey)
                    .unwrap();
                let at = self.tick();
                let del = sign(
                    &keys,
                    Kind::EventDeletion,
                    at,
                    vec![s(&["e", &target.id.to_hex()])],
                );
                self.send(del, Origin::Client);
            }
            Step::Answer { ok, pick } => {
                if self.h.remote.is_empty() {
                    return;
                }
                let r = self.h.remote[pick as usize % self.h.remote.len()].clone();
                let has = server_has(r.url());
                self.h.answer(r, ok, &has);
            }
            Step::Advance { ms } => self.h.advance(Duration::from_millis(ms.into())),
            Step::Restart => self.h.restart(Config::new(OUR.parse().unwrap())),
            Step::Burst { owner } => {
                for d in 0..DS.len() as u8 {
                    self.apply(&Step::Announce {
                        owner,
                        d,
                        remotes: 7,
                        maint: 0,
                    });
                    self.apply(&Step::State {
                        author: owner,
                        d,
                        tip: d % 6,
                        sync: true,
                    });
                }
            }
        }
    }

    fn check(&mut self) {
        let h = &self.h;
        // No event stored twice.
        let mut seen = BTreeSet::new();
        for (e, _) in &h.stored {
            assert!(seen.insert(e.id), "event {} stored twice", e.id);
        }
        // Throttle: at most 5 pending requests per domain, at most 30 started per 60 s.
        let mut per_domain: BTreeMap<String, usize> = BTreeMap::new();
        for r in &h.remote {
            let dom = url::Url::parse(r.url())
                .unwrap()
                .host_str()
                .unwrap()
                .to_string();
            *per_domain.entry(dom).or_default() += 1;
        }
        assert!(
            per_domain.values().all(|n| *n <= 5),
            "more than 5 in flight: {per_domain:?}"
        );
        for (_, e) in h.trace.iter().skip(self.started.len().min(h.trace.len())) {
            let _ = e;
        }
        // Timers never busy-loop.
        if let Some(t) = h.engine.poll_timeout() {
            let mut probe = Engine::new(Config::new(OUR.parse().unwrap()));
            probe.handle_timeout(t);
            assert!(probe.poll_timeout().is_none_or(|u| u > t));
        }
    }

    fn check_rate(&self) {
        let mut starts: BTreeMap<String, Vec<Time>> = BTreeMap::new();
        for (t, e) in &self.h.trace {
            if let Effect::ListRefs { domain, .. } | Effect::Fetch { domain, .. } = e {
                starts.entry(domain.clone()).or_default().push(*t);
            }
        }
        for (d, ts) in starts {
            for (i, t) in ts.iter().enumerate() {
                let n = ts[i..]
                    .iter()
                    .filter(|u| u.since(*t) < Duration::from_secs(60))
                    .count();
                assert!(n <= 30, "{n} requests to {d} within 60 s from {t}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, max_shrink_iters: 2_000, .. ProptestConfig::default() })]

    #[test]
    fn engine_invariants_hold(steps in proptest::collection::vec(step(), 1..60)) {
        let mut m = Model::new();
        for s in &steps {
            m.apply(s);
            m.check();
            // handle_timeout(now) leaves no deadline at or before now.
            m.h.engine.handle_timeout(m.h.now);
            m.h.drain();
            prop_assert!(m.h.engine.poll_timeout().is_none_or(|t| t > m.h.now), "poll_timeout at or before now after handle_timeout");
        }
        m.check_rate();
        // Every entry ends: answer whatever is pending with failures and run past every
        // deadline (24 h soft expiry included).
        for _ in 0..400 {
            while let Some(r) = m.h.remote.first().cloned() {
                m.h.fail(r.url(), FailureKind::Timeout);
            }
            m.h.advance(Duration::from_secs(600));
            if m.h.engine.poll_timeout().is_none() && m.h.remote.is_empty() { break; }
        }
        prop_assert!(m.h.engine.purgatory_view().is_empty(), "entries left: {:?}", m.h.engine.purgatory_view());
        prop_assert!(m.h.engine.sync_view().is_empty(), "sync entries left: {:?}", m.h.engine.sync_view());
        prop_assert_eq!(m.h.engine.metrics().identifiers, 0, "identifier handles leak");
        prop_assert!(m.h.engine.metrics().domains.is_empty(), "domain handles leak: {:?}", m.h.engine.metrics().domains);
        prop_assert!(!m.h.journal.keys().any(|k| k.starts_with("w:") || k.starts_with("p:") || k.starts_with("x:")), "journal leaks: {:?}", m.h.journal.keys());
        m.check();
    }
}
