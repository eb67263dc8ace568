//! The mock server's streaming transport (our Engine.IO v4 extension) at the wire level: raw
//! HTTP/1.1 read chunk by chunk with the tests' shared reader (`support/http.rs`) and the
//! events decoded with `sse::SseDecoder`.
#![cfg(feature = "mock-server")]

#[allow(dead_code)]
#[path = "support/http.rs"]
mod http;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use sio_client::mock::{MockServer, MockServerBuilder};
use sio_client::proto::engineio::sse::{self, SseDecoder};
use sio_client::proto::engineio::{Data, Packet};
use sio_client::{Args, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(5);

fn builder() -> MockServerBuilder {
    MockServer::builder().on("/", "echo", |socket, args, ack| match ack {
        Some(ack) => ack.send(args),
        None => socket.emit("echo", args),
    })
}

fn streaming(sid: &str) -> String {
    format!("/socket.io/?EIO=4&transport=streaming&sid={sid}&t=x")
}

const HANDSHAKE: &str = "/socket.io/?EIO=4&transport=streaming&t=x";

/// One streaming response being read: head, chunks, decoded packets.
struct Sse {
    conn: http::HttpConn<TcpStream>,
    /// Lower-cased head.
    head: String,
    decoder: SseDecoder,
    /// Chunks of the current response, in order.
    chunks: Vec<Vec<u8>>,
    packets: VecDeque<Packet>,
    /// The zero chunk arrived.
    ended: bool,
}

impl Sse {
    /// Sends a streaming GET on a new connection and reads the head, which must be a 200.
    async fn open(addr: SocketAddr, target: &str) -> Sse {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut sse = Sse {
            conn: http::HttpConn::new(tcp),
            head: String::new(),
            decoder: SseDecoder::new(1 << 20),
            chunks: Vec::new(),
            packets: VecDeque::new(),
            ended: true,
        };
        sse.reopen(addr, target).await;
        sse
    }

    /// Sends the next streaming GET on the same (kept-alive) connection.
    async fn reopen(&mut self, addr: SocketAddr, target: &str) {
        assert!(self.ended, "the previous response is complete");
        let req =
            format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
        self.conn.stream.write_all(req.as_bytes()).await.unwrap();
        let head = tokio::time::timeout(WAIT, self.conn.read_response_head())
            .await
            .expect("bytes in time")
            .expect("a well-formed response head")
            .expect("a response head");
        self.head = head.text().to_ascii_lowercase();
        assert!(self.head.starts_with("http/1.1 200 "), "{}", self.head);
        self.chunks.clear();
        self.ended = false;
    }

    /// The next packet of this response; `None` once it has ended.
    async fn next(&mut self) -> Option<Packet> {
        loop {
            if let Some(p) = self.packets.pop_front() {
                return Some(p);
            }
            if self.ended {
                return None;
            }
            let chunk = tokio::time::timeout(WAIT, self.conn.read_chunk())
                .await
                .expect("bytes in time")
                .expect("the stream ends with a zero chunk");
            match chunk {
                Some(data) => {
                    self.packets.extend(self.decoder.feed(&data).unwrap());
                    self.chunks.push(data);
                }
                None => self.ended = true,
            }
        }
    }

    async fn next_text(&mut self) -> String {
        match self.next().await {
            Some(Packet::Message(Data::Text(t))) => t,
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    fn body_len(&self) -> usize {
        self.chunks.iter().map(Vec::len).sum()
    }
}

/// Streaming handshake; returns the stream and the open packet's JSON.
async fn handshake(addr: SocketAddr) -> (Sse, Value) {
    let mut sse = Sse::open(addr, HANDSHAKE).await;
    let Some(Packet::Open(hs)) = sse.next().await else {
        panic!("the open packet first");
    };
    let open = Packet::Open(hs);
    let json: Value = serde_json::from_str(&open.encode_text()[1..]).unwrap();
    (sse, json)
}

/// Handshake and CONNECT to `/`; returns the stream and the sid.
async fn connected(addr: SocketAddr) -> (Sse, String) {
    let (mut sse, json) = handshake(addr).await;
    let sid = json["sid"].as_str().unwrap().to_owned();
    post(addr, &sid, "40").await;
    let reply = sse.next_text().await;
    let reply: Value = serde_json::from_str(reply.strip_prefix('0').unwrap()).unwrap();
    assert_eq!(reply["sid"].as_str().unwrap().len(), 20);
    (sse, sid)
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
    let head = http::parse_response_head(&raw)
        .expect("a well-formed head")
        .expect("a complete head");
    HttpReply {
        status: head.status,
        headers: head.text().to_ascii_lowercase(),
        body: String::from_utf8_lossy(&raw[head.raw.len()..]).into_owned(),
    }
}

async fn post(addr: SocketAddr, sid: &str, body: &str) {
    let r = http(addr, "POST", &streaming(sid), body).await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok"), "POST answers ok");
    assert!(r.headers.contains("content-type: text/html"));
}

fn engine_error(code: u8, message: &str) -> String {
    json!({ "code": code, "message": message }).to_string()
}

#[tokio::test]
async fn handshake_headers_prelude_and_open_packet() {
    let server = builder()
        .ping_interval(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let (sse, json) = handshake(server.addr()).await;
    for header in [
        "content-type: text/event-stream",
        "cache-control: no-cache, no-transform",
        "x-accel-buffering: no",
        "transfer-encoding: chunked",
    ] {
        assert!(sse.head.contains(header), "{header} in {}", sse.head);
    }
    assert!(!sse.head.contains("content-length"));
    // The prelude is the first chunk, the open packet the next one, each on its own.
    assert_eq!(sse.chunks[0], sse::prelude().into_bytes());
    let open = String::from_utf8(sse.chunks[1].clone()).unwrap();
    let open = open.strip_prefix("data: 0{\"sid\":").unwrap();
    let open = open.strip_suffix("\n\n").unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&format!("{{\"sid\":{open}")).unwrap(),
        json
    );
    assert_eq!(json["sid"].as_str().unwrap().len(), 20);
    assert_eq!(json["upgrades"], json!(["websocket"]));
    assert_eq!(json["pingInterval"], 300);
    assert_eq!(json["pingTimeout"], 20000);
    assert_eq!(json["maxPayload"], 1_000_000);
    assert_eq!(server.connection_count(), 1);

    // Without WebSocket there is nothing to upgrade to.
    let server = builder()
        .transports(&[Transport::Streaming])
        .start()
        .await
        .unwrap();
    let (_sse, json) = handshake(server.addr()).await;
    assert_eq!(json["upgrades"], json!([]));
}

#[tokio::test]
async fn connect_echo_binary_and_acks_over_the_stream() {
    let server = builder().max_payload(1000).start().await.unwrap();
    let addr = server.addr();
    let (mut sse, sid) = connected(addr).await;

    post(addr, &sid, r#"42["echo","hi",{"n":1}]"#).await;
    assert_eq!(sse.next_text().await, r#"2["echo","hi",{"n":1}]"#);

    post(addr, &sid, r#"421["echo",1]"#).await;
    assert_eq!(sse.next_text().await, "31[1]");

    // A binary event: the header, then the attachment as a `b`+base64 event.
    let header = r#"51-["echo",{"_placeholder":true,"num":0}]"#;
    post(addr, &sid, &format!("4{header}\u{1e}bAQID")).await;
    assert_eq!(sse.next_text().await, header);
    assert_eq!(
        sse.next().await,
        Some(Packet::Message(Data::Binary(vec![1, 2, 3].into())))
    );
    // Several packets in one POST payload.
    post(addr, &sid, "42[\"echo\",\"a\"]\u{1e}42[\"echo\",\"b\"]").await;
    assert_eq!(sse.next_text().await, r#"2["echo","a"]"#);
    assert_eq!(sse.next_text().await, r#"2["echo","b"]"#);

    let events = server.wait_for_events(5, WAIT).await.unwrap();
    assert!(events.iter().all(|e| e.transport == Transport::Streaming));
    assert_eq!(events[0].connection_id, sid);
    assert_eq!(events[1].ack_id, Some(1));
    assert_eq!(events[2].args.binary(0).unwrap().as_ref(), &[1, 2, 3]);
    assert_eq!(server.sockets()[0].transport(), Transport::Streaming);

    // Server-initiated events arrive at once too.
    server.emit_all("/", "news", Args::from_serialize(&"flash").unwrap());
    assert_eq!(sse.next_text().await, r#"2["news","flash"]"#);

    // Over maxPayload: 413, and the session lives on.
    let big = format!(r#"42["echo","{}"]"#, "x".repeat(2000));
    let r = http(addr, "POST", &streaming(&sid), &big).await;
    assert_eq!(r.status, 413);
    post(addr, &sid, r#"42["echo","still"]"#).await;
    assert_eq!(sse.next_text().await, r#"2["echo","still"]"#);
}

#[tokio::test]
async fn ping_pong_through_the_stream_and_timeout_without_pong() {
    let server = builder()
        .ping_interval(Duration::from_millis(100))
        .ping_timeout(Duration::from_millis(150))
        .start()
        .await
        .unwrap();
    let addr = server.addr();
    let (mut sse, sid) = connected(addr).await;
    for _ in 0..3 {
        assert_eq!(sse.next().await, Some(Packet::Ping(String::new())));
        post(addr, &sid, "3").await;
    }
    assert_eq!(server.connection_count(), 1);
    // No pong: the close packet, then the end of the response.
    assert_eq!(sse.next().await, Some(Packet::Ping(String::new())));
    assert_eq!(sse.next().await, Some(Packet::Close));
    assert_eq!(sse.next().await, None);
    let socket = server.socket_history()[0].clone();
    socket.wait_disconnected(WAIT).await.unwrap();
    assert_eq!(socket.disconnect_reason().as_deref(), Some("ping timeout"));
    let r = http(addr, "GET", &streaming(&sid), "").await;
    assert_eq!(
        (r.status, r.body),
        (400, engine_error(1, "Session ID unknown"))
    );
}

#[tokio::test]
async fn recycled_responses_lose_and_repeat_nothing() {
    const LIMIT: usize = 4096;
    const N: usize = 300;
    let server = builder().stream_recycle_bytes(LIMIT).start().await.unwrap();
    let addr = server.addr();
    let (mut sse, sid) = connected(addr).await;
    let socket = server.sockets()[0].clone();
    let pad = "p".repeat(40);
    let emit = |i: usize| socket.emit("n", Args::from_serialize(&(i, &pad)).unwrap());

    // Half queued at once (most of it while no GET is attached), half while reading.
    for i in 0..N / 2 {
        emit(i);
    }
    let mut got = Vec::new();
    let mut responses = 0;
    let mut next_emit = N / 2;
    loop {
        while got.len() < N {
            let Some(packet) = sse.next().await else {
                break;
            };
            let Packet::Message(Data::Text(text)) = packet else {
                panic!("unexpected {packet:?}");
            };
            let args: Value = serde_json::from_str(text.strip_prefix('2').unwrap()).unwrap();
            assert_eq!(args[0], "n");
            got.push(args[1].as_u64().unwrap() as usize);
            if next_emit < N {
                emit(next_emit);
                next_emit += 1;
            }
        }
        if got.len() == N {
            break;
        }
        responses += 1;
        // Every response: the prelude alone in the first chunk, then one event per chunk, and
        // it ends after the first event that reaches the budget.
        assert_eq!(sse.chunks[0], sse::prelude().into_bytes());
        let last = sse.chunks.last().unwrap().len();
        assert!(sse.body_len() >= LIMIT && sse.body_len() - last < LIMIT);
        for chunk in &sse.chunks[1..] {
            assert_eq!(SseDecoder::new(1 << 20).feed(chunk).unwrap().len(), 1);
        }
        // Alternate between the kept-alive connection and a new one.
        if responses % 2 == 0 {
            sse.reopen(addr, &streaming(&sid)).await;
        } else {
            sse = Sse::open(addr, &streaming(&sid)).await;
        }
    }
    assert_eq!(got, (0..N).collect::<Vec<_>>());
    assert!(responses >= 4, "{responses} responses");
    assert_eq!(server.connection_count(), 1);
    assert!(socket.is_connected());
}

#[tokio::test]
async fn packets_wait_for_the_next_get_down_to_the_close_packet() {
    // A budget of one byte: every response carries a single event.
    let server = builder().stream_recycle_bytes(1).start().await.unwrap();
    let addr = server.addr();
    let (mut sse, json) = handshake(addr).await;
    assert_eq!(sse.next().await, None);
    let sid = json["sid"].as_str().unwrap().to_owned();
    post(addr, &sid, "40").await;
    sse.reopen(addr, &streaming(&sid)).await;
    assert!(sse.next_text().await.starts_with("0{\"sid\":"));
    assert_eq!(sse.next().await, None);

    // Closed by the server while no GET is attached: the session keeps its DISCONNECT and its
    // close packet for the next GETs.
    server.disconnect_all();
    sse.reopen(addr, &streaming(&sid)).await;
    assert_eq!(sse.next_text().await, "1");
    assert_eq!(sse.next().await, None);
    sse.reopen(addr, &streaming(&sid)).await;
    assert_eq!(sse.next().await, Some(Packet::Close));
    assert_eq!(sse.next().await, None);
    let r = http(addr, "GET", &streaming(&sid), "").await;
    assert_eq!(
        (r.status, r.body),
        (400, engine_error(1, "Session ID unknown"))
    );
}

#[tokio::test]
async fn closing_the_stream_connection_ends_the_session() {
    let server = builder().start().await.unwrap();
    let (sse, _sid) = connected(server.addr()).await;
    drop(sse);
    let socket = server.socket_history()[0].clone();
    socket.wait_disconnected(WAIT).await.unwrap();
    assert_eq!(
        socket.disconnect_reason().as_deref(),
        Some("transport close")
    );
    assert_eq!(server.connection_count(), 0);
}

#[tokio::test]
async fn a_second_stream_is_a_bad_request_that_ends_the_session() {
    let server = builder().start().await.unwrap();
    let addr = server.addr();
    let (mut sse, sid) = connected(addr).await;
    let r = http(addr, "GET", &streaming(&sid), "").await;
    assert_eq!((r.status, r.body), (400, engine_error(3, "Bad request")));
    assert_eq!(sse.next().await, Some(Packet::Close));
    assert_eq!(sse.next().await, None);
    let r = http(addr, "POST", &streaming(&sid), "3").await;
    assert_eq!(
        (r.status, r.body),
        (400, engine_error(1, "Session ID unknown"))
    );
}

#[tokio::test]
async fn disabled_streaming_is_an_unknown_transport() {
    let server = builder()
        .transports(&[Transport::Polling, Transport::WebSocket])
        .start()
        .await
        .unwrap();
    let r = http(server.addr(), "GET", HANDSHAKE, "").await;
    assert_eq!(
        (r.status, r.body),
        (400, engine_error(0, "Transport unknown"))
    );
    assert_eq!(server.connection_count(), 0);

    // A streaming sid asked for over polling (and back) is the wrong transport.
    let server = builder().start().await.unwrap();
    let addr = server.addr();
    let (_sse, sid) = connected(addr).await;
    let polling = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    let r = http(addr, "GET", &polling, "").await;
    assert_eq!((r.status, r.body), (400, engine_error(3, "Bad request")));
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn ws_text(ws: &mut Ws) -> String {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message in time")
        {
            Some(Ok(Message::Text(t))) => return t.as_str().to_owned(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected text, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn upgrade_from_streaming_ends_the_stream_with_a_noop() {
    let server = builder().start().await.unwrap();
    let addr = server.addr();
    let (mut sse, sid) = connected(addr).await;

    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket&sid={sid}");
    let mut ws = tokio_tungstenite::connect_async(url).await.unwrap().0;
    ws.send(Message::Text("2probe".into())).await.unwrap();
    assert_eq!(ws_text(&mut ws).await, "3probe");
    assert_eq!(sse.next().await, Some(Packet::Noop));
    assert_eq!(sse.next().await, None, "the stream ends after the noop");

    // Still on streaming until `5`: what is sent meanwhile waits for the WebSocket.
    post(addr, &sid, r#"42["echo","during"]"#).await;
    assert_eq!(server.sockets()[0].transport(), Transport::Streaming);
    ws.send(Message::Text("5".into())).await.unwrap();
    assert_eq!(ws_text(&mut ws).await, r#"42["echo","during"]"#);
    server.emit_all("/", "after", Args::new());
    assert_eq!(ws_text(&mut ws).await, r#"42["after"]"#);
    assert_eq!(server.sockets()[0].transport(), Transport::WebSocket);

    for method in ["GET", "POST"] {
        let r = http(addr, method, &streaming(&sid), "3").await;
        assert_eq!((r.status, r.body), (400, engine_error(3, "Bad request")));
    }
    ws.send(Message::Text(r#"42["echo","ws"]"#.into()))
        .await
        .unwrap();
    assert_eq!(ws_text(&mut ws).await, r#"42["echo","ws"]"#);
    let events = server.wait_for_events(2, WAIT).await.unwrap();
    assert_eq!(events[0].transport, Transport::Streaming);
    assert_eq!(events[1].transport, Transport::WebSocket);
}

#[tokio::test]
async fn buffering_proxy_holds_the_open_packet_back() {
    let server = builder().start().await.unwrap();
    server.faults().buffer_streaming(true);
    let mut tcp = TcpStream::connect(server.addr()).await.unwrap();
    let req = format!(
        "GET {HANDSHAKE} HTTP/1.1\r\nHost: {}\r\n\r\n",
        server.addr()
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_millis(500), tcp.read(&mut buf)).await;
    assert!(read.is_err(), "no byte within the timeout, got {read:?}");
    assert_eq!(
        server.connection_count(),
        1,
        "the session exists server-side"
    );

    // When the response ends (here: the server closes the session) everything comes out.
    server.disconnect_all();
    let mut raw = Vec::new();
    loop {
        let n = tokio::time::timeout(WAIT, tcp.read_buf(&mut raw))
            .await
            .unwrap()
            .unwrap();
        if n == 0 || raw.ends_with(http::LAST_CHUNK) {
            break;
        }
    }
    let text = String::from_utf8(raw).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(text.contains("data: 0{\"sid\""));
    assert!(text.contains("data: 1\n\n"));
}

#[tokio::test]
async fn delay_holds_the_response_start() {
    let server = builder().start().await.unwrap();
    server.faults().delay(Duration::from_millis(300));
    let started = Instant::now();
    let (_sse, json) = handshake(server.addr()).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(json["sid"].as_str().unwrap().len(), 20);
}
