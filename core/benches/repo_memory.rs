//! Engine memory per waiting repository (issue 14 item 7): `n` fresh keys each announce
//! a repository listing this server and publish a state naming a commit nobody has, so
//! both wait in purgatory. Bytes the engine holds per repository (the two events' JSON
//! included: the figure is what one more waiting repository costs), given live as
//! client events and restored from journal records (a restart), each in a fresh process.
//! Run: `cargo bench -p grasp-core --bench repo_memory` (`-- --quick` for 2k only).
//! graspd's own resident memory for the same is `graspd-bench repos`.

mod support;
use grasp_core::nostr::prelude::*;
use grasp_core::{Config, Effect, Engine, Input, JournalRecord, ReplyToken, Time, VerifiedEvent};
use std::time::Duration;
use support::{fake, sv};

const OUR: &str = "http://grasp.test";

/// Counts the bytes asked for and not yet freed (see `engine_memory`).
#[global_allocator]
static ALLOC: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

fn live_bytes() -> isize {
    let s = ALLOC.stats();
    s.bytes_allocated as isize - s.bytes_deallocated as isize
}

/// The announcement and the state of the `i`th repository, shaped as graspd-bench's.
fn events(keys: &Keys, i: usize) -> (Event, Event) {
    let pk = keys.public_key();
    let d = format!("waiting-repo-{i}");
    let npub = grasp_core::npub(&pk);
    let announcement = fake(
        pk,
        Kind::GitRepoAnnouncement,
        1_700_000_000,
        vec![
            sv(&["d", &d]),
            sv(&["name", &d]),
            sv(&["description", "a test repository"]),
            sv(&["clone", &format!("{OUR}/{npub}/{d}.git")]),
            sv(&["relays", "ws://grasp.test"]),
        ],
        2 * i as u64 + 1,
    );
    let state = fake(
        pk,
        Kind::RepoState,
        1_700_000_001,
        vec![
            sv(&["d", &d]),
            sv(&["refs/heads/main", &format!("dead{i:036x}")]),
            sv(&["HEAD", "ref: refs/heads/main"]),
        ],
        2 * i as u64 + 2,
    );
    (announcement, state)
}

/// Gives the events to a fresh engine (as client events, or as journal records) and
/// reports the bytes held per repository.
fn measure(n: usize, restored: bool) {
    let keys: Vec<Keys> = (0..n as u64).map(|k| support::keys(1_000 + k)).collect();
    let pairs: Vec<(Event, Event)> = keys.iter().enumerate().map(|(i, k)| events(k, i)).collect();
    let json: usize = pairs
        .iter()
        .map(|(a, s)| a.as_json().len() + s.as_json().len())
        .sum();
    let now = Time::from_millis(10_000_000);
    let mut engine = Engine::new(Config::new(OUR.parse().unwrap()));
    drain(&mut engine, now);
    let before = live_bytes();
    let mut token = 0;
    for (a, s) in pairs {
        for event in [a, s] {
            let input = if restored {
                Input::Restore(JournalRecord::Waiting {
                    event: Box::new(event),
                    origin: grasp_core::Origin::Client,
                    arrived: now,
                    deadline: now.plus(Duration::from_secs(1800)),
                    forget_at: None,
                })
            } else {
                token += 1;
                Input::Event {
                    token: ReplyToken(token),
                    event: VerifiedEvent::assume_verified(event),
                    origin: grasp_core::Origin::Client,
                    received_at: Timestamp::from_secs(1_700_000_010),
                    peer: None,
                }
            };
            engine.handle_input(now, input);
            drain(&mut engine, now);
        }
    }
    if restored {
        engine.handle_input(now, Input::Hydrated);
    }
    drain(&mut engine, now);
    let held = live_bytes() - before;
    let m = engine.metrics();
    println!(
        "{:>6.0} B/repository held by the engine, JSON included ({:.0} B of JSON); waiting: {} announcements, {} states",
        held as f64 / n as f64,
        json as f64 / n as f64,
        m.purgatory_announcements,
        m.purgatory_states
    );
    drop(engine);
}

/// Drains effects, answering object checks with "not found".
fn drain(engine: &mut Engine, now: Time) {
    while let Some(e) = engine.poll_effect() {
        if let Effect::CheckObjects { check, .. } = e {
            engine.handle_input(
                now,
                Input::ObjectsChecked {
                    check,
                    found: vec![],
                },
            );
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--size") {
        let restored = args.iter().any(|a| a == "--restored");
        return measure(
            args[i + 1].parse().expect("--size <repositories>"),
            restored,
        );
    }
    let sizes: &[usize] = if args.iter().any(|a| a == "--quick") {
        &[2_000]
    } else {
        &[2_000, 10_000]
    };
    println!("grasp-core memory per waiting repository");
    for (what, flag) in [("live", None), ("restored", Some("--restored"))] {
        for &n in sizes {
            let exe = std::env::current_exe().expect("own path");
            let out = std::process::Command::new(exe)
                .args(["--size", &n.to_string()])
                .args(flag)
                .output()
                .expect("memory probe runs");
            print!(
                "{n:>7} {what:<9}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
