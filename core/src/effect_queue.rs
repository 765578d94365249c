//! The queue of effects waiting for the driver, in fixed-size chunks.
//!
//! One timeout can queue hundreds of thousands of effects (every entry expiring at once,
//! two journal effects each; hydration, one per restored record). In one `VecDeque` each
//! doubling copied everything queued so far — at 100k expiries a fifth of the timeout's
//! cache misses — and the buffer then stayed that large, its ring cursor moving through
//! cold memory on every later effect. In chunks nothing is ever copied, and a drained queue
//! keeps one small chunk. Hand-rolled because no well-kept crate offers a chunked FIFO
//! that hands out owned values; it is a few lines over `VecDeque`.

use crate::effect::Effect;
use std::collections::VecDeque;

/// Effects per chunk: 256 × 144 B, about 36 KiB.
const CHUNK: usize = 256;

/// A FIFO of effects.
#[derive(Debug, Default)]
pub(crate) struct EffectQueue {
    chunks: VecDeque<VecDeque<Effect>>,
    /// An emptied chunk kept for the next one needed (no allocation per 256 effects in a
    /// steady flow).
    spare: Option<VecDeque<Effect>>,
}

impl EffectQueue {
    /// Appends `effect`.
    pub(crate) fn push(&mut self, effect: Effect) {
        match self.chunks.back_mut() {
            Some(chunk) if chunk.len() < CHUNK => chunk.push_back(effect),
            _ => {
                let mut chunk = self
                    .spare
                    .take()
                    .unwrap_or_else(|| VecDeque::with_capacity(CHUNK));
                chunk.push_back(effect);
                self.chunks.push_back(chunk);
            }
        }
    }

    /// Takes the oldest effect.
    pub(crate) fn pop(&mut self) -> Option<Effect> {
        let front = self.chunks.front_mut()?;
        let effect = front.pop_front();
        if front.is_empty() {
            // Emptied: keep one spare chunk, rewound to its start.
            let mut chunk = self.chunks.pop_front().expect("front exists");
            chunk.clear();
            if self.spare.is_none() {
                self.spare = Some(chunk);
            }
        }
        effect
    }

    /// Effects queued.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.chunks.iter().map(VecDeque::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::effect::RequestId;

    fn effect(n: u64) -> Effect {
        Effect::ListRefs {
            request: RequestId(n),
            url: String::new(),
            domain: String::new(),
        }
    }

    fn number(e: Effect) -> u64 {
        match e {
            Effect::ListRefs { request, .. } => request.0,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn first_in_first_out_across_chunks() {
        let mut q = EffectQueue::default();
        let n = 3 * CHUNK as u64 + 7;
        for i in 0..n {
            q.push(effect(i));
        }
        assert_eq!(q.len(), n as usize);
        for i in 0..n / 2 {
            assert_eq!(q.pop().map(number), Some(i));
        }
        for i in n..n + 300 {
            q.push(effect(i));
        }
        for i in n / 2..n + 300 {
            assert_eq!(q.pop().map(number), Some(i));
        }
        assert_eq!((q.pop(), q.len(), q.chunks.len()), (None, 0, 0));
        assert!(q.spare.as_ref().is_some_and(|c| c.capacity() >= CHUNK));
    }
}
