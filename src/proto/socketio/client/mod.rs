//! The Socket.IO client as a state machine: namespaces and their phases, CONNECT and
//! CONNECT_ERROR, event validation, ack ids and deadlines, the at-least-once queue, the send
//! buffer of an outage, connection-state recovery and the reconnection policy. No sockets,
//! channels, clocks or random numbers: time comes in as `now`, randomness as a seed, callers
//! are named by [`Token`]s, and everything the core wants done comes out of `poll_*`.
//!
//! # Method kinds, and the order to call them
//!
//! - **In** (`handle_*`): [`handle_command`](ClientCore::handle_command) (what the application
//!   asks), [`handle_link_open`](ClientCore::handle_link_open) /
//!   [`handle_link_failed`](ClientCore::handle_link_failed) (the answer to an
//!   [`Output::OpenLink`]), [`handle_message`](ClientCore::handle_message) (a decoded packet from
//!   the server), [`handle_link_lost`](ClientCore::handle_link_lost),
//!   [`handle_transport_changed`](ClientCore::handle_transport_changed) (an upgrade completed)
//!   and [`handle_timeout`](ClientCore::handle_timeout) (at or after
//!   [`poll_timeout`](ClientCore::poll_timeout)).
//! - **Out**: [`poll_transmit`](ClientCore::poll_transmit) (packets for the current link, in
//!   order), [`poll_output`](ClientCore::poll_output) (replies by token, events per
//!   namespace, status changes, open/drop the link, finished) and
//!   [`poll_timeout`](ClientCore::poll_timeout) (when to call `handle_timeout` next).
//!
//! After every `handle_*` call, drain `poll_output` and `poll_transmit` (in that order: an
//! `Output::DropLink` says the packets queued before it are not for the next link, and the
//! core already discarded them), then re-read `poll_timeout`.
//!
//! # Namespace phases
//!
//! ```text
//!            Connect command
//!                  │
//!                  ▼        link open: CONNECT sent
//!   ┌─────────► Waiting ─────────────────────────► Connecting
//!   │              │                                   │  │
//!   │  link lost,  │ connect deadline,                 │  │ CONNECT_ERROR,
//!   │  reconnect   │ gave up                           │  │ connect deadline
//!   │              ▼                                   │  ▼
//!   │           (gone) ◄───────────────────────────────┼─(gone)
//!   │                                 CONNECT reply    │
//!   │                                                  ▼
//!   └────────────────────────────────────────────── Connected ──► (gone) on DISCONNECT,
//!                link lost, reconnection on                        disconnect(), or a
//!                                                                  loss with no reconnection
//! ```
//!
//! A namespace that is gone is announced with [`Output::Forget`]: its event stream ends.
//! When the last one is gone the core is finished ([`Output::Finished`]).

mod acks;
mod namespace;
mod timers;

#[cfg(test)]
mod harness;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use self::acks::{Answered, Queued};
use self::namespace::{Namespace, Phase};
use self::timers::TimerTable;
use crate::config::AuthSource;
use crate::event::{DisconnectReason, Event};
use crate::proto::backoff::Backoff;
use crate::proto::engineio::{detect, EngineVersion};
use crate::proto::socketio::{ack_args, event_data, split_event, Packet, PacketType};
use crate::proto::time::deadline_after;
use crate::proto::ProtocolError;
use crate::transport::Held;
use crate::{Args, Error, Transport};

pub(crate) use self::namespace::query_value;

/// Names a caller waiting for an answer (a connect, an acknowledgement). Chosen by the IO
/// side, unique among the callers waiting at any time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Token(pub(crate) u64);

/// What the application asks of the client.
pub(crate) enum Command {
    /// Join `namespace`; the answer goes to `reply`.
    Connect {
        namespace: Arc<str>,
        auth: AuthSource,
        reply: Token,
        /// When a first connect gives up (`None`: never).
        deadline: Option<Instant>,
    },
    /// Emit an event, the answer (with an ack) going to `ack`'s token.
    Emit {
        namespace: Arc<str>,
        event: String,
        args: Args,
        ack: Option<(Token, Duration)>,
        /// Dropped instead of buffered while disconnected.
        volatile: bool,
        /// Its bytes, counted against `max_send_queue` while the core keeps it.
        held: Held,
    },
    /// Answer the server's acknowledgement request `id`.
    Ack {
        namespace: Arc<str>,
        id: u64,
        args: Args,
    },
    /// Leave a namespace (the connection closes with the last one).
    Disconnect { namespace: Arc<str> },
    /// Leave every namespace (every handle is gone).
    DisconnectAll,
}

/// A change of what the handles of a namespace can see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Connected(bool),
    /// Gone for good: emits fail at the call site.
    Closed,
    Recovered(bool),
    /// Emits waiting for a connection.
    Buffered(usize),
}

/// What the core wants done.
#[derive(Debug)]
pub(crate) enum Output {
    /// The answer to a `Connect`.
    ConnectReply {
        token: Token,
        result: Result<(), Error>,
    },
    /// The answer to an emit that asked for an acknowledgement.
    AckReply {
        token: Token,
        result: Result<Args, Error>,
    },
    /// What the handles of `namespace` see changed.
    Status { namespace: Arc<str>, status: Status },
    /// Something for the application of `namespace` (never `Event::Message`: see `Message`).
    Event { namespace: Arc<str>, event: Event },
    /// The server emitted an event; `ack` is its acknowledgement id, `size` its wire size.
    Message {
        namespace: Arc<str>,
        event: String,
        args: Args,
        ack: Option<u64>,
        size: usize,
    },
    /// `namespace` is gone: its event stream ends.
    Forget { namespace: Arc<str> },
    /// Open an Engine.IO session with `version`, then call `handle_link_open` or
    /// `handle_link_failed`. `query_auth` goes into the handshake query (socket.io 2 servers
    /// take the main namespace's auth there).
    OpenLink {
        version: EngineVersion,
        query_auth: Option<Value>,
    },
    /// Close the current link (politely); it carries nothing for the core any more.
    DropLink,
    /// Every namespace is gone; `error` is the last failure, for callers still queued.
    Finished {
        reason: DisconnectReason,
        error: Option<Error>,
    },
}

/// The options the core acts on.
#[derive(Debug, Clone)]
pub(crate) struct CoreConfig {
    /// `EngineVersion::Auto` starts with v4 and switches to v3 when the server turns out to
    /// be a socket.io 2 one.
    pub(crate) version: EngineVersion,
    pub(crate) reconnection: bool,
    pub(crate) reconnection_attempts: Option<u32>,
    pub(crate) reconnection_delay: Duration,
    pub(crate) reconnection_delay_max: Duration,
    pub(crate) randomization_factor: f64,
    pub(crate) retry_initial_connect: bool,
    /// At-least-once delivery: resend each emit until acknowledged, this many times more.
    pub(crate) retries: Option<u32>,
    pub(crate) ack_timeout: Duration,
    /// The connect timeout (for the error of a connect that ran out of it).
    pub(crate) timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Timer {
    Reconnect,
    Connect(Arc<str>),
    Ack(Arc<str>, u64),
    /// The at-least-once queue head's attempt.
    Retry(Arc<str>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// No link; one is opened when a namespace needs it and no reconnection delay runs.
    Down,
    /// `OpenLink` went out; waiting for `handle_link_open` or `handle_link_failed`.
    Opening,
    Up(Transport),
}

/// The client state machine of one connection (see the module docs).
pub(crate) struct ClientCore {
    config: CoreConfig,
    /// The Engine.IO revision of the current (or next) link: never `Auto`.
    version: EngineVersion,
    detect_version: bool,
    /// The main namespace's auth: socket.io 2 servers take it in the handshake query.
    handshake_auth: AuthSource,
    namespaces: BTreeMap<Arc<str>, Namespace>,
    timers: TimerTable<Timer>,
    link: Link,
    backoff: Backoff,
    /// The attempt number of the link being opened (0: the first connect).
    attempt: u32,
    ever_connected: bool,
    last_error: Option<Error>,
    finished: bool,
    random: SplitMix64,
    transmit: VecDeque<Packet>,
    outputs: VecDeque<Output>,
}

impl ClientCore {
    /// A core with no namespace yet; `seed` drives the reconnection jitter.
    pub(crate) fn new(config: CoreConfig, handshake_auth: AuthSource, seed: u64) -> ClientCore {
        let backoff = Backoff::new(
            config.reconnection_delay,
            config.reconnection_delay_max,
            config.randomization_factor,
        );
        ClientCore {
            version: config.version.wire(),
            detect_version: config.version == EngineVersion::Auto,
            config,
            handshake_auth,
            namespaces: BTreeMap::new(),
            timers: TimerTable::default(),
            link: Link::Down,
            backoff,
            attempt: 0,
            ever_connected: false,
            last_error: None,
            finished: false,
            random: SplitMix64(seed),
            transmit: VecDeque::new(),
            outputs: VecDeque::new(),
        }
    }

    /// Whether the current link carries a namespace (or is being joined).
    pub(crate) fn is_linked(&self) -> bool {
        matches!(self.link, Link::Up(_))
    }

    pub(crate) fn poll_transmit(&mut self) -> Option<Packet> {
        self.transmit.pop_front()
    }

    pub(crate) fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    pub(crate) fn poll_timeout(&mut self) -> Option<Instant> {
        self.timers.next()
    }

    pub(crate) fn handle_command(&mut self, now: Instant, command: Command) {
        if self.finished {
            refuse(&mut self.outputs, command, &closed_error());
            return;
        }
        match command {
            Command::Connect {
                namespace,
                auth,
                reply,
                deadline,
            } => self.connect(now, namespace, auth, reply, deadline),
            Command::Emit {
                namespace,
                event,
                args,
                ack,
                volatile,
                held,
            } => self.emit(now, namespace, event, args, ack, volatile, held),
            Command::Ack {
                namespace,
                id,
                args,
            } => {
                let connected = self
                    .namespaces
                    .get(&namespace)
                    .is_some_and(Namespace::is_connected);
                if connected && self.is_linked() {
                    let (values, attachments) = args.into_wire();
                    self.transmit.push_back(Packet::ack(
                        &namespace,
                        id,
                        Value::Array(values),
                        attachments,
                    ));
                }
            }
            Command::Disconnect { namespace } => self.leave(&namespace),
            Command::DisconnectAll => {
                let names: Vec<Arc<str>> = self.namespaces.keys().cloned().collect();
                for namespace in names {
                    self.leave(&namespace);
                }
                self.finish(DisconnectReason::IoClientDisconnect);
            }
        }
    }

    fn connect(
        &mut self,
        now: Instant,
        namespace: Arc<str>,
        auth: AuthSource,
        reply: Token,
        deadline: Option<Instant>,
    ) {
        if self.namespaces.contains_key(&namespace) {
            self.outputs.push_back(Output::ConnectReply {
                token: reply,
                result: Err(Error::InvalidNamespace(format!(
                    "{namespace} is already connected on this client"
                ))),
            });
            return;
        }
        if let Some(deadline) = deadline {
            self.timers.set(Timer::Connect(namespace.clone()), deadline);
        }
        self.namespaces
            .insert(namespace.clone(), Namespace::new(auth, reply));
        match self.link {
            Link::Up(_) => self.join(&namespace, None),
            Link::Down if !self.timers.is_set(&Timer::Reconnect) => self.open_link(now),
            _ => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        now: Instant,
        namespace: Arc<str>,
        event: String,
        args: Args,
        ack: Option<(Token, Duration)>,
        volatile: bool,
        held: Held,
    ) {
        let linked = self.is_linked();
        let Some(socket) = self.namespaces.get_mut(&namespace) else {
            if let Some((token, _)) = ack {
                self.outputs.push_back(Output::AckReply {
                    token,
                    result: Err(Error::Disconnected(format!("{namespace} is not connected"))),
                });
            }
            return;
        };
        let connected = linked && socket.is_connected();
        if !connected && volatile {
            if let Some((token, _)) = ack {
                self.outputs.push_back(Output::AckReply {
                    token,
                    result: Err(Error::Disconnected(
                        "volatile emit while disconnected".into(),
                    )),
                });
            }
            return;
        }
        if self.config.retries.is_some() && !volatile {
            let (values, attachments) = args.into_wire();
            let (token, timeout) = match ack {
                Some((token, timeout)) => (Some(token), timeout),
                None => (None, self.config.ack_timeout),
            };
            socket.acks.enqueue(Queued {
                event,
                values,
                attachments,
                token,
                timeout,
                tries: 0,
                _held: held,
            });
            self.drain_queue(now, &namespace);
            return;
        }
        let (values, attachments) = args.into_wire();
        let id = ack.map(|(token, timeout)| {
            let id = socket.acks.next_id();
            socket.acks.await_ack(id, token, timeout, connected);
            self.timers.set(
                Timer::Ack(namespace.clone(), id),
                deadline_after(now, timeout),
            );
            id
        });
        let packet = Packet::event(&namespace, event_data(&event, values), attachments, id);
        if connected {
            self.transmit.push_back(packet);
        } else {
            socket.buffer.push((packet, held));
            let buffered = socket.buffer.len();
            self.status(&namespace, Status::Buffered(buffered));
        }
    }

    /// The application leaves `namespace`.
    fn leave(&mut self, namespace: &Arc<str>) {
        let Some(socket) = self.namespaces.get(namespace) else {
            return;
        };
        if self.is_linked() && matches!(socket.phase, Phase::Connected | Phase::Connecting { .. }) {
            self.transmit.push_back(Packet::disconnect(namespace));
        }
        self.close_namespace(namespace, DisconnectReason::IoClientDisconnect, None);
        if self.namespaces.is_empty() {
            self.finish(DisconnectReason::IoClientDisconnect);
        }
    }

    /// An Engine.IO session is open on `transport`: every waiting namespace joins.
    pub(crate) fn handle_link_open(&mut self, _now: Instant, transport: Transport) {
        if self.link != Link::Opening {
            return;
        }
        self.link = Link::Up(transport);
        let attempt = (self.attempt > 0).then_some(self.attempt);
        let names: Vec<Arc<str>> = self.namespaces.keys().cloned().collect();
        for namespace in names {
            self.join(&namespace, attempt);
        }
    }

    /// Opening the session failed.
    pub(crate) fn handle_link_failed(&mut self, now: Instant, error: Error) {
        if self.link != Link::Opening {
            return;
        }
        self.link = Link::Down;
        let server_is_socketio2 = is_socketio2_server(&error);
        if server_is_socketio2 && self.switch_to_v3(now) {
            return;
        }
        if self.detect_version && self.version == EngineVersion::V3 {
            if let Error::Handshake { status, body, .. } = &error {
                if detect::refuses_engineio3(*status, body) {
                    // The socket.io 2 server detected earlier became a 3/4 one: the next
                    // attempt, after the usual delay, speaks v4 again.
                    self.version = EngineVersion::V4;
                }
            }
        }
        // Retrying cannot help a client set to the wrong protocol version.
        if !self.ever_connected && (!self.config.retry_initial_connect || server_is_socketio2) {
            // A first connect that fails is the caller's error, at once.
            let names: Vec<Arc<str>> = self.namespaces.keys().cloned().collect();
            for namespace in names {
                self.close_namespace(&namespace, DisconnectReason::TransportError, Some(&error));
            }
            self.last_error = Some(error);
            self.finish(DisconnectReason::TransportError);
            return;
        }
        let shared = Arc::new(error.clone());
        let announce: Vec<Arc<str>> = self
            .namespaces
            .iter()
            .filter(|(_, s)| matches!(s.phase, Phase::Waiting { reply: None }))
            .map(|(n, _)| n.clone())
            .collect();
        for namespace in announce {
            self.event(&namespace, Event::Error(shared.clone()));
        }
        self.last_error = Some(error);
        self.schedule_reconnect(now);
    }

    /// The link is gone (closed, failed, heartbeat lost, unreadable bytes).
    pub(crate) fn handle_link_lost(
        &mut self,
        now: Instant,
        reason: DisconnectReason,
        error: Option<Error>,
    ) {
        if !self.is_linked() {
            return;
        }
        self.link = Link::Down;
        self.transmit.clear();
        self.outputs.push_back(Output::DropLink);
        let reconnect = self.config.reconnection
            && !matches!(
                reason,
                DisconnectReason::IoClientDisconnect | DisconnectReason::IoServerDisconnect
            );
        let gone = Error::Disconnected(reason.as_str().to_string());
        let retry_initial_connect =
            self.config.retry_initial_connect && !error.as_ref().is_some_and(is_socketio2_server);
        let shared = error.clone().map(Arc::new);
        let names: Vec<Arc<str>> = self.namespaces.keys().cloned().collect();
        for namespace in names {
            let Some(socket) = self.namespaces.get_mut(&namespace) else {
                continue;
            };
            for token in socket.acks.take_sent() {
                self.outputs.push_back(Output::AckReply {
                    token,
                    result: Err(gone.clone()),
                });
            }
            self.timers.cancel(&Timer::Retry(namespace.clone()));
            let was_connected = socket.is_connected();
            // A first connect still in progress keeps waiting only when the caller asked for
            // retries.
            let keep = reconnect && (!socket.has_reply() || retry_initial_connect);
            self.status(&namespace, Status::Connected(false));
            if !keep {
                // Before the application hears of it: an emit right after must fail.
                self.status(&namespace, Status::Closed);
            }
            if was_connected {
                if let Some(error) = &shared {
                    self.event(&namespace, Event::Error(error.clone()));
                }
                self.event(
                    &namespace,
                    Event::Disconnected {
                        namespace: namespace.to_string(),
                        reason: reason.clone(),
                    },
                );
            }
            if keep {
                let socket = self.namespaces.get_mut(&namespace).expect("present");
                let reply = socket.take_reply();
                socket.phase = Phase::Waiting { reply };
            } else if was_connected {
                // Announced above: it only ends.
                self.drop_namespace(&namespace, &gone);
            } else {
                self.close_namespace(&namespace, reason.clone(), error.as_ref());
            }
        }
        if let Some(error) = error {
            self.last_error = Some(error);
        }
        if reconnect && !self.namespaces.is_empty() {
            self.schedule_reconnect(now);
        } else {
            self.finish(reason);
        }
    }

    /// The link moved to another transport (an upgrade completed).
    pub(crate) fn handle_transport_changed(&mut self, from: Transport, to: Transport) {
        if !self.is_linked() {
            return;
        }
        self.link = Link::Up(to);
        let names: Vec<Arc<str>> = self.namespaces.keys().cloned().collect();
        for namespace in names {
            self.event(&namespace, Event::TransportChanged { from, to });
        }
    }

    /// A complete packet from the server; `size` is its weight on the wire.
    pub(crate) fn handle_message(&mut self, now: Instant, packet: Packet, size: usize) {
        let Link::Up(transport) = self.link else {
            return;
        };
        if let Err(error) = self.on_packet(now, packet, size, transport) {
            let error = Error::Protocol(error);
            if !(is_socketio2_server(&error) && self.switch_to_v3(now)) {
                self.handle_link_lost(now, DisconnectReason::ParseError, Some(error));
            }
        }
    }

    fn on_packet(
        &mut self,
        now: Instant,
        packet: Packet,
        size: usize,
        transport: Transport,
    ) -> Result<(), ProtocolError> {
        match packet.kind {
            PacketType::Connect => self.on_connected(now, packet, transport)?,
            PacketType::ConnectError => {
                let Some(namespace) = self.key(&packet.nsp) else {
                    return Ok(());
                };
                let error = namespace::refusal(&packet.nsp, packet.data);
                let socket = self.namespaces.get_mut(&namespace).expect("present");
                if socket.has_reply() {
                    self.close_namespace(
                        &namespace,
                        DisconnectReason::IoServerDisconnect,
                        Some(&error),
                    );
                } else {
                    // Refused on a reconnection (e.g. an expired token): the socket is closed,
                    // the application hears why.
                    self.status(&namespace, Status::Closed);
                    self.status(&namespace, Status::Connected(false));
                    self.event(&namespace, Event::Error(Arc::new(error.clone())));
                    self.drop_namespace(&namespace, &error);
                }
                if self.namespaces.is_empty() {
                    self.finish(DisconnectReason::IoServerDisconnect);
                }
            }
            PacketType::Disconnect => {
                if let Some(namespace) = self.key(&packet.nsp) {
                    self.close_namespace(&namespace, DisconnectReason::IoServerDisconnect, None);
                }
                if self.namespaces.is_empty() {
                    self.finish(DisconnectReason::IoServerDisconnect);
                }
            }
            PacketType::Event | PacketType::BinaryEvent => {
                let Some(namespace) = self.key(&packet.nsp) else {
                    return Ok(());
                };
                let (event, values) = split_event(packet.data)?;
                let socket = self.namespaces.get_mut(&namespace).expect("present");
                // With connection-state recovery on, the server appends its offset to every
                // event as a last string argument (left in place, as the JS client does).
                if socket.pid.is_some() {
                    if let Some(Value::String(offset)) = values.last() {
                        socket.offset = Some(offset.clone());
                    }
                }
                self.outputs.push_back(Output::Message {
                    namespace,
                    event,
                    args: Args::from_wire(values, packet.attachments),
                    ack: packet.id,
                    size,
                });
            }
            PacketType::Ack | PacketType::BinaryAck => {
                let Some(id) = packet.id else {
                    return Err(ProtocolError::InvalidPacket("ack without an id".into()));
                };
                let Some(namespace) = self.key(&packet.nsp) else {
                    return Ok(());
                };
                let socket = self.namespaces.get_mut(&namespace).expect("present");
                let answered = socket.acks.answer(id);
                let args = || Args::from_wire(ack_args(packet.data), packet.attachments);
                match answered {
                    Answered::Pending(token) => {
                        self.timers.cancel(&Timer::Ack(namespace, id));
                        self.outputs.push_back(Output::AckReply {
                            token,
                            result: Ok(args()),
                        });
                    }
                    Answered::QueueHead(token) => {
                        self.timers.cancel(&Timer::Retry(namespace.clone()));
                        if let Some(token) = token {
                            self.outputs.push_back(Output::AckReply {
                                token,
                                result: Ok(args()),
                            });
                        }
                        self.drain_queue(now, &namespace);
                    }
                    Answered::Nobody => {}
                }
            }
        }
        Ok(())
    }

    /// The server accepted a namespace: answer the caller, announce it, send what waited.
    fn on_connected(
        &mut self,
        now: Instant,
        packet: Packet,
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
        let Some(namespace) = self.key(&packet.nsp) else {
            return Ok(());
        };
        let socket = self.namespaces.get_mut(&namespace).expect("present");
        let Phase::Connecting { reply, attempt } =
            std::mem::replace(&mut socket.phase, Phase::Connected)
        else {
            if !socket.is_connected() {
                // Waiting (not asked on this link): stays so.
                let reply = socket.take_reply();
                socket.phase = Phase::Waiting { reply };
            }
            return Ok(());
        };
        let recovered = socket.accept_pid(packet.data.as_ref());
        let buffered = std::mem::take(&mut socket.buffer);
        socket.acks.mark_sent();
        self.timers.cancel(&Timer::Connect(namespace.clone()));
        self.status(&namespace, Status::Recovered(recovered));
        self.status(&namespace, Status::Connected(true));
        if let Some(token) = reply {
            self.outputs.push_back(Output::ConnectReply {
                token,
                result: Ok(()),
            });
        }
        self.event(
            &namespace,
            Event::Connected {
                namespace: packet.nsp.clone(),
                transport,
            },
        );
        if let Some(attempt) = attempt {
            self.event(
                &namespace,
                Event::Reconnected {
                    attempt,
                    transport,
                    recovered,
                },
            );
        }
        if !buffered.is_empty() {
            self.status(&namespace, Status::Buffered(0));
        }
        self.ever_connected = true;
        self.backoff.reset();
        self.transmit
            .extend(buffered.into_iter().map(|(packet, _held)| packet));
        self.drain_queue(now, &namespace);
        Ok(())
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.pop_expired(now) {
            match timer {
                Timer::Reconnect => {
                    if self.link == Link::Down && !self.namespaces.is_empty() {
                        self.open_link(now);
                    }
                }
                Timer::Ack(namespace, id) => {
                    let expired = self
                        .namespaces
                        .get_mut(&namespace)
                        .and_then(|s| s.acks.expire(id));
                    if let Some(ack) = expired {
                        self.outputs.push_back(Output::AckReply {
                            token: ack.token,
                            result: Err(Error::AckTimeout(ack.timeout)),
                        });
                    }
                }
                Timer::Retry(namespace) => {
                    let retries = self.config.retries.unwrap_or(0);
                    let Some(socket) = self.namespaces.get_mut(&namespace) else {
                        continue;
                    };
                    if let Some(failed) = socket.acks.attempt_timed_out(retries) {
                        let error = Error::AckTimeout(failed.timeout);
                        match failed.token {
                            Some(token) => self.outputs.push_back(Output::AckReply {
                                token,
                                result: Err(error),
                            }),
                            // A plain emit has no caller waiting: the application hears it here.
                            None => self.event(&namespace, Event::Error(Arc::new(error))),
                        }
                    }
                    self.drain_queue(now, &namespace);
                }
                Timer::Connect(namespace) => {
                    let error = Error::ConnectTimeout(self.config.timeout);
                    if self
                        .namespaces
                        .get(&namespace)
                        .is_some_and(|s| !s.is_connected())
                    {
                        self.close_namespace(
                            &namespace,
                            DisconnectReason::TransportError,
                            Some(&error),
                        );
                    }
                }
            }
        }
        if self.namespaces.is_empty() && !self.finished {
            self.finish(DisconnectReason::IoClientDisconnect);
        }
    }

    /// Sends a waiting namespace's CONNECT on the current link.
    fn join(&mut self, namespace: &Arc<str>, attempt: Option<u32>) {
        let version = self.version;
        let Some(socket) = self.namespaces.get_mut(namespace) else {
            return;
        };
        let Phase::Waiting { reply } = &mut socket.phase else {
            return;
        };
        let reply = reply.take();
        socket.phase = Phase::Connecting { reply, attempt };
        if let Some(packet) = socket.connect_packet(namespace, version) {
            self.transmit.push_back(packet);
        }
    }

    fn open_link(&mut self, _now: Instant) {
        self.link = Link::Opening;
        self.attempt = self.backoff.attempts();
        // socket.io 2 servers take the main namespace's auth from the handshake query. Only
        // then is it evaluated here (a callback runs once per connect).
        let query_auth = match self.version {
            EngineVersion::V3 => self.handshake_auth.value(),
            _ => None,
        };
        self.outputs.push_back(Output::OpenLink {
            version: self.version,
            query_auth,
        });
    }

    /// With `EngineVersion::Auto`, a v4 link reached a socket.io 2 server: the link (if any)
    /// is dropped, its namespaces wait again with their callers, and the next link, opened at
    /// once, speaks v3. `false` when that does not apply (not `Auto`, already v3, or a
    /// namespace already connected on the link, which a socket.io 2 server never allows).
    fn switch_to_v3(&mut self, now: Instant) -> bool {
        let connected = self.namespaces.values().any(Namespace::is_connected);
        if !self.detect_version || self.version == EngineVersion::V3 || connected {
            return false;
        }
        self.version = EngineVersion::V3;
        if self.is_linked() {
            self.transmit.clear();
            self.outputs.push_back(Output::DropLink);
        }
        for socket in self.namespaces.values_mut() {
            let reply = socket.take_reply();
            socket.phase = Phase::Waiting { reply };
        }
        self.open_link(now);
        true
    }

    /// Plans the next reconnection attempt, or gives up after the configured attempts.
    fn schedule_reconnect(&mut self, now: Instant) {
        if !self.config.reconnection && self.ever_connected {
            self.finish(DisconnectReason::TransportClose);
            return;
        }
        let attempt = self.backoff.attempts().saturating_add(1);
        if self
            .config
            .reconnection_attempts
            .is_some_and(|max| attempt > max)
        {
            let error = self
                .last_error
                .clone()
                .unwrap_or_else(|| Error::Disconnected("reconnection failed".into()));
            let names: Vec<Arc<str>> = self.namespaces.keys().cloned().collect();
            for namespace in names {
                let socket = self.namespaces.get(&namespace).expect("present");
                if socket.has_reply() {
                    self.close_namespace(
                        &namespace,
                        DisconnectReason::TransportClose,
                        Some(&error),
                    );
                } else {
                    self.status(&namespace, Status::Closed);
                    self.event(&namespace, Event::ReconnectFailed);
                    self.drop_namespace(&namespace, &error);
                }
            }
            self.finish(DisconnectReason::TransportClose);
            return;
        }
        let delay = self.backoff.next_delay(self.random.next_f64());
        self.timers
            .set(Timer::Reconnect, deadline_after(now, delay));
        let announce: Vec<Arc<str>> = self
            .namespaces
            .iter()
            .filter(|(_, s)| matches!(s.phase, Phase::Waiting { reply: None }))
            .map(|(n, _)| n.clone())
            .collect();
        for namespace in announce {
            self.event(&namespace, Event::Reconnecting { attempt, delay });
        }
    }

    /// Sends the head of a namespace's at-least-once queue when nothing of it is in flight.
    fn drain_queue(&mut self, now: Instant, namespace: &Arc<str>) {
        if !self.is_linked() {
            return;
        }
        let Some(socket) = self.namespaces.get_mut(namespace) else {
            return;
        };
        if !socket.is_connected() {
            return;
        }
        let Some((id, head)) = socket.acks.next_attempt() else {
            return;
        };
        let packet = Packet::event(
            namespace,
            event_data(&head.event, head.values.iter().cloned()),
            head.attachments.clone(),
            Some(id),
        );
        let at = deadline_after(now, head.timeout);
        self.timers.set(Timer::Retry(namespace.clone()), at);
        self.transmit.push_back(packet);
    }

    /// Ends one namespace for good: its callers fail, the application hears why (when it was
    /// connected), its event stream ends.
    fn close_namespace(
        &mut self,
        namespace: &Arc<str>,
        reason: DisconnectReason,
        error: Option<&Error>,
    ) {
        let Some(socket) = self.namespaces.get_mut(namespace) else {
            return;
        };
        let gone = Error::Disconnected(reason.as_str().to_string());
        let was_connected = socket.is_connected();
        let reply = socket.take_reply();
        self.status(namespace, Status::Closed);
        self.status(namespace, Status::Connected(false));
        if let Some(token) = reply {
            self.outputs.push_back(Output::ConnectReply {
                token,
                result: Err(error.cloned().unwrap_or_else(|| gone.clone())),
            });
        } else if was_connected {
            if let Some(error) = error {
                self.event(namespace, Event::Error(Arc::new(error.clone())));
            }
            self.event(
                namespace,
                Event::Disconnected {
                    namespace: namespace.to_string(),
                    reason,
                },
            );
        }
        // Reconnecting (no caller, not connected): the disconnect was announced when the
        // link was lost; ending the event stream says the rest.
        self.drop_namespace(namespace, error.unwrap_or(&gone));
    }

    /// Removes a namespace: its acks and queued emits fail with `error`, its timers go.
    fn drop_namespace(&mut self, namespace: &Arc<str>, error: &Error) {
        let Some(mut socket) = self.namespaces.remove(namespace) else {
            return;
        };
        for token in socket.acks.take_all() {
            self.outputs.push_back(Output::AckReply {
                token,
                result: Err(error.clone()),
            });
        }
        if let Some(token) = socket.take_reply() {
            self.outputs.push_back(Output::ConnectReply {
                token,
                result: Err(error.clone()),
            });
        }
        self.timers.cancel(&Timer::Connect(namespace.clone()));
        self.timers.cancel(&Timer::Retry(namespace.clone()));
        // Ack timers of the namespace are skipped when they fire (no caller left).
        self.outputs.push_back(Output::Forget {
            namespace: namespace.clone(),
        });
    }

    fn finish(&mut self, reason: DisconnectReason) {
        if self.finished {
            return;
        }
        self.finished = true;
        let names: Vec<Arc<str>> = self.namespaces.keys().cloned().collect();
        let error = self
            .last_error
            .clone()
            .unwrap_or_else(|| Error::Disconnected("connection closed".into()));
        for namespace in names {
            self.status(&namespace, Status::Closed);
            self.drop_namespace(&namespace, &error);
        }
        self.timers = TimerTable::default();
        self.outputs.push_back(Output::Finished {
            reason,
            error: self.last_error.clone(),
        });
    }

    fn key(&self, nsp: &str) -> Option<Arc<str>> {
        self.namespaces.get_key_value(nsp).map(|(k, _)| k.clone())
    }

    fn status(&mut self, namespace: &Arc<str>, status: Status) {
        self.outputs.push_back(Output::Status {
            namespace: namespace.clone(),
            status,
        });
    }

    fn event(&mut self, namespace: &Arc<str>, event: Event) {
        self.outputs.push_back(Output::Event {
            namespace: namespace.clone(),
            event,
        });
    }
}

/// Answers a command the finished core cannot serve.
fn refuse(outputs: &mut VecDeque<Output>, command: Command, error: &Error) {
    match command {
        Command::Connect { reply, .. } => outputs.push_back(Output::ConnectReply {
            token: reply,
            result: Err(error.clone()),
        }),
        Command::Emit {
            ack: Some((token, _)),
            ..
        } => outputs.push_back(Output::AckReply {
            token,
            result: Err(error.clone()),
        }),
        _ => {}
    }
}

fn closed_error() -> Error {
    Error::Disconnected("connection closed".into())
}

/// Whether `error` says the server speaks socket.io 2 to a client set to v4.
pub(crate) fn is_socketio2_server(error: &Error) -> bool {
    matches!(error, Error::Protocol(e) if detect::is_socketio2_server(e))
}

/// The reconnection jitter's random numbers: small, seeded, reproducible under test.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}
