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
mod incoming;
mod interface;
mod lifecycle;
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

use self::acks::Queued;
use self::namespace::{Namespace, Phase};
use self::timers::TimerTable;
use crate::config::AuthSource;
use crate::event::Event;
use crate::proto::backoff::Backoff;
use crate::proto::engineio::{detect, EngineVersion};
use crate::proto::socketio::{event_data, Packet};
use crate::proto::time::deadline_after;
use crate::reason::DisconnectReason;
use crate::transport::Held;
use crate::{Args, Error, Transport};

pub(crate) use self::interface::{Command, CoreConfig, Output, Status, Token};
pub(crate) use self::namespace::query_value;

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

/// How long a namespace whose connect ran out of time waits for the link's verdict (see
/// `ClientCore::overdue`): the link's open has the same deadline, give or take scheduling.
const LINK_VERDICT_GRACE: Duration = Duration::from_secs(1);

/// The client state machine of one connection (see the module docs).
pub(crate) struct ClientCore {
    config: CoreConfig,
    /// The Engine.IO revision of the current (or next) link: never `Auto`.
    version: EngineVersion,
    detect_version: bool,
    /// The main namespace's auth: socket.io 2 servers take it in the handshake query.
    handshake_auth: AuthSource,
    /// Boxed: a BTreeMap node holds eleven entries, most of them empty for a client with one
    /// namespace (2.8 KiB per client unboxed).
    namespaces: BTreeMap<Arc<str>, Box<Namespace>>,
    timers: TimerTable<Timer>,
    link: Link,
    backoff: Backoff,
    /// The Engine.IO session id of the current link.
    engine_sid: Arc<str>,
    /// Counts links, so that an answer meant for a link that is gone is recognised.
    link_epoch: u64,
    /// The attempt number of the link being opened (0: the first connect).
    attempt: u32,
    ever_connected: bool,
    last_error: Option<Error>,
    /// Why the last namespace was closed or the last link lost: the reason a call on a socket
    /// that is not connected fails with.
    last_reason: Option<DisconnectReason>,
    /// Namespaces whose connect ran out of time while the link was being opened. The link's
    /// open is bounded by the same timeout, so its verdict (the report of every transport's
    /// attempt) is due at once; they wait for it, at most [`LINK_VERDICT_GRACE`], and fail
    /// with it rather than with a bare `ConnectTimeout`.
    overdue: Vec<Arc<str>>,
    finished: bool,
    random: SplitMix64,
    transmit: VecDeque<Packet>,
    outputs: VecDeque<Output>,
}

impl ClientCore {
    /// Frees the output queues' memory while they are empty: they grow with a burst of
    /// outputs and would keep that size for the connection's life.
    pub(crate) fn release_idle_buffers(&mut self) {
        if self.transmit.is_empty() {
            self.transmit = VecDeque::new();
        }
        if self.outputs.is_empty() {
            self.outputs = VecDeque::new();
        }
    }

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
            overdue: Vec::new(),
            last_reason: None,
            link: Link::Down,
            backoff,
            engine_sid: Arc::from(""),
            link_epoch: 0,
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

    /// The error of a call on a socket that is not connected (anymore).
    fn disconnected(&self) -> Error {
        Error::Disconnected(
            self.last_reason
                .clone()
                .unwrap_or(DisconnectReason::TransportClose),
        )
    }

    pub(crate) fn poll_timeout(&mut self) -> Option<Instant> {
        self.timers.next()
    }

    pub(crate) fn handle_command(&mut self, now: Instant, command: Command) {
        if self.finished {
            let closed = self.disconnected();
            refuse(&mut self.outputs, command, &closed);
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
                    .is_some_and(|n| n.is_connected());
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
            .insert(namespace.clone(), Box::new(Namespace::new(auth, reply)));
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
                    result: Err(self.disconnected()),
                });
            }
            return;
        };
        let connected = linked && socket.is_connected();
        if !connected && volatile {
            if let Some((token, _)) = ack {
                self.outputs.push_back(Output::AckReply {
                    token,
                    result: Err(self.disconnected()),
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
        if self.is_linked()
            && matches!(
                socket.phase,
                Phase::Connected | Phase::Connecting { sent: true, .. }
            )
        {
            self.transmit.push_back(Packet::disconnect(namespace));
        }
        self.close_namespace(namespace, DisconnectReason::IoClientDisconnect, None);
        if self.namespaces.is_empty() {
            self.finish(DisconnectReason::IoClientDisconnect);
        }
    }

    /// An Engine.IO session is open on `transport`: every waiting namespace joins.
    /// `engine_sid` is the session's id (a socket.io 2 socket's id derives from it).
    pub(crate) fn handle_link_open(
        &mut self,
        _now: Instant,
        transport: Transport,
        engine_sid: &str,
    ) {
        if self.link != Link::Opening {
            return;
        }
        self.engine_sid = Arc::from(engine_sid);
        self.link_epoch = self.link_epoch.wrapping_add(1);
        self.link = Link::Up(transport);
        // Opened too late for the namespaces already out of time.
        let timed_out = Error::ConnectTimeout(self.config.timeout);
        for namespace in std::mem::take(&mut self.overdue) {
            self.close_namespace(
                &namespace,
                DisconnectReason::TransportError,
                Some(&timed_out),
            );
        }
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
        for namespace in std::mem::take(&mut self.overdue) {
            self.close_namespace(&namespace, DisconnectReason::TransportError, Some(&error));
        }
        if self.namespaces.is_empty() {
            self.last_error = Some(error);
            self.finish(DisconnectReason::TransportError);
            return;
        }
        let server_is_socketio2 = is_socketio2_server(&error);
        if server_is_socketio2 && self.switch_to_v3(now) {
            return;
        }
        if self.detect_version && self.version == EngineVersion::V3 {
            if let Error::Handshake { status, body, .. } = error.last_failure() {
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
        self.announce_to_reconnecting(Event::Error(Arc::new(error.clone())));
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
        self.last_reason = Some(reason.clone());
        let gone = Error::Disconnected(reason.clone());
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
                self.status(&namespace, Status::Closed(reason.clone()));
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

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.pop_expired(now) {
            match timer {
                Timer::Reconnect => {
                    if self.link == Link::Down && !self.namespaces.is_empty() {
                        self.open_link(now);
                    }
                }
                Timer::Ack(namespace, id) => {
                    let Some(socket) = self.namespaces.get_mut(&namespace) else {
                        continue;
                    };
                    let expired = socket.acks.expire(id);
                    if expired.as_ref().is_some_and(|ack| !ack.sent) {
                        // Still in the send buffer: it is withdrawn, as the JS client does, so
                        // a caller told `AckTimeout` knows the server never gets it.
                        let before = socket.buffer.len();
                        socket.buffer.retain(|(packet, _)| packet.id != Some(id));
                        if socket.buffer.len() != before {
                            let buffered = socket.buffer.len();
                            self.status(&namespace, Status::Buffered(buffered));
                        }
                    }
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
                    let waiting = self
                        .namespaces
                        .get(&namespace)
                        .is_some_and(|s| !s.is_connected());
                    if waiting && self.link == Link::Opening && !self.overdue.contains(&namespace) {
                        self.overdue.push(namespace.clone());
                        self.timers
                            .set(Timer::Connect(namespace), now + LINK_VERDICT_GRACE);
                        continue;
                    }
                    if waiting {
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
        // socket.io 2 joins `/` by itself (its auth went in the handshake query).
        let implicit = version == EngineVersion::V3 && &**namespace == "/";
        if socket.auth.is_async() && !implicit {
            socket.phase = Phase::Connecting {
                reply,
                attempt,
                sent: false,
            };
            self.outputs.push_back(Output::ResolveAuth {
                namespace: namespace.clone(),
                link: self.link_epoch,
            });
            return;
        }
        socket.phase = Phase::Connecting {
            reply,
            attempt,
            sent: true,
        };
        // The auth is evaluated now, once per connect.
        let auth = socket.auth.value();
        if let Some(packet) = socket.connect_packet(namespace, version, auth) {
            self.transmit.push_back(packet);
        }
    }

    /// The asynchronous auth of `namespace`, asked for on link `link`, is `auth`: its CONNECT
    /// goes out (unless that link is gone, or the namespace left meanwhile).
    pub(crate) fn handle_auth(
        &mut self,
        _now: Instant,
        namespace: &str,
        link: u64,
        auth: Option<Value>,
    ) {
        if link != self.link_epoch || !self.is_linked() {
            return;
        }
        let version = self.version;
        let Some(socket) = self.namespaces.get_mut(namespace) else {
            return;
        };
        let Phase::Connecting { sent, .. } = &mut socket.phase else {
            return;
        };
        if *sent {
            return;
        }
        *sent = true;
        if let Some(packet) = socket.connect_packet(namespace, version, auth) {
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

/// Whether `error` says the server speaks socket.io 2 to a client set to v4.
pub(crate) fn is_socketio2_server(error: &Error) -> bool {
    matches!(error.last_failure(), Error::Protocol(e) if detect::is_socketio2_server(e))
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
