//! One websocket connection: the NIP-01 message loop.
//!
//! A single task per connection multiplexes, with `select!`: messages from the client,
//! verdicts coming back from the [`EventSink`](super::EventSink) (several events can be
//! in flight, so a slow verdict does not stall the client's other messages), live
//! events from the [`Hub`](super::Hub), and the stored events of its REQs, which the
//! [`Outbox`] pages out of the store one page at a time (at most one store read in
//! flight per connection). Every outgoing message is sent under a timeout, so a client
//! that stops reading is disconnected instead of pinning memory; until then it only
//! holds one page. A connection with no subscription that stays silent for the idle
//! timeout is closed, so idle sockets cannot pile up to the connection cap.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::ws::{Message, WebSocket};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use nostr::prelude::{Event, EventId, Filter, RelayMessage, SubscriptionId};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::oneshot;

use super::bucket::TokenBucket;
use super::inbound::{Inbound, decode};
use super::outbox::{Outbox, Read, Step};
use super::stored::{Page, Plan, event_text, read_page};
use super::subscriptions::{SubscriptionLimits, Subscriptions};
use super::{ConnId, Relay, Verdict};
use crate::store::StoreError;

/// The connection is over (client gone, or too slow to take our messages).
struct Gone;

type PendingVerdict = BoxFuture<'static, (EventId, Verdict)>;

/// What a finished store read brought.
enum Done {
    Planned(Plan),
    Paged(Page),
}

/// The store read in flight: the backfill it is for, and where its result arrives.
type Reading = (u64, oneshot::Receiver<Result<Done, StoreError>>);

/// Serves one upgraded websocket until the client leaves.
pub(crate) async fn serve(relay: Arc<Relay>, socket: WebSocket, conn: ConnId) {
    let bucket = TokenBucket::new(
        relay.limits.event_burst,
        relay.limits.event_rate,
        Instant::now(),
    );
    let live = relay.hub.subscribe();
    let outbox = Outbox::new(relay.limits.max_connection_buffer);
    let mut connection = Connection {
        relay,
        socket,
        conn,
        subs: Subscriptions::default(),
        outbox,
        reading: None,
        bucket,
        pending: FuturesUnordered::new(),
    };
    tracing::debug!(%conn, "relay connection opened");
    let _ = connection.run(live).await;
    tracing::debug!(%conn, "relay connection closed");
}

struct Connection {
    relay: Arc<Relay>,
    socket: WebSocket,
    conn: ConnId,
    subs: Subscriptions,
    outbox: Outbox,
    reading: Option<Reading>,
    bucket: TokenBucket,
    pending: FuturesUnordered<PendingVerdict>,
}

/// Waits for the store read in flight, if there is one (never resolves otherwise).
async fn read_done(
    reading: &mut Option<Reading>,
) -> (
    u64,
    Result<Result<Done, StoreError>, oneshot::error::RecvError>,
) {
    match reading {
        Some((serial, rx)) => (*serial, rx.await),
        None => std::future::pending().await,
    }
}

impl Connection {
    async fn run(
        &mut self,
        mut live: tokio::sync::broadcast::Receiver<Arc<Event>>,
    ) -> Result<(), Gone> {
        let idle_timeout = self.relay.limits.idle_timeout;
        let idle = tokio::time::sleep(idle_timeout);
        tokio::pin!(idle);
        loop {
            self.advance().await?;
            let may_read = self.pending.len() < self.relay.limits.max_in_flight;
            let is_idle = self.subs.is_empty() && self.pending.is_empty();
            let has_ready = self.outbox.has_ready();
            // Branches are polled in random order, so a long backfill, the client's
            // messages, verdicts and live events all take turns. Sending a stored event
            // waits for the socket: a client that reads slowly holds back its own next
            // page, not the relay's memory.
            tokio::select! {
                () = &mut idle, if is_idle => {
                    tracing::debug!(conn = %self.conn, "idle without subscriptions; closing");
                    let _ = self.socket.send(Message::Close(Some(axum::extract::ws::CloseFrame {
                        code: 1000,
                        reason: "idle: no subscriptions and nothing sent".into(),
                    }))).await;
                    return Ok(());
                }
                message = self.socket.recv(), if may_read => match message {
                    Some(Ok(Message::Text(text))) => {
                        idle.as_mut().reset(tokio::time::Instant::now() + idle_timeout);
                        self.on_text(text.as_str()).await?;
                    }
                    Some(Ok(Message::Binary(_))) => {
                        self.notice("error: binary messages are not supported").await?;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | None => return Ok(()),
                    Some(Err(e)) => {
                        tracing::debug!(conn = %self.conn, "websocket error: {e}");
                        return Err(Gone);
                    }
                },
                Some((id, verdict)) = self.pending.next(), if !self.pending.is_empty() => {
                    self.send(RelayMessage::ok(id, verdict.accepted, verdict.message)).await?;
                }
                received = live.recv() => match received {
                    Ok(event) => self.on_live(&event).await?,
                    Err(RecvError::Lagged(missed)) => {
                        self.notice(format!(
                            "error: {missed} live events were dropped because this connection reads too slowly"
                        )).await?;
                    }
                    Err(RecvError::Closed) => return Ok(()),
                },
                (serial, done) = read_done(&mut self.reading) => {
                    self.on_read(serial, done).await?;
                }
                () = std::future::ready(()), if has_ready => {
                    if let Some(text) = self.outbox.pop_ready() {
                        self.send_text(text).await?;
                    }
                }
            }
        }
    }

    async fn on_text(&mut self, text: &str) -> Result<(), Gone> {
        match decode(text, self.relay.limits.max_event_size) {
            Inbound::Event(event) => self.on_event(*event).await,
            Inbound::RefusedEvent { id, message } => {
                self.send(RelayMessage::ok(id, false, message)).await
            }
            Inbound::Req { id, filters, bytes } => self.on_req(id, filters, bytes).await,
            Inbound::Close(id) => {
                self.close_sub(&id);
                self.send(RelayMessage::closed(id, "")).await
            }
            Inbound::Count(id) => {
                self.send(RelayMessage::closed(
                    id,
                    "unsupported: COUNT is not supported",
                ))
                .await
            }
            Inbound::Auth(id) => {
                self.send(RelayMessage::ok(
                    id,
                    false,
                    "unsupported: AUTH is not required here",
                ))
                .await
            }
            Inbound::Negentropy(id) => {
                self.send(RelayMessage::NegErr {
                    subscription_id: Cow::Owned(id),
                    message: Cow::Borrowed("unsupported: negentropy is not supported"),
                })
                .await
            }
            Inbound::Notice(message) => self.notice(message).await,
        }
    }

    async fn on_event(&mut self, event: Event) -> Result<(), Gone> {
        let limits = &self.relay.limits;
        if !self.bucket.try_take(Instant::now()) {
            let message = format!(
                "rate-limited: slow down: at most {} events at once and {} per second",
                limits.event_burst, limits.event_rate
            );
            return self.send(RelayMessage::ok(event.id, false, message)).await;
        }
        // Verification costs ~50 µs per event (schnorr); doing it here rather than on
        // a blocking thread keeps ordering simple and is far below network costs.
        if !event.verify_id() {
            let message = "invalid: event id does not match its content";
            return self.send(RelayMessage::ok(event.id, false, message)).await;
        }
        if !event.verify_signature() {
            let message = "invalid: bad signature";
            return self.send(RelayMessage::ok(event.id, false, message)).await;
        }
        let sink = Arc::clone(&self.relay.sink);
        let conn = self.conn;
        self.pending.push(Box::pin(async move {
            let id = event.id;
            (id, sink.submit(event, conn).await)
        }));
        Ok(())
    }

    async fn on_req(
        &mut self,
        id: SubscriptionId,
        filters: Vec<Filter>,
        bytes: usize,
    ) -> Result<(), Gone> {
        let limits = &self.relay.limits;
        let sub_limits = SubscriptionLimits {
            max_subscriptions: limits.max_subscriptions,
            max_filters: limits.max_filters,
            max_req_bytes: limits.max_filter_bytes,
            max_connection_bytes: limits.max_connection_filter_bytes,
        };
        match self.subs.open(id.clone(), filters, bytes, &sub_limits) {
            // Registered before its stored events are listed: a live event stored
            // meanwhile is held by the outbox and sent after EOSE (unless it is among
            // the stored ones), so nothing falls between the two.
            Ok(filters) => {
                self.outbox.open(id, filters);
                Ok(())
            }
            Err(refusal) => {
                // A refused REQ for an open id ends that subscription too: the client
                // is told CLOSED for the id.
                self.close_sub(&id);
                self.send(RelayMessage::closed(id, refusal.message())).await
            }
        }
    }

    fn close_sub(&mut self, id: &SubscriptionId) {
        self.subs.close(id);
        self.outbox.close(id);
    }

    /// Moves the backfills on: sends the EOSE (and the held live events) of a finished
    /// one, and starts the next store read when none is in flight.
    async fn advance(&mut self) -> Result<(), Gone> {
        loop {
            match self.outbox.step(self.reading.is_some()) {
                Step::Wait => return Ok(()),
                Step::Read(read) => {
                    self.reading = Some(self.start_read(read));
                    return Ok(());
                }
                Step::Finished { sub, live } => {
                    self.send(RelayMessage::eose(sub.clone())).await?;
                    for json in live {
                        self.send_text(event_text(&sub, &json)).await?;
                    }
                }
            }
        }
    }

    fn start_read(&self, read: Read) -> Reading {
        let store = self.relay.store.clone();
        let max_limit = self.relay.limits.max_query_limit;
        match read {
            Read::Plan { serial, filters } => (
                serial,
                self.relay.gate.run(async move {
                    Plan::list(&store, &filters, max_limit)
                        .await
                        .map(Done::Planned)
                }),
            ),
            Read::Page {
                serial,
                sub,
                ids,
                budget,
            } => (
                serial,
                self.relay.gate.run(async move {
                    read_page(&store, &sub, ids, budget).await.map(Done::Paged)
                }),
            ),
        }
    }

    async fn on_read(
        &mut self,
        serial: u64,
        done: Result<Result<Done, StoreError>, oneshot::error::RecvError>,
    ) -> Result<(), Gone> {
        self.reading = None;
        let failure = match done {
            Ok(Ok(Done::Planned(plan))) => {
                self.outbox.planned(serial, plan);
                return Ok(());
            }
            Ok(Ok(Done::Paged(page))) => {
                self.outbox.paged(serial, page);
                return Ok(());
            }
            Ok(Err(e)) => e.to_string(),
            // The gate drops a read only once the connection is gone: this one panicked.
            Err(_) => "the store read stopped".to_owned(),
        };
        let Some(sub) = self.outbox.head_sub(serial).cloned() else {
            return Ok(());
        };
        tracing::warn!(conn = %self.conn, "query failed: {failure}");
        self.close_sub(&sub);
        self.send(RelayMessage::closed(
            sub,
            "error: could not read the event store",
        ))
        .await
    }

    async fn on_live(&mut self, event: &Event) -> Result<(), Gone> {
        let matching: Vec<SubscriptionId> = self.subs.matching(event).cloned().collect();
        if matching.is_empty() {
            return Ok(());
        }
        let json: Arc<str> = Arc::from(event.as_json());
        for id in matching {
            if !self.outbox.is_backfilling(&id) {
                self.send_text(event_text(&id, &json)).await?;
                continue;
            }
            if self
                .outbox
                .hold(&id, event.created_at, event.id, &json)
                .is_err()
            {
                self.close_sub(&id);
                let message = format!(
                    "error: too slow: live events waiting for this subscription's stored \
                     events passed {} bytes; REQ again",
                    self.relay.limits.max_connection_buffer
                );
                self.send(RelayMessage::closed(id, message)).await?;
            }
        }
        Ok(())
    }

    async fn notice(&mut self, message: impl Into<String>) -> Result<(), Gone> {
        self.send(RelayMessage::notice(message)).await
    }

    async fn send(&mut self, message: RelayMessage<'_>) -> Result<(), Gone> {
        self.send_text(message.as_json()).await
    }

    async fn send_text(&mut self, text: String) -> Result<(), Gone> {
        let sending = self.socket.send(Message::text(text));
        match tokio::time::timeout(self.relay.limits.send_timeout, sending).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::debug!(conn = %self.conn, "send failed: {e}");
                Err(Gone)
            }
            Err(_) => {
                tracing::info!(conn = %self.conn, "client too slow to read; disconnecting");
                Err(Gone)
            }
        }
    }
}
