//! Hostile REQs (issue 14 item 5): graspd's resident memory while slow readers take
//! large answers, and while clients send huge filters.
//!
//! - Slow readers: 1,600 stored issues of 50 KB (80 MB; 400 quick), then 10 websockets
//!   (4 quick) with 4 KiB receive windows that REQ all of them and read one message
//!   every 5 ms. Measured: graspd's peak resident memory over the run (sampled every
//!   5 ms) against its baseline, how long until every reader had its EOSE, and another
//!   client's REQ → EOSE meanwhile.
//! - Huge filters: 64 REQs (16 quick) of 0.84 MB filters on 4 connections, each left
//!   open: how many graspd accepted, and its resident memory growth.
//!
//! graspd runs with its defaults (the event rate limit lifted for the set-up).

use std::time::{Duration, Instant};

use grasp_tests::events;
use grasp_tests::fixture::World;
use grasp_tests::nostr_sdk::prelude::{Event, Filter, Keys, Timestamp};
use grasp_tests::slow_reader::SlowReader;

use crate::report::{Row, RssSampler, rss_kib};
use crate::{Scale, graspd_options, load, report};

const CONTENT: usize = 50_000;
const READ_PAUSE: Duration = Duration::from_millis(5);
const FILTER_CONNECTIONS: usize = 4;
const SETTLE: Duration = Duration::from_secs(2);

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
    let sampler = RssSampler::start(pid);
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
        // Once the readers are under way: another client's small REQ.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let client = world.client().await;
        let asked = Instant::now();
        let filter = Filter::new().limit(10);
        let events = client.query(vec![filter]).await;
        (asked.elapsed(), events.len())
    };
    let (received, (other_latency, other_events)) =
        tokio::join!(futures_util::future::join_all(reading), other);
    let took = started.elapsed();
    let peak = sampler.stop();
    assert!(
        received.iter().all(|&n| n == issues),
        "every reader gets every issue: {received:?}"
    );
    assert_eq!(other_events, 10);
    let answers_mib = (readers * issues * CONTENT) as f64 / f64::from(1 << 20);
    let grown_mib = peak.saturating_sub(baseline) as f64 / 1024.0;
    eprintln!(
        "slowreq: {readers} readers of {issues} issues: RSS {baseline} → peak {peak} KiB, \
         done in {took:?}; other client {other_latency:?}"
    );
    vec![
        Row::new(
            "slowreq",
            format!(
                "{readers} slow readers of {answers_mib:.0} MB of stored events in all \
                 ({:.0} MB each): graspd peak RSS above its baseline",
                answers_mib / readers as f64
            ),
            format!(
                "{grown_mib:.0} MiB (baseline {:.0} MiB)",
                baseline as f64 / 1024.0
            ),
        )
        .target("≤ 10 % of the answers", grown_mib <= answers_mib / 10.0),
        Row::new(
            "slowreq",
            "until every slow reader had its EOSE (one message per 5 ms each)",
            format!("{:.1} s", took.as_secs_f64()),
        ),
        Row::new(
            "slowreq",
            "another client's REQ (limit 10) → EOSE meanwhile",
            report::ms(other_latency),
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
