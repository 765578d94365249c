//! The verdict provider: who decides what an `EVENT` gets as its `OK`.
//!
//! The relay only checks what it can check alone (size, JSON shape, id, signature, rate);
//! whether a well-formed event is stored, waits in purgatory or is refused is the
//! engine's decision. The relay hands every verified event to an [`EventSink`] and sends
//! back exactly the verdict it returns. Storing and publishing accepted events (for
//! example through [`crate::relay::Hub::publish`]) is the sink's job, so that purgatory
//! events never reach the store or live subscribers.

use async_trait::async_trait;
use nostr::prelude::Event;

/// Identifies one websocket connection for the lifetime of the process, so that a
/// verdict provider can tell clients apart (per-client bookkeeping, logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "conn-{}", self.0)
    }
}

/// The `OK` answer for one event: `["OK", <id>, accepted, message]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// `true` when the event was accepted (stored, or held in purgatory).
    pub accepted: bool,
    /// The NIP-01 message, with its machine-readable prefix (`invalid:`, `blocked:`,
    /// `duplicate:`, `purgatory:` …) or empty.
    pub message: String,
}

impl Verdict {
    /// An acceptance with `message`.
    pub fn accept(message: impl Into<String>) -> Self {
        Self {
            accepted: true,
            message: message.into(),
        }
    }

    /// A refusal with `message` (which should carry a NIP-01 prefix).
    pub fn refuse(message: impl Into<String>) -> Self {
        Self {
            accepted: false,
            message: message.into(),
        }
    }
}

/// Decides the verdict of each verified event; implemented by the engine driver.
///
/// Called concurrently for events of one connection (up to a bound) and of many
/// connections; implementations must not assume any ordering between calls. The
/// returned future may wait for I/O the decision needs (for example checking whether a
/// state's objects are already present).
#[async_trait]
pub trait EventSink: Send + Sync + 'static {
    /// Decides what happens to `event`, which arrived from connection `origin`, and
    /// returns the `OK` to send. The event's id and signature are already verified.
    async fn submit(&self, event: Event, origin: ConnId) -> Verdict;
}
