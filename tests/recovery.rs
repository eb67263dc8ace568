//! Connection-state recovery against a real socket.io 4.8 server with `connectionStateRecovery`:
//! events emitted while the client was cut off arrive after the reconnection, exactly once, in
//! order, and the client knows it recovered.

mod support;

use std::time::Duration;

use sio_client::{Client, DisconnectReason, Event, Events, Transport};
use support::proxy::ConnectProxy;
use support::{NodeOptions, NodeServer, SioVersion};

const WAIT: Duration = Duration::from_secs(10);

fn next_broadcast(events: &mut Events) -> String {
    loop {
        match events.next_timeout(WAIT) {
            Some(Event::Message { event, args, .. }) if event == "broadcast" => {
                return args.get::<String>(0).unwrap()
            }
            Some(Event::Message { .. } | Event::Connected { .. } | Event::Error(_)) => continue,
            Some(Event::Reconnecting { .. } | Event::Disconnected { .. }) => continue,
            other => panic!("waiting for a broadcast, got {other:?}"),
        }
    }
}

#[test]
fn missed_events_arrive_after_a_short_outage() {
    let server = NodeServer::start(
        SioVersion::V4,
        NodeOptions {
            recovery: true,
            ..NodeOptions::default()
        },
    );
    // The client under test reaches the server through a proxy that can refuse new tunnels,
    // so it stays cut off exactly as long as the test wants.
    let proxy = ConnectProxy::start_background(None);
    let cut_off = Client::builder(server.url())
        .transports([Transport::WebSocket])
        .proxy(proxy.url())
        .reconnection_delay(Duration::from_millis(50))
        .reconnection_delay_max(Duration::from_millis(100))
        .timeout(WAIT)
        .connect()
        .unwrap();
    let other = Client::builder(server.url())
        .transports([Transport::WebSocket])
        .timeout(WAIT)
        .connect()
        .unwrap();
    let mut events = cut_off.events();
    other.emit("broadcast", "before").unwrap();
    assert_eq!(next_broadcast(&mut events), "before");
    assert!(!cut_off.recovered(), "a first connection recovers nothing");

    proxy.refuse_connect(true);
    cut_off.emit("cut-me", ()).unwrap();
    loop {
        match events.next_timeout(WAIT) {
            Some(Event::Disconnected { reason, .. }) => {
                assert_eq!(reason, DisconnectReason::TransportClose);
                break;
            }
            Some(_) => continue,
            None => panic!("the cut was not noticed"),
        }
    }
    // Emitted while the client is away; the ack after them says the server has sent them.
    for missed in ["missed-1", "missed-2", "missed-3"] {
        other.emit("broadcast", missed).unwrap();
    }
    other.emit_with_ack("ack", (), WAIT).unwrap();
    proxy.refuse_connect(false);

    let mut got = Vec::new();
    let mut recovered = None;
    while got.len() < 3 || recovered.is_none() {
        match events.next_timeout(WAIT) {
            Some(Event::Message { event, args, .. }) if event == "broadcast" => {
                got.push(args.get::<String>(0).unwrap())
            }
            Some(Event::Reconnected { recovered: r, .. }) => recovered = Some(r),
            Some(_) => continue,
            None => panic!("after {got:?}, recovered {recovered:?}: nothing more"),
        }
    }
    assert_eq!(recovered, Some(true));
    assert!(cut_off.recovered());
    assert_eq!(
        got,
        vec!["missed-1", "missed-2", "missed-3"],
        "exactly once, in order"
    );
    let server_says = cut_off.emit_with_ack("am-i-recovered", (), WAIT).unwrap();
    assert!(server_says.get::<bool>(0).unwrap());
    // Nothing is delivered twice afterwards.
    other.emit("broadcast", "after").unwrap();
    assert_eq!(next_broadcast(&mut events), "after");
}
