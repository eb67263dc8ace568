//! What clients with the same network settings share in one process: the rustls configuration
//! and the HTTP clients with their connection pools.
//!
//! A pool per client cost every polling client its own kept-alive connections (a GET and a
//! POST each, so 10,000 clients met the descriptor limit at 20,000) and every client, WebSocket
//! included, its own HTTP client (connector, resolver, pool). Shared by settings, the long-poll
//! GETs still hold one connection each, but POSTs reuse whichever idle connection to the host
//! the pool has. Cookies stay per client: they are added and stored per request from the
//! client's own jar (`retry::send`), not by the shared HTTP client.
//!
//! HTTP clients are shared per runtime too (see `net::HttpKey`). Entries are weak: what the last client using some settings drops goes (and with it any key
//! material in those settings), pruned at the next lookup.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, Weak};

/// Values shared by key while someone holds them.
pub(crate) struct Registry<K, V> {
    entries: Mutex<HashMap<K, Weak<V>>>,
}

impl<K: Hash + Eq, V> Registry<K, V> {
    pub(crate) fn new() -> Registry<K, V> {
        Registry {
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The live value for `key`, or a new one from `build` (kept for whoever asks next while
    /// it lives).
    pub(crate) fn get_or_try_insert<E>(
        &self,
        key: K,
        build: impl FnOnce() -> Result<V, E>,
    ) -> Result<Arc<V>, E> {
        // A panic while holding the lock left the map consistent (an insert is one step).
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(live) = entries.get(&key).and_then(Weak::upgrade) {
            return Ok(live);
        }
        entries.retain(|_, value| value.strong_count() > 0);
        let value = Arc::new(build()?);
        entries.insert(key, Arc::downgrade(&value));
        Ok(value)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_while_held_and_dropped_after() {
        let registry: Registry<&str, u32> = Registry::new();
        let a = registry.get_or_try_insert("a", || Ok::<_, ()>(1)).unwrap();
        let again = registry.get_or_try_insert("a", || Ok::<_, ()>(2)).unwrap();
        assert!(Arc::ptr_eq(&a, &again), "one value per key while held");
        drop((a, again));
        let b = registry.get_or_try_insert("b", || Ok::<_, ()>(3)).unwrap();
        assert_eq!(registry.len(), 1, "the dead entry was pruned");
        let fresh = registry.get_or_try_insert("a", || Ok::<_, ()>(4)).unwrap();
        assert_eq!((*b, *fresh), (3, 4));
        assert!(registry
            .get_or_try_insert("c", || Err::<u32, _>("bad"))
            .is_err());
    }
}
