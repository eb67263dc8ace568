//! Transports: each moves Engine.IO packets over one kind of connection. They know framing, not
//! session rules.

use std::fmt;

/// A way of carrying Engine.IO packets.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// A WebSocket connection.
    WebSocket,
    /// HTTP long-polling: a GET waiting for packets, a POST to send.
    Polling,
}

impl Transport {
    /// The name used in the `transport` query parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::WebSocket => "websocket",
            Transport::Polling => "polling",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
