//! The NIP-01 relay served at `/` over websocket.
//!
//! Our own handler rather than a relay framework, because the engine decides every
//! verdict and purgatory events must never be stored or served: the relay checks what
//! it can alone (size, shape, id, signature, rate, subscription limits), hands verified
//! events to an [`EventSink`], serves REQ from the [`Store`] a page at a time (never a
//! whole answer in memory, module `stored`), and forwards live events published on the
//! [`Hub`].

#[cfg(test)]
mod backfill_tests;
mod bucket;
mod connection;
mod hub;
mod inbound;
mod outbox;
mod sink;
mod stored;
mod subscriptions;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::response::Response;

pub use bucket::TokenBucket;
pub use hub::{DEFAULT_HUB_CAPACITY, Hub};
pub use sink::{ConnId, EventSink, Verdict};

use crate::config::Config;
use crate::store::Store;

/// Per-connection limits of the relay.
#[derive(Debug, Clone)]
pub struct RelayLimits {
    /// Largest event JSON accepted (bytes).
    pub max_event_size: usize,
    /// Largest websocket message (bytes); bigger ones end the connection.
    pub max_message_size: usize,
    /// Open subscriptions per connection.
    pub max_subscriptions: usize,
    /// Filters per REQ.
    pub max_filters: usize,
    /// Most stored events per filter before EOSE.
    pub max_query_limit: usize,
    /// Largest REQ message (bytes): what its filters may take.
    pub max_filter_bytes: usize,
    /// Bytes of the REQs of every open subscription of one connection together.
    pub max_connection_filter_bytes: usize,
    /// Bytes of events one connection may hold unsent: the current page of stored
    /// events and the live events waiting for their subscription's EOSE.
    pub max_connection_buffer: usize,
    /// Reads of stored events running at once over every connection; others wait.
    pub max_concurrent_queries: usize,
    /// Token-bucket size for published events.
    pub event_burst: u32,
    /// Token-bucket refill, events per second.
    pub event_rate: f64,
    /// Events of one connection waiting for their verdict at once; beyond it the
    /// connection stops reading (backpressure) until verdicts come back.
    pub max_in_flight: usize,
    /// How long one outgoing message may take to send before the client is dropped.
    pub send_timeout: Duration,
    /// A connection with no open subscription and nothing in flight that sends nothing
    /// for this long is closed.
    pub idle_timeout: Duration,
}

/// The websocket read buffer of a connection. tungstenite's default (128 KiB,
/// allocated at the upgrade) was nearly all of an idle connection's memory; a NIP-01
/// message rarely needs more than one 4 KiB read, and bigger ones still arrive whole
/// (the buffer grows per read, not per message).
pub const READ_BUFFER_SIZE: usize = 4 * 1024;

/// Bytes collected before a write reaches the socket (tungstenite's default is 128 KiB).
pub const WRITE_BUFFER_SIZE: usize = 8 * 1024;

impl RelayLimits {
    /// The limits configured on the command line.
    pub fn from_config(config: &Config) -> Self {
        Self {
            max_event_size: config.max_event_size,
            max_message_size: config.max_message_size,
            max_subscriptions: config.max_subscriptions,
            max_filters: config.max_filters,
            max_query_limit: config.max_query_limit,
            max_filter_bytes: config.max_filter_bytes,
            max_connection_filter_bytes: config.max_connection_filter_bytes,
            max_connection_buffer: config.max_connection_buffer,
            max_concurrent_queries: config.max_concurrent_queries,
            event_burst: config.event_burst,
            event_rate: config.event_rate,
            max_in_flight: 256,
            send_timeout: Duration::from_secs(30),
            idle_timeout: config.idle_websocket_timeout,
        }
    }
}

/// Everything the relay's connections share; one per server.
pub struct Relay {
    store: Store,
    hub: Hub,
    sink: Arc<dyn EventSink>,
    limits: RelayLimits,
    gate: stored::QueryGate,
    next_conn: AtomicU64,
}

impl Relay {
    /// A relay serving `store`, forwarding live events from `hub`, and asking `sink`
    /// for every verdict.
    pub fn new(store: Store, hub: Hub, sink: Arc<dyn EventSink>, limits: RelayLimits) -> Self {
        let gate = stored::QueryGate::new(limits.max_concurrent_queries);
        Self {
            store,
            hub,
            sink,
            limits,
            gate,
            next_conn: AtomicU64::new(1),
        }
    }

    /// The limits in force (also published in NIP-11).
    pub fn limits(&self) -> &RelayLimits {
        &self.limits
    }

    /// Accepts a websocket upgrade and serves the connection on its own task.
    pub fn upgrade(self: &Arc<Self>, upgrade: WebSocketUpgrade) -> Response {
        let relay = Arc::clone(self);
        let conn = ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed));
        upgrade
            .max_message_size(self.limits.max_message_size)
            .max_frame_size(self.limits.max_message_size)
            .read_buffer_size(READ_BUFFER_SIZE)
            .write_buffer_size(WRITE_BUFFER_SIZE)
            .on_upgrade(move |socket| connection::serve(relay, socket, conn))
    }
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}
