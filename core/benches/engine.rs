//! Engine throughput and memory with 1k, 10k and 100k purgatory entries.
//!
//! A bench binary rather than criterion: each phase mutates a large engine whose state
//! cannot be rebuilt per iteration, so we time whole phases of many inputs and report
//! inputs per second, plus resident memory per purgatory entry (Linux `/proc`).
//! Run: `cargo bench -p grasp-core --bench engine` (`-- --quick` for 1k and 10k only).
//! (A benchmark measures wall time; the clock ban is for the engine itself.)
#![allow(clippy::disallowed_methods)]

use grasp_core::nostr::prelude::*;
use grasp_core::{
    Config, Effect, Engine, Input, JournalRecord, PURGATORY_MESSAGE, ReplyToken, Time,
    VerifiedEvent,
};
use std::time::{Duration, Instant};

mod support;
use support::{fake, keys, oid, sv};

const OUR: &str = "http://grasp.test";

struct World {
    engine: Engine,
    owners: Vec<Keys>,
    authors: Vec<Keys>,
    now: Time,
    start: Time,
    ids: u64,
}

/// Identifiers hosted by each remote server of the world (ten times a domain's
/// concurrency of 5, so most wait in its queue).
const IDENTS_PER_REMOTE: usize = 50;

/// The events of a world of `n` waiting states over `n / 10` identifiers: one
/// announcement per identifier (serving it here, one remote) and the states.
struct Fixture {
    owners: Vec<Keys>,
    authors: Vec<Keys>,
    announcements: Vec<Event>,
    states: Vec<Event>,
    ids: u64,
}

fn fixture(n: usize) -> Fixture {
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
/// per-author purgatory cap (1000) — 500 entries each at most, 10 at least (each
/// identifier's 10 states come from 10 different maintainers, listed in its announcement).
fn state_authors(n: usize) -> Vec<Keys> {
    (0..(n / 500).max(10) as u64)
        .map(|k| keys(100 + k))
        .collect()
}

/// The author of the `k`-th state (0..10) of identifier `i`.
fn author_of(authors: &[Keys], i: usize, k: usize) -> &Keys {
    &authors[(i + k % 10) % authors.len()]
}

/// The `n` waiting states of a world; `ids` is the last event number used before them.
fn states(authors: &[Keys], n: usize, ids: u64) -> Vec<Event> {
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
const ENTRY_LIFETIME: Duration = Duration::from_secs(1800);

/// An engine with `n` waiting states over `n / 10` identifiers (each announced, served,
/// with one remote), restored from journal records.
fn world(n: usize) -> World {
    world_from(fixture(n))
}

fn world_from(f: Fixture) -> World {
    let mut engine = Engine::new(Config::new(OUR.parse().unwrap()));
    let now = Time::from_millis(10_000_000);
    for ann in f.announcements {
        engine.handle_input(now, Input::Stored(VerifiedEvent::assume_verified(ann)));
    }
    for st in f.states {
        let record = JournalRecord::Waiting {
            event: st,
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
    fn give(&mut self, i: usize, e: Event) {
        let input = Input::Event {
            token: ReplyToken(i as u64),
            event: VerifiedEvent::assume_verified(e),
            origin: grasp_core::Origin::Client,
            received_at: Timestamp::from_secs(2_000_000_000),
        };
        self.engine.handle_input(self.now, input);
    }

    /// Drains effects, answering object checks with "not found"; returns the count.
    fn drain(&mut self) -> usize {
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

fn rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn rate(count: usize, t: Duration) -> String {
    format!(
        "{:>12.0}/s  ({:.2} µs each)",
        count as f64 / t.as_secs_f64(),
        t.as_secs_f64() * 1e6 / count as f64
    )
}

/// Counts the bytes the program has asked for and not yet freed, so the engine's own
/// memory can be told apart from the allocator's slack (reported separately as RSS).
#[global_allocator]
static ALLOC: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

/// Bytes asked for and not freed. stats_alloc already adds a `realloc`'s growth to
/// `bytes_allocated` (and its shrinking to `bytes_deallocated`); `bytes_reallocated` is the
/// same delta again, so adding it counted every grown-then-kept buffer (each event's JSON,
/// serialized into a growing `Vec`) twice.
fn live_bytes() -> isize {
    let s = ALLOC.stats();
    s.bytes_allocated as isize - s.bytes_deallocated as isize
}

/// Engine memory per purgatory entry, measured in a fresh process (so no earlier phase's
/// freed memory is reused). Two figures: the bytes the engine holds (counted by the
/// allocator above) for its `n` waiting states beyond the same engine with none, minus
/// the events' JSON (the part the target excludes); and the resident growth per entry
/// (allocator slack included) beyond that JSON.
fn memory(n: usize) {
    // (bytes held, KiB resident) grown while `f` runs.
    fn grown<T>(f: impl FnOnce() -> T) -> (T, isize, isize) {
        let (b, r) = (live_bytes(), rss_kib().unwrap_or(0) as isize);
        let out = f();
        let (b2, r2) = (live_bytes(), rss_kib().unwrap_or(0) as isize);
        (out, b2 - b, (r2 - r) * 1024)
    }
    let (f, fixture_bytes, fixture_rss) = grown(|| fixture(n));
    let json: usize = f.states.iter().map(|e| e.as_json().len()).sum();
    let (empty, empty_bytes, empty_rss) = grown(|| Fixture {
        owners: f.owners.clone(),
        authors: f.authors.clone(),
        announcements: f.announcements.clone(),
        states: Vec::new(),
        ids: f.ids,
    });
    // `world_from` consumes its fixture (the engine keeps what it needs), so what a world
    // holds is what grew plus the fixture it freed.
    let (base, base_bytes, base_rss) = grown(|| world_from(empty));
    let (w, world_bytes, world_rss) = grown(|| world_from(f));
    let held = (world_bytes + fixture_bytes) - (base_bytes + empty_bytes);
    let resident = (world_rss + fixture_rss) - (base_rss + empty_rss);
    let per = |bytes: isize| (bytes as f64 - json as f64) / n as f64;
    println!(
        "memory       {:>8.0} bytes/entry held by the engine excluding the event JSON \
         ({:.0} resident; JSON {:.0} B/event)",
        per(held),
        per(resident),
        json as f64 / n as f64
    );
    drop((base, w));
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--memory") {
        return memory(args[i + 1].parse().expect("--memory <entries>"));
    }
    // One phase alone, for profilers: `--fetch-failures <entries> [count]`, `--verdicts <entries>`, `--states <entries>`.
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
        let exe = std::env::current_exe().expect("own path");
        let out = std::process::Command::new(exe)
            .args(["--memory", &n.to_string()])
            .output()
            .expect("memory probe runs");
        print!("{}", String::from_utf8_lossy(&out.stdout));
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
        let mut x = world(n);
        let left = x.engine.purgatory_view().len();
        x.now = x.start.plus(ENTRY_LIFETIME);
        let t = Instant::now();
        x.engine.handle_timeout(x.now);
        let effects = x.drain();
        println!(
            "expiry       {}  ({left} entries, {effects} effects)",
            rate(left.max(1), t.elapsed())
        );
    }
}
