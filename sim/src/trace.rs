//! The effect trace of a run, hashed: two runs of one seed must give the same hash.
//! Lines are `(elapsed ms, input|effect)` with signatures left out.

use grasp_core::{Effect, Time};

/// A running FNV-1a hash over trace lines (and, optionally, the lines themselves).
#[derive(Clone, Debug)]
pub struct Trace {
    hash: u64,
    lines: u64,
    keep: Option<Vec<String>>,
}

impl Trace {
    /// A trace that keeps its lines when `keep` (for printing a failing seed's tail).
    pub fn new(keep: bool) -> Self {
        Trace {
            hash: 0xcbf2_9ce4_8422_2325,
            lines: 0,
            keep: keep.then(Vec::new),
        }
    }

    /// Adds one line.
    pub fn line(&mut self, now: Time, what: &str) {
        let text = format!("{:>10} {what}", now.as_millis());
        for b in text.bytes().chain(std::iter::once(b'\n')) {
            self.hash ^= u64::from(b);
            self.hash = self.hash.wrapping_mul(0x0100_0000_01b3);
        }
        self.lines += 1;
        if let Some(k) = &mut self.keep {
            k.push(text);
        }
    }

    /// Adds an effect, summarized without signatures.
    pub fn effect(&mut self, now: Time, e: &Effect) {
        let text = match e {
            Effect::StoreEvent { event, path } => format!("StoreEvent {} {path:?}", event.id),
            Effect::Persist { record } => format!("Persist {}", record.key()),
            other => format!("{other:?}"),
        };
        self.line(now, &text);
    }

    /// The hash so far.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// Lines added.
    pub fn len(&self) -> u64 {
        self.lines
    }

    /// Whether no line was added.
    pub fn is_empty(&self) -> bool {
        self.lines == 0
    }

    /// The kept lines, if kept.
    pub fn lines(&self) -> &[String] {
        self.keep.as_deref().unwrap_or(&[])
    }
}
