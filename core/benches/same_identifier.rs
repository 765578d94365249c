//! What one more stranger announcing an identifier costs the engine, by how many have
//! announced it already (issue 14 item 3). Every stranger lists this server, so each
//! gets a repository of the same `d`; the identifier's maintainer has a state waiting
//! for two objects that are nowhere. Object checks are answered "not found" at once.
//! Two shapes: strangers who only announce, and strangers who also publish a state
//! (which waits, for an object that is nowhere).
//!
//! Run: `cargo bench -p grasp-core --bench same_identifier` (`-- --quick`: 1,000).
//! (A benchmark measures wall time; the clock ban is for the engine itself.)
#![allow(clippy::disallowed_methods, clippy::print_stdout)]

use grasp_core::nostr::prelude::*;
use grasp_core::{Config, Effect, Engine, Input, Origin, ReplyToken, Time, VerifiedEvent};
use std::time::{Duration, Instant};

mod support;
use support::{fake, keys, oid, sv};

/// graspd's allocator, as in the `engine` bench.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const OUR: &str = "http://grasp.test";
const D: &str = "d";

struct Bench {
    engine: Engine,
    now: Time,
    token: u64,
    ids: u64,
    /// Object ids asked for, summed over every check, and repositories × objects.
    asked: (usize, usize),
}

impl Bench {
    fn new() -> Self {
        let mut config = Config::new(OUR.parse().unwrap());
        // Uncapped, to show how the cost grows (graspd caps announcements of one
        // identifier at 1,000 by default).
        config.limits.purgatory_per_identifier = 1_000_000;
        config.limits.repos_per_identifier = 1_000_000;
        let mut b = Bench {
            engine: Engine::new(config),
            now: Time::from_millis(1_000_000),
            token: 0,
            ids: 0,
            asked: (0, 0),
        };
        b.engine.handle_input(b.now, Input::Hydrated);
        b.drain();
        b
    }

    fn give(&mut self, e: Event) {
        self.token += 1;
        self.engine.handle_input(
            self.now,
            Input::Event {
                token: ReplyToken(self.token),
                event: VerifiedEvent::assume_verified(e),
                origin: Origin::Client,
                received_at: Timestamp::from_secs(2_000_000_000),
                peer: None,
            },
        );
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(e) = self.engine.poll_effect() {
            if let Effect::CheckObjects { check, repos, oids } = e {
                self.asked.0 += oids.len();
                self.asked.1 += repos.len() * oids.len();
                self.engine.handle_input(
                    self.now,
                    Input::ObjectsChecked {
                        check,
                        found: vec![],
                    },
                );
            }
        }
    }

    fn announcement(&mut self, k: &Keys) -> Event {
        self.ids += 1;
        let pk = k.public_key();
        let clone = format!("{OUR}/{}/{D}.git", pk.to_bech32().unwrap());
        fake(
            pk,
            Kind::GitRepoAnnouncement,
            10,
            vec![
                sv(&["d", D]),
                sv(&["clone", &clone]),
                sv(&["relays", "ws://grasp.test"]),
            ],
            self.ids,
        )
    }

    fn state(&mut self, k: &Keys, oids: &[u64]) -> Event {
        self.ids += 1;
        let mut tags = vec![sv(&["d", D])];
        for (i, o) in oids.iter().enumerate() {
            tags.push(vec![format!("refs/heads/b{i}"), oid(*o).to_string()]);
        }
        fake(k.public_key(), Kind::RepoState, 11, tags, self.ids)
    }
}

/// `n` strangers, timed per band of 100; with `states`, each also publishes a state.
fn run(n: usize, states: bool) {
    let mut b = Bench::new();
    let maintainer = keys(0);
    let a = b.announcement(&maintainer);
    b.give(a);
    let s = b.state(&maintainer, &[1, 2]);
    b.give(s);
    let strangers: Vec<Keys> = (1..=n as u64).map(keys).collect();
    let mut band = (Duration::ZERO, (0, 0));
    println!(
        "\n== {n} strangers{}",
        if states {
            ", each with a waiting state"
        } else {
            ""
        }
    );
    for (i, k) in strangers.iter().enumerate() {
        let a = b.announcement(k);
        let s = states.then(|| b.state(k, &[1_000 + i as u64]));
        let asked = b.asked;
        let t = Instant::now();
        b.give(a);
        if let Some(s) = s {
            b.give(s);
        }
        band.0 += t.elapsed();
        band.1.0 += b.asked.0 - asked.0;
        band.1.1 += b.asked.1 - asked.1;
        if (i + 1) % 100 == 0 && [100, n / 2, n].contains(&(i + 1)) {
            println!(
                "strangers {:>5}–{:<5} {:>9.1} µs each; per stranger {:>5.1} objects asked, {:>7.1} repositories × objects",
                i + 1 - 100,
                i + 1,
                band.0.as_secs_f64() * 1e6 / 100.0,
                band.1.0 as f64 / 100.0,
                band.1.1 as f64 / 100.0,
            );
        }
        if (i + 1) % 100 == 0 {
            band = (Duration::ZERO, (0, 0));
        }
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 1_000 } else { 2_000 };
    println!("grasp-core: one more stranger announcing the same identifier (one core)");
    run(n, false);
    run(n, true);
}
