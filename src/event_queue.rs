//! The queue between a socket's driver (or its handler dispatcher) and whoever takes its events:
//! `events()` readers, blocking and async alike, or the dispatcher that runs `on` handlers.
//!
//! Nothing is dropped by default. The queue holds `capacity` events; once it is full the
//! writer stops taking more from upstream (the driver stops reading the transport, see
//! `driver.rs`) and waits in [`EventQueue::room`] until a reader has caught up, so TCP flow
//! control pushes back on the server, as MQTT and AMQP clients do. Memory stays bounded by the
//! queue plus what one transport read delivered: a push never fails and never drops, the
//! writer just does not read again while [`EventQueue::has_room`] is false.
//!
//! Wake-ups are per read, not per event: the driver queues everything one transport read
//! delivered under one lock ([`EventQueue::push_all_deferred`]) and wakes the readers once at
//! the end of the read ([`EventQueue::wake_readers`]); a blocking reader that takes an event while more wait and
//! another reader sleeps passes the wake-up on. A reader that keeps up with a burst therefore
//! takes events in runs instead of sleeping and waking for each (the futex wake-ups that cost
//! more than decoding the event did), and the condvar is only signalled when a reader sleeps on
//! it. The same holds the other way: a writer waiting for room is woken once the queue is down
//! to half its bounds, not as soon as one event fits, so a reader slower than the server still
//! gets events in runs.
//!
//! Two policies drop instead, both visible to the application ([`EventQueue::dropped`] and an
//! [`Event::Lagged`] before the next event a reader takes):
//! - [`EventOverflow::DropOldest`], asked for by the application (telemetry streams where the
//!   newest value is all that matters);
//! - the `events()` queue of a socket that has `on` handlers while no `events()` reader was
//!   ever created: there `events()` only carries what no handler takes, and an application
//!   that never reads it must not stall its connection (the JS client ignores events without a
//!   listener). The first `events()` call switches that queue to back-pressure.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::Event;

/// What a socket does when the application reads its events more slowly than they arrive.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventOverflow {
    /// Stop reading from the server until the application has caught up (the default):
    /// nothing is lost, and TCP flow control slows the server down. An application that stops
    /// reading for longer than the server's pingInterval + pingTimeout gets disconnected by the
    /// server (a `Disconnected` event, then reconnection as usual).
    #[default]
    Backpressure,
    /// Keep reading; when the queue is full, drop its oldest event. Every drop is counted
    /// (`dropped_events()`), and the next event a reader takes is preceded by
    /// [`Event::Lagged`] with the number dropped since the last report.
    DropOldest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    Backpressure,
    DropOldest,
    /// Drop-oldest until the first reader attaches, back-pressure from then on.
    DropUntilRead,
}

#[derive(Default)]
struct State {
    /// Each event with its weight in bytes (on the wire).
    events: VecDeque<(Event, usize)>,
    /// The weights of `events` together.
    bytes: usize,
    closed: bool,
    /// Every event dropped, for `dropped_events()`.
    dropped: u64,
    /// Dropped since a reader last heard of it (the next pop returns `Event::Lagged`).
    unreported: u64,
    /// The writer waits for room: the next pop that makes room wakes it.
    writer_waiting: bool,
    /// Blocking readers inside `Condvar::wait`: a push wakes the condvar only when one is (a
    /// futex wake is a system call even with nobody waiting).
    blocked_readers: usize,
    /// Async readers waiting for a notification: only then does a reader that took an event
    /// with more left pass the wake-up on (each pass is two locks of the `Notify`).
    async_waiting: usize,
    /// Events were pushed without waking readers ([`EventQueue::push_deferred`]).
    unwoken: bool,
    policy: Option<Policy>,
}

impl State {
    fn policy(&self) -> Policy {
        self.policy.unwrap_or(Policy::Backpressure)
    }

    fn is_full(&self, capacity: usize, max_bytes: usize) -> bool {
        self.events.len() >= capacity || self.bytes >= max_bytes
    }
}

/// The writer's end of a socket's inbound queue: pushing never blocks (a slow handler cannot
/// delay a pong), and dropping the sink ends the stream.
pub(crate) struct EventSink(pub(crate) std::sync::Arc<EventQueue>);

impl EventSink {
    /// Queues every event in `events` with its weight in bytes (a message's size on the
    /// wire) under one lock, without waking readers yet ([`wake`](Self::wake) does, once per
    /// read); returns whether the queue still has room.
    pub(crate) fn send_all_deferred(&self, events: &mut Vec<(Event, usize)>) -> bool {
        self.0.push_all_deferred(events)
    }

    /// Wakes readers for what [`send_all_deferred`](Self::send_all_deferred) queued.
    pub(crate) fn wake(&self) {
        self.0.wake_readers();
    }

    /// Whether the writer may take more events from upstream now.
    pub(crate) fn has_room(&self) -> bool {
        self.0.has_room()
    }
}

impl Drop for EventSink {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// A bounded multi-reader queue of events with back-pressure.
pub(crate) struct EventQueue {
    state: Mutex<State>,
    capacity: usize,
    /// The bound in bytes next to the bound in events (a thousand 100 MB events are too many).
    max_bytes: usize,
    /// Readers waiting (blocking ones).
    ready: Condvar,
    /// Readers waiting (async ones).
    notify: Notify,
    /// The writer waiting for room.
    room: Notify,
}

impl EventQueue {
    /// A queue that applies `overflow` from the start.
    pub(crate) fn new(capacity: usize, max_bytes: usize, overflow: EventOverflow) -> EventQueue {
        let policy = match overflow {
            EventOverflow::Backpressure => Policy::Backpressure,
            EventOverflow::DropOldest => Policy::DropOldest,
        };
        Self::with_policy(capacity, max_bytes, policy)
    }

    /// The `events()` queue of a socket with handlers: see the module docs.
    pub(crate) fn optional_reader(
        capacity: usize,
        max_bytes: usize,
        overflow: EventOverflow,
    ) -> EventQueue {
        let policy = match overflow {
            EventOverflow::Backpressure => Policy::DropUntilRead,
            EventOverflow::DropOldest => Policy::DropOldest,
        };
        Self::with_policy(capacity, max_bytes, policy)
    }

    fn with_policy(capacity: usize, max_bytes: usize, policy: Policy) -> EventQueue {
        EventQueue {
            state: Mutex::new(State {
                policy: Some(policy),
                ..State::default()
            }),
            capacity: capacity.max(1),
            max_bytes: max_bytes.max(1),
            ready: Condvar::new(),
            notify: Notify::new(),
            room: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A reader that panicked holding the lock left a consistent queue behind.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A reader exists from now on: a queue that dropped while nobody read stops dropping.
    pub(crate) fn attach_reader(&self) {
        let mut state = self.lock();
        if state.policy() == Policy::DropUntilRead {
            state.policy = Some(Policy::Backpressure);
        }
    }

    /// Whether the writer may take more from upstream: false while a back-pressured queue is
    /// full.
    pub(crate) fn has_room(&self) -> bool {
        let state = self.lock();
        state.policy() != Policy::Backpressure || !state.is_full(self.capacity, self.max_bytes)
    }

    /// Waits until [`has_room`](Self::has_room) (or the queue closed). Only one writer waits.
    pub(crate) async fn room(&self) {
        loop {
            {
                let mut state = self.lock();
                if state.closed
                    || state.policy() != Policy::Backpressure
                    || !state.is_full(self.capacity, self.max_bytes)
                {
                    state.writer_waiting = false;
                    return;
                }
                state.writer_waiting = true;
            }
            // A pop between the unlock and this wait stores a permit: no wake-up is lost.
            self.room.notified().await;
        }
    }

    /// Frees the queue's memory while it is empty (it keeps the size of its longest run).
    pub(crate) fn release_if_empty(&self) {
        let mut state = self.lock();
        if state.events.is_empty() {
            state.events = VecDeque::new();
        }
    }

    /// Events dropped by a dropping policy so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Appends `event`, weighing `bytes`, and wakes a reader. Never blocks and, under
    /// back-pressure, never drops: the writer checks [`has_room`](Self::has_room) before
    /// reading more.
    pub(crate) fn push(&self, event: Event, bytes: usize) {
        self.push_deferred(event, bytes);
        self.wake_readers();
    }

    /// [`push`](Self::push) without the wake-up: a writer that delivers a whole transport
    /// read wakes its readers once at the end ([`wake_readers`](Self::wake_readers)), not once
    /// per event, so a reader that keeps up is not put to sleep and woken for every event.
    /// Returns whether the queue still has room (see [`has_room`](Self::has_room)).
    pub(crate) fn push_deferred(&self, event: Event, bytes: usize) -> bool {
        let mut state = self.lock();
        self.append(&mut state, event, bytes);
        state.policy() != Policy::Backpressure || !state.is_full(self.capacity, self.max_bytes)
    }

    /// [`push_deferred`](Self::push_deferred) of every event in `events` (which ends empty),
    /// under one lock.
    pub(crate) fn push_all_deferred(&self, events: &mut Vec<(Event, usize)>) -> bool {
        let mut state = self.lock();
        for (event, bytes) in events.drain(..) {
            self.append(&mut state, event, bytes);
        }
        state.policy() != Policy::Backpressure || !state.is_full(self.capacity, self.max_bytes)
    }

    fn append(&self, state: &mut State, event: Event, bytes: usize) {
        if state.policy() != Policy::Backpressure {
            while !state.events.is_empty() && state.is_full(self.capacity, self.max_bytes) {
                if let Some((_, weight)) = state.events.pop_front() {
                    state.bytes = state.bytes.saturating_sub(weight);
                }
                state.dropped += 1;
                state.unreported += 1;
            }
        }
        state.bytes = state.bytes.saturating_add(bytes);
        state.events.push_back((event, bytes));
        state.unwoken = true;
    }

    /// Wakes a reader if events came since the last wake-up.
    pub(crate) fn wake_readers(&self) {
        let blocked = {
            let mut state = self.lock();
            if !std::mem::take(&mut state.unwoken) {
                return;
            }
            state.blocked_readers > 0
        };
        if blocked {
            self.ready.notify_one();
        }
        self.notify.notify_one();
    }

    /// No more events will come; readers end after draining.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
        self.notify.notify_waiters();
        // A reader between its check and its wait still gets a permit.
        self.notify.notify_one();
        self.room.notify_one();
    }

    /// Takes the next event (or the report of a drop) off a locked queue, with its weight.
    fn take(&self, state: &mut State) -> Option<(Event, usize)> {
        if state.unreported > 0 && !state.events.is_empty() {
            let dropped = std::mem::take(&mut state.unreported);
            return Some((Event::Lagged { dropped }, 0));
        }
        let (event, bytes) = state.events.pop_front()?;
        state.bytes = state.bytes.saturating_sub(bytes);
        // A waiting writer is woken at half the bounds, not as soon as one event fits: woken
        // for every event taken, it would read (and wake the reader) once per event too.
        if state.writer_waiting
            && state.events.len() <= self.capacity / 2
            && state.bytes <= self.max_bytes / 2
        {
            state.writer_waiting = false;
            self.room.notify_one();
        }
        Some((event, bytes))
    }

    /// A blocking reader took `event`: another one waiting gets the next event.
    fn pass_on(&self, state: &State) {
        if state.blocked_readers > 0 && !state.events.is_empty() {
            self.ready.notify_one();
        }
    }

    pub(crate) fn pop_blocking(&self) -> Option<Event> {
        let mut state = self.lock();
        loop {
            if let Some((event, _)) = self.take(&mut state) {
                self.pass_on(&state);
                return Some(event);
            }
            if state.closed {
                return None;
            }
            state.blocked_readers += 1;
            state = self.ready.wait(state).unwrap_or_else(|e| e.into_inner());
            state.blocked_readers -= 1;
        }
    }

    pub(crate) fn pop_timeout(&self, timeout: std::time::Duration) -> Option<Event> {
        let deadline = crate::proto::time::deadline_after(std::time::Instant::now(), timeout);
        let mut state = self.lock();
        loop {
            if let Some((event, _)) = self.take(&mut state) {
                self.pass_on(&state);
                return Some(event);
            }
            let now = std::time::Instant::now();
            if state.closed || now >= deadline {
                return None;
            }
            state.blocked_readers += 1;
            state = self
                .ready
                .wait_timeout(state, deadline - now)
                .map(|(s, _)| s)
                .unwrap_or_else(|e| e.into_inner().0);
            state.blocked_readers -= 1;
        }
    }

    /// Moves up to `max` waiting events with their weights into `into`, under one lock,
    /// without waiting.
    pub(crate) fn try_pop_many(&self, max: usize, into: &mut VecDeque<(Event, usize)>) {
        let mut state = self.lock();
        for _ in 0..max {
            match self.take(&mut state) {
                Some(event) => into.push_back(event),
                None => break,
            }
        }
    }

    pub(crate) async fn pop(&self) -> Option<Event> {
        self.pop_sized().await.map(|(event, _)| event)
    }

    /// [`pop`](Self::pop), with the event's weight (for the dispatcher to pass on).
    pub(crate) async fn pop_sized(&self) -> Option<(Event, usize)> {
        // An event already waiting needs no registration for a wake-up: one lock, not five.
        if let Some(done) = self.take_async(&mut self.lock()) {
            return done;
        }
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Registered before the check: a push between the check and the wait is not missed.
            notified.as_mut().enable();
            {
                let mut state = self.lock();
                if let Some(done) = self.take_async(&mut state) {
                    return done;
                }
                state.async_waiting += 1;
            }
            // Counted out however the wait ends (the future may be dropped while it waits).
            let _waiting = AsyncWaiting(self);
            notified.await;
        }
    }

    /// What an async reader gets without waiting: an event (another waiting reader is woken
    /// if more are left), or the end of a closed queue; `None` when it must wait.
    fn take_async(&self, state: &mut State) -> Option<Option<(Event, usize)>> {
        if let Some(event) = self.take(state) {
            if state.async_waiting > 0 && !state.events.is_empty() {
                self.notify.notify_one();
            }
            return Some(Some(event));
        }
        state.closed.then_some(None)
    }
}

/// An async reader in its wait, counted in `State::async_waiting` until dropped.
struct AsyncWaiting<'a>(&'a EventQueue);

impl Drop for AsyncWaiting<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.async_waiting = state.async_waiting.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn message(n: usize) -> Event {
        Event::Message {
            namespace: "/".into(),
            event: n.to_string(),
            args: crate::Args::default(),
            ack: None,
        }
    }

    fn name(event: Option<Event>) -> String {
        match event {
            Some(Event::Message { event, .. }) => event,
            Some(Event::Lagged { dropped }) => format!("lagged {dropped}"),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn backpressure_keeps_everything_and_reports_when_full() {
        let queue = EventQueue::new(2, usize::MAX, EventOverflow::Backpressure);
        for n in 0..5 {
            queue.push(message(n), 0);
        }
        assert!(!queue.has_room());
        assert_eq!(queue.dropped(), 0);
        for n in 0..5 {
            assert_eq!(name(queue.pop_blocking()), n.to_string());
        }
        assert!(queue.has_room());
    }

    #[test]
    fn drop_oldest_counts_and_reports_before_the_next_event() {
        let queue = EventQueue::new(2, usize::MAX, EventOverflow::DropOldest);
        for n in 0..5 {
            queue.push(message(n), 0);
        }
        assert!(queue.has_room());
        assert_eq!(queue.dropped(), 3);
        assert_eq!(name(queue.pop_blocking()), "lagged 3");
        assert_eq!(name(queue.pop_blocking()), "3");
        assert_eq!(name(queue.pop_blocking()), "4");
    }

    #[test]
    fn an_optional_reader_queue_drops_until_read_then_pushes_back() {
        let queue = EventQueue::optional_reader(2, usize::MAX, EventOverflow::Backpressure);
        for n in 0..3 {
            queue.push(message(n), 0);
        }
        assert!(queue.has_room());
        queue.attach_reader();
        assert!(!queue.has_room());
        assert_eq!(name(queue.pop_blocking()), "lagged 1");
    }

    #[test]
    fn the_queue_is_bounded_in_bytes_as_well() {
        let queue = EventQueue::new(100, 1000, EventOverflow::Backpressure);
        queue.push(message(0), 600);
        assert!(queue.has_room());
        queue.push(message(1), 600);
        assert!(
            !queue.has_room(),
            "1200 bytes queued, over the 1000-byte bound"
        );
        assert_eq!(name(queue.pop_blocking()), "0");
        assert!(queue.has_room());
        let dropping = EventQueue::new(100, 1000, EventOverflow::DropOldest);
        for n in 0..3 {
            dropping.push(message(n), 600);
        }
        // Full means at or over the bound before a push: the newest event always gets in.
        assert_eq!(dropping.dropped(), 1);
    }

    #[test]
    fn a_deferred_push_reports_room_and_wakes_waiting_readers_once_asked() {
        let queue = Arc::new(EventQueue::new(2, usize::MAX, EventOverflow::Backpressure));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let queue = queue.clone();
                std::thread::spawn(move || name(queue.pop_blocking()))
            })
            .collect();
        // Both readers must be asleep before the pushes: one still starting up would take
        // the first event itself, without a wake-up, and the queue would not be full.
        while queue.lock().blocked_readers < 2 {
            std::thread::yield_now();
        }
        assert!(queue.push_deferred(message(0), 0), "one of two: room left");
        assert!(!queue.push_deferred(message(1), 0), "two of two: full");
        // One wake-up for both events: the first reader passes it on to the second.
        queue.wake_readers();
        let mut got: Vec<String> = readers.into_iter().map(|r| r.join().unwrap()).collect();
        got.sort();
        assert_eq!(got, ["0", "1"]);
        assert!(queue.has_room());
    }

    #[tokio::test]
    async fn a_deferred_push_wakes_an_async_reader() {
        let queue = Arc::new(EventQueue::new(8, usize::MAX, EventOverflow::Backpressure));
        let reader = tokio::spawn({
            let queue = queue.clone();
            async move { name(queue.pop().await) }
        });
        tokio::task::yield_now().await;
        queue.push_deferred(message(7), 0);
        queue.wake_readers();
        assert_eq!(reader.await.unwrap(), "7");
    }

    #[tokio::test]
    async fn the_writer_wakes_when_a_reader_makes_room() {
        let queue = Arc::new(EventQueue::new(1, usize::MAX, EventOverflow::Backpressure));
        queue.push(message(0), 0);
        let waiter = tokio::spawn({
            let queue = queue.clone();
            async move { queue.room().await }
        });
        let reader = queue.clone();
        tokio::task::spawn_blocking(move || reader.pop_blocking())
            .await
            .unwrap();
        waiter.await.unwrap();
        assert!(queue.has_room());
    }

    #[tokio::test]
    async fn closing_releases_a_waiting_writer() {
        let queue = Arc::new(EventQueue::new(1, usize::MAX, EventOverflow::Backpressure));
        queue.push(message(0), 0);
        let waiter = tokio::spawn({
            let queue = queue.clone();
            async move { queue.room().await }
        });
        tokio::task::yield_now().await;
        queue.close();
        waiter.await.unwrap();
    }
}
