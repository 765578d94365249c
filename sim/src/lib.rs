//! # grasp-sim — the deterministic multi-server simulation of the grasp-core engine
//!
//! A madsim harness that runs the engine in a simulated world of remote git servers and
//! clients, under simulated time, with faults, checking named invariants after every
//! step; any failure replays bit-identically from its seed. See `docs/simulation.md`.
//!
//! ## One run
//!
//! 1. [`run_seed`] creates a madsim runtime seeded with the seed and generates a
//!    [`Plan`] from madsim's deterministic RNG: the [`World`] of remote servers and the
//!    timed [`Action`]s of a [`Shape`].
//! 2. The driver feeds each action to the engine, executes every effect in order (local
//!    ones against the in-memory [`Store`], remote ones as madsim tasks sleeping the
//!    server's latency), feeds results back, and sleeps until the next action, result or
//!    engine deadline — simulated time only.
//! 3. The [`Checker`] checks every invariant in [`check::ALL`] after each step and at the
//!    end, well past every expiry.
//!
//! The simulation itself only exists with `RUSTFLAGS="--cfg madsim"` (`scripts/sim`);
//! without it the crate builds its pure parts (world, workload, checker) only.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod channel;
pub mod check;
pub mod events;
pub mod oracle;
pub mod planted;
pub mod remote;
pub mod report;
pub mod shape;
pub mod store;
pub mod trace;
pub mod workload;
pub mod world;

#[cfg(madsim)]
mod backends;
#[cfg(madsim)]
mod driver;
#[cfg(madsim)]
mod run;

pub use check::{Checker, Violation};
#[cfg(madsim)]
pub use driver::Driver;
pub use planted::Planted;
pub use report::{RunStats, SweepReport};
#[cfg(madsim)]
pub use run::{Options, RunResult, replay_command, run_plan, run_seed, sweep};
pub use shape::{Knobs, Shape};
pub use store::Store;
pub use workload::{Action, Plan, generate};
pub use world::World;
