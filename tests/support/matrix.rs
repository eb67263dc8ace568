//! The set-up the interop behaviour matrices share: the transport modes, one fast-heartbeat Node
//! server per version, the client builder for a mode, the blocking client's waits, and the
//! parts of the blocking cases that are the same against every server.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sio_client::{
    AckSender, Args, Client, ClientBuilder, DisconnectReason, EngineVersion, Error, Event,
    Transport,
};

use super::events::{assert_admin_refused, disconnect_step, message_step, upgrade_step};
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

impl Mode {
    /// The transports a client in this mode is given, in order.
    pub fn transports(self) -> Vec<Transport> {
        match self {
            Mode::WebSocket => vec![Transport::WebSocket],
            Mode::Polling => vec![Transport::Polling],
            Mode::Upgrade => vec![Transport::Polling, Transport::WebSocket],
        }
    }
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
    Client::builder(url)
        .protocol_version(protocol)
        .transports(mode.transports())
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
                while !upgrade_step(events.next_timeout(WAIT)) {}
            }
            assert_eq!(client.transport(), Transport::WebSocket);
        }
    }
}

/// Next message event named `name`, skipping connection-state events.
pub fn next_message(client: &Client, name: &str) -> (Args, Option<AckSender>) {
    next_message_for(client, name, "the matrix case")
}

/// Next message event named `name`, skipping connection-state events; a panic says `what` was
/// waiting.
pub fn next_message_for(client: &Client, name: &str, what: &str) -> (Args, Option<AckSender>) {
    let mut events = client.events();
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Some(message) = message_step(events.next_timeout(left), name, what) {
            return message;
        }
    }
}

/// Next disconnect, skipping errors and connection-state events.
pub fn next_disconnect(client: &Client) -> DisconnectReason {
    let mut events = client.events();
    loop {
        if let Some(reason) = disconnect_step(events.next_timeout(WAIT)) {
            return reason;
        }
    }
}

// The parts of the cases that the blocking matrices (Node's servers in interop_blocking.rs,
// python-socketio and socketioxide in interop_servers.rs) share, each on a connected client.

/// Five acks the client asks for, each answered with its own arguments.
pub fn client_acks(client: &Client) {
    for i in 0..5 {
        let reply = client.emit_with_ack("ack", (i, "two"), WAIT).unwrap();
        assert_eq!(
            reply.parse::<(i32, String)>().unwrap(),
            (i, "two".to_string())
        );
    }
}

/// The server asks for an ack of "question"; the client answers and the server reports what it
/// got.
pub fn server_asks_for_ack(client: &Client) {
    client.emit("request-ack", "question").unwrap();
    let (args, ack) = next_message(client, "need-ack");
    assert_eq!(args.get::<String>(0).unwrap(), "question");
    ack.expect("the server asked for an ack")
        .send(&("answer", 7))
        .unwrap();
    let (args, _) = next_message(client, "got-ack");
    assert_eq!(
        args.parse::<(String, i32)>().unwrap(),
        ("answer".to_string(), 7)
    );
}

/// Joins `/admin` with the token its guard accepts.
pub fn join_admin(client: &Client) -> Client {
    client
        .socket("/admin")
        .auth(json!({"token": "secret"}))
        .connect()
        .expect("/admin accepts the right token")
}

/// `/admin` joined with the right token acks, and so does `/` beside it.
pub fn admin_beside_main(client: &Client) {
    let admin = join_admin(client);
    assert_eq!(admin.namespace(), "/admin");
    let reply = admin.emit_with_ack("ack", "on admin", WAIT).unwrap();
    assert_eq!(reply.get::<String>(0).unwrap(), "on admin");
    // The main namespace still works beside it.
    let reply = client.emit_with_ack("ack", "on main", WAIT).unwrap();
    assert_eq!(reply.get::<String>(0).unwrap(), "on main");
}

/// Joining `/admin` with a wrong token is refused with "not authorized" and `data`.
pub fn wrong_token_refused(client: &Client, data: Option<Value>) {
    let refused = client
        .socket("/admin")
        .auth(json!({"token": "wrong"}))
        .connect();
    assert_admin_refused(refused, data);
}

/// The client's own disconnect: its reason, then the end of the event stream, then emits
/// refused.
pub fn client_disconnect_ends(client: &Client) {
    client.disconnect();
    assert_eq!(
        next_disconnect(client),
        DisconnectReason::IoClientDisconnect
    );
    assert!(client.events().next().is_none(), "the event stream ends");
    assert!(matches!(
        client.emit("echo", 1),
        Err(Error::Disconnected(_))
    ));
}

/// With the servers' fast heartbeats, 3 s pass without an event and the client still acks.
pub fn heartbeats_keep_quiet(client: &Client) {
    // pingInterval is 200 ms: 3 s are 15 heartbeats. Nothing may happen in that time.
    let mut events = client.events();
    let until = Instant::now() + Duration::from_secs(3);
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match events.next_timeout(left) {
            None => break,
            Some(Event::Connected { .. } | Event::TransportChanged { .. }) => continue,
            Some(other) => panic!("unexpected event {other:?}"),
        }
    }
    assert!(client.is_connected());
    let reply = client.emit_with_ack("ack", "still here", WAIT).unwrap();
    assert_eq!(reply.get::<String>(0).unwrap(), "still here");
}
