//! Engine.IO (protocol v3 for socket.io 2.x servers, v4 for 3.x/4.x): packets, polling payloads,
//! the handshake, the heartbeat session and the polling→WebSocket upgrade probe.

mod handshake;
mod packet;
mod payload;
mod session;
mod upgrade;

pub use handshake::Handshake;
pub use packet::{Data, EngineVersion, Frame, Packet};
pub use payload::{decode_payload, encode_payload};
pub use session::{CloseReason, Session, SessionEvent};
pub use upgrade::{ProbeState, UpgradeProbe};
