//! An in-process socket.io server for integration tests, answering as the reference Node
//! socket.io 4 server does (Engine.IO v4, Socket.IO v5), with fault switches that break the
//! transports the way networks, proxies and servers do. It can also be a socket.io 2 server
//! ([`eio3`](MockServerBuilder::eio3)), a plain Engine.IO server
//! ([`engine_io`](MockServerBuilder::engine_io)), and keep connection state for recovery
//! ([`recovery`](MockServerBuilder::recovery)).
//!
//! Enabled by the `mock-server` cargo feature. Built on the crate's own sans-IO codecs
//! ([`crate::proto`], [`crate::payload::Args`]), over a small hand-written HTTP/1.1 layer: the
//! fault switches need byte-level control of each TCP connection (answer 200 instead of 101,
//! reset it, complete an upgrade and then stay silent, delay).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::time::Duration;
//! use sio_client::mock::MockServer;
//!
//! let server = MockServer::builder()
//!     .ping_interval(Duration::from_millis(300))
//!     .namespace("/admin")
//!     .on("/", "echo", |socket, args, ack| match ack {
//!         Some(ack) => ack.send(args),
//!         None => socket.emit("echo", args),
//!     })
//!     .start()
//!     .await?;
//! println!("connect a client to {}", server.url());
//! let events = server.wait_for_events(1, Duration::from_secs(5)).await;
//! # let _ = events; Ok(()) }
//! ```
//!
//! What it answers, as Node does (checked against engine.io 6 / socket.io 4 sources):
//! - handshake `GET ?EIO=4&transport=polling` → `0{"sid","upgrades":["websocket"],
//!   "pingInterval","pingTimeout","maxPayload"}`; over WebSocket `upgrades` is `[]`.
//! - errors: `400 {"code":0,"message":"Transport unknown"}`, code 1 `Session ID unknown`, code 2
//!   `Bad handshake method` (handshake not GET), code 3 `Bad request` (wrong transport for the
//!   session, `transport=websocket` without upgrade), code 5 `Unsupported protocol version`
//!   (anything but `EIO=4`, as Node's default `allowEIO3: false`; see
//!   [`eio3`](MockServerBuilder::eio3) for a socket.io 2 server).
//!   Refused upgrades get Node's plain-text `400` (`Transport unknown`, `Session ID unknown`).
//! - POST → `200 text/html` `ok`; a body over maxPayload → `413` (the session lives on, as in
//!   Node); an undecodable body → `ok` and the session closes (parse error); a second GET while
//!   one is pending → `400` and the session closes; a pending GET whose connection closes ends
//!   the session. A GET waits until packets are queued (a ping comes every pingInterval). A
//!   close packet (`1`) POSTed while a GET is pending releases that GET with a noop (`6`), as
//!   engine.io's `Polling#onClose` does; over WebSocket a close packet is ignored, as on Node
//!   (the client closes the WebSocket). A server-side close after queued packets sends them
//!   on one poll and `6`, `1` on the next, as Node's closing transport does.
//! - heartbeat: a ping pingInterval after the open or the last pong; no pong within
//!   pingTimeout after the ping closes the session, at that instant (every deadline is
//!   absolute, so a late wake-up of the server adds nothing to the next one). Another packet
//!   while the pong is awaited moves the deadline to pingTimeout after it, once, as engine.io
//!   6 does. A client ping closes the session (wrong heartbeat direction).
//! - upgrade: WebSocket with `sid`, `2probe` → `3probe`, the pending poll is released with `6`
//!   (every 100 ms while probing), `5` switches; later polls on that sid get code 3.
//! - Socket.IO: CONNECT (`40`, `40{auth}`, `40/nsp,{auth}`) → `40{"sid":"…"}` /
//!   `40/nsp,{"sid":"…"}`; an undeclared namespace → `44/nsp,{"message":"Invalid namespace"}`
//!   (CONNECT_ERROR); a refusing connect guard → `44/nsp,{"message":…,"data":…}`; no CONNECT
//!   within connectTimeout closes the connection; events, acks (both ways), binary events and
//!   acks with attachments, DISCONNECT both ways; a packet for a namespace not joined, a second
//!   CONNECT or an undecodable packet closes the connection.
//!
//! Streaming, our extension of Engine.IO v4 (see [`crate::proto::engineio::sse`]):
//! - `GET ?EIO=4&transport=streaming` → `200 text/event-stream` (`Cache-Control: no-cache,
//!   no-transform`, `X-Accel-Buffering: no`, chunked), kept open: the 2 KiB prelude, then one SSE
//!   event per packet, each flushed as its own chunk at once. Without `sid` it is a handshake
//!   (the first event is the open packet, `upgrades: ["websocket"]`) and the same response goes
//!   on carrying the session; with `sid` it re-attaches the session's downstream. A second
//!   streaming GET while one is attached → `400` code 3 and the session closes. Upstream is a
//!   POST exactly as in polling.
//! - after [`stream_recycle_bytes`](MockServerBuilder::stream_recycle_bytes) the response ends
//!   (zero chunk) after a complete event; packets queued while no GET is attached wait for the
//!   next one. A streaming GET whose connection closes ends the session (`transport close`).
//! - upgrade: `2probe` → `3probe`, the stream gets what is queued, a `6` event and its end; `5`
//!   switches; later streaming requests on that sid get code 3.
//! - a server with streaming disabled answers code 0, as Node does for an unknown transport.
//!
//! CORS is off by default, as on Node without the `cors` option; with
//! [`cors`](MockServerBuilder::cors) every HTTP answer carries `Access-Control-Allow-Origin`
//! and `-Credentials`, and `OPTIONS` preflights get `204` with `-Methods` and `-Headers`, the
//! headers Node's `cors: { origin, credentials: true }` sends.
//!
//! Differences from Node, on purpose: no HTTP compression; responses carry `Content-Length`
//! (Node's error bodies are chunked); a WebSocket handshake with a wrong `EIO` is refused before
//! the `101` (Node writes its 400 after it); a panicking handler does not crash the server
//! (Node's process would die of the uncaught exception): the panic is recorded, see below.
//!
//! Handlers get the [`MockSocket`] of the event: [`MockSocket::broadcast`] and
//! [`MockSocket::to`] reach the other sockets of the namespace (as Node's `socket.broadcast`
//! and `socket.to(room)`), [`MockSocket::server`] the whole server; [`MockSocket::headers`] and
//! [`MockSocket::query`] give the request that opened the connection (Node's
//! `socket.handshake`). A panic in a handler or guard is caught: the connection lives on and
//! the message is kept for [`MockServer::handler_panics`] /
//! [`MockServer::assert_no_handler_panics`], so an assertion inside a handler can fail the test
//! (call it at the end; dropping a server with recorded panics only prints a warning).
//!
//! The server always runs on a small runtime of its own (one worker thread), even when started
//! with [`start`](MockServerBuilder::start) from a `#[tokio::test]`: a blocking
//! [`Client`](crate::Client) or a `*_blocking` method may then park the test's only thread
//! without starving the server. Every task the server spawns is owned by it:
//! [`MockServer::stop`] ends them all and waits, and dropping the server aborts them and closes
//! the listening socket at once, freeing the port. [`received`](MockServer::received) keeps the
//! last [`max_received`](MockServerBuilder::max_received) events (10 000 by default).

mod builder;
mod close_cause;
mod engine;
mod engine_io;
mod faults;
mod handle;
mod http;
mod recovery;
mod server;
mod socket;
mod streaming;
mod ws;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use rand::RngExt;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use builder::MockServerBuilder;
pub use engine_io::{MockConnection, ENGINE_MESSAGE_EVENT};
pub use faults::Faults;
pub use handle::{MockServerHandle, RoomEmitter};
pub use socket::{MockAck, MockSocket};

use crate::payload::Args;
use crate::proto::engineio::{Data, EngineVersion};
use crate::Transport;
use recovery::{RecoveryStore, Target};

/// Locks a mutex, ignoring poisoning (a panicking user handler must not wedge the server).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A random 20-character id in base64url, like Node's `base64id`.
pub(crate) fn random_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| {
            let i = rng.random_range(0..ALPHABET.len());
            ALPHABET.get(i).map_or('A', |&b| char::from(b))
        })
        .collect()
}

/// Errors of the mock server's waiting operations.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    /// The awaited thing did not happen in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The socket disconnected before the acknowledgement arrived.
    #[error("socket disconnected")]
    Disconnected,
    /// The server was stopped.
    #[error("server stopped")]
    Closed,
    /// Binding or runtime creation failed.
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
}

/// An event a client sent, as recorded by the server (see [`MockServer::received`]).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedEvent {
    /// Engine.IO session id of the connection (same as [`MockSocket::connection_id`]).
    pub connection_id: String,
    /// Socket.IO socket id (same as [`MockSocket::id`]).
    pub socket_id: String,
    /// Namespace the event arrived on.
    pub namespace: String,
    /// Event name.
    pub event: String,
    /// Arguments after the name, binary attachments included.
    pub args: Args,
    /// The ack id, when the client asked for an acknowledgement.
    pub ack_id: Option<u64>,
    /// Transport that carried the event.
    pub transport: Transport,
}

type Handler = Arc<dyn Fn(&MockSocket, Args, Option<MockAck>) + Send + Sync>;
type ConnectHandler = Arc<dyn Fn(&MockSocket) + Send + Sync>;
type Guard = Arc<dyn Fn(Option<&Value>) -> Result<(), (String, Option<Value>)> + Send + Sync>;
type EngineHandler = Arc<dyn Fn(&MockConnection, Data) + Send + Sync>;

/// Server settings, fixed at start.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) ping_interval: Duration,
    pub(crate) ping_timeout: Duration,
    pub(crate) max_payload: usize,
    pub(crate) path: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) upgrade_timeout: Duration,
    pub(crate) close_timeout: Duration,
    pub(crate) polling_enabled: bool,
    pub(crate) websocket_enabled: bool,
    pub(crate) streaming_enabled: bool,
    /// Body bytes after which a streaming response is ended (the client opens a new one).
    pub(crate) stream_recycle_bytes: usize,
    pub(crate) addr: SocketAddr,
    pub(crate) namespaces: HashSet<String>,
    pub(crate) guards: HashMap<String, Guard>,
    pub(crate) handlers: HashMap<(String, String), Handler>,
    pub(crate) connect_handlers: HashMap<String, ConnectHandler>,
    /// Most events kept by `received()`.
    pub(crate) max_received: usize,
    /// `Access-Control-Allow-Origin` to answer with, when CORS is on.
    pub(crate) cors_origin: Option<String>,
    /// The Engine.IO revision spoken: V4 (socket.io 3/4), or V3 (socket.io 2).
    pub(crate) engine_version: EngineVersion,
    /// Plain Engine.IO: no Socket.IO layer.
    pub(crate) engine_io_only: bool,
    pub(crate) engine_message_handler: Option<EngineHandler>,
    /// Connection-state recovery's maxDisconnectionDuration, when recovery is on.
    pub(crate) recovery: Option<Duration>,
}

/// State shared by the server handle and its tasks.
pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) faults: Faults,
    pub(crate) sessions: Mutex<HashMap<String, Arc<engine::Engine>>>,
    /// Sockets connected now.
    pub(crate) sockets: Mutex<Vec<MockSocket>>,
    /// Every socket that ever connected, in order.
    pub(crate) history: watch::Sender<Vec<MockSocket>>,
    /// Open Engine.IO sessions, for awaiting a count without polling.
    pub(crate) session_count: watch::Sender<usize>,
    received: watch::Sender<VecDeque<ReceivedEvent>>,
    /// Events pushed out of `received` by `max_received`.
    received_dropped: AtomicU64,
    /// Panics of user handlers, caught so that the connection lives on.
    panics: Mutex<Vec<String>>,
    /// Connection-state recovery: kept events and disconnected sessions.
    pub(crate) recovery: Mutex<RecoveryStore>,
    tasks: Mutex<Option<JoinSet<()>>>,
    handle: Handle,
    pub(crate) listener: Mutex<Option<TcpListener>>,
    addr: SocketAddr,
}

impl Inner {
    /// Spawns a task the server owns (aborted on stop/drop/restart).
    pub(crate) fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        if let Some(set) = lock(&self.tasks).as_mut() {
            while set.try_join_next().is_some() {}
            set.spawn_on(fut, &self.handle);
        }
    }

    pub(crate) fn record(&self, event: ReceivedEvent) {
        let max = self.config.max_received;
        let mut dropped = 0u64;
        self.received.send_modify(|r| {
            r.push_back(event);
            while r.len() > max {
                r.pop_front();
                dropped = dropped.saturating_add(1);
            }
        });
        if dropped > 0 {
            self.received_dropped.fetch_add(dropped, Ordering::Relaxed);
        }
    }

    /// Runs user code, catching a panic: it is recorded for [`MockServer::handler_panics`]
    /// instead of killing the connection's task, where nothing would ever report it.
    pub(crate) fn run_user<R>(&self, what: &str, f: impl FnOnce() -> R) -> Option<R> {
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(r) => Some(r),
            Err(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic payload".to_owned());
                lock(&self.panics).push(format!("{what} panicked: {message}"));
                None
            }
        }
    }

    fn sockets_of(&self, nsp: &str) -> Vec<MockSocket> {
        lock(&self.sockets)
            .iter()
            .filter(|s| s.namespace() == nsp)
            .cloned()
            .collect()
    }

    /// Runs a future on the server's runtime and waits for it from a thread that is not
    /// running async code.
    pub(crate) fn block_on<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, MockError> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().map_err(|_| MockError::Closed)
    }

    /// Closes the listener and every session; returns the tasks to end.
    fn shut(&self) -> Option<JoinSet<()>> {
        lock(&self.listener).take();
        let tasks = lock(&self.tasks).take();
        let sessions: Vec<_> = lock(&self.sessions).drain().map(|(_, e)| e).collect();
        self.session_count.send_replace(0);
        for engine in sessions {
            engine.close(close_cause::CloseCause::ServerClose, false);
        }
        tasks
    }
}

/// A running mock socket.io server. See the [module docs](self).
pub struct MockServer {
    inner: Arc<Inner>,
    runtime: Option<Runtime>,
}

impl fmt::Debug for MockServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockServer")
            .field("addr", &self.inner.addr)
            .finish_non_exhaustive()
    }
}

impl MockServer {
    /// A builder with Node's defaults: pingInterval 25 s, pingTimeout 20 s, maxPayload
    /// 1 000 000, path `/socket.io/`, connectTimeout 45 s, upgradeTimeout 10 s, namespace `/`
    /// only, 127.0.0.1 on a free port; polling, WebSocket and streaming enabled, streaming
    /// responses recycled after 128 KiB.
    pub fn builder() -> MockServerBuilder {
        MockServerBuilder {
            config: Config {
                ping_interval: Duration::from_millis(25_000),
                ping_timeout: Duration::from_millis(20_000),
                max_payload: 1_000_000,
                path: "/socket.io/".to_owned(),
                connect_timeout: Duration::from_millis(45_000),
                upgrade_timeout: Duration::from_millis(10_000),
                close_timeout: Duration::from_millis(30_000),
                polling_enabled: true,
                websocket_enabled: true,
                streaming_enabled: true,
                stream_recycle_bytes: 128 * 1024,
                addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
                namespaces: HashSet::from(["/".to_owned()]),
                guards: HashMap::new(),
                handlers: HashMap::new(),
                connect_handlers: HashMap::new(),
                max_received: 10_000,
                cors_origin: None,
                engine_version: EngineVersion::V4,
                engine_io_only: false,
                engine_message_handler: None,
                recovery: None,
            },
            path_set: false,
        }
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.inner.addr.port()
    }

    /// `http://127.0.0.1:PORT`, the URL to give a client (the path is the client's default).
    pub fn url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// The request path served, `/socket.io/` by default.
    pub fn path(&self) -> &str {
        &self.inner.config.path
    }

    /// The fault switches.
    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// Number of open Engine.IO sessions.
    pub fn connection_count(&self) -> usize {
        lock(&self.inner.sessions).len()
    }

    /// Sockets connected now, on every namespace, in connection order.
    pub fn sockets(&self) -> Vec<MockSocket> {
        lock(&self.inner.sockets).clone()
    }

    /// A cheap handle on this server, as [`MockSocket::server`] gives to handlers.
    pub fn handle(&self) -> MockServerHandle {
        MockServerHandle {
            inner: Arc::downgrade(&self.inner),
        }
    }

    /// Panics caught in user code (event and connect handlers, connect guards), in order, as
    /// `"handler for \"event\" on /: message"`. A panicking handler no longer ends its
    /// connection; it is recorded here so that an assertion inside a handler can fail the test
    /// (see [`assert_no_handler_panics`](Self::assert_no_handler_panics)).
    pub fn handler_panics(&self) -> Vec<String> {
        lock(&self.inner.panics).clone()
    }

    /// Panics, listing every caught handler panic, if there was any. Call it at the end of a
    /// test whose handlers assert things.
    #[track_caller]
    pub fn assert_no_handler_panics(&self) {
        let panics = self.handler_panics();
        assert!(
            panics.is_empty(),
            "{} mock handler panic(s):\n{}",
            panics.len(),
            panics.join("\n")
        );
    }

    /// Events pushed out of [`received`](Self::received) because more than
    /// [`max_received`](MockServerBuilder::max_received) arrived.
    pub fn received_dropped(&self) -> u64 {
        self.inner.received_dropped.load(Ordering::Relaxed)
    }

    /// Every socket that ever connected (including disconnected ones), in order.
    pub fn socket_history(&self) -> Vec<MockSocket> {
        self.inner.history.borrow().clone()
    }

    /// Waits until at least `n` sockets have connected since start (counting ones that
    /// disconnected since) and returns them all, in order: `wait_for_sockets(2, …)` after a
    /// reconnection gives `[first, second]`.
    pub async fn wait_for_sockets(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<MockSocket>, MockError> {
        let mut rx = self.inner.history.subscribe();
        let seen = tokio::time::timeout(timeout, rx.wait_for(|h| h.len() >= n))
            .await
            .map_err(|_| MockError::Timeout(timeout))?
            .map_err(|_| MockError::Closed)?;
        Ok(seen.clone())
    }

    /// Waits until exactly `n` Engine.IO sessions are open (e.g. that connection attempts which
    /// lost a race closed theirs).
    pub async fn wait_for_connection_count(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<(), MockError> {
        let mut rx = self.inner.session_count.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|count| *count == n))
            .await
            .map_err(|_| MockError::Timeout(timeout))?
            .map_err(|_| MockError::Closed)?;
        Ok(())
    }

    /// [`wait_for_connection_count`](Self::wait_for_connection_count) for code without a
    /// runtime.
    pub fn wait_for_connection_count_blocking(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<(), MockError> {
        let mut rx = self.inner.session_count.subscribe();
        self.block_on(async move {
            tokio::time::timeout(timeout, rx.wait_for(|count| *count == n))
                .await
                .map_err(|_| MockError::Timeout(timeout))?
                .map_err(|_| MockError::Closed)?;
            Ok(())
        })?
    }

    /// [`wait_for_sockets`](Self::wait_for_sockets) for code without a runtime.
    pub fn wait_for_sockets_blocking(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<MockSocket>, MockError> {
        let mut rx = self.inner.history.subscribe();
        self.block_on(async move {
            let seen = tokio::time::timeout(timeout, rx.wait_for(|h| h.len() >= n))
                .await
                .map_err(|_| MockError::Timeout(timeout))?
                .map_err(|_| MockError::Closed)?;
            Ok(seen.clone())
        })?
    }

    /// Every event received so far (the last [`max_received`](MockServerBuilder::max_received)
    /// of them), in arrival order.
    pub fn received(&self) -> Vec<ReceivedEvent> {
        self.inner.received.borrow().iter().cloned().collect()
    }

    /// Forgets the recorded events.
    pub fn clear_received(&self) {
        self.inner.received.send_modify(VecDeque::clear);
    }

    /// Waits until at least `n` events are recorded and returns them all.
    pub async fn wait_for_events(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<ReceivedEvent>, MockError> {
        let mut rx = self.inner.received.subscribe();
        let seen = tokio::time::timeout(timeout, rx.wait_for(|r| r.len() >= n))
            .await
            .map_err(|_| MockError::Timeout(timeout))?
            .map_err(|_| MockError::Closed)?;
        Ok(seen.iter().cloned().collect())
    }

    /// [`wait_for_events`](Self::wait_for_events) for code without a runtime.
    pub fn wait_for_events_blocking(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<ReceivedEvent>, MockError> {
        let mut rx = self.inner.received.subscribe();
        self.block_on(async move {
            let seen = tokio::time::timeout(timeout, rx.wait_for(|r| r.len() >= n))
                .await
                .map_err(|_| MockError::Timeout(timeout))?
                .map_err(|_| MockError::Closed)?;
            Ok(seen.iter().cloned().collect())
        })?
    }

    /// Sends an event to every socket connected to `nsp`.
    pub fn emit_all(&self, nsp: &str, event: &str, args: Args) {
        self.handle().emit_all(nsp, event, args);
    }

    /// The open sessions of a plain Engine.IO server (see [`MockServerBuilder::engine_io`]);
    /// empty otherwise.
    pub fn connections(&self) -> Vec<MockConnection> {
        self.handle().connections()
    }

    /// Whether this is a plain Engine.IO server (see [`MockServerBuilder::engine_io`]).
    pub fn is_engine_io(&self) -> bool {
        self.inner.config.engine_io_only
    }

    /// The Engine.IO revision spoken: `4`, or `3` for a socket.io 2 server (see
    /// [`MockServerBuilder::eio3`]).
    pub fn engine_version(&self) -> u8 {
        match self.inner.config.engine_version {
            EngineVersion::V3 => 3,
            _ => 4,
        }
    }

    /// Targets the sockets of `nsp` in `room`.
    pub fn to_room(&self, nsp: &str, room: &str) -> RoomEmitter {
        self.handle().to_room(nsp, room)
    }

    /// Disconnects every socket and closes every connection, as Node's
    /// `io.disconnectSockets(true)`: DISCONNECT for each namespace, then the session closes.
    pub fn disconnect_all(&self) {
        for socket in self.sockets() {
            socket.disconnect();
        }
        let sessions: Vec<_> = lock(&self.inner.sessions).values().cloned().collect();
        for engine in sessions {
            engine.close(close_cause::CloseCause::ServerClose, true);
        }
    }

    /// Restarts on the same port: every connection and session is dropped (clients must
    /// handshake again), recorded events and settings are kept. The listening socket is kept,
    /// so the port cannot be taken by another socket meanwhile; connections made during the
    /// restart are accepted once it is done.
    pub async fn restart(&self) -> std::io::Result<()> {
        // On the server's runtime: a listener bound here must be driven by it.
        self.inner
            .handle
            .spawn(restart(self.inner.clone()))
            .await
            .map_err(|_| std::io::Error::other("mock server runtime stopped"))?
    }

    /// [`restart`](Self::restart) for code without a runtime.
    pub fn restart_blocking(&self) -> std::io::Result<()> {
        self.block_on(restart(self.inner.clone()))
            .map_err(|e| std::io::Error::other(e.to_string()))?
    }

    /// Stops the server: closes the listener and every connection and waits until every task
    /// it spawned has ended. The port is free afterwards.
    pub async fn stop(self) {
        if let Some(mut tasks) = self.inner.shut() {
            tasks.shutdown().await;
        }
    }

    /// [`stop`](Self::stop) for code without a runtime.
    pub fn stop_blocking(self) {
        if let Some(mut tasks) = self.inner.shut() {
            let _ = self.block_on(async move { tasks.shutdown().await });
        }
    }

    /// Runs a future on the server's runtime and waits for it from a thread that is not
    /// running async code.
    fn block_on<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, MockError> {
        self.inner.block_on(fut)
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        let panics = lock(&self.inner.panics).len();
        if panics > 0 && !std::thread::panicking() {
            // Drop must not panic; a warning is what is left for a test that never asked.
            eprintln!(
                "sio_client::mock: {panics} handler panic(s) recorded (see MockServer::handler_panics)"
            );
        }
        // Dropping the JoinSet aborts every task; the listener is closed synchronously so the
        // port is free as soon as drop returns.
        drop(self.inner.shut());
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn restart(inner: Arc<Inner>) -> std::io::Result<()> {
    // The listening socket survives the restart: closing and binding the port again would
    // leave a gap in which any other socket on the machine may be given that port.
    let kept = lock(&inner.listener).take();
    if let Some(mut tasks) = inner.shut() {
        tasks.shutdown().await;
    }
    // A restarted Node server knows no session to recover either.
    lock(&inner.recovery).clear();
    let listener = match kept {
        Some(listener) => listener,
        None => TcpListener::bind(inner.addr).await?,
    };
    *lock(&inner.listener) = Some(listener);
    *lock(&inner.tasks) = Some(JoinSet::new());
    inner.spawn(server::accept_loop(inner.clone()));
    Ok(())
}
