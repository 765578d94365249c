//! Stored events streamed to a client that stops reading (issue 14 item 5), in-process.
//!
//! The client sets a 4 KiB receive buffer (which turns off the kernel's autotuning) and
//! the store holds 20 MB of events: the server's send buffer (`tcp_wmem` allows 4 MiB
//! at most) cannot take them all, so while the client does not read, its REQ is still
//! sending stored events. Nothing here depends on how long anything takes.

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use nostr::prelude::{Event, EventBuilder, FinalizeEvent, Keys, Kind, Tag, Timestamp};
use serde_json::Value;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;

use crate::test_keys::keys;
use crate::testing::{Recorder, TestServer, WsClient};

/// Stored events and their content size: 20 MB in all.
const STORED: usize = 400;
const CONTENT: usize = 50_000;

fn note(keys: &Keys, tag: &str, content: String, at: u64) -> Event {
    EventBuilder::new(Kind::TextNote, content)
        .tag(Tag::hashtag(tag))
        .custom_created_at(Timestamp::from(at))
        .finalize(keys)
        .expect("sign")
}

/// A server holding `STORED` large `bulk` notes, newest first in the returned list.
async fn server_with_bulk(args: &[&str]) -> (TestServer, Vec<Event>) {
    let server = TestServer::start(args, Arc::new(Recorder::default())).await;
    let author = keys(7);
    let mut bulk: Vec<Event> = (0..STORED)
        .map(|i| {
            // Pairs share a second, so ties fall across pages too.
            let content = format!("{i:05}{}", "b".repeat(CONTENT));
            note(&author, "bulk", content, 10_000 + (i / 2) as u64)
        })
        .collect();
    for event in &bulk {
        assert!(
            server
                .server
                .store()
                .save(event)
                .await
                .expect("save")
                .is_success()
        );
    }
    bulk.sort();
    (server, bulk)
}

/// A websocket whose receive buffer is 4 KiB: the client "stops reading" by not
/// polling it.
async fn small_window_client(addr: SocketAddr) -> WsClient {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let stream = socket.connect(addr).await.expect("connect");
    let (ws, _) = tokio_tungstenite::client_async(
        format!("ws://{addr}/"),
        tokio_tungstenite::MaybeTlsStream::Plain(stream),
    )
    .await
    .expect("websocket");
    WsClient { ws }
}

/// Stores `event` and publishes it live, as the engine does on acceptance.
async fn store_live(server: &TestServer, event: &Event) {
    assert!(
        server
            .server
            .store()
            .save(event)
            .await
            .expect("save")
            .is_success()
    );
    server.server.hub().publish(event.clone());
}

/// Reads messages until `until` says stop, returning them all (the last included).
async fn read_until(client: &mut WsClient, until: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let message = client.recv().await;
        let stop = until(&message);
        seen.push(message);
        if stop {
            return seen;
        }
    }
}

fn ids_of(messages: &[Value], sub: &str) -> Vec<String> {
    messages
        .iter()
        .filter(|m| m[0] == "EVENT" && m[1] == sub)
        .map(|m| m[2]["id"].as_str().expect("id").to_owned())
        .collect()
}

fn hex_ids(events: &[Event]) -> Vec<String> {
    events.iter().map(|e| e.id.to_hex()).collect()
}

#[tokio::test]
async fn a_live_event_during_a_long_backfill_comes_after_eose_once() {
    let (server, bulk) = server_with_bulk(&["--max-connection-buffer", "256KiB"]).await;
    let mut slow = small_window_client(server.addr).await;
    slow.send(r#"["REQ","all",{"kinds":[1]}]"#).await;
    // The first stored event means the REQ's events are listed; then, while the client
    // reads nothing more, a matching event is stored and published.
    let mut messages = vec![slow.recv().await];
    let live = note(&keys(8), "live", "new".into(), 20_000);
    store_live(&server, &live).await;

    messages.extend(read_until(&mut slow, |m| m[0] == "EOSE").await);
    assert_eq!(
        ids_of(&messages, "all"),
        hex_ids(&bulk),
        "every stored event once, newest first, then EOSE"
    );
    assert_eq!(slow.recv().await, serde_json::json!(["EVENT", "all", live]));
    slow.expect_silence().await;
}

#[tokio::test]
async fn live_events_that_outgrow_the_buffer_close_their_subscription() {
    let (server, bulk) = server_with_bulk(&["--max-connection-buffer", "64KiB"]).await;
    let mut slow = small_window_client(server.addr).await;
    // `later` waits behind `all`, so its live events wait for its EOSE. The NOTICE for
    // the message after them says both REQs were read.
    slow.send(r##"["REQ","all",{"#t":["bulk"]}]"##).await;
    slow.send(r##"["REQ","later",{"#t":["live"]}]"##).await;
    slow.send("marker").await;
    let mut messages = read_until(&mut slow, |m| m[0] == "NOTICE").await;
    let live = note(&keys(8), "live", "l".repeat(80_000), 20_000);
    store_live(&server, &live).await;

    messages.extend(read_until(&mut slow, |m| m[0] == "EOSE" && m[1] == "all").await);
    assert_eq!(ids_of(&messages, "all"), hex_ids(&bulk));
    let closed: Vec<&Value> = messages.iter().filter(|m| m[0] == "CLOSED").collect();
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert_eq!(closed[0][1], "later");
    let why = closed[0][2].as_str().expect("message");
    assert!(why.starts_with("error: too slow"), "{why}");
    assert!(ids_of(&messages, "later").is_empty());
    // The connection still works, and `later` is gone.
    let again = slow
        .req("again", serde_json::json!([{"#t": ["live"]}]))
        .await;
    assert_eq!(again, vec![serde_json::to_value(&live).expect("json")]);
    slow.expect_silence().await;
}

#[tokio::test]
async fn close_stops_a_backfill_midway_and_the_connection_goes_on() {
    let (server, bulk) = server_with_bulk(&[]).await;
    let mut slow = small_window_client(server.addr).await;
    slow.send(r#"["REQ","all",{"kinds":[1]}]"#).await;
    slow.send(r#"["CLOSE","all"]"#).await;
    let messages = read_until(&mut slow, |m| m[0] == "CLOSED").await;
    assert_eq!(
        messages.last(),
        Some(&serde_json::json!(["CLOSED", "all", ""]))
    );
    let sent = ids_of(&messages, "all");
    assert!(
        sent.len() < bulk.len(),
        "the CLOSE was read while stored events were still being sent ({} of {})",
        sent.len(),
        bulk.len()
    );
    assert_eq!(sent, hex_ids(&bulk[..sent.len()]), "a prefix, in order");
    // Nothing more for `all`; a new REQ is served.
    let newest = slow.req("one", serde_json::json!([{"limit": 1}])).await;
    assert_eq!(newest, vec![serde_json::to_value(&bulk[0]).expect("json")]);
    slow.expect_silence().await;
}

#[tokio::test]
async fn a_stalled_reader_does_not_stop_other_clients() {
    let (server, bulk) = server_with_bulk(&["--max-concurrent-queries", "1"]).await;
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut slow = small_window_client(server.addr).await;
        slow.send(r#"["REQ","all",{}]"#).await;
        // Its first event: its REQ is listed and sending.
        assert_eq!(slow.recv().await[0], "EVENT");
        stalled.push(slow);
    }
    // With one store read allowed at a time and two readers stuck mid-REQ, another
    // client is still served.
    let mut other = WsClient::connect(&server).await;
    let events = other.req("x", serde_json::json!([{"limit": 10}])).await;
    assert_eq!(events.len(), 10);
    // The stalled readers get the rest once they read again.
    for slow in &mut stalled {
        let messages = read_until(slow, |m| m[0] == "EOSE").await;
        assert_eq!(ids_of(&messages, "all"), hex_ids(&bulk[1..]));
    }
    let _ = other.ws.send(Message::Close(None)).await;
    let _ = other.ws.next().await;
}
