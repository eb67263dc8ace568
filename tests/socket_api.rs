//! What a socket shows and offers beyond emit and events, against the mock and real Node
//! servers: `id()` (the server's `socket.id`), `active()`, headers and query computed at every
//! (re)connect, and acknowledgements kept in flight without a thread each.

#![cfg(feature = "mock-server")]

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use sio_client::mock::MockServer;
use sio_client::{AsyncClient, Client, EngineVersion, Error, Event};
use support::matrix::{builder, shared_server, Mode};
use support::SioVersion;

const WAIT: Duration = Duration::from_secs(20);

fn mock() -> MockServer {
    MockServer::builder()
        .on("/", "ack", |_socket, args, ack| {
            if let Some(ack) = ack {
                ack.send(args);
            }
        })
        .start_background()
        .expect("mock server")
}

/// Waits until `done` holds, polling the client's state (no sleeps as synchronisation: the
/// loop waits on the events the client reports).
fn wait_for_event(client: &Client, mut done: impl FnMut(&Event) -> bool) {
    let mut events = client.events();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match events.next_timeout(left) {
            Some(event) if done(&event) => return,
            Some(_) => continue,
            None => panic!("the awaited event did not come within {WAIT:?}"),
        }
    }
}

#[test]
fn id_is_the_servers_socket_id_and_none_while_disconnected() {
    let server = mock();
    let client = Client::builder(server.url()).connect().expect("connect");
    let sockets = server.wait_for_sockets_blocking(1, WAIT).expect("socket");
    assert_eq!(client.id().as_deref(), Some(sockets[0].id()));
    assert!(client.active());
    client.disconnect();
    assert_eq!(client.id(), None);
    assert!(!client.active(), "closed by the application");
}

#[test]
fn a_reconnecting_socket_is_active_without_an_id_then_gets_its_new_one() {
    let server = mock();
    let client = Client::builder(server.url())
        .reconnection_delay(Duration::from_millis(10))
        .connect()
        .expect("connect");
    let first = server.wait_for_sockets_blocking(1, WAIT).expect("socket")[0].clone();
    first.close_connection();
    wait_for_event(&client, |e| matches!(e, Event::Reconnected { .. }));
    let second = server.wait_for_sockets_blocking(2, WAIT).expect("socket")[1].clone();
    assert_ne!(first.id(), second.id());
    assert_eq!(client.id().as_deref(), Some(second.id()));
    assert!(client.active());
}

#[test]
fn id_matches_node_socket_id_on_socketio_4_and_2() {
    for (version, protocol) in [
        (SioVersion::V4, EngineVersion::V4),
        (SioVersion::V2, EngineVersion::V3),
    ] {
        for mode in [Mode::WebSocket, Mode::Polling] {
            let client = builder(shared_server(version).url(), version, mode)
                .protocol_version(protocol)
                .connect()
                .expect("connect");
            let reply = client
                .emit_with_ack("socket-id", (), WAIT)
                .expect("socket-id");
            let server_id: String = reply.get(0).expect("a string");
            assert_eq!(client.id(), Some(server_id), "{version:?} {mode:?}");
        }
    }
}

#[test]
fn headers_fn_and_query_fn_are_computed_again_for_a_reconnection() {
    let server = mock();
    let headers_n = Arc::new(AtomicU64::new(0));
    let query_n = Arc::new(AtomicU64::new(0));
    let client = Client::builder(server.url())
        .extra_header("x-fixed", "always")
        .headers_fn(move || {
            let n = headers_n.fetch_add(1, Ordering::SeqCst) + 1;
            vec![("authorization".into(), format!("Bearer token-{n}"))]
        })
        .query_fn(move || {
            let n = query_n.fetch_add(1, Ordering::SeqCst) + 1;
            vec![("gen".into(), n.to_string())]
        })
        .transports([sio_client::Transport::Polling])
        .reconnection_delay(Duration::from_millis(10))
        .connect()
        .expect("connect");
    let first = server.wait_for_sockets_blocking(1, WAIT).expect("socket")[0].clone();
    assert_eq!(first.header("authorization"), Some("Bearer token-1"));
    assert_eq!(first.header("x-fixed"), Some("always"));
    assert_eq!(first.query().get("gen").map(String::as_str), Some("1"));
    first.close_connection();
    wait_for_event(&client, |e| matches!(e, Event::Reconnected { .. }));
    let second = server.wait_for_sockets_blocking(2, WAIT).expect("socket")[1].clone();
    assert_eq!(second.header("authorization"), Some("Bearer token-2"));
    assert_eq!(second.header("x-fixed"), Some("always"));
    assert_eq!(second.query().get("gen").map(String::as_str), Some("2"));
}

#[test]
fn headers_fn_refreshes_the_websocket_upgrade_too() {
    let server = mock();
    let n = Arc::new(AtomicU64::new(0));
    let counter = n.clone();
    let client = Client::builder(server.url())
        .headers_fn(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            vec![("x-token".into(), format!("t{n}"))]
        })
        .transports([sio_client::Transport::WebSocket])
        .connect()
        .expect("connect");
    let socket = server.wait_for_sockets_blocking(1, WAIT).expect("socket")[0].clone();
    assert_eq!(socket.header("x-token"), Some("t1"));
    assert!(client.is_connected());
}

/// One thread keeps 64 acknowledgements in flight and collects them; each answer belongs to
/// its own emit.
fn sixty_four_in_flight(client: &Client) {
    let handles: Vec<_> = (0..64u64)
        .map(|i| client.emit_with_ack_handle("ack", i, WAIT).expect("emit"))
        .collect();
    for (i, handle) in handles.into_iter().enumerate() {
        let answer = handle.wait().expect("acknowledged");
        assert_eq!(answer.get::<u64>(0).unwrap(), i as u64);
    }
}

#[test]
fn one_thread_keeps_64_acks_in_flight_against_the_mock_and_node() {
    let server = mock();
    let client = Client::builder(server.url()).connect().expect("connect");
    sixty_four_in_flight(&client);
    for mode in [Mode::WebSocket, Mode::Polling] {
        let client = builder(shared_server(SioVersion::V4).url(), SioVersion::V4, mode)
            .connect()
            .expect("connect");
        sixty_four_in_flight(&client);
    }
}

#[test]
fn an_ack_handle_can_be_polled_and_times_out_like_emit_with_ack() {
    let server = MockServer::builder().start_background().expect("mock");
    let client = Client::builder(server.url()).connect().expect("connect");
    // No handler on the server: the ack never comes.
    let mut handle = client
        .emit_with_ack_handle("nobody", (), Duration::from_millis(200))
        .expect("emit");
    assert!(handle.try_take().is_none(), "not answered yet");
    assert!(matches!(handle.wait(), Err(Error::AckTimeout(_))));
}

#[test]
fn emit_with_ack_callback_delivers_every_answer_once() {
    let server = mock();
    let client = Client::builder(server.url()).connect().expect("connect");
    let (tx, rx) = mpsc::channel();
    for i in 0..32u64 {
        let tx = tx.clone();
        client
            .emit_with_ack_callback("ack", i, WAIT, move |answer| {
                let _ = tx.send(answer.map(|a| a.get::<u64>(0).unwrap()));
            })
            .expect("emit");
    }
    let mut seen = HashSet::new();
    for _ in 0..32 {
        let n = rx
            .recv_timeout(WAIT)
            .expect("a callback")
            .expect("acknowledged");
        assert!(seen.insert(n), "{n} answered twice");
    }
    assert_eq!(seen.len(), 32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_ack_handles_are_futures() {
    let server = MockServer::builder()
        .on("/", "ack", |_socket, args, ack| {
            if let Some(ack) = ack {
                ack.send(args);
            }
        })
        .start()
        .await
        .expect("mock");
    let client = AsyncClient::builder(server.url())
        .connect_async()
        .await
        .expect("connect");
    let handles: Vec<_> = (0..16u64)
        .map(|i| client.emit_with_ack_handle("ack", i, WAIT).expect("emit"))
        .collect();
    for (i, handle) in handles.into_iter().enumerate() {
        assert_eq!(handle.await.expect("ack").get::<u64>(0).unwrap(), i as u64);
    }
    assert!(client.id().is_some());
}

#[test]
fn a_live_events_reader_does_not_keep_the_namespace_joined() {
    let server = mock();
    let client = Client::builder(server.url()).connect().expect("connect");
    let socket = server.wait_for_sockets_blocking(1, WAIT).expect("socket")[0].clone();
    let events = client.events();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Ends when the namespace is gone: the iterator returns None.
        let n = events.count();
        let _ = tx.send(n);
    });
    drop(client);
    socket
        .wait_disconnected_blocking(WAIT)
        .expect("the last Client dropped: the namespace is left");
    rx.recv_timeout(WAIT).expect("the reader ended");
}

#[test]
fn a_handler_holding_a_weak_client_replies_and_does_not_keep_it_joined() {
    let server = MockServer::builder().start_background().expect("mock");
    let me = Arc::new(std::sync::OnceLock::<sio_client::WeakClient>::new());
    let handle = me.clone();
    let client = Client::builder(server.url())
        .on("ping", move |_args, _ack| {
            if let Some(client) = handle.get().and_then(sio_client::WeakClient::upgrade) {
                client.emit("pong", ()).expect("emit from the handler");
            }
        })
        .connect()
        .expect("connect");
    me.set(client.downgrade()).expect("set once");
    let socket = server.wait_for_sockets_blocking(1, WAIT).expect("socket")[0].clone();
    socket.emit("ping", sio_client::Args::new());
    let received = server
        .wait_for_events_blocking(1, WAIT)
        .expect("the handler replied through its weak client");
    assert_eq!(received[0].event, "pong");
    drop(client);
    socket
        .wait_disconnected_blocking(WAIT)
        .expect("the handler's weak client does not keep the namespace");
    assert!(me.get().unwrap().upgrade().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_auth_provider_is_asked_again_for_a_reconnection() {
    let server = MockServer::builder().start().await.expect("mock");
    let n = Arc::new(AtomicU64::new(0));
    let counter = n.clone();
    let client = AsyncClient::builder(server.url())
        .auth_async(move || {
            let counter = counter.clone();
            async move {
                // A token fetched without blocking a runtime thread.
                tokio::task::yield_now().await;
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                serde_json::json!({ "token": format!("token-{n}") })
            }
        })
        .reconnection_delay(Duration::from_millis(10))
        .connect_async()
        .await
        .expect("connect");
    let first = server.wait_for_sockets(1, WAIT).await.expect("socket")[0].clone();
    assert_eq!(first.auth(), Some(&serde_json::json!({"token": "token-1"})));
    first.close_connection();
    let second = server.wait_for_sockets(2, WAIT).await.expect("socket")[1].clone();
    assert_eq!(
        second.auth(),
        Some(&serde_json::json!({"token": "token-2"}))
    );
    assert!(client.active());
}

#[test]
fn an_async_auth_provider_reaches_node() {
    let client = builder(
        shared_server(SioVersion::V4).url(),
        SioVersion::V4,
        Mode::WebSocket,
    )
    .namespace("/admin")
    .auth_async(|| async { serde_json::json!({ "token": "secret" }) })
    .connect();
    // The Node server's /admin namespace refuses a wrong token; the right one connects.
    assert!(client.is_ok(), "{:?}", client.err());
    let refused = builder(
        shared_server(SioVersion::V4).url(),
        SioVersion::V4,
        Mode::WebSocket,
    )
    .namespace("/admin")
    .auth_async(|| async { serde_json::json!({ "token": "wrong" }) })
    .connect();
    assert!(
        matches!(refused, Err(Error::ConnectRefused { .. })),
        "{:?}",
        refused.err()
    );
}

#[test]
fn an_async_auth_provider_reaches_a_socketio_2_namespace() {
    let client = builder(
        shared_server(SioVersion::V2).url(),
        SioVersion::V2,
        Mode::Polling,
    )
    .protocol_version(EngineVersion::V3)
    .namespace("/admin")
    .auth_async(|| async { serde_json::json!({ "token": "secret" }) })
    .connect();
    assert!(client.is_ok(), "{:?}", client.err());
}

#[test]
fn a_header_from_headers_fn_is_the_one_node_sees_after_a_reconnection() {
    for version in [SioVersion::V4, SioVersion::V2] {
        for mode in [Mode::WebSocket, Mode::Polling, Mode::Upgrade] {
            let label = format!("{version:?} {mode:?}");
            let n = Arc::new(AtomicU64::new(0));
            let counter = n.clone();
            let client = builder(shared_server(version).url(), version, mode)
                .headers_fn(move || {
                    let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                    vec![("authorization".into(), format!("Bearer token-{n}"))]
                })
                .reconnection_delay(Duration::from_millis(10))
                .connect()
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            let seen = |client: &Client| -> Option<String> {
                client
                    .emit_with_ack("handshake-header", "authorization", WAIT)
                    .unwrap_or_else(|e| panic!("{label}: {e}"))
                    .get(0)
                    .unwrap_or_else(|e| panic!("{label}: {e}"))
            };
            assert_eq!(seen(&client).as_deref(), Some("Bearer token-1"), "{label}");
            let mut events = client.events();
            client.emit("cut-me", ()).expect("emit");
            let deadline = std::time::Instant::now() + WAIT;
            loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                match events.next_timeout(left) {
                    Some(Event::Reconnected { .. }) => break,
                    Some(_) => continue,
                    None => panic!("{label}: no reconnection within {WAIT:?}"),
                }
            }
            assert_eq!(seen(&client).as_deref(), Some("Bearer token-2"), "{label}");
            assert_eq!(n.load(Ordering::SeqCst), 2, "{label}: once per connect");
        }
    }
}
