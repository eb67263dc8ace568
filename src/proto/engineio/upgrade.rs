//! The polling→WebSocket upgrade probe: send `2probe` on the new transport, expect `3probe`, wait
//! until the polling transport has no request in flight, then send `5` and switch.

use std::time::{Duration, Instant};

use super::Packet;
use crate::proto::ProtocolError;

/// Where an upgrade probe stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeState {
    /// `2probe` queued or sent; waiting for `3probe`.
    Probing,
    /// `3probe` received; waiting for the polling transport to pause (no request in flight).
    AwaitingPause,
    /// `5` queued: the new transport carries the session from now on.
    Upgraded,
    /// The probe failed (wrong answer or timeout); keep polling.
    Failed,
}

/// State machine of one upgrade attempt, driven on the probing WebSocket.
#[derive(Debug)]
pub struct UpgradeProbe {
    _private: (),
}

impl UpgradeProbe {
    /// Starts a probe at `now` that fails if not upgraded within `timeout`.
    pub fn new(now: Instant, timeout: Duration) -> UpgradeProbe {
        let _ = (now, timeout);
        todo!()
    }

    /// Current state.
    pub fn state(&self) -> ProbeState {
        todo!()
    }

    /// Next packet to send on the probing transport (`Ping("probe")`, later `Upgrade`).
    pub fn poll_transmit(&mut self) -> Option<Packet> {
        todo!()
    }

    /// Feeds a packet received on the probing transport.
    pub fn handle_packet(&mut self, now: Instant, packet: Packet) -> Result<(), ProtocolError> {
        let _ = (now, packet);
        todo!()
    }

    /// The polling transport has no request in flight any more.
    pub fn polling_paused(&mut self) {
        todo!()
    }

    /// Advances to `now`; past the deadline a probe not yet upgraded fails.
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
        todo!()
    }

    /// The probe's deadline while it is still running.
    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!()
    }
}
