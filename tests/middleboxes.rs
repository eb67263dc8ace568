//! The client behind real Debian proxies and load balancers (tests/support/middlebox.rs), in
//! front of real Node socket.io 4.8 servers. Every scenario connects, emits (echo), gets an
//! ack both ways (the client's `emit_with_ack` answered by the server, and the server's
//! `need-ack` answered by the client) and asserts the transport it ends up on:
//!
//! 1. squid with Debian's shipped rules (CONNECT only to 443): WebSocket's CONNECT is refused
//!    with 403, Node knows no streaming (400), so polling carries the session, as absolute-URI
//!    requests through squid (its access log shows them).
//! 2. squid allowing CONNECT to the server's port: WebSocket through the tunnel.
//! 3. nginx with plain `proxy_pass` (no Upgrade forwarding): the upgrade reaches Node as a plain
//!    GET and fails, polling works; nginx configured for WebSocket: WebSocket.
//! 4. haproxy denying upgrades with 403: polling.
//! 5. haproxy over two Node servers with cookie stickiness, polling only: two clients land on
//!    different servers and each stays on its own for 20 acked emits (the cookie jar).
//! 6. haproxy round robin over two servers without stickiness, polling only: the connect fails
//!    by itself (not by its timeout) with the polling transport's error carrying the other
//!    server's 400 "Session ID unknown"; haproxy's log shows both servers were asked.
//! 7. nginx whose `proxy_read_timeout` (2 s) is shorter than the ping interval (6 s): a plain
//!    client does the round trips, then a client with `retries` emits a numbered sequence while
//!    nginx keeps cutting the idle WebSocket, with some acks held back by the server past the
//!    cut. The client reconnects by itself, every emit is acked, the server saw each at least
//!    once, and the lost acks show as duplicate arrivals (counted and printed).

mod support;

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use sio_client::{Client, ClientBuilder, Error, Event, Transport};
use support::matrix::next_message_for;
use support::middlebox::{HaproxyOptions, Middlebox, NginxOptions, SquidPolicy};
use support::{NodeOptions, NodeServer, SioVersion};

/// How long any single step may take; connects are bounded by it too.
const WAIT: Duration = Duration::from_secs(10);

/// One default Node server for the scenarios in front of a single server.
fn shared_node() -> &'static NodeServer {
    static NODE: OnceLock<NodeServer> = OnceLock::new();
    NODE.get_or_init(|| NodeServer::start_default(SioVersion::V4))
}

/// Two Node servers for the load-balancer scenarios: separate processes, no shared state, as
/// two nodes of a cluster without a sticky adapter.
fn shared_pair() -> &'static (NodeServer, NodeServer) {
    static PAIR: OnceLock<(NodeServer, NodeServer)> = OnceLock::new();
    PAIR.get_or_init(|| {
        (
            NodeServer::start_default(SioVersion::V4),
            NodeServer::start_default(SioVersion::V4),
        )
    })
}

fn builder(url: String) -> ClientBuilder {
    Client::builder(url).remember_transport(false).timeout(WAIT)
}

fn polling_only(url: String) -> ClientBuilder {
    builder(url).transports([Transport::Polling]).upgrade(false)
}

/// Echo, an ack the client asks for, and an ack the server asks for.
fn round_trips(client: &Client, what: &str) {
    client.emit("echo", (what, 1)).unwrap();
    let (args, _) = next_message_for(client, "echo", what);
    assert_eq!(
        args.parse::<(String, i32)>().unwrap(),
        (what.to_string(), 1),
        "{what}: echo"
    );

    let reply = client
        .emit_with_ack("ack", (what, 2), WAIT)
        .unwrap_or_else(|e| panic!("{what}: client-requested ack: {e}"));
    assert_eq!(
        reply.parse::<(String, i32)>().unwrap(),
        (what.to_string(), 2),
        "{what}: client-requested ack"
    );

    client.emit("request-ack", (what, 3)).unwrap();
    let (args, ack) = next_message_for(client, "need-ack", what);
    assert_eq!(
        args.parse::<(String, i32)>().unwrap(),
        (what.to_string(), 3),
        "{what}: need-ack"
    );
    let ack = ack.unwrap_or_else(|| panic!("{what}: need-ack came without an ack sender"));
    ack.send(&(what, 4)).unwrap();
    let (args, _) = next_message_for(client, "got-ack", what);
    assert_eq!(
        args.parse::<(String, i32)>().unwrap(),
        (what.to_string(), 4),
        "{what}: the server got the client's ack"
    );
}

/// Waits until `check` holds, or panics with `what` and the middlebox's logs.
fn wait_until(middlebox: &Middlebox, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "{what} within {WAIT:?}\n{}",
            middlebox.logs()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

fn connect(builder: ClientBuilder, middlebox: &Middlebox, what: &str) -> Client {
    builder
        .connect()
        .unwrap_or_else(|e| panic!("{what}: connect: {e}\n{}", middlebox.logs()))
}

/// Asserts the connect report: WebSocket failed first with `ws_status`, polling won.
fn assert_fell_back(client: &Client, ws_status: u16, middlebox: &Middlebox, what: &str) {
    let report = client.connect_report();
    assert_eq!(
        client.transport(),
        Transport::Polling,
        "{what}: {report:?}\n{}",
        middlebox.logs()
    );
    let ws = report
        .iter()
        .find(|a| a.transport == Transport::WebSocket)
        .unwrap_or_else(|| panic!("{what}: WebSocket was not tried: {report:?}"));
    assert!(ws.outcome.is_err(), "{what}: {report:?}");
    assert_eq!(ws.status, Some(ws_status), "{what}: {report:?}");
    let polling = report
        .iter()
        .find(|a| a.transport == Transport::Polling)
        .unwrap_or_else(|| panic!("{what}: polling was not tried: {report:?}"));
    assert!(polling.outcome.is_ok(), "{what}: {report:?}");
}

#[test]
fn squid_with_shipped_rules_refuses_connect_so_polling_goes_through_it() {
    let what = "squid, shipped rules";
    let node = shared_node();
    let squid = Middlebox::squid(&SquidPolicy::Shipped);
    let client = connect(builder(node.url()).proxy(squid.url()), &squid, what);
    // CONNECT to a port other than 443 is denied (403). Streaming goes through squid as well,
    // but Node socket.io has no streaming transport and answers 400; long-polling is left.
    assert_fell_back(&client, 403, &squid, what);
    let report = client.connect_report();
    let streaming = report
        .iter()
        .find(|a| a.transport == Transport::Streaming)
        .unwrap_or_else(|| panic!("{what}: streaming was not tried: {report:?}"));
    assert_eq!(streaming.status, Some(400), "{what}: {report:?}");
    round_trips(&client, what);
    client.disconnect();

    // squid logs a request when it ends, which may be just after the client saw its answer.
    let connect = format!("CONNECT 127.0.0.1:{}", node.port());
    wait_until(
        &squid,
        &format!("{what}: squid logging a refused CONNECT"),
        || {
            squid
                .log_lines("access.log", &connect)
                .iter()
                .any(|l| l.contains("TCP_DENIED/403"))
        },
    );
    // Forwarded as absolute-URI requests: that is what squid logs as the URL.
    let polls = format!("http://127.0.0.1:{}/socket.io/", node.port());
    wait_until(
        &squid,
        &format!("{what}: squid forwarding 3 polling requests"),
        || {
            squid
                .log_lines("access.log", &polls)
                .iter()
                .filter(|l| l.contains("TCP_MISS/200"))
                .count()
                >= 3
        },
    );
}

#[test]
fn squid_allowing_connect_to_the_port_tunnels_websocket() {
    let what = "squid, CONNECT allowed";
    let node = shared_node();
    let squid = Middlebox::squid(&SquidPolicy::AllowConnectTo(vec![node.port()]));
    let client = connect(builder(node.url()).proxy(squid.url()), &squid, what);
    assert_eq!(
        client.transport(),
        Transport::WebSocket,
        "{what}: {:?}\n{}",
        client.connect_report(),
        squid.logs()
    );
    round_trips(&client, what);
    client.disconnect();
    // squid logs a tunnel when it closes.
    let connect = format!("CONNECT 127.0.0.1:{}", node.port());
    wait_until(&squid, "squid logging the WebSocket tunnel", || {
        squid
            .log_lines("access.log", &connect)
            .iter()
            .any(|l| l.contains("TCP_TUNNEL/200"))
    });
}

#[test]
fn nginx_without_upgrade_forwarding_falls_back_to_polling() {
    let what = "nginx, plain proxy_pass";
    let node = shared_node();
    let nginx = Middlebox::nginx(node.port(), &NginxOptions::default());
    let client = connect(builder(nginx.url()), &nginx, what);
    // nginx drops the hop-by-hop Upgrade and Connection headers: Node sees a plain GET for
    // the websocket transport and answers 400.
    assert_fell_back(&client, 400, &nginx, what);
    round_trips(&client, what);
    client.disconnect();
}

#[test]
fn nginx_configured_for_websocket_carries_websocket() {
    let what = "nginx, WebSocket forwarding";
    let node = shared_node();
    let options = NginxOptions {
        websocket: true,
        ..NginxOptions::default()
    };
    let nginx = Middlebox::nginx(node.port(), &options);
    let client = connect(builder(nginx.url()), &nginx, what);
    assert_eq!(
        client.transport(),
        Transport::WebSocket,
        "{what}: {:?}\n{}",
        client.connect_report(),
        nginx.logs()
    );
    round_trips(&client, what);
    client.disconnect();
}

#[test]
fn haproxy_denying_upgrades_falls_back_to_polling() {
    let what = "haproxy, upgrades denied";
    let node = shared_node();
    let options = HaproxyOptions {
        deny_websocket: true,
        ..HaproxyOptions::default()
    };
    let haproxy = Middlebox::haproxy(&[node.port()], &options);
    let client = connect(builder(haproxy.url()), &haproxy, what);
    assert_fell_back(&client, 403, &haproxy, what);
    round_trips(&client, what);
    client.disconnect();
}

/// The port of the Node server that answers this client, asked `times` times; panics unless
/// it is the same every time.
fn backend_of(client: &Client, times: usize, what: &str) -> u16 {
    let mut seen = Vec::with_capacity(times);
    for i in 0..times {
        let reply = client
            .emit_with_ack("whoami", (), WAIT)
            .unwrap_or_else(|e| panic!("{what}: whoami #{i}: {e}"));
        seen.push(reply.get::<u16>(0).unwrap());
    }
    assert!(
        seen.iter().all(|p| *p == seen[0]),
        "{what}: the session moved between backends: {seen:?}"
    );
    seen[0]
}

#[test]
fn haproxy_with_cookie_stickiness_keeps_each_polling_session_on_its_server() {
    let (a, b) = shared_pair();
    let options = HaproxyOptions {
        sticky: true,
        ..HaproxyOptions::default()
    };
    let haproxy = Middlebox::haproxy(&[a.port(), b.port()], &options);
    let first = connect(
        polling_only(haproxy.url()),
        &haproxy,
        "sticky, first client",
    );
    assert_eq!(first.transport(), Transport::Polling);
    round_trips(&first, "sticky, first client");
    let first_backend = backend_of(&first, 20, "sticky, first client");

    // Round robin sends the next request without a cookie, the second client's handshake, to
    // the other server: the two clients prove both that balancing happens and that each
    // client's cookie keeps it where its session is.
    let second = connect(
        polling_only(haproxy.url()),
        &haproxy,
        "sticky, second client",
    );
    assert_eq!(second.transport(), Transport::Polling);
    round_trips(&second, "sticky, second client");
    let second_backend = backend_of(&second, 20, "sticky, second client");
    assert_ne!(
        first_backend,
        second_backend,
        "round robin put both clients on one server\n{}",
        haproxy.logs()
    );
    assert!([a.port(), b.port()].contains(&first_backend));
    assert!([a.port(), b.port()].contains(&second_backend));

    // Interleaved, both sessions keep working.
    for i in 0..5 {
        assert_eq!(
            backend_of(&first, 1, "sticky, first again"),
            first_backend,
            "#{i}"
        );
        assert_eq!(
            backend_of(&second, 1, "sticky, second again"),
            second_backend,
            "#{i}"
        );
    }
    first.disconnect();
    second.disconnect();
}

#[test]
fn haproxy_round_robin_without_stickiness_fails_polling_with_a_clear_error() {
    let (a, b) = shared_pair();
    let haproxy = Middlebox::haproxy(&[a.port(), b.port()], &HaproxyOptions::default());
    let url = haproxy.url();
    let (tx, rx) = mpsc::channel();
    // On a thread, so that a client that hangs fails this test instead of blocking it.
    thread::spawn(move || {
        let outcome = polling_only(url).connect();
        let _ = tx.send(outcome.map(|c| c.transport()));
    });
    let outcome = rx
        .recv_timeout(WAIT * 3)
        .unwrap_or_else(|_| panic!("connect hung past {:?}\n{}", WAIT * 3, haproxy.logs()));
    let error = match outcome {
        Ok(transport) => panic!(
            "connected over {transport} although the requests alternate between two servers \
             that share no sessions\n{}",
            haproxy.logs()
        ),
        Err(error) => error,
    };
    // The handshake opens a session on one server; the next request reaches the other one,
    // which does not know the session id.
    match error.last_failure() {
        Error::Transport {
            transport, message, ..
        } => {
            assert_eq!(*transport, Transport::Polling, "{error}");
            assert!(
                message.contains("400") && message.contains("Session ID unknown"),
                "{error}"
            );
        }
        other => panic!(
            "expected the polling transport's 400 \"Session ID unknown\", got {other:?}\n{}",
            haproxy.logs()
        ),
    }
    // haproxy logs a request when it ends, which may be just after the client saw its answer.
    for server in ["nodes/node0", "nodes/node1"] {
        wait_until(
            &haproxy,
            &format!("haproxy sending a request to {server}"),
            || !haproxy.log_lines("stdout.log", server).is_empty(),
        );
    }
}

#[test]
fn nginx_cutting_idle_websockets_loses_no_acked_emit_with_retries() {
    const GROUPS: u64 = 6;
    const PER_GROUP: u64 = 4;
    // Longer than nginx's read timeout, shorter than the ping interval: the connection is
    // idle while the server holds the ack back, and nginx cuts it first.
    const SLOW_ACK_MS: u64 = 4000;
    let what = "nginx, short proxy_read_timeout";
    // The server pings every 6 s; nginx gives up on a connection idle for 2 s.
    let node = NodeServer::start(
        SioVersion::V4,
        NodeOptions {
            ping_interval_ms: Some(6000),
            ..NodeOptions::default()
        },
    );
    let options = NginxOptions {
        websocket: true,
        read_timeout_secs: Some(2),
    };
    let nginx = Middlebox::nginx(node.port(), &options);
    // With `retries` every emit waits for the server's ack, and "echo" and "request-ack" are
    // never acked: the round trips use a plain client.
    let plain = connect(builder(nginx.url()), &nginx, what);
    assert_eq!(plain.transport(), Transport::WebSocket, "{what}");
    round_trips(&plain, what);
    plain.disconnect();

    let client = connect(
        builder(nginx.url())
            .retries(20)
            .reconnection_delay(Duration::from_millis(100))
            .reconnection_delay_max(Duration::from_millis(500)),
        &nginx,
        what,
    );
    assert_eq!(
        client.transport(),
        Transport::WebSocket,
        "{what}: {:?}",
        client.connect_report()
    );

    // Even groups end with an emit whose first ack the cut loses: the client must send it
    // again after reconnecting. Odd groups end idle, so nginx cuts the connection and the
    // next group is emitted while the client is reconnecting.
    let mut events = client.events();
    let (mut cuts, mut reconnects) = (0u64, 0u64);
    for group in 0..GROUPS {
        let slow = group % 2 == 0;
        let last = (group + 1) * PER_GROUP - 1;
        for seq in group * PER_GROUP..=last {
            let delay = if slow && seq == last { SLOW_ACK_MS } else { 0 };
            let reply = client
                .emit_with_ack("record", (seq, delay), WAIT)
                .unwrap_or_else(|e| panic!("{what}: emit #{seq}: {e}\n{}", nginx.logs()));
            assert_eq!(reply.get::<u64>(0).unwrap(), seq, "{what}");
        }
        let deadline = Instant::now() + WAIT * 2;
        while cuts <= group {
            let left = deadline.saturating_duration_since(Instant::now());
            match events.next_timeout(left) {
                Some(Event::Disconnected { .. }) => cuts += 1,
                Some(Event::Reconnected { .. }) => reconnects += 1,
                Some(_) => {}
                None => panic!(
                    "{what}: nginx did not cut the connection in group {group}\n{}",
                    nginx.logs()
                ),
            }
        }
    }
    let reply = client
        .emit_with_ack("recorded", (), WAIT)
        .unwrap_or_else(|e| panic!("{what}: recorded: {e}\n{}", nginx.logs()));
    while let Some(event) = events.next_timeout(Duration::ZERO) {
        match event {
            Event::Disconnected { .. } => cuts += 1,
            Event::Reconnected { .. } => reconnects += 1,
            _ => {}
        }
    }
    let recorded: Vec<u64> = reply.get(0).unwrap();
    let mut arrivals: BTreeMap<u64, usize> = BTreeMap::new();
    for seq in &recorded {
        *arrivals.entry(*seq).or_default() += 1;
    }
    let total = GROUPS * PER_GROUP;
    let missing: Vec<u64> = (0..total).filter(|s| !arrivals.contains_key(s)).collect();
    assert!(
        missing.is_empty(),
        "{what}: the server never saw {missing:?}"
    );
    assert!(
        arrivals.keys().all(|s| *s < total),
        "{what}: unknown sequence numbers in {recorded:?}"
    );
    let duplicated: Vec<(u64, usize)> = arrivals
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(s, n)| (*s, *n))
        .collect();
    let duplicates = recorded.len() - arrivals.len();
    eprintln!(
        "{what}: {total} emits acked, {cuts} cuts, {reconnects} reconnections, \
         {duplicates} duplicate arrivals {duplicated:?}"
    );
    // The client reconnected by itself after every cut but, perhaps, the last.
    assert!(cuts >= GROUPS, "{what}: {cuts} cuts");
    assert!(
        reconnects + 1 >= cuts,
        "{what}: {reconnects} reconnections for {cuts} cuts"
    );
    // A lost ack really happened, and was made good by a resend.
    assert!(
        duplicates >= 1,
        "{what}: no emit arrived twice, so no ack was lost to a cut\n{}",
        nginx.logs()
    );
    // And it was nginx's timeout that cut the connections.
    let timeouts = nginx.log_lines("error.log", "timed out");
    assert!(
        timeouts.len() as u64 >= cuts,
        "{what}: nginx logged {} timeouts for {cuts} cuts\n{}",
        timeouts.len(),
        nginx.logs()
    );
    client.disconnect();
}
