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
