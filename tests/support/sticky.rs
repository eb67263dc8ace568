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

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use super::background::{Background, Tasks};
use super::http::{self, bad, Headers, HttpConn};

/// The affinity cookie's name.
pub const COOKIE_NAME: &str = "lb";
/// The affinity cookie's value.
pub const COOKIE_VALUE: &str = "node-1";

/// Largest request body accepted.
const BODY_LIMIT: u64 = 64 * 1024 * 1024;

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
    background: Background,
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
    tasks: Arc<Tasks>,
}

impl StickyBalancer {
    /// Starts a balancer in front of `upstream` on the current tokio runtime.
    pub async fn start(upstream: SocketAddr) -> StickyBalancer {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("listener address");
        let background = Background::on_current_runtime();
        let shared = Arc::new(Shared {
            upstream,
            pinned: AtomicBool::new(false),
            counters: Counters::default(),
            tasks: background.tasks(),
        });
        background.spawn(accept_loop(listener, shared.clone()));
        StickyBalancer {
            addr,
            shared,
            background,
        }
    }

    /// Starts a balancer on a small runtime of its own, for tests without async code.
    pub fn start_background(upstream: SocketAddr) -> StickyBalancer {
        Background::start_on_own_runtime(
            "sticky-balancer",
            StickyBalancer::start(upstream),
            |balancer: &mut StickyBalancer| &mut balancer.background,
        )
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

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::SeqCst);
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
        shared.tasks.spawn(async move {
            let _ = serve(stream, conn_shared).await;
        });
    }
}

// Heads
// ------------------------------------------------------------------------------------------

type Conn = HttpConn<TcpStream>;

/// Reads more bytes of `stream` into `buf` (the half of a split [`Conn`]); 0 at end of stream.
async fn fill(
    stream: &mut (impl tokio::io::AsyncReadExt + Unpin),
    buf: &mut Vec<u8>,
) -> io::Result<usize> {
    let mut tmp = vec![0u8; http::CHUNK];
    let n = stream.read(&mut tmp).await?;
    buf.extend_from_slice(tmp.get(..n).unwrap_or_default());
    Ok(n)
}

/// Whether a `Cookie` header carries the affinity cookie.
fn has_affinity_cookie(headers: &Headers) -> bool {
    headers
        .all("cookie")
        .flat_map(|v| v.split(';'))
        .any(|pair| {
            pair.trim()
                .split_once('=')
                .is_some_and(|(n, v)| n.trim() == COOKIE_NAME && v.trim() == COOKIE_VALUE)
        })
}

/// A small complete answer from the balancer itself, after which the connection closes.
fn answer(status: u16, reason: &str) -> Vec<u8> {
    http::response(
        status,
        reason,
        &[("Content-Type", "text/plain"), ("Connection", "close")],
        reason.as_bytes(),
    )
}

// ------------------------------------------------------------------------------------------
// One client connection
// ------------------------------------------------------------------------------------------

async fn serve(stream: TcpStream, shared: Arc<Shared>) -> io::Result<()> {
    let counters = &shared.counters;
    let mut client = Conn::new(stream);
    loop {
        let head = match client.read_request_head().await {
            Ok(Some(head)) => head,
            Ok(None) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                let _ = client.stream.write_all(&answer(400, "Bad Request")).await;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        bump(&counters.requests);
        let websocket = head.is_websocket();
        let has_cookie = has_affinity_cookie(&head.headers);
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

        if head.headers.is_chunked() {
            // No client under test sends chunked requests; refusing keeps framing simple.
            client
                .stream
                .write_all(&answer(411, "Length Required"))
                .await?;
            return Ok(());
        }
        let body_len = head.headers.content_length()?.unwrap_or(0);
        if body_len > BODY_LIMIT {
            client
                .stream
                .write_all(&answer(413, "Payload Too Large"))
                .await?;
            return Ok(());
        }
        let body = client
            .read_exact_bytes(usize::try_from(body_len).map_err(|_| bad("body too large"))?)
            .await?;

        let Ok(upstream) = TcpStream::connect(shared.upstream).await else {
            client.stream.write_all(&answer(502, "Bad Gateway")).await?;
            return Ok(());
        };
        let _ = upstream.set_nodelay(true);
        let mut up = Conn::new(upstream);
        // The head goes upstream as the client sent it, byte for byte.
        up.stream.write_all(&head.raw).await?;
        up.stream.write_all(&body).await?;

        let Some(resp) = up.read_response_head().await? else {
            client.stream.write_all(&answer(502, "Bad Gateway")).await?;
            return Ok(());
        };
        let status = resp.status;
        let mut out = resp.raw.clone();
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

        let close_delimited = resp.body(&head.method)? == http::Body::UntilClose;

        client.stream.write_all(&out).await?;
        let up_left = std::mem::take(&mut up.buf);
        client.stream.write_all(&up_left).await?;

        // Pipe the rest of the response until the upstream is done or the client starts its
        // next request (which, without pipelining, means the response is complete).
        let HttpConn {
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
