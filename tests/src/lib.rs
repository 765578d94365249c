//! Black-box test harness for `graspd`.
//!
//! Every test starts its own `graspd` process on `127.0.0.1` (the kernel picks the
//! port), with its own temporary data directory, and talks to it the way users do:
//! the real `git` binary over smart HTTP, a nostr client over the websocket, plain HTTP
//! requests for NIP-11, CORS and pages. Nothing here reaches beyond loopback, and every
//! wait has a timeout, so a test always stops by itself.
//!
//! - [`binary`]: finds (and if needed builds) the `graspd` binary.
//! - [`server`]: one running `graspd`: start, wait until ready, kill, kill -9 + restart,
//!   its log printed when a test fails.
//! - [`relay`]: a raw NIP-01 websocket client that returns the exact `OK` messages, runs
//!   REQs to EOSE and follows live subscriptions.
//! - [`events`]: NIP-34 event builders (announcement, state, PR, issue, deletion…).
//! - [`git`]: the `git` binary in isolated temp dirs: commits, push, clone, fetch.
//! - [`hostile`]: raw sockets from chosen addresses, stalled pushes, git in `/proc`.
//! - [`http`]: a tiny HTTP/1.1 client (exact headers, no normalisation of odd paths).
//! - [`nginx`]: a real nginx in front of graspd, running the deployment guide's config.
//! - [`tls`]: a self-signed certificate for 127.0.0.1 and a client trusting it.
//! - [`ngit`]: ngit 3.x and its git remote helper, pointed at one graspd only.
//! - [`slow_reader`]: a websocket that reads only when asked, with a 4 KiB window.
//! - [`fixture`]: scenario building blocks on top of all of these.

pub mod binary;
pub mod events;
pub mod fixture;
pub mod git;
pub mod hostile;
pub mod http;
pub mod nginx;
pub mod ngit;
pub mod relay;
pub mod server;
pub mod slow_reader;
pub mod tls;

pub use nostr_sdk;

use std::future::Future;
use std::time::Duration;

/// The exact OK message of an event that waits in purgatory.
pub const PURGATORY_MESSAGE: &str = "purgatory: won't be served until git data arrives";

/// The exact OK message of an event sent again while it waits in purgatory.
pub const DUPLICATE_IN_PURGATORY: &str = "duplicate: in purgatory";

/// Polls `check` every 50 ms until it returns `Some`, or panics with `what` after
/// `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `future` with a time limit, panicking with `what` when it is exceeded.
pub async fn within<T>(timeout: Duration, what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(timeout, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {timeout:?}: {what}"),
    }
}
