//! Nothing the server delivers is lost: bursts of 20,000 events from real Node socket.io 4.8
//! and from the mock, over long-polling (where Node sends the whole burst in one response),
//! WebSocket, and polling-then-upgrade, read by a blocking `events()` iterator, an async
//! stream, an `on` handler, and a reader slow for its first events behind a 64-event queue.
//! Every run asserts all events arrived, in order. A reader that pauses for half a ping
//! interval keeps its connection. The opt-in drop policy reports every drop.

#![cfg(feature = "mock-server")]

mod support;

use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sio_client::mock::MockServer;
use sio_client::{Args, ClientBuilder, DisconnectReason, Event, EventOverflow};
use support::matrix::{builder, Mode};
use support::{NodeOptions, NodeServer, SioVersion};

const BURST: u64 = 20_000;
/// Padding per event: with the name and index, each event is about 100 bytes on the wire.
const PAD: usize = 80;
/// Long enough for a burst on a loaded two-core machine; a hang fails the test, not the run.
const WAIT: Duration = Duration::from_secs(60);
const PING_INTERVAL: Duration = Duration::from_millis(2000);
const PING_TIMEOUT: Duration = Duration::from_millis(2000);

#[derive(Clone, Copy, Debug)]
enum Server {
    Node,
    Mock,
}

fn node() -> &'static NodeServer {
    static NODE: OnceLock<NodeServer> = OnceLock::new();
    NODE.get_or_init(|| {
        NodeServer::start(
            SioVersion::V4,
            NodeOptions {
                ping_interval_ms: Some(PING_INTERVAL.as_millis() as u64),
                ping_timeout_ms: Some(PING_TIMEOUT.as_millis() as u64),
                ..NodeOptions::default()
            },
        )
    })
}

/// The mock answers "burst" as `tests/node/server.js` does.
fn mock() -> &'static MockServer {
    static MOCK: OnceLock<MockServer> = OnceLock::new();
    MOCK.get_or_init(|| {
        MockServer::builder()
            .ping_interval(PING_INTERVAL)
            .ping_timeout(PING_TIMEOUT)
            .on("/", "ack", |_socket, args, ack| {
                if let Some(ack) = ack {
                    ack.send(args);
                }
            })
            .on("/", "burst", |socket, args, _ack| {
                let n: u64 = args.get(0).expect("burst count");
                let size: usize = args.get(1).expect("burst size");
                let pad = "x".repeat(size);
                for i in 0..n {
                    socket.emit("item", Args::from_serialize(&(i, &pad)).expect("args"));
                }
                socket.emit("burst-done", Args::from_serialize(&n).expect("args"));
            })
            .start_background()
            .expect("mock server")
    })
}

fn client_builder(server: Server, mode: Mode) -> ClientBuilder {
    let url = match server {
        Server::Node => node().url(),
        Server::Mock => mock().url(),
    };
    builder(url, SioVersion::V4, mode).timeout(Duration::from_secs(20))
}

/// What a reader saw: the item indices in arrival order, and any event that says the
/// connection suffered.
#[derive(Default)]
struct Seen {
    items: Vec<u64>,
    trouble: Vec<String>,
}

impl Seen {
    /// Takes one event; true once the burst is complete.
    fn take(&mut self, event: Event) -> bool {
        match event {
            Event::Message { event, args, .. } if event == "item" => {
                self.items.push(args.get::<u64>(0).expect("item index"));
                false
            }
            Event::Message { event, .. } if event == "burst-done" => true,
            Event::Connected { .. } | Event::TransportChanged { .. } => false,
            other => {
                self.trouble.push(format!("{other:?}"));
                false
            }
        }
    }

    fn check(&self, what: &str) {
        assert!(
            self.trouble.is_empty(),
            "{what}: the connection suffered: {:?}",
            self.trouble
        );
        assert_eq!(
            self.items.len() as u64,
            BURST,
            "{what}: received {} of {BURST} events",
            self.items.len()
        );
        if let Some((at, got)) = self
            .items
            .iter()
            .enumerate()
            .find(|(i, got)| **got != *i as u64)
        {
            panic!("{what}: event {at} is item {got}: out of order");
        }
    }
}

/// A blocking reader; `slow` sleeps before each of its first events (the application's own
/// work, not synchronisation), `pause` once after the given number of events.
fn blocking_burst(
    server: Server,
    mode: Mode,
    builder: ClientBuilder,
    slow: Option<(usize, Duration)>,
) {
    let what = format!(
        "{server:?}/{mode:?}/blocking{}",
        if slow.is_some() { "/slow" } else { "" }
    );
    let client = builder.connect().expect("connect");
    let mut events = client.events();
    client.emit("burst", (BURST, PAD)).expect("emit burst");
    let mut seen = Seen::default();
    let deadline = Instant::now() + WAIT;
    let mut taken = 0usize;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = events.next_timeout(left).unwrap_or_else(|| {
            panic!(
                "{what}: burst incomplete after {WAIT:?}: {} items",
                seen.items.len()
            )
        });
        if let Some((count, delay)) = slow {
            if taken < count {
                std::thread::sleep(delay);
            }
        }
        taken += 1;
        if seen.take(event) {
            break;
        }
    }
    seen.check(&what);
    assert!(
        client.is_connected(),
        "{what}: disconnected after the burst"
    );
    assert_eq!(client.dropped_events(), 0);
    client.disconnect();
}

fn async_burst(server: Server, mode: Mode) {
    let what = format!("{server:?}/{mode:?}/stream");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let client = client_builder(server, mode)
            .connect_async()
            .await
            .expect("connect");
        let mut events = Box::pin(client.events());
        client
            .emit("burst", (BURST, PAD))
            .await
            .expect("emit burst");
        let mut seen = Seen::default();
        let complete = tokio::time::timeout(WAIT, async {
            while let Some(event) = events.next().await {
                if seen.take(event) {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(
            complete,
            Ok(true),
            "{what}: stream ended or timed out: {} items",
            seen.items.len()
        );
        seen.check(&what);
        assert_eq!(client.dropped_events(), 0);
        client.disconnect();
    });
}

fn handler_burst(server: Server, mode: Mode) {
    let what = format!("{server:?}/{mode:?}/handler");
    let items = Arc::new(Mutex::new(Vec::new()));
    let (done_tx, done_rx) = mpsc::channel();
    let done_tx = Mutex::new(done_tx);
    let sink = items.clone();
    let client = client_builder(server, mode)
        .on("item", move |args, _ack| {
            let i = args.get::<u64>(0).expect("item index");
            sink.lock().unwrap().push(i);
        })
        .on("burst-done", move |_args, _ack| {
            let _ = done_tx.lock().unwrap().send(());
        })
        .connect()
        .expect("connect");
    client.emit("burst", (BURST, PAD)).expect("emit burst");
    done_rx.recv_timeout(WAIT).unwrap_or_else(|_| {
        panic!(
            "{what}: no burst-done after {WAIT:?}: {} items",
            items.lock().unwrap().len()
        )
    });
    let seen = Seen {
        items: items.lock().unwrap().clone(),
        trouble: Vec::new(),
    };
    seen.check(&what);
    assert!(
        client.is_connected(),
        "{what}: disconnected after the burst"
    );
    client.disconnect();
}

fn all_readers(server: Server, mode: Mode) {
    blocking_burst(server, mode, client_builder(server, mode), None);
    async_burst(server, mode);
    handler_burst(server, mode);
    blocking_burst(
        server,
        mode,
        client_builder(server, mode).event_buffer(64),
        Some((200, Duration::from_millis(1))),
    );
}

#[test]
fn node_polling_burst_reaches_every_reader() {
    all_readers(Server::Node, Mode::Polling);
}

#[test]
fn node_websocket_burst_reaches_every_reader() {
    all_readers(Server::Node, Mode::WebSocket);
}

#[test]
fn node_upgrade_burst_reaches_every_reader() {
    all_readers(Server::Node, Mode::Upgrade);
}

#[test]
fn mock_polling_burst_reaches_every_reader() {
    all_readers(Server::Mock, Mode::Polling);
}

#[test]
fn mock_websocket_burst_reaches_every_reader() {
    all_readers(Server::Mock, Mode::WebSocket);
}

#[test]
fn mock_upgrade_burst_reaches_every_reader() {
    all_readers(Server::Mock, Mode::Upgrade);
}

/// A reader that stops for half a ping interval in the middle of a burst, behind a small
/// queue, keeps its connection: heartbeats are answered once it reads again, well within the
/// server's pingTimeout.
fn paused_reader(server: Server, mode: Mode) {
    let what = format!("{server:?}/{mode:?}/paused");
    let client = client_builder(server, mode)
        .event_buffer(64)
        .connect()
        .expect("connect");
    let mut events = client.events();
    client.emit("burst", (BURST, PAD)).expect("emit burst");
    let mut seen = Seen::default();
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = events
            .next_timeout(left)
            .unwrap_or_else(|| panic!("{what}: burst incomplete: {} items", seen.items.len()));
        if seen.items.len() == 100 {
            // The application is busy: it reads nothing for half a ping interval.
            std::thread::sleep(PING_INTERVAL / 2);
        }
        if seen.take(event) {
            break;
        }
    }
    seen.check(&what);
    let reply = client
        .emit_with_ack("ack", "still here", Duration::from_secs(10))
        .expect("the connection survived the pause");
    assert_eq!(reply.get::<String>(0).unwrap(), "still here");
    assert!(
        events.next_timeout(Duration::ZERO).is_none(),
        "{what}: unexpected event"
    );
    client.disconnect();
}

#[test]
fn a_paused_reader_keeps_its_connection() {
    for mode in [Mode::Polling, Mode::WebSocket] {
        paused_reader(Server::Node, mode);
        paused_reader(Server::Mock, mode);
    }
}

/// With `EventOverflow::DropOldest` nothing holds the server back, and every drop is counted
/// and announced by `Event::Lagged` before the next event.
#[test]
fn drop_oldest_reports_every_drop() {
    let client = client_builder(Server::Mock, Mode::WebSocket)
        .event_buffer(16)
        .event_overflow(EventOverflow::DropOldest)
        .connect()
        .expect("connect");
    let mut events = client.events();
    client.emit("burst", (BURST, PAD)).expect("emit burst");
    // Read nothing until drops have happened: the reader must not keep up by chance.
    let deadline = Instant::now() + WAIT;
    while client.dropped_events() == 0 {
        assert!(
            Instant::now() < deadline,
            "nothing dropped behind a 16-event queue"
        );
        std::thread::yield_now();
    }
    let (mut read, mut lagged, mut done) = (0u64, 0u64, false);
    while !done {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.next_timeout(left).expect("burst incomplete") {
            Event::Lagged { dropped } => lagged += dropped,
            Event::Message { event, .. } if event == "burst-done" => done = true,
            _ => read += 1,
        }
    }
    // `Connected`, the items and "burst-done": each was read or reported dropped.
    assert_eq!(
        read + lagged,
        1 + BURST,
        "every event is either read or reported"
    );
    assert_eq!(client.dropped_events(), lagged);
}

/// A socket with handlers that never reads `events()` is not held back by it.
#[test]
fn an_unread_events_queue_does_not_stall_a_socket_with_handlers() {
    let (done_tx, done_rx) = mpsc::channel();
    let done_tx = Mutex::new(done_tx);
    let client = client_builder(Server::Mock, Mode::WebSocket)
        .event_buffer(16)
        // "item" has no handler: those go to the unread `events()` queue.
        .on("burst-done", move |_args, _ack| {
            let _ = done_tx.lock().unwrap().send(());
        })
        .connect()
        .expect("connect");
    client.emit("burst", (BURST, PAD)).expect("emit burst");
    done_rx
        .recv_timeout(WAIT)
        .expect("burst-done reached its handler");
    assert!(client.dropped_events() >= BURST - 16);
    let mut events = client.events();
    assert!(matches!(
        events.next_timeout(WAIT),
        Some(Event::Lagged { .. })
    ));
}

/// An application that stops reading for longer than pingInterval + pingTimeout loses the
/// connection (it is not reading the server's pings), and hears it: what arrived before is all
/// there, in order, then `Disconnected`. Never silent, never a gap.
#[test]
fn a_reader_stopped_past_the_heartbeat_hears_the_disconnect() {
    let server = MockServer::builder()
        .ping_interval(Duration::from_millis(200))
        .ping_timeout(Duration::from_millis(400))
        .on("/", "burst", |socket, args, _ack| {
            let n: u64 = args.get(0).expect("burst count");
            for i in 0..n {
                socket.emit("item", Args::from_serialize(&(i, "x")).expect("args"));
            }
        })
        .start_background()
        .expect("mock server");
    let client = builder(server.url(), SioVersion::V4, Mode::WebSocket)
        .event_buffer(16)
        .connect()
        .expect("connect");
    let mut events = client.events();
    client.emit("burst", (BURST,)).expect("emit burst");
    // The application is stuck: it reads nothing for well past the 600 ms heartbeat window.
    std::thread::sleep(Duration::from_millis(2000));
    let mut items = Vec::new();
    let deadline = Instant::now() + WAIT;
    let reason = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.next_timeout(left) {
            Some(Event::Message { event, args, .. }) if event == "item" => {
                items.push(args.get::<u64>(0).expect("index"))
            }
            Some(Event::Disconnected { reason, .. }) => break reason,
            Some(Event::Connected { .. } | Event::Error(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(
        matches!(
            reason,
            DisconnectReason::PingTimeout | DisconnectReason::TransportClose
        ),
        "{reason}"
    );
    assert!(
        !items.is_empty() && (items.len() as u64) < BURST,
        "{} items",
        items.len()
    );
    assert_eq!(
        items,
        (0..items.len() as u64).collect::<Vec<_>>(),
        "what arrived before the disconnect is complete and in order"
    );
    assert_eq!(client.dropped_events(), 0);
}
