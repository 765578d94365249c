//! The one executor of grasp-core's effects.
//!
//! The engine decides; this crate carries its decisions out, in order, against backends
//! it knows only through traits ([`backends`]): event saves hoisted ahead of the git work
//! of their batch, replies held until every earlier write is durable and turned into
//! `error:` when one failed, group commit, object checks and remote requests off the
//! executor with their results fed back as inputs, hydration, and shutdown.
//!
//! The daemon (`grasp-runtime`) plugs in LMDB, redb, git and tokio; the simulator
//! (`grasp-sim`) plugs in [`memory`]'s in-memory backends, with faults, under madsim.
//! The crate depends on grasp-core, futures and tracing only, so the simulator's madsim
//! build stays small (docs/simulation.md, "The executor").

pub mod backends;
mod executor;
mod hydrate;
pub mod memory;
mod writes;

pub use backends::{
    Backends, EventStore, Journal, Looked, Observer, Parts, Remote, Reply, Repositories, Runtime,
    SaveOutcome, WriteError,
};
pub use executor::{CHECKS_IN_FLIGHT, Done, Executor, Wake, check_answer, deletion_filters};
pub use hydrate::{Hydrated, hydrate};
pub use writes::Written;
