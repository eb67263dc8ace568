//! The connection driver: one tokio task per connection, the only place where the sans-IO
//! protocol core meets IO. A `select!` over application commands, transport input, the upgrade
//! probe and the next protocol deadline. Application callbacks never run here (events leave
//! through channels), so a slow handler cannot delay a pong.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use crate::config::Config;
use crate::event::{AckSender, DisconnectReason, Event};
use crate::proto::engineio::{
    CloseReason, Data, EngineVersion, Packet as EnginePacket, ProbeState, Session, SessionEvent,
    UpgradeProbe,
};
use crate::proto::socketio::{self as sio, PacketType};
use crate::proto::ProtocolError;
use crate::transport::connect::{self, Attempt};
use crate::transport::net::Net;
use crate::transport::polling::HttpSettings;
use crate::transport::url::Endpoint;
use crate::transport::websocket::WebSocketTransport;
use crate::transport::{Active, Transport};
use crate::{Args, Error};

/// What the handles ask of the driver.
pub(crate) enum Command {
    /// Join a namespace.
    Connect {
        namespace: Arc<str>,
        auth: Option<Value>,
        events: mpsc::UnboundedSender<Event>,
        deadline: Instant,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    /// Emit an event, optionally waiting for its acknowledgement.
    Emit {
        namespace: Arc<str>,
        event: String,
        args: Args,
        ack: Option<AckRequest>,
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

/// What every handle can see of the connection.
#[derive(Default)]
pub(crate) struct Shared {
    transport: Mutex<Option<Transport>>,
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

/// Starts a connection's driver on `runtime`. The first namespace to join is already queued in
/// `commands`, so the driver connects it right after the handshake.
pub(crate) fn spawn(
    runtime: &tokio::runtime::Handle,
    config: Arc<Config>,
    commands: mpsc::UnboundedReceiver<Command>,
    weak: mpsc::WeakUnboundedSender<Command>,
    shared: Arc<Shared>,
    handshake_auth: Option<Value>,
    net: Arc<Net>,
) {
    let span = tracing::debug_span!("sio_connection", url = %config.url);
    runtime.spawn(run(config, commands, weak, shared, handshake_auth, net).instrument(span));
}

async fn run(
    config: Arc<Config>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    weak: mpsc::WeakUnboundedSender<Command>,
    shared: Arc<Shared>,
    handshake_auth: Option<Value>,
    net: Arc<Net>,
) {
    let opened = async {
        let mut query = config.query.clone();
        // socket.io 2 servers take the auth of the main namespace from the handshake query.
        if let (EngineVersion::V3, Some(Value::Object(auth))) = (config.version, &handshake_auth) {
            query.extend(auth.iter().map(|(k, v)| (k.clone(), query_value(v))));
        }
        let endpoint = Arc::new(Endpoint::new(
            &config.url,
            &config.path,
            &query,
            config.version,
        )?);
        let settings = connect::http_settings(&config, endpoint, net)?;
        let opened = tokio::time::timeout(config.timeout, connect::open(&config, &settings))
            .await
            .map_err(|_| Error::ConnectTimeout(config.timeout))??;
        Ok::<_, Error>((settings, opened))
    }
    .await;
    let (settings, opened) = match opened {
        Ok(pair) => pair,
        Err(error) => {
            tracing::warn!(%error, "connection failed");
            shared.closed.store(true, Ordering::Release);
            refuse_pending(&mut commands, &error);
            return;
        }
    };
    *shared.attempts.lock().unwrap_or_else(|e| e.into_inner()) = opened.attempts.clone();
    shared.set_transport(opened.transport.kind());
    let now = Instant::now();
    let ws_failed = opened
        .attempts
        .iter()
        .any(|a| a.transport == Transport::WebSocket && a.outcome.is_err());
    let can_upgrade = config.upgrade
        && !ws_failed
        && config.transports.contains(&Transport::WebSocket)
        && opened.handshake.upgrades.iter().any(|u| u == "websocket");
    let mut driver = Driver {
        version: config.version,
        session: Session::new(config.version, opened.handshake, now),
        decoder: sio::Decoder::new(config.max_attachments),
        transport: opened.transport,
        sockets: HashMap::new(),
        ack_deadlines: BinaryHeap::new(),
        upgrade: None,
        preface: Vec::new(),
        settings,
        config,
        shared,
        weak,
        done: None,
    };
    if can_upgrade && driver.transport.kind() != Transport::WebSocket {
        driver.start_upgrade();
    }
    // Namespaces asked for before the handshake join first: a socket.io 2 server's `40` can come
    // in the handshake's own response and must find its socket.
    while let Ok(command) = commands.try_recv() {
        driver.on_command(command);
    }
    driver.feed(now, opened.initial);
    driver.run(&mut commands).await;
    driver.shared.closed.store(true, Ordering::Release);
    refuse_pending(
        &mut commands,
        &Error::Disconnected("connection closed".into()),
    );
    driver.transport.close().await;
}

/// Answers every queued command of a connection that is gone.
fn refuse_pending(commands: &mut mpsc::UnboundedReceiver<Command>, error: &Error) {
    commands.close();
    while let Ok(command) = commands.try_recv() {
        match command {
            Command::Connect { reply, .. } => {
                let _ = reply.send(Err(clone_error(error)));
            }
            Command::Emit { ack: Some(ack), .. } => {
                let _ = ack.reply.send(Err(clone_error(error)));
            }
            _ => {}
        }
    }
}

/// A copy of an error for each waiting caller (`Error` holds no clonable sources).
fn clone_error(error: &Error) -> Error {
    match error {
        Error::ConnectTimeout(d) => Error::ConnectTimeout(*d),
        Error::Handshake {
            transport,
            status,
            body,
        } => Error::Handshake {
            transport: *transport,
            status: *status,
            body: body.clone(),
        },
        Error::InvalidUrl { url, reason } => Error::InvalidUrl {
            url: url.clone(),
            reason: reason.clone(),
        },
        Error::InvalidHeader(h) => Error::InvalidHeader(h.clone()),
        Error::Transport { transport, message } => Error::Transport {
            transport: *transport,
            message: message.clone(),
        },
        Error::Protocol(p) => Error::Protocol(p.clone()),
        Error::Disconnected(r) => Error::Disconnected(r.clone()),
        other => Error::Disconnected(other.to_string()),
    }
}

/// A JSON value as a query-string value (strings unquoted).
fn query_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

enum Phase {
    Connecting {
        reply: oneshot::Sender<Result<(), Error>>,
        deadline: Instant,
    },
    Connected,
}

struct SocketState {
    phase: Phase,
    events: mpsc::UnboundedSender<Event>,
    next_id: u64,
    pending: HashMap<u64, PendingAck>,
    /// Emits made before the namespace was connected, sent in order once it is.
    buffer: Vec<sio::Packet>,
}

struct PendingAck {
    reply: oneshot::Sender<Result<Args, Error>>,
    timeout: Duration,
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

struct Driver {
    config: Arc<Config>,
    shared: Arc<Shared>,
    weak: mpsc::WeakUnboundedSender<Command>,
    version: EngineVersion,
    session: Session,
    transport: Active,
    decoder: sio::Decoder,
    sockets: HashMap<Arc<str>, SocketState>,
    /// Ack deadlines, lazily cleaned: an entry whose ack was answered is skipped when popped.
    ack_deadlines: BinaryHeap<Reverse<(Instant, Arc<str>, u64)>>,
    upgrade: Option<Upgrade>,
    /// Packets that must precede the session's own on the next flush (after an upgrade).
    preface: Vec<EnginePacket>,
    settings: HttpSettings,
    done: Option<DisconnectReason>,
}

impl Driver {
    async fn run(&mut self, commands: &mut mpsc::UnboundedReceiver<Command>) {
        loop {
            if let Err(error) = self.flush().await {
                self.finish(DisconnectReason::TransportError, Some(error));
            }
            if self.done.is_some() {
                return;
            }
            let deadline = self.next_deadline();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => self.disconnect_all(),
                },
                incoming = self.transport.recv() => {
                    let now = Instant::now();
                    match incoming {
                        Ok(Some(packets)) => self.feed(now, packets),
                        Ok(None) => self.finish(DisconnectReason::TransportClose, None),
                        Err(Error::Protocol(e)) => self.finish(DisconnectReason::ParseError, Some(Error::Protocol(e))),
                        Err(error) => self.finish(DisconnectReason::TransportError, Some(error)),
                    }
                    self.check_upgrade_ready();
                }
                step = upgrade_step(&mut self.upgrade) => self.on_upgrade_step(step),
                () = sleep => self.on_timeout(Instant::now()),
            }
        }
    }

    /// Hands everything the session wants to send to the transport(s).
    async fn flush(&mut self) -> Result<(), Error> {
        if let Some(Upgrade::Probing { ws, probe }) = &mut self.upgrade {
            let mut probes = Vec::new();
            while let Some(packet) = probe.poll_transmit() {
                probes.push(packet);
            }
            if !probes.is_empty() && ws.send(probes).await.is_err() {
                self.fail_upgrade("probe could not be sent");
            }
        }
        let mut out = std::mem::take(&mut self.preface);
        while let Some(packet) = self.session.poll_transmit() {
            out.push(packet);
        }
        if out.is_empty() {
            return Ok(());
        }
        self.transport.send(out).await
    }

    fn next_deadline(&mut self) -> Option<Instant> {
        let mut next = self.session.poll_timeout();
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
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
            if let Phase::Connecting { deadline, .. } = socket.phase {
                consider(Some(deadline));
            }
        }
        if let Some(Upgrade::Probing { probe, .. }) = &self.upgrade {
            consider(probe.poll_timeout());
        }
        next
    }

    fn on_timeout(&mut self, now: Instant) {
        self.session.handle_timeout(now);
        self.drain_session();
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
        let expired: Vec<Arc<str>> = self
            .sockets
            .iter()
            .filter(
                |(_, s)| matches!(s.phase, Phase::Connecting { deadline, .. } if deadline <= now),
            )
            .map(|(n, _)| n.clone())
            .collect();
        for nsp in expired {
            if let Some(socket) = self.sockets.remove(&nsp) {
                if let Phase::Connecting { reply, .. } = socket.phase {
                    let _ = reply.send(Err(Error::ConnectTimeout(self.config.timeout)));
                }
            }
        }
        if let Some(Upgrade::Probing { probe, .. }) = &mut self.upgrade {
            probe.handle_timeout(now);
            if probe.state() == ProbeState::Failed {
                self.fail_upgrade("probe timed out");
            }
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
                deadline,
                reply,
            } => {
                if self.sockets.contains_key(&namespace) {
                    let _ = reply.send(Err(Error::InvalidNamespace(format!(
                        "{namespace} is already connected on this client"
                    ))));
                    return;
                }
                // socket.io 2 servers join `/` by themselves; other namespaces carry their auth
                // as a query string in the namespace field.
                match self.version {
                    EngineVersion::V4 => {
                        self.send_packet(sio::Packet::connect(&namespace, auth));
                    }
                    EngineVersion::V3 if &*namespace != "/" => {
                        let mut nsp = namespace.to_string();
                        if let Some(Value::Object(auth)) = &auth {
                            let query: Vec<String> = auth
                                .iter()
                                .map(|(k, v)| {
                                    let v = query_value(v);
                                    url::form_urlencoded::Serializer::new(String::new())
                                        .append_pair(k, &v)
                                        .finish()
                                })
                                .collect();
                            if !query.is_empty() {
                                nsp = format!("{nsp}?{}", query.join("&"));
                            }
                        }
                        self.send_packet(sio::Packet::connect(&nsp, None));
                    }
                    EngineVersion::V3 => {}
                }
                self.sockets.insert(
                    namespace,
                    SocketState {
                        phase: Phase::Connecting { reply, deadline },
                        events,
                        next_id: 0,
                        pending: HashMap::new(),
                        buffer: Vec::new(),
                    },
                );
            }
            Command::Emit {
                namespace,
                event,
                args,
                ack,
            } => {
                if self.session.has_ping_expired(Instant::now()) {
                    // A timer that fired late (suspended process): the connection only looks
                    // alive. Fail now rather than send into the void.
                    self.session.handle_timeout(Instant::now());
                    self.drain_session();
                }
                let Some(socket) = self.sockets.get_mut(&namespace) else {
                    if let Some(ack) = ack {
                        let _ = ack.reply.send(Err(Error::Disconnected(format!(
                            "{namespace} is not connected"
                        ))));
                    }
                    return;
                };
                let (values, attachments) = args.into_wire();
                let mut data = Vec::with_capacity(values.len() + 1);
                data.push(Value::String(event));
                data.extend(values);
                let id = ack.map(|ack| {
                    let id = socket.next_id;
                    socket.next_id += 1;
                    let deadline = Instant::now() + ack.timeout;
                    socket.pending.insert(
                        id,
                        PendingAck {
                            reply: ack.reply,
                            timeout: ack.timeout,
                        },
                    );
                    self.ack_deadlines
                        .push(Reverse((deadline, namespace.clone(), id)));
                    id
                });
                let packet = sio::Packet::event(&namespace, Value::Array(data), attachments, id);
                if matches!(socket.phase, Phase::Connected) {
                    self.send_packet(packet);
                } else {
                    socket.buffer.push(packet);
                }
            }
            Command::Ack {
                namespace,
                id,
                args,
            } => {
                if self.sockets.contains_key(&namespace) {
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
                    self.send_packet(sio::Packet::disconnect(&namespace));
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
        let text = packet.encode();
        self.session.send(Data::Text(text));
        for attachment in packet.attachments {
            self.session.send(Data::Binary(attachment));
        }
    }

    /// Feeds received Engine.IO packets through the session.
    fn feed(&mut self, now: Instant, packets: Vec<EnginePacket>) {
        for packet in packets {
            self.session.handle_packet(now, packet);
            self.drain_session();
            if self.done.is_some() {
                return;
            }
        }
    }

    fn drain_session(&mut self) {
        while let Some(event) = self.session.poll_event() {
            let decoded = match event {
                SessionEvent::Message(Data::Text(text)) => self.decoder.decode_text(&text),
                SessionEvent::Message(Data::Binary(bytes)) => self.decoder.decode_binary(bytes),
                SessionEvent::Closed(CloseReason::PingTimeout) => {
                    self.finish(DisconnectReason::PingTimeout, None);
                    return;
                }
                SessionEvent::Closed(CloseReason::ServerClose) => {
                    self.finish(DisconnectReason::TransportClose, None);
                    return;
                }
                SessionEvent::Closed(_) => return,
            };
            match decoded {
                Ok(Some(packet)) => {
                    if let Err(error) = self.on_packet(packet) {
                        self.finish(DisconnectReason::ParseError, Some(Error::Protocol(error)));
                        return;
                    }
                }
                Ok(None) => {}
                Err(error) => {
                    self.finish(DisconnectReason::ParseError, Some(Error::Protocol(error)));
                    return;
                }
            }
        }
    }

    fn on_packet(&mut self, packet: sio::Packet) -> Result<(), ProtocolError> {
        let transport = self.transport.kind();
        match packet.kind {
            PacketType::Connect => {
                let Some(socket) = self.sockets.get_mut(packet.nsp.as_str()) else {
                    return Ok(());
                };
                if let Phase::Connecting { .. } = socket.phase {
                    if let Phase::Connecting { reply, .. } =
                        std::mem::replace(&mut socket.phase, Phase::Connected)
                    {
                        let _ = reply.send(Ok(()));
                    }
                    let _ = socket.events.send(Event::Connected {
                        namespace: packet.nsp.clone(),
                        transport,
                    });
                    let buffered = std::mem::take(&mut socket.buffer);
                    for packet in buffered {
                        self.send_packet(packet);
                    }
                }
            }
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
                if let Some(socket) = self.sockets.remove(packet.nsp.as_str()) {
                    match socket.phase {
                        Phase::Connecting { reply, .. } => {
                            fail_acks(socket.pending, &error);
                            let _ = reply.send(Err(error));
                        }
                        Phase::Connected => {
                            let _ = socket.events.send(Event::Error(Arc::new(error)));
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
                let ack = packet
                    .id
                    .map(|id| AckSender::new(self.weak.clone(), namespace.clone(), id));
                let _ = socket.events.send(Event::Message {
                    namespace: packet.nsp,
                    event,
                    args: Args::from_wire(values, packet.attachments),
                    ack,
                });
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
                if let Some(ack) = self
                    .sockets
                    .get_mut(packet.nsp.as_str())
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

    /// The connection is over: tell every socket why, fail what waits, stop.
    fn finish(&mut self, reason: DisconnectReason, error: Option<Error>) {
        if self.done.is_some() {
            return;
        }
        match &error {
            Some(error) => tracing::warn!(%reason, %error, "connection lost"),
            None => tracing::debug!(%reason, "connection closed"),
        }
        let error = error.map(Arc::new);
        for (namespace, socket) in self.sockets.drain() {
            close_socket(&namespace, socket, reason.clone(), error.clone());
        }
        self.upgrade = None;
        self.done = Some(reason);
    }

    fn start_upgrade(&mut self) {
        let url = self.settings.endpoint.url(
            Transport::WebSocket,
            Some(&self.session.handshake().sid),
            0,
        );
        let headers = self.config.headers.clone();
        let net = self.settings.net.clone();
        let version = self.version;
        let max = self.config.max_receive;
        let timeout = self.config.upgrade_timeout;
        tracing::debug!("probing WebSocket for an upgrade");
        self.upgrade = Some(Upgrade::Connecting(Box::pin(async move {
            WebSocketTransport::connect(&url, &net, &headers, version, max, timeout).await
        })));
    }

    fn fail_upgrade(&mut self, why: &str) {
        tracing::debug!(why, "WebSocket upgrade failed; staying on polling");
        self.upgrade = None;
        if let Active::Polling(polling) = &mut self.transport {
            polling.resume();
        }
    }

    fn on_upgrade_step(&mut self, step: UpgradeStep) {
        match step {
            UpgradeStep::Connected(Ok(ws)) => {
                let probe = UpgradeProbe::new(Instant::now(), self.config.upgrade_timeout);
                self.upgrade = Some(Upgrade::Probing { ws, probe });
            }
            UpgradeStep::Connected(Err(error)) => self.fail_upgrade(&error.to_string()),
            UpgradeStep::Frame(Ok(Some(frame))) => {
                let Some(Upgrade::Probing { probe, .. }) = &mut self.upgrade else {
                    return;
                };
                let result = EnginePacket::from_frame(self.version, frame)
                    .and_then(|packet| probe.handle_packet(Instant::now(), packet));
                if let Err(error) = result {
                    self.fail_upgrade(&error.to_string());
                    return;
                }
                if probe.state() == ProbeState::AwaitingPause {
                    if let Active::Polling(polling) = &mut self.transport {
                        polling.pause();
                    }
                    self.check_upgrade_ready();
                }
            }
            UpgradeStep::Frame(Ok(None)) => self.fail_upgrade("WebSocket closed during the probe"),
            UpgradeStep::Frame(Err(error)) => self.fail_upgrade(&error.to_string()),
        }
    }

    /// Completes an upgrade once the probe succeeded and polling has nothing in flight.
    fn check_upgrade_ready(&mut self) {
        let ready = match (&self.upgrade, &self.transport) {
            (Some(Upgrade::Probing { probe, .. }), Active::Polling(polling)) => {
                probe.state() == ProbeState::AwaitingPause && polling.is_idle()
            }
            _ => false,
        };
        if !ready || self.done.is_some() {
            return;
        }
        let Some(Upgrade::Probing { ws, mut probe }) = self.upgrade.take() else {
            return;
        };
        probe.polling_paused();
        let mut first = Vec::new();
        while let Some(packet) = probe.poll_transmit() {
            first.push(packet);
        }
        let old = std::mem::replace(&mut self.transport, Active::WebSocket(ws));
        let from = old.kind();
        if let Active::Polling(mut polling) = old {
            first.extend(polling.take_queue());
        }
        // The upgrade packet and what polling still held go first, in order.
        self.preface = first;
        self.shared.set_transport(Transport::WebSocket);
        tracing::debug!("upgraded to WebSocket");
        for socket in self.sockets.values() {
            let _ = socket.events.send(Event::TransportChanged {
                from,
                to: Transport::WebSocket,
            });
        }
    }
}

fn fail_acks(pending: HashMap<u64, PendingAck>, error: &Error) {
    for (_, ack) in pending {
        let _ = ack.reply.send(Err(clone_error(error)));
    }
}

/// Ends one socket: pending acks fail, the application hears why.
fn close_socket(
    namespace: &str,
    socket: SocketState,
    reason: DisconnectReason,
    error: Option<Arc<Error>>,
) {
    let gone = Error::Disconnected(reason.as_str().to_string());
    fail_acks(socket.pending, &gone);
    match socket.phase {
        Phase::Connecting { reply, .. } => {
            let error = match &error {
                Some(e) => clone_error(e),
                None => gone,
            };
            let _ = reply.send(Err(error));
        }
        Phase::Connected => {
            if let Some(error) = error {
                let _ = socket.events.send(Event::Error(error));
            }
            let _ = socket.events.send(Event::Disconnected {
                namespace: namespace.to_string(),
                reason,
            });
        }
    }
}
