//! # grasp-core — the pure GRASP engine
//!
//! Every decision a GRASP server makes — which events to accept, which wait in
//! purgatory, who may push what, when and from whom to fetch missing git data under
//! which limits, and what to release — as a deterministic state machine with no I/O.
//! A runtime (the `graspd` daemon, or the simulator) executes the [`Effect`]s it emits
//! and feeds every result back as an [`Input`].
//!
//! ## The run loop
//!
//! 1. Hydrate: give every stored event ([`Input::Stored`]) and journal record
//!    ([`Input::Restore`]), then [`Input::Hydrated`].
//! 2. For each thing that happens — an event, a push, a check or fetch result — call
//!    [`Engine::handle_input`] with the current [`Time`]. Before git writes a push, ask
//!    [`Engine::handle_push_request`].
//! 3. Drain [`Engine::poll_effect`] and execute the effects **in order** (a `Persist` is
//!    durable before the `Reply` that follows it). Results come back as inputs.
//! 4. Arm one timer at [`Engine::poll_timeout`]; when it fires, call
//!    [`Engine::handle_timeout`]. Early or repeated calls are harmless.
//!
//! ```no_run
//! use grasp_core::nostr::prelude::{Event, Timestamp};
//! use grasp_core::{Config, Effect, Engine, Input, Origin, ReplyToken, Time, VerifiedEvent};
//!
//! /// One turn of a driver: an event from a client, its effects, the next deadline.
//! fn turn(engine: &mut Engine, now: Time, received: Event) -> Option<Time> {
//!     let event = VerifiedEvent::verify(received).expect("valid id and signature");
//!     engine.handle_input(now, Input::Event {
//!         token: ReplyToken(1),
//!         event,
//!         origin: Origin::Client,
//!         received_at: Timestamp::from_secs(now.as_millis() / 1000),
//!         peer: None,
//!     });
//!     while let Some(effect) = engine.poll_effect() {
//!         match effect {
//!             Effect::Reply { accepted, message, .. } => println!("OK {accepted} {message}"),
//!             other => println!("execute, in order: {other:?}"),
//!         }
//!     }
//!     engine.poll_timeout() // sleep until then, and call handle_timeout
//! }
//!
//! let mut engine = Engine::new(Config::new("http://127.0.0.1:7334".parse().unwrap()));
//! engine.handle_input(Time::from_millis(0), Input::Hydrated);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod checks;
mod clone_url;
mod config;
mod deadlines;
mod deletion;
mod effect;
mod effect_queue;
mod engine;
mod event;
mod expired;
mod expiry;
mod final_check;
mod id_key;
mod ident;
mod input;
mod journal;
mod keyed;
mod maintainer_set;
mod membership;
mod metrics;
mod needs;
mod oid;
mod outcome;
mod packed;
mod peer;
mod peer_filters;
mod peers;
mod placeholders;
mod prs;
mod prs_relax;
mod prune;
mod pull_request;
mod purgatory;
mod push;
mod realign;
mod related;
mod relay_sync;
mod relay_url;
mod release;
mod repo;
mod repo_index;
mod small_map;
mod superseded;
mod sync;
mod sync_queue;
mod throttle;
mod time;
mod timers;
mod url_path;
mod user_events;
mod verdict;
mod version;
mod waiting;

pub use checks::MAX_CHECK_RETRIES;
pub use clone_url::{CloneHost, CloneUrl};
pub use config::{Config, Curation, Limits, RelaySync, authority_of, relay_url_of};
pub use effect::{CheckId, Effect, ReplyToken, RequestId, ServePath};
pub use engine::{Engine, PURGATORY_MESSAGE};
pub use event::{Origin, VerifiedEvent, is_branch_or_tag};
pub use input::{Failure, FailureKind, Input, PushRequest, PushVerdict, RefUpdate};
pub use journal::{JournalKey, JournalRecord};
pub use maintainer_set::MaintainerModel;
pub use metrics::{
    Counters, DomainMetrics, Metrics, RELEASE_WAIT_BUCKETS_MS, SyncView, WaitingView,
};
pub use oid::{InvalidOid, Oid};
pub use peer::{CatchUpMethod, JobId, PeerFailureKind, PeerId, PeerSub};
pub use peers::{PeerCounters, PeerView};
pub use relay_url::RelayUrl;
pub use repo::{Namespace, RepoId, is_safe_identifier, npub};
pub use sync::url_refusal;
pub use time::Time;
pub use url_path::{SegmentError, decode_identifier, encode_identifier};
pub use version::Version;

/// The nostr crate the engine's types come from, so drivers use the same version.
pub use nostr;
