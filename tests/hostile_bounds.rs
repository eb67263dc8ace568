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

use futures_util::SinkExt;
use sio_client::mock::MockServer;
use sio_client::{Client, DisconnectReason, Error, Event, Transport};
use support::raw::{
    expect_transport_error, open_packet, read_request, Server, MARGIN, PING_INTERVAL_MS,
};
use support::{FaultProxy, ProxyMode};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const PING_TIMEOUT_MS: u64 = 1000;

/// A WebSocket server that opens the session, accepts `/`, then pings and never reads again.
fn deaf_websocket_server() -> Server {
    Server::start(|mut stream| async move {
        let mut buf = Vec::new();
        let Some((head, _)) = read_request(&mut stream, &mut buf).await else {
            return;
        };
        let key = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("sec-websocket-key"))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default();
        let answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            derive_accept_key(key.as_bytes())
        );
        if stream.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
        let mut ws = WebSocketStream::from_raw_socket(stream, Role::Server, None).await;
        // Only the write half is ever used: what the client sends piles up in its socket.
        let _ = ws.send(Message::text(open_packet(PING_TIMEOUT_MS))).await;
        let _ = ws.send(Message::text(r#"40{"sid":"n"}"#)).await;
        loop {
            // The server's heartbeat, not synchronisation.
            tokio::time::sleep(Duration::from_millis(PING_INTERVAL_MS)).await;
            if ws.send(Message::text("2")).await.is_err() {
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
    expect_transport_error(&mut events, start, bound, "the writes");
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
            Some(Event::Disconnected { reason, .. }) => {
                assert_eq!(reason, DisconnectReason::IoClientDisconnect)
            }
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
