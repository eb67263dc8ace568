//! Network middleboxes that break socket.io transports the way real ones do.
//!
//! - [`FaultProxy`] is a reverse proxy: the client connects to [`FaultProxy::url`] as if it were
//!   the server, and the proxy forwards to an upstream (the mock server or a Node server). Its
//!   [`ProxyMode`] decides what goes wrong: rejected, stripped, reset or black-holed WebSocket
//!   upgrades, buffered responses, latency, connections cut after a number of bytes, kept-alive
//!   connections closed after one response or when reused.
//! - [`ConnectProxy`] is a forward proxy (HTTP `CONNECT` tunnels and absolute-URI forwarding of
//!   plain `http://` requests, the two ways clients use an HTTP proxy), with optional Basic auth.
//!
//! Both listen on 127.0.0.1 with an ephemeral port. Every task they start ends when the handle
//! is dropped (their tasks live in a [`Background`]), so a test never leaves connections or
//! listeners behind, and an upstream sees its connections close.
//!
//! HTTP handling is deliberately simple but framing-correct, since a proxy that mangles framing
//! would produce failures nobody could tell from real ones: each client request is forwarded on
//! a fresh upstream connection with `Connection: close`, and the response is re-framed for the
//! client (`Content-Length` or chunked) so that keep-alive works on the client side.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use super::background::{Background, Tasks};
use super::http::{self, bad, Body, Headers, HttpConn, RequestHead, CHUNK};

/// Largest body the proxy holds in memory (request bodies, buffered responses).
const BODY_LIMIT: u64 = 64 * 1024 * 1024;

// ------------------------------------------------------------------------------------------
// Public API: FaultProxy
// ------------------------------------------------------------------------------------------

/// What a [`FaultProxy`] does to the traffic it forwards. The mode is read at the start of each
/// request, so [`FaultProxy::set_mode`] affects new requests (and new WebSocket pipes) only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProxyMode {
    /// Forward everything faithfully.
    #[default]
    Pass,
    /// Answer WebSocket upgrade requests with this status (body = the reason phrase, e.g.
    /// `Forbidden` for 403) and `Connection: close`, like a proxy that forbids WebSocket.
    /// Other requests pass.
    RejectUpgrade(u16),
    /// Remove `Upgrade` and `Connection` from WebSocket upgrade requests and forward them as
    /// plain HTTP, as a proxy that does not know WebSocket does; the upstream's non-101 answer
    /// is relayed.
    StripUpgrade,
    /// Reset the client connection (RST, via `SO_LINGER` 0) on a WebSocket upgrade request,
    /// without contacting the upstream.
    ResetUpgrade,
    /// Forward WebSocket upgrades and relay the 101, then forward nothing in either direction
    /// while keeping both connections open (until the client closes or the proxy is dropped).
    BlackHoleUpgrade,
    /// Read each upstream response completely before sending any of it, re-framed with
    /// `Content-Length`: a streaming or long-lived chunked response is never delivered. Many
    /// buffering proxies also break WebSocket, but this mode lets upgrades pass so that it
    /// tests buffering alone; use another mode to break WebSocket.
    BufferResponses,
    /// Delay everything forwarded, in both directions, by this much from the moment the proxy
    /// received it: requests, response heads, body chunks and raw WebSocket bytes. A request
    /// and its response therefore take at least twice the delay.
    Latency(Duration),
    /// Close each client connection (FIN) once this many bytes in total have been sent to it
    /// from upstream, counting response heads, bodies and WebSocket bytes alike.
    CutAfter(usize),
    /// Relay one request per client connection, its response still saying
    /// `Connection: keep-alive`, then close the connection at once, as some stock forward
    /// proxies do. A client that reuses the connection before the FIN reached it sends into a
    /// closed socket: whether that happens is a race, as with the real proxies. WebSocket
    /// upgrades pass.
    CloseAfterResponse,
    /// Relay the first request of each client connection (the response saying
    /// `Connection: keep-alive`) and keep the connection open; when a next request arrives on
    /// it, read it and close the connection without forwarding or answering it. The
    /// deterministic form of [`ProxyMode::CloseAfterResponse`]: every reuse of a kept-alive
    /// connection meets a connection closed before any byte of the response. WebSocket
    /// upgrades pass.
    CloseOnReuse,
    /// Read every request and close the connection without forwarding or answering it, new
    /// connection or not. WebSocket upgrades pass.
    CloseUnanswered,
}

/// Counters of a [`FaultProxy`], a snapshot taken by [`FaultProxy::stats`]. Each counter is
/// updated before the corresponding bytes are written, so a test that has received a response
/// already sees it counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProxyStats {
    /// Client TCP connections accepted.
    pub connections: u64,
    /// HTTP requests parsed from clients (WebSocket upgrade requests included).
    pub requests: u64,
    /// WebSocket upgrade requests seen.
    pub upgrades_seen: u64,
    /// WebSocket upgrade requests forwarded upstream as upgrades.
    pub upgrades_forwarded: u64,
    /// `101 Switching Protocols` answers relayed to clients.
    pub upgrades_completed: u64,
    /// Bytes written to upstream connections.
    pub bytes_to_upstream: u64,
    /// Bytes written to client connections.
    pub bytes_to_client: u64,
    /// Requests (counted in `requests` too) the proxy closed the connection on without
    /// forwarding or answering them ([`ProxyMode::CloseOnReuse`],
    /// [`ProxyMode::CloseUnanswered`]).
    pub requests_dropped: u64,
}

/// A reverse proxy in front of an upstream server that misbehaves on demand. See the
/// [module docs](self). Dropping it stops every task and closes every connection it holds.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<FaultShared>,
    background: Background,
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .field("mode", &self.mode())
            .finish()
    }
}

struct FaultShared {
    upstream: SocketAddr,
    mode: Mutex<ProxyMode>,
    counters: Counters,
    tasks: Arc<Tasks>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` on the current tokio runtime.
    pub async fn start(upstream: SocketAddr, mode: ProxyMode) -> FaultProxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("listener address");
        let background = Background::on_current_runtime();
        let shared = Arc::new(FaultShared {
            upstream,
            mode: Mutex::new(mode),
            counters: Counters::default(),
            tasks: background.tasks(),
        });
        background.spawn(accept_loop(listener, shared.clone(), serve_fault_client));
        FaultProxy {
            addr,
            shared,
            background,
        }
    }

    /// Starts a proxy on a small runtime of its own, for tests without async code.
    pub fn start_background(upstream: SocketAddr, mode: ProxyMode) -> FaultProxy {
        Background::start_on_own_runtime(
            "fault-proxy",
            FaultProxy::start(upstream, mode),
            |proxy: &mut FaultProxy| &mut proxy.background,
        )
    }

    /// `http://127.0.0.1:PORT`: give this to the client as the server URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the proxy listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The upstream server the proxy forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// The current mode.
    pub fn mode(&self) -> ProxyMode {
        *lock(&self.shared.mode)
    }

    /// Changes the mode for requests that start from now on.
    pub fn set_mode(&self, mode: ProxyMode) {
        *lock(&self.shared.mode) = mode;
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ProxyStats {
        let c = &self.shared.counters;
        ProxyStats {
            connections: get(&c.connections),
            requests: get(&c.requests),
            upgrades_seen: get(&c.upgrades_seen),
            upgrades_forwarded: get(&c.upgrades_forwarded),
            upgrades_completed: get(&c.upgrades_completed),
            bytes_to_upstream: get(&c.to_upstream),
            bytes_to_client: get(&c.to_client),
            requests_dropped: get(&c.requests_dropped),
        }
    }
}

// ------------------------------------------------------------------------------------------
// Public API: ConnectProxy
// ------------------------------------------------------------------------------------------

/// Counters of a [`ConnectProxy`], a snapshot taken by [`ConnectProxy::stats`]; updated before
/// the corresponding answer is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnectStats {
    /// Client TCP connections accepted.
    pub connections: u64,
    /// `CONNECT` requests seen (refused and unauthenticated ones included).
    pub connects: u64,
    /// `CONNECT` tunnels established (`200 Connection established` sent).
    pub tunnels: u64,
    /// Absolute-URI requests (`GET http://host:port/path`) seen with valid credentials and
    /// forwarded.
    pub forwarded: u64,
    /// `407 Proxy Authentication Required` answers sent.
    pub auth_rejected: u64,
    /// `403` answers sent to `CONNECT` because of [`ConnectProxy::refuse_connect`].
    pub connect_refused: u64,
    /// Bytes written to upstream connections (tunnels and forwarded requests).
    pub bytes_to_upstream: u64,
    /// Bytes written to client connections.
    pub bytes_to_client: u64,
}

/// A forward HTTP proxy: `CONNECT host:port` tunnels and absolute-URI forwarding of plain
/// HTTP, with optional Basic authentication. Dropping it stops every task and closes every
/// connection it holds.
pub struct ConnectProxy {
    addr: SocketAddr,
    shared: Arc<ConnectShared>,
    background: Background,
}

impl fmt::Debug for ConnectProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectProxy")
            .field("addr", &self.addr)
            .field("auth", &self.shared.credentials.is_some())
            .finish_non_exhaustive()
    }
}

struct ConnectShared {
    credentials: Option<(String, String)>,
    refuse_connect: AtomicBool,
    counters: Counters,
    tasks: Arc<Tasks>,
}

impl ConnectProxy {
    /// Starts a forward proxy on the current tokio runtime. With `credentials`
    /// (`(user, password)`), every request must carry a matching
    /// `Proxy-Authorization: Basic …` header or gets a 407.
    pub async fn start(credentials: Option<(String, String)>) -> ConnectProxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("listener address");
        let background = Background::on_current_runtime();
        let shared = Arc::new(ConnectShared {
            credentials,
            refuse_connect: AtomicBool::new(false),
            counters: Counters::default(),
            tasks: background.tasks(),
        });
        background.spawn(accept_loop(listener, shared.clone(), serve_connect_client));
        ConnectProxy {
            addr,
            shared,
            background,
        }
    }

    /// Starts a forward proxy on a small runtime of its own, for tests without async code.
    pub fn start_background(credentials: Option<(String, String)>) -> ConnectProxy {
        Background::start_on_own_runtime(
            "connect-proxy",
            ConnectProxy::start(credentials),
            |proxy: &mut ConnectProxy| &mut proxy.background,
        )
    }

    /// `http://127.0.0.1:PORT`, without credentials.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://user:pass@127.0.0.1:PORT` (percent-encoded where needed), the form proxy
    /// settings and `reqwest::Proxy` accept; the plain [`url`](Self::url) without credentials.
    pub fn url_with_credentials(&self) -> String {
        let Some((user, pass)) = &self.shared.credentials else {
            return self.url();
        };
        let mut url = url::Url::parse(&self.url()).expect("proxy URL parses");
        url.set_username(user).expect("http URL takes a username");
        url.set_password(Some(pass))
            .expect("http URL takes a password");
        url.as_str().trim_end_matches('/').to_owned()
    }

    /// The address the proxy listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// When on, `CONNECT` is answered 403 (plain absolute-URI HTTP is still forwarded), like a
    /// corporate proxy that allows browsing but no tunnels.
    pub fn refuse_connect(&self, on: bool) {
        self.shared.refuse_connect.store(on, Ordering::SeqCst);
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ConnectStats {
        let c = &self.shared.counters;
        ConnectStats {
            connections: get(&c.connections),
            connects: get(&c.connects),
            tunnels: get(&c.tunnels),
            forwarded: get(&c.forwarded),
            auth_rejected: get(&c.auth_rejected),
            connect_refused: get(&c.connect_refused),
            bytes_to_upstream: get(&c.to_upstream),
            bytes_to_client: get(&c.to_client),
        }
    }
}

// ------------------------------------------------------------------------------------------
// Counters
// ------------------------------------------------------------------------------------------

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    requests: AtomicU64,
    upgrades_seen: AtomicU64,
    upgrades_forwarded: AtomicU64,
    upgrades_completed: AtomicU64,
    to_upstream: AtomicU64,
    to_client: AtomicU64,
    connects: AtomicU64,
    tunnels: AtomicU64,
    forwarded: AtomicU64,
    auth_rejected: AtomicU64,
    connect_refused: AtomicU64,
    requests_dropped: AtomicU64,
}

fn bump(counter: &AtomicU64, n: usize) {
    counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::SeqCst);
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::SeqCst)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

trait HasCounters: Send + Sync + 'static {
    fn counters(&self) -> &Counters;
    fn tasks(&self) -> &Tasks;
}

impl HasCounters for FaultShared {
    fn counters(&self) -> &Counters {
        &self.counters
    }
    fn tasks(&self) -> &Tasks {
        &self.tasks
    }
}

impl HasCounters for ConnectShared {
    fn counters(&self) -> &Counters {
        &self.counters
    }
    fn tasks(&self) -> &Tasks {
        &self.tasks
    }
}

async fn accept_loop<S, F, Fut>(listener: TcpListener, shared: Arc<S>, serve: F)
where
    S: HasCounters,
    F: Fn(TcpStream, Arc<S>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = io::Result<()>> + Send + 'static,
{
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of descriptors or similar: back off briefly instead of spinning.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        bump(&shared.counters().connections, 1);
        let fut = serve(stream, shared.clone());
        shared.tasks().spawn(async move {
            let _ = fut.await;
        });
    }
}

// ------------------------------------------------------------------------------------------
// Requests
// ------------------------------------------------------------------------------------------

type Conn = HttpConn<TcpStream>;

struct Request {
    head: RequestHead,
    body: Vec<u8>,
    /// The request declared a body (even an empty one), so upstream gets `Content-Length`.
    framed: bool,
    received: Instant,
}

impl Request {
    fn is_websocket(&self) -> bool {
        self.head.is_websocket()
    }

    fn wants_keep_alive(&self) -> bool {
        self.head.wants_keep_alive()
    }
}

async fn read_request(conn: &mut Conn) -> io::Result<Option<Request>> {
    let Some(mut head) = conn.read_request_head().await? else {
        return Ok(None);
    };
    let received = Instant::now();
    if head.headers.has_token("expect", "100-continue") {
        // Answered here, since the whole body is read before anything goes upstream; a
        // client like curl would otherwise wait a second before sending the body.
        head.headers.remove("expect");
        conn.stream
            .write_all(&http::head("HTTP/1.1 100 Continue", &[]))
            .await?;
    }
    let framed = head.headers.is_chunked() || head.headers.content_length()?.is_some();
    let body = conn.read_body(head.body()?, BODY_LIMIT).await?;
    Ok(Some(Request {
        head,
        body,
        framed,
        received,
    }))
}

/// A small complete answer from the proxy itself, after which the connection closes.
fn simple_response(status: u16, extra_headers: &[(&str, &str)]) -> Vec<u8> {
    let reason = http::reason(status);
    let mut headers = vec![("Content-Type", "text/plain")];
    headers.extend_from_slice(extra_headers);
    headers.push(("Connection", "close"));
    http::response(status, reason, &headers, reason.as_bytes())
}

// ------------------------------------------------------------------------------------------
// Forwarding one request
// ------------------------------------------------------------------------------------------

/// The client side of a connection, with the bytes sent to it so far (for `CutAfter`).
struct Client {
    conn: Conn,
    sent: usize,
}

enum Next {
    KeepAlive,
    Close,
}

fn cut_error() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "cut by proxy")
}

/// Writes to the client, applying latency (relative to when the data was received) and the
/// byte budget of `CutAfter`.
async fn send_client(
    client: &mut Client,
    data: &[u8],
    mode: ProxyMode,
    received: Instant,
    counters: &Counters,
) -> io::Result<()> {
    if let ProxyMode::Latency(d) = mode {
        sleep_until(received + d).await;
    }
    let (data, cut) = match mode {
        ProxyMode::CutAfter(limit) => {
            let room = limit.saturating_sub(client.sent);
            if data.len() >= room {
                (data.get(..room).unwrap_or(data), true)
            } else {
                (data, false)
            }
        }
        _ => (data, false),
    };
    bump(&counters.to_client, data.len());
    client.sent = client.sent.saturating_add(data.len());
    client.conn.stream.write_all(data).await?;
    if cut {
        let _ = client.conn.stream.shutdown().await;
        return Err(cut_error());
    }
    Ok(())
}

async fn send_upstream(
    upstream: &mut TcpStream,
    data: &[u8],
    counters: &Counters,
) -> io::Result<()> {
    bump(&counters.to_upstream, data.len());
    upstream.write_all(data).await
}

/// Forwards one request to `upstream` (`host:port`) on a fresh connection and relays the
/// answer; after a successful upgrade, pipes raw bytes until either side is done.
async fn forward(
    client: &mut Client,
    mut req: Request,
    upstream: &str,
    mode: ProxyMode,
    counters: &Counters,
) -> io::Result<Next> {
    bump(&counters.requests, 1);
    let mut websocket = req.is_websocket();
    if websocket {
        bump(&counters.upgrades_seen, 1);
        match mode {
            ProxyMode::RejectUpgrade(status) => {
                let answer = simple_response(status, &[]);
                send_client(client, &answer, mode, req.received, counters).await?;
                return Ok(Next::Close);
            }
            ProxyMode::ResetUpgrade => {
                // Zero linger turns the close into a RST, as a firewall killing the flow does.
                client.conn.stream.set_zero_linger()?;
                return Ok(Next::Close);
            }
            ProxyMode::StripUpgrade => {
                req.head.headers.remove("upgrade");
                req.head.headers.remove("connection");
                websocket = false;
            }
            _ => {}
        }
    }
    let keep_alive = req.wants_keep_alive() && !websocket;

    let mut headers = Headers(req.head.headers.end_to_end().cloned().collect());
    if websocket {
        let upgrade = req.head.headers.get("upgrade").unwrap_or("websocket");
        headers.push("Connection", "Upgrade");
        headers.push("Upgrade", upgrade);
    } else {
        headers.push("Connection", "close");
    }
    if req.framed || !req.body.is_empty() {
        headers.push("Content-Length", &req.body.len().to_string());
    }
    let start = format!("{} {} HTTP/1.1", req.head.method, req.head.target);
    let mut out = http::head(&start, &headers.pairs());
    out.extend_from_slice(&req.body);

    if let ProxyMode::Latency(d) = mode {
        sleep_until(req.received + d).await;
    }
    let Ok(stream) = TcpStream::connect(upstream).await else {
        let answer = simple_response(502, &[]);
        send_client(client, &answer, mode, Instant::now(), counters).await?;
        return Ok(Next::Close);
    };
    let _ = stream.set_nodelay(true);
    let mut up = Conn::new(stream);
    if websocket {
        bump(&counters.upgrades_forwarded, 1);
    }
    send_upstream(&mut up.stream, &out, counters).await?;

    let Some(head) = up.read_response_head().await? else {
        let answer = simple_response(502, &[]);
        send_client(client, &answer, mode, Instant::now(), counters).await?;
        return Ok(Next::Close);
    };
    let head_received = Instant::now();
    let status = head.status;

    if status == 101 {
        if websocket {
            bump(&counters.upgrades_completed, 1);
        }
        send_client(client, &head.raw, mode, head_received, counters).await?;
        if websocket && mode == ProxyMode::BlackHoleUpgrade {
            black_hole(&mut client.conn.stream, &mut up.stream).await;
        } else {
            let (delay, cut) = match mode {
                ProxyMode::Latency(d) => (Some(d), None),
                ProxyMode::CutAfter(n) => (None, Some(n.saturating_sub(client.sent))),
                _ => (None, None),
            };
            let client_left = client.conn.take_buffered();
            let up_left = up.take_buffered();
            let (cr, cw) = client.conn.stream.split();
            let (ur, uw) = up.stream.split();
            let _ = tokio::try_join!(
                pipe(cr, uw, client_left, delay, None, &counters.to_upstream),
                pipe(ur, cw, up_left, delay, cut, &counters.to_client),
            );
        }
        return Ok(Next::Close);
    }

    let reason_text = &head.reason;
    let mut state = head.body(&req.head.method)?;
    let no_body = state == Body::Done;

    let start = format!("HTTP/1.1 {status} {reason_text}");
    let mut headers = Headers(head.headers.end_to_end().cloned().collect());
    let connection = if keep_alive { "keep-alive" } else { "close" };

    if mode == ProxyMode::BufferResponses {
        let mut body = Vec::new();
        while let Some(chunk) = up.next_body_chunk(&mut state).await? {
            body.extend_from_slice(&chunk);
            if u64::try_from(body.len()).unwrap_or(u64::MAX) > BODY_LIMIT {
                return Err(bad("response too large to buffer"));
            }
        }
        if !no_body {
            headers.push("Content-Length", &body.len().to_string());
        }
        headers.push("Connection", connection);
        let mut out = http::head(&start, &headers.pairs());
        out.extend_from_slice(&body);
        send_client(client, &out, mode, Instant::now(), counters).await?;
        return Ok(if keep_alive {
            Next::KeepAlive
        } else {
            Next::Close
        });
    }

    // Streamed: re-frame as Content-Length when known, else chunked (HTTP/1.1 clients) or
    // close-delimited (HTTP/1.0 clients, which cannot keep the connection then).
    let chunked =
        matches!(state, Body::Chunked { .. } | Body::UntilClose) && req.head.minor_version != 0;
    let keep_alive = keep_alive && (chunked || matches!(state, Body::Length(_) | Body::Done));
    if let Body::Length(len) = state {
        headers.push("Content-Length", &len.to_string());
    } else if chunked {
        headers.push("Transfer-Encoding", "chunked");
    }
    headers.push(
        "Connection",
        if keep_alive { "keep-alive" } else { "close" },
    );
    let out = http::head(&start, &headers.pairs());
    send_client(client, &out, mode, head_received, counters).await?;
    while let Some(chunk) = up.next_body_chunk(&mut state).await? {
        let received = Instant::now();
        if chunked {
            send_client(client, &http::chunk(&chunk), mode, received, counters).await?;
        } else {
            send_client(client, &chunk, mode, received, counters).await?;
        }
    }
    if chunked {
        send_client(client, http::LAST_CHUNK, mode, Instant::now(), counters).await?;
    }
    Ok(if keep_alive {
        Next::KeepAlive
    } else {
        Next::Close
    })
}

/// One direction of a raw pipe. Reading and writing run concurrently through a queue so that
/// latency delays each piece from when it arrived, not from when the previous one was sent.
/// With a `cut` budget, stops (and closes) after that many bytes.
async fn pipe<R, W>(
    mut from: R,
    mut to: W,
    leftover: Vec<u8>,
    delay: Option<Duration>,
    mut cut: Option<usize>,
    counter: &AtomicU64,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(64);
    let closed = |_| io::Error::from(io::ErrorKind::BrokenPipe);
    let reader = async move {
        if !leftover.is_empty() {
            tx.send((Instant::now(), leftover)).await.map_err(closed)?;
        }
        loop {
            let mut buf = vec![0u8; CHUNK];
            let n = from.read(&mut buf).await?;
            if n == 0 {
                return Ok::<(), io::Error>(());
            }
            buf.truncate(n);
            tx.send((Instant::now(), buf)).await.map_err(closed)?;
        }
    };
    let writer = async {
        while let Some((received, data)) = rx.recv().await {
            if let Some(d) = delay {
                sleep_until(received + d).await;
            }
            let (data, stop) = match cut.as_mut() {
                Some(room) if data.len() >= *room => (data.get(..*room).unwrap_or(&data), true),
                Some(room) => {
                    *room = room.saturating_sub(data.len());
                    (&data[..], false)
                }
                None => (&data[..], false),
            };
            bump(counter, data.len());
            to.write_all(data).await?;
            if stop {
                let _ = to.shutdown().await;
                return Err(cut_error());
            }
        }
        // The other side finished sending: pass the half-close on.
        to.shutdown().await
    };
    tokio::try_join!(reader, writer).map(|_| ())
}

/// Holds both connections open and forwards nothing; read data is discarded so neither side
/// blocks on a full window. Ends when the client goes away; an upstream close is not passed on.
async fn black_hole(client: &mut TcpStream, upstream: &mut TcpStream) {
    async fn drain(s: &mut TcpStream) {
        let mut buf = vec![0u8; CHUNK];
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    }
    let upstream_side = async {
        drain(upstream).await;
        std::future::pending::<()>().await
    };
    tokio::select! {
        () = drain(client) => {}
        () = upstream_side => {}
    }
}

// ------------------------------------------------------------------------------------------
// Per-connection loops
// ------------------------------------------------------------------------------------------

async fn serve_fault_client(stream: TcpStream, shared: Arc<FaultShared>) -> io::Result<()> {
    let mut client = Client {
        conn: Conn::new(stream),
        sent: 0,
    };
    let upstream = shared.upstream.to_string();
    // Requests relayed on this connection, for `CloseOnReuse`.
    let mut answered = 0u64;
    loop {
        let req = match read_request(&mut client.conn).await {
            Ok(Some(req)) => req,
            Ok(None) => return Ok(()),
            Err(e) => {
                let _ = client
                    .conn
                    .stream
                    .write_all(&simple_response(400, &[]))
                    .await;
                return Err(e);
            }
        };
        let mode = *lock(&shared.mode);
        let plain = !req.is_websocket();
        let drop_it = plain
            && match mode {
                ProxyMode::CloseOnReuse => answered > 0,
                ProxyMode::CloseUnanswered => true,
                _ => false,
            };
        if drop_it {
            bump(&shared.counters.requests, 1);
            bump(&shared.counters.requests_dropped, 1);
            // The whole request was read, so the close is a FIN (unread data would make it a
            // RST): the client sees its connection end before any byte of a response.
            return Ok(());
        }
        match forward(&mut client, req, &upstream, mode, &shared.counters).await? {
            Next::KeepAlive if plain && mode == ProxyMode::CloseAfterResponse => return Ok(()),
            Next::KeepAlive => answered += 1,
            Next::Close => return Ok(()),
        }
    }
}

/// Whether `Proxy-Authorization` carries exactly these Basic credentials.
fn authorized(head: &RequestHead, user: &str, pass: &str) -> bool {
    let Some(value) = head.headers.get("proxy-authorization") else {
        return false;
    };
    let Some((scheme, token)) = value.split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .is_ok_and(|decoded| decoded == format!("{user}:{pass}").as_bytes())
}

async fn serve_connect_client(stream: TcpStream, shared: Arc<ConnectShared>) -> io::Result<()> {
    let counters = &shared.counters;
    let mut client = Client {
        conn: Conn::new(stream),
        sent: 0,
    };
    loop {
        let req = match read_request(&mut client.conn).await {
            Ok(Some(req)) => req,
            Ok(None) => return Ok(()),
            Err(e) => {
                let _ = client
                    .conn
                    .stream
                    .write_all(&simple_response(400, &[]))
                    .await;
                return Err(e);
            }
        };
        let connect = req.head.method.eq_ignore_ascii_case("CONNECT");
        if connect {
            bump(&counters.connects, 1);
        }
        if let Some((user, pass)) = &shared.credentials {
            if !authorized(&req.head, user, pass) {
                bump(&counters.auth_rejected, 1);
                let answer =
                    simple_response(407, &[("Proxy-Authenticate", "Basic realm=\"test\"")]);
                send_client(
                    &mut client,
                    &answer,
                    ProxyMode::Pass,
                    req.received,
                    counters,
                )
                .await?;
                let _ = client.conn.stream.shutdown().await;
                return Ok(());
            }
        }
        if connect {
            if shared.refuse_connect.load(Ordering::SeqCst) {
                bump(&counters.connect_refused, 1);
                let answer = simple_response(403, &[]);
                send_client(
                    &mut client,
                    &answer,
                    ProxyMode::Pass,
                    req.received,
                    counters,
                )
                .await?;
                let _ = client.conn.stream.shutdown().await;
                return Ok(());
            }
            let Ok(mut upstream) = TcpStream::connect(req.head.target.as_str()).await else {
                let answer = simple_response(502, &[]);
                send_client(
                    &mut client,
                    &answer,
                    ProxyMode::Pass,
                    req.received,
                    counters,
                )
                .await?;
                return Ok(());
            };
            let _ = upstream.set_nodelay(true);
            bump(&counters.tunnels, 1);
            send_client(
                &mut client,
                &http::head("HTTP/1.1 200 Connection established", &[]),
                ProxyMode::Pass,
                req.received,
                counters,
            )
            .await?;
            let leftover = client.conn.take_buffered();
            let (cr, cw) = client.conn.stream.split();
            let (ur, uw) = upstream.split();
            let _ = tokio::try_join!(
                pipe(cr, uw, leftover, None, None, &counters.to_upstream),
                pipe(ur, cw, Vec::new(), None, None, &counters.to_client),
            );
            return Ok(());
        }

        // Absolute-form target: what clients send to a proxy for plain http:// URLs.
        let Some((authority, origin_form)) = absolute_target(&req.head.target) else {
            let answer = simple_response(400, &[]);
            send_client(
                &mut client,
                &answer,
                ProxyMode::Pass,
                req.received,
                counters,
            )
            .await?;
            return Ok(());
        };
        bump(&counters.forwarded, 1);
        let mut req = req;
        req.head.target = origin_form;
        if req.head.headers.get("host").is_none() {
            req.head.headers.push("Host", &authority);
        }
        match forward(&mut client, req, &authority, ProxyMode::Pass, counters).await? {
            Next::KeepAlive => {}
            Next::Close => return Ok(()),
        }
    }
}

/// `http://host:port/path?query` into (`host:port`, `/path?query`).
fn absolute_target(target: &str) -> Option<(String, String)> {
    let url = url::Url::parse(target).ok()?;
    if url.scheme() != "http" {
        return None;
    }
    let host = url.host_str()?;
    let port = url.port_or_known_default()?;
    let mut origin = url.path().to_owned();
    if let Some(q) = url.query() {
        origin.push('?');
        origin.push_str(q);
    }
    Some((format!("{host}:{port}"), origin))
}
