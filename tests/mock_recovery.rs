//! `Client::recovered()` without Node: the mock's connection-state recovery
//! ([`MockServerBuilder::recovery`]) in the scenario tests/recovery.rs runs against a Node
//! socket.io 4.8 server with `connectionStateRecovery`, run here against both, side by side.
//! Node is the reference: the mock must give the client the same events and the same
//! `recovered` answers.
#![cfg(feature = "mock-server")]

mod support;

use std::time::Duration;

use sio_client::mock::{MockServer, MockServerBuilder};
use sio_client::{Args, Client, DisconnectReason, Event, Events, Transport};
use support::proxy::ConnectProxy;
use support::{NodeOptions, NodeServer, SioVersion};

const WAIT: Duration = Duration::from_secs(10);

/// The mock set up as tests/node/server.js `--sio 4 --recovery` for these events.
fn recovery_mock(max_disconnection: Duration) -> MockServerBuilder {
    MockServer::builder()
        .recovery(max_disconnection)
        .on("/", "ack", |_socket, args, ack| {
            if let Some(ack) = ack {
                ack.send(args)
            }
        })
        .on("/", "broadcast", |socket, args, _ack| {
            socket.server().emit_all("/", "broadcast", args)
        })
        .on("/", "cut-me", |socket, _args, _ack| {
            socket.close_connection()
        })
        .on("/", "am-i-recovered", |socket, _args, ack| {
            if let Some(ack) = ack {
                ack.send(Args::from_serialize(&socket.recovered()).unwrap())
            }
        })
}

/// What the cut-off client saw.
#[derive(Debug, PartialEq)]
struct Outcome {
    recovered_at_first: bool,
    reason: DisconnectReason,
    /// Broadcasts after the reconnection, in order.
    after_reconnection: Vec<String>,
    reconnected_recovered: bool,
    client_recovered: bool,
    server_says_recovered: bool,
}

fn broadcast_text(args: &Args) -> String {
    args.get::<String>(0).unwrap()
}

/// One client reaches the server through a proxy that can refuse new tunnels; it receives a
/// broadcast, is cut off by the server (`cut-me`), misses three broadcasts while the proxy
/// refuses, then reconnects.
fn scenario(url: &str) -> Outcome {
    let proxy = ConnectProxy::start_background(None);
    let cut_off = Client::builder(url)
        .transports([Transport::WebSocket])
        .proxy(proxy.url())
        .reconnection_delay(Duration::from_millis(50))
        .reconnection_delay_max(Duration::from_millis(100))
        .timeout(WAIT)
        .connect()
        .unwrap();
    let other = Client::builder(url)
        .transports([Transport::WebSocket])
        .timeout(WAIT)
        .connect()
        .unwrap();
    let mut events = cut_off.events();
    other.emit("broadcast", "before").unwrap();
    wait_broadcast(&mut events, "before");
    let recovered_at_first = cut_off.recovered();

    proxy.refuse_connect(true);
    cut_off.emit("cut-me", ()).unwrap();
    let reason = loop {
        match events.next_timeout(WAIT) {
            Some(Event::Disconnected { reason, .. }) => break reason,
            Some(_) => continue,
            None => panic!("the cut was not noticed"),
        }
    };
    for missed in ["missed-1", "missed-2", "missed-3"] {
        other.emit("broadcast", missed).unwrap();
    }
    // Acked after the broadcasts: the server has sent (and kept) them all.
    other.emit_with_ack("ack", (), WAIT).unwrap();
    proxy.refuse_connect(false);

    let mut after_reconnection = Vec::new();
    let mut reconnected = None;
    while after_reconnection.len() < 3 || reconnected.is_none() {
        match events.next_timeout(WAIT) {
            Some(Event::Message { event, args, .. }) if event == "broadcast" => {
                after_reconnection.push(broadcast_text(&args))
            }
            Some(Event::Reconnected { recovered, .. }) => {
                reconnected = Some(recovered);
                // Not recovered: nothing missed comes; a marker ends the wait.
                if !recovered {
                    other.emit("broadcast", "marker").unwrap();
                    wait_broadcast_into(&mut events, "marker", &mut after_reconnection);
                    break;
                }
            }
            Some(_) => continue,
            None => panic!("after {after_reconnection:?}, reconnected {reconnected:?}: nothing"),
        }
    }
    let server_says = cut_off.emit_with_ack("am-i-recovered", (), WAIT).unwrap();
    Outcome {
        recovered_at_first,
        reason,
        after_reconnection,
        reconnected_recovered: reconnected.unwrap_or(false),
        client_recovered: cut_off.recovered(),
        server_says_recovered: server_says.get::<bool>(0).unwrap(),
    }
}

fn wait_broadcast(events: &mut Events, text: &str) {
    let mut seen = Vec::new();
    wait_broadcast_into(events, text, &mut seen);
}

/// Waits for the broadcast `text`, pushing every broadcast seen (it included) into `seen`.
fn wait_broadcast_into(events: &mut Events, text: &str, seen: &mut Vec<String>) {
    loop {
        match events.next_timeout(WAIT) {
            Some(Event::Message { event, args, .. }) if event == "broadcast" => {
                let got = broadcast_text(&args);
                let done = got == text;
                seen.push(got);
                if done {
                    return;
                }
            }
            Some(_) => continue,
            None => panic!("no broadcast {text:?}"),
        }
    }
}

#[test]
fn missed_events_are_replayed_and_recovered_as_on_node() {
    let node = NodeServer::start(
        SioVersion::V4,
        NodeOptions {
            recovery: true,
            ..NodeOptions::default()
        },
    );
    let mock = recovery_mock(Duration::from_secs(120))
        .start_background()
        .unwrap();
    let on_node = scenario(&node.url());
    let on_mock = scenario(&mock.url());
    assert_eq!(
        on_node,
        Outcome {
            recovered_at_first: false,
            reason: DisconnectReason::TransportClose,
            after_reconnection: vec!["missed-1".into(), "missed-2".into(), "missed-3".into()],
            reconnected_recovered: true,
            client_recovered: true,
            server_says_recovered: true,
        }
    );
    assert_eq!(on_mock, on_node);
    mock.assert_no_handler_panics();
}

#[test]
fn a_session_older_than_max_disconnection_is_not_recovered() {
    // The client waits at least tens of milliseconds before reconnecting: far past 1 ms.
    let mock = recovery_mock(Duration::from_millis(1))
        .start_background()
        .unwrap();
    let outcome = scenario(&mock.url());
    assert!(!outcome.reconnected_recovered, "{outcome:?}");
    assert!(!outcome.client_recovered);
    assert!(!outcome.server_says_recovered);
    assert_eq!(outcome.after_reconnection, vec!["marker".to_owned()]);
    let sockets = mock.socket_history();
    assert_ne!(
        sockets[0].id(),
        sockets.last().unwrap().id(),
        "a new socket id"
    );
}
