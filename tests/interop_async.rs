//! The behaviour matrix of `tests/interop_blocking.rs`, driven through the async client against
//! the same real socket.io servers (Node socket.io 4.8 and 2.5), over every transport set-up.
//! Also: the blocking client called from inside a tokio runtime, and dropping either client
//! without blocking.

mod support;

use std::pin::pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde_json::json;
use sio_client::{AckSender, Args, AsyncClient, Client, DisconnectReason, Error, Event, Transport};
use support::events::{assert_admin_refused, disconnect_step, message_step, upgrade_step};
use support::fixtures::{files, Files};
use support::matrix::{builder, next_message_for, shared_server, Mode, WAIT};
use support::{NodeOptions, NodeServer, SioVersion};

/// Starting Node blocks for a moment; off the runtime's workers it does not stall other tasks.
async fn server_url(version: SioVersion) -> String {
    tokio::task::spawn_blocking(move || shared_server(version).url())
        .await
        .expect("server start")
}

async fn connect(version: SioVersion, mode: Mode) -> AsyncClient {
    let client = builder(server_url(version).await, version, mode)
        .connect_async()
        .await
        .expect("connect");
    check_transport(&client, mode).await;
    client
}

/// The next event within `timeout`; `None` on timeout or at the end of the stream.
async fn next_event(
    events: &mut (impl Stream<Item = Event> + Unpin),
    timeout: Duration,
) -> Option<Event> {
    tokio::time::timeout(timeout, events.next())
        .await
        .ok()
        .flatten()
}

/// Asserts the transport the mode must end up on; for an upgrade, waits for the change event.
async fn check_transport(client: &AsyncClient, mode: Mode) {
    match mode {
        Mode::WebSocket => assert_eq!(client.transport(), Transport::WebSocket),
        Mode::Polling => assert_eq!(client.transport(), Transport::Polling),
        Mode::Upgrade => {
            if client.transport() == Transport::Polling {
                let mut events = pin!(client.events());
                while !upgrade_step(next_event(&mut events, WAIT).await) {}
            }
            assert_eq!(client.transport(), Transport::WebSocket);
        }
    }
}

/// Next message event named `name`, skipping connection-state events.
async fn next_message(client: &AsyncClient, name: &str) -> (Args, Option<AckSender>) {
    let mut events = pin!(client.events());
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = next_event(&mut events, left).await;
        if let Some(message) = message_step(event, name, "the async matrix case") {
            return message;
        }
    }
}

async fn next_disconnect(client: &AsyncClient) -> DisconnectReason {
    let mut events = pin!(client.events());
    loop {
        if let Some(reason) = disconnect_step(next_event(&mut events, WAIT).await) {
            return reason;
        }
    }
}

async fn echo(version: SioVersion, mode: Mode) {
    let client = connect(version, mode).await;
    client
        .emit("echo", ("hi", 42, json!({"nested": [1, 2]})))
        .await
        .unwrap();
    let (args, ack) = next_message(&client, "echo").await;
    assert!(ack.is_none());
    assert_eq!(args.len(), 3);
    assert_eq!(args.get::<String>(0).unwrap(), "hi");
    assert_eq!(args.get::<i64>(1).unwrap(), 42);
    assert_eq!(
        args.get::<serde_json::Value>(2).unwrap(),
        json!({"nested": [1, 2]})
    );
}

async fn ack_requested_by_client(version: SioVersion, mode: Mode) {
    let client = connect(version, mode).await;
    for i in 0..5 {
        let reply = client.emit_with_ack("ack", (i, "two"), WAIT).await.unwrap();
        assert_eq!(
            reply.parse::<(i32, String)>().unwrap(),
            (i, "two".to_string())
        );
    }
    // Several acks in flight at once come back to the right callers.
    let replies =
        futures_util::future::join_all((0..5).map(|i| client.emit_with_ack("ack", i, WAIT))).await;
    for (i, reply) in replies.into_iter().enumerate() {
        assert_eq!(reply.unwrap().get::<usize>(0).unwrap(), i);
    }
}

async fn ack_requested_by_server(version: SioVersion, mode: Mode) {
    let client = connect(version, mode).await;
    client.emit("request-ack", "question").await.unwrap();
    let (args, ack) = next_message(&client, "need-ack").await;
    assert_eq!(args.get::<String>(0).unwrap(), "question");
    ack.expect("the server asked for an ack")
        .send(&("answer", 7))
        .unwrap();
    let (args, _) = next_message(&client, "got-ack").await;
    assert_eq!(
        args.parse::<(String, i32)>().unwrap(),
        ("answer".to_string(), 7)
    );
}

async fn binary_both_ways(version: SioVersion, mode: Mode) {
    let client = connect(version, mode).await;
    // Client → server in an event, server → client in the ack.
    let reply = client.emit_with_ack("ack", files(), WAIT).await.unwrap();
    assert_eq!(reply.attachments().len(), 2);
    assert_eq!(reply.get::<Files>(0).unwrap(), files());
    // Server → client in an event.
    client
        .emit("echo", (files(), Bytes::from_static(b"top")))
        .await
        .unwrap();
    let (args, _) = next_message(&client, "echo").await;
    assert_eq!(args.get::<Files>(0).unwrap(), files());
    assert_eq!(args.binary(1).unwrap().as_ref(), b"top");
}

async fn namespace_auth_accepted(version: SioVersion, mode: Mode) {
    let client = connect(version, mode).await;
    let admin = client
        .socket("/admin")
        .auth(json!({"token": "secret"}))
        .connect_async()
        .await
        .expect("/admin accepts the right token");
    assert_eq!(admin.namespace(), "/admin");
    let reply = admin.emit_with_ack("ack", "on admin", WAIT).await.unwrap();
    assert_eq!(reply.get::<String>(0).unwrap(), "on admin");
    // The main namespace still works beside it.
    let reply = client.emit_with_ack("ack", "on main", WAIT).await.unwrap();
    assert_eq!(reply.get::<String>(0).unwrap(), "on main");
}

async fn namespace_auth_refused(version: SioVersion, mode: Mode) {
    let client = connect(version, mode).await;
    let refused = client
        .socket("/admin")
        .auth(json!({"token": "wrong"}))
        .connect_async()
        .await;
    let data = match version {
        SioVersion::V4 => Some(json!({"reason": "bad token"})),
        SioVersion::V2 => None,
    };
    assert_admin_refused(refused, data);
    // The refusal does not hurt the main namespace.
    let reply = client.emit_with_ack("ack", 1, WAIT).await.unwrap();
    assert_eq!(reply.get::<i32>(0).unwrap(), 1);
}

async fn server_disconnect(version: SioVersion, mode: Mode) {
    let client = connect(version, mode).await;
    client.emit("disconnect-me", ()).await.unwrap();
    assert_eq!(
        next_disconnect(&client).await,
        DisconnectReason::IoServerDisconnect
    );
    assert!(matches!(
        client.emit("echo", 1).await,
        Err(Error::Disconnected(_))
    ));
}

async fn client_disconnect(version: SioVersion, mode: Mode) {
    let client = connect(version, mode).await;
    client.disconnect();
    assert_eq!(
        next_disconnect(&client).await,
        DisconnectReason::IoClientDisconnect
    );
    let mut events = pin!(client.events());
    assert!(
        tokio::time::timeout(WAIT, events.next())
            .await
            .expect("the event stream ends")
            .is_none(),
        "the event stream ends"
    );
    assert!(matches!(
        client.emit("echo", 1).await,
        Err(Error::Disconnected(_))
    ));
}

async fn heartbeats_survive(version: SioVersion, mode: Mode) {
    let client = connect(version, mode).await;
    // pingInterval is 200 ms: 3 s are 15 heartbeats. Nothing may happen in that time.
    let mut events = pin!(client.events());
    let until = Instant::now() + Duration::from_secs(3);
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.next()).await {
            Err(_) => break,
            Ok(Some(Event::Connected { .. } | Event::TransportChanged { .. })) => continue,
            Ok(other) => panic!("unexpected event {other:?}"),
        }
    }
    assert!(client.is_connected());
    let reply = client
        .emit_with_ack("ack", "still here", WAIT)
        .await
        .unwrap();
    assert_eq!(reply.get::<String>(0).unwrap(), "still here");
}

async fn server_killed(version: SioVersion, mode: Mode) {
    let options = NodeOptions {
        ping_interval_ms: Some(200),
        ping_timeout_ms: Some(200),
        ..NodeOptions::default()
    };
    let mut server = tokio::task::spawn_blocking(move || NodeServer::start(version, options))
        .await
        .unwrap();
    let client = builder(server.url(), version, mode)
        .connect_async()
        .await
        .unwrap();
    check_transport(&client, mode).await;
    let killed = Instant::now();
    let server = tokio::task::spawn_blocking(move || {
        server.kill();
        server
    })
    .await
    .unwrap();
    let reason = next_disconnect(&client).await;
    let noticed = killed.elapsed();
    assert!(
        noticed <= Duration::from_millis(200 + 200 + 1000),
        "noticed after {noticed:?} ({reason})"
    );
    assert!(matches!(
        reason,
        DisconnectReason::TransportClose
            | DisconnectReason::TransportError
            | DisconnectReason::PingTimeout
    ));
    drop(server);
}

macro_rules! matrix {
    ($name:ident, $version:expr, $mode:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn echo() {
                super::echo($version, $mode).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ack_requested_by_client() {
                super::ack_requested_by_client($version, $mode).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ack_requested_by_server() {
                super::ack_requested_by_server($version, $mode).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn binary_both_ways() {
                super::binary_both_ways($version, $mode).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn namespace_auth_accepted() {
                super::namespace_auth_accepted($version, $mode).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn namespace_auth_refused() {
                super::namespace_auth_refused($version, $mode).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn server_disconnect() {
                super::server_disconnect($version, $mode).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn client_disconnect() {
                super::client_disconnect($version, $mode).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn heartbeats_survive() {
                super::heartbeats_survive($version, $mode).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn server_killed() {
                super::server_killed($version, $mode).await
            }
        }
    };
}

matrix!(v4_websocket, SioVersion::V4, Mode::WebSocket);
matrix!(v4_polling, SioVersion::V4, Mode::Polling);
matrix!(v4_upgrade, SioVersion::V4, Mode::Upgrade);
matrix!(v2_websocket, SioVersion::V2, Mode::WebSocket);
matrix!(v2_polling, SioVersion::V2, Mode::Polling);

/// The blocking client called straight from async code, on a runtime worker: its own runtime
/// runs the connection, so nothing nests and nothing panics with "Cannot start a runtime from
/// within a runtime".
async fn blocking_client_in_runtime(mode: Mode) {
    let url = server_url(SioVersion::V4).await;
    let client = Client::builder(url)
        .transports(mode.transports())
        .timeout(WAIT)
        .connect()
        .expect("blocking connect inside a runtime");
    let reply = client
        .emit_with_ack("ack", ("from", "inside"), WAIT)
        .expect("blocking ack inside a runtime");
    assert_eq!(
        reply.parse::<(String, String)>().unwrap(),
        ("from".to_string(), "inside".to_string())
    );
    client.emit("echo", "blocking").unwrap();
    let (args, _) = next_message_for(&client, "echo", "the blocking client in a runtime");
    assert_eq!(args.get::<String>(0).unwrap(), "blocking");
    // Joining a namespace blocks as well.
    let admin = client
        .socket("/admin")
        .auth(json!({"token": "secret"}))
        .connect()
        .expect("blocking namespace join inside a runtime");
    let reply = admin.emit_with_ack("ack", 5, WAIT).unwrap();
    assert_eq!(reply.get::<i32>(0).unwrap(), 5);
    // Dropping inside the runtime must not block or panic either.
    drop(admin);
    drop(client);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_client_inside_multi_thread_runtime() {
    blocking_client_in_runtime(Mode::WebSocket).await;
    blocking_client_in_runtime(Mode::Polling).await;
}

#[tokio::test(flavor = "current_thread")]
async fn blocking_client_inside_current_thread_runtime() {
    // The one runtime thread is blocked while the client waits: only a connection that runs
    // elsewhere can make progress.
    blocking_client_in_runtime(Mode::WebSocket).await;
    blocking_client_in_runtime(Mode::Upgrade).await;
}

/// Waits until the server's log shows `needle`; false after `timeout`.
async fn server_logged(server: &NodeServer, needle: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if server.stderr().contains(needle) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The id the server gave the connection, from its `connect / <id>` log line.
fn connected_ids(server: &NodeServer, namespace: &str) -> Vec<String> {
    let prefix = format!("connect {namespace} ");
    server
        .stderr()
        .lines()
        .filter_map(|line| line.split_once("] ").map(|(_, rest)| rest.to_owned()))
        .filter_map(|rest| rest.strip_prefix(&prefix).map(str::to_owned))
        .collect()
}

/// Dropping the last handle returns at once (measured on another thread, so a drop that blocks
/// cannot also block the clock) and the server sees the namespace leave.
async fn drop_without_blocking(mode: Mode, blocking: bool) {
    let server = tokio::task::spawn_blocking(|| NodeServer::start_default(SioVersion::V4))
        .await
        .unwrap();
    let transports = match mode {
        Mode::WebSocket => vec![Transport::WebSocket],
        _ => vec![Transport::Polling],
    };
    let builder = Client::builder(server.url())
        .transports(transports)
        .timeout(WAIT);
    let drop_it: Box<dyn FnOnce() + Send> = if blocking {
        let client = builder.connect().expect("connect");
        client.emit_with_ack("ack", 1, WAIT).unwrap();
        Box::new(move || drop(client))
    } else {
        let client = builder.connect_async().await.expect("connect");
        client.emit_with_ack("ack", 1, WAIT).await.unwrap();
        Box::new(move || drop(client))
    };
    assert!(
        server_logged(&server, "connect / ", WAIT).await,
        "the server saw the connection: {}",
        server.stderr()
    );
    let ids = connected_ids(&server, "/");
    assert_eq!(ids.len(), 1, "one connection: {}", server.stderr());
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(1), tokio::task::spawn_blocking(drop_it))
        .await
        .expect("dropping the client blocked")
        .expect("dropping the client panicked");
    assert!(started.elapsed() < Duration::from_secs(1));
    // The namespace DISCONNECT reaches the server before the connection closes, so the
    // server's disconnect handlers get the client's reason, not a transport failure.
    let left = format!("disconnect / {} client namespace disconnect", ids[0]);
    assert!(
        server_logged(&server, &left, WAIT).await,
        "{mode:?}: the server did not see the client leave ({left}):\n{}",
        server.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_async_client_never_blocks_and_leaves_websocket() {
    drop_without_blocking(Mode::WebSocket, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_blocking_client_never_blocks_and_leaves_websocket() {
    drop_without_blocking(Mode::WebSocket, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_async_client_never_blocks_and_leaves_polling() {
    drop_without_blocking(Mode::Polling, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_blocking_client_never_blocks_and_leaves_polling() {
    drop_without_blocking(Mode::Polling, true).await;
}

/// A clone keeps the namespace: only the last handle's drop leaves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_clone_keeps_the_connection() {
    let client = connect(SioVersion::V4, Mode::WebSocket).await;
    let clone = client.clone();
    tokio::time::timeout(
        Duration::from_secs(1),
        tokio::task::spawn_blocking(move || drop(clone)),
    )
    .await
    .expect("dropping a clone blocked")
    .unwrap();
    let reply = client.emit_with_ack("ack", "kept", WAIT).await.unwrap();
    assert_eq!(reply.get::<String>(0).unwrap(), "kept");
}
