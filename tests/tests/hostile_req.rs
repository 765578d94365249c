//! Issue 14 item 5, hostile REQs: filters too large for a REQ or for a connection are
//! refused with `CLOSED "error: …"`, and readers that stop reading in the middle of a
//! REQ do not make graspd hold their whole answers. Every wait is bounded; no assertion
//! is about how long something took.

use grasp_tests::events;
use grasp_tests::fixture::World;
use grasp_tests::nostr_sdk::prelude::{EventId, Filter, Keys, Kind, Timestamp};
use grasp_tests::server::Options;
use grasp_tests::slow_reader::{SlowReader, rss_anon_kib};

/// Stored issues and the size of each one's content: 20 MB in all.
const ISSUES: usize = 400;
const CONTENT: usize = 50_000;
/// Readers that stop reading mid-REQ.
const READERS: usize = 8;

/// Eight readers REQ 20 MB of stored issues each and stop reading after the first
/// event. graspd collecting each answer whole before sending it (what it did) holds
/// 160 MB at that moment; streaming it a page at a time holds a page per reader. Then
/// another client is served, and every reader, reading again, gets its whole answer in
/// order: paused, not dropped.
#[tokio::test]
async fn item5_slow_readers_hold_a_page_each_not_their_whole_answer() {
    let world = World::start_with(Options::default().flag("--event-burst", "1000")).await;
    let hosted = world.hosted(&Keys::generate(), "slowreq", &[]).await;
    let repo = hosted.coordinate();
    let author = Keys::generate();
    let newest = events::at(-60).as_secs();
    let mut issues: Vec<EventId> = Vec::new();
    for i in 0..ISSUES {
        let content = format!("{i:05}{}", "x".repeat(CONTENT));
        let subject = format!("large issue {i}");
        let tags = vec![
            events::tag(&["a", &repo]),
            events::tag(&["subject", &subject]),
        ];
        // One second apart, newest first in the order they are made.
        let created_at = Timestamp::from(newest - i as u64);
        let issue = events::sign(&author, 1621, &content, tags, created_at);
        world.publish(&issue).await.assert_served("a large issue");
        issues.push(issue.id);
    }
    let expected: Vec<String> = issues.iter().map(EventId::to_hex).collect();

    let pid = world.server.pid().expect("graspd runs");
    let before = rss_anon_kib(pid);
    let mut readers = Vec::new();
    for _ in 0..READERS {
        let mut reader = SlowReader::connect(&world.server).await;
        reader.send(r#"["REQ","all",{"kinds":[1621]}]"#).await;
        let first = reader.expect().await;
        assert_eq!(first[0], "EVENT", "{first}");
        assert_eq!(first[2]["id"].as_str(), Some(expected[0].as_str()));
        readers.push(reader);
    }
    let during = rss_anon_kib(pid);

    let served = world
        .relay
        .query(vec![Filter::new().kind(Kind::from(1621)).limit(10)])
        .await;
    let served: Vec<String> = served.iter().map(|e| e.id.to_hex()).collect();
    assert_eq!(served, expected[..10], "another client is served meanwhile");

    let answers_kib = (READERS * ISSUES * CONTENT / 1024) as u64;
    let grown_kib = during.saturating_sub(before);
    eprintln!("anonymous memory {before} → {during} KiB with {READERS} readers stopped mid-REQ");
    assert!(
        grown_kib < answers_kib / 4,
        "graspd's anonymous memory grew by {grown_kib} KiB with {READERS} readers stopped \
         mid-REQ, against {answers_kib} KiB of answers: it holds them instead of pausing"
    );
    for mut reader in readers {
        let rest = reader.until_eose("all").await;
        let differ = rest.iter().zip(&expected[1..]).position(|(a, b)| a != b);
        assert!(
            rest.len() == ISSUES - 1 && differ.is_none(),
            "after the pause, the rest of the answer in order: got {} of {} events, first \
             difference at {differ:?}",
            rest.len(),
            ISSUES - 1
        );
    }
}

/// A filter set over `--max-filter-bytes` (128 KiB by default) is refused, and so is a
/// subscription that would take a connection's open filters over
/// `--max-connection-filter-bytes` (512 KiB); the connection stays usable and a CLOSE
/// makes room.
#[tokio::test]
async fn item5_oversized_filters_are_closed_with_error() {
    let world = World::start().await;
    let client = world.client().await;
    // 0.8 MB of filter, as in the issue (under the 1 MiB message limit).
    let huge = Filter::new().hashtags((0..12_000).map(|i| format!("{i:064}")));
    let refused = client.try_query(vec![huge]).await.expect_err("refused");
    assert!(
        refused.starts_with("error: filters too large (") && refused.ends_with("limit 131072)"),
        "{refused}"
    );

    // About 116 KB each: four fit in 512 KiB, a fifth does not.
    let large = |n: usize| Filter::new().hashtags((0..1_700).map(move |i| format!("{n}-{i:064}")));
    let mut open = Vec::new();
    for n in 0..4 {
        open.push(client.subscribe(vec![large(n)]).await);
    }
    let refused = client.try_query(vec![large(4)]).await.expect_err("fifth");
    assert!(
        refused.starts_with("error: this connection's subscriptions would hold ")
            && refused.ends_with("(limit 524288); CLOSE some first"),
        "{refused}"
    );
    client.send_text(serde_json::json!(["CLOSE", open[0].id]).to_string());
    let events = client
        .try_query(vec![large(4)])
        .await
        .expect("room again after a CLOSE");
    assert!(events.is_empty());
    // Small REQs are unaffected throughout.
    assert!(
        client
            .try_query(vec![Filter::new().kind(Kind::from(1)).limit(1)])
            .await
            .is_ok()
    );
}
