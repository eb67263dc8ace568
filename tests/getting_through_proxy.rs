//! The client behind middleboxes (tests/support/proxy.rs) in front of the mock server and a real
//! Node socket.io 4 server: for every mode it connects, emits, gets acks and server events, over
//! the transport the mode leaves usable; and the same through a CONNECT proxy.
#![cfg(feature = "mock-server")]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use sio_client::mock::MockServer;
use sio_client::{Client, ClientBuilder, DisconnectReason, Error, Event, Transport};
use support::proxy::{ConnectProxy, FaultProxy, ProxyMode};
use support::{NodeOptions, NodeServer, SioVersion};

const WAIT: Duration = Duration::from_secs(10);

enum Upstream {
    Mock(MockServer),
    Node(NodeServer),
}

impl Upstream {
    fn mock() -> Upstream {
        let server = MockServer::builder()
            .on("/", "ack", |_socket, args, ack| {
                if let Some(ack) = ack {
                    ack.send(args);
                }
            })
            .on("/", "echo", |socket, args, _| socket.emit("echo", args))
            .start_background()
            .expect("mock server");
        Upstream::Mock(server)
    }

    fn node() -> Upstream {
        Upstream::Node(NodeServer::start(SioVersion::V4, NodeOptions::default()))
    }

    fn addr(&self) -> SocketAddr {
        match self {
            Upstream::Mock(server) => server.addr(),
            Upstream::Node(server) => SocketAddr::from(([127, 0, 0, 1], server.port())),
        }
    }

    fn url(&self) -> String {
        match self {
            Upstream::Mock(server) => server.url(),
            Upstream::Node(server) => server.url(),
        }
    }

    /// The HTTP transport a server falls back to: Node knows no streaming.
    fn http_fallback(&self) -> Transport {
        match self {
            Upstream::Mock(_) => Transport::Streaming,
            Upstream::Node(_) => Transport::Polling,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Upstream::Mock(_) => "mock",
            Upstream::Node(_) => "node",
        }
    }
}

fn client(url: String) -> ClientBuilder {
    Client::builder(url)
        .remember_transport(false)
        .head_start(Duration::from_millis(200))
        .probe_timeout(Duration::from_secs(2))
        .timeout(WAIT)
}

/// Emit with an ack, and an event the server answers with an event.
fn exchange(client: &Client, what: &str) {
    let reply = client
        .emit_with_ack("ack", (what, 1), WAIT)
        .unwrap_or_else(|e| panic!("{what}: ack: {e}"));
    assert_eq!(
        reply.parse::<(String, i32)>().unwrap(),
        (what.to_string(), 1)
    );
    client.emit("echo", what).unwrap();
    let mut events = client.events();
    loop {
        match events.next_timeout(WAIT) {
            Some(Event::Message { event, args, .. }) => {
                assert_eq!(event, "echo", "{what}");
                assert_eq!(args.get::<String>(0).unwrap(), what);
                return;
            }
            Some(Event::Connected { .. } | Event::TransportChanged { .. }) => continue,
            other => panic!("{what}: waiting for echo, got {other:?}"),
        }
    }
}

fn check_mode(upstream: &Upstream, mode: ProxyMode, expected: Transport, websocket_failed: bool) {
    let what = format!("{} behind {mode:?}", upstream.name());
    let proxy = FaultProxy::start_background(upstream.addr(), mode);
    let client = client(proxy.url())
        .upgrade(false)
        .connect()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(
        client.transport(),
        expected,
        "{what}: {:?}",
        client.connect_report()
    );
    let report = client.connect_report();
    assert_eq!(report[0].transport, Transport::WebSocket, "{what}");
    assert_eq!(
        report[0].outcome.is_err(),
        websocket_failed,
        "{what}: {report:?}"
    );
    exchange(&client, &what);
    client.disconnect();
}

fn every_mode(upstream: Upstream) {
    let http = upstream.http_fallback();
    check_mode(&upstream, ProxyMode::Pass, Transport::WebSocket, false);
    check_mode(&upstream, ProxyMode::RejectUpgrade(403), http, true);
    check_mode(&upstream, ProxyMode::RejectUpgrade(405), http, true);
    check_mode(&upstream, ProxyMode::StripUpgrade, http, true);
    check_mode(&upstream, ProxyMode::ResetUpgrade, http, true);
    check_mode(&upstream, ProxyMode::BlackHoleUpgrade, http, true);
    check_mode(
        &upstream,
        ProxyMode::BufferResponses,
        Transport::WebSocket,
        false,
    );
    check_mode(
        &upstream,
        ProxyMode::Latency(Duration::from_millis(30)),
        Transport::WebSocket,
        false,
    );
}

#[test]
fn every_proxy_mode_in_front_of_the_mock() {
    every_mode(Upstream::mock());
}

#[test]
fn every_proxy_mode_in_front_of_node() {
    every_mode(Upstream::node());
}

#[test]
fn buffering_proxy_and_blocked_websocket_leave_polling() {
    // The server refuses WebSocket and the proxy buffers every response: streaming never
    // shows its open packet, polling (whole responses) works.
    let upstream = Upstream::mock();
    if let Upstream::Mock(server) = &upstream {
        server.faults().reject_websocket(Some(403));
    }
    let proxy = FaultProxy::start_background(upstream.addr(), ProxyMode::BufferResponses);
    let client = client(proxy.url()).connect().unwrap();
    assert_eq!(
        client.transport(),
        Transport::Polling,
        "{:?}",
        client.connect_report()
    );
    exchange(&client, "buffered");
}

#[test]
fn a_connection_cut_mid_session_is_noticed() {
    for upstream in [Upstream::mock(), Upstream::node()] {
        // Enough for the handshake and a little traffic, then the proxy cuts.
        let proxy = FaultProxy::start_background(upstream.addr(), ProxyMode::CutAfter(600));
        let client = client(proxy.url())
            .transports([Transport::WebSocket])
            .connect()
            .unwrap();
        for _ in 0..100 {
            if client.emit("echo", "x".repeat(50)).is_err() {
                break;
            }
        }
        let mut events = client.events();
        let reason = loop {
            match events.next_timeout(WAIT) {
                Some(Event::Disconnected { reason, .. }) => break reason,
                Some(_) => continue,
                None => panic!("{}: the cut was not noticed", upstream.name()),
            }
        };
        assert!(
            matches!(
                reason,
                DisconnectReason::TransportClose | DisconnectReason::TransportError
            ),
            "{}: {reason}",
            upstream.name()
        );
    }
}

fn through_connect_proxy(upstream: &Upstream, transports: &[Transport], expected: Transport) {
    let proxy = ConnectProxy::start_background(None);
    let client = client(upstream.url())
        .proxy(proxy.url())
        .transports(transports.iter().copied())
        .connect()
        .unwrap_or_else(|e| panic!("{} via CONNECT proxy: {e}", upstream.name()));
    assert_eq!(client.transport(), expected);
    exchange(&client, "proxied");
    let stats = proxy.stats();
    match expected {
        Transport::WebSocket => assert!(stats.tunnels >= 1, "{stats:?}"),
        _ => assert!(stats.forwarded >= 1, "{stats:?}"),
    }
}

#[test]
fn explicit_http_proxy_carries_every_transport() {
    for upstream in [Upstream::mock(), Upstream::node()] {
        through_connect_proxy(&upstream, &[Transport::WebSocket], Transport::WebSocket);
        through_connect_proxy(&upstream, &[Transport::Polling], Transport::Polling);
    }
    through_connect_proxy(
        &Upstream::mock(),
        &[Transport::Streaming],
        Transport::Streaming,
    );
}

#[test]
fn proxy_credentials_come_from_the_proxy_url() {
    let upstream = Upstream::node();
    let proxy = ConnectProxy::start_background(Some(("alice".into(), "s3cret:x".into())));
    let client = client(upstream.url())
        .proxy(proxy.url_with_credentials())
        .connect()
        .unwrap();
    assert_eq!(client.transport(), Transport::WebSocket);
    exchange(&client, "with credentials");
    assert_eq!(proxy.stats().auth_rejected, 0);
}

/// Credentials with the characters that URL userinfo encodes (`%`, `@`, `:`) or keeps as they
/// are (`+`, `&`) reach the proxy as typed, over the CONNECT tunnel and forwarded polling.
#[test]
fn proxy_credentials_with_special_characters() {
    let upstream = Upstream::mock();
    let proxy = ConnectProxy::start_background(Some(("al+ce@corp".into(), "p+a&s%s:w@rd".into())));
    for transport in [Transport::WebSocket, Transport::Polling] {
        let client = client(upstream.url())
            .proxy(proxy.url_with_credentials())
            .transports([transport])
            .connect()
            .unwrap_or_else(|e| panic!("{transport:?} through the proxy: {e}"));
        assert_eq!(client.transport(), transport);
        exchange(&client, "special credentials");
    }
    assert_eq!(proxy.stats().auth_rejected, 0);
}

#[test]
fn proxy_demanding_credentials_is_a_clear_407_error() {
    let upstream = Upstream::mock();
    let proxy = ConnectProxy::start_background(Some(("alice".into(), "pw".into())));
    let result = client(upstream.url())
        .proxy(proxy.url())
        .transports([Transport::WebSocket, Transport::Polling])
        .connect();
    match result.as_ref().map_err(Error::last_failure) {
        Err(Error::Handshake { status, .. }) => assert_eq!(*status, Some(407)),
        other => panic!("expected a 407, got {other:?}"),
    }
    assert!(
        proxy.stats().auth_rejected >= 2,
        "both transports were tried"
    );
}

#[test]
fn proxy_refusing_connect_falls_back_to_forwarded_polling() {
    let upstream = Upstream::node();
    let proxy = ConnectProxy::start_background(None);
    proxy.refuse_connect(true);
    let client = client(upstream.url()).proxy(proxy.url()).connect().unwrap();
    assert_eq!(client.transport(), Transport::Polling);
    let report = client.connect_report();
    assert_eq!(report[0].transport, Transport::WebSocket);
    assert_eq!(report[0].status, Some(403), "{report:?}");
    exchange(&client, "after a refused CONNECT");
}
