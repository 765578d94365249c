//! The world both engine benches build: `n` waiting states over `n / 10` announced
//! identifiers, each hosted here and on one remote (50 identifiers per remote).

use crate::support::{fake, keys, oid, sv};
use grasp_core::nostr::prelude::*;
use grasp_core::{Config, Effect, Engine, Input, JournalRecord, ReplyToken, Time, VerifiedEvent};
use std::time::Duration;

pub(crate) const OUR: &str = "http://grasp.test";

pub(crate) struct World {
    pub(crate) engine: Engine,
    pub(crate) owners: Vec<Keys>,
    pub(crate) authors: Vec<Keys>,
    pub(crate) now: Time,
    pub(crate) start: Time,
    pub(crate) ids: u64,
}

/// Identifiers hosted by each remote server of the world (ten times a domain's
/// concurrency of 5, so most wait in its queue).
pub(crate) const IDENTS_PER_REMOTE: usize = 50;

/// The events of a world of `n` waiting states over `n / 10` identifiers: one
/// announcement per identifier (serving it here, one remote) and the states.
pub(crate) struct Fixture {
    pub(crate) owners: Vec<Keys>,
    pub(crate) authors: Vec<Keys>,
    pub(crate) announcements: Vec<Event>,
    pub(crate) states: Vec<Event>,
    pub(crate) ids: u64,
}

pub(crate) fn fixture(n: usize) -> Fixture {
    let owners: Vec<Keys> = (0..8).map(keys).collect();
    let authors = state_authors(n);
    let idents = (n / 10).max(1);
    // Every remote hosts the same number of identifiers at every size, so that the
    // per-domain shape is constant and only the totals grow (with 20 remotes at 1k, no
    // identifier ever queued and a failure did less work than at 10k and 100k).
    let remotes = (idents / IDENTS_PER_REMOTE).max(1);
    let mut ids = 0;
    let mut announcements = Vec::with_capacity(idents);
    for i in 0..idents {
        let owner = &owners[i % owners.len()];
        let npub = grasp_core::npub(&owner.public_key());
        let d = format!("repo{i}");
        ids += 1;
        announcements.push(fake(
            owner.public_key(),
            Kind::GitRepoAnnouncement,
            10,
            vec![
                sv(&["d", &d]),
                vec![
                    "clone".into(),
                    format!("{OUR}/{npub}/{d}.git"),
                    format!("https://remote{}.example/{d}.git", i % remotes),
                ],
                sv(&["relays", "ws://grasp.test"]),
                vec!["maintainers".into()]
                    .into_iter()
                    .chain(owners.iter().map(|k| k.public_key().to_hex()))
                    .chain((0..10).map(|k| authors[(i + k) % authors.len()].public_key().to_hex()))
                    .collect(),
            ],
            ids,
        ));
    }
    let states = states(&authors, n, ids);
    ids += n as u64;
    Fixture {
        owners,
        authors,
        announcements,
        states,
        ids,
    }
}

/// Who publishes the states of a world of `n`: enough authors that none reaches the
/// per-author purgatory cap the world sets (1000) — 500 entries each at most, 10 at least (each
/// identifier's 10 states come from 10 different maintainers, listed in its announcement).
pub(crate) fn state_authors(n: usize) -> Vec<Keys> {
    (0..(n / 500).max(10) as u64)
        .map(|k| keys(100 + k))
        .collect()
}

/// The author of the `k`-th state (0..10) of identifier `i`.
pub(crate) fn author_of(authors: &[Keys], i: usize, k: usize) -> &Keys {
    &authors[(i + k % 10) % authors.len()]
}

/// The `n` waiting states of a world; `ids` is the last event number used before them.
pub(crate) fn states(authors: &[Keys], n: usize, ids: u64) -> Vec<Event> {
    let idents = (n / 10).max(1);
    (0..n)
        .map(|j| {
            let i = j % idents;
            let author = author_of(authors, i, j / idents);
            fake(
                author.public_key(),
                Kind::RepoState,
                20 + j as u64,
                vec![
                    sv(&["d", &format!("repo{i}")]),
                    vec!["refs/heads/main".into(), oid(j as u64 + 1).to_string()],
                ],
                ids + 1 + j as u64,
            )
        })
        .collect()
}

/// Restored purgatory entries expire this long after the world's start.
pub(crate) const ENTRY_LIFETIME: Duration = Duration::from_secs(1800);

/// An engine with `n` waiting states over `n / 10` identifiers (each announced, served,
/// with one remote), restored from journal records.
pub(crate) fn world(n: usize) -> World {
    world_from(fixture(n))
}

pub(crate) fn world_from(f: Fixture) -> World {
    let mut config = Config::new(OUR.parse().unwrap());
    // The fixture's maintainers publish no announcements of their own: under the flat
    // rule they are maintainers, as in every earlier round's numbers; under the
    // reciprocal default they would only be invited and their states refused, which
    // would measure a different workload.
    config.maintainer_model = grasp_core::MaintainerModel::Listed;
    // The world gives each author up to 500 waiting states (see `state_authors`), as in
    // every earlier round's numbers; the default per-author cap is 100 now, and the
    // bench measures verdicts and releases, not that refusal.
    config.limits.purgatory_per_author = 1_000;
    let mut engine = Engine::new(config);
    let now = Time::from_millis(10_000_000);
    for ann in f.announcements {
        engine.handle_input(now, Input::Stored(VerifiedEvent::assume_verified(ann)));
    }
    for st in f.states {
        let record = JournalRecord::Waiting {
            event: Box::new(st),
            origin: grasp_core::Origin::Sync,
            arrived: now,
            deadline: now.plus(ENTRY_LIFETIME),
            forget_at: None,
        };
        engine.handle_input(now, Input::Restore(record));
    }
    engine.handle_input(now, Input::Hydrated);
    let mut w = World {
        engine,
        owners: f.owners,
        authors: f.authors,
        now,
        start: now,
        ids: f.ids,
    };
    w.drain();
    w
}

impl World {
    /// Gives event `e` to the engine as a client's `i`-th (effects are left to drain).
    pub(crate) fn give(&mut self, i: usize, e: Event) {
        let input = Input::Event {
            token: ReplyToken(i as u64),
            event: VerifiedEvent::assume_verified(e),
            origin: grasp_core::Origin::Client,
            received_at: Timestamp::from_secs(2_000_000_000),
            peer: None,
        };
        self.engine.handle_input(self.now, input);
    }

    /// Drains effects, answering object checks with "not found"; returns the count.
    pub(crate) fn drain(&mut self) -> usize {
        let mut n = 0;
        while let Some(e) = self.engine.poll_effect() {
            n += 1;
            if let Effect::CheckObjects { check, .. } = e {
                self.engine.handle_input(
                    self.now,
                    Input::ObjectsChecked {
                        check,
                        found: vec![],
                    },
                );
            }
        }
        n
    }
}
