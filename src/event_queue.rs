//! The queue between a socket's dispatcher and the application's `events()` readers, blocking
//! and async alike. Bounded: when the application does not read, the oldest events are dropped
//! (and a warning logged) instead of memory growing without end.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::Event;

#[derive(Default)]
struct State {
    events: VecDeque<Event>,
    closed: bool,
    dropped: u64,
}

/// The driver's end of a socket's inbound queue: pushing never blocks the driver (a slow
/// handler cannot delay a pong), the queue is bounded, and dropping the sink ends the stream.
pub(crate) struct EventSink(pub(crate) std::sync::Arc<EventQueue>);

impl EventSink {
    pub(crate) fn send(&self, event: Event) {
        self.0.push(event);
    }
}

impl Drop for EventSink {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// A bounded multi-reader queue of events.
pub(crate) struct EventQueue {
    state: Mutex<State>,
    capacity: usize,
    ready: Condvar,
    notify: Notify,
}

impl EventQueue {
    pub(crate) fn new(capacity: usize) -> EventQueue {
        EventQueue {
            state: Mutex::new(State::default()),
            capacity: capacity.max(1),
            ready: Condvar::new(),
            notify: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A reader that panicked holding the lock left a consistent queue behind.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn push(&self, event: Event) {
        {
            let mut state = self.lock();
            if state.events.len() >= self.capacity {
                state.events.pop_front();
                state.dropped += 1;
                if state.dropped.is_power_of_two() {
                    tracing::warn!(
                        dropped = state.dropped,
                        "events() is not read: dropping the oldest events"
                    );
                }
            }
            state.events.push_back(event);
        }
        self.ready.notify_one();
        self.notify.notify_one();
    }

    /// No more events will come; readers end after draining.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
        self.notify.notify_waiters();
        // A reader between its check and its wait still gets a permit.
        self.notify.notify_one();
    }

    pub(crate) fn pop_blocking(&self) -> Option<Event> {
        let mut state = self.lock();
        loop {
            if let Some(event) = state.events.pop_front() {
                return Some(event);
            }
            if state.closed {
                return None;
            }
            state = self.ready.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    pub(crate) fn pop_timeout(&self, timeout: std::time::Duration) -> Option<Event> {
        let deadline = crate::driver::deadline_after(std::time::Instant::now(), timeout);
        let mut state = self.lock();
        loop {
            if let Some(event) = state.events.pop_front() {
                return Some(event);
            }
            let now = std::time::Instant::now();
            if state.closed || now >= deadline {
                return None;
            }
            state = self
                .ready
                .wait_timeout(state, deadline - now)
                .map(|(s, _)| s)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    pub(crate) async fn pop(&self) -> Option<Event> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.lock();
                if let Some(event) = state.events.pop_front() {
                    if !state.events.is_empty() {
                        // Pass the wake-up on to another reader.
                        self.notify.notify_one();
                    }
                    return Some(event);
                }
                if state.closed {
                    return None;
                }
            }
            notified.await;
        }
    }
}
