//! The live-event hub: delivers newly stored events to open subscriptions.
//!
//! Whoever stores an event (the engine driver, on release or on acceptance) calls
//! [`Hub::publish`] afterwards; every connection receives it and forwards it to those of
//! its subscriptions whose filters match. A broadcast channel keeps publishing
//! non-blocking: a connection that falls too far behind loses the oldest live events
//! (and is told with a NOTICE) instead of slowing every other client down.

use std::sync::Arc;

use nostr::prelude::Event;
use tokio::sync::broadcast;

/// Live events buffered per connection before a slow reader starts losing them.
pub const DEFAULT_HUB_CAPACITY: usize = 4096;

/// Fan-out of stored events to live subscriptions; cheap to clone.
#[derive(Debug, Clone)]
pub struct Hub {
    sender: broadcast::Sender<Arc<Event>>,
}

impl Hub {
    /// A hub whose per-connection backlog is `capacity` events.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self { sender }
    }

    /// Delivers `event` to every connected client whose subscriptions match it.
    /// Call it only after the event is in the store, so that a client that reacts by
    /// querying finds it. Returns the number of connections it was handed to.
    pub fn publish(&self, event: Event) -> usize {
        // An error only means nobody is connected.
        self.sender.send(Arc::new(event)).unwrap_or(0)
    }

    /// A receiver for one connection.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
    }
}

impl Default for Hub {
    fn default() -> Self {
        Self::new(DEFAULT_HUB_CAPACITY)
    }
}
