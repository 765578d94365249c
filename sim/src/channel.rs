//! A tiny unbounded channel for results coming back from simulated requests: many
//! senders, one receiver, no runtime needed (it works under madsim's scheduler).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

struct Inner<T> {
    queue: VecDeque<T>,
    waker: Option<Waker>,
}

/// Both ends of the channel: clone it to send from a task.
pub struct Channel<T> {
    inner: Arc<Mutex<Inner<T>>>,
}

impl<T> Clone for Channel<T> {
    fn clone(&self) -> Self {
        Channel {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> Default for Channel<T> {
    fn default() -> Self {
        Channel {
            inner: Arc::new(Mutex::new(Inner {
                queue: VecDeque::new(),
                waker: None,
            })),
        }
    }
}

impl<T> Channel<T> {
    /// Queues a message and wakes the receiver.
    pub fn send(&self, value: T) {
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        g.queue.push_back(value);
        if let Some(w) = g.waker.take() {
            w.wake();
        }
    }

    /// The next message, if one is queued.
    pub fn try_recv(&self) -> Option<T> {
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        g.queue.pop_front()
    }

    /// Waits for the next message.
    pub fn recv(&self) -> Recv<'_, T> {
        Recv { chan: self }
    }
}

/// The future of [`Channel::recv`].
pub struct Recv<'a, T> {
    chan: &'a Channel<T>,
}

impl<T> Future for Recv<'_, T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut g = self
            .chan
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match g.queue.pop_front() {
            Some(v) => Poll::Ready(v),
            None => {
                g.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
