//! Engine.IO (protocol v3 for socket.io 2.x servers, v4 for 3.x/4.x): packets, polling payloads,
//! the handshake, the heartbeat session and the polling→WebSocket upgrade probe.

pub mod detect;
mod handshake;
mod packet;
mod payload;
mod session;
pub mod sse;
mod upgrade;

#[cfg(test)]
mod tests;

pub use handshake::{Handshake, MAX_HEARTBEAT_MILLIS};
pub use packet::{Data, EngineVersion, Frame, Packet};
pub use payload::{decode_payload, decode_payload_bytes, encode_payload, utf16_len, PayloadReader};
pub use session::{CloseReason, Session, SessionEvent};
pub use upgrade::{ProbeState, UpgradeProbe};
