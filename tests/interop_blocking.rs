//! The behaviour matrix of the blocking client against real socket.io servers (Node socket.io
//! 4.8 and 2.5 from npm), over every transport set-up.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::json;
use sio_client::{Client, DisconnectReason, Error};
use support::fixtures::{files, Files};
use support::matrix::{
    admin_beside_main, builder, check_transport, client_acks, client_disconnect_ends,
    heartbeats_keep_quiet, next_disconnect, next_message, server_asks_for_ack, shared_server,
    wrong_token_refused, Mode, WAIT,
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
    client_acks(&connect(version, mode));
}

fn ack_requested_by_server(version: SioVersion, mode: Mode) {
    server_asks_for_ack(&connect(version, mode));
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
    admin_beside_main(&connect(version, mode));
}

fn namespace_auth_refused(version: SioVersion, mode: Mode) {
    let client = connect(version, mode);
    let data = match version {
        SioVersion::V4 => Some(json!({"reason": "bad token"})),
        SioVersion::V2 => None,
    };
    wrong_token_refused(&client, data);
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
    client_disconnect_ends(&connect(version, mode));
}

fn heartbeats_survive(version: SioVersion, mode: Mode) {
    heartbeats_keep_quiet(&connect(version, mode));
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
