//! One websocket connection: the NIP-01 message loop.
//!
//! A single task per connection multiplexes three sources with `select!`: messages from
//! the client, verdicts coming back from the [`EventSink`](super::EventSink) (several
//! events can be in flight, so a slow verdict does not stall the client's other
//! messages), and live events from the [`Hub`](super::Hub). Every outgoing message is
//! sent under a timeout, so a client that stops reading is disconnected instead of
//! pinning memory; a connection with no subscription that stays silent for the idle
//! timeout is closed, so idle sockets cannot pile up to the connection cap.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::ws::{Message, WebSocket};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use nostr::prelude::{Event, EventId, Filter, RelayMessage, SubscriptionId};
use tokio::sync::broadcast::error::RecvError;

use super::bucket::TokenBucket;
use super::inbound::{Inbound, decode};
use super::subscriptions::Subscriptions;
use super::{ConnId, Relay, Verdict};

/// The connection is over (client gone, or too slow to take our messages).
struct Gone;

type PendingVerdict = BoxFuture<'static, (EventId, Verdict)>;

/// Serves one upgraded websocket until the client leaves.
pub(crate) async fn serve(relay: Arc<Relay>, socket: WebSocket, conn: ConnId) {
    let bucket = TokenBucket::new(
        relay.limits.event_burst,
        relay.limits.event_rate,
        Instant::now(),
    );
    let live = relay.hub.subscribe();
    let mut connection = Connection {
        relay,
        socket,
        conn,
        subs: Subscriptions::default(),
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
    bucket: TokenBucket,
    pending: FuturesUnordered<PendingVerdict>,
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
            let may_read = self.pending.len() < self.relay.limits.max_in_flight;
            let is_idle = self.subs.is_empty() && self.pending.is_empty();
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
            }
        }
    }

    async fn on_text(&mut self, text: &str) -> Result<(), Gone> {
        match decode(text, self.relay.limits.max_event_size) {
            Inbound::Event(event) => self.on_event(*event).await,
            Inbound::RefusedEvent { id, message } => {
                self.send(RelayMessage::ok(id, false, message)).await
            }
            Inbound::Req { id, filters } => self.on_req(id, filters).await,
            Inbound::Close(id) => {
                self.subs.close(&id);
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

    async fn on_req(&mut self, id: SubscriptionId, filters: Vec<Filter>) -> Result<(), Gone> {
        let limits = &self.relay.limits;
        let opened = self.subs.open(
            id.clone(),
            filters.clone(),
            limits.max_subscriptions,
            limits.max_filters,
        );
        if let Err(refusal) = opened {
            return self.send(RelayMessage::closed(id, refusal.message())).await;
        }
        // Registered before querying: a live event stored meanwhile waits in the hub
        // receiver and is delivered after EOSE, so nothing falls between the two.
        let mut stored: BTreeSet<Event> = BTreeSet::new();
        for mut filter in filters {
            let limit = filter
                .limit
                .map_or(limits.max_query_limit, |l| l.min(limits.max_query_limit));
            if limit == 0 {
                continue;
            }
            filter.limit = Some(limit);
            match self.relay.store.query(filter).await {
                Ok(events) => stored.extend(events),
                Err(e) => {
                    tracing::warn!(conn = %self.conn, "query failed: {e}");
                    self.subs.close(&id);
                    return self
                        .send(RelayMessage::closed(
                            id,
                            "error: could not read the event store",
                        ))
                        .await;
                }
            }
        }
        // `Event` orders newest first, which is the order clients expect.
        for event in &stored {
            self.send(RelayMessage::Event {
                subscription_id: Cow::Borrowed(&id),
                event: Cow::Borrowed(event),
            })
            .await?;
        }
        self.send(RelayMessage::eose(id)).await
    }

    async fn on_live(&mut self, event: &Event) -> Result<(), Gone> {
        let texts: Vec<String> = self
            .subs
            .matching(event)
            .map(|id| {
                RelayMessage::Event {
                    subscription_id: Cow::Borrowed(id),
                    event: Cow::Borrowed(event),
                }
                .as_json()
            })
            .collect();
        for text in texts {
            self.send_text(text).await?;
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
