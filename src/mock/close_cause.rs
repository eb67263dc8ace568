//! Why an Engine.IO session ended: shared by the Engine.IO layer (`engine.rs`, which decides)
//! and the layers above it (`socket.rs`, `engine_io.rs`, which report it).

/// Why a session ended, with Node's reason strings (`Socket#disconnect` reasons on the
/// socket.io side).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseCause {
    /// No pong within pingTimeout.
    PingTimeout,
    /// The client sent a close packet or its transport went away.
    TransportClose,
    /// The transport broke the protocol (overlapping polls, bad content, heartbeat direction).
    TransportError,
    /// A packet that does not parse.
    ParseError,
    /// The server closed the session (`disconnect(true)`, connect timeout, shutdown).
    ServerClose,
    /// The server closed the connection alone, no DISCONNECT first (Node's
    /// `socket.conn.close()`): to the client a lost connection, recoverable.
    ForcedClose,
}

impl CloseCause {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            CloseCause::PingTimeout => "ping timeout",
            CloseCause::TransportClose => "transport close",
            CloseCause::TransportError => "transport error",
            CloseCause::ParseError => "parse error",
            CloseCause::ServerClose => "server namespace disconnect",
            CloseCause::ForcedClose => "forced close",
        }
    }
}
