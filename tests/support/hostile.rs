//! A scripted, deliberately misbehaving Engine.IO / Socket.IO server for robustness tests.
//!
//! It speaks just enough of the protocols to get a client to a chosen point (before the open
//! packet, before the namespace CONNECT reply, or after it) and then sends whatever the
//! [`Script`] says, well-formed or not. Both transports are served from one port: a request
//! with `transport=websocket` gets a hand-made WebSocket upgrade (so that raw, even invalid,
//! frames can be written afterwards), anything else a minimal hand-written HTTP/1.1 polling
//! responder. After the script it keeps serving: pings get pongs, a namespace CONNECT gets
//! accepted and an EVENT asking for an ack gets its arguments back as the ack, so a test can
//! check that a connection survived what it was sent.
//!
//! The server runs on a runtime of its own, so it works from plain and from tokio tests alike;
//! dropping it stops everything at once (connections are cut, not closed).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use sio_client::proto::engineio::{decode_payload, Data, EngineVersion, Packet};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::background::Background;
use super::http::{self, HttpConn, RequestHead};

/// The session id of every session this server opens.
pub const SID: &str = "s";

/// A valid v4 open packet (with the `0` type), as the server sends it.
pub const OPEN_V4: &str =
    r#"0{"sid":"s","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;

/// A valid v3 open packet (with the `0` type).
pub const OPEN_V3: &str = r#"0{"sid":"s","upgrades":[],"pingInterval":25000,"pingTimeout":20000}"#;

/// The valid open packet for `version`.
pub fn open_packet(version: EngineVersion) -> &'static str {
    match version {
        EngineVersion::V3 => OPEN_V3,
        _ => OPEN_V4,
    }
}

/// One thing the server sends.
#[derive(Debug, Clone)]
pub enum Out {
    /// An Engine.IO packet in text form (`4…`, `0{…}`, `1`, …). WebSocket: one text frame.
    /// Polling: one response whose payload is this packet (v3: length-prefixed); an empty
    /// string gives an empty body.
    Text(String),
    /// A binary message. WebSocket: a binary frame (v3: after the `0x04` type byte). Polling:
    /// `b<base64>` (v4) or `b4<base64>` (v3).
    Binary(Vec<u8>),
    /// WebSocket: a text frame carrying exactly these bytes, valid UTF-8 or not (framed by hand).
    /// Polling: exactly these bytes as a 200 response's body.
    Raw(Vec<u8>),
    /// WebSocket: a binary frame carrying exactly these bytes (no v3 type byte added).
    /// Polling: same as [`Out::Raw`].
    RawBinary(Vec<u8>),
    /// HTTP response with this status and body. WebSocket: only as the first step of
    /// [`Stage::Open`], where it answers the upgrade request instead of `101`; later it cuts
    /// the connection.
    Status(u16, String),
    /// WebSocket: these bytes written straight to the TCP connection (hand-made frames); the
    /// connection stays. Polling: same as [`Out::Raw`].
    Wire(Vec<u8>),
    /// These bytes written straight to the TCP connection (in place of a frame or of an HTTP
    /// response), then the connection is dropped.
    WireThenHangup(Vec<u8>),
    /// Drop the TCP connection (no close frame, no HTTP response).
    Hangup,
    /// WebSocket: a close frame. Polling: the close packet `1`.
    CloseFrame,
}

/// Where in the conversation the script's steps go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Instead of the open packet.
    Open,
    /// After a valid open, instead of the CONNECT reply for `/` (which follows the steps, so a
    /// client that shrugs them off still connects).
    ConnectReply,
    /// After a valid open and CONNECT reply.
    AfterConnect,
}

/// What a [`HostileServer`] does.
#[derive(Debug, Clone)]
pub struct Script {
    /// Protocol spoken: v4 (socket.io 3/4) or v3 (socket.io 2, `40` sent unprompted).
    pub version: EngineVersion,
    /// Where the steps go.
    pub stage: Stage,
    /// What is sent there.
    pub steps: Vec<Out>,
}

/// A running scripted server on 127.0.0.1 with an ephemeral port.
pub struct HostileServer {
    background: Background,
    addr: SocketAddr,
    log: Arc<Log>,
}

impl HostileServer {
    /// Starts serving `script`. Panics if the runtime or the socket cannot be set up.
    pub fn start(script: Script) -> HostileServer {
        let background = Background::on_own_runtime("hostile-server");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let log = Arc::new(Log::default());
        let session = Arc::new(Session::new(script, log.clone()));
        let tasks = background.tasks();
        background.spawn(async move {
            let Ok(listener) = TcpListener::from_std(listener) else {
                return;
            };
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                tasks.spawn(serve_connection(stream, session.clone()));
            }
        });
        HostileServer {
            background,
            addr,
            log,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything received from clients so far: Engine.IO packets in text form (`40`,
    /// `421["x"]`, `2`, `1`, …), binary messages as `<binary N>`.
    pub fn received(&self) -> Vec<String> {
        self.log.lock().clone()
    }

    /// Waits until some received packet satisfies `pred`; false after `timeout`.
    pub fn wait_received(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut entries = self.log.lock();
        loop {
            if entries.iter().any(|e| pred(e)) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            entries = self
                .log
                .changed
                .wait_timeout(entries, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }
}

#[derive(Default)]
struct Log {
    entries: Mutex<Vec<String>>,
    changed: Condvar,
}

impl Log {
    fn lock(&self) -> MutexGuard<'_, Vec<String>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, entry: String) {
        self.lock().push(entry);
        self.changed.notify_all();
    }
}

/// The one session of a server: the script, what is queued for polling GETs, and the log.
struct Session {
    script: Script,
    /// Whether the script's steps were sent (they go once).
    used: Mutex<bool>,
    /// Responses waiting for a polling GET.
    queue: Mutex<VecDeque<Out>>,
    queued: Notify,
    log: Arc<Log>,
}

impl Session {
    fn new(script: Script, log: Arc<Log>) -> Session {
        Session {
            script,
            used: Mutex::new(false),
            queue: Mutex::new(VecDeque::new()),
            queued: Notify::new(),
            log,
        }
    }

    fn version(&self) -> EngineVersion {
        self.script.version
    }

    /// The steps, the first time they are due at `stage`.
    fn steps_at(&self, stage: Stage) -> Vec<Out> {
        if self.script.stage != stage {
            return Vec::new();
        }
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        if *used {
            return Vec::new();
        }
        *used = true;
        self.script.steps.clone()
    }

    /// What opens a new transport: the open packet (or the steps instead), and for v3 the
    /// unprompted CONNECT of `/`.
    fn opening(&self) -> Vec<Out> {
        let mut out = self.steps_at(Stage::Open);
        if self.script.stage != Stage::Open {
            out.push(Out::Text(open_packet(self.version()).to_owned()));
        }
        if self.version() == EngineVersion::V3 {
            out.extend(self.connect_reply("/"));
        }
        out
    }

    /// The reply to a CONNECT of `nsp`, with the steps before or after it as the stage says.
    fn connect_reply(&self, nsp: &str) -> Vec<Out> {
        let mut out = Vec::new();
        if nsp == "/" {
            out.extend(self.steps_at(Stage::ConnectReply));
        }
        let prefix = if nsp == "/" {
            String::new()
        } else {
            format!("{nsp},")
        };
        out.push(Out::Text(match self.version() {
            EngineVersion::V3 => format!("40{prefix}"),
            _ => format!("40{prefix}{{\"sid\":\"x\"}}"),
        }));
        if nsp == "/" {
            out.extend(self.steps_at(Stage::AfterConnect));
        }
        out
    }

    /// Logs one Engine.IO packet from the client (text form) and returns the answers.
    fn on_client_text(&self, text: &str) -> Vec<Out> {
        self.log.push(text.to_owned());
        let mut chars = text.chars();
        match (chars.next(), chars.next()) {
            // v3 client ping (also `2probe`): pong with the same data.
            (Some('2'), _) => vec![Out::Text(format!("3{}", &text[1..]))],
            (Some('4'), Some('0')) => {
                let rest = &text[2..];
                let nsp = if rest.starts_with('/') {
                    rest.split([',', '?']).next().unwrap_or("/")
                } else {
                    "/"
                };
                self.connect_reply(nsp)
            }
            (Some('4'), Some('2')) => ack_for(&text[2..]).into_iter().collect(),
            _ => Vec::new(),
        }
    }

    fn on_client_binary(&self, len: usize) {
        self.log.push(format!("<binary {len}>"));
    }

    fn enqueue(&self, outs: Vec<Out>) {
        if outs.is_empty() {
            return;
        }
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(outs);
        self.queued.notify_waiters();
        self.queued.notify_one();
    }

    async fn next_queued(&self) -> Out {
        loop {
            let notified = self.queued.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(out) = self
                .queue
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front()
            {
                return out;
            }
            notified.await;
        }
    }
}

/// The ACK answering a Socket.IO EVENT (the text after `42`) that asks for one: its arguments
/// come back as the ack's.
fn ack_for(event: &str) -> Option<Out> {
    let (nsp, rest) = match event.strip_prefix('/') {
        Some(_) => {
            let comma = event.find(',')?;
            (&event[..=comma], &event[comma + 1..])
        }
        None => ("", event),
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let id = &rest[..digits];
    let data: serde_json::Value = serde_json::from_str(&rest[digits..]).ok()?;
    let args = match data {
        serde_json::Value::Array(mut items) if !items.is_empty() => {
            items.remove(0);
            items
        }
        _ => Vec::new(),
    };
    let args = serde_json::Value::Array(args);
    Some(Out::Text(format!("43{nsp}{id}{args}")))
}

/// One HTTP request as far as this server cares.
struct Request {
    head: RequestHead,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.headers.get(name)
    }

    fn query(&self, key: &str) -> Option<String> {
        self.head.query(key)
    }
}

/// Reads one request; `None` at EOF or on anything unreadable.
async fn read_request(conn: &mut HttpConn<TcpStream>) -> Option<Request> {
    let head = conn.read_request_head().await.ok()??;
    let body = conn.read_body(head.body().ok()?, u64::MAX).await.ok()?;
    Some(Request { head, body })
}

fn http_response(status: u16, body: &[u8]) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Whatever",
    };
    http::response(
        status,
        reason,
        &[
            ("Content-Type", "text/plain; charset=UTF-8"),
            ("Connection", "keep-alive"),
        ],
        body,
    )
}

async fn serve_connection(stream: TcpStream, session: Arc<Session>) {
    let mut conn = HttpConn::new(stream);
    while let Some(request) = read_request(&mut conn).await {
        if request.query("transport").as_deref() == Some("websocket") {
            // Nothing follows an upgrade request before the 101, so no buffered byte is lost.
            serve_websocket(conn.stream, request, session).await;
            return;
        }
        if !serve_polling(&mut conn.stream, request, &session).await {
            return;
        }
    }
}

/// Answers one polling request; false when the connection must be dropped.
async fn serve_polling(stream: &mut TcpStream, request: Request, session: &Session) -> bool {
    let version = session.version();
    if request.head.method == "POST" {
        let body = String::from_utf8_lossy(&request.body).into_owned();
        let mut answers = Vec::new();
        match decode_payload(version, &body) {
            Ok(packets) => {
                for packet in packets {
                    match packet {
                        Packet::Message(Data::Binary(b)) => session.on_client_binary(b.len()),
                        other => answers.extend(session.on_client_text(&other.encode_text())),
                    }
                }
            }
            Err(e) => session.log.push(format!("<bad POST {e}: {body:?}>")),
        }
        session.enqueue(answers);
        return stream.write_all(&http_response(200, b"ok")).await.is_ok();
    }
    let out = if request.query("sid").is_none() {
        let mut opening = session.opening().into_iter();
        let first = opening.next();
        session.enqueue(opening.collect());
        match first {
            Some(out) => out,
            None => return false,
        }
    } else {
        session.next_queued().await
    };
    send_polling(stream, version, out).await
}

/// Sends one queued item as a polling response; false when the connection is dropped.
async fn send_polling(stream: &mut TcpStream, version: EngineVersion, out: Out) -> bool {
    let body = match out {
        Out::Text(text) if text.is_empty() => Vec::new(),
        Out::Text(text) => match version {
            EngineVersion::V3 => format!("{}:{text}", text.encode_utf16().count()).into_bytes(),
            _ => text.into_bytes(),
        },
        Out::Binary(bytes) => {
            let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
            let text = match version {
                EngineVersion::V3 => format!("b4{b64}"),
                _ => format!("b{b64}"),
            };
            match version {
                EngineVersion::V3 => format!("{}:{text}", text.len()).into_bytes(),
                _ => text.into_bytes(),
            }
        }
        Out::Raw(bytes) | Out::RawBinary(bytes) | Out::Wire(bytes) => bytes,
        Out::Status(status, body) => {
            return stream
                .write_all(&http_response(status, body.as_bytes()))
                .await
                .is_ok();
        }
        Out::WireThenHangup(bytes) => {
            let _ = stream.write_all(&bytes).await;
            let _ = stream.flush().await;
            return false;
        }
        Out::Hangup => return false,
        Out::CloseFrame => match version {
            EngineVersion::V3 => b"1:1".to_vec(),
            _ => b"1".to_vec(),
        },
    };
    stream.write_all(&http_response(200, &body)).await.is_ok()
}

/// A WebSocket frame (server to client, so unmasked) with any payload, valid or not.
fn raw_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x80 | opcode];
    let len = payload.len();
    if len < 126 {
        frame.push(len as u8);
    } else if len <= usize::from(u16::MAX) {
        frame.push(126);
        frame.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        frame.push(127);
        frame.extend_from_slice(&(len as u64).to_be_bytes());
    }
    frame.extend_from_slice(payload);
    frame
}

async fn serve_websocket(mut stream: TcpStream, request: Request, session: Arc<Session>) {
    let mut pending: VecDeque<Out> = session.opening().into();
    if let Some(Out::Status(status, body)) = pending.front() {
        let _ = stream
            .write_all(&http_response(*status, body.as_bytes()))
            .await;
        return;
    }
    let Some(key) = request.header("sec-websocket-key") else {
        let _ = stream.write_all(&http_response(400, b"no key")).await;
        return;
    };
    let accept = derive_accept_key(key.as_bytes());
    let upgrade = http::head(
        "HTTP/1.1 101 Switching Protocols",
        &[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", &accept),
        ],
    );
    if stream.write_all(&upgrade).await.is_err() {
        return;
    }
    let mut ws = WebSocketStream::from_raw_socket(stream, Role::Server, None).await;
    let version = session.version();
    loop {
        while let Some(out) = pending.pop_front() {
            if !send_websocket(&mut ws, version, out).await {
                return;
            }
        }
        match ws.next().await {
            Some(Ok(Message::Text(text))) => pending.extend(session.on_client_text(&text)),
            Some(Ok(Message::Binary(bytes))) => session.on_client_binary(bytes.len()),
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                session.log.push("<websocket closed>".to_owned());
                return;
            }
            Some(Ok(_)) => {}
        }
    }
}

/// Sends one item on the WebSocket; false when the connection is gone.
async fn send_websocket(
    ws: &mut WebSocketStream<TcpStream>,
    version: EngineVersion,
    out: Out,
) -> bool {
    let message = match out {
        Out::Text(text) => Message::text(text),
        Out::Binary(bytes) => match version {
            EngineVersion::V3 => {
                let mut framed = vec![4u8];
                framed.extend_from_slice(&bytes);
                Message::binary(framed)
            }
            _ => Message::binary(bytes),
        },
        Out::RawBinary(bytes) => Message::binary(bytes),
        Out::Raw(bytes) => {
            // tungstenite refuses to send invalid UTF-8 as text, so the frame is written by hand;
            // everything sent before was flushed, so it lands in order.
            return ws
                .get_mut()
                .write_all(&raw_frame(0x1, &bytes))
                .await
                .is_ok();
        }
        Out::Wire(bytes) => return ws.get_mut().write_all(&bytes).await.is_ok(),
        Out::WireThenHangup(bytes) => {
            let _ = ws.get_mut().write_all(&bytes).await;
            let _ = ws.get_mut().flush().await;
            return false;
        }
        Out::Status(..) | Out::Hangup => return false,
        Out::CloseFrame => Message::Close(None),
    };
    ws.send(message).await.is_ok()
}
