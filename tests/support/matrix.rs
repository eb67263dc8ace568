//! The set-up the interop behaviour matrices share: the transport modes, one fast-heartbeat Node
//! server per version, the client builder for a mode, and the blocking client's waits.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sio_client::{
    AckSender, Args, Client, ClientBuilder, DisconnectReason, EngineVersion, Event, Transport,
};

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

/// Asserts the transport the mode must end up on; for an upgrade, waits for the change event.
pub fn check_transport(client: &Client, mode: Mode) {
    match mode {
        Mode::WebSocket => assert_eq!(client.transport(), Transport::WebSocket),
        Mode::Polling => assert_eq!(client.transport(), Transport::Polling),
        Mode::Upgrade => {
            if client.transport() == Transport::Polling {
                let mut events = client.events();
                loop {
                    match events.next_timeout(WAIT) {
                        Some(Event::TransportChanged { from, to }) => {
                            assert_eq!((from, to), (Transport::Polling, Transport::WebSocket));
                            break;
                        }
                        Some(Event::Connected { .. }) => continue,
                        other => panic!("expected an upgrade, got {other:?}"),
                    }
                }
            }
            assert_eq!(client.transport(), Transport::WebSocket);
        }
    }
}

/// Next message event named `name`, skipping connection-state events.
pub fn next_message(client: &Client, name: &str) -> (Args, Option<AckSender>) {
    let mut events = client.events();
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.next_timeout(left) {
            Some(Event::Message {
                event, args, ack, ..
            }) if event == name => return (args, ack),
            Some(Event::Message { event, .. }) => panic!("unexpected event {event}"),
            Some(Event::Connected { .. } | Event::TransportChanged { .. }) => continue,
            other => panic!("waiting for {name}, got {other:?}"),
        }
    }
}

/// Next disconnect, skipping errors and connection-state events.
pub fn next_disconnect(client: &Client) -> DisconnectReason {
    let mut events = client.events();
    loop {
        match events.next_timeout(WAIT) {
            Some(Event::Disconnected { reason, .. }) => return reason,
            Some(Event::Error(_) | Event::Connected { .. } | Event::TransportChanged { .. }) => {
                continue
            }
            other => panic!("waiting for a disconnect, got {other:?}"),
        }
    }
}
