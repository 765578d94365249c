//! Publishing a batch of events over several websocket connections at once, each keeping
//! a window of events in flight, the way a busy client publishes: the throughput and
//! the EVENT→OK latency of every event.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use grasp_tests::nostr_sdk::prelude::Event;
use grasp_tests::relay::{OkReply, RelayClient};

/// Events in flight per connection: enough to keep the server busy, few enough that
/// the latency measured is service time rather than a queue the client built.
pub const WINDOW: usize = 16;

/// What a batch of publishes measured.
#[derive(Debug, Default)]
pub struct Outcome {
    /// From the first EVENT sent to the last OK received.
    pub wall: Duration,
    /// EVENT→OK of each event.
    pub latencies: Vec<Duration>,
    /// Events answered `OK true`.
    pub accepted: usize,
    /// The first refusal messages (at most five), to say why when not all were accepted.
    pub refusals: Vec<String>,
}

impl Outcome {
    /// Accepted events per second.
    pub fn rate(&self) -> f64 {
        self.accepted as f64 / self.wall.as_secs_f64()
    }
}

/// Publishes `events` round-robin over `clients`, `WINDOW` in flight on each.
pub async fn publish(clients: &[RelayClient], events: &[Event]) -> Outcome {
    let started = Instant::now();
    let per_client = clients.iter().enumerate().map(|(i, client)| {
        let mine: Vec<&Event> = events.iter().skip(i).step_by(clients.len()).collect();
        publish_on(client, mine)
    });
    let parts = futures_util::future::join_all(per_client).await;
    let mut outcome = Outcome {
        wall: started.elapsed(),
        ..Outcome::default()
    };
    for part in parts {
        outcome.latencies.extend(part.latencies);
        outcome.accepted += part.accepted;
        for r in part.refusals {
            if outcome.refusals.len() < 5 {
                outcome.refusals.push(r);
            }
        }
    }
    outcome
}

async fn publish_on(client: &RelayClient, events: Vec<&Event>) -> Outcome {
    let mut outcome = Outcome::default();
    let mut pending = events.into_iter();
    let mut in_flight = FuturesUnordered::new();
    for event in pending.by_ref().take(WINDOW) {
        in_flight.push(timed_publish(client, event));
    }
    while let Some((ok, latency)) = in_flight.next().await {
        outcome.latencies.push(latency);
        if ok.accepted {
            outcome.accepted += 1;
        } else if outcome.refusals.len() < 5 {
            outcome.refusals.push(ok.message);
        }
        if let Some(event) = pending.next() {
            in_flight.push(timed_publish(client, event));
        }
    }
    outcome
}

/// Publishes `event`, returning the OK and how long it took to come.
async fn timed_publish(client: &RelayClient, event: &Event) -> (OkReply, Duration) {
    let sent = Instant::now();
    let ok = client.publish(event).await;
    (ok, sent.elapsed())
}
