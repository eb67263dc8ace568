//! The connection driver: one tokio task per client connection, the only place where the
//! sans-IO protocol core meets IO. A `select!` over application commands, transport input, the
//! upgrade probe and the next deadline (heartbeat, acks, connects, reconnection). Application
//! callbacks never run here (events leave through channels), so a slow handler cannot delay a
//! pong.
//!
//! The driver outlives the Engine.IO sessions it carries: a session and its transport form a
//! [`Link`], replaced after an outage, while the sockets (namespaces), their pending acks and
//! the emits buffered during the outage stay. A namespace waiting for a link is `Waiting`; when
//! a link opens every waiting namespace sends its CONNECT (with its auth evaluated then, and the
//! session id and offset of connection-state recovery).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use crate::config::{AuthSource, Config};
use crate::event::{AckSender, DisconnectReason, Event};
use crate::event_queue::{EventQueue, EventSink};
use crate::proto::backoff::Backoff;
use crate::proto::engineio::{
    detect, CloseReason, Data, EngineVersion, Packet as EnginePacket, ProbeState, Session,
    SessionEvent, UpgradeProbe,
};
use crate::proto::socketio::{self as sio, PacketType};
use crate::proto::ProtocolError;
use crate::transport::connect::{self, Attempt};
use crate::transport::net::Net;
use crate::transport::polling::HttpSettings;
use crate::transport::url::Endpoint;
use crate::transport::websocket::WebSocketTransport;
use crate::transport::{Active, Held, Outgoing, Transport};
use crate::{Args, Error};

/// What the handles ask of the driver.
pub(crate) enum Command {
    /// Join a namespace.
    Connect {
        namespace: Arc<str>,
        auth: AuthSource,
        events: EventSink,
        status: Arc<SocketStatus>,
        deadline: Option<Instant>,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    /// Emit an event, optionally waiting for its acknowledgement.
    Emit {
        namespace: Arc<str>,
        event: String,
        args: Args,
        ack: Option<AckRequest>,
        /// Dropped instead of buffered while disconnected.
        volatile: bool,
        /// Its estimated size, counted in `Shared::outgoing` until the driver takes it.
        weight: usize,
    },
    /// Answer the server's acknowledgement request.
    Ack {
        namespace: Arc<str>,
        id: u64,
        args: Args,
    },
    /// Leave a namespace (the connection closes with the last one).
    Disconnect { namespace: Arc<str> },
}

/// The caller waiting for an acknowledgement.
pub(crate) struct AckRequest {
    pub(crate) reply: oneshot::Sender<Result<Args, Error>>,
    pub(crate) timeout: Duration,
}

/// What the handles of one namespace can see of it.
#[derive(Default)]
pub(crate) struct SocketStatus {
    pub(crate) connected: AtomicBool,
    /// The socket is gone for good: emits fail at the call site.
    pub(crate) closed: AtomicBool,
    pub(crate) recovered: AtomicBool,
    /// Emits waiting for a connection.
    pub(crate) buffered: AtomicUsize,
}

/// `now + d`, or far in the future when that does not fit: a caller's `Duration::MAX` means
/// "never", not a panic.
pub(crate) fn deadline_after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(1 << 30)))
        .unwrap_or(now)
}

/// What every handle can see of the connection.
#[derive(Default)]
pub(crate) struct Shared {
    transport: Mutex<Option<Transport>>,
    /// Bytes the current transport still has to write.
    pub(crate) outgoing: Outgoing,
    attempts: Mutex<Vec<Attempt>>,
    closed: AtomicBool,
}

impl Shared {
    pub(crate) fn transport(&self) -> Option<Transport> {
        *self.transport.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_transport(&self, transport: Transport) {
        *self.transport.lock().unwrap_or_else(|e| e.into_inner()) = Some(transport);
    }

    pub(crate) fn attempts(&self) -> Vec<Attempt> {
        self.attempts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// Starts a client's driver on `runtime`. The first namespace to join is already queued in
/// `commands`.
pub(crate) fn spawn(
    runtime: &tokio::runtime::Handle,
    config: Arc<Config>,
    commands: mpsc::UnboundedReceiver<Command>,
    weak: mpsc::WeakUnboundedSender<Command>,
    shared: Arc<Shared>,
    handshake_auth: AuthSource,
    net: Arc<Net>,
) {
    let span = tracing::debug_span!("sio_connection", url = %config.url);
    let backoff = Backoff::new(
        config.reconnection_delay,
        config.reconnection_delay_max,
        config.randomization_factor,
    );
    let driver = Driver {
        version: config.version.wire(),
        detect_version: config.version == EngineVersion::Auto,
        config,
        shared,
        weak,
        net,
        handshake_auth,
        sockets: HashMap::new(),
        ack_deadlines: BinaryHeap::new(),
        link: None,
        closing: Vec::new(),
        done: None,
        backoff,
        reconnect_at: None,
        ever_connected: false,
        last_error: None,
    };
    runtime.spawn(driver.run(commands).instrument(span));
}
/// Answers every queued command of a connection that is gone.
fn refuse_pending(commands: &mut mpsc::UnboundedReceiver<Command>, error: &Error) {
    commands.close();
    while let Ok(command) = commands.try_recv() {
        match command {
            Command::Connect { reply, .. } => {
                let _ = reply.send(Err(error.clone()));
            }
            Command::Emit { ack: Some(ack), .. } => {
                let _ = ack.reply.send(Err(error.clone()));
            }
            _ => {}
        }
    }
}

/// Whether `error` says the server speaks socket.io 2 to a client set to v4.
fn is_socketio2_server(error: &Error) -> bool {
    matches!(error, Error::Protocol(e) if detect::is_socketio2_server(e))
}

/// A JSON value as a query-string value (strings unquoted).
fn query_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Where a namespace stands.
enum Phase {
    /// No link, or a link not yet asked: CONNECT goes out when one opens.
    Waiting {
        reply: Option<oneshot::Sender<Result<(), Error>>>,
        deadline: Option<Instant>,
    },
    /// CONNECT sent on the current link.
    Connecting {
        reply: Option<oneshot::Sender<Result<(), Error>>>,
        deadline: Option<Instant>,
        /// The reconnection attempt this is, when it is one.
        attempt: Option<u32>,
    },
    Connected,
}

struct SocketState {
    phase: Phase,
    auth: AuthSource,
    events: EventSink,
    status: Arc<SocketStatus>,
    next_id: u64,
    pending: HashMap<u64, PendingAck>,
    /// Emits made while not connected, sent in order once connected.
    /// Each with its bytes, counted against `max_send_queue` until it goes out.
    buffer: Vec<(sio::Packet, Held)>,
    /// Connection-state recovery: the server's private session id and the last offset seen.
    pid: Option<String>,
    offset: Option<String>,
    /// At-least-once emits (with `retries`), the head in flight as `inflight`.
    queue: VecDeque<Queued>,
    /// Ack id and deadline of the queue head's attempt on the wire.
    inflight: Option<(u64, Instant)>,
}

/// An emit delivered at least once: resent until acknowledged or out of tries.
struct Queued {
    event: String,
    values: Vec<Value>,
    attachments: Vec<bytes::Bytes>,
    reply: Option<oneshot::Sender<Result<Args, Error>>>,
    timeout: Duration,
    tries: u32,
    /// Its bytes, counted against `max_send_queue` until it is acknowledged or fails.
    _held: Held,
}

impl SocketState {
    fn emit(&self, event: Event) {
        self.events.send(event);
    }

    /// Everything this socket still owes its callers fails with `error` (the socket is gone).
    fn fail_waiting(&mut self, error: &Error) {
        for (_, ack) in self.pending.drain() {
            let _ = ack.reply.send(Err(error.clone()));
        }
        for queued in self.queue.drain(..) {
            if let Some(reply) = queued.reply {
                let _ = reply.send(Err(error.clone()));
            }
        }
        self.inflight = None;
    }
}

struct PendingAck {
    reply: oneshot::Sender<Result<Args, Error>>,
    timeout: Duration,
    /// Whether the packet went out on a link (only those fail when the link is lost).
    sent: bool,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

enum Upgrade {
    Connecting(BoxFuture<Result<WebSocketTransport, Error>>),
    Probing {
        ws: WebSocketTransport,
        probe: UpgradeProbe,
    },
}

enum UpgradeStep {
    Connected(Result<WebSocketTransport, Error>),
    Frame(Result<Option<crate::proto::engineio::Frame>, Error>),
}

async fn upgrade_step(upgrade: &mut Option<Upgrade>) -> UpgradeStep {
    match upgrade {
        None => std::future::pending().await,
        Some(Upgrade::Connecting(fut)) => UpgradeStep::Connected(fut.await),
        Some(Upgrade::Probing { ws, .. }) => UpgradeStep::Frame(ws.recv().await),
    }
}

/// One Engine.IO session and the transport carrying it.
struct Link {
    session: Session,
    transport: Active,
    decoder: sio::Decoder,
    upgrade: Option<Upgrade>,
    /// Packets that must precede the session's own on the next flush (after an upgrade).
    preface: Vec<EnginePacket>,
    settings: HttpSettings,
}

/// Most commands, or incoming frames, handled in one turn of the loop before it flushes.
const BATCH: usize = 64;

/// What happened on the link: its transport delivered, or its upgrade probe moved.
enum LinkEvent {
    Incoming(Result<Option<Vec<EnginePacket>>, Error>),
    Upgrade(UpgradeStep),
}

/// The link's next event. With `read` false (an application queue is full) nothing new is
/// taken from the server, but sending and the upgrade probe go on.
async fn link_next(link: &mut Option<Link>, read: bool) -> LinkEvent {
    let Some(link) = link else {
        return std::future::pending().await;
    };
    tokio::select! {
        incoming = link.transport.recv(read) => LinkEvent::Incoming(incoming),
        step = upgrade_step(&mut link.upgrade) => LinkEvent::Upgrade(step),
    }
}

struct Driver {
    config: Arc<Config>,
    shared: Arc<Shared>,
    weak: mpsc::WeakUnboundedSender<Command>,
    net: Arc<Net>,
    /// The Engine.IO revision of the current (or next) link: never `Auto`.
    version: EngineVersion,
    /// `EngineVersion::Auto`: a socket.io 2 server seen on a v4 link makes the driver switch
    /// `version` to v3 and open the link again, and every later link starts with v3.
    detect_version: bool,
    /// The main namespace's auth: socket.io 2 servers take it in the handshake query.
    handshake_auth: AuthSource,
    sockets: HashMap<Arc<str>, SocketState>,
    /// Ack deadlines, lazily cleaned: an entry whose ack was answered is skipped when popped.
    ack_deadlines: BinaryHeap<Reverse<(Instant, Arc<str>, u64)>>,
    link: Option<Link>,
    /// Transports of lost links, closed politely from the loop.
    closing: Vec<Active>,
    done: Option<DisconnectReason>,
    backoff: Backoff,
    /// When the next link is opened, while reconnecting.
    reconnect_at: Option<Instant>,
    ever_connected: bool,
    last_error: Option<Error>,
}

impl Driver {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        // The first namespace's CONNECT is already queued.
        while let Ok(command) = commands.try_recv() {
            self.on_command(command);
        }
        // One timer for the driver's whole life, moved only when the next deadline changes: a
        // fresh `sleep_until` on every turn of the loop is a timer-wheel insert and removal per
        // packet.
        let sleep = tokio::time::sleep(Duration::from_secs(3600));
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
        loop {
            if self.done.is_some() {
                break;
            }
            for transport in self.closing.drain(..) {
                transport.close().await;
            }
            if self.link.is_none() && self.reconnect_at.is_none() {
                self.open_link(&mut commands).await;
                continue;
            }
            self.flush();
            let deadline = self.next_deadline();
            if deadline != armed {
                if let Some(at) = deadline {
                    sleep.as_mut().reset(at.into());
                }
                armed = deadline;
            }
            // Back-pressure: while a socket's queue is full, nothing more is read from the
            // server until its application has made room.
            let full = self.full_queue();
            let read = full.is_none();
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => {
                        self.on_command(command);
                        // Commands already queued go out in the same write (one flush).
                        for _ in 0..BATCH {
                            if self.done.is_some() {
                                break;
                            }
                            let Ok(command) = commands.try_recv() else { break };
                            self.on_command(command);
                        }
                    }
                    None => self.disconnect_all(),
                },
                event = link_next(&mut self.link, read) => {
                    self.on_link_event(event);
                    // Frames already read are handled before the next flush, so what they
                    // trigger (acks, pongs) shares one write as well.
                    for _ in 0..BATCH {
                        if self.done.is_some() || self.link.is_none() {
                            break;
                        }
                        let read = self.full_queue().is_none();
                        let Some(event) = link_next(&mut self.link, read).now_or_never() else {
                            break;
                        };
                        self.on_link_event(event);
                    }
                }
                () = async { if let Some(queue) = &full { queue.room().await } }, if !read => {}
                () = &mut sleep, if armed.is_some() => {
                    armed = None;
                    self.on_timeout(Instant::now());
                }
            }
        }
        self.shared.closed.store(true, Ordering::Release);
        for socket in self.sockets.values() {
            socket.status.closed.store(true, Ordering::Release);
        }
        let error = self
            .last_error
            .take()
            .unwrap_or_else(|| Error::Disconnected("connection closed".into()));
        refuse_pending(&mut commands, &error);
        // What was queued last (the DISCONNECTs of a client leaving) goes out before the
        // transport closes, so the server hears the client's reason, not a network failure.
        self.flush();
        if let Some(link) = self.link.take() {
            link.transport.close().await;
        }
        for transport in self.closing.drain(..) {
            transport.close().await;
        }
    }

    /// Before the heartbeat is called dead, takes what the transport already holds: a driver
    /// that was busy (a batch of large emits, a slow machine) must not miss a ping that is
    /// waiting in its socket. Nothing is read while an application queue is full.
    fn read_before_heartbeat_verdict(&mut self, now: Instant) {
        for _ in 0..BATCH {
            let expired = self
                .link
                .as_ref()
                .and_then(|l| l.session.poll_timeout())
                .is_some_and(|at| at <= now);
            if !expired || self.done.is_some() || self.full_queue().is_some() {
                return;
            }
            let Some(event) = link_next(&mut self.link, true).now_or_never() else {
                return;
            };
            self.on_link_event(event);
        }
    }

    /// The queue of the first socket whose application has fallen a whole queue behind.
    fn full_queue(&self) -> Option<Arc<EventQueue>> {
        self.sockets
            .values()
            .find(|socket| !socket.events.has_room())
            .map(|socket| socket.events.0.clone())
    }

    fn on_link_event(&mut self, event: LinkEvent) {
        match event {
            LinkEvent::Incoming(incoming) => {
                let now = Instant::now();
                match incoming {
                    Ok(Some(packets)) => self.feed(now, packets),
                    Ok(None) => self.link_lost(DisconnectReason::TransportClose, None),
                    Err(Error::Protocol(e)) => {
                        self.link_lost(DisconnectReason::ParseError, Some(Error::Protocol(e)))
                    }
                    Err(error) => self.link_lost(DisconnectReason::TransportError, Some(error)),
                }
                self.check_upgrade_ready();
            }
            LinkEvent::Upgrade(step) => self.on_upgrade_step(step),
        }
    }

    /// Opens a new Engine.IO session (first connect or reconnection) and joins every waiting
    /// namespace on it.
    async fn open_link(&mut self, commands: &mut mpsc::UnboundedReceiver<Command>) {
        let attempt = self.backoff.attempts();
        // socket.io 2 servers take the main namespace's auth from the handshake query. Only
        // then is the auth evaluated here (a callback runs once per connect).
        let handshake_auth = match self.version {
            EngineVersion::V3 => self.handshake_auth.value(),
            _ => None,
        };
        let (config, net, version) = (self.config.clone(), self.net.clone(), self.version);
        let opened = async move {
            let mut query = config.query.clone();
            if let Some(Value::Object(auth)) = handshake_auth {
                query.extend(auth.iter().map(|(k, v)| (k.clone(), query_value(v))));
            }
            let endpoint = Arc::new(Endpoint::new(&config.url, &config.path, &query, version)?);
            let settings = connect::http_settings(&config, endpoint, net)?;
            let opened = tokio::time::timeout(config.timeout, connect::open(&config, &settings))
                .await
                .map_err(|_| Error::ConnectTimeout(config.timeout))??;
            Ok::<_, Error>((settings, opened))
        };
        tokio::pin!(opened);
        // The application is served while the handshake runs: a `disconnect()` ends it at
        // once (the attempt is dropped) instead of when its timeout runs out.
        let opened = loop {
            tokio::select! {
                opened = &mut opened => break opened,
                command = commands.recv() => {
                    match command {
                        Some(command) => self.on_command(command),
                        None => self.disconnect_all(),
                    }
                    if self.done.is_some() {
                        return;
                    }
                }
            }
        };
        let (settings, opened) = match opened {
            Ok(pair) => pair,
            Err(error) => {
                let server_is_socketio2 = is_socketio2_server(&error);
                if server_is_socketio2 && self.switch_to_v3() {
                    return;
                }
                if self.detect_version && self.version == EngineVersion::V3 {
                    if let Error::Handshake { status, body, .. } = &error {
                        if detect::refuses_engineio3(*status, body) {
                            // The socket.io 2 server detected earlier became a 3/4 one: the
                            // next attempt, after the usual delay, speaks v4 again.
                            tracing::debug!("the server refuses EIO=3: back to EIO=4");
                            self.version = EngineVersion::V4;
                        }
                    }
                }
                tracing::warn!(%error, attempt, "connecting failed");
                // Retrying cannot help a client set to the wrong protocol version.
                if !self.ever_connected
                    && (!self.config.retry_initial_connect || server_is_socketio2)
                {
                    // A first connect that fails is the caller's error, at once.
                    for (_, socket) in self.sockets.drain() {
                        if let Phase::Waiting {
                            reply: Some(reply), ..
                        }
                        | Phase::Connecting {
                            reply: Some(reply), ..
                        } = socket.phase
                        {
                            let _ = reply.send(Err(error.clone()));
                        }
                    }
                    self.last_error = Some(error);
                    self.done = Some(DisconnectReason::TransportError);
                    return;
                }
                for socket in self.sockets.values() {
                    if matches!(socket.phase, Phase::Waiting { reply: None, .. }) {
                        socket.emit(Event::Error(Arc::new(error.clone())));
                    }
                }
                self.last_error = Some(error);
                self.schedule_reconnect();
                return;
            }
        };
        *self
            .shared
            .attempts
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = opened.attempts.clone();
        self.shared.set_transport(opened.transport.kind());
        let now = Instant::now();
        let ws_failed = opened
            .attempts
            .iter()
            .any(|a| a.transport == Transport::WebSocket && a.outcome.is_err());
        let can_upgrade = self.config.upgrade
            && !ws_failed
            && self.config.transports.contains(&Transport::WebSocket)
            && opened.handshake.upgrades.iter().any(|u| u == "websocket");
        let mut opened = opened;
        opened
            .transport
            .share_outgoing(self.shared.outgoing.clone());
        self.link = Some(Link {
            session: Session::new(self.version, opened.handshake, now),
            decoder: sio::Decoder::new(self.config.max_attachments)
                .with_max_bytes(self.config.max_receive),
            transport: opened.transport,
            upgrade: None,
            preface: Vec::new(),
            settings,
        });
        if can_upgrade
            && self
                .link
                .as_ref()
                .is_some_and(|l| l.transport.kind() != Transport::WebSocket)
        {
            self.start_upgrade();
        }
        // Commands that queued up while connecting go first (a socket.io 2 server's `40` can
        // come in the handshake response itself and must find its namespace waiting).
        while let Ok(command) = commands.try_recv() {
            self.on_command(command);
        }
        let reconnect_attempt = (attempt > 0).then_some(attempt);
        let names: Vec<Arc<str>> = self.sockets.keys().cloned().collect();
        for namespace in names {
            self.join(&namespace, reconnect_attempt);
        }
        self.feed(now, opened.initial);
    }

    /// With `EngineVersion::Auto`, a v4 link reached a socket.io 2 server: the link (if any) is
    /// closed politely, its namespaces wait again with their callers, and the next link, opened
    /// at once, speaks v3. `false` when that does not apply (not `Auto`, already v3, or a
    /// namespace already connected on the link, which a socket.io 2 server never allows).
    fn switch_to_v3(&mut self) -> bool {
        let connected = self
            .sockets
            .values()
            .any(|s| matches!(s.phase, Phase::Connected));
        if !self.detect_version || self.version == EngineVersion::V3 || connected {
            return false;
        }
        tracing::debug!("socket.io 2 server: opening the session again with EIO=3");
        self.version = EngineVersion::V3;
        if let Some(link) = self.link.take() {
            self.closing.push(link.transport);
            if let Some(Upgrade::Probing { ws, .. }) = link.upgrade {
                self.closing.push(Active::WebSocket(ws));
            }
        }
        for socket in self.sockets.values_mut() {
            socket.phase = match std::mem::replace(&mut socket.phase, Phase::Connected) {
                Phase::Connecting {
                    reply, deadline, ..
                } => Phase::Waiting { reply, deadline },
                other => other,
            };
        }
        true
    }

    /// Sends a waiting namespace's CONNECT on the current link.
    fn join(&mut self, namespace: &Arc<str>, attempt: Option<u32>) {
        let version = self.version;
        let Some(socket) = self.sockets.get_mut(namespace) else {
            return;
        };
        let Phase::Waiting { reply, deadline } =
            std::mem::replace(&mut socket.phase, Phase::Connected)
        else {
            return;
        };
        socket.phase = Phase::Connecting {
            reply,
            deadline,
            attempt,
        };
        let auth = socket.auth.value();
        let packet = match version {
            EngineVersion::V4 | EngineVersion::Auto => {
                // Connection-state recovery: the session id and last offset ride along.
                let data = match (&socket.pid, auth) {
                    (Some(pid), auth) => {
                        let mut map = match auth {
                            Some(Value::Object(map)) => map,
                            _ => serde_json::Map::new(),
                        };
                        map.insert("pid".into(), Value::String(pid.clone()));
                        if let Some(offset) = &socket.offset {
                            map.insert("offset".into(), Value::String(offset.clone()));
                        }
                        Some(Value::Object(map))
                    }
                    (None, auth) => auth,
                };
                Some(sio::Packet::connect(namespace, data))
            }
            // socket.io 2 servers join `/` by themselves; other namespaces carry their auth as
            // a query string in the namespace field.
            EngineVersion::V3 if &**namespace == "/" => None,
            EngineVersion::V3 => {
                let mut nsp = namespace.to_string();
                if let Some(Value::Object(auth)) = &auth {
                    let query: Vec<String> = auth
                        .iter()
                        .map(|(k, v)| {
                            url::form_urlencoded::Serializer::new(String::new())
                                .append_pair(k, &query_value(v))
                                .finish()
                        })
                        .collect();
                    if !query.is_empty() {
                        nsp = format!("{nsp}?{}", query.join("&"));
                    }
                }
                Some(sio::Packet::connect(&nsp, None))
            }
        };
        if let Some(packet) = packet {
            self.send_packet(packet);
        }
    }

    /// The link is gone: namespaces hear why, acks of packets that went out fail, and either
    /// a reconnection is scheduled or the driver stops.
    fn link_lost(&mut self, reason: DisconnectReason, error: Option<Error>) {
        let Some(link) = self.link.take() else {
            return;
        };
        self.closing.push(link.transport);
        if let Some(Upgrade::Probing { ws, .. }) = link.upgrade {
            self.closing.push(Active::WebSocket(ws));
        }
        match &error {
            Some(error) => tracing::warn!(%reason, %error, "connection lost"),
            None => tracing::debug!(%reason, "connection closed"),
        }
        let reconnect = self.config.reconnection
            && !matches!(
                reason,
                DisconnectReason::IoClientDisconnect | DisconnectReason::IoServerDisconnect
            );
        let gone = Error::Disconnected(reason.as_str().to_string());
        let retry_initial_connect =
            self.config.retry_initial_connect && !error.as_ref().is_some_and(is_socketio2_server);
        let error = error.map(Arc::new);
        let names: Vec<Arc<str>> = self.sockets.keys().cloned().collect();
        for namespace in names {
            let Some(mut socket) = self.sockets.remove(&namespace) else {
                continue;
            };
            let sent: Vec<u64> = socket
                .pending
                .iter()
                .filter(|(_, a)| a.sent)
                .map(|(id, _)| *id)
                .collect();
            for id in sent {
                if let Some(ack) = socket.pending.remove(&id) {
                    let _ = ack.reply.send(Err(gone.clone()));
                }
            }
            socket.status.connected.store(false, Ordering::Release);
            // The queue's head goes out again on the next link, its tries counted.
            socket.inflight = None;
            if !reconnect {
                // Before the application hears of it: an emit right after must fail.
                socket.status.closed.store(true, Ordering::Release);
            }
            let keep = match std::mem::replace(&mut socket.phase, Phase::Connected) {
                Phase::Connected => {
                    if let Some(error) = &error {
                        socket.emit(Event::Error(error.clone()));
                    }
                    socket.emit(Event::Disconnected {
                        namespace: namespace.to_string(),
                        reason: reason.clone(),
                    });
                    socket.phase = Phase::Waiting {
                        reply: None,
                        deadline: None,
                    };
                    reconnect
                }
                Phase::Waiting { reply, deadline }
                | Phase::Connecting {
                    reply, deadline, ..
                } => {
                    // A first connect still in progress keeps waiting only when the caller
                    // asked for retries.
                    let retry = reconnect && (reply.is_none() || retry_initial_connect);
                    if retry {
                        socket.phase = Phase::Waiting { reply, deadline };
                    } else if let Some(reply) = reply {
                        socket.status.closed.store(true, Ordering::Release);
                        let _ = reply.send(Err(match &error {
                            Some(e) => (**e).clone(),
                            None => gone.clone(),
                        }));
                    }
                    retry
                }
            };
            if keep {
                self.sockets.insert(namespace, socket);
            } else {
                socket.fail_waiting(&gone);
            }
        }
        if let Some(error) = error {
            self.last_error = Some((*error).clone());
        }
        if reconnect && !self.sockets.is_empty() {
            self.schedule_reconnect();
        } else {
            self.done = Some(reason);
        }
    }

    /// Plans the next reconnection attempt, or gives up after the configured attempts.
    fn schedule_reconnect(&mut self) {
        if !self.config.reconnection && self.ever_connected {
            self.done = Some(DisconnectReason::TransportClose);
            return;
        }
        let attempt = self.backoff.attempts().saturating_add(1);
        if self
            .config
            .reconnection_attempts
            .is_some_and(|max| attempt > max)
        {
            tracing::warn!(attempts = attempt - 1, "reconnection failed; giving up");
            let error = self
                .last_error
                .as_ref()
                .cloned()
                .unwrap_or_else(|| Error::Disconnected("reconnection failed".into()));
            for (_, mut socket) in self.sockets.drain() {
                socket.status.closed.store(true, Ordering::Release);
                socket.fail_waiting(&error);
                let SocketState { phase, events, .. } = socket;
                let reply = match phase {
                    Phase::Waiting { reply, .. } | Phase::Connecting { reply, .. } => reply,
                    Phase::Connected => None,
                };
                match reply {
                    Some(reply) => {
                        let _ = reply.send(Err(error.clone()));
                    }
                    None => {
                        events.send(Event::ReconnectFailed);
                    }
                }
            }
            self.done = Some(DisconnectReason::TransportClose);
            return;
        }
        let delay = self.backoff.next_delay(rand::random::<f64>());
        tracing::debug!(attempt, ?delay, "reconnecting");
        self.reconnect_at = Some(deadline_after(Instant::now(), delay));
        for socket in self.sockets.values() {
            if matches!(socket.phase, Phase::Waiting { reply: None, .. }) {
                socket.emit(Event::Reconnecting { attempt, delay });
            }
        }
    }

    /// Hands everything the session wants to send to the transport(s). Never waits for the
    /// network: the transports write as their sockets take it (driven by `link_next`), and a
    /// write that makes no progress for pingTimeout ends the link (see `on_timeout`).
    fn flush(&mut self) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        if let Some(Upgrade::Probing { ws, probe }) = &mut link.upgrade {
            let mut probes = Vec::new();
            while let Some(packet) = probe.poll_transmit() {
                probes.push(packet);
            }
            if !probes.is_empty() {
                ws.queue(probes);
            }
        }
        let mut out = std::mem::take(&mut link.preface);
        while let Some(packet) = link.session.poll_transmit() {
            out.push(packet);
        }
        if !out.is_empty() {
            link.transport.send(out);
        }
    }

    /// When the transport's waiting writes count as a dead connection.
    fn write_deadline(&self) -> Option<Instant> {
        let link = self.link.as_ref()?;
        let since = link.transport.stalled_since()?;
        Some(deadline_after(since, link.session.handshake().ping_timeout))
    }

    fn next_deadline(&mut self) -> Option<Instant> {
        let mut next = self.reconnect_at;
        let write_deadline = self.write_deadline();
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n: Instant| n.min(t)));
            }
        };
        consider(write_deadline);
        if let Some(link) = &self.link {
            consider(link.session.poll_timeout());
            if let Some(Upgrade::Probing { probe, .. }) = &link.upgrade {
                consider(probe.poll_timeout());
            }
        }
        // Drop answered acks from the top so the heap's head is a live deadline.
        while let Some(Reverse((_, nsp, id))) = self.ack_deadlines.peek() {
            let live = self
                .sockets
                .get(nsp)
                .is_some_and(|s| s.pending.contains_key(id));
            if live {
                break;
            }
            self.ack_deadlines.pop();
        }
        consider(self.ack_deadlines.peek().map(|Reverse((t, _, _))| *t));
        for socket in self.sockets.values() {
            match socket.phase {
                Phase::Connecting { deadline, .. } | Phase::Waiting { deadline, .. } => {
                    consider(deadline)
                }
                Phase::Connected => {}
            }
            consider(socket.inflight.map(|(_, at)| at));
        }
        next
    }

    fn on_timeout(&mut self, now: Instant) {
        if self.write_deadline().is_some_and(|at| at <= now) {
            let (transport, waited) = match &self.link {
                Some(link) => (link.transport.kind(), link.session.handshake().ping_timeout),
                None => (Transport::WebSocket, Duration::ZERO),
            };
            let error = Error::transport(
                transport,
                format!(
                    "writes made no progress for {waited:?} (pingTimeout): the server is not reading"
                ),
            );
            self.link_lost(DisconnectReason::TransportError, Some(error));
        }
        self.read_before_heartbeat_verdict(now);
        if let Some(link) = self.link.as_mut() {
            link.session.handle_timeout(now);
            self.drain_session();
        }
        while let Some(Reverse((at, _, _))) = self.ack_deadlines.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, nsp, id))) = self.ack_deadlines.pop() else {
                break;
            };
            if let Some(ack) = self
                .sockets
                .get_mut(&nsp)
                .and_then(|s| s.pending.remove(&id))
            {
                let _ = ack.reply.send(Err(Error::AckTimeout(ack.timeout)));
            }
        }
        let retries = self.config.retries.unwrap_or(0);
        let late: Vec<Arc<str>> = self
            .sockets
            .iter()
            .filter(|(_, s)| s.inflight.is_some_and(|(_, at)| at <= now))
            .map(|(n, _)| n.clone())
            .collect();
        for nsp in late {
            if let Some(socket) = self.sockets.get_mut(&nsp) {
                socket.inflight = None;
                if socket.queue.front().is_some_and(|q| q.tries > retries) {
                    if let Some(queued) = socket.queue.pop_front() {
                        let error = Error::AckTimeout(queued.timeout);
                        tracing::warn!(event = %queued.event, tries = queued.tries, "emit not acknowledged");
                        match queued.reply {
                            Some(reply) => {
                                let _ = reply.send(Err(error));
                            }
                            // A plain emit has no caller waiting: the application hears it here.
                            None => socket.emit(Event::Error(Arc::new(error))),
                        }
                    }
                }
            }
            self.drain_queue(&nsp);
        }
        let expired: Vec<Arc<str>> = self
            .sockets
            .iter()
            .filter(|(_, s)| match s.phase {
                Phase::Connecting { deadline, .. } | Phase::Waiting { deadline, .. } => {
                    deadline.is_some_and(|d| d <= now)
                }
                Phase::Connected => false,
            })
            .map(|(n, _)| n.clone())
            .collect();
        for nsp in expired {
            if let Some(mut socket) = self.sockets.remove(&nsp) {
                socket.status.closed.store(true, Ordering::Release);
                let error = Error::ConnectTimeout(self.config.timeout);
                socket.fail_waiting(&error);
                if let Phase::Connecting {
                    reply: Some(reply), ..
                }
                | Phase::Waiting {
                    reply: Some(reply), ..
                } = socket.phase
                {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
        if let Some(Link {
            upgrade: Some(Upgrade::Probing { probe, .. }),
            ..
        }) = self.link.as_mut()
        {
            probe.handle_timeout(now);
            if probe.state() == ProbeState::Failed {
                self.fail_upgrade("probe timed out");
            }
        }
        if self.reconnect_at.is_some_and(|at| at <= now) {
            self.reconnect_at = None;
        }
        if self.sockets.is_empty() && self.done.is_none() {
            self.done = Some(DisconnectReason::IoClientDisconnect);
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Connect {
                namespace,
                auth,
                events,
                status,
                deadline,
                reply,
            } => {
                if self.sockets.contains_key(&namespace) {
                    let _ = reply.send(Err(Error::InvalidNamespace(format!(
                        "{namespace} is already connected on this client"
                    ))));
                    return;
                }
                // `timeout` bounds a first connect, retried or not.
                self.sockets.insert(
                    namespace.clone(),
                    SocketState {
                        phase: Phase::Waiting {
                            reply: Some(reply),
                            deadline,
                        },
                        auth,
                        events,
                        status,
                        next_id: 0,
                        pending: HashMap::new(),
                        buffer: Vec::new(),
                        pid: None,
                        offset: None,
                        queue: VecDeque::new(),
                        inflight: None,
                    },
                );
                if self.link.is_some() {
                    self.join(&namespace, None);
                }
            }
            Command::Emit {
                namespace,
                event,
                args,
                ack,
                volatile,
                weight,
            } => {
                // Counted until it is handed to the transport (which counts it from then on),
                // or for as long as it waits in the send buffer or the at-least-once queue.
                let held = self.shared.outgoing.adopt(weight);
                let now = Instant::now();
                if self
                    .link
                    .as_ref()
                    .is_some_and(|l| l.session.has_ping_expired(now))
                {
                    // A timer that fired late (suspended process): the connection only looks
                    // alive. Notice now rather than send into the void.
                    self.read_before_heartbeat_verdict(now);
                    if let Some(link) = self.link.as_mut() {
                        link.session.handle_timeout(now);
                    }
                    self.drain_session();
                }
                let send_buffer = self.config.send_buffer;
                let linked = self.link.is_some();
                let Some(socket) = self.sockets.get_mut(&namespace) else {
                    if let Some(ack) = ack {
                        let _ = ack.reply.send(Err(Error::Disconnected(format!(
                            "{namespace} is not connected"
                        ))));
                    }
                    return;
                };
                let connected = linked && matches!(socket.phase, Phase::Connected);
                if !connected && volatile {
                    if let Some(ack) = ack {
                        let _ = ack.reply.send(Err(Error::Disconnected(
                            "volatile emit while disconnected".into(),
                        )));
                    }
                    return;
                }
                if self.config.retries.is_some() && !volatile {
                    let (values, attachments) = args.into_wire();
                    let (reply, timeout) = match ack {
                        Some(ack) => (Some(ack.reply), ack.timeout),
                        None => (None, self.config.ack_timeout),
                    };
                    socket.queue.push_back(Queued {
                        event,
                        values,
                        attachments,
                        reply,
                        timeout,
                        tries: 0,
                        _held: held,
                    });
                    self.drain_queue(&namespace);
                    return;
                }
                if !connected && socket.buffer.len() >= send_buffer {
                    // The handles reserve buffer slots before sending, so this is only reached
                    // in a race with a reconnection; keep the packet rather than lose it.
                    tracing::debug!(namespace = %namespace, "send buffer over its limit");
                }
                let (values, attachments) = args.into_wire();
                let mut data = Vec::with_capacity(values.len() + 1);
                data.push(Value::String(event));
                data.extend(values);
                let id = ack.map(|ack| {
                    let id = socket.next_id;
                    socket.next_id += 1;
                    socket.pending.insert(
                        id,
                        PendingAck {
                            reply: ack.reply,
                            timeout: ack.timeout,
                            sent: connected,
                        },
                    );
                    self.ack_deadlines.push(Reverse((
                        deadline_after(now, ack.timeout),
                        namespace.clone(),
                        id,
                    )));
                    id
                });
                let packet = sio::Packet::event(&namespace, Value::Array(data), attachments, id);
                if connected {
                    self.send_packet(packet);
                } else {
                    socket.buffer.push((packet, held));
                    socket
                        .status
                        .buffered
                        .store(socket.buffer.len(), Ordering::Release);
                }
            }
            Command::Ack {
                namespace,
                id,
                args,
            } => {
                let connected = self
                    .sockets
                    .get(&namespace)
                    .is_some_and(|s| matches!(s.phase, Phase::Connected));
                if connected && self.link.is_some() {
                    let (values, attachments) = args.into_wire();
                    self.send_packet(sio::Packet::ack(
                        &namespace,
                        id,
                        Value::Array(values),
                        attachments,
                    ));
                }
            }
            Command::Disconnect { namespace } => {
                if let Some(socket) = self.sockets.remove(&namespace) {
                    if self.link.is_some()
                        && matches!(socket.phase, Phase::Connected | Phase::Connecting { .. })
                    {
                        self.send_packet(sio::Packet::disconnect(&namespace));
                    }
                    close_socket(
                        &namespace,
                        socket,
                        DisconnectReason::IoClientDisconnect,
                        None,
                    );
                }
                if self.sockets.is_empty() {
                    self.done = Some(DisconnectReason::IoClientDisconnect);
                }
            }
        }
    }

    /// Every handle is gone: leave every namespace and close.
    fn disconnect_all(&mut self) {
        let names: Vec<Arc<str>> = self.sockets.keys().cloned().collect();
        for namespace in names {
            self.on_command(Command::Disconnect { namespace });
        }
        self.done = Some(DisconnectReason::IoClientDisconnect);
    }

    /// Queues a Socket.IO packet (text part, then its attachments) on the session.
    fn send_packet(&mut self, packet: sio::Packet) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        let text = packet.encode();
        link.session.send(Data::Text(text));
        for attachment in packet.attachments {
            link.session.send(Data::Binary(attachment));
        }
    }

    /// Feeds received Engine.IO packets through the session.
    fn feed(&mut self, now: Instant, packets: Vec<EnginePacket>) {
        for packet in packets {
            let Some(link) = self.link.as_mut() else {
                return;
            };
            link.session.handle_packet(now, packet);
            self.drain_session();
        }
    }

    fn drain_session(&mut self) {
        loop {
            let Some(link) = self.link.as_mut() else {
                return;
            };
            let Some(event) = link.session.poll_event() else {
                return;
            };
            let decoded = match event {
                SessionEvent::Message(Data::Text(text)) => link.decoder.decode_text(&text),
                SessionEvent::Message(Data::Binary(bytes)) => link.decoder.decode_binary(bytes),
                SessionEvent::Closed(CloseReason::PingTimeout) => {
                    self.link_lost(DisconnectReason::PingTimeout, None);
                    return;
                }
                SessionEvent::Closed(CloseReason::ServerClose) => {
                    self.link_lost(DisconnectReason::TransportClose, None);
                    return;
                }
                SessionEvent::Closed(_) => return,
            };
            match decoded {
                Ok(Some(packet)) => {
                    let size = link.decoder.last_packet_bytes();
                    if let Err(error) = self.on_packet(packet, size) {
                        let error = Error::Protocol(error);
                        if !(is_socketio2_server(&error) && self.switch_to_v3()) {
                            self.link_lost(DisconnectReason::ParseError, Some(error));
                        }
                        return;
                    }
                }
                Ok(None) => {}
                Err(error) => {
                    self.link_lost(DisconnectReason::ParseError, Some(Error::Protocol(error)));
                    return;
                }
            }
        }
    }

    /// Acts on one complete packet; `size` is its weight on the wire.
    fn on_packet(&mut self, packet: sio::Packet, size: usize) -> Result<(), ProtocolError> {
        let transport = match &self.link {
            Some(link) => link.transport.kind(),
            None => return Ok(()),
        };
        match packet.kind {
            PacketType::Connect => self.on_connected(packet, transport)?,
            PacketType::ConnectError => {
                let (message, data) = match packet.data {
                    Some(Value::String(message)) => (message, None),
                    Some(Value::Object(mut map)) => {
                        let message = match map.remove("message") {
                            Some(Value::String(m)) => m,
                            Some(other) => other.to_string(),
                            None => String::new(),
                        };
                        (message, map.remove("data"))
                    }
                    Some(other) => (other.to_string(), None),
                    None => (String::new(), None),
                };
                let error = Error::ConnectRefused {
                    namespace: packet.nsp.clone(),
                    message,
                    data,
                };
                if let Some(mut socket) = self.sockets.remove(packet.nsp.as_str()) {
                    socket.status.closed.store(true, Ordering::Release);
                    socket.fail_waiting(&error);
                    match socket.phase {
                        Phase::Connecting {
                            reply: Some(reply), ..
                        }
                        | Phase::Waiting {
                            reply: Some(reply), ..
                        } => {
                            let _ = reply.send(Err(error));
                        }
                        _ => {
                            // Refused on a reconnection (e.g. an expired token): the socket is
                            // closed, the application hears why.
                            socket.status.connected.store(false, Ordering::Release);
                            socket.events.send(Event::Error(Arc::new(error.clone())));
                        }
                    }
                }
                if self.sockets.is_empty() {
                    self.done = Some(DisconnectReason::IoServerDisconnect);
                }
            }
            PacketType::Disconnect => {
                if let Some((namespace, socket)) = self.sockets.remove_entry(packet.nsp.as_str()) {
                    close_socket(
                        &namespace,
                        socket,
                        DisconnectReason::IoServerDisconnect,
                        None,
                    );
                }
                if self.sockets.is_empty() {
                    self.done = Some(DisconnectReason::IoServerDisconnect);
                }
            }
            PacketType::Event | PacketType::BinaryEvent => {
                let Some((namespace, socket)) = self.sockets.get_key_value(packet.nsp.as_str())
                else {
                    return Ok(());
                };
                let namespace = namespace.clone();
                let Some(Value::Array(mut values)) = packet.data else {
                    return Err(ProtocolError::InvalidPacket(
                        "event without arguments".into(),
                    ));
                };
                if values.is_empty() {
                    return Err(ProtocolError::InvalidPacket("event without a name".into()));
                }
                let Value::String(event) = values.remove(0) else {
                    return Err(ProtocolError::InvalidPacket(
                        "event name is not a string".into(),
                    ));
                };
                let recovering = socket.pid.is_some();
                let ack = packet
                    .id
                    .map(|id| AckSender::new(self.weak.clone(), namespace.clone(), id));
                if let Some(socket) = self.sockets.get_mut(&namespace) {
                    // With connection-state recovery on, the server appends its offset to every
                    // event as a last string argument (left in place, as the JS client does).
                    if recovering {
                        if let Some(Value::String(offset)) = values.last() {
                            socket.offset = Some(offset.clone());
                        }
                    }
                    socket.events.send_sized(
                        Event::Message {
                            namespace: packet.nsp,
                            event,
                            args: Args::from_wire(values, packet.attachments),
                            ack,
                        },
                        size,
                    );
                }
            }
            PacketType::Ack | PacketType::BinaryAck => {
                let Some(id) = packet.id else {
                    return Err(ProtocolError::InvalidPacket("ack without an id".into()));
                };
                let values = match packet.data {
                    Some(Value::Array(values)) => values,
                    Some(other) => vec![other],
                    None => Vec::new(),
                };
                let Some((namespace, socket)) = self.sockets.get_key_value(packet.nsp.as_str())
                else {
                    return Ok(());
                };
                let namespace = namespace.clone();
                if socket.inflight.is_some_and(|(inflight, _)| inflight == id) {
                    if let Some(socket) = self.sockets.get_mut(&namespace) {
                        socket.inflight = None;
                        if let Some(Queued {
                            reply: Some(reply), ..
                        }) = socket.queue.pop_front()
                        {
                            let _ = reply.send(Ok(Args::from_wire(values, packet.attachments)));
                        }
                    }
                    self.drain_queue(&namespace);
                } else if let Some(ack) = self
                    .sockets
                    .get_mut(&namespace)
                    .and_then(|s| s.pending.remove(&id))
                {
                    let _ = ack
                        .reply
                        .send(Ok(Args::from_wire(values, packet.attachments)));
                }
            }
        }
        Ok(())
    }

    /// The server accepted a namespace: answer the caller, announce it, send what waited.
    fn on_connected(
        &mut self,
        packet: sio::Packet,
        transport: Transport,
    ) -> Result<(), ProtocolError> {
        // Before the namespace lookup: socket.io 2 joins "/" unasked.
        if self.version != EngineVersion::V3
            && detect::connect_reply_is_socketio2(packet.data.as_ref())
        {
            return Err(detect::socketio2_server(format!(
                "its CONNECT reply for {} carries no sid",
                packet.nsp
            )));
        }
        let Some(socket) = self.sockets.get_mut(packet.nsp.as_str()) else {
            return Ok(());
        };
        let Phase::Connecting { .. } = socket.phase else {
            return Ok(());
        };
        let Phase::Connecting { reply, attempt, .. } =
            std::mem::replace(&mut socket.phase, Phase::Connected)
        else {
            return Ok(());
        };
        let new_pid = packet
            .data
            .as_ref()
            .and_then(|d| d.get("pid"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let recovered = new_pid.is_some() && new_pid == socket.pid;
        if !recovered {
            socket.offset = None;
        }
        socket.pid = new_pid;
        socket.status.recovered.store(recovered, Ordering::Release);
        socket.status.connected.store(true, Ordering::Release);
        if let Some(reply) = reply {
            let _ = reply.send(Ok(()));
        }
        socket.emit(Event::Connected {
            namespace: packet.nsp.clone(),
            transport,
        });
        if let Some(attempt) = attempt {
            socket.emit(Event::Reconnected {
                attempt,
                transport,
                recovered,
            });
        }
        let buffered = std::mem::take(&mut socket.buffer);
        socket.status.buffered.store(0, Ordering::Release);
        for pending in socket.pending.values_mut() {
            pending.sent = true;
        }
        self.ever_connected = true;
        self.backoff.reset();
        let namespace: Arc<str> = Arc::from(packet.nsp.as_str());
        for (packet, _held) in buffered {
            self.send_packet(packet);
        }
        self.drain_queue(&namespace);
        Ok(())
    }

    /// Sends the head of a socket's at-least-once queue when nothing of it is in flight.
    fn drain_queue(&mut self, namespace: &Arc<str>) {
        if self.link.is_none() {
            return;
        }
        let Some(socket) = self.sockets.get_mut(namespace) else {
            return;
        };
        if !matches!(socket.phase, Phase::Connected) || socket.inflight.is_some() {
            return;
        }
        let id = socket.next_id;
        let Some(head) = socket.queue.front_mut() else {
            return;
        };
        head.tries = head.tries.saturating_add(1);
        socket.next_id += 1;
        socket.inflight = Some((id, deadline_after(Instant::now(), head.timeout)));
        let mut data = Vec::with_capacity(head.values.len() + 1);
        data.push(Value::String(head.event.clone()));
        data.extend(head.values.iter().cloned());
        let packet = sio::Packet::event(
            namespace,
            Value::Array(data),
            head.attachments.clone(),
            Some(id),
        );
        self.send_packet(packet);
    }

    fn start_upgrade(&mut self) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        let url = link.settings.endpoint.url(
            Transport::WebSocket,
            Some(&link.session.handshake().sid),
            0,
        );
        let headers = self.config.headers.clone();
        let net = self.net.clone();
        let version = self.version;
        let max = self.config.max_receive;
        let timeout = self.config.upgrade_timeout;
        tracing::debug!("probing WebSocket for an upgrade");
        link.upgrade = Some(Upgrade::Connecting(Box::pin(async move {
            WebSocketTransport::connect(&url, &net, &headers, version, max, timeout).await
        })));
    }

    fn fail_upgrade(&mut self, why: &str) {
        tracing::debug!(why, "WebSocket upgrade failed; staying on HTTP");
        if let Some(link) = self.link.as_mut() {
            if let Some(Upgrade::Probing { ws, .. }) = link.upgrade.take() {
                self.closing.push(Active::WebSocket(ws));
            }
            if let Active::Polling(polling) = &mut link.transport {
                polling.resume();
            }
        }
    }

    fn on_upgrade_step(&mut self, step: UpgradeStep) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        match step {
            UpgradeStep::Connected(Ok(ws)) => {
                let probe = UpgradeProbe::new(Instant::now(), self.config.upgrade_timeout);
                link.upgrade = Some(Upgrade::Probing { ws, probe });
            }
            UpgradeStep::Connected(Err(error)) => self.fail_upgrade(&error.to_string()),
            UpgradeStep::Frame(Ok(Some(frame))) => {
                let Some(Upgrade::Probing { probe, .. }) = &mut link.upgrade else {
                    return;
                };
                let result = EnginePacket::from_frame(self.version, frame)
                    .and_then(|packet| probe.handle_packet(Instant::now(), packet));
                if let Err(error) = result {
                    self.fail_upgrade(&error.to_string());
                    return;
                }
                if probe.state() == ProbeState::AwaitingPause {
                    if let Active::Polling(polling) = &mut link.transport {
                        polling.pause();
                    }
                    self.check_upgrade_ready();
                }
            }
            UpgradeStep::Frame(Ok(None)) => self.fail_upgrade("WebSocket closed during the probe"),
            UpgradeStep::Frame(Err(error)) => self.fail_upgrade(&error.to_string()),
        }
    }

    /// Completes an upgrade once the probe succeeded and the HTTP transport has nothing in
    /// flight.
    fn check_upgrade_ready(&mut self) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        let ready = match (&link.upgrade, &link.transport) {
            (Some(Upgrade::Probing { probe, .. }), Active::Polling(polling)) => {
                probe.state() == ProbeState::AwaitingPause && polling.is_idle()
            }
            _ => false,
        };
        if !ready {
            return;
        }
        let Some(Upgrade::Probing { ws, mut probe }) = link.upgrade.take() else {
            return;
        };
        probe.polling_paused();
        let mut first = Vec::new();
        while let Some(packet) = probe.poll_transmit() {
            first.push(packet);
        }
        let mut ws = ws;
        ws.share_outgoing(self.shared.outgoing.clone());
        let old = std::mem::replace(&mut link.transport, Active::WebSocket(ws));
        let from = old.kind();
        if let Active::Polling(mut polling) = old {
            first.extend(polling.take_queue());
        }
        // The upgrade packet and what the HTTP transport still held go first, in order.
        link.preface = first;
        self.shared.set_transport(Transport::WebSocket);
        tracing::debug!(%from, "upgraded to WebSocket");
        for socket in self.sockets.values() {
            socket.emit(Event::TransportChanged {
                from,
                to: Transport::WebSocket,
            });
        }
    }
}

/// Ends one socket for good: pending acks fail, the application hears why.
fn close_socket(
    namespace: &str,
    mut socket: SocketState,
    reason: DisconnectReason,
    error: Option<Arc<Error>>,
) {
    let gone = Error::Disconnected(reason.as_str().to_string());
    socket.status.closed.store(true, Ordering::Release);
    socket.status.connected.store(false, Ordering::Release);
    socket.fail_waiting(&gone);
    match socket.phase {
        Phase::Connecting {
            reply: Some(reply), ..
        }
        | Phase::Waiting {
            reply: Some(reply), ..
        } => {
            let error = match &error {
                Some(e) => (**e).clone(),
                None => gone,
            };
            let _ = reply.send(Err(error));
        }
        Phase::Connected => {
            if let Some(error) = error {
                socket.events.send(Event::Error(error));
            }
            socket.events.send(Event::Disconnected {
                namespace: namespace.to_string(),
                reason,
            });
        }
        // Reconnecting: the disconnect was announced when the link was lost; dropping the
        // socket ends its event stream.
        Phase::Connecting { reply: None, .. } | Phase::Waiting { reply: None, .. } => {}
    }
}
