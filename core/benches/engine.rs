//! Engine throughput with 1k, 10k and 100k purgatory entries (memory: `engine_memory`).
//!
//! A bench binary rather than criterion: each phase mutates a large engine whose state
//! cannot be rebuilt per iteration, so we time whole phases of many inputs and report
//! inputs per second.
//! Run: `cargo bench -p grasp-core --bench engine` (`-- --quick` for 1k and 10k only).
//! (A benchmark measures wall time; the clock ban is for the engine itself.)
#![allow(clippy::disallowed_methods)]

use grasp_core::nostr::prelude::*;
use grasp_core::{Effect, Input, PURGATORY_MESSAGE};
use std::time::{Duration, Instant};

mod support;
#[path = "support/world.rs"]
mod world;
use support::{fake, oid, sv};
use world::{ENTRY_LIFETIME, World, author_of, world};

/// graspd's allocator (see `runtime-tokio/src/main.rs`): the engine is timed as it runs.
/// Its memory is counted by the `engine_memory` bench, on a counting allocator.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn rate(count: usize, t: Duration) -> String {
    format!(
        "{:>12.0}/s  ({:.2} µs each)",
        count as f64 / t.as_secs_f64(),
        t.as_secs_f64() * 1e6 / count as f64
    )
}

/// Fetch failures, each freeing a throttle slot that the next queued identifier takes
/// (when the domain's sliding window allows). Attempts are started and time is moved on
/// by untimed timeouts; only the failure inputs (and draining their effects) are timed.
/// Stops before the restored entries expire, so the engine holds `n` entries throughout.
fn fetch_failures(n: usize, want: usize) {
    let mut count = 0;
    let mut issued = 0;
    let mut elapsed = Duration::ZERO;
    while count < want {
        let mut probe = world(n);
        let horizon = probe.start.plus(ENTRY_LIFETIME - Duration::from_secs(60));
        let mut queue = std::collections::VecDeque::new();
        while count < want {
            match probe.engine.poll_timeout() {
                Some(next) if next < horizon => probe.now = probe.now.max(next),
                _ => break,
            }
            probe.engine.handle_timeout(probe.now);
            while let Some(e) = probe.engine.poll_effect() {
                if let Effect::ListRefs { request, .. } = e {
                    queue.push_back(request);
                }
            }
            let t = Instant::now();
            let (failed, next) = fail_queued(&mut probe, &mut queue);
            count += failed;
            issued += next;
            elapsed += t.elapsed();
        }
    }
    println!(
        "fetch failure{}  ({count} failures, {issued} of them issued the next request)",
        rate(count.max(1), elapsed)
    );
}

/// Fails every queued request, queueing the requests that follow; returns how many failed
/// and how many new requests went out. Not inlined, so a profiler can count it alone
/// (`valgrind --tool=callgrind --toggle-collect='*fail_queued*'`).
#[inline(never)]
fn fail_queued(
    probe: &mut World,
    queue: &mut std::collections::VecDeque<grasp_core::RequestId>,
) -> (usize, usize) {
    let (mut count, mut issued) = (0, 0);
    while let Some(request) = queue.pop_front() {
        let failure = grasp_core::Failure {
            kind: grasp_core::FailureKind::Timeout,
            detail: String::new(),
        };
        probe
            .engine
            .handle_input(probe.now, Input::RequestFailed { request, failure });
        count += 1;
        while let Some(e) = probe.engine.poll_effect() {
            if let Effect::ListRefs { request, .. } = e {
                queue.push_back(request);
                issued += 1;
            }
        }
    }
    (count, issued)
}

/// State verdicts: each new state enters purgatory (replacing its author's waiting one)
/// after an object check, answered "not found" (2 inputs each). Newer than every state of
/// the world (`created_at` above them all), so none is refused as a duplicate.
fn state_verdicts(w: &mut World, idents: usize) {
    let k = 20_000;
    let states: Vec<Event> = (0..k)
        .map(|i| {
            w.ids += 1;
            let d = format!("repo{}", i % idents);
            fake(
                author_of(&w.authors, i % idents, i / idents).public_key(),
                Kind::RepoState,
                1_000_000 + i as u64,
                vec![
                    sv(&["d", &d]),
                    vec![
                        "refs/heads/main".into(),
                        oid(900_000 + i as u64).to_string(),
                    ],
                ],
                w.ids,
            )
        })
        .collect();
    let t = Instant::now();
    let waiting = check_states(w, states);
    println!(
        "state verdict{} (2 inputs; {waiting} into purgatory)",
        rate(k, t.elapsed())
    );
}

/// Gives each state to the engine and answers its object check. Not inlined, for
/// `--toggle-collect='*check_states*'`.
#[inline(never)]
fn check_states(w: &mut World, states: Vec<Event>) -> usize {
    let mut waiting = 0;
    for (i, e) in states.into_iter().enumerate() {
        w.give(i, e);
        while let Some(e) = w.engine.poll_effect() {
            match e {
                Effect::CheckObjects { check, .. } => w.engine.handle_input(
                    w.now,
                    Input::ObjectsChecked {
                        check,
                        found: vec![],
                    },
                ),
                Effect::Reply { message, .. } if message == PURGATORY_MESSAGE => waiting += 1,
                _ => {}
            }
        }
    }
    waiting
}

/// Related-event verdicts: issues on hosted repositories, each accepted and stored. The
/// coordinate names the announcement's real owner, so every one is accepted.
fn related_verdicts(w: &mut World, idents: usize) {
    let k = 50_000;
    let events: Vec<Event> = (0..k)
        .map(|i| {
            let owner = &w.owners[(i % idents) % w.owners.len()];
            let d = format!("repo{}", i % idents);
            let coord = format!("30617:{}:{d}", owner.public_key().to_hex());
            w.ids += 1;
            fake(
                w.owners[0].public_key(),
                Kind::GitIssue,
                100,
                vec![sv(&["a", &coord])],
                w.ids,
            )
        })
        .collect();
    let t = Instant::now();
    let accepted = judge(w, events);
    println!(
        "verdict      {}  ({accepted} accepted)",
        rate(k, t.elapsed())
    );
}

/// Gives each event to the engine as a client's; returns how many were accepted. Not
/// inlined, for `--toggle-collect='*judge*'`.
#[inline(never)]
fn judge(w: &mut World, events: Vec<Event>) -> usize {
    let mut accepted = 0;
    for (i, e) in events.into_iter().enumerate() {
        w.give(i, e);
        while let Some(e) = w.engine.poll_effect() {
            if let Effect::Reply { accepted: true, .. } = e {
                accepted += 1;
            }
        }
    }
    accepted
}

/// Expires every entry of `x` in one timeout at the end of their lifetime and drains the
/// effects; returns how many. Not inlined, for `--toggle-collect='*expire_all*'`.
#[inline(never)]
fn expire_all(x: &mut World) -> usize {
    x.now = x.start.plus(ENTRY_LIFETIME);
    x.engine.handle_timeout(x.now);
    x.drain()
}

/// Expiry of a world of `n` entries, its sync attempts started beforehand (untimed: until
/// 2026-11-28 the timed timeout also started every identifier's first attempt, due
/// earlier, which is not expiry's work).
fn expiry(n: usize) {
    let mut x = world(n);
    x.now = x.start.plus(Duration::from_secs(1));
    x.engine.handle_timeout(x.now);
    x.drain();
    let left = x.engine.purgatory_view().len();
    let t = Instant::now();
    let effects = expire_all(&mut x);
    println!(
        "expiry       {}  ({left} entries, {effects} effects)",
        rate(left.max(1), t.elapsed())
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // One phase alone, for profilers: `--fetch-failures <entries> [count]`, `--verdicts <entries>`, `--states <entries>`, `--expiry <entries>`.
    if let Some(i) = args.iter().position(|a| a == "--expiry") {
        return expiry(args[i + 1].parse().expect("--expiry <entries>"));
    }
    if let Some(i) = args.iter().position(|a| a == "--states") {
        let n: usize = args[i + 1].parse().expect("--states <entries>");
        return state_verdicts(&mut world(n), (n / 10).max(1));
    }
    if let Some(i) = args.iter().position(|a| a == "--verdicts") {
        let n: usize = args[i + 1].parse().expect("--verdicts <entries>");
        return related_verdicts(&mut world(n), (n / 10).max(1));
    }
    if let Some(i) = args.iter().position(|a| a == "--fetch-failures") {
        // An optional count after the size, for profilers that need a longer phase.
        let count = args
            .get(i + 2)
            .and_then(|c| c.parse().ok())
            .unwrap_or(20_000);
        return fetch_failures(
            args[i + 1]
                .parse()
                .expect("--fetch-failures <entries> [count]"),
            count,
        );
    }
    let quick = args.iter().any(|a| a == "--quick");
    let sizes: &[usize] = if quick {
        &[1_000, 10_000]
    } else {
        &[1_000, 10_000, 100_000]
    };
    println!("grasp-core engine benchmark (one core)");
    for &n in sizes {
        println!("\n== {n} purgatory entries ({} identifiers)", n / 10);
        let mut w = world(n);
        let idents = (n / 10).max(1);
        related_verdicts(&mut w, idents);
        state_verdicts(&mut w, idents);
        // 3. Timeouts that do nothing (early or repeated calls).
        let k = 1_000_000;
        let t = Instant::now();
        for _ in 0..k {
            w.engine.handle_timeout(w.now);
        }
        println!("idle timeout {}", rate(k, t.elapsed()));
        // 4a. Fetch failures that free a slot for the next request.
        fetch_failures(n, 20_000);
        // 4. A whole sync round: attempts start, every ListRefs and Fetch is answered
        //    (objects found), events are released. Counts every input. Time moves on
        //    only while the restored entries live, so nothing expires in this phase.
        w.now = w.now.plus(Duration::from_secs(200));
        let horizon = w.start.plus(ENTRY_LIFETIME - Duration::from_secs(60));
        let t = Instant::now();
        let mut inputs = 1;
        w.engine.handle_timeout(w.now);
        let mut pending: Vec<Effect> = Vec::new();
        loop {
            while let Some(e) = w.engine.poll_effect() {
                pending.push(e);
            }
            if pending.is_empty() {
                // Throttled work waits for a window to free: move time on.
                match w.engine.poll_timeout() {
                    Some(next) if next < horizon => {
                        w.now = w.now.max(next);
                        w.engine.handle_timeout(w.now);
                        inputs += 1;
                        continue;
                    }
                    _ => break,
                }
            }
            for e in std::mem::take(&mut pending) {
                inputs += 1;
                match e {
                    Effect::ListRefs { request, url, .. } => {
                        // The remote of repo{i} advertises the tips of that repo's states.
                        let i: usize = url
                            .rsplit('/')
                            .next()
                            .unwrap()
                            .trim_start_matches("repo")
                            .trim_end_matches(".git")
                            .parse()
                            .unwrap();
                        let tips = (i..n).step_by(idents).map(|j| oid(j as u64 + 1));
                        let more = (i..20_000).step_by(idents).map(|j| oid(900_000 + j as u64));
                        let refs = tips
                            .chain(more)
                            .map(|o| (format!("refs/heads/{o}"), o))
                            .collect();
                        w.engine
                            .handle_input(w.now, Input::RefsListed { request, refs });
                    }
                    Effect::Fetch { request, oids, .. } => {
                        w.engine.handle_input(
                            w.now,
                            Input::Fetched {
                                request,
                                present: oids,
                                bytes: 0,
                            },
                        );
                    }
                    Effect::CheckObjects { check, .. } => {
                        w.engine.handle_input(
                            w.now,
                            Input::ObjectsChecked {
                                check,
                                found: vec![],
                            },
                        );
                    }
                    _ => inputs -= 1,
                }
            }
        }
        let m = w.engine.metrics();
        println!(
            "sync inputs  {}  ({} released, {} expired, {} attempts)",
            rate(inputs, t.elapsed()),
            m.counters.released_sync,
            m.counters.expired,
            m.counters.attempts
        );
        // 5. Expiry: every entry of a fresh world expires in one timeout (the sync round
        //    above released most of this one's).
        expiry(n);
    }
}
