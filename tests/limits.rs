//! Bounded memory against a fast server without losing anything: a handler that cannot keep up
//! holds the server back (back-pressure), and the connection stays healthy meanwhile.
#![cfg(feature = "mock-server")]

use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use sio_client::mock::MockServer;
use sio_client::{Args, Client, Transport};

const WAIT: Duration = Duration::from_secs(10);

/// A handler stuck under a flood: the client stops reading (back-pressure) instead of dropping
/// or buffering without end, keeps serving the application's commands meanwhile, and once the
/// handler is released every event arrives, in order, exactly once.
#[test]
fn a_stuck_handler_under_a_flood_holds_the_server_back_and_loses_nothing() {
    let server = MockServer::builder()
        .on("/", "flood", |socket, args, _| {
            let n: u64 = args.get(0).unwrap_or(0);
            for i in 0..n {
                socket.emit("item", Args::from_serialize(&i).unwrap());
            }
        })
        .on("/", "ack", |_, args, ack| {
            if let Some(ack) = ack {
                ack.send(args);
            }
        })
        .ping_interval(Duration::from_millis(200))
        .ping_timeout(Duration::from_millis(5000))
        .start_background()
        .unwrap();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let handled = Arc::new(Mutex::new(Vec::new()));
    let h = handled.clone();
    let client = Client::builder(server.url())
        .transports([Transport::WebSocket])
        .event_buffer(16)
        .on("item", move |args, _| {
            let i = args.get::<u64>(0).unwrap();
            // The first item blocks the handler until the test releases it.
            if i == 0 {
                let _ = release_rx.lock().unwrap().recv();
            }
            h.lock().unwrap().push(i);
        })
        .connect()
        .unwrap();
    client.emit("flood", 2000u64).unwrap();
    // While the handler is stuck, the client still sends what the application emits.
    client.emit("note", "while stuck").unwrap();
    let notes = server.wait_for_events_blocking(2, WAIT).unwrap();
    assert!(
        notes.iter().any(|e| e.event == "note"),
        "an emit made while the handler was stuck did not reach the server: {notes:?}"
    );
    assert!(
        handled.lock().unwrap().is_empty(),
        "the handler is still stuck"
    );
    release_tx.send(()).unwrap();
    let until = std::time::Instant::now() + WAIT;
    while handled.lock().unwrap().len() < 2000 {
        assert!(
            std::time::Instant::now() < until,
            "only {} of 2000 items were handled",
            handled.lock().unwrap().len()
        );
        std::thread::yield_now();
    }
    let handled = handled.lock().unwrap().clone();
    assert_eq!(
        handled,
        (0..2000).collect::<Vec<u64>>(),
        "every item, in order, once"
    );
    client.emit_with_ack("ack", (), WAIT).unwrap();
    assert!(client.is_connected());
    assert_eq!(client.dropped_events(), 0);
}

/// Emits kept for after a reconnection count against `max_send_queue` too: past it, an emit
/// fails at the call site (`SendQueueFull`) instead of the buffer growing in bytes without end.
#[test]
fn buffered_emits_are_bounded_in_bytes_too() {
    let server = MockServer::builder().start_background().unwrap();
    let client = Client::builder(server.url())
        .transports([Transport::WebSocket])
        .max_send_queue(4 << 20)
        .reconnection_delay(Duration::from_secs(600))
        .connect()
        .unwrap();
    let mut events = client.events();
    server.faults().drop_all_connections();
    loop {
        match events.next_timeout(WAIT) {
            Some(sio_client::Event::Disconnected { .. }) => break,
            Some(_) => continue,
            None => panic!("no disconnect after the connections dropped"),
        }
    }
    let megabyte = "x".repeat(1 << 20);
    let mut accepted = 0;
    let error = loop {
        match client.emit("big", &megabyte) {
            Ok(()) => {
                accepted += 1;
                assert!(accepted <= 8, "{accepted} MB buffered past a 4 MiB limit");
            }
            Err(e) => break e,
        }
    };
    assert!(
        matches!(error, sio_client::Error::SendQueueFull { .. }),
        "{error:?}"
    );
    assert!(
        accepted >= 4,
        "only {accepted} MB buffered under a 4 MiB limit"
    );
}
