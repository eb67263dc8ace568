//! Reconnection against the mock server: the client comes back by itself, keeps what it was
//! asked to send, stops when told to, and gives up when told to.
#![cfg(feature = "mock-server")]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sio_client::mock::{MockServer, MockServerBuilder};
use sio_client::{Client, ClientBuilder, DisconnectReason, Error, Event, Events, Transport};

const WAIT: Duration = Duration::from_secs(10);

fn server(configure: impl FnOnce(MockServerBuilder) -> MockServerBuilder) -> MockServer {
    let builder = MockServer::builder().on("/", "ack", |_socket, args, ack| {
        if let Some(ack) = ack {
            ack.send(args);
        }
    });
    configure(builder).start_background().expect("mock server")
}

fn client(server: &MockServer) -> ClientBuilder {
    Client::builder(server.url())
        .transports([Transport::WebSocket])
        .remember_transport(false)
        .reconnection_delay(Duration::from_millis(50))
        .reconnection_delay_max(Duration::from_millis(200))
        .timeout(WAIT)
}

/// The next event that is not a message, skipping `Connected`.
fn next_state(events: &mut Events) -> Option<Event> {
    loop {
        match events.next_timeout(WAIT) {
            Some(Event::Connected { .. } | Event::Message { .. }) => continue,
            other => return other,
        }
    }
}

fn wait_disconnected(events: &mut Events) -> DisconnectReason {
    loop {
        match next_state(events) {
            Some(Event::Disconnected { reason, .. }) => return reason,
            Some(Event::Error(_)) => continue,
            other => panic!("waiting for a disconnect, got {other:?}"),
        }
    }
}

fn wait_reconnected(events: &mut Events) -> u32 {
    loop {
        match next_state(events) {
            Some(Event::Reconnected { attempt, .. }) => return attempt,
            Some(Event::Reconnecting { .. } | Event::Error(_) | Event::Disconnected { .. }) => {
                continue
            }
            other => panic!("waiting for the reconnection, got {other:?}"),
        }
    }
}

#[test]
fn comes_back_after_a_server_restart_and_sends_what_waited() {
    let server = server(|b| b);
    let client = client(&server).connect().unwrap();
    let mut events = client.events();
    server.faults().refuse_connections(true);
    server.restart_blocking().unwrap();
    let reason = wait_disconnected(&mut events);
    assert!(
        matches!(
            reason,
            DisconnectReason::TransportClose | DisconnectReason::TransportError
        ),
        "{reason}"
    );
    assert!(!client.is_connected());
    // Emitted while the server is unreachable: kept, in order, for the reconnection.
    for i in 0..5 {
        client.emit("queued", i).unwrap();
    }
    server.clear_received();
    server.faults().refuse_connections(false);
    let attempt = wait_reconnected(&mut events);
    assert!(attempt >= 1);
    assert!(client.is_connected());
    let received = server.wait_for_events_blocking(5, WAIT).unwrap();
    let order: Vec<i64> = received.iter().map(|e| e.args.get(0).unwrap()).collect();
    assert_eq!(order, vec![0, 1, 2, 3, 4]);
    let reply = client.emit_with_ack("ack", "after", WAIT).unwrap();
    assert_eq!(reply.get::<String>(0).unwrap(), "after");
}

#[test]
fn disconnect_during_backoff_stops_all_reconnection() {
    let server = server(|b| b);
    let client = client(&server)
        .reconnection_delay(Duration::from_millis(300))
        .reconnection_delay_max(Duration::from_millis(300))
        .randomization_factor(0.0)
        .connect()
        .unwrap();
    let mut events = client.events();
    server.faults().refuse_connections(true);
    server.faults().drop_all_connections();
    wait_disconnected(&mut events);
    // The first attempt is scheduled; stop now, in the middle of the backoff.
    loop {
        match next_state(&mut events) {
            Some(Event::Reconnecting { .. }) => break,
            Some(Event::Error(_)) => continue,
            other => panic!("expected a reconnection attempt, got {other:?}"),
        }
    }
    client.disconnect();
    // The event stream ends, with no reconnection announced after the disconnect.
    while let Some(event) = events.next_timeout(WAIT) {
        assert!(
            !matches!(event, Event::Reconnected { .. } | Event::Connected { .. }),
            "{event:?}"
        );
    }
    assert!(matches!(client.emit("x", 1), Err(Error::Disconnected(_))));
    // The server is reachable again; nothing comes: well past several backoff delays.
    server.faults().refuse_connections(false);
    let sockets_before = server.socket_history().len();
    assert!(server
        .wait_for_sockets_blocking(sockets_before + 1, Duration::from_secs(2))
        .is_err());
}

#[test]
fn auth_callback_is_evaluated_at_every_connect() {
    let seen = Arc::new(AtomicU64::new(0));
    let guard_seen = seen.clone();
    let server = server(move |b| {
        b.connect_guard("/", move |auth: Option<&Value>| {
            let token = auth.and_then(|a| a["token"].as_u64()).unwrap_or(0);
            guard_seen.store(token, Ordering::SeqCst);
            Ok(())
        })
    });
    let counter = Arc::new(AtomicU64::new(0));
    let tokens = counter.clone();
    let client = client(&server)
        .auth_fn(move || json!({ "token": tokens.fetch_add(1, Ordering::SeqCst) + 1 }))
        .connect()
        .unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    let mut events = client.events();
    server.faults().drop_all_connections();
    wait_reconnected(&mut events);
    assert_eq!(
        seen.load(Ordering::SeqCst),
        2,
        "a fresh token on reconnection"
    );
}

#[test]
fn gives_up_after_the_configured_attempts() {
    let server = server(|b| b);
    let client = client(&server).reconnection_attempts(2).connect().unwrap();
    let mut events = client.events();
    server.faults().refuse_connections(true);
    server.faults().drop_all_connections();
    wait_disconnected(&mut events);
    let mut attempts = Vec::new();
    loop {
        match next_state(&mut events) {
            Some(Event::Reconnecting { attempt, .. }) => attempts.push(attempt),
            Some(Event::Error(_)) => continue,
            Some(Event::ReconnectFailed) => break,
            other => panic!("after attempts {attempts:?}: {other:?}"),
        }
    }
    assert_eq!(attempts, vec![1, 2]);
    assert!(events.next_timeout(WAIT).is_none(), "the stream ends");
    assert!(matches!(client.emit("x", 1), Err(Error::Disconnected(_))));
}

#[test]
fn no_reconnection_when_turned_off() {
    let server = server(|b| b);
    let client = client(&server).reconnection(false).connect().unwrap();
    let mut events = client.events();
    server.faults().drop_all_connections();
    wait_disconnected(&mut events);
    assert!(
        events.next_timeout(WAIT).is_none(),
        "no reconnection, the stream ends"
    );
    assert!(matches!(client.emit("x", 1), Err(Error::Disconnected(_))));
}

#[test]
fn no_reconnection_after_the_server_disconnects_us() {
    let server = server(|b| b.on("/", "kick", |socket, _, _| socket.disconnect()));
    let client = client(&server).connect().unwrap();
    let mut events = client.events();
    client.emit("kick", ()).unwrap();
    assert_eq!(
        wait_disconnected(&mut events),
        DisconnectReason::IoServerDisconnect
    );
    assert!(events.next_timeout(WAIT).is_none());
}

#[test]
fn volatile_emits_are_dropped_and_the_buffer_is_bounded_while_disconnected() {
    let server = server(|b| b);
    let client = client(&server).send_buffer(3).connect().unwrap();
    assert!(
        client.emit_volatile("live", 1).unwrap(),
        "sent while connected"
    );
    let mut events = client.events();
    server.faults().refuse_connections(true);
    server.faults().drop_all_connections();
    wait_disconnected(&mut events);
    assert!(
        !client.emit_volatile("live", 2).unwrap(),
        "dropped while disconnected"
    );
    for i in 0..3 {
        client.emit("kept", i).unwrap();
    }
    assert!(matches!(
        client.emit("kept", 3),
        Err(Error::SendBufferFull(3))
    ));
    server.clear_received();
    server.faults().refuse_connections(false);
    wait_reconnected(&mut events);
    let received = server.wait_for_events_blocking(3, WAIT).unwrap();
    assert!(received.iter().all(|e| e.event == "kept"), "{received:?}");
    assert_eq!(received.len(), 3);
}

#[test]
fn a_sent_emit_waiting_for_its_ack_fails_when_the_connection_is_lost() {
    // "never" is received but never acknowledged.
    let server = server(|b| b.on("/", "never", |_, _, _| {}));
    let client = client(&server).connect().unwrap();
    let waiting = {
        let client = client.clone();
        std::thread::spawn(move || client.emit_with_ack("never", 1, Duration::from_secs(60)))
    };
    server.wait_for_events_blocking(1, WAIT).unwrap();
    server.faults().drop_all_connections();
    match waiting.join().unwrap() {
        Err(Error::Disconnected(reason)) => assert!(
            matches!(
                reason,
                DisconnectReason::TransportClose | DisconnectReason::TransportError
            ),
            "{reason}"
        ),
        other => panic!("expected Disconnected, got {other:?}"),
    }
}

#[test]
fn first_connect_can_be_retried() {
    let server = server(|b| b);
    server.faults().refuse_connections(true);
    let url = server.url();
    let connecting = std::thread::spawn(move || {
        Client::builder(url)
            .transports([Transport::WebSocket])
            .reconnection_delay(Duration::from_millis(50))
            .reconnection_delay_max(Duration::from_millis(100))
            .retry_initial_connect(true)
            .connect()
    });
    // Refused until the server lets connections in: the connect keeps trying meanwhile.
    server.faults().refuse_connections(false);
    let client = connecting.join().unwrap().expect("connected after retries");
    assert!(client.is_connected());
    // Without the option a refused first connect is an error at once.
    server.faults().refuse_connections(true);
    let refused = Client::builder(server.url())
        .transports([Transport::WebSocket])
        .connect();
    assert!(refused.is_err());
}

/// A handler that acknowledges only from its `n`-th receipt on (counting every event named so).
fn acks_from(
    n: u64,
) -> impl Fn(&sio_client::mock::MockSocket, sio_client::Args, Option<sio_client::mock::MockAck>)
       + Send
       + Sync
       + 'static {
    let seen = AtomicU64::new(0);
    move |_socket, args, ack| {
        if seen.fetch_add(1, Ordering::SeqCst) + 1 >= n {
            if let Some(ack) = ack {
                ack.send(args);
            }
        }
    }
}

#[test]
fn retries_resend_until_acknowledged() {
    let server = server(|b| b.on("/", "flaky", acks_from(3)));
    let client = client(&server).retries(5).connect().unwrap();
    let reply = client
        .emit_with_ack("flaky", "payload", Duration::from_millis(150))
        .expect("acknowledged on the third try");
    assert_eq!(reply.get::<String>(0).unwrap(), "payload");
    let received = server.wait_for_events_blocking(3, WAIT).unwrap();
    assert_eq!(received.len(), 3, "sent three times: {received:?}");
    assert!(received
        .iter()
        .all(|e| e.args.get::<String>(0).unwrap() == "payload"));
}

#[test]
fn retries_run_out_into_an_error() {
    let server = server(|b| b.on("/", "never", |_, _, _| {}));
    let client = client(&server)
        .retries(2)
        .ack_timeout(Duration::from_millis(100))
        .connect()
        .unwrap();
    let result = client.emit_with_ack("never", 1, Duration::from_millis(100));
    assert!(matches!(result, Err(Error::AckTimeout(_))), "{result:?}");
    assert_eq!(server.wait_for_events_blocking(3, WAIT).unwrap().len(), 3);
    // A plain emit that is never acknowledged is reported as an error event.
    let client = client.clone();
    let mut events = client.events();
    client.emit("never", 2).unwrap();
    loop {
        match events.next_timeout(WAIT) {
            Some(Event::Error(e)) => {
                assert!(matches!(*e, Error::AckTimeout(_)), "{e}");
                break;
            }
            Some(Event::Connected { .. }) => continue,
            other => panic!("expected the failed emit to be reported, got {other:?}"),
        }
    }
}

#[test]
fn queued_emits_survive_a_lost_connection_in_order() {
    let server = server(|b| b.on("/", "work", acks_from(2)));
    let client = client(&server)
        .retries(10)
        .ack_timeout(Duration::from_secs(30))
        .connect()
        .unwrap();
    let sender = {
        let client = client.clone();
        std::thread::spawn(move || {
            (0..3)
                .map(|i| client.emit_with_ack("work", i, Duration::from_secs(30)))
                .collect::<Vec<_>>()
        })
    };
    // The first attempt reached the server (which did not answer): cut the connection.
    server.wait_for_events_blocking(1, WAIT).unwrap();
    server.faults().drop_all_connections();
    let replies = sender.join().unwrap();
    let values: Vec<i64> = replies
        .into_iter()
        .map(|r| {
            r.expect("acknowledged after the reconnection")
                .get(0)
                .unwrap()
        })
        .collect();
    assert_eq!(values, vec![0, 1, 2]);
    // At least once: the first was delivered twice, the others once, in order.
    let seen: Vec<i64> = server
        .received()
        .iter()
        .map(|e| e.args.get(0).unwrap())
        .collect();
    assert_eq!(seen, vec![0, 0, 1, 2]);
}
