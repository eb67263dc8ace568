//! The set-up both interop behaviour matrices (blocking and async) share: the transport modes,
//! one fast-heartbeat Node server per version, and the client builder for a mode.

use std::sync::OnceLock;
use std::time::Duration;

use sio_client::{Client, ClientBuilder, EngineVersion, Transport};

use super::{NodeOptions, NodeServer, SioVersion};

/// How long any step of a matrix case may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// The transport set-ups the matrix runs over.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// WebSocket only.
    WebSocket,
    /// Long-polling only.
    Polling,
    /// Polling first, then the upgrade to WebSocket.
    Upgrade,
}

/// One server per version for the whole binary, with fast heartbeats so that every test also
/// exercises them. It exits when the test process does (its stdin closes).
pub fn shared_server(version: SioVersion) -> &'static NodeServer {
    static V4: OnceLock<NodeServer> = OnceLock::new();
    static V2: OnceLock<NodeServer> = OnceLock::new();
    let cell = match version {
        SioVersion::V4 => &V4,
        SioVersion::V2 => &V2,
    };
    cell.get_or_init(|| NodeServer::start(version, fast_heartbeat()))
}

/// pingInterval 200 ms, pingTimeout 400 ms.
pub fn fast_heartbeat() -> NodeOptions {
    NodeOptions {
        ping_interval_ms: Some(200),
        ping_timeout_ms: Some(400),
        ..NodeOptions::default()
    }
}

/// A client builder for `url` speaking `version`'s protocol over `mode`'s transports.
pub fn builder(url: String, version: SioVersion, mode: Mode) -> ClientBuilder {
    let protocol = match version {
        SioVersion::V4 => EngineVersion::V4,
        SioVersion::V2 => EngineVersion::V3,
    };
    let transports = match mode {
        Mode::WebSocket => vec![Transport::WebSocket],
        Mode::Polling => vec![Transport::Polling],
        Mode::Upgrade => vec![Transport::Polling, Transport::WebSocket],
    };
    Client::builder(url)
        .protocol_version(protocol)
        .transports(transports)
        .timeout(WAIT)
}
