//! Wire-level conformance of the mock server: raw HTTP and WebSocket, checking the exact strings
//! the Node socket.io 4 server sends, and every fault switch as a client would observe it.
#![cfg(feature = "mock-server")]

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
