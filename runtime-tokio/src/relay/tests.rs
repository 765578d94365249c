//! The relay driven over a real websocket, in-process, with the test-only
//! [`StoreAll`](crate::testing::StoreAll) sink.

use std::sync::Arc;
use std::time::Instant;

use futures_util::SinkExt;
use nostr::prelude::{Event, EventBuilder, FinalizeEvent, Keys, Kind, Tag, Timestamp};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::test_keys::keys;
use crate::testing::{Recorder, TestServer, WsClient as Client};

fn note(keys: &Keys, content: &str, at: u64) -> Event {
    EventBuilder::new(Kind::TextNote, content)
        .tag(Tag::hashtag("grasp"))
        .custom_created_at(Timestamp::from(at))
        .finalize(keys)
        .expect("sign")
}

async fn server(args: &[&str]) -> TestServer {
    TestServer::start(args, Arc::new(Recorder::default())).await
}

#[tokio::test]
async fn publish_req_eose_and_live() {
    let server = server(&[]).await;
    let author = keys(1);
    let mut alice = Client::connect(&server).await;
    let mut bob = Client::connect(&server).await;

    let first = note(&author, "first", 1_000);
    alice.publish(&first).await;
    assert_eq!(alice.recv().await, json!(["OK", first.id, true, ""]));

    // Stored events come back, then EOSE; then live ones.
    let stored = bob
        .req("b", json!([{"authors": [author.public_key()]}]))
        .await;
    assert_eq!(stored, vec![serde_json::to_value(&first).expect("json")]);
    let second = note(&author, "second", 2_000);
    alice.publish(&second).await;
    assert_eq!(alice.recv().await[2], true);
    assert_eq!(bob.recv().await, json!(["EVENT", "b", second]));

    // A non-matching live event is not delivered; after CLOSE nothing is.
    let other = note(&keys(2), "other", 3_000);
    alice.publish(&other).await;
    assert_eq!(alice.recv().await[2], true);
    bob.expect_silence().await;
    bob.send(r#"["CLOSE","b"]"#).await;
    assert_eq!(bob.recv().await, json!(["CLOSED", "b", ""]));
    alice.publish(&note(&author, "third", 4_000)).await;
    assert_eq!(alice.recv().await[2], true);
    bob.expect_silence().await;
}

#[tokio::test]
async fn req_honours_limits_and_several_filters_newest_first() {
    let server = server(&[]).await;
    let mut client = Client::connect(&server).await;
    let (a, b) = (keys(1), keys(2));
    for i in 0..5u64 {
        for author in [&a, &b] {
            let event = note(author, &format!("n{i}"), 1_000 + i);
            client.publish(&event).await;
            assert_eq!(client.recv().await[2], true);
        }
    }
    let events = client
        .req(
            "s",
            json!([{"authors": [a.public_key()], "limit": 2}, {"authors": [b.public_key()], "limit": 1}]),
        )
        .await;
    let created: Vec<u64> = events
        .iter()
        .map(|e| e["created_at"].as_u64().expect("ts"))
        .collect();
    assert_eq!(
        created,
        vec![1_004, 1_004, 1_003],
        "two of a, one of b, newest first"
    );
    let none = client.req("z", json!([{"limit": 0}])).await;
    assert!(none.is_empty());
    let tagged = client
        .req("t", json!([{"#t": ["nope", "grasp"], "limit": 3}]))
        .await;
    assert_eq!(tagged.len(), 3);
}

#[tokio::test]
async fn refusals_keep_the_connection_usable() {
    let server = server(&["--max-event-size", "2KiB"]).await;
    let mut client = Client::connect(&server).await;
    let author = keys(3);

    client.send("this is not json").await;
    assert_eq!(client.recv().await[0], "NOTICE");
    client.send(r#"["NOPE", 1]"#).await;
    assert_eq!(client.recv().await[0], "NOTICE");

    // Id that does not match the content.
    let good = note(&author, "good", 1_000);
    let mut tampered = serde_json::to_value(&good).expect("json");
    tampered["content"] = json!("tampered");
    client.send(json!(["EVENT", tampered]).to_string()).await;
    let reply = client.recv().await;
    assert_eq!(
        (reply[1].clone(), reply[2].clone()),
        (json!(good.id), json!(false))
    );
    assert!(
        reply[3].as_str().expect("msg").starts_with("invalid:"),
        "{reply}"
    );

    // Right id, someone else's signature.
    let other = note(&author, "other", 1_000);
    let mut forged = serde_json::to_value(&good).expect("json");
    forged["sig"] = json!(other.sig);
    client.send(json!(["EVENT", forged]).to_string()).await;
    let reply = client.recv().await;
    assert_eq!(reply[2], false);
    assert_eq!(reply[3], "invalid: bad signature");

    // Oversized.
    let big = note(&author, &"x".repeat(3000), 1_000);
    client.publish(&big).await;
    let reply = client.recv().await;
    assert_eq!(reply[1], json!(big.id));
    assert_eq!(reply[2], false);
    let message = reply[3].as_str().expect("msg");
    assert!(
        message.starts_with("invalid: event too large ("),
        "{message}"
    );
    assert!(message.ends_with("limit 2048)"), "{message}");

    // Malformed event with a readable id.
    let id = good.id.to_hex();
    client
        .send(format!(r#"["EVENT",{{"id":"{id}","kind":"x"}}]"#))
        .await;
    let reply = client.recv().await;
    assert_eq!(reply[2], false);
    assert!(
        reply[3]
            .as_str()
            .expect("msg")
            .starts_with("invalid: malformed event")
    );

    // Still usable.
    client.publish(&good).await;
    assert_eq!(client.recv().await, json!(["OK", good.id, true, ""]));
    assert!(serde_json::to_string(&good).expect("json").len() < 2048);
}

#[tokio::test]
async fn subscription_and_filter_limits() {
    let server = server(&["--max-subscriptions", "2", "--max-filters", "2"]).await;
    let mut client = Client::connect(&server).await;
    client.req("a", json!([{}])).await;
    client.req("b", json!([{}])).await;
    client.send(r#"["REQ","c",{}]"#).await;
    let reply = client.recv().await;
    assert_eq!((&reply[0], &reply[1]), (&json!("CLOSED"), &json!("c")));
    assert!(
        reply[2].as_str().expect("msg").starts_with("rate-limited:"),
        "{reply}"
    );
    // Replacing an open subscription is not a new one.
    client.req("b", json!([{"kinds": [1]}])).await;
    client.send(r#"["REQ","b",{},{},{}]"#).await;
    let reply = client.recv().await;
    assert_eq!(reply[0], "CLOSED");
    assert!(
        reply[2]
            .as_str()
            .expect("msg")
            .starts_with("error: too many filters"),
        "{reply}"
    );
    client.send(r#"["CLOSE","a"]"#).await;
    assert_eq!(client.recv().await[0], "CLOSED");
    client.req("c", json!([{}])).await;
}

#[tokio::test]
async fn event_rate_limit_answers_rate_limited() {
    let server = server(&["--event-burst", "3", "--event-rate", "0.001"]).await;
    let mut client = Client::connect(&server).await;
    let author = keys(4);
    for i in 0..3 {
        client.publish(&note(&author, &format!("{i}"), 1_000)).await;
        assert_eq!(client.recv().await[2], true);
    }
    let fourth = note(&author, "4", 1_000);
    client.publish(&fourth).await;
    let reply = client.recv().await;
    assert_eq!(reply[1], json!(fourth.id));
    assert_eq!(reply[2], false);
    assert!(
        reply[3].as_str().expect("msg").starts_with("rate-limited:"),
        "{reply}"
    );
}

#[tokio::test]
async fn default_limits_let_a_burst_of_hundreds_through() {
    let server = server(&[]).await;
    let mut client = Client::connect(&server).await;
    let author = keys(5);
    let events: Vec<Event> = (0..400u64)
        .map(|i| note(&author, &format!("{i}"), 1_000 + i))
        .collect();
    let started = Instant::now();
    for event in &events {
        client.publish(event).await;
    }
    let mut accepted = 0;
    for _ in &events {
        let reply = client.recv().await;
        assert_eq!(reply[0], "OK");
        assert_eq!(reply[2], true, "{reply}");
        accepted += 1;
    }
    assert_eq!(accepted, 400);
    eprintln!(
        "400 events verified, stored and acknowledged in {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn unsupported_messages_get_protocol_answers() {
    let server = server(&[]).await;
    let mut client = Client::connect(&server).await;
    client.send(r#"["COUNT","c",{}]"#).await;
    let reply = client.recv().await;
    assert_eq!((&reply[0], &reply[1]), (&json!("CLOSED"), &json!("c")));
    client.send(r#"["NEG-OPEN","n",{},"00"]"#).await;
    assert_eq!(client.recv().await[0], "NEG-ERR");
    client
        .ws
        .send(Message::binary(vec![1, 2, 3]))
        .await
        .expect("send");
    assert_eq!(client.recv().await[0], "NOTICE");
}
