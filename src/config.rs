//! Connection options (named and defaulted as in the official JS client) and the builder.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::event_queue::EventOverflow;
use crate::proto::engineio::EngineVersion;
use crate::transport::net::TlsOptions;
use crate::transport::proxy::ProxySetting;
use crate::{Error, Transport};

pub use crate::listeners::{AnyHandler, Handler};

/// An auth payload computed asynchronously (a token fetched over HTTP, say).
pub(crate) type AsyncAuth = Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Value> + Send>> + Send + Sync,
>;

/// Where a namespace's auth payload comes from: fixed, or computed at every (re)connect so that
/// a refreshed token is used after an outage.
#[derive(Clone, Default)]
pub(crate) enum AuthSource {
    #[default]
    None,
    Fixed(Value),
    Dynamic(Arc<dyn Fn() -> Value + Send + Sync>),
    /// Resolved by the driver (off the protocol core) before each CONNECT.
    Async(AsyncAuth),
}

impl AuthSource {
    /// The payload now; `None` for none, and for an asynchronous source (resolved elsewhere).
    pub(crate) fn value(&self) -> Option<Value> {
        match self {
            AuthSource::None | AuthSource::Async(_) => None,
            AuthSource::Fixed(v) => Some(v.clone()),
            AuthSource::Dynamic(f) => Some(f()),
        }
    }

    pub(crate) fn is_async(&self) -> bool {
        matches!(self, AuthSource::Async(_))
    }
}

/// The listeners a socket is built with.
pub(crate) type Handlers = crate::listeners::Table;

/// Name/value pairs computed when a connection is opened (headers, query parameters).
#[derive(Clone)]
pub(crate) struct PairsFn(pub(crate) Arc<dyn Fn() -> Vec<(String, String)> + Send + Sync>);

impl std::fmt::Debug for PairsFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PairsFn(..)")
    }
}

impl PairsFn {
    /// `fixed`, then what the function returns now.
    pub(crate) fn extend(
        this: &Option<PairsFn>,
        fixed: &[(String, String)],
    ) -> Vec<(String, String)> {
        let mut pairs = fixed.to_vec();
        if let Some(f) = this {
            pairs.extend((f.0)());
        }
        pairs
    }
}

/// Options of one connection.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) url: String,
    pub(crate) path: String,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) headers: Vec<(String, String)>,
    /// Query parameters and headers computed at every connect and reconnect.
    pub(crate) query_fn: Option<PairsFn>,
    pub(crate) headers_fn: Option<PairsFn>,
    pub(crate) transports: Vec<Transport>,
    pub(crate) upgrade: bool,
    pub(crate) timeout: Duration,
    pub(crate) upgrade_timeout: Duration,
    pub(crate) probe_timeout: Duration,
    pub(crate) head_start: Duration,
    pub(crate) remember_transport: bool,
    pub(crate) version: EngineVersion,
    pub(crate) max_receive: usize,
    pub(crate) max_attachments: usize,
    pub(crate) event_buffer: usize,
    pub(crate) event_overflow: EventOverflow,
    pub(crate) tls: TlsOptions,
    pub(crate) proxy: ProxySetting,
    pub(crate) resolve: Vec<(String, Vec<std::net::IpAddr>)>,
    pub(crate) reconnection: bool,
    pub(crate) reconnection_attempts: Option<u32>,
    pub(crate) reconnection_delay: Duration,
    pub(crate) reconnection_delay_max: Duration,
    pub(crate) randomization_factor: f64,
    pub(crate) retry_initial_connect: bool,
    pub(crate) send_buffer: usize,
    pub(crate) max_send_queue: usize,
    pub(crate) retries: Option<u32>,
    pub(crate) ack_timeout: Duration,
}

impl Config {
    fn new(url: &str) -> Config {
        Config {
            url: url.to_string(),
            path: "/socket.io/".to_string(),
            query: Vec::new(),
            headers: Vec::new(),
            query_fn: None,
            headers_fn: None,
            transports: vec![
                Transport::WebSocket,
                Transport::Streaming,
                Transport::Polling,
            ],
            upgrade: true,
            timeout: Duration::from_secs(20),
            upgrade_timeout: Duration::from_secs(10),
            probe_timeout: Duration::from_secs(5),
            head_start: Duration::from_millis(300),
            remember_transport: true,
            version: EngineVersion::V4,
            max_receive: 100 * 1024 * 1024,
            max_attachments: 1000,
            event_buffer: 4096,
            event_overflow: EventOverflow::Backpressure,
            tls: TlsOptions::default(),
            proxy: ProxySetting::default(),
            resolve: Vec::new(),
            reconnection: true,
            reconnection_attempts: None,
            reconnection_delay: Duration::from_secs(1),
            reconnection_delay_max: Duration::from_secs(5),
            randomization_factor: 0.5,
            retry_initial_connect: false,
            send_buffer: 10_000,
            max_send_queue: 64 * 1024 * 1024,
            retries: None,
            ack_timeout: Duration::from_secs(10),
        }
    }
}

/// The options every namespace has, on both builders: its auth and its handlers. One
/// definition for [`ClientBuilder`] and [`SocketBuilder`](crate::SocketBuilder), which both have
/// `auth: Result<AuthSource, String>` and `handlers: Handlers` fields.
macro_rules! namespace_options {
    () => {
        /// The auth payload sent with the namespace CONNECT (socket.io 3+), or as query parameters
        /// to socket.io 2 servers.
        pub fn auth<T: serde::Serialize>(mut self, auth: T) -> Self {
            self.auth = serde_json::to_value(auth)
                .map(crate::config::AuthSource::Fixed)
                .map_err(|e| e.to_string());
            self
        }

        /// Computes the auth payload at every connect and reconnect (a token refreshed while the
        /// connection was down is the one sent).
        pub fn auth_fn<F>(mut self, auth: F) -> Self
        where
            F: Fn() -> serde_json::Value + Send + Sync + 'static,
        {
            self.auth = Ok(crate::config::AuthSource::Dynamic(std::sync::Arc::new(
                auth,
            )));
            self
        }

        /// Computes the auth payload asynchronously at every connect and reconnect (a token
        /// fetched over HTTP without blocking a runtime thread; the JS client's `auth`
        /// callback). The CONNECT waits for it, within the connect `timeout`.
        ///
        /// ```no_run
        /// # async fn fetch_token() -> String { String::new() }
        /// # async fn run() -> Result<(), sio_client::Error> {
        /// let client = sio_client::AsyncClient::builder("https://example.com")
        ///     .auth_async(|| async { serde_json::json!({ "token": fetch_token().await }) })
        ///     .connect_async()
        ///     .await?;
        /// # Ok(()) }
        /// ```
        pub fn auth_async<F, Fut>(mut self, auth: F) -> Self
        where
            F: Fn() -> Fut + Send + Sync + 'static,
            Fut: std::future::Future<Output = serde_json::Value> + Send + 'static,
        {
            self.auth = Ok(crate::config::AuthSource::Async(std::sync::Arc::new(
                move || Box::pin(auth()),
            )));
            self
        }

        /// Adds a listener for every `event` the server emits on this namespace; an event may
        /// have several, called in the order they were added (the JS client's `socket.on`).
        /// Listeners run off the connection's task, in order, one event at a time: a slow one
        /// delays later events but never heartbeats. Events with a listener of their own do
        /// not appear in `events()`. Listeners can also be added to a connected client.
        pub fn on<F>(mut self, event: impl Into<String>, handler: F) -> Self
        where
            F: Fn(crate::Args, Option<crate::AckSender>) + Send + Sync + 'static,
        {
            let listener = crate::listeners::Listener::Plain(std::sync::Arc::new(handler));
            self.handlers.on(event.into(), listener, false);
            self
        }

        /// Adds a listener that receives the arguments read into `T`: a lone argument as
        /// itself (a struct, say), several as a tuple; `Bytes` fields receive binary
        /// attachments. Arguments that do not fit reach `events()` as an
        /// [`Event::Error`](crate::Event::Error) with an [`Error::Deserialize`](crate::Error)
        /// naming the event and the argument.
        ///
        /// ```no_run
        /// # fn main() -> Result<(), sio_client::Error> {
        /// #[derive(serde::Deserialize)]
        /// struct Chat { user: String, text: String }
        /// let client = sio_client::Client::builder("http://localhost:3000")
        ///     .on_typed("chat", |chat: Chat, _ack| println!("{}: {}", chat.user, chat.text))
        ///     .connect()?;
        /// # Ok(()) }
        /// ```
        pub fn on_typed<T, F>(mut self, event: impl Into<String>, handler: F) -> Self
        where
            T: serde::de::DeserializeOwned + 'static,
            F: Fn(T, Option<crate::AckSender>) + Send + Sync + 'static,
        {
            let event = event.into();
            let listener =
                crate::listeners::Listener::Typed(crate::listeners::typed(&event, handler));
            self.handlers.on(event, listener, false);
            self
        }

        /// Adds a listener called for the next `event` only (the JS client's `socket.once`).
        pub fn once<F>(mut self, event: impl Into<String>, handler: F) -> Self
        where
            F: Fn(crate::Args, Option<crate::AckSender>) + Send + Sync + 'static,
        {
            let listener = crate::listeners::Listener::Plain(std::sync::Arc::new(handler));
            self.handlers.on(event.into(), listener, true);
            self
        }

        /// Adds a listener for every incoming event, with its name, called before the event's
        /// own listeners (the JS client's `socket.onAny`). Events it sees still go to
        /// `events()` when they have no listener of their own.
        pub fn on_any<F>(mut self, handler: F) -> Self
        where
            F: Fn(&str, crate::Args, Option<crate::AckSender>) + Send + Sync + 'static,
        {
            self.handlers.on_any(std::sync::Arc::new(handler), false);
            self
        }

        /// Like [`on_any`](Self::on_any), called before the `on_any` listeners added so far
        /// (the JS client's `socket.prependAny`).
        pub fn prepend_any<F>(mut self, handler: F) -> Self
        where
            F: Fn(&str, crate::Args, Option<crate::AckSender>) + Send + Sync + 'static,
        {
            self.handlers.on_any(std::sync::Arc::new(handler), true);
            self
        }

        /// Adds a listener for every emit of this socket, called with the event and its
        /// arguments as it is emitted (the JS client's `socket.onAnyOutgoing`).
        pub fn on_any_outgoing<F>(mut self, handler: F) -> Self
        where
            F: Fn(&str, &crate::Args) + Send + Sync + 'static,
        {
            self.handlers.on_any_outgoing(std::sync::Arc::new(handler));
            self
        }
    };
}
pub(crate) use namespace_options;

/// Builds a [`Client`](crate::Client) or an [`AsyncClient`](crate::AsyncClient).
///
/// ```no_run
/// # fn main() -> Result<(), sio_client::Error> {
/// use sio_client::Client;
/// let client = Client::builder("http://localhost:3000")
///     .auth(serde_json::json!({ "token": "abc" }))
///     .on("news", |args, _ack| println!("news: {:?}", args.values()))
///     .connect()?;
/// client.emit("hello", "world")?;
/// # Ok(()) }
/// ```
pub struct ClientBuilder {
    pub(crate) config: Config,
    pub(crate) namespace: String,
    pub(crate) auth: Result<AuthSource, String>,
    pub(crate) handlers: Handlers,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Auth values and headers are secrets: never print them.
        f.debug_struct("ClientBuilder")
            .field("url", &self.config.url)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    namespace_options!();

    /// A builder for `url` (`http`, `https`, `ws` or `wss`). The namespace is `/` unless set.
    pub fn new(url: impl Into<String>) -> ClientBuilder {
        let url = url.into();
        ClientBuilder {
            config: Config::new(&url),
            namespace: "/".to_string(),
            auth: Ok(AuthSource::None),
            handlers: Handlers::default(),
        }
    }

    /// The namespace to connect (default: the URL's path, as in the JS client, or `/`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Whether a lost connection is re-established by itself (default on, as in the JS
    /// client). Never after the server or the application disconnected on purpose.
    pub fn reconnection(mut self, on: bool) -> Self {
        self.config.reconnection = on;
        self
    }

    /// How many reconnection attempts before giving up with `Event::ReconnectFailed` (default
    /// unlimited).
    pub fn reconnection_attempts(mut self, attempts: u32) -> Self {
        self.config.reconnection_attempts = Some(attempts);
        self
    }

    /// The first reconnection delay, doubled at each attempt (default 1 s).
    pub fn reconnection_delay(mut self, delay: Duration) -> Self {
        self.config.reconnection_delay = delay;
        self
    }

    /// The longest reconnection delay (default 5 s).
    pub fn reconnection_delay_max(mut self, delay: Duration) -> Self {
        self.config.reconnection_delay_max = delay;
        self
    }

    /// Random deviation of each delay, 0 to 1 (default 0.5).
    pub fn randomization_factor(mut self, factor: f64) -> Self {
        self.config.randomization_factor = factor;
        self
    }

    /// Whether a failing first connect is retried like a reconnection instead of failing
    /// `connect()` at once (default off). `connect()` then returns when connected, with
    /// [`Error::ConnectTimeout`] once [`timeout`](Self::timeout) has passed (it bounds
    /// `connect()` always), or with the last error when the attempts run out.
    pub fn retry_initial_connect(mut self, retry: bool) -> Self {
        self.config.retry_initial_connect = retry;
        self
    }

    /// At-least-once delivery, as the JS client's `retries`: every emit of a socket goes through
    /// a queue, one packet in flight at a time, each asking the server for an acknowledgement;
    /// an attempt not acknowledged within its timeout ([`ack_timeout`](Self::ack_timeout), or
    /// the one given to `emit_with_ack`) is sent again, up to `retries` more times, and is
    /// resent after a reconnection. Then the caller gets the ack, or the error. The server may
    /// see an emit more than once. Off by default.
    pub fn retries(mut self, retries: u32) -> Self {
        self.config.retries = Some(retries);
        self
    }

    /// How long each attempt of a queued emit waits for its acknowledgement when the emit
    /// itself gives no timeout (with [`retries`](Self::retries); default 10 s).
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.config.ack_timeout = timeout;
        self
    }

    /// How many emits are kept while disconnected, sent in order after the reconnection
    /// (default 10 000). Past it, `emit` fails with [`Error::SendBufferFull`].
    pub fn send_buffer(mut self, packets: usize) -> Self {
        self.config.send_buffer = packets;
        self
    }

    /// Most bytes of emits waiting to be written (default 64 MiB): queued for a connected
    /// server, kept for after a reconnection, or waiting for their acknowledgement with
    /// [`retries`](Self::retries). A server that reads more slowly than the application emits,
    /// or a long outage, fills it; an emit then fails at the call site with
    /// [`Error::SendQueueFull`] (and `emit_volatile` drops) instead of memory growing.
    pub fn max_send_queue(mut self, bytes: usize) -> Self {
        self.config.max_send_queue = bytes;
        self
    }

    /// Adds a query parameter to every request.
    pub fn query(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.query.push((key.into(), value.into()));
        self
    }

    /// Adds a header to every HTTP request and to the WebSocket upgrade (`extraHeaders`).
    pub fn extra_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.headers.push((name.into(), value.into()));
        self
    }

    /// Computes headers at every connect and reconnect, added after the fixed
    /// [`extra_header`](Self::extra_header)s: a bearer token refreshed while the connection
    /// was down is the one the next handshake carries (as changing `extraHeaders` in the JS
    /// client's `reconnect_attempt`, or python-socketio's callable `headers`). An invalid
    /// header fails that connect with [`Error::InvalidHeader`].
    ///
    /// ```no_run
    /// # use sio_client::Client;
    /// fn current_token() -> String { "t0k3n".into() }
    /// let client = Client::builder("https://example.com")
    ///     .headers_fn(|| vec![("Authorization".into(), format!("Bearer {}", current_token()))])
    ///     .connect();
    /// ```
    pub fn headers_fn<F>(mut self, headers: F) -> Self
    where
        F: Fn() -> Vec<(String, String)> + Send + Sync + 'static,
    {
        self.config.headers_fn = Some(PairsFn(Arc::new(headers)));
        self
    }

    /// Computes query parameters at every connect and reconnect, added after the fixed
    /// [`query`](Self::query) ones (python-socketio's callable `url`, the JS client's `query`
    /// changed before a reconnection).
    pub fn query_fn<F>(mut self, query: F) -> Self
    where
        F: Fn() -> Vec<(String, String)> + Send + Sync + 'static,
    {
        self.config.query_fn = Some(PairsFn(Arc::new(query)));
        self
    }

    /// The server's Engine.IO path (default `/socket.io/`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.config.path = path.into();
        self
    }

    /// Transports in order of preference (default WebSocket, streaming, polling). The first one
    /// to deliver the server's open packet carries the connection: a failing transport hands
    /// over at once, a hanging one after the [`head_start`](Self::head_start). An HTTP
    /// connection later upgrades to WebSocket when WebSocket is in the list and
    /// [`upgrade`](Self::upgrade) is on. `[Polling, WebSocket]` is the JS client's default:
    /// start on polling, then upgrade.
    pub fn transports(mut self, transports: impl IntoIterator<Item = Transport>) -> Self {
        self.config.transports = transports.into_iter().collect();
        self
    }

    /// Whether a polling connection tries to upgrade to WebSocket (default on).
    pub fn upgrade(mut self, upgrade: bool) -> Self {
        self.config.upgrade = upgrade;
        self
    }

    /// How long a transport may hang before the next one is started beside it (default 300 ms).
    pub fn head_start(mut self, head_start: Duration) -> Self {
        self.config.head_start = head_start;
        self
    }

    /// How long a transport that answered may take to deliver the open packet before it counts
    /// as blocked by a middlebox (default 5 s).
    pub fn probe_timeout(mut self, timeout: Duration) -> Self {
        self.config.probe_timeout = timeout;
        self
    }

    /// Whether the transport that worked for a host is tried first next time, for 10 minutes
    /// (default on; in-process only).
    pub fn remember_transport(mut self, remember: bool) -> Self {
        self.config.remember_transport = remember;
        self
    }

    /// How long `connect` may take (default 20 s, as the JS client's `timeout`).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = timeout;
        self
    }

    /// The Engine.IO protocol version: `V4` for socket.io 3.x/4.x servers (default), `V3` for
    /// socket.io 2.x servers, `Auto` for either.
    ///
    /// With `V4`, a socket.io 2 server is refused at once with
    /// [`ProtocolError::Socketio2Server`](crate::proto::ProtocolError::Socketio2Server), as the
    /// JS client refuses it, rather than half-connected. With `Auto` the client starts with v4
    /// and, when the server turns out to be socket.io 2 (a v3 polling handshake, or a CONNECT
    /// reply without a session id), closes that session and opens it again with v3; later
    /// reconnections use v3 directly. Against a socket.io 3/4 server `Auto` costs nothing.
    ///
    /// `V4` stays the default, as in the JS client, because `Auto` against a socket.io 2 server
    /// has effects the application should opt into: the first, v4 session joins the server's
    /// `/` namespace before it is closed (the server sees a connection come and go), and with v3
    /// the auth of the main namespace travels in the handshake URL's query instead of a packet.
    pub fn protocol_version(mut self, version: EngineVersion) -> Self {
        self.config.version = version;
        self
    }

    /// Sends every request (polling, streaming and WebSocket) through this proxy instead of the
    /// environment's. Schemes: `http://` (WebSocket through a `CONNECT` tunnel), `https://`
    /// (the same inside TLS to the proxy, verified like the server), `socks5://` (names
    /// resolved here) and `socks5h://` (names resolved by the proxy, as for Tor or an SSH
    /// tunnel). A URL without a scheme is `http://`. Credentials go in the URL,
    /// percent-encoded: `socks5h://user:p%40ss@127.0.0.1:1080`.
    ///
    /// Without it, `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` and `NO_PROXY` (names, domains,
    /// IP addresses and CIDR ranges) are read as curl reads them, never for loopback targets.
    pub fn proxy(mut self, url: impl Into<String>) -> Self {
        self.config.proxy = ProxySetting::Explicit(url.into());
        self
    }

    /// Connects to these addresses for `host` instead of asking DNS, on every transport (curl's
    /// `--resolve`, reqwest's `resolve_to_addrs`): a staging server under its production
    /// name, or a name the resolver does not know. The port stays the URL's. Several addresses
    /// are raced as resolved ones are (Happy Eyeballs, in the given order). Through an HTTP,
    /// HTTPS or `socks5h://` proxy the proxy resolves the server's name and this does not
    /// apply. Repeated calls add addresses.
    pub fn resolve(
        mut self,
        host: impl Into<String>,
        addrs: impl IntoIterator<Item = std::net::IpAddr>,
    ) -> Self {
        self.config
            .resolve
            .push((host.into(), addrs.into_iter().collect()));
        self
    }

    /// Ignores proxies, the environment's included.
    pub fn no_proxy(mut self) -> Self {
        self.config.proxy = ProxySetting::Disabled;
        self
    }

    /// Trusts the CA certificate(s) in this PEM text, besides the built-in and system roots
    /// (the JS client's `ca`).
    pub fn add_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.config.tls.extra_roots.push(pem.into());
        self
    }

    /// Whether to trust the operating system's certificate store: on by default with the
    /// default feature `native-roots` (an enterprise CA installed on the machine then works).
    /// When `SSL_CERT_FILE` or `SSL_CERT_DIR` is set, the certificates there are read instead
    /// of the system store. `false` narrows trust to the bundled roots and
    /// [`add_root_certificate`](Self::add_root_certificate); `true` without the feature makes
    /// connecting report a clear error.
    pub fn tls_native_roots(mut self, native: bool) -> Self {
        self.config.tls.native_roots = native;
        self
    }

    /// Whether to trust the root certificates bundled with the crate (Mozilla's list, from
    /// webpki-roots; on by default). With `tls_builtin_roots(false)` and
    /// `tls_native_roots(false)` only the CAs of
    /// [`add_root_certificate`](Self::add_root_certificate) are trusted: a private CA pinned.
    pub fn tls_builtin_roots(mut self, builtin: bool) -> Self {
        self.config.tls.builtin_roots = builtin;
        self
    }

    /// Presents this client certificate when a server (or an `https://` proxy) asks for one:
    /// mutual TLS. `chain_pem` holds the certificate, then any intermediates; `key_pem` its
    /// private key (PKCS#8, PKCS#1 or SEC1). The JS client's `cert` and `key`. Used on every
    /// transport; a bad certificate or key is reported when connecting. Replaces an identity
    /// set before (with this or `tls_client_pkcs12`).
    pub fn tls_client_certificate(
        mut self,
        chain_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.config.tls.client_identity = Some(crate::transport::net::ClientIdentity::Pem {
            chain: chain_pem.into(),
            key: key_pem.into(),
        });
        self
    }

    /// Presents the client identity in this PKCS#12 archive (DER, `.p12`/`.pfx`) with its
    /// password, like [`tls_client_certificate`](Self::tls_client_certificate): the JS
    /// client's `pfx` and `passphrase`. The archive's first private key is used, with its
    /// certificate and the issuers the archive holds as the chain; on every transport and to
    /// an `https://` proxy that asks for a certificate. The archive is read in pure Rust
    /// (p12-keystore): PBES2 (AES, what current OpenSSL and Windows write) and the legacy
    /// 3DES and RC2 encryptions. A wrong password or an archive without a private key and its
    /// certificate is reported when connecting, before anything is dialled. Replaces an
    /// identity set before (with this or `tls_client_certificate`).
    #[cfg(feature = "pkcs12")]
    #[cfg_attr(docsrs, doc(cfg(feature = "pkcs12")))]
    pub fn tls_client_pkcs12(
        mut self,
        der: impl Into<Vec<u8>>,
        password: impl Into<String>,
    ) -> Self {
        self.config.tls.client_identity = Some(crate::transport::net::ClientIdentity::Pkcs12 {
            der: der.into(),
            password: password.into(),
        });
        self
    }

    /// Accepts any server certificate, expired, self-signed or for another name. For
    /// development against local servers only: it removes TLS's protection.
    pub fn danger_accept_invalid_certs(mut self, accept: bool) -> Self {
        self.config.tls.accept_invalid_certs = accept;
        self
    }

    /// Largest message accepted from the server, in bytes (default 100 MiB).
    pub fn max_receive(mut self, bytes: usize) -> Self {
        self.config.max_receive = bytes;
        self
    }

    /// How many events a socket holds for the application (its `events()` readers, or its
    /// handlers) before the client stops reading from the server (default 4096; also at most
    /// [`max_receive`](Self::max_receive) / 2 bytes of messages, as they weighed on the wire).
    ///
    /// Nothing is dropped: while the queue is full the client takes nothing more from the
    /// transport (WebSocket: the socket is not read; polling and streaming: no new GET, the
    /// response body is not read), so TCP flow control slows the server down, and reading
    /// resumes as soon as the application has caught up. Memory stays bounded by this queue
    /// plus one transport read. Heartbeats still work while the application is merely slow,
    /// but one that stops reading for longer than the server's pingInterval + pingTimeout is
    /// disconnected by the server (a `Disconnected` event, then reconnection as usual).
    ///
    /// A socket with handlers ([`on`](Self::on), [`on_any`](Self::on_any)) that never calls
    /// `events()` is not held back by it: until the first `events()` call, that queue (which
    /// only carries what no handler takes, and state changes) drops its oldest entries when
    /// full, counted by `dropped_events()` and announced by [`Event::Lagged`](crate::Event::Lagged).
    pub fn event_buffer(mut self, events: usize) -> Self {
        self.config.event_buffer = events.max(1);
        self
    }

    /// What happens when the application reads events more slowly than the server sends them:
    /// [`EventOverflow::Backpressure`] (the default; see [`event_buffer`](Self::event_buffer))
    /// or [`EventOverflow::DropOldest`] for streams where only the latest values matter (every
    /// drop counted by `dropped_events()` and announced by [`Event::Lagged`](crate::Event::Lagged)).
    pub fn event_overflow(mut self, overflow: EventOverflow) -> Self {
        self.config.event_overflow = overflow;
        self
    }

    pub(crate) fn take_auth(&mut self) -> Result<AuthSource, Error> {
        std::mem::replace(&mut self.auth, Ok(AuthSource::None)).map_err(Error::Serialize)
    }
}

/// Checks a namespace name at the call site.
pub(crate) fn check_namespace(namespace: &str) -> Result<(), Error> {
    if namespace.starts_with('/') && !namespace.contains(',') {
        Ok(())
    } else {
        Err(Error::InvalidNamespace(namespace.to_string()))
    }
}
