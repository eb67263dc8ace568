//! Configuring and starting a mock server.

use super::*;

/// Configures and starts a [`MockServer`]. Obtained from [`MockServer::builder`].
pub struct MockServerBuilder {
    pub(super) config: Config,
    /// The path was chosen, so [`engine_io`](Self::engine_io) keeps it.
    pub(super) path_set: bool,
}

impl fmt::Debug for MockServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockServerBuilder")
            .field("addr", &self.config.addr)
            .field("path", &self.config.path)
            .finish_non_exhaustive()
    }
}

impl MockServerBuilder {
    /// Heartbeat interval (Node's `pingInterval`, default 25 s).
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.config.ping_interval = interval;
        self
    }

    /// How long to wait for a pong after a ping (Node's `pingTimeout`, default 20 s).
    pub fn ping_timeout(mut self, timeout: Duration) -> Self {
        self.config.ping_timeout = timeout;
        self
    }

    /// Largest accepted POST body or WebSocket message, in bytes (Node's `maxHttpBufferSize`,
    /// default 1 000 000), announced as `maxPayload`.
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.config.max_payload = bytes;
        self
    }

    /// Request path (default `/socket.io/`).
    pub fn path(mut self, path: &str) -> Self {
        let mut path = path.trim_end_matches('/').to_owned();
        path.push('/');
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        self.config.path = path;
        self.path_set = true;
        self
    }

    /// How long a connection may stay without joining a namespace (Node's `connectTimeout`,
    /// default 45 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// How long an upgrade probe may take (Node's `upgradeTimeout`, default 10 s).
    pub fn upgrade_timeout(mut self, timeout: Duration) -> Self {
        self.config.upgrade_timeout = timeout;
        self
    }

    /// Which transports the server accepts (Node's `transports`, default all three). A
    /// disabled transport answers code 0 `Transport unknown`, as a Node server answers
    /// `transport=streaming`; without WebSocket the handshake offers no upgrade.
    pub fn transports(mut self, transports: &[Transport]) -> Self {
        self.config.polling_enabled = transports.contains(&Transport::Polling);
        self.config.websocket_enabled = transports.contains(&Transport::WebSocket);
        self.config.streaming_enabled = transports.contains(&Transport::Streaming);
        self
    }

    /// Body bytes (prelude included) after which a streaming response is ended cleanly, after a
    /// complete event, so that no proxy holds an ever-growing response (default 128 KiB, as
    /// SockJS's `response_limit`). Packets queued meanwhile wait in the session for the
    /// client's next streaming GET. At least one event goes out per response.
    pub fn stream_recycle_bytes(mut self, bytes: usize) -> Self {
        self.config.stream_recycle_bytes = bytes;
        self
    }

    /// Listens on this port of 127.0.0.1 (default 0: a free port chosen by the system).
    pub fn port(mut self, port: u16) -> Self {
        self.config.addr.set_port(port);
        self
    }

    /// Listens on this address (default `127.0.0.1:0`).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.config.addr = addr;
        self
    }

    /// Declares a namespace clients may join (`/` always exists).
    pub fn namespace(mut self, nsp: &str) -> Self {
        self.config.namespaces.insert(nsp.to_owned());
        self
    }

    /// Decides whether a client may join `nsp` from the CONNECT auth payload; `Err((message,
    /// data))` refuses with CONNECT_ERROR `{"message":…,"data":…}` (`data` left out when
    /// `None`), as an `Error` with `data` passed to `next()` in a Node middleware. A guard that
    /// panics refuses with `connect guard panicked` (see [`MockServer::handler_panics`]).
    /// Declares the namespace.
    pub fn connect_guard<F>(mut self, nsp: &str, guard: F) -> Self
    where
        F: Fn(Option<&Value>) -> Result<(), (String, Option<Value>)> + Send + Sync + 'static,
    {
        self.config.namespaces.insert(nsp.to_owned());
        self.config.guards.insert(nsp.to_owned(), Arc::new(guard));
        self
    }

    /// Runs `handler` for every socket that joins `nsp`, after the CONNECT reply is queued.
    /// Declares the namespace.
    pub fn on_connect<F>(mut self, nsp: &str, handler: F) -> Self
    where
        F: Fn(&MockSocket) + Send + Sync + 'static,
    {
        self.config.namespaces.insert(nsp.to_owned());
        self.config
            .connect_handlers
            .insert(nsp.to_owned(), Arc::new(handler));
        self
    }

    /// Runs `handler` for every `event` received on `nsp`, with the socket, the arguments and,
    /// when the client asked for one, the acknowledgement to send. Handlers run on the server's
    /// tasks: keep them short and non-blocking. Every event is also recorded (see
    /// [`MockServer::received`]) whether or not a handler exists. Declares the namespace.
    pub fn on<F>(mut self, nsp: &str, event: &str, handler: F) -> Self
    where
        F: Fn(&MockSocket, Args, Option<MockAck>) + Send + Sync + 'static,
    {
        self.config.namespaces.insert(nsp.to_owned());
        self.config
            .handlers
            .insert((nsp.to_owned(), event.to_owned()), Arc::new(handler));
        self
    }

    /// How many events [`MockServer::received`] keeps (default 10 000): past it the oldest
    /// go, counted by [`MockServer::received_dropped`], so that a long test does not grow
    /// without bound. `wait_for_events(n)` with `n` above it never completes.
    pub fn max_received(mut self, events: usize) -> Self {
        self.config.max_received = events;
        self
    }

    /// Answers cross-origin requests for `origin` as Node's `cors: { origin, credentials: true }`
    /// option does: every HTTP answer carries `Access-Control-Allow-Origin`, `Vary: Origin` and
    /// `Access-Control-Allow-Credentials: true`, and an `OPTIONS` preflight gets `204` with
    /// `Access-Control-Allow-Methods: GET,HEAD,PUT,PATCH,POST,DELETE` and the requested
    /// headers in `Access-Control-Allow-Headers`. `"*"` allows any origin by reflecting the
    /// request's `Origin` (as Node's `origin: true`; browsers refuse a literal `*` with
    /// credentials). Off by default: no CORS headers, and `OPTIONS` is refused as on a Node
    /// server without `cors`.
    pub fn cors(mut self, origin: &str) -> Self {
        self.config.cors_origin = Some(origin.to_owned());
        self
    }

    /// Speaks Engine.IO v3 and Socket.IO protocol v4, as a socket.io 2 server (checked against
    /// socket.io 2.5 / engine.io 3.6): the handshake has no `maxPayload` and any `EIO` is
    /// accepted, as engine.io 3 does; polling payloads are length-prefixed (`97:0{…}2:40`,
    /// binary as `b4<base64>`; clients must ask for base64 with `b64=1`, as this crate's client
    /// does); the client pings (`2`) and the server answers `3`, closing the session
    /// pingInterval + pingTimeout after the last packet received; the main namespace is joined
    /// with the handshake (`40` follows the open packet), CONNECT replies carry no data
    /// (`40/admin,`), other namespaces take their query in the CONNECT packet
    /// (`40/admin?token=secret,`), which connect guards get (merged over the handshake query)
    /// instead of an auth payload, and refusals are ERROR packets with the message
    /// (`44/admin,"not authorized"`). Without [`cors`](Self::cors), every answer carries
    /// socket.io 2's default CORS headers (`Access-Control-Allow-Origin: *`, or the request's
    /// `Origin` with credentials). Streaming (this crate's extension of v4) is not offered.
    pub fn eio3(mut self) -> Self {
        self.config.engine_version = EngineVersion::V3;
        self.config.streaming_enabled = false;
        self
    }

    /// A plain Engine.IO server, as Node's `engine.io` package without socket.io: no Socket.IO
    /// layer, path `/engine.io/` unless [`path`](Self::path) says otherwise. Polling,
    /// WebSocket and the upgrade work as in the Socket.IO mode; every message is recorded in
    /// [`MockServer::received`] as an event named [`ENGINE_MESSAGE_EVENT`] (`"message"`) on
    /// namespace `""`, with one argument (the text, or the binary), and handed to the hook of
    /// [`on_engine_message`](Self::on_engine_message). Namespaces, guards and event handlers
    /// are not used, and there are no sockets: [`MockServer::connections`] lists the sessions,
    /// [`MockServer::wait_for_connection_count`] waits for them.
    pub fn engine_io(mut self) -> Self {
        self.config.engine_io_only = true;
        if !self.path_set {
            self.config.path = "/engine.io/".to_owned();
        }
        self
    }

    /// Runs `hook` for every message received in the plain Engine.IO mode (see
    /// [`engine_io`](Self::engine_io)), e.g. `|conn, data| conn.send(data)` to echo.
    pub fn on_engine_message<F>(mut self, hook: F) -> Self
    where
        F: Fn(&MockConnection, Data) + Send + Sync + 'static,
    {
        self.config.engine_message_handler = Some(Arc::new(hook));
        self
    }

    /// Turns on connection-state recovery, as Node's `connectionStateRecovery: {
    /// maxDisconnectionDuration }` (socket.io 4.6+, protocol v5 only): the CONNECT reply
    /// carries a `pid`; every event sent without ack request carries an offset as its last
    /// argument and is kept for `max_disconnection`; a socket whose connection is lost (not a
    /// deliberate disconnect) leaves its session behind, and a client whose CONNECT auth
    /// holds `{"pid", "offset"}` within `max_disconnection` gets the same socket id and rooms,
    /// the events it missed (before the CONNECT reply, as Node sends them) and
    /// [`MockSocket::recovered`]. Node's default is 2 minutes.
    pub fn recovery(mut self, max_disconnection: Duration) -> Self {
        self.config.recovery = Some(max_disconnection);
        self
    }

    /// Binds and starts serving. The server always runs on a small runtime of its own (one
    /// worker thread), whatever runtime awaits this: a blocking [`Client`](crate::Client) or a
    /// `*_blocking` method called from a current-thread `#[tokio::test]` would otherwise starve
    /// the server of the very thread it blocks.
    pub async fn start(self) -> std::io::Result<MockServer> {
        let runtime = server_runtime()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        runtime.spawn(async move {
            let _ = tx.send(self.start_here().await);
        });
        // A runtime may not be dropped in async code: on failure it is shut down explicitly.
        let mut server = match rx.await {
            Ok(Ok(server)) => server,
            Ok(Err(e)) => {
                runtime.shutdown_background();
                return Err(e);
            }
            Err(_) => {
                runtime.shutdown_background();
                return Err(std::io::Error::other("mock server runtime stopped"));
            }
        };
        server.runtime = Some(runtime);
        Ok(server)
    }

    /// Binds and serves on the runtime this runs on.
    async fn start_here(self) -> std::io::Result<MockServer> {
        let listener = TcpListener::bind(self.config.addr).await?;
        let addr = listener.local_addr()?;
        let max_disconnection = self.config.recovery.unwrap_or(Duration::ZERO);
        let mut config = self.config;
        if config.engine_version == EngineVersion::V3 {
            // Streaming is this crate's extension of Engine.IO v4 only, whatever
            // `transports` said after `eio3`.
            config.streaming_enabled = false;
        }
        let inner = Arc::new(Inner {
            config,
            faults: Faults::new(),
            sessions: Mutex::new(HashMap::new()),
            sockets: Mutex::new(Vec::new()),
            history: watch::Sender::new(Vec::new()),
            session_count: watch::Sender::new(0),
            received: watch::Sender::new(VecDeque::new()),
            received_dropped: AtomicU64::new(0),
            panics: Mutex::new(Vec::new()),
            recovery: Mutex::new(RecoveryStore::new(max_disconnection)),
            tasks: Mutex::new(Some(JoinSet::new())),
            handle: Handle::current(),
            listener: Mutex::new(Some(listener)),
            addr,
        });
        inner.spawn(server::accept_loop(inner.clone()));
        Ok(MockServer {
            inner,
            runtime: None,
        })
    }

    /// Starts the server on a small runtime of its own (one worker thread), for tests without
    /// async code; the same as [`start`](Self::start) without awaiting. The server's async
    /// methods work from any runtime, the `*_blocking` ones from any thread not running async
    /// code.
    pub fn start_background(self) -> std::io::Result<MockServer> {
        let runtime = server_runtime()?;
        let (tx, rx) = std::sync::mpsc::channel();
        runtime.spawn(async move {
            let _ = tx.send(self.start_here().await);
        });
        let mut server = rx
            .recv()
            .map_err(|_| std::io::Error::other("mock server runtime stopped"))??;
        server.runtime = Some(runtime);
        Ok(server)
    }
}

fn server_runtime() -> std::io::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("sio-mock-server")
        .enable_all()
        .build()
}
