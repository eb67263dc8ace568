//! The open packet's JSON: session id, upgrades and heartbeat parameters.

use std::time::Duration;

use crate::proto::ProtocolError;

/// The server's handshake (the payload of the open packet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// Session id, sent back as `sid` on every later request.
    pub sid: String,
    /// Transports the session may upgrade to (`["websocket"]` on a polling session).
    pub upgrades: Vec<String>,
    /// Heartbeat interval.
    pub ping_interval: Duration,
    /// How long past an expected ping (v4) or pong (v3) before the peer counts as gone.
    pub ping_timeout: Duration,
    /// Largest payload the server accepts in bytes (v4 only; `None` for v3 servers).
    pub max_payload: Option<u64>,
}

impl Handshake {
    /// Parses the open packet's JSON (the text after the leading `0`).
    pub fn parse(json: &str) -> Result<Handshake, ProtocolError> {
        let _ = json;
        todo!()
    }

    /// Serialises as the server sends it (used by the mock server).
    pub fn to_json(&self) -> String {
        todo!()
    }
}
