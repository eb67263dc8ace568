//! The Socket.IO layer on top of an Engine.IO session: namespace CONNECT (with guards and
//! CONNECT_ERROR), events and their handlers, acknowledgements both ways, binary attachments,
//! DISCONNECT, rooms, the connect timeout and connection-state recovery, following socket.io's
//! `Client` and `Socket`. Protocol v5 (socket.io 3/4) on an Engine.IO v4 session, v4
//! (socket.io 2) on an Engine.IO v3 one.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::sync::{oneshot, watch};

use super::close_cause::CloseCause;
use super::engine::{message, Engine, Layer};
use super::recovery::Target;
use super::{lock, random_id, MockError, MockServerHandle, ReceivedEvent, RoomEmitter};
use crate::payload::Args;
use crate::proto::engineio::{Data, EngineVersion};
use crate::proto::socketio::{ack_args, event_data, split_event, Decoder, Packet, PacketType};
use crate::Transport;

/// Attachments one packet may announce; more closes the connection.
mod connect;

const MAX_ATTACHMENTS: usize = 100;

/// The disconnect reasons after which socket.io 4.6+ keeps the session for recovery
/// (`RECOVERABLE_DISCONNECT_REASONS`); a deliberate disconnect on either side is not one.
const RECOVERABLE_REASONS: [&str; 6] = [
    "transport error",
    "transport close",
    "forced close",
    "ping timeout",
    "server shutting down",
    "forced server close",
];

/// Socket.IO state of one Engine.IO session.
pub(crate) struct SioConn {
    state: Mutex<SioState>,
    /// Itself, for the sockets it creates.
    me: Weak<SioConn>,
}

struct SioState {
    decoder: Decoder,
    /// Joined namespaces' sockets, in the order they joined.
    sockets: Vec<MockSocket>,
    closed: bool,
}

impl SioConn {
    pub(crate) fn new() -> Arc<SioConn> {
        Arc::new_cyclic(|me| SioConn {
            state: Mutex::new(SioState {
                decoder: Decoder::new(MAX_ATTACHMENTS),
                sockets: Vec::new(),
                closed: false,
            }),
            me: me.clone(),
        })
    }

    fn joined(&self) -> usize {
        lock(&self.state).sockets.len()
    }
}

/// socket.io 2 speaks protocol v4 on Engine.IO v3 sessions.
fn is_socketio2(engine: &Engine) -> bool {
    engine.version == EngineVersion::V3
}

impl Layer for SioConn {
    fn on_open(&self, engine: &Arc<Engine>) {
        if let Some(inner) = engine.server() {
            inner.spawn(connect_timeout(engine.clone(), self.me.clone()));
        }
        if is_socketio2(engine) {
            // socket.io 2 joins the main namespace with the handshake itself: `40` follows
            // the open packet in the same payload.
            let query = socketio2_query(engine, None);
            self.connect(engine, Packet::connect("/", Some(query)));
        }
    }

    /// A message arrived on the Engine.IO session.
    fn on_message(&self, engine: &Arc<Engine>, data: Data, transport: Transport) {
        let decoded = {
            let mut st = lock(&self.state);
            if st.closed {
                return;
            }
            match data {
                Data::Text(text) => st.decoder.decode_text(&text),
                Data::Binary(bytes) => st.decoder.decode_binary(bytes),
            }
        };
        match decoded {
            Ok(Some(packet)) => self.on_packet(engine, packet, transport),
            Ok(None) => {}
            // socket.io closes the connection on any packet it cannot decode.
            Err(_) => engine.close(CloseCause::ParseError, true),
        }
    }

    /// The session ended: every joined socket is disconnected with the session's reason.
    fn on_close(&self, _engine: &Arc<Engine>, cause: CloseCause) {
        let sockets: Vec<MockSocket> = {
            let mut st = lock(&self.state);
            st.closed = true;
            st.sockets.drain(..).collect()
        };
        let reason = match cause {
            CloseCause::ServerClose => "forced server close",
            other => other.reason(),
        };
        for socket in sockets {
            socket.mark_disconnected(reason);
        }
    }
}

impl SioConn {
    fn on_packet(&self, engine: &Arc<Engine>, mut packet: Packet, transport: Transport) {
        // socket.io 2 clients put the namespace's query in the namespace field
        // (`40/admin?token=secret,`); socket.io 2 merges it over the handshake query.
        let mut nsp_query = None;
        if is_socketio2(engine) {
            if let Some((nsp, query)) = packet.nsp.split_once('?') {
                nsp_query = Some(query.to_owned());
                packet.nsp = nsp.to_owned();
            }
        }
        let socket = lock(&self.state)
            .sockets
            .iter()
            .find(|s| s.inner.nsp == packet.nsp)
            .cloned();
        match (socket, packet.kind) {
            (None, PacketType::Connect) => {
                if is_socketio2(engine) {
                    packet.data = Some(socketio2_query(engine, nsp_query.as_deref()));
                }
                self.connect(engine, packet)
            }
            // socket.io 2 answers a CONNECT for a namespace already joined with nothing.
            (Some(_), PacketType::Connect) if is_socketio2(engine) => {}
            (Some(socket), PacketType::Event | PacketType::BinaryEvent) => {
                socket.on_event(packet, transport)
            }
            (Some(socket), PacketType::Ack | PacketType::BinaryAck) => socket.on_ack(packet),
            (Some(socket), PacketType::Disconnect) => socket.detach("client namespace disconnect"),
            // A second CONNECT, a CONNECT_ERROR from a client, or a packet for a namespace the
            // client has not joined: socket.io calls this an invalid state and closes.
            _ => engine.close(CloseCause::ServerClose, true),
        }
    }
}

/// Closes the connection when no namespace is joined within connectTimeout.
async fn connect_timeout(engine: Arc<Engine>, conn: Weak<SioConn>) {
    let Some(wait) = engine.server().map(|i| i.config.connect_timeout) else {
        return;
    };
    tokio::time::sleep(wait).await;
    let joined = conn.upgrade().map_or(0, |conn| conn.joined());
    if engine.is_open() && joined == 0 {
        engine.close(CloseCause::ServerClose, true);
    }
}

/// What socket.io 2 hands a namespace as `socket.handshake.query`: the handshake request's
/// query with the CONNECT packet's query merged over it. The mock's connect guards and
/// [`MockSocket::auth`] get it as a JSON object of strings.
fn socketio2_query(engine: &Engine, nsp_query: Option<&str>) -> Value {
    let mut map: Map<String, Value> = engine
        .query
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    if let Some(query) = nsp_query {
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            map.insert(k.into_owned(), Value::String(v.into_owned()));
        }
    }
    Value::Object(map)
}

/// Encodes a Socket.IO packet into Engine.IO messages: the text part, then each attachment.
fn send_packet(engine: &Engine, packet: Packet) {
    let text = packet.encode();
    let attachments = packet.attachments.into_iter().map(Data::Binary);
    engine.send_all(
        std::iter::once(Data::Text(text))
            .chain(attachments)
            .map(message),
    );
}

/// One client's connection to one namespace, as the server sees it. Cheap to clone.
#[derive(Clone)]
pub struct MockSocket {
    inner: Arc<SocketInner>,
}

struct SocketInner {
    id: String,
    /// Connection-state recovery's private session id, when recovery is on.
    pid: Option<String>,
    /// The socket restored a disconnected one's session (Node's `socket.recovered`).
    recovered: bool,
    nsp: String,
    auth: Option<Value>,
    engine: Arc<Engine>,
    conn: Arc<SioConn>,
    rooms: Mutex<HashSet<String>>,
    acks: Mutex<HashMap<u64, oneshot::Sender<Args>>>,
    next_ack: AtomicU64,
    connected: watch::Sender<bool>,
    reason: Mutex<Option<String>>,
}

impl fmt::Debug for MockSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockSocket")
            .field("id", &self.inner.id)
            .field("namespace", &self.inner.nsp)
            .field("connection_id", &self.inner.engine.sid)
            .field("connected", &self.is_connected())
            .finish()
    }
}

impl MockSocket {
    /// The socket id sent to the client in the CONNECT reply (`{"sid":…}`).
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The namespace, e.g. `/` or `/admin`.
    pub fn namespace(&self) -> &str {
        &self.inner.nsp
    }

    /// The Engine.IO session id (the `sid` of the handshake), shared by the client's sockets
    /// on all namespaces of one connection.
    pub fn connection_id(&self) -> &str {
        &self.inner.engine.sid
    }

    /// The auth payload the client sent with CONNECT, if any. On a socket.io 2 server
    /// ([`eio3`](super::MockServerBuilder::eio3)), which has no auth payload, the query the
    /// namespace sees (Node's `socket.handshake.query`): the handshake request's query merged
    /// with the CONNECT packet's (`40/admin?token=secret,`), as a JSON object of strings.
    pub fn auth(&self) -> Option<&Value> {
        self.inner.auth.as_ref()
    }

    /// Whether this socket recovered the session of a socket that lost its connection
    /// (connection-state recovery, see [`recovery`](super::MockServerBuilder::recovery)):
    /// same [`id`](Self::id), rooms rejoined, missed events replayed. Node's
    /// `socket.recovered`.
    pub fn recovered(&self) -> bool {
        self.inner.recovered
    }

    /// Connection-state recovery's private session id (`pid` in the CONNECT reply), when
    /// recovery is on.
    pub fn recovery_pid(&self) -> Option<&str> {
        self.inner.pid.as_deref()
    }

    /// The transport the connection uses now.
    pub fn transport(&self) -> Transport {
        self.inner.engine.transport()
    }

    /// Whether the socket is still connected.
    pub fn is_connected(&self) -> bool {
        *self.inner.connected.borrow()
    }

    /// Why the socket disconnected, with socket.io's reason strings (`client namespace
    /// disconnect`, `server namespace disconnect`, `transport close`, `transport error`,
    /// `ping timeout`, `parse error`, `forced server close`); `None` while connected.
    pub fn disconnect_reason(&self) -> Option<String> {
        lock(&self.inner.reason).clone()
    }

    /// Waits until the socket is disconnected; `Err(MockError::Timeout)` if it still is
    /// connected after `timeout`.
    pub async fn wait_disconnected(&self, timeout: Duration) -> Result<(), MockError> {
        let mut rx = self.inner.connected.subscribe();
        let result = tokio::time::timeout(timeout, rx.wait_for(|c| !*c)).await;
        match result {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(MockError::Closed),
            Err(_) => Err(MockError::Timeout(timeout)),
        }
    }

    /// [`wait_disconnected`](Self::wait_disconnected) for code without a runtime.
    pub fn wait_disconnected_blocking(&self, timeout: Duration) -> Result<(), MockError> {
        if !self.is_connected() {
            return Ok(());
        }
        let Some(server) = self.inner.engine.server() else {
            return Err(MockError::Closed);
        };
        let socket = self.clone();
        server.block_on(async move { socket.wait_disconnected(timeout).await })?
    }

    /// The headers of the HTTP request that opened the connection (the first polling or
    /// streaming GET, or the WebSocket upgrade request of a WebSocket-only client), names
    /// lowercased, in order, as Node's `socket.handshake.headers`.
    pub fn headers(&self) -> &[(String, String)] {
        &self.inner.engine.headers
    }

    /// The first header named `name` (case-insensitive) of the request that opened the
    /// connection; see [`headers`](Self::headers).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.inner
            .engine
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The query parameters of the request that opened the connection, `EIO` and `transport`
    /// included, as Node's `socket.handshake.query`.
    pub fn query(&self) -> &HashMap<String, String> {
        &self.inner.engine.query
    }

    /// A handle on the server, e.g. for a handler to reach every socket.
    pub fn server(&self) -> MockServerHandle {
        MockServerHandle {
            inner: self.inner.engine.server.clone(),
        }
    }

    /// Targets every other socket of the namespace, as Node's `socket.broadcast`.
    pub fn broadcast(&self) -> RoomEmitter {
        self.server().to_target(Target {
            nsp: self.inner.nsp.clone(),
            rooms: Vec::new(),
            except: vec![self.inner.id.clone()],
        })
    }

    /// Targets the other sockets of the namespace in `room`, as Node's `socket.to(room)` (the
    /// sender is left out even when it is in the room).
    pub fn to(&self, room: &str) -> RoomEmitter {
        self.server().to_target(Target {
            nsp: self.inner.nsp.clone(),
            rooms: vec![room.to_owned()],
            except: vec![self.inner.id.clone()],
        })
    }

    /// Sends an event with these arguments to the client. With connection-state recovery on,
    /// the event carries an offset as its last argument and is kept for replay, as on Node.
    pub fn emit(&self, event: &str, args: Args) {
        let target = Target::room(&self.inner.nsp, &self.inner.id);
        self.emit_to_target(event, args, &target);
    }

    /// Sends an event without ack, recorded for recovery under `target` when recovery is on.
    pub(crate) fn emit_to_target(&self, event: &str, args: Args, target: &Target) {
        let offset = self.inner.engine.server().and_then(|server| {
            server.config.recovery?;
            let (values, attachments) = args.clone().into_wire();
            let data = event_data(event, values);
            Some(lock(&server.recovery).record(target, data, attachments))
        });
        self.send_with_offset(event, args, offset);
    }

    /// Sends an event already recorded for recovery (one offset for every socket a broadcast
    /// reaches, as Node's adapter does).
    pub(crate) fn send_with_offset(&self, event: &str, args: Args, offset: Option<String>) {
        if !self.is_connected() {
            return;
        }
        let (mut values, attachments) = args.into_wire();
        if let Some(offset) = offset {
            values.push(Value::String(offset));
        }
        let packet = Packet::event(
            &self.inner.nsp,
            event_data(event, values),
            attachments,
            None,
        );
        send_packet(&self.inner.engine, packet);
    }

    /// Sends an event asking for an acknowledgement and waits for it: the client's ack
    /// arguments, `Err(MockError::Timeout)` after `timeout`, or `Err(MockError::Disconnected)`
    /// when the socket disconnects first.
    pub async fn emit_with_ack(
        &self,
        event: &str,
        args: Args,
        timeout: Duration,
    ) -> Result<Args, MockError> {
        let id = self.inner.next_ack.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = oneshot::channel();
        lock(&self.inner.acks).insert(id, tx);
        if !self.is_connected() {
            lock(&self.inner.acks).remove(&id);
            return Err(MockError::Disconnected);
        }
        self.send_event(event, args, Some(id));
        let result = tokio::time::timeout(timeout, rx).await;
        lock(&self.inner.acks).remove(&id);
        match result {
            Ok(Ok(args)) => Ok(args),
            Ok(Err(_)) => Err(MockError::Disconnected),
            Err(_) => Err(MockError::Timeout(timeout)),
        }
    }

    /// [`emit_with_ack`](Self::emit_with_ack) for code without a runtime.
    pub fn emit_with_ack_blocking(
        &self,
        event: &str,
        args: Args,
        timeout: Duration,
    ) -> Result<Args, MockError> {
        let Some(server) = self.inner.engine.server() else {
            return Err(MockError::Closed);
        };
        let socket = self.clone();
        let event = event.to_owned();
        server.block_on(async move { socket.emit_with_ack(&event, args, timeout).await })?
    }

    fn send_event(&self, event: &str, args: Args, id: Option<u64>) {
        if !self.is_connected() {
            return;
        }
        let (values, attachments) = args.into_wire();
        let packet = Packet::event(&self.inner.nsp, event_data(event, values), attachments, id);
        send_packet(&self.inner.engine, packet);
    }

    /// Joins a room (every socket is also in the room named by its id).
    pub fn join(&self, room: &str) {
        lock(&self.inner.rooms).insert(room.to_owned());
    }

    /// Leaves a room.
    pub fn leave(&self, room: &str) {
        lock(&self.inner.rooms).remove(room);
    }

    /// The rooms the socket is in.
    pub fn rooms(&self) -> HashSet<String> {
        lock(&self.inner.rooms).clone()
    }

    /// Whether the socket is in `room`.
    pub fn in_room(&self, room: &str) -> bool {
        lock(&self.inner.rooms).contains(room)
    }

    /// Disconnects the socket from its namespace (sends DISCONNECT, `41` for `/`), leaving the
    /// connection open, as `socket.disconnect()` does on Node.
    pub fn disconnect(&self) {
        if !self.is_connected() {
            return;
        }
        send_packet(
            &self.inner.engine,
            Packet {
                kind: PacketType::Disconnect,
                nsp: self.inner.nsp.clone(),
                id: None,
                data: None,
                attachments: Vec::new(),
                lazy: None,
            },
        );
        self.detach("server namespace disconnect");
    }

    /// Disconnects the socket and closes the whole connection, as `socket.disconnect(true)`
    /// does on Node: DISCONNECT for every namespace the connection joined (this one first,
    /// then the others in the order they joined), then the Engine.IO session closes.
    pub fn disconnect_and_close(&self) {
        self.disconnect();
        let others: Vec<MockSocket> = lock(&self.inner.conn.state).sockets.clone();
        for socket in others {
            socket.disconnect();
        }
        self.inner.engine.close(CloseCause::ServerClose, true);
    }

    /// Closes the connection under the socket without DISCONNECT, as Node's
    /// `socket.conn.close()`: the client sees its transport close and reconnects, and the
    /// socket's reason is `forced close`, which connection-state recovery recovers from.
    pub fn close_connection(&self) {
        self.inner.engine.close(CloseCause::ForcedClose, true);
    }

    /// Forgets the socket on its connection and marks it disconnected.
    fn detach(&self, reason: &str) {
        lock(&self.inner.conn.state)
            .sockets
            .retain(|s| !Arc::ptr_eq(&s.inner, &self.inner));
        self.mark_disconnected(reason);
    }

    fn mark_disconnected(&self, reason: &str) {
        // The reason and the server's socket list are settled before `connected` flips: a
        // test woken by wait_disconnected on another thread reads them at once.
        {
            let mut current = lock(&self.inner.reason);
            if current.is_some() {
                return;
            }
            *current = Some(reason.to_owned());
        }
        if let Some(server) = self.inner.engine.server() {
            lock(&server.sockets).retain(|s| !Arc::ptr_eq(&s.inner, &self.inner));
            if let Some(pid) = &self.inner.pid {
                if RECOVERABLE_REASONS.contains(&reason) {
                    lock(&server.recovery).persist(
                        &self.inner.nsp,
                        pid,
                        &self.inner.id,
                        self.rooms(),
                    );
                }
            }
        }
        self.inner.connected.send_replace(false);
        // Dropping the senders fails every pending emit_with_ack with Disconnected.
        lock(&self.inner.acks).clear();
    }

    fn on_event(&self, packet: Packet, transport: Transport) {
        let Some(server) = self.inner.engine.server() else {
            return;
        };
        let Ok((name, values)) = split_event(packet.data) else {
            return self.inner.engine.close(CloseCause::ParseError, true);
        };
        let args = Args::from_wire(values, packet.attachments);
        server.record(ReceivedEvent {
            connection_id: self.inner.engine.sid.clone(),
            socket_id: self.inner.id.clone(),
            namespace: self.inner.nsp.clone(),
            event: name.clone(),
            args: args.clone(),
            ack_id: packet.id,
            transport,
        });
        let handler = server
            .config
            .handlers
            .get(&(self.inner.nsp.clone(), name.clone()))
            .cloned();
        if let Some(handler) = handler {
            let ack = packet.id.map(|id| MockAck {
                socket: self.clone(),
                id,
            });
            let what = format!("handler for {name:?} on {}", self.inner.nsp);
            server.run_user(&what, || handler(self, args, ack));
        }
    }

    fn on_ack(&self, packet: Packet) {
        let Some(id) = packet.id else { return };
        let values = ack_args(packet.data);
        if let Some(tx) = lock(&self.inner.acks).remove(&id) {
            let _ = tx.send(Args::from_wire(values, packet.attachments));
        }
    }
}

/// The acknowledgement a client asked for with an event; answer it with [`MockAck::send`].
#[derive(Debug)]
pub struct MockAck {
    socket: MockSocket,
    id: u64,
}

impl MockAck {
    /// The ack id the client chose.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Sends the acknowledgement with these arguments (`3<id>[…]`, or a BINARY_ACK with
    /// attachments).
    pub fn send(self, args: Args) {
        if !self.socket.is_connected() {
            return;
        }
        let (values, attachments) = args.into_wire();
        let packet = Packet::ack(
            &self.socket.inner.nsp,
            self.id,
            Value::Array(values),
            attachments,
        );
        send_packet(&self.socket.inner.engine, packet);
    }
}
