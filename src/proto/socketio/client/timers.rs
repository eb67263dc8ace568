//! One table for every deadline of the client core: reconnection, connect timeouts, ack
//! timeouts and at-least-once retries. The core asks it for the earliest deadline
//! ([`TimerTable::next`]) and for what has expired ([`TimerTable::pop_expired`]); setting a
//! timer again moves it, cancelling forgets it.
//!
//! A binary heap with lazy deletion: a cancelled or moved timer stays in the heap until it
//! reaches the top, where its stale generation makes it skipped. Setting and cancelling are
//! O(log n) and O(1), which matters with thousands of acks in flight.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::Hash;
use std::time::Instant;

use crate::proto::local_map::LocalMap;

/// Deadlines keyed by `K`, at most one per key.
#[derive(Debug)]
pub(crate) struct TimerTable<K> {
    heap: BinaryHeap<Reverse<(Instant, u64, K)>>,
    /// The generation of each live timer; a heap entry with another one is stale.
    live: LocalMap<K, u64>,
    generation: u64,
}

impl<K: Hash + Eq + Ord + Clone> Default for TimerTable<K> {
    fn default() -> Self {
        TimerTable {
            heap: BinaryHeap::new(),
            live: LocalMap::default(),
            generation: 0,
        }
    }
}

impl<K: Hash + Eq + Ord + Clone> TimerTable<K> {
    /// Sets (or moves) the timer `key` to fire at `at`.
    pub(crate) fn set(&mut self, key: K, at: Instant) {
        self.generation += 1;
        self.live.insert(key.clone(), self.generation);
        self.heap.push(Reverse((at, self.generation, key)));
    }

    /// Forgets the timer `key`, if set.
    pub(crate) fn cancel(&mut self, key: &K) {
        self.live.remove(key);
    }

    /// Whether `key` is set.
    pub(crate) fn is_set(&self, key: &K) -> bool {
        self.live.contains_key(key)
    }

    /// The earliest live deadline.
    pub(crate) fn next(&mut self) -> Option<Instant> {
        self.skip_stale();
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// One timer that is due at `now`, removed from the table (earliest first).
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<K> {
        self.skip_stale();
        let Reverse((at, _, _)) = self.heap.peek()?;
        if *at > now {
            return None;
        }
        let Reverse((_, _, key)) = self.heap.pop()?;
        self.live.remove(&key);
        Some(key)
    }

    fn skip_stale(&mut self) {
        while let Some(Reverse((_, generation, key))) = self.heap.peek() {
            if self.live.get(key) == Some(generation) {
                return;
            }
            self.heap.pop();
        }
        // Everything left was stale: start the generations' bookkeeping afresh.
        if self.live.is_empty() {
            self.heap.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fires_in_order_and_honours_moves_and_cancels() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut timers = TimerTable::default();
        timers.set("a", at(30));
        timers.set("b", at(10));
        timers.set("c", at(20));
        timers.set("a", at(5)); // moved earlier
        timers.cancel(&"c");
        assert_eq!(timers.next(), Some(at(5)));
        assert_eq!(timers.pop_expired(at(4)), None);
        assert_eq!(timers.pop_expired(at(100)), Some("a"));
        assert_eq!(timers.pop_expired(at(100)), Some("b"));
        assert_eq!(timers.pop_expired(at(100)), None, "c was cancelled");
        assert_eq!(timers.next(), None);
        assert!(!timers.is_set(&"a"));
    }
}
