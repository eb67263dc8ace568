//! A reverse proxy that behaves like a sticky-session load balancer in front of a cluster of
//! which only one node (the upstream) holds the Engine.IO session.
//!
//! The first request that arrives without the affinity cookie `lb=node-1` is forwarded, and its
//! response gets `Set-Cookie: lb=node-1; Path=/` added: that is how a balancer pins a client to
//! a node. Every later request without the cookie (a poll, a POST, a streaming GET, a WebSocket
//! upgrade) is answered `503 Service Unavailable` without reaching the upstream, standing for
//! a balancer that routes it to another node, where the session does not exist. A client that
//! does not carry its cookies on every request therefore fails here, visibly, and
//! [`StickyBalancer::stats`] tells which requests went without it.
//!
//! HTTP handling is minimal but framing-correct for what clients send: keep-alive connections,
//! request bodies with `Content-Length` (a chunked request body is refused with 411), any
//! response framing. Each request goes to the upstream on a fresh connection; the response
//! head is read (to add the cookie) and the rest is piped through unparsed until the client
//! sends its next request on the connection (HTTP/1.1 clients that do not pipeline send it
//! only after the whole response) or the upstream closes. After a `101`, both directions are
//! piped raw.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

/// The affinity cookie's name.
pub const COOKIE_NAME: &str = "lb";
/// The affinity cookie's value.
pub const COOKIE_VALUE: &str = "node-1";

/// Largest request or response head accepted; beyond it the connection is dropped.
const HEAD_LIMIT: usize = 64 * 1024;
/// Largest request body accepted.
const BODY_LIMIT: u64 = 64 * 1024 * 1024;
/// Read size for bodies and raw pipes.
const CHUNK: usize = 16 * 1024;

/// Counters of a [`StickyBalancer`], a snapshot taken by [`StickyBalancer::stats`]. Each is
/// updated before the request is answered, so a client that got the answer sees it counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StickyStats {
    /// Client TCP connections accepted.
    pub connections: u64,
    /// Requests parsed (WebSocket upgrades included).
    pub requests: u64,
    /// Requests that carried `lb=node-1`.
    pub with_cookie: u64,
    /// Requests without it, the first one (which gets the cookie) included.
    pub without_cookie: u64,
    /// Requests answered 503 because they came without the cookie after the first.
    pub rejected: u64,
    /// Responses that got `Set-Cookie: lb=node-1` added (at most 1).
    pub cookies_issued: u64,
    /// WebSocket upgrade requests seen.
    pub upgrades: u64,
    /// WebSocket upgrade requests that carried the cookie.
    pub upgrades_with_cookie: u64,
    /// `101 Switching Protocols` answers relayed.
    pub upgrades_completed: u64,
}

impl StickyStats {
    /// Requests without the cookie after the first one: what a client that keeps its
    /// cookies never sends.
    pub fn cookieless_after_first(&self) -> u64 {
        self.without_cookie.saturating_sub(self.cookies_issued)
    }
}

/// The sticky-session balancer. See the [module docs](self). Dropping it stops every task and
/// closes every connection it holds.
pub struct StickyBalancer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: Option<Runtime>,
}

impl fmt::Debug for StickyBalancer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StickyBalancer")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .field("stats", &self.stats())
            .finish()
    }
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    requests: AtomicU64,
    with_cookie: AtomicU64,
    without_cookie: AtomicU64,
    rejected: AtomicU64,
    cookies_issued: AtomicU64,
    upgrades: AtomicU64,
    upgrades_with_cookie: AtomicU64,
    upgrades_completed: AtomicU64,
}

struct Shared {
    upstream: SocketAddr,
    /// Whether the one cookie-less request that is let through has been seen.
    pinned: AtomicBool,
    counters: Counters,
    /// `None` once the balancer is dropped, so a running task cannot start new ones after that.
    tasks: Mutex<Option<JoinSet<()>>>,
}

impl Shared {
    fn spawn<F>(&self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        if let Some(set) = lock(&self.tasks).as_mut() {
            while set.try_join_next().is_some() {}
            set.spawn(fut);
        }
    }

    fn shutdown(&self) {
        // Dropping the set aborts every task; the tasks hold the Arc that holds it, so the
        // cycle is broken here rather than by reference counting.
        let set = lock(&self.tasks).take();
        drop(set);
    }
}

impl StickyBalancer {
    /// Starts a balancer in front of `upstream` on the current tokio runtime.
    pub async fn start(upstream: SocketAddr) -> StickyBalancer {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("listener address");
        let shared = Arc::new(Shared {
            upstream,
            pinned: AtomicBool::new(false),
            counters: Counters::default(),
            tasks: Mutex::new(Some(JoinSet::new())),
        });
        shared.spawn(accept_loop(listener, shared.clone()));
        StickyBalancer {
            addr,
            shared,
            runtime: None,
        }
    }

    /// Starts a balancer on a small runtime of its own, for tests without async code.
    pub fn start_background(upstream: SocketAddr) -> StickyBalancer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sticky-balancer")
            .enable_all()
            .build()
            .expect("balancer runtime");
        // Spawned rather than `block_on`, so this also works when called from async code.
        let (tx, rx) = std::sync::mpsc::channel();
        runtime.spawn(async move {
            let _ = tx.send(StickyBalancer::start(upstream).await);
        });
        let mut balancer: StickyBalancer = rx.recv().expect("balancer runtime started it");
        balancer.runtime = Some(runtime);
        balancer
    }

    /// `http://127.0.0.1:PORT`: give this to the client as the server URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the balancer listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The upstream it forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> StickyStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::SeqCst);
        StickyStats {
            connections: get(&c.connections),
            requests: get(&c.requests),
            with_cookie: get(&c.with_cookie),
            without_cookie: get(&c.without_cookie),
            rejected: get(&c.rejected),
            cookies_issued: get(&c.cookies_issued),
            upgrades: get(&c.upgrades),
            upgrades_with_cookie: get(&c.upgrades_with_cookie),
            upgrades_completed: get(&c.upgrades_completed),
        }
    }
}

impl Drop for StickyBalancer {
    fn drop(&mut self) {
        self.shared.shutdown();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::SeqCst);
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
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
        bump(&shared.counters.connections);
        let conn_shared = shared.clone();
        shared.spawn(async move {
            let _ = serve(stream, conn_shared).await;
        });
    }
}

// ------------------------------------------------------------------------------------------
// Heads
// ------------------------------------------------------------------------------------------

/// A stream with a read buffer, so bytes read past a head are kept.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    /// Reads more bytes into the buffer; 0 means end of stream.
    async fn fill(&mut self) -> io::Result<usize> {
        fill(&mut self.stream, &mut self.buf).await
    }

    /// The next head (through the blank line); `None` at a clean end of stream between heads.
    async fn read_head(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            // Stray CRLFs between messages are allowed (RFC 9112 section 2.2).
            while self.buf.starts_with(b"\r\n") {
                self.buf.drain(..2);
            }
            if let Some(pos) = find(&self.buf, b"\r\n\r\n") {
                let end = pos.saturating_add(4);
                return Ok(Some(self.buf.drain(..end).collect()));
            }
            if self.buf.len() > HEAD_LIMIT {
                return Err(bad("head too large"));
            }
            if self.fill().await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(io::Error::from(io::ErrorKind::UnexpectedEof))
                };
            }
        }
    }

    /// Exactly `len` body bytes, buffered ones first.
    async fn read_exact_body(&mut self, len: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < len {
            if self.fill().await? == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
            }
        }
        Ok(self.buf.drain(..len).collect())
    }
}

async fn fill(stream: &mut (impl AsyncReadExt + Unpin), buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut tmp = vec![0u8; CHUNK];
    let n = stream.read(&mut tmp).await?;
    buf.extend_from_slice(tmp.get(..n).unwrap_or_default());
    Ok(n)
}

/// A parsed head: the first line and the header lines, as text.
struct Head {
    first: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn parse(raw: &[u8]) -> io::Result<Head> {
        let text = String::from_utf8_lossy(raw);
        let mut lines = text.split("\r\n").filter(|l| !l.is_empty());
        let first = lines.next().ok_or_else(|| bad("empty head"))?.to_owned();
        let mut headers = Vec::new();
        for line in lines {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| bad("header without ':'"))?;
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        Ok(Head { first, headers })
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether any `name` header lists `token` (comma-separated, case-insensitive).
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.all(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    fn content_length(&self) -> io::Result<Option<u64>> {
        let mut found = None;
        for v in self.all("content-length") {
            let n: u64 = v.trim().parse().map_err(|_| bad("bad Content-Length"))?;
            if found.is_some_and(|f| f != n) {
                return Err(bad("conflicting Content-Length"));
            }
            found = Some(n);
        }
        Ok(found)
    }

    /// Whether a `Cookie` header carries the affinity cookie.
    fn has_affinity_cookie(&self) -> bool {
        self.all("cookie").flat_map(|v| v.split(';')).any(|pair| {
            pair.trim()
                .split_once('=')
                .is_some_and(|(n, v)| n.trim() == COOKIE_NAME && v.trim() == COOKIE_VALUE)
        })
    }
}

/// A small complete answer from the balancer itself, after which the connection closes.
fn answer(status: u16, reason: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{reason}",
        reason.len()
    )
    .into_bytes()
}

// ------------------------------------------------------------------------------------------
// One client connection
// ------------------------------------------------------------------------------------------

async fn serve(stream: TcpStream, shared: Arc<Shared>) -> io::Result<()> {
    let counters = &shared.counters;
    let mut client = Conn::new(stream);
    loop {
        let Some(raw) = client.read_head().await? else {
            return Ok(());
        };
        let head = match Head::parse(&raw) {
            Ok(head) => head,
            Err(e) => {
                let _ = client.stream.write_all(&answer(400, "Bad Request")).await;
                return Err(e);
            }
        };
        bump(&counters.requests);
        let websocket = head.has_token("upgrade", "websocket");
        let has_cookie = head.has_affinity_cookie();
        if websocket {
            bump(&counters.upgrades);
        }
        if has_cookie {
            bump(&counters.with_cookie);
            if websocket {
                bump(&counters.upgrades_with_cookie);
            }
        } else {
            bump(&counters.without_cookie);
        }
        // Only the very first cookie-less request is routed to the session's node.
        let issue_cookie = !has_cookie && !shared.pinned.swap(true, Ordering::SeqCst);
        if !has_cookie && !issue_cookie {
            bump(&counters.rejected);
            client
                .stream
                .write_all(&answer(503, "Service Unavailable"))
                .await?;
            return Ok(());
        }
        if issue_cookie {
            bump(&counters.cookies_issued);
        }

        if head.has_token("transfer-encoding", "chunked") {
            // No client under test sends chunked requests; refusing keeps framing simple.
            client
                .stream
                .write_all(&answer(411, "Length Required"))
                .await?;
            return Ok(());
        }
        let body_len = head.content_length()?.unwrap_or(0);
        if body_len > BODY_LIMIT {
            client
                .stream
                .write_all(&answer(413, "Payload Too Large"))
                .await?;
            return Ok(());
        }
        let body = client
            .read_exact_body(usize::try_from(body_len).map_err(|_| bad("body too large"))?)
            .await?;

        let Ok(upstream) = TcpStream::connect(shared.upstream).await else {
            client.stream.write_all(&answer(502, "Bad Gateway")).await?;
            return Ok(());
        };
        let _ = upstream.set_nodelay(true);
        let mut up = Conn::new(upstream);
        // The head goes upstream as the client sent it, byte for byte.
        up.stream.write_all(&raw).await?;
        up.stream.write_all(&body).await?;

        let Some(resp_raw) = up.read_head().await? else {
            client.stream.write_all(&answer(502, "Bad Gateway")).await?;
            return Ok(());
        };
        let resp = Head::parse(&resp_raw)?;
        let status: u16 = resp
            .first
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("malformed status line"))?;
        let mut out = resp_raw;
        if issue_cookie {
            // Before the blank line that ends the head.
            let at = out.len().saturating_sub(2);
            let line = format!("Set-Cookie: {COOKIE_NAME}={COOKIE_VALUE}; Path=/\r\n");
            out.splice(at..at, line.into_bytes());
        }

        if status == 101 {
            bump(&counters.upgrades_completed);
            client.stream.write_all(&out).await?;
            let client_left = std::mem::take(&mut client.buf);
            let up_left = std::mem::take(&mut up.buf);
            client.stream.write_all(&up_left).await?;
            up.stream.write_all(&client_left).await?;
            let _ = tokio::io::copy_bidirectional(&mut client.stream, &mut up.stream).await;
            return Ok(());
        }

        let method = head.first.split_whitespace().next().unwrap_or_default();
        let bodiless = method.eq_ignore_ascii_case("HEAD")
            || (100..200).contains(&status)
            || status == 204
            || status == 304;
        let close_delimited = !bodiless
            && resp.content_length()?.is_none()
            && !resp.has_token("transfer-encoding", "chunked");

        client.stream.write_all(&out).await?;
        let up_left = std::mem::take(&mut up.buf);
        client.stream.write_all(&up_left).await?;

        // Pipe the rest of the response until the upstream is done or the client starts its
        // next request (which, without pipelining, means the response is complete).
        let Conn {
            stream: client_stream,
            buf: client_buf,
        } = &mut client;
        let (mut client_read, mut client_write) = client_stream.split();
        let upstream_done = async {
            tokio::io::copy(&mut up.stream, &mut client_write).await?;
            Ok::<(), io::Error>(())
        };
        let finished = tokio::select! {
            result = upstream_done => {
                result?;
                close_delimited
            }
            read = fill(&mut client_read, client_buf) => read? == 0,
        };
        if finished {
            // The end of a close-delimited body is the end of the connection.
            let _ = client.stream.shutdown().await;
            return Ok(());
        }
    }
}
