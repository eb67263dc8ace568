//! Kept-alive HTTP connections that a proxy has closed (tests/support/proxy.rs,
//! `ProxyMode::CloseAfterResponse`, `CloseOnReuse`, `CloseUnanswered`): a request that meets
//! such a connection is sent once more on a new one, so connects and sessions over polling and
//! streaming go on as if nothing happened, no event is lost or duplicated, and a request that
//! fails a second time is a real error.
#![cfg(feature = "mock-server")]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use sio_client::mock::MockServer;
use sio_client::{AsyncClient, ClientBuilder, Error, Transport};
use support::http;
use support::proxy::{FaultProxy, ProxyMode};
use support::{NodeOptions, NodeServer, SioVersion};
use tokio::task::JoinSet;

const WAIT: Duration = Duration::from_secs(20);
const CONNECTS: usize = 50;

async fn mock(transports: &[Transport]) -> MockServer {
    MockServer::builder()
        .transports(transports)
        .on("/", "ack", |_socket, args, ack| {
            if let Some(ack) = ack {
                ack.send(args);
            }
        })
        .start()
        .await
        .expect("mock server")
}

/// The mock server offering every transport, so that only the client's choice decides.
async fn mock_with_every_transport() -> MockServer {
    mock(&[
        Transport::WebSocket,
        Transport::Streaming,
        Transport::Polling,
    ])
    .await
}

async fn node() -> NodeServer {
    tokio::task::spawn_blocking(|| NodeServer::start(SioVersion::V4, NodeOptions::default()))
        .await
        .expect("node server start")
}

fn node_addr(server: &NodeServer) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], server.port()))
}

fn client(url: String) -> ClientBuilder {
    AsyncClient::builder(url)
        .remember_transport(false)
        .reconnection(false)
        // A failing transport hands over at once anyway; a long head start keeps a slow
        // attempt on a loaded machine from being raced by the next transport.
        .head_start(Duration::from_secs(5))
        .timeout(WAIT)
}

/// `CONNECTS` clients one after the other, each connecting and getting one ack; every one must
/// work, on `expected`.
async fn connect_many(
    proxy: &FaultProxy,
    builder: impl Fn() -> ClientBuilder,
    expected: Transport,
) {
    for i in 0..CONNECTS {
        let what = format!(
            "connect {i} through {:?} (expecting {expected})",
            proxy.mode()
        );
        let client = builder()
            .connect_async()
            .await
            .unwrap_or_else(|e| panic!("{what}: {e} ({:?})", proxy.stats()));
        assert_eq!(
            client.transport(),
            expected,
            "{what}: {:?}",
            client.connect_report()
        );
        let reply = client
            .emit_with_ack("ack", i, WAIT)
            .await
            .unwrap_or_else(|e| panic!("{what}: ack: {e} ({:?})", proxy.stats()));
        assert_eq!(reply.get::<usize>(0).unwrap(), i, "{what}");
        client.disconnect();
    }
}

/// `connect_many` over polling only, through a proxy in `mode` in front of a server offering
/// every transport; the server and the proxy are handed back for what the caller checks after.
async fn polling_connects_through(mode: ProxyMode) -> (MockServer, FaultProxy) {
    let server = mock_with_every_transport().await;
    let proxy = FaultProxy::start(server.addr(), mode).await;
    let url = proxy.url();
    let builder = || client(url.clone()).transports([Transport::Polling]);
    connect_many(&proxy, builder, Transport::Polling).await;
    (server, proxy)
}

/// The proxy modes themselves, on raw TCP: keep-alive advertised, then the connection closed
/// (after the response, or on the next request) with no byte of an answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_modes_close_kept_alive_connections() {
    let server = mock(&[Transport::Polling]).await;
    let request = b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n";
    for mode in [ProxyMode::CloseAfterResponse, ProxyMode::CloseOnReuse] {
        let proxy = FaultProxy::start(server.addr(), mode).await;
        let addr = proxy.addr();
        let (first, rest) = tokio::task::spawn_blocking(move || {
            let mut conn = TcpStream::connect(addr).expect("connect to proxy");
            conn.set_read_timeout(Some(WAIT)).unwrap();
            conn.write_all(request).unwrap();
            let mut first = Vec::new();
            let mut buf = [0u8; 4096];
            // The handshake answer is small: read until its body (after the head) arrived.
            while !http::parse_response_head(&first)
                .expect("a well-formed head")
                .is_some_and(|_| first.ends_with(b"}"))
            {
                let n = conn.read(&mut buf).expect("read the first answer");
                assert!(n > 0, "{mode:?}: closed before the first answer");
                first.extend_from_slice(&buf[..n]);
            }
            // The second request may meet a connection already closed: either way, no answer.
            let _ = conn.write_all(request);
            let mut rest = Vec::new();
            let _ = conn.read_to_end(&mut rest);
            (String::from_utf8_lossy(&first).into_owned(), rest)
        })
        .await
        .unwrap();
        assert!(first.starts_with("HTTP/1.1 200"), "{mode:?}: {first}");
        assert!(
            first
                .to_ascii_lowercase()
                .contains("connection: keep-alive"),
            "{mode:?}: {first}"
        );
        assert!(rest.is_empty(), "{mode:?}: answered {rest:?}");
        if mode == ProxyMode::CloseOnReuse {
            assert_eq!(proxy.stats().requests_dropped, 1, "{mode:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_connects_through_a_proxy_closing_reused_connections() {
    let (_server, proxy) = polling_connects_through(ProxyMode::CloseOnReuse).await;
    // Each session's first reuse of its handshake connection met the close.
    let dropped = proxy.stats().requests_dropped;
    assert!(dropped >= CONNECTS as u64, "{:?}", proxy.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_connects_through_a_proxy_closing_after_each_response() {
    polling_connects_through(ProxyMode::CloseAfterResponse).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_order_connects_through_a_proxy_closing_reused_connections() {
    // Upgrades pass the proxy: WebSocket wins.
    let server = mock_with_every_transport().await;
    let proxy = FaultProxy::start(server.addr(), ProxyMode::CloseOnReuse).await;
    let url = proxy.url();
    connect_many(&proxy, || client(url.clone()), Transport::WebSocket).await;

    // Without WebSocket on the server, streaming carries the session; its POSTs reuse
    // connections.
    let server = mock(&[Transport::Streaming, Transport::Polling]).await;
    let proxy = FaultProxy::start(server.addr(), ProxyMode::CloseOnReuse).await;
    let url = proxy.url();
    connect_many(&proxy, || client(url.clone()), Transport::Streaming).await;
}

/// The measured failure: the streaming GET is refused (400, kept alive), and the polling
/// handshake started at once reuses its connection, which the proxy has closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_race_goes_on_to_polling_when_its_handshake_meets_a_closed_connection() {
    let server = mock(&[Transport::Polling]).await;
    let proxy = FaultProxy::start(server.addr(), ProxyMode::CloseOnReuse).await;
    let url = proxy.url();
    connect_many(&proxy, || client(url.clone()), Transport::Polling).await;

    // The same in front of a real socket.io 4 server, which knows no streaming.
    let server = node().await;
    let proxy = FaultProxy::start(node_addr(&server), ProxyMode::CloseOnReuse).await;
    let url = proxy.url();
    let builder = || {
        client(url.clone())
            .transports([Transport::Streaming, Transport::Polling])
            .upgrade(false)
    };
    connect_many(&proxy, builder, Transport::Polling).await;
}

/// 10 s of acked emits every 50 ms over polling: none fails, the session is never lost, and
/// the server sees every emit exactly once (a retried POST was never forwarded the first time).
async fn acked_emits_for_ten_seconds(mode: ProxyMode) {
    let server = mock_with_every_transport().await;
    let proxy = FaultProxy::start(server.addr(), mode).await;
    let client = client(proxy.url())
        .transports([Transport::Polling])
        .connect_async()
        .await
        .unwrap_or_else(|e| panic!("{mode:?}: connect: {e}"));
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut emits = JoinSet::new();
    let started = tokio::time::Instant::now();
    let mut sent = 0u64;
    while started.elapsed() < Duration::from_secs(10) {
        tick.tick().await;
        let client = client.clone();
        let seq = sent;
        emits.spawn(async move { (seq, client.emit_with_ack("ack", seq, WAIT).await) });
        sent += 1;
    }
    while let Some(joined) = emits.join_next().await {
        let (seq, reply) = joined.unwrap();
        let reply = reply.unwrap_or_else(|e| panic!("{mode:?}: emit {seq}: {e}"));
        assert_eq!(reply.get::<u64>(0).unwrap(), seq, "{mode:?}");
    }
    assert!(client.is_connected(), "{mode:?}");
    let mut seen: Vec<u64> = server
        .received()
        .iter()
        .filter(|e| e.event == "ack")
        .map(|e| e.args.get::<u64>(0).unwrap())
        .collect();
    seen.sort_unstable();
    let expected: Vec<u64> = (0..sent).collect();
    assert_eq!(seen, expected, "{mode:?}: each emit exactly once");
    assert_eq!(
        server.socket_history().len(),
        1,
        "{mode:?}: one session all along"
    );
    if mode == ProxyMode::CloseOnReuse {
        assert!(proxy.stats().requests_dropped > 0, "{:?}", proxy.stats());
    }
    client.disconnect();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_emits_over_polling_through_a_proxy_closing_reused_connections() {
    acked_emits_for_ten_seconds(ProxyMode::CloseOnReuse).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_emits_over_polling_through_a_proxy_closing_after_each_response() {
    acked_emits_for_ten_seconds(ProxyMode::CloseAfterResponse).await;
}

/// A request closed unanswered on a new connection too is tried twice in all, then reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_closed_twice_is_an_error() {
    let server = mock(&[Transport::Polling]).await;
    let proxy = FaultProxy::start(server.addr(), ProxyMode::CloseUnanswered).await;
    let error = client(proxy.url())
        .transports([Transport::Polling])
        .connect_async()
        .await
        .expect_err("every request is closed unanswered");
    match error.last_failure() {
        Error::Handshake {
            transport: Transport::Polling,
            status: None,
            body,
            ..
        } => assert!(
            body.contains("connection closed before message completed"),
            "{error}"
        ),
        other => panic!("expected a polling handshake error, got {other:?}"),
    }
    let stats = proxy.stats();
    assert_eq!(stats.requests, 2, "one try and one retry: {stats:?}");
    assert_eq!(stats.requests_dropped, 2, "{stats:?}");
    assert_eq!(server.socket_history().len(), 0);
}
