//! The client's behaviour matrix against the in-process mock server: every feature over
//! WebSocket, polling and polling-then-upgrade, and every fault switch as the client sees it.
//! Fast: heartbeats run every 100 ms, nothing waits for a fixed time except the heartbeat test
//! (which must watch the connection stay quiet for a while).
#![cfg(feature = "mock-server")]

#[path = "support/events.rs"]
mod events;
#[path = "support/fixtures.rs"]
mod fixtures;

use events::{assert_admin_refused, disconnect_step, message_step, upgrade_step};
use fixtures::{files, Files};
use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde_json::{json, Value};
use sio_client::mock::{MockServer, MockServerBuilder};
use sio_client::{
    AckSender, Args, AsyncClient, Client, ClientBuilder, DisconnectReason, Error, Event, Transport,
};

const WAIT: Duration = Duration::from_secs(5);
const PING_INTERVAL: Duration = Duration::from_millis(100);
const PING_TIMEOUT: Duration = Duration::from_millis(400);

/// The same event set as the Node test server (tests/node/server.js): `echo` re-emits, `ack`
/// acknowledges with the same arguments, on `/` and on the guarded `/admin`.
fn mock() -> MockServerBuilder {
    MockServer::builder()
        .ping_interval(PING_INTERVAL)
        .ping_timeout(PING_TIMEOUT)
        .on("/", "echo", |socket, args, _ack| socket.emit("echo", args))
        .on("/", "ack", |_socket, args, ack| {
            if let Some(ack) = ack {
                ack.send(args)
            }
        })
        .connect_guard("/admin", |auth: Option<&Value>| {
            match auth.and_then(|a| a.get("token")).and_then(Value::as_str) {
                Some("secret") => Ok(()),
                _ => Err((
                    "not authorized".to_owned(),
                    Some(json!({ "reason": "bad token" })),
                )),
            }
        })
        .on("/admin", "ack", |_socket, args, ack| {
            if let Some(ack) = ack {
                ack.send(args)
            }
        })
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    WebSocket,
    Polling,
    Upgrade,
}

fn builder(url: String, mode: Mode) -> ClientBuilder {
    let transports = match mode {
        Mode::WebSocket => vec![Transport::WebSocket],
        Mode::Polling => vec![Transport::Polling],
        Mode::Upgrade => vec![Transport::Polling, Transport::WebSocket],
    };
    Client::builder(url).transports(transports).timeout(WAIT)
}

/// A client's event stream with deadlines.
struct Events(Pin<Box<dyn Stream<Item = Event> + Send>>);

impl Events {
    fn of(client: &AsyncClient) -> Events {
        Events(Box::pin(client.events()))
    }

    /// The next event; `None` when the stream ended; panics after `WAIT`.
    async fn next(&mut self) -> Option<Event> {
        tokio::time::timeout(WAIT, self.0.next())
            .await
            .expect("no event within the deadline")
    }

    /// The next message named `name`, skipping connection-state events.
    async fn message(&mut self, name: &str) -> (Args, Option<AckSender>) {
        loop {
            if let Some(message) = message_step(self.next().await, name, "the mock case") {
                return message;
            }
        }
    }

    /// The reason of the next disconnect, skipping errors and state changes before it.
    async fn disconnect(&mut self) -> DisconnectReason {
        loop {
            if let Some(reason) = disconnect_step(self.next().await) {
                return reason;
            }
        }
    }
}

/// Connects in `mode` and makes sure the client ends up on the mode's transport (for an
/// upgrade: waits for the change to WebSocket).
async fn connect(server: &MockServer, mode: Mode) -> AsyncClient {
    let client = builder(server.url(), mode).connect_async().await.unwrap();
    match mode {
        Mode::WebSocket => assert_eq!(client.transport(), Transport::WebSocket),
        Mode::Polling => assert_eq!(client.transport(), Transport::Polling),
        Mode::Upgrade => {
            if client.transport() == Transport::Polling {
                let mut events = Events::of(&client);
                while !upgrade_step(events.next().await) {}
            }
            assert_eq!(client.transport(), Transport::WebSocket);
        }
    }
    client
}

async fn connect_and_echo(mode: Mode) {
    let server = mock().start().await.unwrap();
    let client = connect(&server, mode).await;
    client
        .emit("echo", ("hi", 42, json!({"nested": [1, 2]})))
        .await
        .unwrap();
    let (args, ack) = Events::of(&client).message("echo").await;
    assert!(ack.is_none());
    assert_eq!(
        args.parse::<(String, i64, Value)>().unwrap(),
        ("hi".to_owned(), 42, json!({"nested": [1, 2]}))
    );
    // What the server recorded, on the transport the client says it uses.
    let received = server.wait_for_events(1, WAIT).await.unwrap();
    assert_eq!(received[0].event, "echo");
    assert_eq!(received[0].ack_id, None);
    assert_eq!(received[0].transport, client.transport());
}

async fn client_ack(mode: Mode) {
    let server = mock().start().await.unwrap();
    let client = connect(&server, mode).await;
    for i in 0..5 {
        let reply = client.emit_with_ack("ack", (i, "two"), WAIT).await.unwrap();
        assert_eq!(
            reply.parse::<(i32, String)>().unwrap(),
            (i, "two".to_owned())
        );
    }
    let received = server.wait_for_events(5, WAIT).await.unwrap();
    assert!(received.iter().all(|e| e.ack_id.is_some()));
}

async fn server_ack(mode: Mode) {
    let server = mock().start().await.unwrap();
    let client = connect(&server, mode).await;
    let socket = server.wait_for_sockets(1, WAIT).await.unwrap().remove(0);
    let question = Args::from_serialize(&("question", 1)).unwrap();
    let answer = async {
        let (args, ack) = Events::of(&client).message("need-ack").await;
        assert_eq!(
            args.parse::<(String, i32)>().unwrap(),
            ("question".to_owned(), 1)
        );
        ack.expect("the server asked for an ack")
            .send(&("answer", 7))
            .unwrap();
    };
    let (reply, ()) = tokio::join!(socket.emit_with_ack("need-ack", question, WAIT), answer);
    assert_eq!(
        reply.unwrap().parse::<(String, i32)>().unwrap(),
        ("answer".to_owned(), 7)
    );
}

async fn binary_both_ways(mode: Mode) {
    let server = mock().start().await.unwrap();
    let client = connect(&server, mode).await;
    // Client → server in an event, server → client in the ack.
    let reply = client.emit_with_ack("ack", files(), WAIT).await.unwrap();
    assert_eq!(reply.attachments().len(), 2);
    assert_eq!(reply.get::<Files>(0).unwrap(), files());
    let received = server.wait_for_events(1, WAIT).await.unwrap();
    assert_eq!(received[0].args.get::<Files>(0).unwrap(), files());
    // Server → client in an event.
    client
        .emit("echo", (files(), Bytes::from_static(b"top")))
        .await
        .unwrap();
    let (args, _) = Events::of(&client).message("echo").await;
    assert_eq!(args.get::<Files>(0).unwrap(), files());
    assert_eq!(args.binary(1).unwrap().as_ref(), b"top");
}

async fn namespace_guard_accepts(mode: Mode) {
    let server = mock().start().await.unwrap();
    let client = connect(&server, mode).await;
    let admin = client
        .socket("/admin")
        .auth(json!({"token": "secret"}))
        .connect_async()
        .await
        .expect("/admin accepts the right token");
    assert_eq!(admin.namespace(), "/admin");
    let reply = admin.emit_with_ack("ack", "on admin", WAIT).await.unwrap();
    assert_eq!(reply.get::<String>(0).unwrap(), "on admin");
    let sockets = server.wait_for_sockets(2, WAIT).await.unwrap();
    assert_eq!(sockets[1].namespace(), "/admin");
    assert_eq!(sockets[1].auth(), Some(&json!({"token": "secret"})));
    // One connection carries both namespaces.
    assert_eq!(sockets[0].connection_id(), sockets[1].connection_id());
    let reply = client.emit_with_ack("ack", "on main", WAIT).await.unwrap();
    assert_eq!(reply.get::<String>(0).unwrap(), "on main");
}

async fn namespace_guard_refuses(mode: Mode) {
    let server = mock().start().await.unwrap();
    let client = connect(&server, mode).await;
    let refused = client
        .socket("/admin")
        .auth(json!({"token": "wrong"}))
        .connect_async()
        .await;
    assert_admin_refused(refused, Some(json!({"reason": "bad token"})));
    // The refusal does not hurt the main namespace.
    let reply = client.emit_with_ack("ack", 1, WAIT).await.unwrap();
    assert_eq!(reply.get::<i32>(0).unwrap(), 1);
}

async fn server_disconnect(mode: Mode) {
    let server = mock().start().await.unwrap();
    let client = connect(&server, mode).await;
    let socket = server.wait_for_sockets(1, WAIT).await.unwrap().remove(0);
    socket.disconnect();
    assert_eq!(
        Events::of(&client).disconnect().await,
        DisconnectReason::IoServerDisconnect
    );
    assert!(matches!(
        client.emit("echo", 1).await,
        Err(Error::Disconnected(_))
    ));
    assert_eq!(
        socket.disconnect_reason().as_deref(),
        Some("server namespace disconnect")
    );
}

async fn client_disconnect(mode: Mode) {
    let server = mock().start().await.unwrap();
    let client = connect(&server, mode).await;
    let socket = server.wait_for_sockets(1, WAIT).await.unwrap().remove(0);
    client.disconnect();
    socket.wait_disconnected(WAIT).await.unwrap();
    let reason = socket.disconnect_reason();
    // The DISCONNECT and the close packet go out before the pending poll is dropped, on
    // every transport.
    assert_eq!(reason.as_deref(), Some("client namespace disconnect"));
    let mut events = Events::of(&client);
    assert_eq!(
        events.disconnect().await,
        DisconnectReason::IoClientDisconnect
    );
    assert!(events.next().await.is_none(), "the event stream ends");
}

async fn heartbeats_survive(mode: Mode) {
    let server = mock().start().await.unwrap();
    let client = connect(&server, mode).await;
    let socket = server.wait_for_sockets(1, WAIT).await.unwrap().remove(0);
    // 2 s are 20 heartbeats at pingInterval 100 ms: nothing may happen on either side.
    let mut events = Events::of(&client);
    let quiet = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match events.0.next().await {
                Some(Event::Connected { .. } | Event::TransportChanged { .. }) => continue,
                other => return other,
            }
        }
    })
    .await;
    if let Ok(event) = quiet {
        panic!("the connection did not stay quiet: {event:?}");
    }
    assert!(client.is_connected());
    assert!(socket.is_connected());
    let reply = client
        .emit_with_ack("ack", "still here", WAIT)
        .await
        .unwrap();
    assert_eq!(reply.get::<String>(0).unwrap(), "still here");
}

async fn stop_pings_is_a_ping_timeout(mode: Mode) {
    let server = mock().start().await.unwrap();
    let client = connect(&server, mode).await;
    let stopped = Instant::now();
    server.faults().stop_pings(true);
    let reason = Events::of(&client).disconnect().await;
    let noticed = stopped.elapsed();
    assert_eq!(reason, DisconnectReason::PingTimeout);
    assert!(
        noticed <= PING_INTERVAL + PING_TIMEOUT + Duration::from_secs(1),
        "ping timeout noticed after {noticed:?}"
    );
}

async fn drop_all_connections(mode: Mode) {
    let server = mock().start().await.unwrap();
    let client = connect(&server, mode).await;
    if mode == Mode::Polling {
        return polling_survives_or_reports_dropped_connections(&server, client).await;
    }
    server.faults().drop_all_connections();
    let reason = Events::of(&client).disconnect().await;
    assert!(
        matches!(
            reason,
            DisconnectReason::TransportClose | DisconnectReason::TransportError
        ),
        "{reason}"
    );
    assert!(!client.is_connected());
}

/// Over polling the reset may find a GET in flight (the session is lost: the client hears a
/// transport reason) or only idle kept-alive connections, between two polls: the next request
/// on one is sent again on a new connection and the session carries on, as it should. Which
/// one happens depends on timing; either way nothing hangs and nothing is silent.
async fn polling_survives_or_reports_dropped_connections(server: &MockServer, client: AsyncClient) {
    drop(client);
    let client = builder(server.url(), Mode::Polling)
        .reconnection(false)
        .connect_async()
        .await
        .unwrap();
    let mut events = Events::of(&client);
    server.faults().drop_all_connections();
    match client.emit_with_ack("ack", "after", WAIT).await {
        Ok(reply) => {
            assert_eq!(reply.get::<String>(0).unwrap(), "after");
            assert!(client.is_connected());
        }
        Err(error) => {
            let reason = events.disconnect().await;
            assert!(
                matches!(
                    reason,
                    DisconnectReason::TransportClose | DisconnectReason::TransportError
                ),
                "{reason} ({error})"
            );
            assert!(!client.is_connected());
        }
    }
}

async fn restart(mode: Mode) {
    let server = mock().start().await.unwrap();
    let client = connect(&server, mode).await;
    server.restart().await.unwrap();
    let reason = Events::of(&client).disconnect().await;
    assert!(
        matches!(
            reason,
            DisconnectReason::TransportClose | DisconnectReason::TransportError
        ),
        "{reason}"
    );
    // Same URL, new server process as far as the client can tell.
    let again = connect(&server, mode).await;
    let reply = again.emit_with_ack("ack", "again", WAIT).await.unwrap();
    assert_eq!(reply.get::<String>(0).unwrap(), "again");
    let sockets = server.wait_for_sockets(2, WAIT).await.unwrap();
    assert_ne!(sockets[0].connection_id(), sockets[1].connection_id());
}

macro_rules! matrix {
    ($name:ident, $mode:expr) => {
        mod $name {
            use super::*;
            #[tokio::test]
            async fn connect_and_echo() {
                super::connect_and_echo($mode).await
            }
            #[tokio::test]
            async fn client_ack() {
                super::client_ack($mode).await
            }
            #[tokio::test]
            async fn server_ack() {
                super::server_ack($mode).await
            }
            #[tokio::test]
            async fn binary_both_ways() {
                super::binary_both_ways($mode).await
            }
            #[tokio::test]
            async fn namespace_guard_accepts() {
                super::namespace_guard_accepts($mode).await
            }
            #[tokio::test]
            async fn namespace_guard_refuses() {
                super::namespace_guard_refuses($mode).await
            }
            #[tokio::test]
            async fn server_disconnect() {
                super::server_disconnect($mode).await
            }
            #[tokio::test]
            async fn client_disconnect() {
                super::client_disconnect($mode).await
            }
            #[tokio::test]
            async fn heartbeats_survive() {
                super::heartbeats_survive($mode).await
            }
            #[tokio::test]
            async fn stop_pings_is_a_ping_timeout() {
                super::stop_pings_is_a_ping_timeout($mode).await
            }
            #[tokio::test]
            async fn drop_all_connections() {
                super::drop_all_connections($mode).await
            }
            #[tokio::test]
            async fn restart() {
                super::restart($mode).await
            }
        }
    };
}

matrix!(websocket, Mode::WebSocket);
matrix!(polling, Mode::Polling);
matrix!(upgrade, Mode::Upgrade);

// Fault switches on the way in, as the client sees them. The blocking client with a
// background server: the same faults, seen from code without async.

/// A server for the fault tests, on its own thread.
fn background() -> MockServer {
    mock().start_background().unwrap()
}

/// The WebSocket attempt of a connect report: failed, with `needle` in its description.
fn assert_websocket_failed(client: &Client, needle: &str) {
    let report = client.connect_report();
    assert_eq!(report.len(), 2, "{report:?}");
    assert_eq!(report[0].transport, Transport::WebSocket);
    let why = report[0].outcome.as_ref().unwrap_err();
    assert!(why.contains(needle), "{why:?} does not mention {needle:?}");
    assert_eq!(report[1].transport, Transport::Polling);
    assert!(report[1].outcome.is_ok(), "{report:?}");
}

/// A client on polling must still do everything.
fn assert_works_over_polling(client: &Client) {
    assert_eq!(client.transport(), Transport::Polling);
    let reply = client.emit_with_ack("ack", "over polling", WAIT).unwrap();
    assert_eq!(reply.get::<String>(0).unwrap(), "over polling");
}

fn websocket_only(server: &MockServer) -> Result<Client, Error> {
    Client::builder(server.url())
        .transports([Transport::WebSocket])
        .timeout(WAIT)
        .connect()
}

/// WebSocket with polling as the fallback (the default order, streaming aside, is covered by
/// tests/getting_through_mock.rs).
fn websocket_then_polling(server: &MockServer) -> Client {
    Client::builder(server.url())
        .transports([Transport::WebSocket, Transport::Polling])
        .remember_transport(false)
        .timeout(WAIT)
        .connect()
        .unwrap()
}

#[test]
fn reject_websocket_403_fails_a_websocket_only_client() {
    let server = background();
    server.faults().reject_websocket(Some(403));
    match websocket_only(&server)
        .as_ref()
        .map_err(Error::last_failure)
    {
        Err(Error::Handshake {
            transport: Transport::WebSocket,
            status: Some(403),
            ..
        }) => {}
        other => panic!("expected a 403 on the WebSocket handshake, got {other:?}"),
    }
    // Turning the switch off lets WebSocket through again.
    server.faults().reject_websocket(None);
    let client = websocket_only(&server).unwrap();
    assert_eq!(client.transport(), Transport::WebSocket);
}

#[test]
fn reject_websocket_403_falls_back_to_polling() {
    let server = background();
    server.faults().reject_websocket(Some(403));
    let client = websocket_then_polling(&server);
    assert_websocket_failed(&client, "403");
    assert_works_over_polling(&client);
}

#[test]
fn websocket_no_upgrade_fails_with_status_200() {
    let server = background();
    server.faults().websocket_no_upgrade(true);
    match websocket_only(&server)
        .as_ref()
        .map_err(Error::last_failure)
    {
        Err(Error::Handshake {
            transport: Transport::WebSocket,
            status: Some(200),
            ..
        }) => {}
        other => panic!("expected a 200 instead of 101, got {other:?}"),
    }
}

#[test]
fn websocket_no_upgrade_falls_back_to_polling() {
    let server = background();
    server.faults().websocket_no_upgrade(true);
    let client = websocket_then_polling(&server);
    assert_websocket_failed(&client, "200");
    assert_works_over_polling(&client);
}

#[test]
fn reset_on_upgrade_fails_the_handshake() {
    let server = background();
    server.faults().reset_on_upgrade(true);
    match websocket_only(&server)
        .as_ref()
        .map_err(Error::last_failure)
    {
        // A reset carries no HTTP answer, so no status.
        Err(Error::Handshake {
            transport: Transport::WebSocket,
            status: None,
            ..
        }) => {}
        other => panic!("expected a failed handshake without status, got {other:?}"),
    }
}

#[test]
fn reset_on_upgrade_falls_back_to_polling() {
    let server = background();
    server.faults().reset_on_upgrade(true);
    let client = websocket_then_polling(&server);
    assert_websocket_failed(&client, "websocket");
    assert_works_over_polling(&client);
}

#[test]
fn black_hole_websocket_fails_within_the_timeout() {
    let server = background();
    server.faults().black_hole_websocket(true);
    let timeout = Duration::from_millis(500);
    let started = Instant::now();
    let result = Client::builder(server.url())
        .transports([Transport::WebSocket])
        .timeout(timeout)
        .connect();
    let took = started.elapsed();
    assert!(
        matches!(
            result.as_ref().map_err(Error::last_failure),
            Err(Error::ConnectTimeout(_)
                | Error::Handshake {
                    transport: Transport::WebSocket,
                    ..
                })
        ),
        "{result:?}"
    );
    assert!(
        took >= timeout,
        "gave up after {took:?}, before the timeout"
    );
    assert!(
        took <= timeout + Duration::from_secs(1),
        "gave up only after {took:?}"
    );
}

#[test]
fn delay_slows_the_connect_but_it_works() {
    let server = background();
    let delay = Duration::from_millis(200);
    server.faults().delay(delay);
    for mode in [Mode::WebSocket, Mode::Polling] {
        let started = Instant::now();
        let client = builder(server.url(), mode).connect().unwrap();
        let took = started.elapsed();
        assert!(took >= delay, "{mode:?} connected in {took:?}");
        let reply = client.emit_with_ack("ack", "slow", WAIT).unwrap();
        assert_eq!(reply.get::<String>(0).unwrap(), "slow");
    }
}

#[test]
fn refuse_connections_fails_the_connect() {
    let server = background();
    server.faults().refuse_connections(true);
    for mode in [Mode::WebSocket, Mode::Polling, Mode::Upgrade] {
        let started = Instant::now();
        let result = builder(server.url(), mode).connect();
        assert!(result.is_err(), "{mode:?}: {result:?}");
        assert!(started.elapsed() < WAIT, "{mode:?}: a reset must fail fast");
    }
    let result = Client::builder(server.url()).timeout(WAIT).connect();
    assert!(result.is_err(), "default transports: {result:?}");
    // The listener stayed up: clearing the switch lets clients in again.
    server.faults().clear();
    let client = websocket_then_polling(&server);
    assert_eq!(client.transport(), Transport::WebSocket);
}

#[test]
fn restart_disconnects_a_blocking_client_and_a_new_one_connects() {
    let server = background();
    let client = websocket_then_polling(&server);
    server.restart_blocking().unwrap();
    let mut events = client.events();
    let reason = loop {
        match events.next_timeout(WAIT) {
            Some(Event::Disconnected { reason, .. }) => break reason,
            Some(Event::Error(_) | Event::Connected { .. }) => continue,
            other => panic!("waiting for a disconnect, got {other:?}"),
        }
    };
    assert!(
        matches!(
            reason,
            DisconnectReason::TransportClose | DisconnectReason::TransportError
        ),
        "{reason}"
    );
    let again = websocket_then_polling(&server);
    let reply = again.emit_with_ack("ack", "after restart", WAIT).unwrap();
    assert_eq!(reply.get::<String>(0).unwrap(), "after restart");
}
