//! Wire-level conformance of the mock server: raw HTTP and WebSocket, checking the exact strings
//! the Node socket.io 4 server sends, and every fault switch as a client would observe it. The
//! modes beyond socket.io 4 (plain Engine.IO, socket.io 2 / Engine.IO v3, connection-state
//! recovery) and the heartbeat's timing are checked against the Node servers in tests/node
//! side by side: the same requests to both, the answers compared with session ids and offsets
//! replaced by placeholders. Where they differ, Node is right.
#![cfg(feature = "mock-server")]

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use sio_client::mock::{MockServer, MockServerBuilder};
use sio_client::{Args, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(5);

/// A server with an `echo` event (acked when asked) and a guarded `/admin` namespace.
fn builder() -> MockServerBuilder {
    MockServer::builder()
        .on("/", "echo", |socket, args, ack| match ack {
            Some(ack) => ack.send(args),
            None => socket.emit("echo", args),
        })
        .connect_guard("/admin", |auth: Option<&Value>| {
            match auth.and_then(|a| a.get("token")).and_then(Value::as_str) {
                Some("secret") => Ok(()),
                _ => Err(("not authorized".to_owned(), Some(json!({ "retry": false })))),
            }
        })
}

struct HttpReply {
    status: u16,
    headers: String,
    body: String,
}

/// One request on its own connection (`Connection: close`), read to the end.
async fn http(addr: SocketAddr, method: &str, target: &str, body: &str) -> HttpReply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("response in time")
        .unwrap();
    parse_reply(&raw)
}

fn parse_reply(raw: &[u8]) -> HttpReply {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    HttpReply {
        status,
        headers: head.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

fn q(sid: &str) -> String {
    format!("/socket.io/?EIO=4&transport=polling&sid={sid}")
}

async fn get(addr: SocketAddr, sid: &str) -> HttpReply {
    http(addr, "GET", &q(sid), "").await
}

async fn post(addr: SocketAddr, sid: &str, body: &str) -> HttpReply {
    let r = http(addr, "POST", &q(sid), body).await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok"), "POST answers ok");
    assert!(r.headers.contains("content-type: text/html"));
    r
}

/// Polling handshake; returns the sid and the open packet's JSON.
async fn handshake(addr: SocketAddr) -> (String, Value) {
    let r = http(addr, "GET", "/socket.io/?EIO=4&transport=polling", "").await;
    assert_eq!(r.status, 200);
    assert!(r
        .headers
        .contains("content-type: text/plain; charset=utf-8"));
    let json: Value = serde_json::from_str(r.body.strip_prefix('0').expect("open packet")).unwrap();
    (json["sid"].as_str().unwrap().to_owned(), json)
}

/// Polling handshake plus CONNECT to `/`; returns the sid.
async fn polling_connected(addr: SocketAddr) -> String {
    let (sid, _) = handshake(addr).await;
    post(addr, &sid, "40").await;
    let r = get(addr, &sid).await;
    let reply: Value = serde_json::from_str(r.body.strip_prefix("40").unwrap()).unwrap();
    assert_eq!(reply["sid"].as_str().unwrap().len(), 20);
    sid
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn ws(addr: SocketAddr, query: &str) -> Ws {
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket{query}");
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// Next text or binary message; `None` when the WebSocket ended.
async fn next(ws: &mut Ws) -> Option<Message> {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message in time")
        {
            Some(Ok(Message::Text(t))) => return Some(Message::Text(t)),
            Some(Ok(Message::Binary(b))) => return Some(Message::Binary(b)),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

async fn next_text(ws: &mut Ws) -> String {
    match next(ws).await {
        Some(Message::Text(t)) => t.as_str().to_owned(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

async fn send(ws: &mut Ws, text: &str) {
    ws.send(Message::Text(text.into())).await.unwrap();
}

/// Direct WebSocket session joined to `/`.
async fn ws_connected(addr: SocketAddr) -> Ws {
    let mut ws = ws(addr, "").await;
    assert!(next_text(&mut ws).await.starts_with("0{"));
    send(&mut ws, "40").await;
    assert!(next_text(&mut ws).await.starts_with("40{\"sid\":\""));
    ws
}

fn engine_error(code: u8, message: &str) -> String {
    format!("{{\"code\":{code},\"message\":\"{message}\"}}")
}

#[tokio::test]
async fn handshake_has_nodes_shape() {
    let server = builder().start().await.unwrap();
    let (sid, json) = handshake(server.addr()).await;
    assert_eq!(sid.len(), 20);
    let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 5);
    assert_eq!(json["upgrades"], json!(["websocket"]));
    assert_eq!(json["pingInterval"], 25000);
    assert_eq!(json["pingTimeout"], 20000);
    assert_eq!(json["maxPayload"], 1000000);
    assert_eq!(server.connection_count(), 1);
}

#[tokio::test]
async fn engine_errors_match_node() {
    let server = builder().start().await.unwrap();
    let addr = server.addr();
    let cases = [
        (
            "GET",
            "/socket.io/?EIO=4&transport=carrier-pigeon",
            0,
            "Transport unknown",
        ),
        (
            "GET",
            "/socket.io/?EIO=4&transport=polling&sid=nope",
            1,
            "Session ID unknown",
        ),
        (
            "POST",
            "/socket.io/?EIO=4&transport=polling",
            2,
            "Bad handshake method",
        ),
        (
            "GET",
            "/socket.io/?EIO=4&transport=websocket",
            3,
            "Bad request",
        ),
        (
            "GET",
            "/socket.io/?EIO=3&transport=polling",
            5,
            "Unsupported protocol version",
        ),
        (
            "GET",
            "/socket.io/?transport=polling",
            5,
            "Unsupported protocol version",
        ),
    ];
    for (method, target, code, message) in cases {
        let r = http(addr, method, target, "").await;
        assert_eq!(r.status, 400, "{target}");
        assert!(r.headers.contains("content-type: application/json"));
        assert_eq!(r.body, engine_error(code, message), "{target}");
    }
    // A polling session asked for over another transport without upgrade.
    let (sid, _) = handshake(addr).await;
    let target = format!("/socket.io/?EIO=4&transport=websocket&sid={sid}");
    let r = http(addr, "GET", &target, "").await;
    assert_eq!((r.status, r.body), (400, engine_error(3, "Bad request")));
    assert_eq!(http(addr, "GET", "/elsewhere/", "").await.status, 404);
}

#[tokio::test]
async fn socketio_over_polling_connect_event_ack_binary() {
    let server = builder().start().await.unwrap();
    let addr = server.addr();
    let sid = polling_connected(addr).await;

    post(addr, &sid, r#"42["echo","hi",{"n":1}]"#).await;
    assert_eq!(get(addr, &sid).await.body, r#"42["echo","hi",{"n":1}]"#);

    post(addr, &sid, r#"421["echo",1]"#).await;
    assert_eq!(get(addr, &sid).await.body, "431[1]");

    // BINARY_EVENT: header then the attachment as a base64 payload element.
    let binary = "451-[\"echo\",{\"_placeholder\":true,\"num\":0}]\u{1e}bAQID";
    post(addr, &sid, binary).await;
    assert_eq!(get(addr, &sid).await.body, binary);

    let events = server.wait_for_events(3, WAIT).await.unwrap();
    assert_eq!(events[0].event, "echo");
    assert_eq!(events[0].connection_id, sid);
    assert_eq!(events[0].transport, Transport::Polling);
    assert_eq!(events[0].args.get::<String>(0).unwrap(), "hi");
    assert_eq!(events[1].ack_id, Some(1));
    assert_eq!(events[2].args.binary(0).unwrap().as_ref(), &[1, 2, 3]);
}

#[tokio::test]
async fn namespaces_refused_and_guarded() {
    let server = builder().start().await.unwrap();
    let addr = server.addr();
    let sid = polling_connected(addr).await;

    post(addr, &sid, "40/nope,").await;
    assert_eq!(
        get(addr, &sid).await.body,
        r#"44/nope,{"message":"Invalid namespace"}"#
    );

    post(addr, &sid, r#"40/admin,{"token":"wrong"}"#).await;
    let body = get(addr, &sid).await.body;
    let json: Value = serde_json::from_str(body.strip_prefix("44/admin,").unwrap()).unwrap();
    assert_eq!(
        json,
        json!({ "message": "not authorized", "data": { "retry": false } })
    );

    post(addr, &sid, r#"40/admin,{"token":"secret"}"#).await;
    let body = get(addr, &sid).await.body;
    assert!(body.starts_with("40/admin,{\"sid\":\""), "{body}");
    let sockets = server.wait_for_sockets(2, WAIT).await.unwrap();
    assert_eq!(sockets[1].namespace(), "/admin");
    assert_eq!(sockets[1].auth(), Some(&json!({ "token": "secret" })));
}

#[tokio::test]
async fn websocket_session_events_and_binary() {
    let server = builder().start().await.unwrap();
    let mut ws = ws(server.addr(), "").await;
    let open = next_text(&mut ws).await;
    let json: Value = serde_json::from_str(open.strip_prefix('0').unwrap()).unwrap();
    assert_eq!(json["upgrades"], json!([]));
    send(&mut ws, "40").await;
    assert!(next_text(&mut ws).await.starts_with("40{\"sid\":\""));

    send(&mut ws, r#"42["echo","hi"]"#).await;
    assert_eq!(next_text(&mut ws).await, r#"42["echo","hi"]"#);

    send(&mut ws, r#"451-["echo",{"_placeholder":true,"num":0}]"#).await;
    ws.send(Message::Binary(vec![9u8, 8].into())).await.unwrap();
    assert_eq!(
        next_text(&mut ws).await,
        r#"451-["echo",{"_placeholder":true,"num":0}]"#
    );
    assert_eq!(
        next(&mut ws).await,
        Some(Message::Binary(vec![9u8, 8].into()))
    );

    let events = server.wait_for_events(2, WAIT).await.unwrap();
    assert_eq!(events[0].transport, Transport::WebSocket);
}

#[tokio::test]
async fn server_emit_with_ack_and_disconnects() {
    let server = builder().start().await.unwrap();
    let mut ws = ws_connected(server.addr()).await;
    let socket = server.wait_for_sockets(1, WAIT).await.unwrap()[0].clone();
    assert_eq!(socket.transport(), Transport::WebSocket);

    let asking = {
        let socket = socket.clone();
        tokio::spawn(async move {
            socket
                .emit_with_ack("question", Args::from_serialize(&(1,)).unwrap(), WAIT)
                .await
        })
    };
    assert_eq!(next_text(&mut ws).await, r#"420["question",1]"#);
    send(&mut ws, r#"430["answer"]"#).await;
    let reply = asking.await.unwrap().unwrap();
    assert_eq!(reply.get::<String>(0).unwrap(), "answer");

    server.emit_all("/", "news", Args::from_serialize(&"flash").unwrap());
    assert_eq!(next_text(&mut ws).await, r#"42["news","flash"]"#);
    socket.join("room");
    server.to_room("/", "room").emit("roomy", Args::new());
    assert_eq!(next_text(&mut ws).await, r#"42["roomy"]"#);

    socket.disconnect();
    assert_eq!(next_text(&mut ws).await, "41");
    assert_eq!(
        socket.disconnect_reason().as_deref(),
        Some("server namespace disconnect")
    );

    // Rejoin, then leave from the client side.
    send(&mut ws, "40").await;
    assert!(next_text(&mut ws).await.starts_with("40{"));
    let again = server.wait_for_sockets(2, WAIT).await.unwrap()[1].clone();
    send(&mut ws, "41").await;
    again.wait_disconnected(WAIT).await.unwrap();
    assert_eq!(
        again.disconnect_reason().as_deref(),
        Some("client namespace disconnect")
    );
}

#[tokio::test]
async fn upgrade_from_polling_with_noop() {
    let server = builder().start().await.unwrap();
    let addr = server.addr();
    let sid = polling_connected(addr).await;

    let pending = tokio::spawn(async move { get(addr, &sid).await });
    let sid = loop {
        // The probe must arrive while the GET is pending: wait for the server to see it.
        if let Some(s) = server.sockets().first() {
            break s.connection_id().to_owned();
        }
        tokio::task::yield_now().await;
    };
    let mut ws = ws(addr, &format!("&sid={sid}")).await;
    send(&mut ws, "2probe").await;
    assert_eq!(next_text(&mut ws).await, "3probe");
    assert_eq!(pending.await.unwrap().body, "6");
    send(&mut ws, "5").await;

    server.emit_all("/", "after", Args::new());
    assert_eq!(next_text(&mut ws).await, r#"42["after"]"#);
    assert_eq!(server.sockets()[0].transport(), Transport::WebSocket);
    let r = get(addr, &sid).await;
    assert_eq!((r.status, r.body), (400, engine_error(3, "Bad request")));
}

fn fast() -> MockServerBuilder {
    builder()
        .ping_interval(Duration::from_millis(100))
        .ping_timeout(Duration::from_millis(150))
}

#[tokio::test]
async fn ping_pong_keeps_the_session_and_silence_ends_it() {
    let server = fast().start().await.unwrap();
    let mut ws = ws_connected(server.addr()).await;
    for _ in 0..3 {
        assert_eq!(next_text(&mut ws).await, "2");
        send(&mut ws, "3").await;
    }
    assert_eq!(server.connection_count(), 1);
    // No pong: the server closes the WebSocket.
    assert_eq!(next_text(&mut ws).await, "2");
    assert_eq!(next(&mut ws).await, None);
    let socket = server.socket_history()[0].clone();
    socket.wait_disconnected(WAIT).await.unwrap();
    assert_eq!(socket.disconnect_reason().as_deref(), Some("ping timeout"));
    assert_eq!(server.connection_count(), 0);
}

#[tokio::test]
async fn polling_ping_timeout_forgets_the_session() {
    let server = fast().start().await.unwrap();
    let addr = server.addr();
    let sid = polling_connected(addr).await;
    assert_eq!(get(addr, &sid).await.body, "2");
    post(addr, &sid, "3").await;
    assert_eq!(get(addr, &sid).await.body, "2");
    server.socket_history()[0]
        .wait_disconnected(WAIT)
        .await
        .unwrap();
    let r = get(addr, &sid).await;
    assert_eq!(
        (r.status, r.body),
        (400, engine_error(1, "Session ID unknown"))
    );
}

#[tokio::test]
async fn connect_timeout_closes_silent_connections() {
    let server = builder()
        .connect_timeout(Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let mut ws = ws(server.addr(), "").await;
    assert!(next_text(&mut ws).await.starts_with("0{"));
    assert_eq!(next(&mut ws).await, None);
}

#[tokio::test]
async fn overlapping_polls_close_the_session() {
    let server = builder().start().await.unwrap();
    let addr = server.addr();
    let sid = polling_connected(addr).await;
    // Nothing is queued, so whichever GET arrives first stays pending and the other overlaps.
    let (a, b) = tokio::join!(get(addr, &sid), get(addr, &sid));
    let mut answers = [(a.status, a.body), (b.status, b.body)];
    answers.sort();
    assert_eq!(answers, [(200, "1".to_owned()), (400, String::new())]);
    let r = get(addr, &sid).await;
    assert_eq!(r.body, engine_error(1, "Session ID unknown"));
}

#[tokio::test]
async fn oversized_post_is_refused() {
    let server = builder().max_payload(100).start().await.unwrap();
    let (sid, json) = handshake(server.addr()).await;
    assert_eq!(json["maxPayload"], 100);
    let body = format!(r#"42["echo","{}"]"#, "x".repeat(200));
    let r = http(server.addr(), "POST", &q(&sid), &body).await;
    assert_eq!(r.status, 413);
}

/// Sends a raw WebSocket upgrade request and returns the stream.
async fn raw_upgrade(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    stream
}

async fn read_head(stream: &mut TcpStream) -> String {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, stream.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 1, "connection ended inside the head");
        raw.push(byte[0]);
    }
    String::from_utf8(raw).unwrap()
}

#[tokio::test]
async fn fault_reject_websocket_and_no_upgrade() {
    let server = builder().start().await.unwrap();
    server.faults().reject_websocket(Some(403));
    let mut s = raw_upgrade(server.addr()).await;
    assert!(read_head(&mut s).await.starts_with("HTTP/1.1 403 "));

    server.faults().reject_websocket(None);
    server.faults().websocket_no_upgrade(true);
    let mut s = raw_upgrade(server.addr()).await;
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 200 OK"));
    assert!(!head.to_ascii_lowercase().contains("upgrade"));

    server.faults().clear();
    let mut s = raw_upgrade(server.addr()).await;
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 101 Switching Protocols"));
    assert!(head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
}

#[tokio::test]
async fn fault_reset_on_upgrade() {
    let server = builder().start().await.unwrap();
    server.faults().reset_on_upgrade(true);
    let mut s = raw_upgrade(server.addr()).await;
    let mut buf = [0u8; 64];
    let err = tokio::time::timeout(WAIT, s.read(&mut buf))
        .await
        .unwrap()
        .expect_err("a reset, not a clean close");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
}

#[tokio::test]
async fn fault_black_hole_websocket() {
    let server = builder().start().await.unwrap();
    server.faults().black_hole_websocket(true);
    let mut s = raw_upgrade(server.addr()).await;
    assert!(read_head(&mut s).await.starts_with("HTTP/1.1 101 "));
    let mut buf = [0u8; 64];
    // A real session would send the open packet at once; the black hole sends nothing.
    let silent = tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await;
    assert!(silent.is_err(), "no byte after the 101");
}

#[tokio::test]
async fn fault_delay_slows_every_answer() {
    let server = builder().start().await.unwrap();
    server.faults().delay(Duration::from_millis(200));
    let started = Instant::now();
    handshake(server.addr()).await;
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn fault_stop_pings() {
    let server = fast().start().await.unwrap();
    server.faults().stop_pings(true);
    let mut ws = ws_connected(server.addr()).await;
    let silent = tokio::time::timeout(Duration::from_millis(400), ws.next()).await;
    assert!(silent.is_err(), "no ping while pings are stopped");
    server.faults().stop_pings(false);
    assert_eq!(next_text(&mut ws).await, "2");
}

#[tokio::test]
async fn fault_drop_all_connections_and_refuse() {
    let server = builder().start().await.unwrap();
    let mut ws = ws_connected(server.addr()).await;
    server.faults().drop_all_connections();
    assert_eq!(next(&mut ws).await, None);
    server.socket_history()[0]
        .wait_disconnected(WAIT)
        .await
        .unwrap();

    server.faults().refuse_connections(true);
    // The server (on its own thread) may reset the connection before connect() returns.
    if let Ok(mut s) = TcpStream::connect(server.addr()).await {
        let mut buf = [0u8; 8];
        let read = tokio::time::timeout(WAIT, s.read(&mut buf)).await.unwrap();
        assert!(matches!(read, Ok(0) | Err(_)), "connection closed at once");
    }
    server.faults().refuse_connections(false);
    handshake(server.addr()).await;
}

#[tokio::test]
async fn restart_keeps_the_port_and_loses_sessions() {
    let server = builder().start().await.unwrap();
    let addr = server.addr();
    let (sid, _) = handshake(addr).await;
    server.restart().await.unwrap();
    assert_eq!(server.addr(), addr);
    let r = get(addr, &sid).await;
    assert_eq!(r.body, engine_error(1, "Session ID unknown"));
    handshake(addr).await;
}

#[tokio::test]
async fn drop_and_stop_free_the_port() {
    let server = builder().start().await.unwrap();
    let addr = server.addr();
    let _ws = ws_connected(addr).await;
    drop(server);
    assert!(TcpStream::connect(addr).await.is_err());

    let server = builder().start().await.unwrap();
    let addr = server.addr();
    server.stop().await;
    assert!(TcpStream::connect(addr).await.is_err());
}

#[test]
fn background_server_for_blocking_tests() {
    use std::io::{Read, Write};
    let server = builder().start_background().unwrap();
    let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    s.write_all(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let reply = parse_reply(&raw);
    assert!(reply.body.starts_with("0{\"sid\":"));
    let sid = serde_json::from_str::<Value>(&reply.body[1..]).unwrap()["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = "40\u{1e}42[\"echo\",true]";
    let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    write!(
        s,
        "POST {} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        q(&sid),
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    assert_eq!(parse_reply(&raw).body, "ok");
    let events = server.wait_for_events_blocking(1, WAIT).unwrap();
    assert!(events[0].args.get::<bool>(0).unwrap());
    assert_eq!(server.wait_for_sockets_blocking(1, WAIT).unwrap().len(), 1);
    let addr = server.addr();
    drop(server);
    assert!(std::net::TcpStream::connect(addr).is_err());
}

// ---------------------------------------------------------------------------------------------
// Side by side with Node.
// ---------------------------------------------------------------------------------------------

use support::node::{ensure_node_deps, node_dir};
use support::process::ServerProcess;
use support::{NodeOptions, NodeServer, SioVersion};

/// Starts a script of tests/node with `ServerProcess` (port line on stdout, exits when stdin
/// closes).
fn node_script(script: &str, args: &[&str]) -> (ServerProcess, SocketAddr) {
    ensure_node_deps();
    let dir = node_dir();
    let mut cmd = std::process::Command::new("node");
    cmd.arg(dir.join(script)).args(args).current_dir(&dir);
    let (process, port) = ServerProcess::spawn(cmd, 0)
        .unwrap_or_else(|e| panic!("node {script} did not start (Node.js 18+ needed): {e}"));
    (process, SocketAddr::from(([127, 0, 0, 1], port)))
}

fn node_addr(server: &NodeServer) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], server.port()))
}

/// Replaces every id and offset by a placeholder numbered by first appearance, so that two
/// servers' transcripts compare equal when they have the same shape, and a value that comes
/// back (the same sid, pid or offset) is seen to come back.
#[derive(Default)]
struct Placeholders {
    seen: HashMap<String, String>,
}

impl Placeholders {
    fn name(&mut self, value: &str) -> String {
        let n = self.seen.len();
        self.seen
            .entry(value.to_owned())
            .or_insert_with(|| format!("<{n}>"))
            .clone()
    }

    /// A text with the given ids replaced.
    fn replace(&mut self, text: &str, ids: &[&str]) -> String {
        let mut out = text.to_owned();
        for id in ids {
            let name = self.name(id);
            out = out.replace(id, &name);
        }
        out
    }

    /// An Engine.IO / Socket.IO frame with its ids replaced: the sid of an open packet, `sid`
    /// and `pid` of a CONNECT reply, and (`offsets`) the last argument of an event.
    fn frame(&mut self, frame: &str, offsets: bool) -> String {
        if let Some(json) = frame.strip_prefix('0') {
            if let Ok(open) = serde_json::from_str::<Value>(json) {
                let sid = open["sid"].as_str().unwrap_or_default().to_owned();
                return self.replace(frame, &[&sid]);
            }
        }
        if let Some(json) = frame.strip_prefix("40{") {
            let reply: Value = serde_json::from_str(&format!("{{{json}")).unwrap();
            let ids: Vec<String> = ["sid", "pid"]
                .iter()
                .filter_map(|k| reply[k].as_str().map(str::to_owned))
                .collect();
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            return self.replace(frame, &ids);
        }
        if let (true, Some(json)) = (offsets, frame.strip_prefix("42[")) {
            let mut event: Vec<Value> = serde_json::from_str(&format!("[{json}")).unwrap();
            if let Some(Value::String(offset)) = event.last().cloned() {
                let name = self.name(&offset);
                *event.last_mut().unwrap() = Value::String(name);
            }
            return format!("42{}", Value::Array(event));
        }
        frame.to_owned()
    }
}

/// A polling client for any path and Engine.IO revision.
struct Polling {
    addr: SocketAddr,
    base: String,
}

impl Polling {
    fn new(addr: SocketAddr, path: &str, eio: u8) -> Polling {
        let b64 = if eio == 3 { "&b64=1" } else { "" };
        Polling {
            addr,
            base: format!("{path}?EIO={eio}&transport=polling{b64}"),
        }
    }

    /// Handshake: the sid and the whole first body.
    async fn open(&self) -> (String, String) {
        let r = http(self.addr, "GET", &self.base, "").await;
        assert_eq!(r.status, 200, "{}", r.body);
        let json = r.body.split_once('0').expect("an open packet").1;
        let end = json.find('}').expect("the open packet's end");
        let open: Value = serde_json::from_str(&json[..=end]).unwrap();
        (open["sid"].as_str().unwrap().to_owned(), r.body)
    }

    async fn get(&self, sid: &str) -> HttpReply {
        http(self.addr, "GET", &format!("{}&sid={sid}", self.base), "").await
    }

    async fn post(&self, sid: &str, body: &str) -> HttpReply {
        http(self.addr, "POST", &format!("{}&sid={sid}", self.base), body).await
    }
}

/// The JSON of an Engine.IO error answer; Node's are chunked, the mock's have a length.
fn error_body(r: &HttpReply) -> &str {
    match (r.body.find('{'), r.body.rfind('}')) {
        (Some(start), Some(end)) if r.status == 400 => &r.body[start..=end],
        _ => &r.body,
    }
}

/// An Engine.IO v3 payload: every packet as `<length>:<packet>` (ASCII here, so bytes are
/// UTF-16 units).
fn v3(packets: &[&str]) -> String {
    packets.iter().map(|p| format!("{}:{p}", p.len())).collect()
}

/// What a pending polling GET gets when the client POSTs a close packet, or `None` when the
/// GET lost the race and arrived after the close (then the caller tries again).
async fn pending_get_on_close(peer: &Polling, close: &str) -> Option<String> {
    let (sid, _) = peer.open().await;
    // The GET is written out before the POST's connection is opened: both servers accept and
    // read connections in order, so the GET is nearly always there first.
    let addr = peer.addr;
    let mut get = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {}&sid={sid} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
        peer.base
    );
    get.write_all(request.as_bytes()).await.unwrap();
    let pending = tokio::spawn(async move {
        let mut raw = Vec::new();
        tokio::time::timeout(WAIT, get.read_to_end(&mut raw))
            .await
            .expect("the GET answered in time")
            .unwrap();
        parse_reply(&raw)
    });
    assert_eq!(peer.post(&sid, close).await.body, "ok");
    let answer = pending.await.unwrap();
    (answer.status == 200).then_some(answer.body)
}

async fn noop_on_close(peer: &Polling, close: &str) -> String {
    for _ in 0..20 {
        if let Some(body) = pending_get_on_close(peer, close).await {
            return body;
        }
    }
    panic!("the GET never was pending when the close arrived");
}

type AnyWs = Ws;

async fn ws_to(addr: SocketAddr, target: &str) -> AnyWs {
    let url = format!("ws://{addr}{target}");
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// The text of the next frame; binary frames as `bin:<hex>`; `None` when the WebSocket ended.
async fn next_frame(ws: &mut AnyWs) -> Option<String> {
    next(ws).await.map(|m| match m {
        Message::Text(t) => t.as_str().to_owned(),
        Message::Binary(b) => format!(
            "bin:{}",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        ),
        other => panic!("unexpected {other:?}"),
    })
}

// --- plain Engine.IO -------------------------------------------------------------------------

fn engine_io_mock() -> MockServerBuilder {
    MockServer::builder()
        .engine_io()
        .on_engine_message(|conn, data| conn.send(data))
}

/// A polling session on a plain Engine.IO server: messages, binary, upgrade, WebSocket.
async fn engine_io_transcript(addr: SocketAddr) -> Vec<String> {
    let peer = Polling::new(addr, "/engine.io/", 4);
    let mut names = Placeholders::default();
    let mut t = Vec::new();
    let (sid, open) = peer.open().await;
    t.push(names.frame(&open, false));
    for body in ["4hello\u{1e}bAQID", "4a\u{1e}4b\u{1e}4c"] {
        t.push(format!(
            "POST {body} -> {}",
            peer.post(&sid, body).await.body
        ));
        let r = peer.get(&sid).await;
        t.push(format!("GET -> {} {}", r.status, r.body));
    }
    // Upgrade: the pending GET is released with a noop, then the WebSocket carries the session.
    let target = format!("{}&sid={sid}", peer.base);
    let pending = tokio::spawn(async move { http(addr, "GET", &target, "").await });
    let mut ws = ws_to(
        addr,
        &format!("/engine.io/?EIO=4&transport=websocket&sid={sid}"),
    )
    .await;
    send(&mut ws, "2probe").await;
    t.push(format!("probe -> {:?}", next_frame(&mut ws).await));
    t.push(format!("pending GET -> {}", pending.await.unwrap().body));
    send(&mut ws, "5").await;
    send(&mut ws, "4over websocket").await;
    t.push(format!("ws -> {:?}", next_frame(&mut ws).await));
    ws.send(Message::Binary(vec![1u8, 2].into())).await.unwrap();
    t.push(format!("ws -> {:?}", next_frame(&mut ws).await));
    let r = peer.get(&sid).await;
    t.push(format!(
        "GET after upgrade -> {} {}",
        r.status,
        error_body(&r)
    ));
    // Over WebSocket a close packet is ignored (the client closes the WebSocket itself).
    send(&mut ws, "1").await;
    send(&mut ws, "4still open").await;
    t.push(format!("ws -> {:?}", next_frame(&mut ws).await));
    // A session on WebSocket from the start.
    let mut ws = ws_to(addr, "/engine.io/?EIO=4&transport=websocket").await;
    let open = next_frame(&mut ws).await.unwrap();
    t.push(names.frame(&open, false));
    send(&mut ws, "4direct").await;
    t.push(format!("ws -> {:?}", next_frame(&mut ws).await));
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_io_mode_answers_as_nodes_engine_io() {
    let (_node, node) = node_script("engine_server.js", &[]);
    let mock = engine_io_mock().start().await.unwrap();
    let from_node = engine_io_transcript(node).await;
    let from_mock = engine_io_transcript(mock.addr()).await;
    assert!(from_node[0].starts_with("0{\"sid\":\"<0>\",\"upgrades\":[\"websocket\"]"));
    assert_eq!(from_mock, from_node);
    // Every message was recorded, on namespace "".
    let events = mock.wait_for_events(7, WAIT).await.unwrap();
    assert!(events
        .iter()
        .all(|e| e.event == "message" && e.namespace.is_empty()));
    assert_eq!(events[0].args.get::<String>(0).unwrap(), "hello");
    assert_eq!(events[1].args.binary(0).unwrap().as_ref(), &[1, 2, 3]);
    assert_eq!(events[5].transport, Transport::WebSocket);
    // No Socket.IO on that path, none on /socket.io/ either.
    assert_eq!(
        http(
            mock.addr(),
            "GET",
            "/socket.io/?EIO=4&transport=polling",
            ""
        )
        .await
        .status,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_io_mode_releases_a_pending_get_with_a_noop_on_close() {
    let (_node, node) = node_script("engine_server.js", &[]);
    let mock = engine_io_mock().start().await.unwrap();
    for (name, addr) in [("node", node), ("mock", mock.addr())] {
        let peer = Polling::new(addr, "/engine.io/", 4);
        assert_eq!(noop_on_close(&peer, "1").await, "6", "{name}");
    }
}

#[tokio::test]
async fn engine_io_mode_hook_sees_the_connection() {
    let server = MockServer::builder()
        .engine_io()
        .path("/raw")
        .on_engine_message(|conn, data| match data {
            sio_client::proto::engineio::Data::Text(text) if text == "bye" => conn.close(),
            _ => conn.send_text(&format!("{} via {:?}", conn.id(), conn.query().get("EIO"))),
        })
        .start()
        .await
        .unwrap();
    assert_eq!(server.path(), "/raw/");
    let mut ws = ws_to(server.addr(), "/raw/?EIO=4&transport=websocket").await;
    let open = next_text(&mut ws).await;
    let sid = serde_json::from_str::<Value>(&open[1..]).unwrap()["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let connections = server.connections();
    assert_eq!(connections.len(), 1);
    assert_eq!(connections[0].id(), sid);
    assert_eq!(connections[0].transport(), Transport::WebSocket);
    send(&mut ws, "4hi").await;
    assert_eq!(next_text(&mut ws).await, format!("4{sid} via Some(\"4\")"));
    connections[0].send_binary(vec![7u8]);
    assert_eq!(next(&mut ws).await, Some(Message::Binary(vec![7u8].into())));
    send(&mut ws, "4bye").await;
    assert_eq!(next(&mut ws).await, None, "the hook closed the session");
    server.wait_for_connection_count(0, WAIT).await.unwrap();
    assert!(
        server.sockets().is_empty(),
        "no Socket.IO socket in this mode"
    );
}

// --- the close/noop case over socket.io -----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio_releases_a_pending_get_with_a_noop_on_close() {
    for (version, eio, close, noop) in [
        (SioVersion::V4, 4, "1", "6"),
        (SioVersion::V2, 3, "1:1", "1:6"),
    ] {
        let node = NodeServer::start_default(version);
        let mock = match version {
            SioVersion::V2 => socketio2_mock(),
            SioVersion::V4 => builder(),
        }
        .start()
        .await
        .unwrap();
        for (name, addr) in [("node", node_addr(&node)), ("mock", mock.addr())] {
            let peer = Polling::new(addr, "/socket.io/", eio);
            assert_eq!(noop_on_close(&peer, close).await, noop, "{name} EIO {eio}");
        }
    }
}

// --- socket.io 2 / Engine.IO v3 ---------------------------------------------------------------

/// The mock set up as tests/node/server.js `--sio 2`: `echo`, `ack`, `request-ack`,
/// `disconnect-me`, and `/admin` behind `?token=secret`.
fn socketio2_mock() -> MockServerBuilder {
    let echo = |socket: &sio_client::mock::MockSocket, args: Args, _ack| socket.emit("echo", args);
    MockServer::builder()
        .eio3()
        .on("/", "echo", echo)
        .on("/admin", "echo", echo)
        .on("/", "ack", |_socket, args, ack| {
            if let Some(ack) = ack {
                ack.send(args)
            }
        })
        .on("/", "request-ack", |socket, args, _ack| {
            let socket = socket.clone();
            tokio::spawn(async move {
                if let Ok(reply) = socket.emit_with_ack("need-ack", args, WAIT).await {
                    socket.emit("got-ack", reply);
                }
            });
        })
        .on("/", "disconnect-me", |socket, _args, _ack| {
            socket.disconnect_and_close()
        })
        .connect_guard("/admin", |query: Option<&Value>| {
            match query.and_then(|q| q.get("token")).and_then(Value::as_str) {
                Some("secret") => Ok(()),
                _ => Err(("not authorized".to_owned(), None)),
            }
        })
}

/// socket.io 2 over polling: the steps, each a POST and the GET that answers it.
async fn socketio2_polling_transcript(addr: SocketAddr) -> Vec<String> {
    let peer = Polling::new(addr, "/socket.io/", 3);
    let mut names = Placeholders::default();
    let mut t = Vec::new();
    let (sid, open) = peer.open().await;
    t.push(names.replace(&open, &[&sid]));
    let steps: &[&[&str]] = &[
        &["2"],
        &["2probe"],
        &[r#"42["echo","hi",{"n":1}]"#],
        &[r#"421["ack",1,2]"#],
        &["40/nope,"],
        &["40/admin,"],
        &["40/admin?token=wrong,"],
        &["40/admin?token=secret,"],
        &[r#"42/admin,["echo","x"]"#],
        &[r#"451-["echo",{"_placeholder":true,"num":0}]"#, "b4AQID"],
        &[r#"42["request-ack",1]"#],
        &[r#"430["r"]"#],
        &[r#"42["echo","a"]"#, r#"42["echo","b"]"#],
    ];
    for packets in steps {
        let body = v3(packets);
        let r = peer.post(&sid, &body).await;
        t.push(format!("POST {body} -> {} {}", r.status, r.body));
        let r = peer.get(&sid).await;
        let body = names.replace(error_body(&r), &[&sid]);
        t.push(format!("GET -> {} {body}", r.status));
    }
    // A disconnect with close: DISCONNECT on one poll, the close (after a noop) on the next.
    let body = v3(&[r#"42["disconnect-me"]"#]);
    t.push(format!(
        "POST {body} -> {}",
        peer.post(&sid, &body).await.body
    ));
    for _ in 0..3 {
        let r = peer.get(&sid).await;
        t.push(format!("GET -> {} {}", r.status, error_body(&r)));
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio2_polling_answers_as_node_2_5() {
    let node = NodeServer::start_default(SioVersion::V2);
    let mock = socketio2_mock().start().await.unwrap();
    let from_node = socketio2_polling_transcript(node_addr(&node)).await;
    let from_mock = socketio2_polling_transcript(mock.addr()).await;
    assert_eq!(
        from_node[0],
        r#"97:0{"sid":"<0>","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000}2:40"#
    );
    for (n, (node, mock)) in from_node.iter().zip(&from_mock).enumerate() {
        assert_eq!(mock, node, "step {n}");
    }
    assert_eq!(from_mock.len(), from_node.len());
    let sockets = mock.socket_history();
    assert_eq!(sockets[1].namespace(), "/admin");
    assert_eq!(sockets[1].auth().unwrap()["token"], "secret");
}

/// socket.io 2 over WebSocket, and a polling session upgraded to it.
async fn socketio2_websocket_transcript(addr: SocketAddr) -> Vec<String> {
    let mut names = Placeholders::default();
    let mut t = Vec::new();
    let mut ws = ws_to(addr, "/socket.io/?EIO=3&transport=websocket").await;
    for _ in 0..2 {
        let frame = next_frame(&mut ws).await.unwrap();
        t.push(names.frame(&frame, false));
    }
    for frame in [
        "2",
        r#"42["echo","hi"]"#,
        "40/admin?token=secret,",
        r#"42/admin,["echo",1]"#,
    ] {
        send(&mut ws, frame).await;
        t.push(format!("{frame} -> {:?}", next_frame(&mut ws).await));
    }
    send(&mut ws, r#"451-["echo",{"_placeholder":true,"num":0}]"#).await;
    ws.send(Message::Binary(vec![4u8, 1, 2].into()))
        .await
        .unwrap();
    t.push(format!("binary -> {:?}", next_frame(&mut ws).await));
    t.push(format!("attachment -> {:?}", next_frame(&mut ws).await));

    let peer = Polling::new(addr, "/socket.io/", 3);
    let (sid, _) = peer.open().await;
    let target = format!("{}&sid={sid}", peer.base);
    let pending = tokio::spawn(async move { http(addr, "GET", &target, "").await });
    let mut ws = ws_to(
        addr,
        &format!("/socket.io/?EIO=3&transport=websocket&sid={sid}"),
    )
    .await;
    send(&mut ws, "2probe").await;
    t.push(format!("probe -> {:?}", next_frame(&mut ws).await));
    t.push(format!("pending GET -> {}", pending.await.unwrap().body));
    send(&mut ws, "5").await;
    send(&mut ws, r#"42["echo","upgraded"]"#).await;
    t.push(format!("after upgrade -> {:?}", next_frame(&mut ws).await));
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio2_websocket_answers_as_node_2_5() {
    let node = NodeServer::start_default(SioVersion::V2);
    let mock = socketio2_mock().start().await.unwrap();
    let from_node = socketio2_websocket_transcript(node_addr(&node)).await;
    let from_mock = socketio2_websocket_transcript(mock.addr()).await;
    assert_eq!(from_node[1], "40");
    assert_eq!(from_mock, from_node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio2_errors_and_cors_as_node_2_5() {
    let node = NodeServer::start_default(SioVersion::V2);
    let mock = socketio2_mock().start().await.unwrap();
    let answers = |addr: SocketAddr| async move {
        let mut out = Vec::new();
        for (method, target, origin) in [
            ("GET", "/socket.io/?EIO=3&transport=carrier-pigeon", None),
            ("GET", "/socket.io/?EIO=3&transport=polling&sid=nope", None),
            ("POST", "/socket.io/?EIO=3&transport=polling", None),
            ("GET", "/socket.io/?EIO=3&transport=websocket", None),
            (
                "OPTIONS",
                "/socket.io/?EIO=3&transport=polling",
                Some("https://app.example"),
            ),
            (
                "GET",
                "/socket.io/?EIO=3&transport=polling",
                Some("https://app.example"),
            ),
            ("GET", "/socket.io/?EIO=4&transport=polling", None),
        ] {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let origin = origin
                .map(|o| format!("Origin: {o}\r\n"))
                .unwrap_or_default();
            let req = format!(
                "{method} {target} HTTP/1.1\r\nHost: {addr}\r\n{origin}Connection: close\r\nContent-Length: 0\r\n\r\n"
            );
            stream.write_all(req.as_bytes()).await.unwrap();
            let mut raw = Vec::new();
            tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
                .await
                .unwrap()
                .unwrap();
            let r = parse_reply(&raw);
            let cors: Vec<&str> = r
                .headers
                .lines()
                .filter(|l| l.starts_with("access-control-"))
                .collect();
            let body = match r.status {
                400 => error_body(&r).to_owned(),
                _ => r.body.split(":0{").next().unwrap().to_owned(),
            };
            let mut cors: Vec<String> = cors.iter().map(|s| (*s).to_owned()).collect();
            cors.sort();
            out.push(format!("{method} {target} -> {} {body} {cors:?}", r.status));
        }
        out
    };
    let from_node = answers(node_addr(&node)).await;
    let from_mock = answers(mock.addr()).await;
    assert_eq!(from_mock, from_node);
}

// --- heartbeat timing -------------------------------------------------------------------------

/// How long a server takes to close a silent WebSocket session: from the client's pong (v4:
/// the next ping comes pingInterval later, the close pingTimeout after it) or from the open
/// (v3: the client never pings; the close comes pingInterval + pingTimeout later).
async fn heartbeat_expiry(addr: SocketAddr, eio: u8) -> Duration {
    let mut ws = ws_to(addr, &format!("/socket.io/?EIO={eio}&transport=websocket")).await;
    assert!(next_text(&mut ws).await.starts_with("0{"));
    let mut started = Instant::now();
    if eio == 4 {
        send(&mut ws, "40").await;
        assert!(next_text(&mut ws).await.starts_with("40{"));
        assert_eq!(next_text(&mut ws).await, "2");
        send(&mut ws, "3").await;
        started = Instant::now();
        assert_eq!(next_text(&mut ws).await, "2", "the next ping");
    } else {
        assert_eq!(next_text(&mut ws).await, "40");
    }
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("the server closes a silent session");
        match frame {
            Some(Ok(Message::Text(t))) => panic!("unexpected {t} while waiting for the close"),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(_)) => {}
        }
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_expires_no_later_than_on_node() {
    // Generous for a loaded machine: the point is that the mock adds no delay of its own to
    // Node's pingInterval + pingTimeout after the last pong (v4) or the last packet (v3).
    const SLACK: Duration = Duration::from_millis(250);
    let interval = Duration::from_millis(200);
    let timeout = Duration::from_millis(300);
    let options = NodeOptions {
        ping_interval_ms: Some(200),
        ping_timeout_ms: Some(300),
        ..NodeOptions::default()
    };
    let window = interval + timeout;
    for (version, eio) in [(SioVersion::V4, 4), (SioVersion::V2, 3)] {
        let node = NodeServer::start(version, options.clone());
        let mut builder = MockServer::builder()
            .ping_interval(interval)
            .ping_timeout(timeout);
        if eio == 3 {
            builder = builder.eio3();
        }
        let mock = builder.start().await.unwrap();
        let on_node = heartbeat_expiry(node_addr(&node), eio).await;
        let on_mock = heartbeat_expiry(mock.addr(), eio).await;
        assert!(
            on_mock + Duration::from_millis(50) >= window,
            "EIO {eio}: the mock closed after {on_mock:?}, before its window of {window:?}"
        );
        assert!(
            on_mock <= on_node + SLACK,
            "EIO {eio}: the mock closed after {on_mock:?}, Node after {on_node:?}"
        );
    }
}

/// v4: from the ping to the close when the client sends no pong but other packets, 100 ms and
/// 650 ms after the ping. engine.io 6 moves the deadline once, to pingTimeout after the first
/// of them, and no further.
async fn heartbeat_expiry_with_packets(addr: SocketAddr) -> Duration {
    let mut ws = ws_to(addr, "/socket.io/?EIO=4&transport=websocket").await;
    assert!(next_text(&mut ws).await.starts_with("0{"));
    send(&mut ws, "40").await;
    assert!(next_text(&mut ws).await.starts_with("40{"));
    assert_eq!(next_text(&mut ws).await, "2");
    let pinged = Instant::now();
    for at in [100, 650] {
        // The scenario's own timing, not a synchronisation: packets at set points in time.
        tokio::time::sleep_until((pinged + Duration::from_millis(at)).into()).await;
        send(&mut ws, r#"42["not a pong"]"#).await;
    }
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("the server closes the session");
        match frame {
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(_)) => {}
        }
    }
    pinged.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_packet_instead_of_the_pong_defers_the_timeout_once_as_on_node() {
    let node = NodeServer::start(
        SioVersion::V4,
        NodeOptions {
            ping_interval_ms: Some(200),
            ping_timeout_ms: Some(600),
            ..NodeOptions::default()
        },
    );
    let mock = MockServer::builder()
        .ping_interval(Duration::from_millis(200))
        .ping_timeout(Duration::from_millis(600))
        .start()
        .await
        .unwrap();
    let on_node = heartbeat_expiry_with_packets(node_addr(&node)).await;
    let on_mock = heartbeat_expiry_with_packets(mock.addr()).await;
    // Node closes 700 ms after the ping; deferring for the second packet too would be 1250.
    assert!(
        on_node < Duration::from_millis(1000),
        "Node deferred twice? {on_node:?}"
    );
    assert!(
        on_mock <= on_node + Duration::from_millis(250),
        "the mock closed after {on_mock:?}, Node after {on_node:?}"
    );
    assert!(on_mock >= Duration::from_millis(650), "{on_mock:?}");
}

// --- connection-state recovery ----------------------------------------------------------------

/// The mock set up as tests/node/server.js `--sio 4 --recovery`.
fn recovery_mock() -> MockServerBuilder {
    MockServer::builder()
        .recovery(Duration::from_secs(120))
        .on("/", "echo", |socket, args, _ack| socket.emit("echo", args))
        .on("/", "broadcast", |socket, args, _ack| {
            socket.server().emit_all("/", "broadcast", args)
        })
        .on("/", "ack", |_socket, args, ack| {
            if let Some(ack) = ack {
                ack.send(args)
            }
        })
        .on("/", "am-i-recovered", |socket, _args, ack| {
            if let Some(ack) = ack {
                ack.send(Args::from_serialize(&socket.recovered()).unwrap())
            }
        })
}

/// Sends `frames` and reads until a frame starting with `until`, keeping every frame read.
async fn exchange(ws: &mut AnyWs, frames: &[&str], until: &str) -> Vec<String> {
    for frame in frames {
        send(ws, frame).await;
    }
    let mut got = Vec::new();
    loop {
        let frame = next_frame(ws).await.expect("a frame before the end");
        let done = frame.starts_with(until);
        got.push(frame);
        if done {
            return got;
        }
    }
}

/// A client cut off (its TCP connection dropped), events emitted while it is away, its
/// reconnection with `{pid, offset}`, and one with an unknown pid. `gone` waits until the
/// server saw the first client go.
async fn recovery_transcript<F>(addr: SocketAddr, gone: impl Fn() -> F) -> Vec<String>
where
    F: std::future::Future<Output = ()>,
{
    let target = "/socket.io/?EIO=4&transport=websocket";
    let mut names = Placeholders::default();
    let mut t = Vec::new();
    let mut record = |names: &mut Placeholders, who: &str, frames: Vec<String>| {
        for frame in frames {
            t.push(format!("{who} {}", names.frame(&frame, true)));
        }
    };

    let mut a = ws_to(addr, target).await;
    let open = next_frame(&mut a).await.unwrap();
    record(&mut names, "A", vec![open]);
    let connected = exchange(&mut a, &["40"], "40").await;
    let pid = serde_json::from_str::<Value>(&connected[0][2..]).unwrap()["pid"]
        .as_str()
        .unwrap()
        .to_owned();
    record(&mut names, "A", connected);
    let echoed = exchange(&mut a, &[r#"42["echo","one"]"#], "42").await;
    let event: Vec<Value> = serde_json::from_str(&echoed[0][2..]).unwrap();
    let offset = event.last().unwrap().as_str().unwrap().to_owned();
    record(&mut names, "A", echoed);
    drop(a);
    gone().await;

    let mut b = ws_to(addr, target).await;
    next_frame(&mut b).await.unwrap();
    exchange(&mut b, &["40"], "40").await;
    let frames = exchange(
        &mut b,
        &[
            r#"42["broadcast","m1"]"#,
            r#"42["broadcast","m2"]"#,
            r#"421["ack"]"#,
        ],
        "431",
    )
    .await;
    record(&mut names, "B", frames);

    let recovering = format!(r#"40{{"pid":"{pid}","offset":"{offset}","token":"x"}}"#);
    let mut c = ws_to(addr, target).await;
    next_frame(&mut c).await.unwrap();
    let frames = exchange(&mut c, &[&recovering], "40").await;
    record(&mut names, "C", frames);
    let frames = exchange(&mut c, &[r#"422["am-i-recovered"]"#], "43").await;
    record(&mut names, "C", frames);

    let unknown = format!(r#"40{{"pid":"nope","offset":"{offset}"}}"#);
    let mut d = ws_to(addr, target).await;
    next_frame(&mut d).await.unwrap();
    let frames = exchange(&mut d, &[&unknown], "40").await;
    record(&mut names, "D", frames);
    let frames = exchange(&mut d, &[r#"423["am-i-recovered"]"#], "43").await;
    record(&mut names, "D", frames);
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_answers_as_node_4_8() {
    let node = NodeServer::start(
        SioVersion::V4,
        NodeOptions {
            recovery: true,
            ..NodeOptions::default()
        },
    );
    let mock = recovery_mock().start().await.unwrap();
    // Node notices the dropped connection long before the next client's round trips are
    // through; the mock is asked.
    let from_node = recovery_transcript(node_addr(&node), || async {}).await;
    let from_mock = recovery_transcript(mock.addr(), || async {
        mock.socket_history()[0]
            .wait_disconnected(WAIT)
            .await
            .unwrap()
    })
    .await;
    assert!(
        from_node.contains(&r#"C 40{"sid":"<1>","pid":"<2>"}"#.to_owned()),
        "{from_node:#?}"
    );
    assert_eq!(from_mock, from_node);
    let sockets = mock.socket_history();
    assert!(sockets[2].recovered());
    assert_eq!(sockets[2].id(), sockets[0].id());
    assert!(!sockets[3].recovered());
}
