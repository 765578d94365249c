//! Hostile REQs (issue 14 item 5): graspd's resident memory while slow readers take
//! large answers, and while clients send huge filters.
//!
//! - Slow readers: 1,600 stored issues of 50 KB (80 MB; 400 quick), then 10 websockets
//!   (4 quick) with 4 KiB receive windows that REQ all of them and read one message
//!   every 5 ms. Measured: graspd's peak resident memory over the run (sampled every
//!   5 ms) against its baseline, all of it and anonymous memory only (reading the events
//!   maps the store's file pages in, which the kernel can drop at any time); how long
//!   until every reader had its EOSE; another client's REQ → EOSE meanwhile.
//! - Huge filters: 64 REQs (16 quick) of 0.84 MB filters on 4 connections, each left
//!   open, against a fresh graspd: how many it accepted, and its resident memory growth.
//!
//! graspd runs with its defaults (the event rate limit lifted for the set-up).

use std::time::{Duration, Instant};

use grasp_tests::events;
use grasp_tests::fixture::World;
use grasp_tests::nostr_sdk::prelude::{Event, Filter, Keys, Timestamp};
use grasp_tests::slow_reader::{SlowReader, rss_anon_kib};

use crate::report::{Row, RssSampler, rss_kib};
use crate::{Scale, graspd_options, load, report};

const CONTENT: usize = 50_000;
const READ_PAUSE: Duration = Duration::from_millis(5);
const FILTER_CONNECTIONS: usize = 4;
const SETTLE: Duration = Duration::from_secs(2);
/// Small REQs another client sends while the slow readers read (one a second).
const OTHER_REQS: usize = 5;

/// Runs both parts.
pub async fn run(scale: Scale) -> Vec<Row> {
    let issues: usize = scale.pick(400, 1_600);
    let readers: usize = scale.pick(4, 10);
    let world = World::start_with(graspd_options()).await;
    let hosted = world.hosted(&Keys::generate(), "slowreq", &[]).await;
    let stored = large_issues(&hosted.coordinate(), issues);
    let clients = vec![world.client().await, world.client().await];
    let outcome = load::publish(&clients, &stored).await;
    assert_eq!(outcome.accepted, issues, "refusals: {:?}", outcome.refusals);
    let mut rows = slow_readers(&world, issues, readers).await;
    drop(world);
    // A fresh graspd: what the slow readers left in its allocator is no baseline.
    let world = World::start_with(graspd_options()).await;
    rows.extend(huge_filters(&world, scale.pick(16, 64)).await);
    rows
}

/// `count` issues on `repo` with 50 KB of content each, one second apart.
fn large_issues(repo: &str, count: usize) -> Vec<Event> {
    let author = Keys::generate();
    let newest = events::at(-60).as_secs();
    (0..count)
        .map(|i| {
            let content = format!("{i:05}{}", "x".repeat(CONTENT));
            let subject = format!("large issue {i}");
            let tags = vec![
                events::tag(&["a", repo]),
                events::tag(&["subject", &subject]),
            ];
            let created_at = Timestamp::from(newest - i as u64);
            events::sign(&author, 1621, &content, tags, created_at)
        })
        .collect()
}

async fn slow_readers(world: &World, issues: usize, readers: usize) -> Vec<Row> {
    let pid = world.server.pid().expect("graspd runs");
    tokio::time::sleep(SETTLE).await;
    let baseline = rss_kib(pid);
    let baseline_anon = rss_anon_kib(pid);
    let cpu_before = user_sys(pid);
    let sampler = RssSampler::start(pid);
    let anon_sampler = RssSampler::start_with(pid, rss_anon_kib);
    let started = Instant::now();
    let reading = (0..readers).map(|_| async {
        let mut reader = SlowReader::connect(&world.server).await;
        reader.send(r#"["REQ","all",{"kinds":[1621]}]"#).await;
        let mut received = 0usize;
        loop {
            let message = reader.expect().await;
            match message[0].as_str() {
                Some("EVENT") => received += 1,
                Some("EOSE") => return received,
                _ => panic!("unexpected answer: {message}"),
            }
            tokio::time::sleep(READ_PAUSE).await;
        }
    });
    let other = async {
        // While the readers are under way: another client's small REQ, once a second.
        let client = world.client().await;
        let mut latencies = Vec::new();
        for _ in 0..OTHER_REQS {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let asked = Instant::now();
            let events = client.query(vec![Filter::new().limit(10)]).await;
            assert_eq!(events.len(), 10);
            latencies.push(asked.elapsed());
        }
        latencies
    };
    let (received, other_latencies) = tokio::join!(futures_util::future::join_all(reading), other);
    let took = started.elapsed();
    let peak = sampler.stop();
    let peak_anon = anon_sampler.stop();
    let cpu_after = user_sys(pid);
    let (user, sys) = (cpu_after.0 - cpu_before.0, cpu_after.1 - cpu_before.1);
    assert!(
        received.iter().all(|&n| n == issues),
        "every reader gets every issue: {received:?}"
    );
    let other_latency = report::quantile(&other_latencies, 0.5);
    let answers_mb = (readers * issues * CONTENT) as f64 / 1e6;
    let grown_mib = peak.saturating_sub(baseline) as f64 / 1024.0;
    let grown_anon_mib = peak_anon.saturating_sub(baseline_anon) as f64 / 1024.0;
    eprintln!(
        "slowreq: {readers} readers of {issues} issues: RSS {baseline} → peak {peak} KiB, \
         anonymous {baseline_anon} → peak {peak_anon} KiB, done in {took:?}; other client \
         {other_latency:?}; graspd CPU {user:?} user, {sys:?} system"
    );
    vec![
        Row::new(
            "slowreq",
            format!(
                "{readers} slow readers of {answers_mb:.0} MB of stored events in all \
                 ({:.0} MB each): graspd peak RSS above its baseline",
                answers_mb / readers as f64
            ),
            format!(
                "{grown_mib:.0} MiB (baseline {:.0} MiB)",
                baseline as f64 / 1024.0
            ),
        )
        .target("≤ 128 MiB", grown_mib <= 128.0),
        Row::new(
            "slowreq",
            "the same, anonymous memory only (RssAnon: without the event store's \
             memory-mapped file pages, which reading 80 MB of events maps in)",
            format!(
                "{grown_anon_mib:.0} MiB (baseline {:.0} MiB)",
                baseline_anon as f64 / 1024.0
            ),
        )
        .target("≤ 32 MiB", grown_anon_mib <= 32.0),
        Row::new(
            "slowreq",
            "graspd CPU time meanwhile: user + system",
            format!("{:.1} s + {:.1} s", user.as_secs_f64(), sys.as_secs_f64()),
        ),
        Row::new(
            "slowreq",
            "until every slow reader had its EOSE (one message per 5 ms each)",
            format!("{:.1} s", took.as_secs_f64()),
        ),
        Row::new(
            "slowreq",
            format!("another client's REQ (limit 10) → EOSE meanwhile, median of {OTHER_REQS}"),
            format!(
                "{} (slowest {})",
                report::ms(other_latency),
                report::ms(report::quantile(&other_latencies, 1.0))
            ),
        ),
    ]
}

async fn huge_filters(world: &World, count: usize) -> Vec<Row> {
    let pid = world.server.pid().expect("graspd runs");
    tokio::time::sleep(SETTLE).await;
    let before = rss_kib(pid);
    // 12,500 hashtags of 64 characters: a 0.84 MB REQ.
    let mut connections = Vec::new();
    for _ in 0..FILTER_CONNECTIONS {
        connections.push(SlowReader::connect(&world.server).await);
    }
    let mut accepted = 0;
    let mut refusal = String::new();
    for i in 0..count {
        let tags: Vec<String> = (0..12_500).map(|t| format!("\"{i:04}-{t:059}\"")).collect();
        let req = format!(r##"["REQ","f{i}",{{"#t":[{}]}}]"##, tags.join(","));
        let connection = &mut connections[i % FILTER_CONNECTIONS];
        connection.send(&req).await;
        let answer = connection.expect().await;
        match answer[0].as_str() {
            Some("EOSE") => accepted += 1,
            Some("CLOSED") => refusal = answer[2].as_str().unwrap_or("").to_owned(),
            _ => panic!("unexpected answer: {answer}"),
        }
    }
    tokio::time::sleep(SETTLE).await;
    let after = rss_kib(pid);
    eprintln!("slowreq: {count} huge REQs: {accepted} accepted; RSS {before} → {after} KiB");
    drop(connections);
    vec![
        Row::new(
            "slowreq",
            format!(
                "{count} REQs of 0.84 MB filters on {FILTER_CONNECTIONS} connections: accepted"
            ),
            if refusal.is_empty() {
                format!("{accepted}")
            } else {
                format!("{accepted} (the others: CLOSED {refusal:?})")
            },
        ),
        Row::new(
            "slowreq",
            "graspd RSS growth with them open",
            format!("{:.0} MiB", after.saturating_sub(before) as f64 / 1024.0),
        )
        .target("< 64 MiB", after.saturating_sub(before) < 64 * 1024),
    ]
}

/// User and system CPU time of process `pid` (`utime`, `stime` of `/proc/<pid>/stat`,
/// 10 ms ticks).
fn user_sys(pid: u32) -> (Duration, Duration) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = |i: usize| Duration::from_millis(fields.get(i).copied().unwrap_or(0) * 10);
    (ticks(11), ticks(12))
}
