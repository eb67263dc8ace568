//! A client set to the socket.io 3/4 protocol (the default, `EngineVersion::V4`) reaching a real
//! socket.io 2.5 server fails `connect()` with a typed error instead of half-connecting (which
//! used to end in a ping timeout and a reconnection loop); `EngineVersion::Auto` detects the
//! 2.x server and goes on with v3, and costs nothing against socket.io 4.8.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use sio_client::proto::ProtocolError;
use sio_client::{Client, ClientBuilder, EngineVersion, Error, Event, Transport};
use support::matrix::{fast_heartbeat, shared_server, WAIT};
use support::{NodeServer, SioVersion};

/// The transport set-ups checked.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Order {
    WebSocket,
    Polling,
    /// Polling first, then the upgrade to WebSocket (the JS client's default).
    Upgrade,
    /// The crate's default order (WebSocket, streaming, polling), left unset.
    Default,
}

fn builder(url: String, order: Order) -> ClientBuilder {
    let builder = Client::builder(url).timeout(WAIT);
    match order {
        Order::WebSocket => builder.transports([Transport::WebSocket]),
        Order::Polling => builder.transports([Transport::Polling]),
        Order::Upgrade => builder.transports([Transport::Polling, Transport::WebSocket]),
        Order::Default => builder,
    }
}

/// `(socket id, connected)` for every socket the server logged on `/`, in order of
/// connection: connected until its disconnect line.
fn server_sockets(log: &str) -> Vec<(String, bool)> {
    let mut sockets: Vec<(String, bool)> = Vec::new();
    for line in log.lines() {
        let mut words = line.split_whitespace().skip(1);
        match (words.next(), words.next(), words.next()) {
            (Some("connect"), Some("/"), Some(id)) => {
                // socket.io 2 runs its handler again for the same id when a v4 client sends
                // its own CONNECT for "/": one socket all the same.
                match sockets.iter_mut().find(|(known, _)| known == id) {
                    Some(entry) => entry.1 = true,
                    None => sockets.push((id.to_owned(), true)),
                }
            }
            (Some("disconnect"), Some("/"), Some(id)) => {
                for entry in sockets.iter_mut().filter(|(known, _)| known == id) {
                    entry.1 = false;
                }
            }
            _ => {}
        }
    }
    sockets
}

/// Waits until the server's `/` sockets satisfy `done`; panics with the log at the deadline.
fn wait_for_sockets(server: &NodeServer, what: &str, done: impl Fn(&[(String, bool)]) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        let log = server.stderr();
        if done(&server_sockets(&log)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {WAIT:?}; server log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn assert_socketio2_error(result: Result<Client, Error>, started: Instant, order: Order) {
    let error = match result {
        Ok(client) => panic!(
            "{order:?}: connected to a socket.io 2 server with the v4 protocol over {}",
            client.transport()
        ),
        Err(error) => error,
    };
    assert!(
        matches!(
            error,
            Error::Protocol(ProtocolError::Socketio2Server { .. })
        ),
        "{order:?}: {error:?}"
    );
    let text = error.to_string();
    assert!(text.contains("socket.io 2"), "{text}");
    assert!(
        text.contains("protocol_version(EngineVersion::V3)"),
        "{text}"
    );
    // Refused, not timed out: the server answers at once.
    assert!(
        started.elapsed() < WAIT,
        "{order:?}: took {:?}",
        started.elapsed()
    );
}

/// Default options (V4) against socket.io 2.5: the typed error, and every session the attempt
/// opened on the server is closed, not left to its ping timeout (45 s with these defaults).
fn v4_refuses_sio2(order: Order) {
    let server = NodeServer::start_default(SioVersion::V2);
    let started = Instant::now();
    let result = builder(server.url(), order).connect();
    assert_socketio2_error(result, started, order);
    wait_for_sockets(
        &server,
        "the refused session closed on the server",
        |sockets| !sockets.is_empty() && sockets.iter().all(|(_, connected)| !connected),
    );
}

#[test]
fn v4_refuses_sio2_over_websocket() {
    v4_refuses_sio2(Order::WebSocket);
}

#[test]
fn v4_refuses_sio2_over_polling() {
    v4_refuses_sio2(Order::Polling);
}

#[test]
fn v4_refuses_sio2_over_the_default_order() {
    v4_refuses_sio2(Order::Default);
}

#[test]
fn v4_refuses_sio2_even_when_asked_to_retry_the_first_connect() {
    let server = shared_server(SioVersion::V2);
    for order in [Order::WebSocket, Order::Polling] {
        let started = Instant::now();
        let result = builder(server.url(), order)
            .retry_initial_connect(true)
            .connect();
        assert_socketio2_error(result, started, order);
    }
}

/// Next message event named `name`, skipping connection-state events.
fn next_message(client: &Client, name: &str) -> sio_client::Args {
    let mut events = client.events();
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.next_timeout(left) {
            Some(Event::Message { event, args, .. }) if event == name => return args,
            Some(Event::Connected { .. } | Event::TransportChanged { .. }) => continue,
            other => panic!("waiting for {name}, got {other:?}"),
        }
    }
}

/// Waits for the upgrade of a polling connection to finish.
fn wait_for_websocket(client: &Client) {
    if client.transport() == Transport::WebSocket {
        return;
    }
    let mut events = client.events();
    let deadline = Instant::now() + WAIT;
    while client.transport() != Transport::WebSocket {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.next_timeout(left) {
            Some(Event::TransportChanged { to, .. }) => assert_eq!(to, Transport::WebSocket),
            Some(Event::Connected { .. }) => continue,
            other => panic!("waiting for the upgrade, got {other:?}"),
        }
    }
}

/// `Auto` against `version` (a fast-heartbeat server: pingInterval 200 ms, pingTimeout 400 ms):
/// connected over the transport asked for, an echo and an ack go through, and the session
/// outlives several heartbeats (a v4 session on a v2 server dies after 600 ms).
fn auto_connects(version: SioVersion, order: Order) -> Client {
    let server = shared_server(version);
    let client = builder(server.url(), order)
        .protocol_version(EngineVersion::Auto)
        .connect()
        .unwrap_or_else(|e| panic!("{version:?} {order:?}: {e}"));
    match order {
        Order::WebSocket => assert_eq!(client.transport(), Transport::WebSocket),
        Order::Polling => assert_eq!(client.transport(), Transport::Polling),
        Order::Upgrade => wait_for_websocket(&client),
        // Node servers do not speak streaming. WebSocket wins unless it lost the head start
        // on a loaded machine, and then polling carries the connection.
        Order::Default => {
            let transport = client.transport();
            assert!(
                matches!(transport, Transport::WebSocket | Transport::Polling),
                "{version:?}: {transport}"
            );
        }
    }
    client.emit("echo", ("hi", 42)).unwrap();
    let args = next_message(&client, "echo");
    assert_eq!(args.parse::<(String, i32)>().unwrap(), ("hi".into(), 42));
    let heartbeats = fast_heartbeat();
    let outlive = Duration::from_millis(
        3 * (heartbeats.ping_interval_ms.unwrap() + heartbeats.ping_timeout_ms.unwrap()),
    );
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < outlive {
        let reply = client
            .emit_with_ack("ack", (i, json!({"n": i})), WAIT)
            .unwrap_or_else(|e| {
                panic!(
                    "{version:?} {order:?}: ack {i} after {:?}: {e}",
                    started.elapsed()
                )
            });
        assert_eq!(
            reply.parse::<(i32, serde_json::Value)>().unwrap(),
            (i, json!({"n": i}))
        );
        i += 1;
    }
    assert!(client.is_connected());
    let mut events = client.events();
    while let Some(event) = events.next_timeout(Duration::ZERO) {
        assert!(
            !matches!(event, Event::Disconnected { .. } | Event::Error(_)),
            "{version:?} {order:?}: {event:?}"
        );
    }
    client
}

#[test]
fn auto_connects_to_sio2_over_websocket() {
    auto_connects(SioVersion::V2, Order::WebSocket);
}

#[test]
fn auto_connects_to_sio2_over_polling() {
    auto_connects(SioVersion::V2, Order::Polling);
}

#[test]
fn auto_connects_to_sio2_with_the_upgrade() {
    auto_connects(SioVersion::V2, Order::Upgrade);
}

#[test]
fn auto_connects_to_sio2_over_the_default_order() {
    auto_connects(SioVersion::V2, Order::Default);
}

#[test]
fn auto_connects_to_sio4_over_websocket() {
    auto_connects(SioVersion::V4, Order::WebSocket);
}

#[test]
fn auto_connects_to_sio4_over_polling() {
    auto_connects(SioVersion::V4, Order::Polling);
}

#[test]
fn auto_connects_to_sio4_with_the_upgrade() {
    auto_connects(SioVersion::V4, Order::Upgrade);
}

#[test]
fn auto_connects_to_sio4_over_the_default_order() {
    auto_connects(SioVersion::V4, Order::Default);
}

/// The v4 session `Auto` opened first on a socket.io 2 server is closed; the v3 one stays.
fn auto_closes_its_probe_session(order: Order) {
    let server = NodeServer::start_default(SioVersion::V2);
    let client = builder(server.url(), order)
        .protocol_version(EngineVersion::Auto)
        .connect()
        .unwrap_or_else(|e| panic!("{order:?}: {e}"));
    wait_for_sockets(&server, "probe closed, real session open", |sockets| {
        sockets.len() == 2 && sockets.iter().filter(|(_, connected)| *connected).count() == 1
    });
    assert!(client.is_connected());
}

#[test]
fn auto_closes_its_probe_session_over_websocket() {
    auto_closes_its_probe_session(Order::WebSocket);
}

#[test]
fn auto_closes_its_probe_session_over_polling() {
    auto_closes_its_probe_session(Order::Polling);
}

/// After the detection, reconnections open with v3 at once: the restarted server sees one
/// session only, and the `/admin` auth travels the v3 way.
#[test]
fn auto_reconnects_with_v3_directly() {
    let mut server = NodeServer::start_default(SioVersion::V2);
    let client = builder(server.url(), Order::WebSocket)
        .protocol_version(EngineVersion::Auto)
        .reconnection_delay(Duration::from_millis(100))
        .connect()
        .expect("connect");
    let admin = client
        .socket("/admin")
        .auth(json!({"token": "secret"}))
        .connect()
        .expect("/admin with its token");
    server.kill();
    let before = server.stderr().len();
    server.restart();
    let mut events = client.events();
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.next_timeout(left) {
            Some(Event::Reconnected { transport, .. }) => {
                assert_eq!(transport, Transport::WebSocket);
                break;
            }
            Some(Event::Disconnected { .. } | Event::Reconnecting { .. } | Event::Error(_)) => {
                continue
            }
            Some(Event::Connected { .. }) => continue,
            other => panic!("waiting for the reconnection, got {other:?}"),
        }
    }
    let reply = admin
        .emit_with_ack("ack", "after", WAIT)
        .expect("/admin after the reconnection");
    assert_eq!(reply.get::<String>(0).unwrap(), "after");
    // The log is read on a thread of its own: wait for the session to show. A v4 probe
    // before it would show first.
    let deadline = Instant::now() + WAIT;
    let since_restart = loop {
        let since_restart = server.stderr()[before..].to_owned();
        let sockets = server_sockets(&since_restart);
        if sockets.iter().any(|(_, connected)| *connected) {
            assert_eq!(
                sockets.len(),
                1,
                "a reconnection after the detection opens one v3 session:\n{since_restart}"
            );
            break since_restart;
        }
        assert!(Instant::now() < deadline, "{since_restart}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!since_restart.contains("reject"), "{since_restart}");
}

/// A socket.io 2 server replaced by a 4 one on the same port (an upgrade in place): the client
/// that detected v2 hears the new server refuse `EIO=3` and goes back to v4.
#[test]
fn auto_follows_a_server_upgraded_from_2_to_4() {
    let mut server = NodeServer::start_default(SioVersion::V2);
    let client = builder(server.url(), Order::Default)
        .protocol_version(EngineVersion::Auto)
        .reconnection_delay(Duration::from_millis(100))
        .reconnection_delay_max(Duration::from_millis(500))
        .connect()
        .expect("connect to socket.io 2");
    server.restart_as(SioVersion::V4);
    let mut events = client.events();
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.next_timeout(left) {
            Some(Event::Reconnected { .. }) => break,
            Some(
                Event::Disconnected { .. }
                | Event::Reconnecting { .. }
                | Event::Error(_)
                | Event::Connected { .. }
                | Event::TransportChanged { .. },
            ) => continue,
            other => panic!("waiting for the reconnection to socket.io 4, got {other:?}"),
        }
    }
    let reply = client
        .emit_with_ack("ack", "on v4", WAIT)
        .expect("an ack from socket.io 4");
    // Only a socket.io 4 server listens there now.
    assert_eq!(reply.get::<String>(0).unwrap(), "on v4");
}

/// The socket.io-level sign, from a scripted server speaking v4 framing: a CONNECT reply
/// without sid, over both transports. A CONNECT_ERROR that is a bare string (what socket.io 2
/// sends when a middleware refuses `/`, but python-socketio 5 too for an unknown namespace)
/// stays a plain refusal: an error either way, never a connection.
#[test]
fn v4_refuses_socketio2_replies_to_connect() {
    use support::hostile::{HostileServer, Out, Script, Stage};
    for order in [Order::WebSocket, Order::Polling] {
        let server = HostileServer::start(Script {
            version: EngineVersion::V4,
            stage: Stage::ConnectReply,
            steps: vec![Out::Text("40".to_owned())],
        });
        let started = Instant::now();
        let result = builder(server.url(), order).connect();
        let error = result.as_ref().err().map(ToString::to_string);
        assert_socketio2_error(result, started, order);
        let error = error.unwrap_or_default();
        assert!(
            error.contains("CONNECT reply for / carries no sid"),
            "over {order:?}: {error}"
        );

        let server = HostileServer::start(Script {
            version: EngineVersion::V4,
            stage: Stage::ConnectReply,
            steps: vec![Out::Text("44\"not authorized\"".to_owned())],
        });
        match builder(server.url(), order).connect() {
            Err(Error::ConnectRefused { message, .. }) => assert_eq!(message, "not authorized"),
            other => panic!("a bare-string refusal over {order:?}: {other:?}"),
        }
    }
}
