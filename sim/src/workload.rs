//! The workload: a timed list of things that happen to our server, generated from a
//! seed and a [`Shape`] together with the [`World`] they happen in.

use crate::events;
use crate::shape::{Knobs, Shape};
use crate::world::{Faults, OUR_AUTHORITY, Outage, RemoteRepo, Server, World, our_url};
use grasp_core::nostr::prelude::{Event, EventId};
use grasp_core::{Config, Oid, Origin, Time, npub};
use madsim::rand::Rng;
use std::time::Duration;

/// One thing that happens.
#[derive(Clone, Debug)]
pub enum Action {
    /// A client or relay sync delivers an event.
    Publish {
        /// The event.
        event: Event,
        /// How it arrives.
        origin: Origin,
    },
    /// A maintainer pushes a state's refs (and their objects) to `owner`'s repository.
    Push {
        /// The repository owner (user index).
        owner: usize,
        /// The identifier.
        d: String,
        /// The branch and tag refs after the push.
        refs: Vec<(String, Oid)>,
    },
    /// A contributor pushes a pull request's tip to `refs/nostr/<id>`.
    PushPr {
        /// The repository owner (user index).
        owner: usize,
        /// The identifier.
        d: String,
        /// The pull request event id.
        id: EventId,
        /// Its tip.
        tip: Oid,
    },
    /// Our server goes down for `downtime` and restarts from its journal and store.
    Restart {
        /// How long it is down.
        downtime: Duration,
    },
}

/// A generated run: the world, the engine configuration and the timed actions.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The shape it was generated from.
    pub shape: Shape,
    /// The remote servers.
    pub world: World,
    /// The engine configuration.
    pub config: Config,
    /// Actions, sorted by time.
    pub actions: Vec<(Time, Action)>,
    /// When the run stops (well past every expiry).
    pub end: Time,
}

impl Plan {
    /// Events the workload publishes.
    pub fn events(&self) -> usize {
        self.actions
            .iter()
            .filter(|(_, a)| matches!(a, Action::Publish { .. }))
            .count()
    }
}

/// Generates a plan for `shape` from `rng`.
pub fn generate<R: Rng + ?Sized>(shape: Shape, rng: &mut R) -> Plan {
    let k = shape.knobs();
    let mut g = Gen {
        k: &k,
        world: servers(&k, rng),
        actions: Vec::new(),
        next_user: 3,
    };
    let n = rng.gen_range(k.idents.0..=k.idents.1);
    for i in 0..n {
        g.identifier(&format!("r{i}"), rng);
    }
    let horizon = Time::from_millis(k.horizon_min * 60_000);
    for _ in 0..rng.gen_range(k.restarts.0..=k.restarts.1) {
        let at = Time::from_millis(rng.gen_range(1_000..=horizon.as_millis() + 600_000));
        let downtime = match rng.gen_range(0..4) {
            0 => Duration::from_secs(2),
            1 => Duration::from_secs(rng.gen_range(10..90)),
            2 => Duration::from_secs(rng.gen_range(120..900)),
            _ => Duration::from_secs(rng.gen_range(1_500..2_400)),
        };
        g.actions.push((at, Action::Restart { downtime }));
    }
    let mut actions = g.actions;
    actions.sort_by_key(|(t, _)| *t);
    let last = actions.last().map_or(Time::ZERO, |(t, _)| *t);
    let downtime: Duration = actions
        .iter()
        .filter_map(|(_, a)| match a {
            Action::Restart { downtime } => Some(*downtime),
            _ => None,
        })
        .sum();
    let end = last.plus(downtime).plus(Duration::from_secs(35 * 60));
    let mut config = Config::new(our_url().parse().expect("a valid URL"));
    // The engine's hash keys come from the seed too, so a run replays exactly.
    config.hash_seed = rng.r#gen();
    // One run in four under the flat maintainer rule, chosen from a value already drawn
    // so that every seed's workload stays what it was.
    if config.hash_seed.is_multiple_of(4) {
        config.maintainer_model = grasp_core::MaintainerModel::Listed;
    }
    if k.small_limits {
        config.limits.purgatory_total = 40;
        config.limits.purgatory_per_author = 12;
        config.limits.purgatory_per_identifier = 6;
        config.limits.placeholders_total = 8;
        config.remote_concurrency = 8;
        config.limits.placeholders_per_repo = 3;
    }
    Plan {
        shape,
        world: g.world,
        config,
        actions,
        end,
    }
}

fn servers<R: Rng + ?Sized>(k: &Knobs, rng: &mut R) -> World {
    let n = rng.gen_range(k.servers.0..=k.servers.1);
    let m = rng.gen_range(k.domains.0..=k.domains.1).min(n).max(1);
    let horizon = k.horizon_min * 60_000 + 1_800_000;
    let mut world = World {
        fetch_timeout: Duration::from_secs(120),
        ..World::default()
    };
    for s in 0..n {
        let domain = format!("d{}.test", if s < m { s } else { rng.gen_range(0..m) });
        let lo = rng.gen_range(5..200);
        let faults = if rng.gen_bool(k.flaky) {
            let mut outages = Vec::new();
            for _ in 0..rng.gen_range(0..3) {
                let from = rng.gen_range(0..horizon);
                let len = rng.gen_range(30_000..900_000);
                let kind = if rng.gen_bool(0.5) {
                    Outage::Refused
                } else {
                    Outage::Hang
                };
                outages.push((Time::from_millis(from), Time::from_millis(from + len), kind));
            }
            Faults {
                outages,
                refuse: rng.gen_range(0.0..0.2),
                hang: rng.gen_range(0.0..0.1),
                rate_limit: rng.gen_range(0.0..0.1),
                garbage: rng.gen_range(0.0..0.1),
            }
        } else {
            Faults::default()
        };
        world.domains.insert(domain.clone());
        world.servers.push(Server {
            domain,
            prefix: format!("s{s}"),
            latency_ms: (lo, lo + rng.gen_range(0..lo * 4 + 1)),
            faults,
            repos: Default::default(),
        });
    }
    world
}

struct Gen<'a> {
    k: &'a Knobs,
    world: World,
    actions: Vec<(Time, Action)>,
    next_user: usize,
}

fn oid<R: Rng + ?Sized>(rng: &mut R) -> Oid {
    let bytes: [u8; 20] = rng.r#gen();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Oid::parse(&hex).expect("40 hex digits")
}

fn secs(t: Time) -> u64 {
    t.as_millis() / 1000
}

impl Gen<'_> {
    fn user(&mut self) -> usize {
        self.next_user += 1;
        self.next_user - 1
    }

    /// Maintainer `m`, listed by `owner`, accepts (its own announcement of `d`, listing no
    /// clone server of ours, names the owner back) in four identifiers of five, some
    /// seconds to minutes after the owner's announcement; in the fifth it stays invited.
    /// Decided from a hash of who and what rather than drawn from the run's generator, so
    /// the rest of every seed's workload is what it was before acceptances existed.
    fn acceptance(&mut self, m: usize, owner: usize, d: &str, relay: &str, t0: Time) {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in d.bytes().chain(m.to_le_bytes()).chain(owner.to_le_bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        if h.is_multiple_of(5) || m == owner {
            return;
        }
        let at = t0.plus(Duration::from_millis(1_000 + (h >> 8) % 900_000));
        let ev = events::announcement(m, d, &[], relay, &[owner], secs(at));
        self.publish(at, ev, Origin::Client);
    }

    fn publish(&mut self, at: Time, event: Event, origin: Origin) {
        self.actions.push((at, Action::Publish { event, origin }));
    }

    /// Places `oids` on servers `on` from time `from` (advertised unless `hidden`).
    fn place(&mut self, d: &str, on: &[usize], oids: &[Oid], from: Time, hidden: bool) {
        for s in on {
            let repo: &mut RemoteRepo = self.world.servers[*s].repos.entry(d.into()).or_default();
            for o in oids {
                let t = repo.objects.entry(*o).or_insert(from);
                *t = (*t).min(from);
                if !hidden {
                    repo.advertised.insert(*o);
                }
            }
        }
    }

    fn identifier<R: Rng + ?Sized>(&mut self, d: &str, rng: &mut R) {
        let k = self.k;
        let n_srv = self.world.servers.len();
        let flood = k.small_limits;
        let owner = if flood {
            rng.gen_range(0..2)
        } else {
            self.user()
        };
        let maint = (!flood && rng.gen_bool(k.maintainer)).then(|| self.user());
        let co = (!flood && rng.gen_bool(k.co_host)).then(|| self.user());
        let horizon = k.horizon_min * 60_000;
        let origin = if rng.gen_bool(k.sync_origin) {
            Origin::Sync
        } else {
            Origin::Client
        };
        let t0 = Time::from_millis(rng.gen_range(0..horizon / 2 + 1));
        let listed: Vec<usize> = (0..rng.gen_range(1..=n_srv.min(3)))
            .map(|_| rng.gen_range(0..n_srv))
            .collect();
        let relay = format!("ws://{OUR_AUTHORITY}");
        let mut owners = vec![(owner, maint.into_iter().collect::<Vec<_>>())];
        if let Some(c) = co {
            owners.push((c, vec![owner]));
        }
        for (o, maintainers) in &owners {
            let pk = npub(&events::pubkey(*o));
            let mut clone = vec![format!("{}/{pk}/{d}.git", our_url())];
            clone.extend(listed.iter().map(|s| self.world.url(*s, &pk, d)));
            if rng.gen_bool(k.refused_url) {
                clone.push(match rng.gen_range(0..3) {
                    0 => format!("ssh://git@d0.test/{pk}/{d}.git"),
                    1 => format!("file:///srv/{d}.git"),
                    _ => format!("{}/other/{d}.git", our_url()),
                });
            }
            let at = t0.plus(Duration::from_millis(rng.gen_range(0..200)));
            let ev = events::announcement(*o, d, &clone, &relay, maintainers, secs(at));
            self.publish(at, ev.clone(), origin);
            if !flood && rng.gen_bool(k.maint_change) {
                let later = at.plus(Duration::from_secs(rng.gen_range(30..1_200)));
                let m2: Vec<usize> = if maintainers.is_empty() {
                    vec![self.user()]
                } else {
                    Vec::new()
                };
                let ev2 = events::announcement(*o, d, &clone, &relay, &m2, secs(later) + 1);
                self.publish(later, ev2, Origin::Client);
            }
        }
        if let Some(m) = maint {
            self.acceptance(m, owner, d, &relay, t0);
        }
        let authors: Vec<usize> = std::iter::once(owner).chain(maint).collect();
        let mut t = t0.plus(Duration::from_secs(1));
        let mut dev: Option<Oid> = None;
        for i in 0..rng.gen_range(k.states.0..=k.states.1) {
            t = t.plus(Duration::from_millis(rng.gen_range(1_000..600_000)));
            let author = authors[rng.gen_range(0..authors.len())];
            let mut refs = vec![("refs/heads/main".to_owned(), oid(rng))];
            if rng.gen_bool(0.3) {
                refs.push((format!("refs/tags/v{i}"), oid(rng)));
            }
            if let Some(o) = dev.filter(|_| rng.gen_bool(0.3)) {
                refs.push(("refs/heads/dev".to_owned(), o));
            }
            dev = Some(refs[0].1);
            let ev = events::state(author, d, &refs, secs(t) + i as u64);
            self.data_for(d, &refs, t, &listed, rng);
            if rng.gen_bool(k.push) {
                let target = owners[rng.gen_range(0..owners.len())].0;
                let delay = [0, 2, 100, 185, 400][rng.gen_range(0..5)];
                self.actions.push((
                    t.plus(Duration::from_secs(delay)),
                    Action::Push {
                        owner: target,
                        d: d.to_owned(),
                        refs: refs.clone(),
                    },
                ));
            }
            if rng.gen_bool(k.delete) {
                let later = t.plus(Duration::from_secs(rng.gen_range(5..1_500)));
                let del = events::deletion(author, &[ev.id], secs(later) + 1);
                self.publish(later, del, Origin::Client);
            }
            self.publish(t, ev, origin);
        }
        for _ in 0..2 {
            if rng.gen_bool(k.pr) {
                self.pull_request(d, owner, t0, &listed, rng);
            }
        }
    }

    /// Where a state's objects live: nowhere, on one server, or split over several,
    /// from now or from later.
    fn data_for<R: Rng + ?Sized>(
        &mut self,
        d: &str,
        refs: &[(String, Oid)],
        t: Time,
        listed: &[usize],
        rng: &mut R,
    ) {
        let k = self.k;
        if rng.gen_bool(k.nowhere) {
            return;
        }
        let oids: Vec<Oid> = refs.iter().map(|(_, o)| *o).collect();
        for (i, o) in oids.iter().enumerate() {
            let on: Vec<usize> = if rng.gen_bool(k.partial) {
                vec![listed[(i + rng.gen_range(0..listed.len())) % listed.len()]]
            } else {
                vec![listed[0]]
            };
            let from = if rng.gen_bool(k.late) {
                t.plus(Duration::from_secs(rng.gen_range(30..1_500)))
            } else {
                Time::from_millis(t.as_millis().saturating_sub(rng.gen_range(0..60_000)))
            };
            let hidden = rng.gen_bool(0.05);
            self.place(d, &on, &[*o], from, hidden);
        }
        if rng.gen_bool(k.liar) {
            let s = listed[rng.gen_range(0..listed.len())];
            let repo = self.world.servers[s].repos.entry(d.into()).or_default();
            if let Some(o) = oids.iter().find(|o| !repo.objects.contains_key(o)) {
                repo.lies.insert(*o);
            }
        }
    }

    fn pull_request<R: Rng + ?Sized>(
        &mut self,
        d: &str,
        owner: usize,
        t0: Time,
        listed: &[usize],
        rng: &mut R,
    ) {
        let author = rng.gen_range(0..3);
        let tip = oid(rng);
        let at = t0.plus(Duration::from_millis(rng.gen_range(2_000..900_000)));
        let s = listed[rng.gen_range(0..listed.len())];
        let fork = self.world.url(s, &npub(&events::pubkey(author)), d);
        let ev = events::pull_request(author, owner, d, tip, &[fork], secs(at));
        match rng.gen_range(0..4) {
            0 => {}
            1 => {
                let delay = [-30i64, 5, 300][rng.gen_range(0..3)];
                let when = Time::from_millis((at.as_millis() as i64 + delay * 1000).max(0) as u64);
                self.actions.push((
                    when,
                    Action::PushPr {
                        owner,
                        d: d.to_owned(),
                        id: ev.id,
                        tip,
                    },
                ));
            }
            _ => {
                let from = if rng.gen_bool(self.k.late) {
                    at.plus(Duration::from_secs(rng.gen_range(30..1_500)))
                } else {
                    at
                };
                self.place(d, &[s], &[tip], from, false);
            }
        }
        let origin = if rng.gen_bool(0.5) {
            Origin::Sync
        } else {
            Origin::Client
        };
        self.publish(at, ev, origin);
    }
}
