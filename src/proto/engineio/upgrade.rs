//! The polling→WebSocket upgrade probe: send `2probe` on the new transport, expect `3probe`, wait
//! until the polling transport has no request in flight, then send `5` and switch.

use std::time::{Duration, Instant};

use super::Packet;
use crate::proto::ProtocolError;

/// Where an upgrade probe stands.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

/// Data of the probe ping and of the pong that answers it.
const PROBE: &str = "probe";

/// State machine of one upgrade attempt, driven on the probing WebSocket.
#[derive(Debug)]
pub struct UpgradeProbe {
    state: ProbeState,
    /// `None` when `now + timeout` is past what `Instant` holds: the probe never times out.
    deadline: Option<Instant>,
    ping_sent: bool,
    upgrade_sent: bool,
    polling_paused: bool,
}

impl UpgradeProbe {
    /// Starts a probe at `now` that fails if not upgraded within `timeout`.
    pub fn new(now: Instant, timeout: Duration) -> UpgradeProbe {
        UpgradeProbe {
            state: ProbeState::Probing,
            deadline: now.checked_add(timeout),
            ping_sent: false,
            upgrade_sent: false,
            polling_paused: false,
        }
    }

    /// Current state.
    pub fn state(&self) -> ProbeState {
        self.state
    }

    /// Next packet to send on the probing transport (`Ping("probe")`, later `Upgrade`).
    pub fn poll_transmit(&mut self) -> Option<Packet> {
        if self.state == ProbeState::Failed {
            return None;
        }
        if !self.ping_sent {
            self.ping_sent = true;
            return Some(Packet::Ping(PROBE.to_owned()));
        }
        if self.state == ProbeState::Upgraded && !self.upgrade_sent {
            self.upgrade_sent = true;
            return Some(Packet::Upgrade);
        }
        None
    }

    /// Feeds a packet received on the probing transport.
    ///
    /// Only `3probe` is expected, and only while probing; anything else (or a packet arriving
    /// after the deadline) fails the probe. Once upgraded, packets belong to the session and
    /// are ignored here.
    pub fn handle_packet(&mut self, now: Instant, packet: Packet) -> Result<(), ProtocolError> {
        self.handle_timeout(now);
        match self.state {
            ProbeState::Upgraded => Ok(()),
            ProbeState::Failed => Err(ProtocolError::UnexpectedPacket(format!(
                "{packet:?} on a failed upgrade probe"
            ))),
            ProbeState::Probing => match packet {
                Packet::Pong(data) if data == PROBE => {
                    self.state = if self.polling_paused {
                        ProbeState::Upgraded
                    } else {
                        ProbeState::AwaitingPause
                    };
                    Ok(())
                }
                other => {
                    self.state = ProbeState::Failed;
                    Err(ProtocolError::UnexpectedPacket(format!(
                        "{other:?} instead of the probe pong"
                    )))
                }
            },
            // The server stays silent on the new transport until it receives the upgrade
            // packet; anything it sends now would be lost or reordered.
            ProbeState::AwaitingPause => {
                self.state = ProbeState::Failed;
                Err(ProtocolError::UnexpectedPacket(format!(
                    "{packet:?} before the upgrade completed"
                )))
            }
        }
    }

    /// The polling transport has no request in flight any more.
    pub fn polling_paused(&mut self) {
        self.polling_paused = true;
        if self.state == ProbeState::AwaitingPause {
            self.state = ProbeState::Upgraded;
        }
    }

    /// Advances to `now`; past the deadline a probe not yet upgraded fails.
    pub fn handle_timeout(&mut self, now: Instant) {
        let running = matches!(self.state, ProbeState::Probing | ProbeState::AwaitingPause);
        if running && self.deadline.is_some_and(|deadline| now >= deadline) {
            self.state = ProbeState::Failed;
        }
    }

    /// The probe's deadline while it is still running.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            ProbeState::Probing | ProbeState::AwaitingPause => self.deadline,
            ProbeState::Upgraded | ProbeState::Failed => None,
        }
    }
}
