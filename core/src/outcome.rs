//! The last outcome of a request to one URL, kept for the operator view. Stored as data
//! and rendered only when an operator asks: formatting on every request result cost more
//! than the rest of handling a failed request.

use crate::input::FailureKind;
use std::fmt;

/// What happened the last time a URL was tried.
#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    /// The URL is never fetched from, and why.
    Refused(String),
    /// A ref advertisement with this many refs.
    Advertised(usize),
    /// A fetch that brought this many objects and bytes.
    Fetched(usize, u64),
    /// A failed request.
    Failed(FailureKind, String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Refused(why) => write!(f, "refused: {why}"),
            Outcome::Advertised(n) => write!(f, "advertised {n} refs"),
            Outcome::Fetched(n, bytes) => write!(f, "fetched {n} objects ({bytes} bytes)"),
            Outcome::Failed(kind, detail) => write!(f, "failed ({kind:?}): {detail}"),
        }
    }
}
