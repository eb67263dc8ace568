//! The behaviour matrix of the blocking client against real socket.io servers (Node socket.io
//! 4.8 and 2.5 from npm), over every transport set-up.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::json;
use sio_client::{Client, DisconnectReason, Error, Event};
use support::fixtures::{files, Files};
use support::matrix::{
    builder, check_transport, next_disconnect, next_message, shared_server, Mode, WAIT,
};
use support::{NodeOptions, NodeServer, SioVersion};

fn connect(version: SioVersion, mode: Mode) -> Client {
    let client = builder(shared_server(version).url(), version, mode)
        .connect()
        .expect("connect");
    check_transport(&client, mode);
    client
}

fn echo(version: SioVersion, mode: Mode) {
    let client = connect(version, mode);
    client
        .emit("echo", ("hi", 42, json!({"nested": [1, 2]})))
        .unwrap();
    let (args, ack) = next_message(&client, "echo");
    assert!(ack.is_none());
    assert_eq!(args.len(), 3);
    assert_eq!(args.get::<String>(0).unwrap(), "hi");
    assert_eq!(args.get::<i64>(1).unwrap(), 42);
    assert_eq!(
        args.get::<serde_json::Value>(2).unwrap(),
        json!({"nested": [1, 2]})
    );
}

fn ack_requested_by_client(version: SioVersion, mode: Mode) {
    let client = connect(version, mode);
    for i in 0..5 {
        let reply = client.emit_with_ack("ack", (i, "two"), WAIT).unwrap();
        assert_eq!(
            reply.parse::<(i32, String)>().unwrap(),
            (i, "two".to_string())
        );
    }
}

fn ack_requested_by_server(version: SioVersion, mode: Mode) {
    let client = connect(version, mode);
    client.emit("request-ack", "question").unwrap();
    let (args, ack) = next_message(&client, "need-ack");
    assert_eq!(args.get::<String>(0).unwrap(), "question");
    ack.expect("the server asked for an ack")
        .send(&("answer", 7))
        .unwrap();
    let (args, _) = next_message(&client, "got-ack");
    assert_eq!(
        args.parse::<(String, i32)>().unwrap(),
        ("answer".to_string(), 7)
    );
}

fn binary_both_ways(version: SioVersion, mode: Mode) {
    let client = connect(version, mode);
    // Client → server in an event, server → client in the ack.
    let reply = client.emit_with_ack("ack", files(), WAIT).unwrap();
    assert_eq!(reply.attachments().len(), 2);
    assert_eq!(reply.get::<Files>(0).unwrap(), files());
    // Server → client in an event.
    client
        .emit("echo", (files(), Bytes::from_static(b"top")))
        .unwrap();
    let (args, _) = next_message(&client, "echo");
    assert_eq!(args.get::<Files>(0).unwrap(), files());
    assert_eq!(args.binary(1).unwrap().as_ref(), b"top");
}

fn namespace_auth_accepted(version: SioVersion, mode: Mode) {
    let client = connect(version, mode);
    let admin = client
        .socket("/admin")
        .auth(json!({"token": "secret"}))
        .connect()
        .expect("/admin accepts the right token");
    assert_eq!(admin.namespace(), "/admin");
    let reply = admin.emit_with_ack("ack", "on admin", WAIT).unwrap();
    assert_eq!(reply.get::<String>(0).unwrap(), "on admin");
    // The main namespace still works beside it.
    let reply = client.emit_with_ack("ack", "on main", WAIT).unwrap();
    assert_eq!(reply.get::<String>(0).unwrap(), "on main");
}

fn namespace_auth_refused(version: SioVersion, mode: Mode) {
    let client = connect(version, mode);
    let refused = client
        .socket("/admin")
        .auth(json!({"token": "wrong"}))
        .connect();
    match refused {
        Err(Error::ConnectRefused {
            namespace,
            message,
            data,
        }) => {
            assert_eq!(namespace, "/admin");
            assert_eq!(message, "not authorized");
            match version {
                SioVersion::V4 => assert_eq!(data, Some(json!({"reason": "bad token"}))),
                SioVersion::V2 => assert_eq!(data, None),
            }
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // The refusal does not hurt the main namespace.
    let reply = client.emit_with_ack("ack", 1, WAIT).unwrap();
    assert_eq!(reply.get::<i32>(0).unwrap(), 1);
}

fn server_disconnect(version: SioVersion, mode: Mode) {
    let client = connect(version, mode);
    client.emit("disconnect-me", ()).unwrap();
    assert_eq!(
        next_disconnect(&client),
        DisconnectReason::IoServerDisconnect
    );
    assert!(matches!(
        client.emit("echo", 1),
        Err(Error::Disconnected(_))
    ));
}

fn client_disconnect(version: SioVersion, mode: Mode) {
    let client = connect(version, mode);
    client.disconnect();
    assert_eq!(
        next_disconnect(&client),
        DisconnectReason::IoClientDisconnect
    );
    assert!(client.events().next().is_none(), "the event stream ends");
    assert!(matches!(
        client.emit("echo", 1),
        Err(Error::Disconnected(_))
    ));
}

fn heartbeats_survive(version: SioVersion, mode: Mode) {
    let client = connect(version, mode);
    // pingInterval is 200 ms: 3 s are 15 heartbeats. Nothing may happen in that time.
    let mut events = client.events();
    let until = Instant::now() + Duration::from_secs(3);
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match events.next_timeout(left) {
            None => break,
            Some(Event::Connected { .. } | Event::TransportChanged { .. }) => continue,
            Some(other) => panic!("unexpected event {other:?}"),
        }
    }
    assert!(client.is_connected());
    let reply = client.emit_with_ack("ack", "still here", WAIT).unwrap();
    assert_eq!(reply.get::<String>(0).unwrap(), "still here");
}

fn server_killed(version: SioVersion, mode: Mode) {
    let mut server = NodeServer::start(
        version,
        NodeOptions {
            ping_interval_ms: Some(200),
            ping_timeout_ms: Some(200),
            ..NodeOptions::default()
        },
    );
    let client = builder(server.url(), version, mode).connect().unwrap();
    check_transport(&client, mode);
    let killed = Instant::now();
    server.kill();
    let reason = next_disconnect(&client);
    let noticed = killed.elapsed();
    assert!(
        noticed <= Duration::from_millis(200 + 200 + 1000),
        "noticed after {noticed:?} ({reason})"
    );
    assert!(matches!(
        reason,
        DisconnectReason::TransportClose
            | DisconnectReason::TransportError
            | DisconnectReason::PingTimeout
    ));
}

macro_rules! matrix {
    ($name:ident, $version:expr, $mode:expr) => {
        mod $name {
            use super::*;
            #[test]
            fn echo() {
                super::echo($version, $mode)
            }
            #[test]
            fn ack_requested_by_client() {
                super::ack_requested_by_client($version, $mode)
            }
            #[test]
            fn ack_requested_by_server() {
                super::ack_requested_by_server($version, $mode)
            }
            #[test]
            fn binary_both_ways() {
                super::binary_both_ways($version, $mode)
            }
            #[test]
            fn namespace_auth_accepted() {
                super::namespace_auth_accepted($version, $mode)
            }
            #[test]
            fn namespace_auth_refused() {
                super::namespace_auth_refused($version, $mode)
            }
            #[test]
            fn server_disconnect() {
                super::server_disconnect($version, $mode)
            }
            #[test]
            fn client_disconnect() {
                super::client_disconnect($version, $mode)
            }
            #[test]
            fn heartbeats_survive() {
                super::heartbeats_survive($version, $mode)
            }
            #[test]
            fn server_killed() {
                super::server_killed($version, $mode)
            }
        }
    };
}

matrix!(v4_websocket, SioVersion::V4, Mode::WebSocket);
matrix!(v4_polling, SioVersion::V4, Mode::Polling);
matrix!(v4_upgrade, SioVersion::V4, Mode::Upgrade);
matrix!(v2_websocket, SioVersion::V2, Mode::WebSocket);
matrix!(v2_polling, SioVersion::V2, Mode::Polling);
