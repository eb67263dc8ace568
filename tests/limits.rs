//! Bounded memory against a hostile or just fast server: a handler that cannot keep up costs
//! at most `event_buffer` events, and the connection stays healthy meanwhile.
#![cfg(feature = "mock-server")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use sio_client::mock::MockServer;
use sio_client::{Args, Client, Transport};

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn a_stuck_handler_under_a_flood_keeps_only_the_newest_events() {
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
        .ping_timeout(Duration::from_millis(1000))
        .start_background()
        .unwrap();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let handled = Arc::new(AtomicUsize::new(0));
    let last = Arc::new(AtomicUsize::new(0));
    let (h, l) = (handled.clone(), last.clone());
    let client = Client::builder(server.url())
        .transports([Transport::WebSocket])
        .event_buffer(16)
        .on("item", move |args, _| {
            // The first item blocks the handler until the test releases it.
            if h.fetch_add(1, Ordering::SeqCst) == 0 {
                let _ = release_rx.lock().unwrap().recv();
            }
            l.store(args.get::<usize>(0).unwrap(), Ordering::SeqCst);
        })
        .connect()
        .unwrap();
    client.emit("flood", 2000u64).unwrap();
    // The ack comes after the 2000 items on the same connection: all of them have reached the
    // client by the time it returns, while the handler is still stuck on the first.
    client.emit_with_ack("ack", (), WAIT).unwrap();
    // The handler stays stuck across several heartbeats (pingInterval 200 ms): pongs go on,
    // nothing is lost but what the bound drops, and the connection stays up.
    let mut events = client.events();
    let quiet_until = std::time::Instant::now() + Duration::from_millis(1500);
    loop {
        let left = quiet_until.saturating_duration_since(std::time::Instant::now());
        match events.next_timeout(left) {
            None => break,
            Some(sio_client::Event::Disconnected { reason, .. }) => {
                panic!("disconnected while the handler was stuck: {reason}")
            }
            Some(_) => continue,
        }
    }
    assert_eq!(
        handled.load(Ordering::SeqCst),
        1,
        "the handler is still stuck"
    );
    client.emit_with_ack("ack", (), WAIT).unwrap();
    assert!(client.is_connected());
    release_tx.send(()).unwrap();
    let until = std::time::Instant::now() + WAIT;
    while last.load(Ordering::SeqCst) != 1999 {
        assert!(
            std::time::Instant::now() < until,
            "the newest item never arrived"
        );
        std::thread::yield_now();
    }
    let count = handled.load(Ordering::SeqCst);
    assert!(
        count <= 16 + 2,
        "{count} items handled: the queue was not bounded"
    );
    assert!(client.is_connected());
}
