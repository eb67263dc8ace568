//! A hash map for keys this crate chooses, with a cheap hash instead of SipHash.
//!
//! SipHash resists hash flooding: keys chosen by an attacker that all land in one bucket. The
//! maps that use [`LocalMap`] are keyed by what the client chose itself (driver tokens, its own
//! ack ids, timer keys) or by the application (namespace names). A server does make the client
//! *look up* keys of its choosing (the id of an ACK it sends), but a lookup walks the probe
//! sequence of the keys already in the map, which the server cannot choose, so it cannot make
//! one slow. SipHash was a percent of a burst's CPU (a lookup per event delivered) and as much
//! again with acks in flight (an insert, a lookup and a removal per ack, in two maps).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A map whose keys are chosen by this crate (tokens, ack ids, timer keys) or by the
/// application (namespace names), never by a server.
pub(crate) type LocalMap<K, V> = HashMap<K, V, BuildHasherDefault<LocalHasher>>;

/// A multiply-rotate hash (as rustc's own `FxHasher`), for [`LocalMap`].
#[derive(Default)]
pub(crate) struct LocalHasher(u64);

impl LocalHasher {
    const K: u64 = 0x517c_c1b7_2722_0a95;

    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::K);
    }
}

impl Hasher for LocalHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        for &byte in chunks.remainder() {
            self.add(u64::from(byte));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}
