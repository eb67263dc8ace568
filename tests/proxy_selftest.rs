//! Self-tests of the test middleboxes in `support/proxy.rs`: every `FaultProxy` mode and every
//! `ConnectProxy` behaviour, observed with raw HTTP, tungstenite and reqwest against the mock
//! server (or a hand-written upstream where the mock cannot misbehave the way needed).
#![cfg(feature = "mock-server")]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use sio_client::mock::MockServer;
use support::background::Background;
use support::http::{self, HttpConn};
use support::proxy::{ConnectProxy, FaultProxy, ProxyMode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::{self, Message};

/// Upper bound for anything that should happen.
const WAIT: Duration = Duration::from_secs(5);
/// How long to watch for something that must not happen.
const QUIET: Duration = Duration::from_millis(400);

const HANDSHAKE: &str = "/socket.io/?EIO=4&transport=polling";
const WS_PATH: &str = "/socket.io/?EIO=4&transport=websocket";

// ---------------------------------------------------------------------------------------------
// Test-side HTTP: the shared reader (`support::http`), driven from here with its own deadlines
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Reply {
    status: u16,
    /// Lower-cased head.
    headers: String,
    parsed: http::Headers,
    body: Vec<u8>,
}

impl Reply {
    fn new(head: &http::ResponseHead) -> Reply {
        Reply {
            status: head.status,
            headers: head.text().to_ascii_lowercase(),
            parsed: head.headers.clone(),
            body: Vec::new(),
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The header's value, lower-cased.
    fn header(&self, name: &str) -> Option<String> {
        self.parsed.get(name).map(str::to_ascii_lowercase)
    }
}

/// Reads one response off `s`, honouring its framing; leaves the connection usable.
async fn read_reply<S: AsyncRead + Unpin>(s: &mut S) -> Reply {
    let mut conn = HttpConn::new(s);
    let head = timeout(WAIT, conn.read_response_head())
        .await
        .expect("response head in time")
        .expect("a well-formed response head")
        .unwrap_or_else(|| panic!("EOF before a complete head"));
    let mut reply = Reply::new(&head);
    let framing = if head.headers.is_chunked() {
        http::Body::chunked()
    } else if let Some(len) = head
        .headers
        .content_length()
        .expect("a valid Content-Length")
    {
        http::Body::Length(len)
    } else {
        http::Body::UntilClose
    };
    reply.body = timeout(WAIT, conn.read_body(framing, u64::MAX))
        .await
        .expect("body in time")
        .expect("a complete, well-framed body");
    reply
}

async fn send_request<S: AsyncWrite + Unpin>(
    s: &mut S,
    method: &str,
    target: &str,
    extra: &str,
    body: &str,
) {
    let req = format!(
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
}

async fn get(addr: SocketAddr, target: &str) -> Reply {
    let mut s = TcpStream::connect(addr).await.unwrap();
    send_request(&mut s, "GET", target, "Connection: close\r\n", "").await;
    read_reply(&mut s).await
}

fn ws_upgrade_request(target: &str) -> String {
    format!(
        "GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
}

/// Sends a raw WebSocket upgrade request and reads the answer's head (and body if any).
async fn raw_upgrade(addr: SocketAddr) -> (TcpStream, Reply) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(ws_upgrade_request(WS_PATH).as_bytes())
        .await
        .unwrap();
    let reply = read_reply_head_only(&mut s).await;
    (s, reply)
}

fn open_packet(body: &str) -> Value {
    serde_json::from_str(body.strip_prefix('0').expect("an open packet")).unwrap()
}

async fn mock() -> MockServer {
    MockServer::builder().start().await.unwrap()
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn ws_connect(url: &str) -> Result<Ws, tungstenite::Error> {
    let url = format!("{}{WS_PATH}", url.replace("http://", "ws://"));
    timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("WebSocket handshake in time")
        .map(|(ws, _)| ws)
}

async fn next_text<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> String
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        match timeout(WAIT, ws.next()).await.expect("a message in time") {
            Some(Ok(Message::Text(t))) => return t.as_str().to_owned(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

fn status_of(err: tungstenite::Error) -> u16 {
    match err {
        tungstenite::Error::Http(resp) => resp.status().as_u16(),
        other => panic!("expected an HTTP error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Hand-written upstream: responses the mock server never sends
// ---------------------------------------------------------------------------------------------

/// `/never`: chunked response with one chunk, then kept open forever.
/// `/complete`: chunked response `hello world` in two chunks, complete.
/// `/close`: no framing, `abc`, then close.
struct OddUpstream {
    addr: SocketAddr,
    _background: Background,
}

async fn odd_upstream() -> OddUpstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let background = Background::on_current_runtime();
    let tasks = background.tasks();
    background.spawn(async move {
        loop {
            let (s, _) = listener.accept().await.unwrap();
            tasks.spawn(async move {
                let mut conn = HttpConn::new(s);
                let Ok(Some(head)) = conn.read_request_head().await else {
                    return;
                };
                let s = &mut conn.stream;
                match head.target.as_str() {
                    "/never" => {
                        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
                            .await
                            .unwrap();
                        std::future::pending::<()>().await;
                    }
                    "/complete" => {
                        s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
                            .await
                            .unwrap();
                    }
                    _ => {
                        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nabc")
                            .await
                            .unwrap();
                    }
                }
            });
        }
    });
    OddUpstream {
        addr,
        _background: background,
    }
}

// ---------------------------------------------------------------------------------------------
// FaultProxy
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn pass_polling_handshake_and_keep_alive() {
    let server = mock().await;
    let proxy = FaultProxy::start(server.addr(), ProxyMode::Pass).await;
    assert_eq!(proxy.url(), format!("http://{}", proxy.addr()));

    // Three requests on one client connection: handshake, CONNECT packet, its answer.
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    send_request(&mut s, "GET", HANDSHAKE, "", "").await;
    let r = read_reply(&mut s).await;
    assert_eq!(r.status, 200);
    let open = open_packet(&r.text());
    let sid = open["sid"].as_str().unwrap().to_owned();
    assert_eq!(open["upgrades"], serde_json::json!(["websocket"]));

    let q = format!("{HANDSHAKE}&sid={sid}");
    send_request(
        &mut s,
        "POST",
        &q,
        "Content-Type: text/plain;charset=UTF-8\r\n",
        "40",
    )
    .await;
    let r = read_reply(&mut s).await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));

    send_request(&mut s, "GET", &q, "", "").await;
    let r = read_reply(&mut s).await;
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("40{"), "got {:?}", r.text());

    let stats = proxy.stats();
    assert_eq!(stats.connections, 1);
    assert_eq!(stats.requests, 3);
    assert_eq!(stats.upgrades_seen, 0);
    assert!(stats.bytes_to_upstream > 0 && stats.bytes_to_client > 0);
}

#[tokio::test]
async fn expect_continue_is_answered_and_background_start_works_in_async_code() {
    let server = mock().await;
    let proxy = FaultProxy::start_background(server.addr(), ProxyMode::Pass);
    let sid = open_packet(&get(proxy.addr(), HANDSHAKE).await.text())["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    let q = format!("{HANDSHAKE}&sid={sid}");
    s.write_all(
        format!(
            "POST {q} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let interim = read_reply_head_only(&mut s).await;
    assert_eq!(interim.status, 100);
    s.write_all(b"40").await.unwrap();
    let r = read_reply(&mut s).await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
}

#[tokio::test]
async fn pass_with_reqwest() {
    let server = mock().await;
    let proxy = FaultProxy::start(server.addr(), ProxyMode::Pass).await;
    let http = http::reqwest_builder().no_proxy().build().unwrap();
    let base = format!("{}{HANDSHAKE}", proxy.url());
    let body = http.get(&base).send().await.unwrap().text().await.unwrap();
    let sid = open_packet(&body)["sid"].as_str().unwrap().to_owned();
    let q = format!("{base}&sid={sid}");
    let ok = http.post(&q).body("40").send().await.unwrap();
    assert_eq!(ok.text().await.unwrap(), "ok");
    let reply = http.get(&q).send().await.unwrap().text().await.unwrap();
    assert!(reply.starts_with("40{"), "got {reply:?}");
    assert_eq!(proxy.stats().requests, 3);
}

#[tokio::test]
async fn pass_websocket_both_directions() {
    let server = mock().await;
    let proxy = FaultProxy::start(server.addr(), ProxyMode::Pass).await;
    let mut ws = ws_connect(&proxy.url()).await.unwrap();
    let open = next_text(&mut ws).await;
    assert!(open.starts_with("0{"), "got {open:?}");
    ws.send(Message::Text("40".into())).await.unwrap();
    let connected = next_text(&mut ws).await;
    assert!(connected.starts_with("40{"), "got {connected:?}");
    let stats = proxy.stats();
    assert_eq!(
        (
            stats.upgrades_seen,
            stats.upgrades_forwarded,
            stats.upgrades_completed
        ),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn reject_upgrade_answers_403_and_polling_still_passes() {
    let server = mock().await;
    let proxy = FaultProxy::start(server.addr(), ProxyMode::RejectUpgrade(403)).await;

    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    s.write_all(ws_upgrade_request(WS_PATH).as_bytes())
        .await
        .unwrap();
    let r = read_reply(&mut s).await;
    assert_eq!((r.status, r.text().as_str()), (403, "Forbidden"));
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    let mut rest = Vec::new();
    timeout(WAIT, s.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(rest.is_empty(), "connection closes after the 403");

    assert_eq!(status_of(ws_connect(&proxy.url()).await.unwrap_err()), 403);
    let r = get(proxy.addr(), HANDSHAKE).await;
    assert_eq!(r.status, 200);
    open_packet(&r.text());

    let stats = proxy.stats();
    assert_eq!((stats.upgrades_seen, stats.upgrades_forwarded), (2, 0));
}

#[tokio::test]
async fn strip_upgrade_gets_a_non_101() {
    let server = mock().await;
    let proxy = FaultProxy::start(server.addr(), ProxyMode::StripUpgrade).await;
    let (_s, r) = raw_upgrade(proxy.addr()).await;
    assert_ne!(r.status, 101);
    assert!(r.header("upgrade").is_none());
    let status = status_of(ws_connect(&proxy.url()).await.unwrap_err());
    assert_ne!(status, 101);
    let stats = proxy.stats();
    assert_eq!((stats.upgrades_seen, stats.upgrades_forwarded), (2, 0));
    assert_eq!(stats.upgrades_completed, 0);
}

#[tokio::test]
async fn reset_upgrade_resets_the_connection() {
    let server = mock().await;
    let proxy = FaultProxy::start(server.addr(), ProxyMode::ResetUpgrade).await;
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    s.write_all(ws_upgrade_request(WS_PATH).as_bytes())
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let res = timeout(WAIT, s.read(&mut buf))
        .await
        .expect("reset in time");
    match res {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
        Ok(n) => panic!("expected a reset, read {n} bytes"),
    }
    assert!(ws_connect(&proxy.url()).await.is_err());
    // The upstream never saw a WebSocket.
    assert_eq!(proxy.stats().upgrades_forwarded, 0);
    assert_eq!(server.connection_count(), 0);
}

#[tokio::test]
async fn black_hole_upgrade_gives_101_then_silence() {
    let server = mock().await;
    let proxy = FaultProxy::start(server.addr(), ProxyMode::BlackHoleUpgrade).await;
    let mut ws = ws_connect(&proxy.url()).await.expect("the 101 is relayed");
    assert!(
        timeout(QUIET, ws.next()).await.is_err(),
        "the open packet must not arrive"
    );
    // Writes are swallowed too, and the connection stays open.
    ws.send(Message::Text("40".into())).await.unwrap();
    assert!(timeout(QUIET, ws.next()).await.is_err());
    let stats = proxy.stats();
    assert_eq!(stats.upgrades_completed, 1);

    // Polling still passes in this mode.
    let r = get(proxy.addr(), HANDSHAKE).await;
    open_packet(&r.text());
}

#[tokio::test]
async fn buffer_responses_holds_an_endless_response() {
    let upstream = odd_upstream().await;

    // Pass delivers the first chunk of a response that never ends.
    let pass = FaultProxy::start(upstream.addr, ProxyMode::Pass).await;
    let mut s = TcpStream::connect(pass.addr()).await.unwrap();
    send_request(&mut s, "GET", "/never", "", "").await;
    let mut got = Vec::new();
    while !got.windows(9).any(|w| w == b"5\r\nhello\r") {
        let mut tmp = [0u8; 1024];
        let n = timeout(WAIT, s.read(&mut tmp))
            .await
            .expect("first chunk in time")
            .unwrap();
        assert!(n > 0);
        got.extend_from_slice(&tmp[..n]);
    }

    // Buffering delivers nothing at all.
    let buffered = FaultProxy::start(upstream.addr, ProxyMode::BufferResponses).await;
    let mut s = TcpStream::connect(buffered.addr()).await.unwrap();
    send_request(&mut s, "GET", "/never", "", "").await;
    let mut tmp = [0u8; 1024];
    assert!(
        timeout(QUIET, s.read(&mut tmp)).await.is_err(),
        "a buffering proxy sends nothing of an incomplete response"
    );

    // A complete chunked response arrives whole, re-framed with Content-Length.
    let mut s = TcpStream::connect(buffered.addr()).await.unwrap();
    send_request(&mut s, "GET", "/complete", "", "").await;
    let r = read_reply(&mut s).await;
    assert_eq!(r.text(), "hello world");
    assert_eq!(r.header("content-length").as_deref(), Some("11"));
    assert!(r.header("transfer-encoding").is_none());
}

#[tokio::test]
async fn buffer_responses_passes_socketio_traffic() {
    let server = mock().await;
    let proxy = FaultProxy::start(server.addr(), ProxyMode::BufferResponses).await;
    let r = get(proxy.addr(), HANDSHAKE).await;
    open_packet(&r.text());
    let mut ws = ws_connect(&proxy.url()).await.unwrap();
    assert!(next_text(&mut ws).await.starts_with("0{"));
}

#[tokio::test]
async fn responses_without_framing_are_rechunked_for_keep_alive() {
    let upstream = odd_upstream().await;
    let proxy = FaultProxy::start(upstream.addr, ProxyMode::Pass).await;
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    for _ in 0..2 {
        send_request(&mut s, "GET", "/close", "", "").await;
        let r = read_reply(&mut s).await;
        assert_eq!(r.header("transfer-encoding").as_deref(), Some("chunked"));
        assert_eq!(r.text(), "abc");
        send_request(&mut s, "GET", "/complete", "", "").await;
        let r = read_reply(&mut s).await;
        assert_eq!(r.text(), "hello world");
    }
    assert_eq!(proxy.stats().connections, 1);
}

#[tokio::test]
async fn latency_delays_both_directions() {
    let server = mock().await;
    let delay = Duration::from_millis(150);
    let proxy = FaultProxy::start(server.addr(), ProxyMode::Latency(delay)).await;

    let start = Instant::now();
    let r = get(proxy.addr(), HANDSHAKE).await;
    open_packet(&r.text());
    assert!(start.elapsed() >= delay * 2, "took {:?}", start.elapsed());

    let start = Instant::now();
    let mut ws = ws_connect(&proxy.url()).await.unwrap();
    assert!(next_text(&mut ws).await.starts_with("0{"));
    assert!(start.elapsed() >= delay * 2, "took {:?}", start.elapsed());
    // A round trip over the pipe: one delay each way.
    let start = Instant::now();
    ws.send(Message::Text("40".into())).await.unwrap();
    assert!(next_text(&mut ws).await.starts_with("40{"));
    assert!(start.elapsed() >= delay * 2, "took {:?}", start.elapsed());
}

#[tokio::test]
async fn cut_after_closes_after_n_bytes() {
    let server = mock().await;
    let proxy = FaultProxy::start(server.addr(), ProxyMode::CutAfter(50)).await;
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    send_request(&mut s, "GET", HANDSHAKE, "", "").await;
    let mut raw = Vec::new();
    timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(raw.len(), 50);
    assert!(raw.starts_with(b"HTTP/1.1 200 "));
    assert_eq!(proxy.stats().bytes_to_client, 50);

    // Over a WebSocket the budget covers the 101 head and then frames: measure the head, then
    // allow three bytes of the first frame.
    proxy.set_mode(ProxyMode::Pass);
    let (_s, r) = raw_upgrade(proxy.addr()).await;
    let head_len = r.headers.len();
    proxy.set_mode(ProxyMode::CutAfter(head_len + 3));
    let (mut s, r) = raw_upgrade(proxy.addr()).await;
    assert_eq!(r.status, 101);
    let mut rest = Vec::new();
    timeout(WAIT, s.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        rest.len(),
        3,
        "three bytes of the open packet's frame, then EOF"
    );
    assert_eq!(rest[0], 0x81, "a final text frame");
}

#[tokio::test]
async fn mode_changes_apply_to_new_requests() {
    let server = mock().await;
    let proxy = FaultProxy::start(server.addr(), ProxyMode::Pass).await;
    let mut first = ws_connect(&proxy.url()).await.unwrap();
    assert!(next_text(&mut first).await.starts_with("0{"));

    proxy.set_mode(ProxyMode::RejectUpgrade(403));
    assert_eq!(proxy.mode(), ProxyMode::RejectUpgrade(403));
    assert_eq!(status_of(ws_connect(&proxy.url()).await.unwrap_err()), 403);
    // The pipe opened before the change is unaffected.
    first.send(Message::Text("40".into())).await.unwrap();
    assert!(next_text(&mut first).await.starts_with("40{"));

    proxy.set_mode(ProxyMode::Pass);
    let mut again = ws_connect(&proxy.url()).await.unwrap();
    assert!(next_text(&mut again).await.starts_with("0{"));
}

#[tokio::test]
async fn upstream_down_gives_502() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = listener.local_addr().unwrap();
    drop(listener);
    let proxy = FaultProxy::start(dead, ProxyMode::Pass).await;
    assert_eq!(get(proxy.addr(), HANDSHAKE).await.status, 502);
}

#[tokio::test]
async fn drop_closes_listener_and_connections() {
    let server = mock().await;
    let proxy = FaultProxy::start(server.addr(), ProxyMode::BlackHoleUpgrade).await;
    let addr = proxy.addr();
    let mut ws = ws_connect(&proxy.url()).await.unwrap();
    drop(proxy);
    // The held pipe ends (close or error, not silence), and nothing listens any more.
    match timeout(WAIT, ws.next())
        .await
        .expect("the pipe ends on drop")
    {
        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => {}
        Some(Ok(other)) => panic!("unexpected message {other:?}"),
    }
    assert!(TcpStream::connect(addr).await.is_err());
}

#[test]
fn start_background_serves_blocking_callers() {
    use std::io::{Read, Write};
    let server = MockServer::builder().start_background().unwrap();
    let proxy = FaultProxy::start_background(server.addr(), ProxyMode::Pass);
    let mut s = std::net::TcpStream::connect(proxy.addr()).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "GET {HANDSHAKE} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let head = http::parse_response_head(&raw)
        .unwrap()
        .expect("a complete head");
    assert!(head.text().starts_with("HTTP/1.1 200"));
    open_packet(std::str::from_utf8(&raw[head.raw.len()..]).unwrap());

    let connect = ConnectProxy::start_background(None);
    let mut s = std::net::TcpStream::connect(connect.addr()).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "GET http://{}{HANDSHAKE} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        server.addr(),
        server.addr()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let head = http::parse_response_head(&raw)
        .unwrap()
        .expect("a complete head");
    open_packet(std::str::from_utf8(&raw[head.raw.len()..]).unwrap());
}

// ---------------------------------------------------------------------------------------------
// ConnectProxy
// ---------------------------------------------------------------------------------------------

fn creds() -> Option<(String, String)> {
    Some(("alice".to_owned(), "s3cret:x".to_owned()))
}

fn basic(user: &str, pass: &str) -> String {
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    format!("Proxy-Authorization: Basic {token}\r\n")
}

/// Sends `CONNECT target` and reads the proxy's answer head.
async fn connect(proxy: SocketAddr, target: SocketAddr, extra: &str) -> (TcpStream, Reply) {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    let req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{extra}\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let r = read_reply_head_only(&mut s).await;
    (s, r)
}

/// Reads a head byte by byte so a tunnel's first bytes stay in the stream; reads a body only
/// when Content-Length announces one.
async fn read_reply_head_only<S: AsyncRead + Unpin>(s: &mut S) -> Reply {
    let mut buf = Vec::new();
    let head = loop {
        if let Some(head) = http::parse_response_head(&buf).expect("a well-formed response head") {
            break head;
        }
        let mut b = [0u8; 1];
        let n = timeout(WAIT, s.read(&mut b))
            .await
            .expect("head in time")
            .unwrap();
        assert!(
            n > 0,
            "EOF before head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(b[0]);
    };
    let mut reply = Reply::new(&head);
    if let Some(len) = reply.header("content-length") {
        let mut body = vec![0u8; len.parse().unwrap()];
        timeout(WAIT, s.read_exact(&mut body))
            .await
            .unwrap()
            .unwrap();
        reply.body = body;
    }
    reply
}

#[tokio::test]
async fn connect_tunnel_carries_polling_and_websocket() {
    let server = mock().await;
    let proxy = ConnectProxy::start(None).await;
    assert_eq!(proxy.url_with_credentials(), proxy.url());

    let (mut s, r) = connect(proxy.addr(), server.addr(), "").await;
    assert_eq!(r.status, 200);
    assert!(r.headers.starts_with("http/1.1 200 connection established"));
    send_request(&mut s, "GET", HANDSHAKE, "", "").await;
    open_packet(&read_reply(&mut s).await.text());

    let (s, r) = connect(proxy.addr(), server.addr(), "").await;
    assert_eq!(r.status, 200);
    let url = format!("ws://{}{WS_PATH}", server.addr());
    let (mut ws, _) = tokio_tungstenite::client_async(url, s).await.unwrap();
    assert!(next_text(&mut ws).await.starts_with("0{"));

    let stats = proxy.stats();
    assert_eq!((stats.connects, stats.tunnels, stats.forwarded), (2, 2, 0));
}

#[tokio::test]
async fn credentials_are_required_and_accepted() {
    let server = mock().await;
    let proxy = ConnectProxy::start(creds()).await;
    assert_eq!(
        proxy.url_with_credentials(),
        format!("http://alice:s3cret%3Ax@{}", proxy.addr())
    );

    let (_, r) = connect(proxy.addr(), server.addr(), "").await;
    assert_eq!(r.status, 407);
    assert_eq!(
        r.header("proxy-authenticate").as_deref(),
        Some("basic realm=\"test\"")
    );
    let (_, r) = connect(proxy.addr(), server.addr(), &basic("alice", "wrong")).await;
    assert_eq!(r.status, 407);

    let (mut s, r) = connect(proxy.addr(), server.addr(), &basic("alice", "s3cret:x")).await;
    assert_eq!(r.status, 200);
    send_request(&mut s, "GET", HANDSHAKE, "", "").await;
    open_packet(&read_reply(&mut s).await.text());

    let stats = proxy.stats();
    assert_eq!(
        (stats.connects, stats.tunnels, stats.auth_rejected),
        (3, 1, 2)
    );
}

#[tokio::test]
async fn reqwest_forwarding_with_and_without_credentials() {
    let server = mock().await;
    let proxy = ConnectProxy::start(creds()).await;
    let target = format!("http://{}{HANDSHAKE}", server.addr());

    let anonymous = http::reqwest_builder()
        .proxy(reqwest::Proxy::http(proxy.url()).unwrap())
        .build()
        .unwrap();
    let r = anonymous.get(&target).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 407);

    let authed = http::reqwest_builder()
        .proxy(reqwest::Proxy::http(proxy.url_with_credentials()).unwrap())
        .build()
        .unwrap();
    let body = authed
        .get(&target)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let sid = open_packet(&body)["sid"].as_str().unwrap().to_owned();
    let q = format!("{target}&sid={sid}");
    let ok = authed.post(&q).body("40").send().await.unwrap();
    assert_eq!(ok.text().await.unwrap(), "ok");

    let stats = proxy.stats();
    assert_eq!(
        (stats.forwarded, stats.auth_rejected, stats.connects),
        (2, 1, 0)
    );
}

#[tokio::test]
async fn plain_absolute_uri_get_is_forwarded_with_keep_alive() {
    let server = mock().await;
    let proxy = ConnectProxy::start(None).await;
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    let target = format!("http://{}{HANDSHAKE}", server.addr());
    send_request(
        &mut s,
        "GET",
        &target,
        "Proxy-Connection: keep-alive\r\n",
        "",
    )
    .await;
    let r = read_reply(&mut s).await;
    let sid = open_packet(&r.text())["sid"].as_str().unwrap().to_owned();
    send_request(&mut s, "POST", &format!("{target}&sid={sid}"), "", "40").await;
    assert_eq!(read_reply(&mut s).await.text(), "ok");
    assert_eq!(proxy.stats().forwarded, 2);
    assert_eq!(proxy.stats().connections, 1);

    // Origin-form requests are not for a forward proxy.
    send_request(&mut s, "GET", HANDSHAKE, "", "").await;
    assert_eq!(read_reply(&mut s).await.status, 400);
}

#[tokio::test]
async fn refuse_connect_still_forwards_plain_http() {
    let server = mock().await;
    let proxy = ConnectProxy::start(None).await;
    proxy.refuse_connect(true);
    let (_, r) = connect(proxy.addr(), server.addr(), "").await;
    assert_eq!(r.status, 403);

    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    send_request(
        &mut s,
        "GET",
        &format!("http://{}{HANDSHAKE}", server.addr()),
        "",
        "",
    )
    .await;
    open_packet(&read_reply(&mut s).await.text());

    proxy.refuse_connect(false);
    let (_, r) = connect(proxy.addr(), server.addr(), "").await;
    assert_eq!(r.status, 200);
    let stats = proxy.stats();
    assert_eq!(
        (stats.connects, stats.connect_refused, stats.tunnels),
        (2, 1, 1)
    );
}

// ---------------------------------------------------------------------------------------------
// A real socket.io 4 server (Node) behind the FaultProxy
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_server_behind_fault_proxy() {
    use support::{NodeServer, SioVersion};
    let node = tokio::task::spawn_blocking(|| NodeServer::start_default(SioVersion::V4))
        .await
        .unwrap();
    let upstream: SocketAddr = ([127, 0, 0, 1], node.port()).into();
    let proxy = FaultProxy::start(upstream, ProxyMode::Pass).await;

    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    send_request(&mut s, "GET", HANDSHAKE, "", "").await;
    let open = open_packet(&read_reply(&mut s).await.text());
    let sid = open["sid"].as_str().unwrap().to_owned();
    let q = format!("{HANDSHAKE}&sid={sid}");
    send_request(
        &mut s,
        "POST",
        &q,
        "Content-Type: text/plain;charset=UTF-8\r\n",
        "40",
    )
    .await;
    assert_eq!(read_reply(&mut s).await.text(), "ok");

    let mut ws = ws_connect(&proxy.url()).await.unwrap();
    assert!(next_text(&mut ws).await.starts_with("0{"));
    ws.send(Message::Text("40".into())).await.unwrap();
    assert!(next_text(&mut ws).await.starts_with("40{"));

    proxy.set_mode(ProxyMode::StripUpgrade);
    let status = status_of(ws_connect(&proxy.url()).await.unwrap_err());
    assert_ne!(status, 101);

    proxy.set_mode(ProxyMode::BlackHoleUpgrade);
    let mut ws = ws_connect(&proxy.url()).await.unwrap();
    assert!(timeout(QUIET, ws.next()).await.is_err());
}
