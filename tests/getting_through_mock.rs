//! Probe and fallback against the mock server's fault switches: whatever the network does to
//! WebSocket, `connect()` succeeds over the best transport that works, and losing attempts leave
//! no session behind.
#![cfg(feature = "mock-server")]

use std::time::Duration;

use sio_client::mock::{MockServer, MockServerBuilder};
use sio_client::{Args, Client, ClientBuilder, Event, Transport};

const WAIT: Duration = Duration::from_secs(10);

fn server(configure: impl FnOnce(MockServerBuilder) -> MockServerBuilder) -> MockServer {
    let builder = MockServer::builder()
        .on("/", "ack", |_socket, args, ack| {
            if let Some(ack) = ack {
                ack.send(args);
            }
        })
        .on("/", "echo", |socket, args, _| socket.emit("echo", args))
        .on("/", "burst", |socket, args, _| {
            let n: u64 = args.get(0).unwrap_or(0);
            for i in 0..n {
                socket.emit("item", Args::from_serialize(&i).unwrap());
            }
        });
    configure(builder).start_background().expect("mock server")
}

fn client(server: &MockServer) -> ClientBuilder {
    Client::builder(server.url())
        .remember_transport(false)
        .timeout(WAIT)
}

fn assert_works(client: &Client) {
    let reply = client
        .emit_with_ack("ack", ("ping", 1), WAIT)
        .expect("ack over the chosen transport");
    assert_eq!(
        reply.parse::<(String, i32)>().unwrap(),
        ("ping".to_string(), 1)
    );
}

fn wait_transport_change(client: &Client) -> (Transport, Transport) {
    let mut events = client.events();
    loop {
        match events.next_timeout(WAIT) {
            Some(Event::TransportChanged { from, to }) => return (from, to),
            Some(Event::Connected { .. }) => continue,
            other => panic!("expected a transport change, got {other:?}"),
        }
    }
}

#[test]
fn nothing_blocked_connects_over_websocket_with_one_attempt() {
    let server = server(|b| b);
    let client = client(&server).connect().unwrap();
    assert_eq!(client.transport(), Transport::WebSocket);
    let report = client.connect_report();
    assert_eq!(report.len(), 1, "{report:?}");
    assert_eq!(report[0].transport, Transport::WebSocket);
    assert!(report[0].outcome.is_ok());
    assert_works(&client);
    server.wait_for_connection_count_blocking(1, WAIT).unwrap();
}

#[test]
fn streaming_carries_events_and_upgrades_to_websocket() {
    let server = server(|b| b);
    let client = client(&server)
        .transports([Transport::Streaming, Transport::WebSocket])
        .connect()
        .unwrap();
    let report = client.connect_report();
    assert_eq!(report[0].transport, Transport::Streaming);
    assert!(report[0].outcome.is_ok());
    // The upgrade runs in the background; it may already be done, but it is announced.
    assert_eq!(
        wait_transport_change(&client),
        (Transport::Streaming, Transport::WebSocket)
    );
    assert_eq!(client.transport(), Transport::WebSocket);
    assert_works(&client);
    let received = server.wait_for_events_blocking(1, WAIT).unwrap();
    assert_eq!(received[0].transport, Transport::WebSocket);
}

#[test]
fn streaming_survives_recycled_responses_without_loss() {
    let server = server(|b| b.stream_recycle_bytes(4096));
    let client = client(&server)
        .transports([Transport::Streaming])
        .connect()
        .unwrap();
    assert_eq!(client.transport(), Transport::Streaming);
    client.emit("burst", 500u64).unwrap();
    let received = server.wait_for_events_blocking(1, WAIT).unwrap();
    assert_eq!(received[0].transport, Transport::Streaming);
    let mut events = client.events();
    let mut next = 0u64;
    while next < 500 {
        match events.next_timeout(WAIT) {
            Some(Event::Message { event, args, .. }) => {
                assert_eq!(event, "item");
                assert_eq!(args.get::<u64>(0).unwrap(), next, "in order, exactly once");
                next += 1;
            }
            Some(Event::Connected { .. }) => continue,
            other => panic!("after {next} items: {other:?}"),
        }
    }
    assert_works(&client);
}

fn falls_back_from(fault: impl FnOnce(&MockServer), expected_status: Option<u16>) {
    let server = server(|b| b);
    fault(&server);
    let client = client(&server)
        .connect()
        .expect("connects despite the fault");
    assert_eq!(client.transport(), Transport::Streaming);
    let report = client.connect_report();
    assert_eq!(report[0].transport, Transport::WebSocket);
    assert!(report[0].outcome.is_err(), "{report:?}");
    assert_eq!(report[0].status, expected_status, "{report:?}");
    assert!(report
        .iter()
        .any(|a| a.transport == Transport::Streaming && a.outcome.is_ok()));
    assert_works(&client);
    // Only the winner's session is left on the server.
    server.wait_for_connection_count_blocking(1, WAIT).unwrap();
}

#[test]
fn websocket_rejected_with_403_falls_back() {
    falls_back_from(|s| s.faults().reject_websocket(Some(403)), Some(403));
}

#[test]
fn websocket_rejected_with_400_falls_back() {
    falls_back_from(|s| s.faults().reject_websocket(Some(400)), Some(400));
}

#[test]
fn upgrade_header_stripped_falls_back() {
    falls_back_from(|s| s.faults().websocket_no_upgrade(true), Some(200));
}

#[test]
fn reset_on_upgrade_falls_back() {
    falls_back_from(|s| s.faults().reset_on_upgrade(true), None);
}

#[test]
fn black_holed_websocket_is_raced_not_waited_out() {
    let server = server(|b| b);
    server.faults().black_hole_websocket(true);
    let client = client(&server)
        .head_start(Duration::from_millis(100))
        .connect()
        .unwrap();
    assert_eq!(client.transport(), Transport::Streaming);
    let report = client.connect_report();
    assert_eq!(report[0].transport, Transport::WebSocket);
    let lost = report[0].outcome.as_ref().unwrap_err();
    assert!(lost.contains("abandoned"), "{report:?}");
    // Streaming was started after the head start, not after the WebSocket gave up.
    assert!(
        report[1].started_after < Duration::from_secs(2),
        "{report:?}"
    );
    assert_works(&client);
    // No upgrade is attempted into the black hole: the transport stays streaming.
    server.wait_for_connection_count_blocking(1, WAIT).unwrap();
}

#[test]
fn buffering_proxy_on_streaming_leaves_polling() {
    let server = server(|b| b);
    server.faults().reject_websocket(Some(403));
    server.faults().buffer_streaming(true);
    let client = client(&server)
        .head_start(Duration::from_millis(100))
        .probe_timeout(Duration::from_millis(500))
        .connect()
        .unwrap();
    assert_eq!(client.transport(), Transport::Polling);
    assert_works(&client);
    // The buffered streaming attempt is closed when it gives up: one session remains.
    server.wait_for_connection_count_blocking(1, WAIT).unwrap();
}

#[test]
fn unknown_transport_moves_on_at_once() {
    let server = server(|b| b.transports(&[Transport::Polling, Transport::WebSocket]));
    server.faults().reject_websocket(Some(403));
    let client = client(&server)
        .head_start(Duration::from_secs(30))
        .connect()
        .unwrap();
    // Neither failure waited for the 30 s head start.
    assert_eq!(client.transport(), Transport::Polling);
    let report = client.connect_report();
    let streaming = report
        .iter()
        .find(|a| a.transport == Transport::Streaming)
        .unwrap();
    assert_eq!(streaming.status, Some(400));
    assert_works(&client);
}

#[test]
fn remembered_transport_is_tried_first() {
    let server = server(|b| b);
    server.faults().reject_websocket(Some(403));
    let first = Client::builder(server.url())
        .timeout(WAIT)
        .connect()
        .unwrap();
    assert_eq!(first.transport(), Transport::Streaming);
    let second = Client::builder(server.url())
        .timeout(WAIT)
        .connect()
        .unwrap();
    let report = second.connect_report();
    assert_eq!(report.len(), 1, "no WebSocket attempt first: {report:?}");
    assert_eq!(report[0].transport, Transport::Streaming);
    assert_works(&second);
}

#[test]
fn every_blocking_mode_needs_no_code_change() {
    type Fault = fn(&MockServer);
    let modes: &[(&str, Fault)] = &[
        ("pass", |_| {}),
        ("403", |s| s.faults().reject_websocket(Some(403))),
        ("stripped", |s| s.faults().websocket_no_upgrade(true)),
        ("reset", |s| s.faults().reset_on_upgrade(true)),
        ("black hole", |s| s.faults().black_hole_websocket(true)),
        ("latency", |s| s.faults().delay(Duration::from_millis(50))),
    ];
    for (name, fault) in modes {
        let server = server(|b| b);
        fault(&server);
        // The same application code for every network.
        let client = Client::builder(server.url())
            .remember_transport(false)
            .on("echo", |_, _| {})
            .connect()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_works(&client);
        client.emit("echo", "x").unwrap();
        server
            .wait_for_events_blocking(2, WAIT)
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }
}
