//! The Engine.IO session after the handshake: heartbeat in both protocol versions, ping-timeout
//! detection, message queueing and close. Sans-IO: fed packets and time, polled for output.

use std::time::Instant;

use super::{Data, EngineVersion, Handshake, Packet};

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// No ping (v4) / pong (v3) within the heartbeat window.
    PingTimeout,
    /// The server sent a close packet.
    ServerClose,
    /// `close()` was called.
    ClientClose,
}

/// Output of the session for the layer above.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// A message packet's data.
    Message(Data),
    /// The session ended; nothing more will be emitted.
    Closed(CloseReason),
}

/// Heartbeat and message state of one Engine.IO session.
#[derive(Debug)]
pub struct Session {
    _private: (),
}

impl Session {
    /// Starts a session from the server's handshake, received at `now`.
    pub fn new(version: EngineVersion, handshake: Handshake, now: Instant) -> Session {
        let _ = (version, handshake, now);
        todo!()
    }

    /// The handshake the session was opened with.
    pub fn handshake(&self) -> &Handshake {
        todo!()
    }

    /// Feeds one packet received from the server at `now`.
    pub fn handle_packet(&mut self, now: Instant, packet: Packet) {
        let _ = (now, packet);
        todo!()
    }

    /// Advances timers to `now` (v3: send a ping when due; both: detect ping timeout).
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
        todo!()
    }

    /// When `handle_timeout` must next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!()
    }

    /// Next packet to send to the server, in order.
    pub fn poll_transmit(&mut self) -> Option<Packet> {
        todo!()
    }

    /// Next event for the layer above.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        todo!()
    }

    /// Queues a message for the server.
    pub fn send(&mut self, data: Data) {
        let _ = data;
        todo!()
    }

    /// Closes the session: queues a close packet and emits `Closed(ClientClose)`.
    pub fn close(&mut self) {
        todo!()
    }

    /// Whether the heartbeat window has passed at `now` even if no timer fired yet (a suspended
    /// process or a sleeping laptop): a connection that looks alive but is not.
    pub fn has_ping_expired(&self, now: Instant) -> bool {
        let _ = now;
        todo!()
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        todo!()
    }
}
