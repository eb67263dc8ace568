//! Engine.IO tests: golden vectors from the protocol specs and engine.io-parser, round trips
//! and malformed input (`codec`); heartbeat timers and the upgrade probe on a virtual clock, and
//! a no-panic loop over random bytes (`session`).

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::proto::ProtocolError;

mod codec;
mod session;

const V3: EngineVersion = EngineVersion::V3;
const V4: EngineVersion = EngineVersion::V4;

/// The open packet of the v4 spec's sample session.
const SPEC_OPEN_V4: &str = r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
/// The same session opened by a v3 server (no maxPayload).
const SPEC_OPEN_V3: &str = r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":5000}"#;

fn text(s: &str) -> Packet {
    Packet::Message(Data::Text(s.to_owned()))
}

fn binary(b: &[u8]) -> Packet {
    Packet::Message(Data::Binary(Bytes::copy_from_slice(b)))
}

fn handshake(interval_ms: u64, timeout_ms: u64) -> Handshake {
    Handshake {
        sid: "abc".to_owned(),
        upgrades: vec!["websocket".to_owned()],
        ping_interval: Duration::from_millis(interval_ms),
        ping_timeout: Duration::from_millis(timeout_ms),
        max_payload: Some(1_000_000),
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn drain_transmit(session: &mut Session) -> Vec<Packet> {
    std::iter::from_fn(|| session.poll_transmit()).collect()
}

fn drain_events(session: &mut Session) -> Vec<SessionEvent> {
    std::iter::from_fn(|| session.poll_event()).collect()
}

// ---------------------------------------------------------------------------------------------
// Versions and packets
// ---------------------------------------------------------------------------------------------
