//! The simulation tests (madsim only): run with `scripts/sim`.
#![cfg(madsim)]

mod common;
mod determinism;
mod planted;
mod regressions;
mod scenarios;
mod sweep;
