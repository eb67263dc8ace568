//! Soak: acknowledged emits keep flowing while the server goes away again and again.
//!
//! Several threads share one reconnecting [`Client`] and emit `("ack", seq, attempt)` without
//! pause; the server acks with the same arguments. An emit that fails with `Disconnected` or
//! `AckTimeout` is retried by the test with the same `seq` (and the next `attempt`) until it is
//! acknowledged: the client has no ack retries of its own. Meanwhile the main thread disrupts
//! the server until the connection has been lost [`DISRUPTIONS`] times: each time only after
//! the client has come back from the previous loss and [`PER_ROUND`] more acks went through, so
//! every disruption hits a live connection with traffic in flight.
//!
//! At the end every `seq` handed out was acknowledged to its caller exactly once, each reply
//! carried the `(seq, attempt)` of the emit it answered (a reply delivered to another emit, or
//! a stale one from before a reconnection, would not), and the client reconnected exactly once
//! per lost connection, never without a disruption.
//!
//! Against Node socket.io 4 the disruption is a SIGKILL and a fresh process on the same port,
//! over WebSocket and over long-polling; against the mock, `restart()` (every session gone) or
//! `drop_all_connections()` (TCP resets mid-request, mid-frame), each over WebSocket and over
//! long-polling. Loopback only; about 10 s in all.
#![cfg(feature = "mock-server")]

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use sio_client::mock::MockServer;
use sio_client::{Client, ClientBuilder, DisconnectReason, Error, Event, Transport};
use support::{NodeOptions, NodeServer, SioVersion};

const DISRUPTIONS: usize = 20;
/// Acks that must go through after each reconnection before the next disruption.
const PER_ROUND: usize = 20;
/// Threads emitting at once on the one client.
const WORKERS: usize = 4;
/// Short, so an ack lost in an outage is retried soon; a retry costs nothing.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);
/// A retry count this high means the client is stuck, not unlucky.
const MAX_ATTEMPTS: u64 = 50;
/// Longest wait for progress or a reconnection before the test fails.
const WAIT: Duration = Duration::from_secs(20);

fn builder(url: String, transport: Transport) -> ClientBuilder {
    Client::builder(url)
        .transports([transport])
        .upgrade(false)
        .remember_transport(false)
        .reconnection_delay(Duration::from_millis(50))
        .reconnection_delay_max(Duration::from_millis(200))
        .timeout(WAIT)
}

/// One successful ack: the seq and attempt emitted, and what the reply said.
struct Acked {
    seq: u64,
    attempt: u64,
    reply: (u64, u64),
}

struct Report {
    acked: Vec<Acked>,
    /// How many seqs were handed out: 0..handed_out must all be acked.
    handed_out: u64,
    /// Failed attempts, by error kind.
    failures: HashMap<&'static str, u64>,
    reconnects: usize,
    /// Disruptions the connection lived through (see [`soak`]).
    survived: usize,
    disconnect_reasons: Vec<DisconnectReason>,
}

fn kind(error: &Error) -> Option<&'static str> {
    match error {
        Error::Disconnected(_) => Some("disconnected"),
        Error::AckTimeout(_) => Some("ack timeout"),
        _ => None,
    }
}

/// What the main thread hears, in the order it happened.
enum Signal {
    /// A worker's emit was acknowledged.
    Acked,
    /// The client lost the connection.
    Down,
    /// The client is connected again.
    Up,
}

/// Whether a disruption may leave the connection standing (see [`soak`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Survivable {
    No,
    Yes,
}

/// Runs the workers and disrupts the server until the client has come back from
/// [`DISRUPTIONS`] lost connections, as described in the module docs; then stops the workers
/// and returns what happened.
///
/// A disruption that cuts no request in flight may leave the connection standing: with
/// long-polling, resetting idle keep-alive connections between two requests loses nothing
/// (the next request opens a new one, or meets the reset and is sent again on a new one, and
/// the session lives on, on Node as on the mock). Only a reset pending poll ends the session,
/// so over polling most disruptions are survived. With
/// `Survivable::Yes`, [`PER_ROUND`] acks after the disruption with no disconnect count it as
/// survived and the server is disrupted again; with `No` the connection must go down.
fn soak(client: Client, survivable: Survivable, mut disrupt: impl FnMut()) -> Report {
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (signal_tx, signals) = mpsc::channel::<Signal>();

    // Reads the connection's state changes until the stream ends at `disconnect()`.
    let watcher = {
        let mut events = client.events();
        let signal_tx = signal_tx.clone();
        thread::spawn(move || {
            let mut reasons = Vec::new();
            let mut reconnects = 0;
            for event in events.by_ref() {
                match event {
                    Event::Disconnected { reason, .. } => {
                        reasons.push(reason);
                        let _ = signal_tx.send(Signal::Down);
                    }
                    Event::Reconnected { .. } => {
                        reconnects += 1;
                        let _ = signal_tx.send(Signal::Up);
                    }
                    Event::ReconnectFailed => panic!("reconnection gave up"),
                    _ => {}
                }
            }
            (reconnects, reasons)
        })
    };

    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (client, next, stop, signal_tx) = (
                client.clone(),
                next.clone(),
                stop.clone(),
                signal_tx.clone(),
            );
            thread::spawn(move || {
                let mut acked = Vec::new();
                let mut failures: HashMap<&'static str, u64> = HashMap::new();
                while !stop.load(Ordering::SeqCst) {
                    let seq = next.fetch_add(1, Ordering::SeqCst);
                    let mut attempt = 0;
                    loop {
                        match client.emit_with_ack("ack", (seq, attempt), ACK_TIMEOUT) {
                            Ok(reply) => {
                                let reply = reply.parse::<(u64, u64)>().unwrap();
                                acked.push(Acked {
                                    seq,
                                    attempt,
                                    reply,
                                });
                                let _ = signal_tx.send(Signal::Acked);
                                break;
                            }
                            Err(error) => {
                                let kind = kind(&error).unwrap_or_else(|| {
                                    panic!("seq {seq} attempt {attempt}: unexpected {error:?}")
                                });
                                *failures.entry(kind).or_default() += 1;
                                attempt += 1;
                                assert!(attempt < MAX_ATTEMPTS, "seq {seq}: last error {error}");
                            }
                        }
                    }
                }
                (acked, failures)
            })
        })
        .collect();
    drop(signal_tx);

    let next_signal = |what: &str| {
        signals
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("waiting for {what}: nothing happened for {WAIT:?}"))
    };
    // Acks signalled after `Up` went over the new connection: the channel keeps the order.
    let wait_acks = |n: usize| {
        let mut seen = 0;
        while seen < n {
            match next_signal("acks") {
                Signal::Acked => seen += 1,
                Signal::Down => panic!("the connection went down with no disruption"),
                Signal::Up => panic!("a reconnection with no disruption"),
            }
        }
    };
    wait_acks(PER_ROUND);
    let mut lost = 0;
    let mut survived = 0;
    while lost < DISRUPTIONS {
        disrupt();
        let mut acks_after = 0;
        let went_down = loop {
            match next_signal("the disruption's effect") {
                Signal::Down => break true,
                Signal::Acked => {
                    acks_after += 1;
                    if survivable == Survivable::Yes && acks_after >= PER_ROUND {
                        break false;
                    }
                }
                Signal::Up => panic!("a reconnection without a disconnect"),
            }
        };
        if !went_down {
            survived += 1;
            assert!(survived < 50 * DISRUPTIONS, "the disruptions never hit");
            continue;
        }
        loop {
            match next_signal("the reconnection") {
                Signal::Up => break,
                // A reply that arrived just before the loss, its worker woken after the
                // watcher: the channel order is the signals' order, not the replies'.
                Signal::Acked => {}
                Signal::Down => panic!("a second disconnect before the reconnection"),
            }
        }
        lost += 1;
        wait_acks(PER_ROUND);
    }
    stop.store(true, Ordering::SeqCst);

    let mut report = Report {
        acked: Vec::new(),
        handed_out: 0,
        failures: HashMap::new(),
        reconnects: 0,
        survived,
        disconnect_reasons: Vec::new(),
    };
    for worker in workers {
        let (acked, failures) = worker.join().unwrap();
        report.acked.extend(acked);
        for (kind, n) in failures {
            *report.failures.entry(kind).or_default() += n;
        }
    }
    report.handed_out = next.load(Ordering::SeqCst);
    client.disconnect();
    let (reconnects, reasons) = watcher.join().unwrap();
    report.reconnects = reconnects;
    report.disconnect_reasons = reasons;
    report
}

/// The checks every variant shares.
fn check(name: &str, report: &Report, started: Instant) {
    let mut times_acked = vec![0u32; usize::try_from(report.handed_out).unwrap()];
    for a in &report.acked {
        assert_eq!(
            a.reply,
            (a.seq, a.attempt),
            "{name}: the reply to seq {} attempt {} belongs to another emit",
            a.seq,
            a.attempt
        );
        times_acked[usize::try_from(a.seq).unwrap()] += 1;
    }
    let missing: Vec<usize> = (0..times_acked.len())
        .filter(|&s| times_acked[s] == 0)
        .collect();
    let twice: Vec<usize> = (0..times_acked.len())
        .filter(|&s| times_acked[s] > 1)
        .collect();
    assert!(missing.is_empty(), "{name}: never acked: {missing:?}");
    assert!(twice.is_empty(), "{name}: acked more than once: {twice:?}");
    assert_eq!(
        report.reconnects, DISRUPTIONS,
        "{name}: one reconnection per disruption (disconnects: {:?})",
        report.disconnect_reasons
    );
    let retried = report.acked.iter().filter(|a| a.attempt > 0).count();
    eprintln!(
        "{name}: {} seqs acked exactly once, {retried} after a retry, failed attempts {:?}, \
         {} reconnections, {} disruptions survived, in {:?}",
        report.handed_out,
        report.failures,
        report.reconnects,
        report.survived,
        started.elapsed()
    );
}

fn node_soak(name: &str, transport: Transport) {
    let mut server = NodeServer::start(SioVersion::V4, NodeOptions::default());
    let started = Instant::now();
    let client = builder(server.url(), transport).connect().unwrap();
    assert_eq!(client.transport(), transport);
    let report = soak(client, Survivable::No, || server.restart());
    check(name, &report, started);
}

#[test]
fn node_v4_restarted_twenty_times_under_acked_traffic_over_websocket() {
    node_soak("node v4 restart / websocket", Transport::WebSocket);
}

#[test]
fn node_v4_restarted_twenty_times_under_acked_traffic_over_polling() {
    node_soak("node v4 restart / polling", Transport::Polling);
}

/// The mock, on a port the system never hands out as the local port of an outgoing
/// connection. `restart()` closes the listener and binds the same port again; a port from the
/// ephemeral range (what port 0 gives) can be taken in between by any connection opened on
/// the machine, and the restart then fails with `AddrInUse`. Below the range that cannot
/// happen; a port some other server listens on is skipped.
fn mock() -> MockServer {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .expect("the ephemeral port range");
    let low: u16 = range
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("the ephemeral range's lower bound");
    assert!(
        low > 10_000,
        "ephemeral ports start at {low}: no room below them"
    );
    for _ in 0..100 {
        let port = rand::random::<u16>() % (low - 10_000) + 10_000;
        let started = MockServer::builder()
            .port(port)
            .on("/", "ack", |_socket, args, ack| {
                if let Some(ack) = ack {
                    ack.send(args);
                }
            })
            .start_background();
        match started {
            Ok(server) => return server,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(e) => panic!("mock server: {e}"),
        }
    }
    panic!("no free port below the ephemeral range {range:?} in 100 tries");
}

/// Against the mock: every acked (seq, attempt) is among the events the server recorded.
fn mock_soak(
    name: &str,
    transport: Transport,
    survivable: Survivable,
    disrupt: impl Fn(&MockServer),
) {
    let server = mock();
    let started = Instant::now();
    let client = builder(server.url(), transport).connect().unwrap();
    assert_eq!(client.transport(), transport);
    let report = soak(client, survivable, || disrupt(&server));
    check(name, &report, started);
    let received: std::collections::HashSet<(u64, u64)> = server
        .received()
        .iter()
        .map(|e| e.args.parse::<(u64, u64)>().unwrap())
        .collect();
    for a in &report.acked {
        assert!(
            received.contains(&(a.seq, a.attempt)),
            "{name}: seq {} attempt {} acked but never received",
            a.seq,
            a.attempt
        );
    }
}

#[test]
fn mock_restarted_twenty_times_over_websocket() {
    mock_soak(
        "mock restart / websocket",
        Transport::WebSocket,
        Survivable::No,
        |s| s.restart_blocking().unwrap(),
    );
}

#[test]
fn mock_restarted_twenty_times_over_polling() {
    mock_soak(
        "mock restart / polling",
        Transport::Polling,
        Survivable::No,
        |s| s.restart_blocking().unwrap(),
    );
}

#[test]
fn mock_connections_dropped_twenty_times_over_websocket() {
    // A WebSocket has no idle moment: every reset cuts it.
    mock_soak(
        "mock drop / websocket",
        Transport::WebSocket,
        Survivable::No,
        |s| s.faults().drop_all_connections(),
    );
}

#[test]
fn mock_connections_dropped_twenty_times_over_polling() {
    mock_soak(
        "mock drop / polling",
        Transport::Polling,
        Survivable::Yes,
        |s| s.faults().drop_all_connections(),
    );
}
