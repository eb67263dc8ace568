//! The mock server's own API as a user's integration test meets it: handlers that reach other
//! sockets, `_blocking` twins, the handshake request's headers and query, handler panics,
//! blocking clients in a current-thread `#[tokio::test]`, bounded history, CORS, and the noop
//! that releases a pending poll when the client closes (checked against Node socket.io 4).
#![cfg(feature = "mock-server")]

#[allow(dead_code)]
#[path = "support/http.rs"]
mod http_support;
#[allow(dead_code)]
#[path = "support/node.rs"]
mod node;
#[allow(dead_code)]
#[path = "support/process.rs"]
mod process;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sio_client::mock::{MockError, MockServer};
use sio_client::{Args, Client, Event, Events, Transport};

const WAIT: Duration = Duration::from_secs(10);

fn args(value: Value) -> Args {
    Args::from_serialize(&value).unwrap()
}

/// The next message event (connection events skipped), as (event, first argument).
fn next_message(events: &mut Events) -> (String, Value) {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.next_timeout(left) {
            Some(Event::Message { event, args, .. }) => {
                return (event, args.get::<Value>(0).unwrap_or(Value::Null))
            }
            Some(_) => continue,
            None => panic!("no message within {WAIT:?}"),
        }
    }
}

#[test]
fn handlers_broadcast_reach_rooms_and_the_whole_server() {
    let server = MockServer::builder()
        .on("/", "join", |socket, args, ack| {
            let room: String = args.get(0).unwrap();
            socket.join(&room);
            if let Some(ack) = ack {
                ack.send(Args::from_serialize(&true).unwrap());
            }
        })
        // Each handler ends with a `done` to the sender: the sender's messages are ordered, so a
        // `done` first proves the sender was left out of what came before it.
        .on("/", "shout", |socket, args, _| {
            socket.broadcast().emit("shout", args);
            socket.emit("done", Args::from_serialize(&"shout").unwrap());
        })
        .on("/", "room", |socket, args, _| {
            socket.to("r").emit("room", args);
            socket.emit("done", Args::from_serialize(&"room").unwrap());
        })
        .on("/", "all", |socket, args, _| {
            assert_eq!(socket.server().sockets().len(), 3);
            socket.server().emit_all("/", "all", args.clone());
            socket.server().to_room("/", "r").emit("room-all", args);
        })
        .start_background()
        .unwrap();
    let a = Client::builder(server.url()).connect().unwrap();
    let b = Client::builder(server.url()).connect().unwrap();
    let c = Client::builder(server.url()).connect().unwrap();
    let (mut ea, mut eb, mut ec) = (a.events(), b.events(), c.events());
    for client in [&a, &c] {
        client.emit_with_ack("join", "r", WAIT).unwrap();
    }

    a.emit("shout", json!({ "n": 1 })).unwrap();
    assert_eq!(next_message(&mut ea), ("done".into(), json!("shout")));
    assert_eq!(next_message(&mut eb), ("shout".into(), json!({ "n": 1 })));
    assert_eq!(next_message(&mut ec), ("shout".into(), json!({ "n": 1 })));

    // `to(room)` leaves out the sender even though it is in the room, and b is not in it.
    a.emit("room", json!({ "n": 2 })).unwrap();
    assert_eq!(next_message(&mut ea), ("done".into(), json!("room")));
    assert_eq!(next_message(&mut ec), ("room".into(), json!({ "n": 2 })));

    b.emit("all", json!({ "n": 3 })).unwrap();
    assert_eq!(next_message(&mut ea), ("all".into(), json!({ "n": 3 })));
    assert_eq!(
        next_message(&mut ea),
        ("room-all".into(), json!({ "n": 3 }))
    );
    // b got neither `shout` nor `room` before: its next message is the `all` it caused.
    assert_eq!(next_message(&mut eb), ("all".into(), json!({ "n": 3 })));
    assert_eq!(next_message(&mut ec), ("all".into(), json!({ "n": 3 })));
    assert_eq!(
        next_message(&mut ec),
        ("room-all".into(), json!({ "n": 3 }))
    );
    server.assert_no_handler_panics();
}

#[test]
fn blocking_twins_of_ack_disconnect_and_stop() {
    let server = MockServer::builder().start_background().unwrap();
    let client = Client::builder(server.url())
        .on("ask", |args, ack| {
            let n: u64 = args.get(0).unwrap();
            if let Some(ack) = ack {
                ack.send(&(n + 1)).unwrap();
            }
        })
        .connect()
        .unwrap();
    let socket = server.wait_for_sockets_blocking(1, WAIT).unwrap().remove(0);
    let reply = socket
        .emit_with_ack_blocking("ask", args(json!(41)), WAIT)
        .unwrap();
    assert_eq!(reply.get::<u64>(0).unwrap(), 42);

    assert!(matches!(
        socket.wait_disconnected_blocking(Duration::from_millis(50)),
        Err(MockError::Timeout(_))
    ));
    client.disconnect();
    socket.wait_disconnected_blocking(WAIT).unwrap();
    assert_eq!(
        socket.disconnect_reason().as_deref(),
        Some("client namespace disconnect")
    );
    assert!(matches!(
        socket.emit_with_ack_blocking("ask", args(json!(1)), WAIT),
        Err(MockError::Disconnected)
    ));

    let addr = server.addr();
    server.stop_blocking();
    assert!(
        std::net::TcpListener::bind(addr).is_ok(),
        "the port is free after stop_blocking"
    );
}

#[test]
fn handshake_headers_and_query_per_transport() {
    let server = MockServer::builder().start_background().unwrap();
    for transport in [
        Transport::Polling,
        Transport::WebSocket,
        Transport::Streaming,
    ] {
        let n = server.socket_history().len() + 1;
        let client = Client::builder(server.url())
            .transports([transport])
            .extra_header("authorization", "Bearer x")
            .query("token", "abc")
            .connect()
            .unwrap();
        assert_eq!(client.transport(), transport);
        let socket = server
            .wait_for_sockets_blocking(n, WAIT)
            .unwrap()
            .remove(n - 1);
        assert_eq!(
            socket.header("Authorization"),
            Some("Bearer x"),
            "{transport:?}"
        );
        assert!(
            socket
                .headers()
                .iter()
                .any(|(k, v)| k == "authorization" && v == "Bearer x"),
            "{transport:?}: names are lowercased: {:?}",
            socket.headers()
        );
        let query = socket.query();
        assert_eq!(query.get("token").map(String::as_str), Some("abc"));
        assert_eq!(query.get("EIO").map(String::as_str), Some("4"));
        let expected = match transport {
            Transport::Polling => "polling",
            Transport::WebSocket => "websocket",
            Transport::Streaming => "streaming",
            other => panic!("unexpected transport {other:?}"),
        };
        assert_eq!(query.get("transport").map(String::as_str), Some(expected));
        client.disconnect();
        socket.wait_disconnected_blocking(WAIT).unwrap();
    }
}

#[test]
fn handler_panics_are_recorded_and_the_connection_lives_on() {
    let server = MockServer::builder()
        .on("/", "check", |_socket, args, _ack| {
            let n: u64 = args.get(0).unwrap();
            assert_eq!(n, 1, "the user's assertion");
        })
        .on("/", "ping", |_socket, _args, ack| {
            if let Some(ack) = ack {
                ack.send(Args::from_serialize(&"pong").unwrap());
            }
        })
        .start_background()
        .unwrap();
    let client = Client::builder(server.url()).connect().unwrap();
    client.emit("check", 1).unwrap();
    client.emit("check", 2).unwrap();
    // Events of one connection are handled in order: once this is answered, both checks ran.
    let pong = client.emit_with_ack("ping", (), WAIT).unwrap();
    assert_eq!(pong.get::<String>(0).unwrap(), "pong");
    let panics = server.handler_panics();
    assert_eq!(panics.len(), 1, "{panics:?}");
    assert!(
        panics[0].contains("handler for \"check\" on /"),
        "{panics:?}"
    );
    assert!(panics[0].contains("the user's assertion"), "{panics:?}");
    assert!(client.is_connected());
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        server.assert_no_handler_panics()
    }));
    let message = caught.expect_err("assert_no_handler_panics panics");
    let message = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("1 mock handler panic(s)"), "{message}");
}

/// The case that used to deadlock: the mock awaited on the test's only runtime thread, then a
/// blocking client (and a `_blocking` wait) parking that very thread.
#[tokio::test]
async fn blocking_client_in_a_current_thread_tokio_test() {
    let server = MockServer::builder()
        .on("/", "ping", |_socket, _args, ack| {
            if let Some(ack) = ack {
                ack.send(Args::from_serialize(&"pong").unwrap());
            }
        })
        .start()
        .await
        .unwrap();
    let client = Client::builder(server.url()).connect().unwrap();
    let pong = client.emit_with_ack("ping", (), WAIT).unwrap();
    assert_eq!(pong.get::<String>(0).unwrap(), "pong");
    let events = server.wait_for_events_blocking(1, WAIT).unwrap();
    assert_eq!(events[0].event, "ping");
    // The async methods still work from the test's runtime.
    let sockets = server.wait_for_sockets(1, WAIT).await.unwrap();
    client.disconnect();
    sockets[0].wait_disconnected(WAIT).await.unwrap();
    server.stop().await;
}

#[test]
fn received_history_is_bounded() {
    let server = MockServer::builder()
        .max_received(3)
        .on("/", "last", |_socket, _args, ack| {
            if let Some(ack) = ack {
                ack.send(Args::new());
            }
        })
        .start_background()
        .unwrap();
    let client = Client::builder(server.url()).connect().unwrap();
    for n in 0..5 {
        client.emit("n", n).unwrap();
    }
    client.emit_with_ack("last", (), WAIT).unwrap();
    let kept: Vec<(String, Value)> = server
        .received()
        .into_iter()
        .map(|e| (e.event, e.args.get::<Value>(0).unwrap_or(Value::Null)))
        .collect();
    assert_eq!(
        kept,
        [
            ("n".to_owned(), json!(3)),
            ("n".to_owned(), json!(4)),
            ("last".to_owned(), Value::Null),
        ]
    );
    assert_eq!(server.received_dropped(), 3);
}

/// The CORS headers of a preflight and of a handshake GET from `origin`, names lowercased.
async fn cors_answers(base: &str, origin: &str) -> Vec<(u16, Vec<(String, String)>)> {
    let http = http_support::reqwest_builder().build().unwrap();
    let url = format!("{base}/socket.io/?EIO=4&transport=polling");
    let preflight = http
        .request(reqwest::Method::OPTIONS, &url)
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "authorization")
        .send()
        .await
        .unwrap();
    let handshake = http
        .get(&url)
        .header("Origin", origin)
        .send()
        .await
        .unwrap();
    [preflight, handshake]
        .iter()
        .map(|r| {
            let mut headers: Vec<(String, String)> = r
                .headers()
                .iter()
                .filter(|(k, _)| k.as_str().starts_with("access-control-") || *k == "vary")
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
                .collect();
            headers.sort();
            (r.status().as_u16(), headers)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_headers_match_nodes_cors_option() {
    node::ensure_node_deps();
    let mut cmd = std::process::Command::new("node");
    cmd.arg(node::node_dir().join("cors_server.js"))
        .arg("https://app.example");
    let (_node, port) = process::ServerProcess::spawn(cmd, 0).expect("node cors_server.js");
    let mock = MockServer::builder()
        .cors("https://app.example")
        .start()
        .await
        .unwrap();
    let from_node = cors_answers(&format!("http://127.0.0.1:{port}"), "https://app.example").await;
    let from_mock = cors_answers(&mock.url(), "https://app.example").await;
    assert_eq!(from_node[0].0, 204, "{from_node:?}");
    assert_eq!(from_mock, from_node);
}

#[tokio::test]
async fn cors_answers_preflight_and_marks_answers() {
    let server = MockServer::builder()
        .cors("https://app.example")
        .start()
        .await
        .unwrap();
    let http = http_support::reqwest_builder().build().unwrap();
    let url = format!("{}/socket.io/?EIO=4&transport=polling", server.url());
    let preflight = http
        .request(reqwest::Method::OPTIONS, &url)
        .header("Origin", "https://app.example")
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "authorization")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    let h = preflight.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert_eq!(
        h["access-control-allow-methods"],
        "GET,HEAD,PUT,PATCH,POST,DELETE"
    );
    assert_eq!(h["access-control-allow-headers"], "authorization");
    assert_eq!(server.connection_count(), 0, "a preflight opens no session");

    let handshake = http
        .get(&url)
        .header("Origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(handshake.status(), 200);
    assert_eq!(
        handshake.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert!(handshake.text().await.unwrap().starts_with("0{"));

    let any = MockServer::builder().cors("*").start().await.unwrap();
    let url = format!("{}/socket.io/?EIO=4&transport=polling", any.url());
    let answer = http
        .get(&url)
        .header("Origin", "https://other.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer.headers()["access-control-allow-origin"],
        "https://other.example",
        "`*` reflects the request's origin"
    );

    let plain = MockServer::builder().start().await.unwrap();
    let url = format!("{}/socket.io/?EIO=4&transport=polling", plain.url());
    let answer = http
        .get(&url)
        .header("Origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert!(answer
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}

/// What a pending polling GET gets when the client POSTs a close packet, or `None` when the
/// GET lost the race and arrived after the close.
async fn pending_get_on_client_close(base: &str) -> Option<(u16, String)> {
    let http = http_support::reqwest_builder().build().unwrap();
    let url = format!("{base}/socket.io/?EIO=4&transport=polling");
    let open = http.get(&url).send().await.unwrap().text().await.unwrap();
    let open: Value = serde_json::from_str(open.strip_prefix('0').unwrap()).unwrap();
    let sid = open["sid"].as_str().unwrap().to_owned();
    let session = format!("{url}&sid={sid}");
    let post = |body: &'static str| http.post(&session).body(body).send();
    assert_eq!(post("40").await.unwrap().text().await.unwrap(), "ok");
    let connected = http
        .get(&session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(connected.starts_with("40{"), "{connected}");
    let pending = tokio::spawn(http.get(&session).send());
    // Give the GET a head start; a lost race is seen (400) and retried by the caller.
    tokio::task::yield_now().await;
    assert_eq!(post("1").await.unwrap().text().await.unwrap(), "ok");
    let answer = pending.await.unwrap().unwrap();
    let status = answer.status().as_u16();
    let body = answer.text().await.unwrap();
    (status == 200).then_some((status, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_close_releases_the_pending_poll_with_a_noop_as_node() {
    let node = node::NodeServer::start_default(node::SioVersion::V4);
    let mock = MockServer::builder().start().await.unwrap();
    for (name, base) in [("node", node.url()), ("mock", mock.url())] {
        let mut answer = None;
        for _ in 0..10 {
            answer = pending_get_on_client_close(&base).await;
            if answer.is_some() {
                break;
            }
        }
        assert_eq!(
            answer,
            Some((200, "6".to_owned())),
            "{name}: the pending GET is released with a noop"
        );
    }
}

#[test]
fn a_panicking_connect_guard_refuses_and_is_recorded() {
    let server = MockServer::builder()
        .connect_guard("/admin", |_auth| panic!("guard bug"))
        .start_background()
        .unwrap();
    let client = Client::builder(server.url()).connect().unwrap();
    match client.socket("/admin").connect() {
        Err(sio_client::Error::ConnectRefused { message, .. }) => {
            assert_eq!(message, "connect guard panicked")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let panics = server.handler_panics();
    assert_eq!(panics.len(), 1, "{panics:?}");
    assert!(
        panics[0].contains("connect guard of /admin panicked: guard bug"),
        "{panics:?}"
    );
    assert!(client.is_connected(), "the connection lives on");
}
