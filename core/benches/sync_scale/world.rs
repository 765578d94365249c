//! The simulated world: 20 remote git servers (one domain each) and the identifiers that
//! wait for data on them, laid out by shape, all from one seed.

use crate::support::{fake, keys, oid, sv};
use grasp_core::nostr::prelude::{Event, Keys, Kind};
use grasp_core::{Oid, RepoId};
use std::collections::{BTreeMap, HashMap};

pub const OUR: &str = "http://grasp.test";
pub const REMOTES: usize = 20;

/// splitmix64: a tiny deterministic generator (no rand crate needed).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    /// `k` distinct picks from `pool`, in pick order.
    pub fn pick(&mut self, pool: &[usize], k: usize) -> Vec<usize> {
        let mut pool = pool.to_vec();
        (0..k.min(pool.len()))
            .map(|_| pool.swap_remove(self.next() as usize % pool.len()))
            .collect()
    }
}

/// The layouts the bench measures (one row each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// All of an identifier's data on one listed remote; the other listed ones lack it.
    OneHolder,
    /// The data split over two listed remotes: partial fetches must add up.
    Split,
    /// Like `OneHolder`, with 3 of the 20 remotes failing every request (2 hang until the
    /// fetch timeout, 1 refuses connections); the data is always on a healthy one.
    Failing,
    /// Like `OneHolder`, with 80 % of the identifiers on 5 hot remotes (throttle-bound).
    Hot,
}

impl Shape {
    pub fn label(self) -> &'static str {
        match self {
            Shape::OneHolder => "(a) one holder",
            Shape::Split => "(b) split over two",
            Shape::Failing => "(c) 3 remotes failing",
            Shape::Hot => "(d) 5 hot remotes",
        }
    }
}

/// How a remote answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Healthy,
    /// Never answers: the driver's fetch timeout fails the request.
    Hang,
    /// Connection refused after the round trip.
    Refuse,
}

pub struct Remote {
    pub domain: String,
    pub fault: Fault,
    /// Per identifier: the refs it advertises (a stale `main` everywhere, plus the
    /// waiting data it holds).
    pub refs: HashMap<usize, Vec<(String, Oid)>>,
}

/// One identifier: its events and where its data is.
pub struct Ident {
    pub d: String,
    pub repo: RepoId,
    /// The remotes its announcement lists (besides us).
    pub listed: Vec<usize>,
    /// The remotes that hold some of its data, each with the objects only it brings.
    pub holders: Vec<(usize, Vec<Oid>)>,
    /// Its waiting events with the objects each needs (none for the announcement).
    pub events: Vec<(Event, Vec<Oid>)>,
}

pub struct World {
    pub remotes: Vec<Remote>,
    pub idents: Vec<Ident>,
    /// Clone URL → (remote, identifier).
    pub urls: HashMap<String, (usize, usize)>,
}

pub fn url(remote: usize, d: &str) -> String {
    format!("https://r{remote}.example/{d}.git")
}

impl World {
    pub fn new(shape: Shape, n: usize, seed: u64) -> World {
        let mut rng = Rng::new(seed ^ shape as u64);
        let owners: Vec<Keys> = (0..100).map(keys).collect();
        let pr_authors: Vec<Keys> = (100..150).map(keys).collect();
        let mut remotes: Vec<Remote> = (0..REMOTES)
            .map(|k| Remote {
                domain: format!("r{k}.example"),
                fault: Fault::Healthy,
                refs: HashMap::new(),
            })
            .collect();
        if shape == Shape::Failing {
            remotes[17].fault = Fault::Hang;
            remotes[18].fault = Fault::Hang;
            remotes[19].fault = Fault::Refuse;
        }
        let all: Vec<usize> = (0..REMOTES).collect();
        let (hot, cold) = all.split_at(5);
        let mut idents = Vec::with_capacity(n);
        let mut urls = HashMap::new();
        let mut next_event = 0u64;
        for i in 0..n {
            let d = format!("repo{i}");
            let owner = owners[i % owners.len()].clone();
            let m = rng.range(2, 4) as usize;
            let pool = match shape {
                Shape::Hot if !rng.next().is_multiple_of(5) => hot,
                Shape::Hot => cold,
                _ => &all[..],
            };
            let listed = rng.pick(pool, m);
            // Refs of the state (1–3) and, for a quarter of them, a pull request's tip.
            let nrefs = rng.range(if shape == Shape::Split { 2 } else { 1 }, 3) as usize;
            let names = ["refs/heads/main", "refs/heads/dev", "refs/tags/v1"];
            let base = i as u64 * 16;
            let refs: Vec<(String, Oid)> = (0..nrefs)
                .map(|j| (names[j].to_string(), oid(base + j as u64 + 1)))
                .collect();
            let pr_tip = rng.next().is_multiple_of(4).then(|| oid(base + 8));
            let mut data: Vec<(String, Oid)> = refs.clone();
            if let Some(t) = pr_tip {
                data.push((format!("refs/heads/pr-{i}"), t));
            }
            // Who holds what.
            let healthy: Vec<usize> = listed
                .iter()
                .copied()
                .filter(|k| remotes[*k].fault == Fault::Healthy)
                .collect();
            let mut listed = listed;
            let healthy = if healthy.is_empty() {
                // Keep the data reachable: swap the last listed remote for a healthy one.
                let h = rng.pick(&all[..17], 1)[0];
                if !listed.contains(&h) {
                    *listed.last_mut().unwrap() = h;
                }
                vec![h]
            } else {
                healthy
            };
            let holders: Vec<(usize, Vec<(String, Oid)>)> = match shape {
                Shape::Split => {
                    let two = rng.pick(&listed, 2);
                    let cut = rng.range(1, data.len() as u64 - 1) as usize;
                    vec![
                        (two[0], data[..cut].to_vec()),
                        (two[1], data[cut..].to_vec()),
                    ]
                }
                _ => vec![(healthy[rng.next() as usize % healthy.len()], data.clone())],
            };
            for &k in &listed {
                let mut adv = vec![("refs/heads/main".to_string(), oid(base + 12))];
                if let Some((_, held)) = holders.iter().find(|(h, _)| *h == k) {
                    adv.retain(|(name, _)| !held.iter().any(|(n, _)| n == name));
                    adv.extend(held.iter().cloned());
                }
                remotes[k].refs.insert(i, adv);
                urls.insert(url(k, &d), (k, i));
            }
            // The events: announcement, state, maybe a pull request (all from relay sync).
            let mut clone = vec![
                "clone".to_string(),
                format!("{OUR}/{}/{d}.git", npub(&owner)),
            ];
            clone.extend(listed.iter().map(|k| url(*k, &d)));
            let mut events = Vec::new();
            next_event += 1;
            let ann = vec![sv(&["d", &d]), clone, sv(&["relays", "ws://grasp.test"])];
            let ann = fake(
                owner.public_key(),
                Kind::GitRepoAnnouncement,
                10,
                ann,
                next_event,
            );
            events.push((ann, vec![]));
            next_event += 1;
            let mut tags = vec![sv(&["d", &d])];
            tags.extend(refs.iter().map(|(n, o)| vec![n.clone(), o.to_string()]));
            let st = fake(owner.public_key(), Kind::RepoState, 11, tags, next_event);
            events.push((st, refs.iter().map(|(_, o)| *o).collect()));
            if let Some(tip) = pr_tip {
                next_event += 1;
                let tip_holder = holders
                    .iter()
                    .find(|(_, h)| h.iter().any(|(_, o)| *o == tip));
                let coord = format!("30617:{}:{d}", owner.public_key().to_hex());
                let tags = vec![
                    sv(&["a", &coord]),
                    sv(&["c", &tip.to_string()]),
                    sv(&["clone", &url(tip_holder.unwrap().0, &d)]),
                ];
                let author = pr_authors[i % pr_authors.len()].public_key();
                let pr = fake(author, Kind::GitPullRequest, 12, tags, next_event);
                events.push((pr, vec![tip]));
            }
            let holders = holders
                .into_iter()
                .map(|(k, h)| (k, h.into_iter().map(|(_, o)| o).collect()))
                .collect();
            idents.push(Ident {
                repo: RepoId::new(owner.public_key(), &d),
                d,
                listed,
                holders,
                events,
            });
        }
        World {
            remotes,
            idents,
            urls,
        }
    }

    /// The fewest requests that fetch everything, knowing where the data is: per identifier,
    /// one advertisement and one fetch on each remote that must contribute data. Per domain.
    pub fn minimum_per_domain(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for id in &self.idents {
            for (k, _) in &id.holders {
                *out.entry(self.remotes[*k].domain.clone()).or_default() += 2;
            }
        }
        out
    }
}

fn npub(k: &Keys) -> String {
    grasp_core::npub(&k.public_key())
}
