//! graspd: a GRASP server, a nostr relay and a git smart-HTTP server in one binary.
//!
//! This crate is the I/O side; the decisions (verdicts, purgatory, push authorization,
//! sync planning) belong to the pure engine in `grasp-core`. The seams where the engine
//! plugs in are two small traits:
//! - [`relay::EventSink`]: the verdict of every verified event (the `OK`);
//! - [`git_http::PushAuthorizer`]: whether a push may land, and the post-push release.
//!
//! Together with the [`store::Store`], the [`relay::Hub`] (`publish` after storing) and
//! the synchronous helpers in [`git_ops`] (run them in `spawn_blocking`), they are what
//! the engine driver needs to execute effects.
//!
//! Layout of the data directory: `<data>/events` (LMDB event store) and
//! `<data>/repos/<npub>/<identifier>.git` (bare repositories).

mod activity;
pub mod check;
pub mod children;
pub mod client;
pub mod config;
pub mod driver;
pub mod git_http;
pub mod git_ops;
pub mod housekeeping;
pub mod http;
pub mod listener;
pub mod ops;
pub mod pages;
pub mod prs;
pub mod purgatory_cmd;
pub mod relay;
pub mod repo;
pub mod server;
pub mod slots;
pub mod store;

#[cfg(test)]
mod test_keys;
#[cfg(test)]
mod testing;
