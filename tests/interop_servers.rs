//! The behaviour matrix of the blocking client against socket.io servers other than Node's,
//! over every transport set-up:
//!
//! - python-socketio 5.18.1 with python-engineio 4.15.1 on aiohttp 3.14.5 (tests/python, every
//!   package pinned in requirements.txt; the venv is made by tests/python/setup-venv.sh);
//! - socketioxide 0.18.9 on hyper 1 (tests/socketioxide-server, its own Cargo.lock, built on
//!   first use into `<target dir>/socketioxide-server`).
//!
//! Both speak Engine.IO 4 / Socket.IO 5 and run with fast heartbeats, so every case also goes
//! through several ping/pong rounds.

mod support;

use std::sync::mpsc;
use std::sync::OnceLock;
use std::thread;
use std::time::Instant;

use bytes::Bytes;
use serde_json::json;
use sio_client::{Client, DisconnectReason, Error, Event};
use support::fixtures::{files, Files};
use support::matrix::{
    admin_beside_main, builder, check_transport, client_acks, client_disconnect_ends,
    heartbeats_keep_quiet, join_admin, next_disconnect, next_message, server_asks_for_ack,
    wrong_token_refused, Mode, WAIT,
};
use support::{ExternalServer, Heartbeat, ServerKind, SioVersion};

/// One server per implementation for the whole binary. It exits when the test process does
/// (its stdin closes).
fn shared_server(kind: ServerKind) -> &'static ExternalServer {
    static PYTHON: OnceLock<ExternalServer> = OnceLock::new();
    static SOCKETIOXIDE: OnceLock<ExternalServer> = OnceLock::new();
    let cell = match kind {
        ServerKind::PythonSocketio => &PYTHON,
        ServerKind::Socketioxide => &SOCKETIOXIDE,
    };
    cell.get_or_init(|| {
        ExternalServer::start(
            kind,
            Some(Heartbeat {
                interval_ms: 200,
                timeout_ms: 400,
            }),
        )
    })
}

fn connect(kind: ServerKind, mode: Mode) -> Client {
    let server = shared_server(kind);
    // Both implementations speak the protocol of Node socket.io 4.
    let client = builder(server.url(), SioVersion::V4, mode)
        .connect()
        .unwrap_or_else(|e| panic!("connect to {kind:?}: {e}\n{}", server.stderr()));
    check_transport(&client, mode);
    client
}

fn echo(kind: ServerKind, mode: Mode) {
    let client = connect(kind, mode);
    client
        .emit("echo", ("hé ✓ 🚀", 42, json!({"nested": [1, 2]}), 1.5, ()))
        .unwrap();
    let (args, ack) = next_message(&client, "echo");
    assert!(ack.is_none());
    assert_eq!(args.len(), 5);
    assert_eq!(args.get::<String>(0).unwrap(), "hé ✓ 🚀");
    assert_eq!(args.get::<i64>(1).unwrap(), 42);
    assert_eq!(
        args.get::<serde_json::Value>(2).unwrap(),
        json!({"nested": [1, 2]})
    );
    assert_eq!(args.get::<f64>(3).unwrap(), 1.5);
    assert_eq!(args.get::<serde_json::Value>(4).unwrap(), json!(null));
    // No arguments at all.
    client.emit("echo", ()).unwrap();
    let (args, _) = next_message(&client, "echo");
    assert!(args.is_empty());
}

fn ack_requested_by_client(kind: ServerKind, mode: Mode) {
    let client = connect(kind, mode);
    client_acks(&client);
    // An ack with no arguments at all.
    let reply = client.emit_with_ack("ack", (), WAIT).unwrap();
    assert!(reply.is_empty());
}

fn ack_requested_by_server(kind: ServerKind, mode: Mode) {
    server_asks_for_ack(&connect(kind, mode));
}

fn binary_both_ways(kind: ServerKind, mode: Mode) {
    let client = connect(kind, mode);
    // Client → server in an event, server → client in the ack.
    let reply = client.emit_with_ack("ack", files(), WAIT).unwrap();
    assert_eq!(reply.attachments().len(), 2);
    assert_eq!(reply.get::<Files>(0).unwrap(), files());
    // Server → client in an event, with a top-level binary argument and an empty one.
    client
        .emit(
            "echo",
            (files(), Bytes::from_static(b"top"), Bytes::new(), "after"),
        )
        .unwrap();
    let (args, _) = next_message(&client, "echo");
    assert_eq!(args.len(), 4);
    assert_eq!(args.get::<Files>(0).unwrap(), files());
    assert_eq!(args.binary(1).unwrap().as_ref(), b"top");
    assert_eq!(args.binary(2).unwrap().as_ref(), b"");
    assert_eq!(args.get::<String>(3).unwrap(), "after");
    // A binary ack the server asked for.
    client.emit("request-ack", ()).unwrap();
    let (_, ack) = next_message(&client, "need-ack");
    ack.expect("the server asked for an ack")
        .send(&(Bytes::from_static(&[1, 2, 3]),))
        .unwrap();
    let (args, _) = next_message(&client, "got-ack");
    assert_eq!(args.binary(0).unwrap().as_ref(), &[1, 2, 3]);
}

fn namespace_auth_accepted(kind: ServerKind, mode: Mode) {
    admin_beside_main(&connect(kind, mode));
}

fn namespace_auth_refused(kind: ServerKind, mode: Mode) {
    let client = connect(kind, mode);
    let data = match kind {
        ServerKind::PythonSocketio => Some(json!({"reason": "bad token"})),
        // socketioxide's CONNECT_ERROR carries the message only.
        ServerKind::Socketioxide => None,
    };
    wrong_token_refused(&client, data);
    // No auth at all is refused too.
    assert!(matches!(
        client.socket("/admin").connect(),
        Err(Error::ConnectRefused { .. })
    ));
    // The refusals do not hurt the main namespace.
    let reply = client.emit_with_ack("ack", 1, WAIT).unwrap();
    assert_eq!(reply.get::<i32>(0).unwrap(), 1);
}

fn unknown_namespace_refused(kind: ServerKind, mode: Mode) {
    let client = connect(kind, mode);
    match client.socket("/nope").connect() {
        Err(Error::ConnectRefused { namespace, .. }) => assert_eq!(namespace, "/nope"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let reply = client.emit_with_ack("ack", "main", WAIT).unwrap();
    assert_eq!(reply.get::<String>(0).unwrap(), "main");
}

fn namespace_disconnected_by_server(kind: ServerKind, mode: Mode) {
    let client = connect(kind, mode);
    let admin = join_admin(&client);
    admin.emit("disconnect-me", ()).unwrap();
    assert_eq!(
        next_disconnect(&admin),
        DisconnectReason::IoServerDisconnect
    );
    assert!(matches!(admin.emit("echo", 1), Err(Error::Disconnected(_))));
    // Only that namespace went: the connection and "/" stay.
    assert!(client.is_connected());
    let reply = client.emit_with_ack("ack", "main", WAIT).unwrap();
    assert_eq!(reply.get::<String>(0).unwrap(), "main");
}

fn server_disconnect(kind: ServerKind, mode: Mode) {
    let client = connect(kind, mode);
    let mut events = client.events();
    client.emit("disconnect-me", ()).unwrap();
    assert_eq!(
        next_disconnect(&client),
        DisconnectReason::IoServerDisconnect
    );
    // Like the JS client, no reconnection after the server's own disconnect: the event stream
    // ends (a Reconnecting or Connected event would show up here instead).
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(events.find(|e| !matches!(e, Event::Disconnected { .. })));
    });
    match rx.recv_timeout(WAIT) {
        Ok(None) => {}
        Ok(Some(event)) => panic!("no event expected after the disconnect, got {event:?}"),
        Err(_) => panic!("the event stream did not end within {WAIT:?}"),
    }
    assert!(!client.is_connected());
    assert!(matches!(
        client.emit("echo", 1),
        Err(Error::Disconnected(_))
    ));
}

fn client_disconnect(kind: ServerKind, mode: Mode) {
    client_disconnect_ends(&connect(kind, mode));
}

/// Emits a burst right after connecting, before any upgrade has had time to finish, so that
/// over polling the messages are batched (socketioxide's maxPayload is only 100 kB: 30 kB
/// messages must not be put into one POST) and with an upgrade some are sent while it is in
/// progress. Every echo must come back once and in order.
fn burst_stays_in_order(kind: ServerKind, mode: Mode) {
    const SMALL: usize = 100;
    const LARGE: usize = 8;
    let server = shared_server(kind);
    let client = builder(server.url(), SioVersion::V4, mode)
        .connect()
        .unwrap_or_else(|e| panic!("connect to {kind:?}: {e}\n{}", server.stderr()));
    let mut events = client.events();
    let text = "x".repeat(30_000);
    let blob = Bytes::from(vec![0xA5u8; 30_000]);
    for i in 0..SMALL {
        client.emit("echo", i).unwrap();
        if i % (SMALL / LARGE) == 0 {
            client.emit("echo", (i, &text, blob.clone())).unwrap();
        }
    }
    let mut upgraded = false;
    let mut next_index = 0;
    let mut large_seen = 0;
    let deadline = Instant::now() + WAIT;
    while next_index < SMALL {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.next_timeout(left) {
            Some(Event::Message { event, args, .. }) if event == "echo" => {
                let index = args.get::<usize>(0).unwrap();
                if args.len() == 1 {
                    assert_eq!(index, next_index, "small echoes out of order");
                    next_index += 1;
                } else {
                    assert_eq!(index + 1, next_index, "large echo out of place");
                    assert_eq!(args.get::<String>(1).unwrap(), text);
                    assert_eq!(args.binary(2).unwrap(), &blob);
                    large_seen += 1;
                }
            }
            Some(Event::TransportChanged { .. }) => upgraded = true,
            Some(Event::Connected { .. }) => continue,
            other => panic!(
                "waiting for echo {next_index}, got {other:?}\n{}",
                server.stderr()
            ),
        }
    }
    // The last large echo follows its small one.
    while large_seen < LARGE {
        match events.next_timeout(deadline.saturating_duration_since(Instant::now())) {
            Some(Event::Message { event, args, .. }) if event == "echo" && args.len() == 3 => {
                large_seen += 1
            }
            Some(Event::TransportChanged { .. }) => upgraded = true,
            other => panic!("waiting for large echo {large_seen}, got {other:?}"),
        }
    }
    if mode == Mode::Upgrade && !upgraded {
        match events.next_timeout(WAIT) {
            Some(Event::TransportChanged { .. }) => {}
            other => panic!("expected the upgrade, got {other:?}"),
        }
    }
    check_transport(&client, mode);
    let reply = client
        .emit_with_ack("ack", "after the burst", WAIT)
        .unwrap();
    assert_eq!(reply.get::<String>(0).unwrap(), "after the burst");
}

fn heartbeats_survive(kind: ServerKind, mode: Mode) {
    heartbeats_keep_quiet(&connect(kind, mode));
}

macro_rules! matrix {
    ($name:ident, $kind:expr, $mode:expr) => {
        mod $name {
            use super::*;
            #[test]
            fn echo() {
                super::echo($kind, $mode)
            }
            #[test]
            fn ack_requested_by_client() {
                super::ack_requested_by_client($kind, $mode)
            }
            #[test]
            fn ack_requested_by_server() {
                super::ack_requested_by_server($kind, $mode)
            }
            #[test]
            fn binary_both_ways() {
                super::binary_both_ways($kind, $mode)
            }
            #[test]
            fn namespace_auth_accepted() {
                super::namespace_auth_accepted($kind, $mode)
            }
            #[test]
            fn namespace_auth_refused() {
                super::namespace_auth_refused($kind, $mode)
            }
            #[test]
            fn unknown_namespace_refused() {
                super::unknown_namespace_refused($kind, $mode)
            }
            #[test]
            fn namespace_disconnected_by_server() {
                super::namespace_disconnected_by_server($kind, $mode)
            }
            #[test]
            fn server_disconnect() {
                super::server_disconnect($kind, $mode)
            }
            #[test]
            fn client_disconnect() {
                super::client_disconnect($kind, $mode)
            }
            #[test]
            fn burst_stays_in_order() {
                super::burst_stays_in_order($kind, $mode)
            }
            #[test]
            fn heartbeats_survive() {
                super::heartbeats_survive($kind, $mode)
            }
        }
    };
}

matrix!(
    python_websocket,
    ServerKind::PythonSocketio,
    Mode::WebSocket
);
matrix!(python_polling, ServerKind::PythonSocketio, Mode::Polling);
matrix!(python_upgrade, ServerKind::PythonSocketio, Mode::Upgrade);
matrix!(
    socketioxide_websocket,
    ServerKind::Socketioxide,
    Mode::WebSocket
);
matrix!(
    socketioxide_polling,
    ServerKind::Socketioxide,
    Mode::Polling
);
matrix!(
    socketioxide_upgrade,
    ServerKind::Socketioxide,
    Mode::Upgrade
);
