//! A raw NIP-01 websocket client that shows exactly what the relay says.
//!
//! nostr-sdk's `send_event` keeps only the refusal text of an `OK` and drops the message
//! of an accepted event (where `purgatory: …` and `duplicate: …` live), so publishing
//! goes through this client: it returns every `OK` verbatim. Events, filters and ids are
//! nostr-sdk types. One reader task routes `OK`s to their publisher and `EVENT`/`EOSE`/
//! `CLOSED` to their subscription; every wait has a timeout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use nostr_sdk::prelude::{Event, EventId, Filter, JsonUtil};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// How long the relay may take to answer an EVENT or a REQ.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// A relay's `OK` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OkReply {
    /// The event id the OK names.
    pub id: String,
    /// `true` if the relay accepted the event.
    pub accepted: bool,
    /// The message, verbatim.
    pub message: String,
}

impl std::fmt::Display for OkReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OK {} {:?}", self.accepted, self.message)
    }
}

impl OkReply {
    /// Panics unless this is `OK true` with exactly the purgatory message.
    #[track_caller]
    pub fn assert_purgatory(&self, what: &str) {
        assert!(
            self.accepted && self.message == crate::PURGATORY_MESSAGE,
            "{what}: expected OK true {:?}, got {self}",
            crate::PURGATORY_MESSAGE
        );
    }

    /// Panics unless this is `OK true` with a message that is not a purgatory or
    /// duplicate message (the event was stored and is served).
    #[track_caller]
    pub fn assert_served(&self, what: &str) {
        assert!(
            self.accepted
                && !self.message.starts_with("purgatory:")
                && !self.message.starts_with("duplicate:"),
            "{what}: expected OK true (stored and served), got {self}"
        );
    }

    /// Panics unless this is `OK false` with a message starting with `prefix`
    /// (`"blocked:"`, `"invalid:"` …).
    #[track_caller]
    pub fn assert_refused(&self, prefix: &str, what: &str) {
        assert!(
            !self.accepted && self.message.starts_with(prefix),
            "{what}: expected OK false {prefix:?}…, got {self}"
        );
    }
}

/// What a subscription receives.
#[derive(Debug, Clone)]
pub enum SubMessage {
    /// A stored or live event.
    Event(Box<Event>),
    /// End of stored events.
    Eose,
    /// The relay closed the subscription, with its message.
    Closed(String),
}

#[derive(Default)]
struct Routes {
    oks: HashMap<String, oneshot::Sender<OkReply>>,
    subs: HashMap<String, mpsc::UnboundedSender<SubMessage>>,
    notices: Vec<String>,
    closed: bool,
}

/// One websocket connection to a relay.
pub struct RelayClient {
    url: String,
    out: mpsc::UnboundedSender<Message>,
    routes: Arc<Mutex<Routes>>,
    next_sub: AtomicU64,
    reader: tokio::task::JoinHandle<()>,
    writer: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for RelayClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayClient")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Drop for RelayClient {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

impl RelayClient {
    /// Connects to `url` (`ws://127.0.0.1:<port>`).
    pub async fn connect(url: &str) -> Self {
        let (socket, _) = crate::within(
            ANSWER_TIMEOUT,
            "websocket connect",
            tokio_tungstenite::connect_async(url),
        )
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
        Self::run(url, socket)
    }

    /// Connects to a `wss://127.0.0.1:<port>/…` URL over `tls` (which trusts the test's
    /// own certificate).
    pub async fn connect_tls(url: &str, tls: &crate::tls::TestTls) -> Self {
        let stream = crate::within(ANSWER_TIMEOUT, "TLS connect", tls.connect(url)).await;
        let (socket, _) = crate::within(
            ANSWER_TIMEOUT,
            "websocket handshake",
            tokio_tungstenite::client_async(url, stream),
        )
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
        Self::run(url, socket)
    }

    fn run<S>(url: &str, socket: tokio_tungstenite::WebSocketStream<S>) -> Self
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sink, mut stream) = socket.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let writer = tokio::spawn(async move {
            while let Some(message) = out_rx.recv().await {
                if sink.send(message).await.is_err() {
                    break;
                }
            }
        });
        let routes = Arc::new(Mutex::new(Routes::default()));
        let reader_routes = Arc::clone(&routes);
        let reader = tokio::spawn(async move {
            while let Some(message) = stream.next().await {
                let text = match message {
                    Ok(Message::Text(text)) => text.to_string(),
                    Ok(Message::Close(_)) | Err(_) => break,
                    Ok(_) => continue,
                };
                route(&reader_routes, &text);
            }
            let mut routes = reader_routes.lock().expect("routes lock");
            routes.closed = true;
            routes.oks.clear();
            routes.subs.clear();
        });
        Self {
            url: url.to_owned(),
            out,
            routes,
            next_sub: AtomicU64::new(1),
            reader,
            writer,
        }
    }

    /// Whether the relay closed the connection.
    pub fn is_closed(&self) -> bool {
        self.routes.lock().expect("routes lock").closed
    }

    /// NOTICE messages received so far.
    pub fn notices(&self) -> Vec<String> {
        self.routes.lock().expect("routes lock").notices.clone()
    }

    /// Publishes `event` and returns the relay's `OK`.
    pub async fn publish(&self, event: &Event) -> OkReply {
        self.publish_raw(&event.id.to_hex(), event.as_json()).await
    }

    /// Sends `["EVENT", <event_json>]` verbatim and waits for the `OK` naming `id`.
    pub async fn publish_raw(&self, id: &str, event_json: String) -> OkReply {
        self.try_publish_raw(id, event_json)
            .await
            .unwrap_or_else(|why| panic!("{why}"))
    }

    /// [`Self::publish`] that returns an error, instead of panicking, when the relay
    /// closes the connection or does not answer (for tests that stop the server
    /// while publishing).
    pub async fn try_publish(&self, event: &Event) -> Result<OkReply, String> {
        self.try_publish_raw(&event.id.to_hex(), event.as_json())
            .await
    }

    async fn try_publish_raw(&self, id: &str, event_json: String) -> Result<OkReply, String> {
        let (tx, rx) = oneshot::channel();
        {
            let mut routes = self.routes.lock().expect("routes lock");
            if routes.closed {
                return Err(format!("relay {} closed the connection", self.url));
            }
            routes.oks.insert(id.to_owned(), tx);
        }
        let text = format!("[\"EVENT\",{event_json}]");
        self.send_text(text);
        match tokio::time::timeout(ANSWER_TIMEOUT, rx).await {
            Ok(Ok(ok)) => Ok(ok),
            Ok(Err(_)) => Err(format!(
                "relay {} closed the connection before answering EVENT {id}",
                self.url
            )),
            Err(_) => Err(format!(
                "no OK for event {id} within {ANSWER_TIMEOUT:?} (notices: {:?})",
                self.notices()
            )),
        }
    }

    /// Sends a text frame verbatim.
    pub fn send_text(&self, text: String) {
        let _ = self.out.send(Message::text(text));
    }

    fn open(&self, filters: &[Filter]) -> (String, mpsc::UnboundedReceiver<SubMessage>) {
        let id = format!("t{}", self.next_sub.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = mpsc::unbounded_channel();
        {
            let mut routes = self.routes.lock().expect("routes lock");
            assert!(!routes.closed, "relay {} closed the connection", self.url);
            routes.subs.insert(id.clone(), tx);
        }
        let mut req = vec![Value::from("REQ"), Value::from(id.clone())];
        for filter in filters {
            req.push(serde_json::from_str(&filter.as_json()).expect("filter JSON"));
        }
        self.send_text(Value::Array(req).to_string());
        (id, rx)
    }

    fn close(&self, id: &str) {
        self.routes.lock().expect("routes lock").subs.remove(id);
        self.send_text(serde_json::json!(["CLOSE", id]).to_string());
    }

    /// The stored events matching `filters` (everything sent before EOSE).
    pub async fn query(&self, filters: Vec<Filter>) -> Vec<Event> {
        match self.try_query(filters).await {
            Ok(events) => events,
            Err(closed) => panic!("REQ refused with CLOSED {closed:?}"),
        }
    }

    /// Like [`query`](Self::query), but a `CLOSED` answer is returned as an error.
    pub async fn try_query(&self, filters: Vec<Filter>) -> Result<Vec<Event>, String> {
        let (id, mut rx) = self.open(&filters);
        let mut events = Vec::new();
        let result = loop {
            match tokio::time::timeout(ANSWER_TIMEOUT, rx.recv()).await {
                Ok(Some(SubMessage::Event(event))) => events.push(*event),
                Ok(Some(SubMessage::Eose)) => break Ok(events),
                Ok(Some(SubMessage::Closed(message))) => break Err(message),
                Ok(None) => panic!("relay {} closed the connection during a REQ", self.url),
                Err(_) => panic!("no EOSE within {ANSWER_TIMEOUT:?} for REQ {filters:?}"),
            }
        };
        self.close(&id);
        result
    }

    /// The ids of the stored events matching `filter`.
    pub async fn query_ids(&self, filter: Filter) -> Vec<EventId> {
        self.query(vec![filter])
            .await
            .into_iter()
            .map(|e| e.id)
            .collect()
    }

    /// Opens a subscription and waits for its EOSE; stored events are returned in
    /// [`Subscription::stored`], later ones come from [`Subscription::next`].
    pub async fn subscribe(&self, filters: Vec<Filter>) -> Subscription {
        let (id, mut rx) = self.open(&filters);
        let mut stored = Vec::new();
        loop {
            match tokio::time::timeout(ANSWER_TIMEOUT, rx.recv()).await {
                Ok(Some(SubMessage::Event(event))) => stored.push(*event),
                Ok(Some(SubMessage::Eose)) => break,
                Ok(Some(SubMessage::Closed(message))) => {
                    panic!("subscription refused with CLOSED {message:?}")
                }
                Ok(None) => panic!("relay {} closed the connection during a REQ", self.url),
                Err(_) => panic!("no EOSE within {ANSWER_TIMEOUT:?} for REQ {filters:?}"),
            }
        }
        Subscription { id, rx, stored }
    }
}

/// A live subscription (see [`RelayClient::subscribe`]).
#[derive(Debug)]
pub struct Subscription {
    /// The subscription id.
    pub id: String,
    rx: mpsc::UnboundedReceiver<SubMessage>,
    /// Events received before EOSE.
    pub stored: Vec<Event>,
}

impl Subscription {
    /// The next live event, or `None` if none arrives within `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<Event> {
        loop {
            match tokio::time::timeout(timeout, self.rx.recv()).await {
                Ok(Some(SubMessage::Event(event))) => return Some(*event),
                Ok(Some(SubMessage::Eose)) => continue,
                Ok(Some(SubMessage::Closed(message))) => {
                    panic!("subscription {} closed by the relay: {message:?}", self.id)
                }
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// Waits until every id in `ids` was delivered live (others are ignored); panics
    /// after `timeout`.
    pub async fn expect_ids(&mut self, ids: &[EventId], timeout: Duration) -> Vec<Event> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut seen = Vec::new();
        while !ids
            .iter()
            .all(|id| seen.iter().any(|e: &Event| e.id == *id))
        {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(event) => seen.push(event),
                None => panic!(
                    "live events {ids:?} not all delivered within {timeout:?}; got {:?}",
                    seen.iter().map(|e| e.id).collect::<Vec<_>>()
                ),
            }
        }
        seen
    }

    /// Every live event that arrives within `wait`.
    pub async fn drain(&mut self, wait: Duration) -> Vec<Event> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return seen;
            }
            match self.next(left).await {
                Some(event) => seen.push(event),
                None => return seen,
            }
        }
    }
}

fn route(routes: &Mutex<Routes>, text: &str) {
    let Ok(Value::Array(parts)) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let kind = parts.first().and_then(Value::as_str).unwrap_or("");
    let mut routes = routes.lock().expect("routes lock");
    match kind {
        "OK" => {
            let id = parts
                .get(1)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let ok = OkReply {
                id: id.clone(),
                accepted: parts.get(2).and_then(Value::as_bool).unwrap_or(false),
                message: parts
                    .get(3)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            };
            if let Some(tx) = routes.oks.remove(&id) {
                let _ = tx.send(ok);
            }
        }
        "EVENT" | "EOSE" | "CLOSED" => {
            let sub = parts.get(1).and_then(Value::as_str).unwrap_or("");
            let message = match kind {
                "EVENT" => match parts.get(2).map(|v| Event::from_json(v.to_string())) {
                    Some(Ok(event)) => SubMessage::Event(Box::new(event)),
                    _ => return,
                },
                "EOSE" => SubMessage::Eose,
                _ => SubMessage::Closed(
                    parts
                        .get(2)
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                ),
            };
            if let Some(tx) = routes.subs.get(sub) {
                let _ = tx.send(message);
            }
        }
        "NOTICE" => {
            let message = parts
                .get(1)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            routes.notices.push(message);
        }
        _ => {}
    }
}
