//! Why a namespace got disconnected: the JS client's reasons. A module of its own because both
//! the events the application reads and the errors its calls return carry one.

use std::fmt;

/// Why a namespace got disconnected. The strings are the official JS client's reasons.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DisconnectReason {
    /// The server disconnected the socket (`socket.disconnect()` on the server).
    IoServerDisconnect,
    /// The application called `disconnect()`.
    IoClientDisconnect,
    /// The server stopped answering heartbeats.
    PingTimeout,
    /// The connection was closed (server gone, network cut, engine.io close packet).
    TransportClose,
    /// The connection failed with an error.
    TransportError,
    /// The server sent bytes that do not parse.
    ParseError,
}

impl DisconnectReason {
    /// The JS client's reason string (`"io server disconnect"`, `"ping timeout"`, …).
    pub fn as_str(&self) -> &'static str {
        match self {
            DisconnectReason::IoServerDisconnect => "io server disconnect",
            DisconnectReason::IoClientDisconnect => "io client disconnect",
            DisconnectReason::PingTimeout => "ping timeout",
            DisconnectReason::TransportClose => "transport close",
            DisconnectReason::TransportError => "transport error",
            DisconnectReason::ParseError => "parse error",
        }
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
