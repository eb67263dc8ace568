//! An emit reaches the socket one of two ways: on the caller's own thread while the connection's
//! driver is idle, or through the driver's channel while it is busy (reading a burst, opening,
//! upgrading). Whichever way each takes, a thread's emits reach the server in the order they
//! were made, each exactly once, and every acknowledgement comes back to its own emit. Checked
//! against real Node socket.io 4.8 (its "record" handler keeps every arrival in order) while it
//! bursts 20,000 events at the client, over WebSocket, long-polling and the upgrade, from the
//! blocking and the async client; and an ack timeout armed from the caller's thread fires at
//! the ack's deadline, not at the next heartbeat.

#![cfg(feature = "mock-server")]

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use sio_client::mock::MockServer;
use sio_client::{AckHandle, Client, Error, Event};
use support::matrix::{builder, Mode};
use support::{NodeOptions, NodeServer, SioVersion};

/// Emits per test: every third one asks for an ack, every 100th waits for it.
const EMITS: u64 = 3_000;
const BURST: u64 = 20_000;
const WAIT: Duration = Duration::from_secs(60);

/// One Node server for the binary. Heartbeats of 2 s: a debug build reading a burst on a busy
/// two-core machine must not be mistaken for a dead connection (the burst tests' setting).
fn server() -> &'static NodeServer {
    static NODE: OnceLock<NodeServer> = OnceLock::new();
    NODE.get_or_init(|| {
        NodeServer::start(
            SioVersion::V4,
            NodeOptions {
                ping_interval_ms: Some(2000),
                ping_timeout_ms: Some(2000),
                ..NodeOptions::default()
            },
        )
    })
}

/// Each test numbers its emits from its own base: the server's record is shared by the tests
/// running beside it, and each test reads back its own range.
static NEXT_BASE: AtomicU64 = AtomicU64::new(1);

fn base() -> u64 {
    NEXT_BASE.fetch_add(1, Ordering::Relaxed) * 1_000_000
}

/// What the server recorded of the range `base..base + EMITS`, in arrival order.
fn recorded(all: &Value, base: u64) -> Vec<u64> {
    all.as_array()
        .expect("recorded is an array")
        .iter()
        .filter_map(Value::as_u64)
        .filter(|seq| (base..base + EMITS).contains(seq))
        .collect()
}

/// The server's answer to "recorded" holds `base..base + EMITS` once each, in order.
fn assert_recorded_in_order(all: &sio_client::Args, base: u64, mode: Mode) {
    let got = recorded(&all.get::<Value>(0).expect("list"), base);
    let want: Vec<u64> = (base..base + EMITS).collect();
    assert_eq!(got.len(), want.len(), "{mode:?}: emits lost or repeated");
    assert_eq!(got, want, "{mode:?}: emits out of order");
}

fn blocking_order(mode: Mode) {
    let server = server();
    let client = builder(server.url(), SioVersion::V4, mode)
        .connect()
        .expect("connect");
    let events = client.events();
    let reader = thread::spawn(move || {
        let mut items = 0u64;
        for event in events {
            match event {
                Event::Message { event, .. } if event == "item" => items += 1,
                Event::Message { event, .. } if event == "burst-done" => return items,
                _ => {}
            }
        }
        items
    });
    client.emit("burst", (BURST, 80)).expect("burst");
    let base = base();
    let mut handles: Vec<(u64, AckHandle)> = Vec::new();
    for seq in base..base + EMITS {
        match seq % 100 {
            // The driver is idle after this wait, so the next emits may go straight out.
            0 => {
                let args = client
                    .emit_with_ack("record", seq, WAIT)
                    .unwrap_or_else(|e| panic!("ack of {seq}: {e}"));
                assert_eq!(args.get::<u64>(0).expect("seq"), seq);
            }
            n if n % 3 == 0 => handles.push((
                seq,
                client
                    .emit_with_ack_handle("record", seq, WAIT)
                    .expect("emit"),
            )),
            _ => client.emit("record", seq).expect("emit"),
        }
    }
    for (seq, handle) in handles {
        let args = handle
            .wait()
            .unwrap_or_else(|e| panic!("ack of {seq}: {e}"));
        assert_eq!(
            args.get::<u64>(0).expect("seq"),
            seq,
            "an ack for another emit"
        );
    }
    let all = client
        .emit_with_ack("recorded", (), WAIT)
        .expect("recorded");
    assert_recorded_in_order(&all, base, mode);
    assert_eq!(
        reader.join().expect("reader"),
        BURST,
        "{mode:?}: burst items lost"
    );
}

async fn async_order(mode: Mode) {
    let server = server();
    let client = builder(server.url(), SioVersion::V4, mode)
        .connect_async()
        .await
        .expect("connect");
    let mut stream = Box::pin(client.events());
    let reader = tokio::spawn(async move {
        let mut items = 0u64;
        while let Some(event) = stream.next().await {
            match event {
                Event::Message { event, .. } if event == "item" => items += 1,
                Event::Message { event, .. } if event == "burst-done" => return items,
                _ => {}
            }
        }
        items
    });
    client.emit("burst", (BURST, 80)).await.expect("burst");
    let base = base();
    let mut handles = Vec::new();
    for seq in base..base + EMITS {
        match seq % 100 {
            0 => {
                let args = client
                    .emit_with_ack("record", seq, WAIT)
                    .await
                    .unwrap_or_else(|e| panic!("ack of {seq}: {e}"));
                assert_eq!(args.get::<u64>(0).expect("seq"), seq);
            }
            n if n % 3 == 0 => handles.push((
                seq,
                client
                    .emit_with_ack_handle("record", seq, WAIT)
                    .expect("emit"),
            )),
            _ => client.emit("record", seq).await.expect("emit"),
        }
    }
    for (seq, handle) in handles {
        let args = handle.await.unwrap_or_else(|e| panic!("ack of {seq}: {e}"));
        assert_eq!(
            args.get::<u64>(0).expect("seq"),
            seq,
            "an ack for another emit"
        );
    }
    let all = client
        .emit_with_ack("recorded", (), WAIT)
        .await
        .expect("recorded");
    assert_recorded_in_order(&all, base, mode);
    assert_eq!(
        reader.await.expect("reader"),
        BURST,
        "{mode:?}: burst items lost"
    );
}

#[test]
fn blocking_emits_keep_their_order_over_websocket_during_a_burst() {
    blocking_order(Mode::WebSocket);
}

#[test]
fn blocking_emits_keep_their_order_over_polling_during_a_burst() {
    blocking_order(Mode::Polling);
}

#[test]
fn blocking_emits_keep_their_order_across_the_upgrade_during_a_burst() {
    blocking_order(Mode::Upgrade);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_emits_keep_their_order_over_websocket_during_a_burst() {
    async_order(Mode::WebSocket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_emits_keep_their_order_across_the_upgrade_during_a_burst() {
    async_order(Mode::Upgrade).await;
}

/// Emits from several threads at once: each thread's emits arrive in its own order.
#[test]
fn emits_from_eight_threads_each_keep_their_order() {
    let server = server();
    let client = builder(server.url(), SioVersion::V4, Mode::WebSocket)
        .connect()
        .expect("connect");
    let bases: Vec<u64> = (0..8).map(|_| base()).collect();
    thread::scope(|scope| {
        for &base in &bases {
            let client = &client;
            scope.spawn(move || {
                for seq in base..base + EMITS {
                    if seq % 50 == 0 {
                        client.emit_with_ack("record", seq, WAIT).expect("ack");
                    } else {
                        client.emit("record", seq).expect("emit");
                    }
                }
            });
        }
    });
    let all = client
        .emit_with_ack("recorded", (), WAIT)
        .expect("recorded");
    let all = all.get::<Value>(0).expect("list");
    for base in bases {
        let want: Vec<u64> = (base..base + EMITS).collect();
        assert_eq!(
            recorded(&all, base),
            want,
            "thread from {base}: lost, repeated or reordered"
        );
    }
}

/// A mock whose "ack" answers with its own arguments.
fn acking_mock(builder: sio_client::mock::MockServerBuilder) -> MockServer {
    builder
        .on("/", "ack", |_socket, args, ack| {
            if let Some(ack) = ack {
                ack.send(args);
            }
        })
        .start_background()
        .expect("mock")
}

/// An emit made while the driver is idle arms its ack timeout from the caller's thread: the
/// timer must move to the ack's deadline. The heartbeat here is 30 s away, so an ack timeout
/// that waited for the driver's next deadline would take that long.
#[test]
fn an_ack_timeout_armed_from_the_callers_thread_fires_at_its_deadline() {
    let server = acking_mock(
        MockServer::builder()
            .ping_interval(Duration::from_secs(30))
            .ping_timeout(Duration::from_secs(30)),
    );
    let client = Client::builder(server.url())
        .transports([sio_client::Transport::WebSocket])
        .connect()
        .expect("connect");
    for round in 0..5 {
        // An answered round trip first, so the driver is idle when the next emit is made.
        let args = client.emit_with_ack("ack", round, WAIT).expect("ack");
        assert_eq!(args.get::<u64>(0).expect("round"), round);
        let start = Instant::now();
        let outcome = client.emit_with_ack("nobody", round, Duration::from_millis(200));
        assert!(
            matches!(outcome, Err(Error::AckTimeout(_))),
            "round {round}: {outcome:?}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "round {round}: the ack timeout waited for the heartbeat ({:?})",
            start.elapsed()
        );
    }
}

/// A runtime shut down under a connected `AsyncClient` drops its connection's task: emits then
/// fail at the call site (and an ack wait ends with an error) instead of being accepted by a
/// driver nobody runs any more.
#[test]
fn emits_fail_once_the_clients_runtime_is_gone() {
    let server = acking_mock(MockServer::builder());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let client = runtime.block_on(async {
        let client = sio_client::AsyncClient::builder(server.url())
            .transports([sio_client::Transport::WebSocket])
            .connect_async()
            .await
            .expect("connect");
        // The connection works, and is idle afterwards (the next emit may go straight out).
        let args = client.emit_with_ack("ack", 1, WAIT).await.expect("ack");
        assert_eq!(args.get::<u64>(0).expect("arg"), 1);
        client
    });
    runtime.shutdown_timeout(WAIT);
    let other = tokio::runtime::Runtime::new().expect("runtime");
    assert!(!client.is_connected(), "connected with its runtime gone");
    other.block_on(async {
        let emitted = client.emit("ack", 2).await;
        assert!(
            emitted.is_err(),
            "an emit was accepted with nobody to send it: {emitted:?}"
        );
        let answered = tokio::time::timeout(WAIT, client.emit_with_ack("ack", 3, WAIT)).await;
        assert!(
            matches!(answered, Ok(Err(_))),
            "an ack wait did not fail at once: {answered:?}"
        );
    });
}
