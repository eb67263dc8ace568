//! A server that stops reading must not wedge the client, and one that floods it must not
//! take its memory:
//! - over WebSocket, a server that never reads while the application emits 30 × 1 MB: the
//!   client notices within pingTimeout of the writes stalling (`Disconnected` with
//!   `TransportError`), an `emit_with_ack` times out on time, and `disconnect()` returns at once;
//! - over polling, a server that never answers POSTs while it floods pings: see
//!   `tests/hostile_flood.rs` (alone in its process, so that its memory figure is its own);
//! - `disconnect()` while the handshake hangs takes effect at once.
//!
//! The servers here are small and hand-written on purpose: no real server misbehaves on cue.
#![cfg(feature = "mock-server")]

mod support;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use sio_client::mock::MockServer;
use sio_client::{Client, DisconnectReason, Error, Event, Transport};
use support::http;
use support::raw::{open_packet, read_request, Server, MARGIN, PING_INTERVAL_MS};
use support::{FaultProxy, ProxyMode};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Long against the ping interval: on a loaded machine a late ping must not be mistaken for
/// the write stall these tests wait for (both are judged against pingTimeout).
const PING_TIMEOUT_MS: u64 = 3000;

/// A WebSocket server that opens the session, accepts `/`, then pings and never reads again.
fn deaf_websocket_server() -> Server {
    websocket_server(None)
}

/// A WebSocket server that opens the session, accepts `/` and pings; it reads one message per
/// `read_every` (never, with `None`): what the client sends beyond that piles up.
fn websocket_server(read_every: Option<Duration>) -> Server {
    Server::start(move |mut stream| async move {
        let mut buf = Vec::new();
        let Some((head, _)) = read_request(&mut stream, &mut buf).await else {
            return;
        };
        let key = head.headers.get("sec-websocket-key").unwrap_or_default();
        let answer = http::head(
            "HTTP/1.1 101 Switching Protocols",
            &[
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Accept", &derive_accept_key(key.as_bytes())),
            ],
        );
        if stream.write_all(&answer).await.is_err() {
            return;
        }
        let ws = WebSocketStream::from_raw_socket(stream, Role::Server, None).await;
        let (mut sink, mut source) = ws.split();
        let _ = sink.send(Message::text(open_packet(PING_TIMEOUT_MS))).await;
        let _ = sink.send(Message::text(r#"40{"sid":"n"}"#)).await;
        if let Some(every) = read_every {
            tokio::spawn(async move {
                // The server's pace of reading, not synchronisation.
                while source.next().await.is_some() {
                    tokio::time::sleep(every).await;
                }
            });
        } else {
            // Never read: what the client sends piles up in its socket.
            std::mem::forget(source);
        }
        loop {
            // The server's heartbeat, not synchronisation.
            tokio::time::sleep(Duration::from_millis(PING_INTERVAL_MS)).await;
            if sink.send(Message::text("2")).await.is_err() {
                return;
            }
        }
    })
}

fn connect_deaf(server: &Server) -> Client {
    Client::builder(server.url())
        .transports([Transport::WebSocket])
        .reconnection(false)
        .connect()
        .expect("connect")
}

/// 30 × 1 MB: far more than the sockets between client and server buffer.
fn emit_megabytes(client: &Client) {
    let megabyte = "x".repeat(1 << 20);
    for _ in 0..30 {
        client.emit("big", &megabyte).expect("emit");
    }
}

#[test]
fn a_server_that_stops_reading_is_a_dead_connection_within_ping_timeout() {
    let server = deaf_websocket_server();
    let client = connect_deaf(&server);
    let mut events = client.events();
    emit_megabytes(&client);
    let start = Instant::now();
    let ack = client.emit_with_ack("small", (), Duration::from_secs(2));
    assert!(
        matches!(ack, Err(Error::AckTimeout(_)) | Err(Error::Disconnected(_))),
        "{ack:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(2) + MARGIN,
        "the ack timeout fired after {:?}",
        start.elapsed()
    );
    let bound = Duration::from_millis(PING_INTERVAL_MS + PING_TIMEOUT_MS) + MARGIN;
    loop {
        match events.next_timeout(bound.saturating_sub(start.elapsed())) {
            // The stalled write is what ends it; on a starved machine the heartbeat, judged
            // against the same pingTimeout, may get there first. Both are a dead connection
            // noticed in time (before writes got deadlines, neither ever fired).
            Some(Event::Disconnected { reason, .. }) => {
                assert!(
                    matches!(
                        reason,
                        DisconnectReason::TransportError | DisconnectReason::PingTimeout
                    ),
                    "{reason}"
                );
                break;
            }
            Some(_) => continue,
            None => panic!("no disconnect within {bound:?} of the writes stalling"),
        }
    }
    assert!(!client.is_connected());
}

#[test]
fn disconnect_returns_at_once_while_writes_are_stalled() {
    let server = deaf_websocket_server();
    let client = connect_deaf(&server);
    let mut events = client.events();
    emit_megabytes(&client);
    let start = Instant::now();
    client.disconnect();
    assert!(start.elapsed() < Duration::from_millis(500));
    // The stream ends soon after: the driver stops within its one-second close budget.
    let until = Instant::now() + Duration::from_secs(1) + MARGIN;
    loop {
        match events.next_timeout(until.saturating_duration_since(Instant::now())) {
            None => break,
            // `IoClientDisconnect`, or on a starved machine the heartbeat's verdict first.
            Some(Event::Disconnected { reason, .. }) => assert!(
                matches!(
                    reason,
                    DisconnectReason::IoClientDisconnect | DisconnectReason::PingTimeout
                ),
                "{reason}"
            ),
            Some(_) => {}
        }
    }
    assert!(Instant::now() < until, "the event stream did not end");
}

/// `disconnect()` while a reconnection's handshake hangs (a proxy completes the WebSocket
/// upgrade, then forwards nothing) ends the client at once, not when that attempt's `timeout`
/// runs out.
#[test]
fn disconnect_cancels_a_hanging_handshake() {
    let server = MockServer::builder().start_background().expect("mock");
    let proxy = FaultProxy::start_background(server.addr(), ProxyMode::Pass);
    let client = Client::builder(proxy.url())
        .transports([Transport::WebSocket])
        .timeout(Duration::from_secs(60))
        .probe_timeout(Duration::from_secs(60))
        .reconnection_delay(Duration::from_millis(10))
        .connect()
        .expect("connect");
    let mut events = client.events();
    proxy.set_mode(ProxyMode::BlackHoleUpgrade);
    server.faults().drop_all_connections();
    // The reconnection's upgrade goes through; then the open packet never comes.
    let until = Instant::now() + MARGIN;
    while proxy.stats().upgrades_completed < 2 {
        assert!(
            Instant::now() < until,
            "no reconnection attempt reached the proxy: {:?}",
            proxy.stats()
        );
        let _ = events.next_timeout(Duration::from_millis(10));
    }
    let start = Instant::now();
    client.disconnect();
    drop(client);
    while events.next_timeout(Duration::from_secs(60)).is_some() {}
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "the client ended {:?} after disconnect(), with its handshake still pending",
        start.elapsed()
    );
}

/// A server that reads more slowly than the application emits fills `max_send_queue`: emits
/// then fail at the call site (`SendQueueFull`) instead of memory growing without end, and
/// volatile emits are dropped (`Ok(false)`).
#[test]
fn emits_past_max_send_queue_fail_at_the_call_site() {
    // Reads on, slowly: the writes progress (no write deadline), the queue grows.
    let server = websocket_server(Some(Duration::from_millis(200)));
    let client = Client::builder(server.url())
        .transports([Transport::WebSocket])
        .reconnection(false)
        .max_send_queue(4 << 20)
        .connect()
        .expect("connect");
    let megabyte = "x".repeat(1 << 20);
    let deadline = Instant::now() + MARGIN;
    let error = loop {
        match client.emit("big", &megabyte) {
            Ok(()) => assert!(Instant::now() < deadline, "no SendQueueFull"),
            Err(e) => break e,
        }
    };
    assert!(
        matches!(error, Error::SendQueueFull { limit, .. } if limit == 4 << 20),
        "{error:?}"
    );
    assert_eq!(client.emit_volatile("big", "x").ok(), Some(false));
}
