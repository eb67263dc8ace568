//! The client core against a scripted socket.io server on a virtual clock, in the manner of
//! quinn-proto's `Pair`: [`Pair::drive`] moves packets both ways until nothing moves,
//! [`Pair::step`] jumps the clock to the core's next deadline and fires it. Nothing sleeps and
//! nothing is random but the seeded jitter, so a scenario of minutes runs in microseconds and
//! the same way every time.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{ClientCore, Command, CoreConfig, Output, Status, Token};
use crate::config::AuthSource;
use crate::event::Event;
use crate::proto::engineio::EngineVersion;
use crate::proto::socketio::{split_event, Packet, PacketType};
use crate::reason::DisconnectReason;
use crate::transport::Outgoing;
use crate::{Args, Error, Transport};

/// The JS client's defaults, with no jitter so delays can be asserted.
pub(super) fn config() -> CoreConfig {
    CoreConfig {
        version: EngineVersion::V4,
        reconnection: true,
        reconnection_attempts: None,
        reconnection_delay: Duration::from_secs(1),
        reconnection_delay_max: Duration::from_secs(5),
        randomization_factor: 0.0,
        retry_initial_connect: false,
        retries: None,
        ack_timeout: Duration::from_secs(5),
        timeout: Duration::from_secs(20),
    }
}

/// An event the server received.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Received {
    pub(super) namespace: String,
    pub(super) event: String,
    pub(super) args: Vec<Value>,
    pub(super) id: Option<u64>,
}

/// A socket.io 4 server, as far as the core can tell: it joins namespaces, refuses the ones it
/// is told to, records events, acknowledges (or not), restarts, recovers sessions.
#[derive(Default)]
pub(super) struct ScriptedServer {
    /// Refuses new sessions (a restart in progress, a network cut).
    pub(super) down: bool,
    /// Leaves a link being opened unanswered: the test answers it with
    /// `core.handle_link_failed` or `core.handle_link_open` itself.
    pub(super) hang_open: bool,
    /// Namespaces refused with this CONNECT_ERROR data.
    pub(super) refuse: HashMap<String, Value>,
    /// Answers every event that asks for an acknowledgement.
    pub(super) auto_ack: bool,
    /// Acknowledgements to swallow before answering again.
    pub(super) swallow_acks: usize,
    /// Connection-state recovery: CONNECT replies carry a pid, events an offset.
    pub(super) recovery: bool,
    pub(super) received: Vec<Received>,
    /// CONNECT packets received, with their data.
    pub(super) connects: Vec<(String, Option<Value>)>,
    connected: BTreeSet<String>,
    /// pid → the offset reached, for sessions that can be recovered.
    sessions: HashMap<String, u64>,
    next_pid: u64,
    next_offset: u64,
    to_client: VecDeque<Packet>,
}

impl ScriptedServer {
    fn on_packet(&mut self, packet: Packet) {
        match packet.kind {
            PacketType::Connect => {
                self.connects
                    .push((packet.nsp.clone(), packet.data.clone()));
                if let Some(data) = self.refuse.get(&packet.nsp) {
                    self.to_client
                        .push_back(Packet::connect_error(&packet.nsp, data.clone()));
                    return;
                }
                let asked = packet
                    .data
                    .as_ref()
                    .and_then(|d| d.get("pid"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let pid = match asked {
                    Some(pid) if self.recovery && self.sessions.contains_key(&pid) => pid,
                    _ => {
                        self.next_pid += 1;
                        format!("pid{}", self.next_pid)
                    }
                };
                self.connected.insert(packet.nsp.clone());
                let mut reply = json!({"sid": format!("sid-{}", packet.nsp)});
                if self.recovery {
                    reply["pid"] = json!(pid);
                    self.sessions.entry(pid).or_insert(0);
                }
                self.to_client
                    .push_back(Packet::connect(&packet.nsp, Some(reply)));
            }
            PacketType::Event | PacketType::BinaryEvent => {
                let (event, args) =
                    split_event(packet.data).expect("the client sends valid events");
                self.received.push(Received {
                    namespace: packet.nsp.clone(),
                    event,
                    args: args.clone(),
                    id: packet.id,
                });
                if let (Some(id), true) = (packet.id, self.auto_ack) {
                    if self.swallow_acks > 0 {
                        self.swallow_acks -= 1;
                    } else {
                        self.to_client.push_back(Packet::ack(
                            &packet.nsp,
                            id,
                            Value::Array(args),
                            Vec::new(),
                        ));
                    }
                }
            }
            PacketType::Disconnect => {
                self.connected.remove(&packet.nsp);
            }
            _ => {}
        }
    }

    /// The server emits `event` to `namespace` (with its recovery offset when on).
    pub(super) fn emit(&mut self, namespace: &str, event: &str, mut args: Vec<Value>) {
        if self.recovery {
            self.next_offset += 1;
            args.push(json!(format!("off{}", self.next_offset)));
        }
        let data = super::event_data(event, args);
        self.to_client
            .push_back(Packet::event(namespace, data, Vec::new(), None));
    }

    pub(super) fn is_connected(&self, namespace: &str) -> bool {
        self.connected.contains(namespace)
    }
}

/// What the application saw.
#[derive(Default, Debug)]
pub(super) struct AppLog {
    pub(super) connect_replies: BTreeMap<Token, Vec<Result<(), Error>>>,
    pub(super) ack_replies: BTreeMap<Token, Vec<Result<Args, Error>>>,
    pub(super) events: Vec<(String, Event)>,
    pub(super) messages: Vec<(String, String, Vec<Value>)>,
    pub(super) status: Vec<(String, Status)>,
    pub(super) forgotten: Vec<String>,
    pub(super) finished: Option<DisconnectReason>,
    pub(super) links_opened: Vec<EngineVersion>,
    pub(super) links_dropped: usize,
    /// Asynchronous auth asked for: namespace and link epoch.
    pub(super) auth_requests: Vec<(String, u64)>,
}

pub(super) struct Pair {
    pub(super) core: ClientCore,
    pub(super) server: ScriptedServer,
    pub(super) now: Instant,
    pub(super) start: Instant,
    pub(super) log: AppLog,
    next_token: u64,
    linked: bool,
    outgoing: Outgoing,
}

impl Pair {
    pub(super) fn new(config: CoreConfig) -> Pair {
        let now = Instant::now();
        Pair {
            core: ClientCore::new(config, AuthSource::None, 7),
            server: ScriptedServer {
                auto_ack: true,
                ..ScriptedServer::default()
            },
            now,
            start: now,
            log: AppLog::default(),
            next_token: 0,
            linked: false,
            outgoing: Outgoing::default(),
        }
    }

    fn token(&mut self) -> Token {
        self.next_token += 1;
        Token(self.next_token)
    }

    /// Virtual time since the start.
    pub(super) fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    pub(super) fn connect(&mut self, namespace: &str, deadline: Option<Duration>) -> Token {
        self.connect_with(namespace, AuthSource::None, deadline)
    }

    pub(super) fn connect_with(
        &mut self,
        namespace: &str,
        auth: AuthSource,
        deadline: Option<Duration>,
    ) -> Token {
        let reply = self.token();
        let deadline = deadline.map(|d| self.now + d);
        self.core.handle_command(
            self.now,
            Command::Connect {
                namespace: Arc::from(namespace),
                auth,
                reply,
                deadline,
            },
        );
        self.drive();
        reply
    }

    /// Emits `event` with `args`; with `ack`, the token its answer goes to.
    pub(super) fn emit(
        &mut self,
        namespace: &str,
        event: &str,
        args: Value,
        ack: Option<Duration>,
    ) -> Option<Token> {
        let ack = ack.map(|timeout| (self.token(), timeout));
        self.core.handle_command(
            self.now,
            Command::Emit {
                namespace: Arc::from(namespace),
                event: event.to_string(),
                args: Args::from_serialize(&args).expect("JSON"),
                ack,
                volatile: false,
                held: self.outgoing.adopt(0),
            },
        );
        self.drive();
        ack.map(|(token, _)| token)
    }

    /// Answers the oldest asynchronous auth request with `auth`.
    pub(super) fn resolve_auth(&mut self, auth: Value) {
        let (namespace, link) = self.log.auth_requests.remove(0);
        self.core
            .handle_auth(self.now, &namespace, link, Some(auth));
        self.drive();
    }

    pub(super) fn disconnect(&mut self, namespace: &str) {
        self.core.handle_command(
            self.now,
            Command::Disconnect {
                namespace: Arc::from(namespace),
            },
        );
        self.drive();
    }

    /// The link breaks (server restart, network cut); `down` keeps the server refusing new
    /// sessions until [`Pair::server_up`].
    pub(super) fn lose_link(&mut self, down: bool) {
        self.server.down = down;
        if self.linked {
            self.linked = false;
            self.server.connected.clear();
            self.server.to_client.clear();
            self.core
                .handle_link_lost(self.now, DisconnectReason::TransportClose, None);
        }
        self.drive();
    }

    pub(super) fn server_up(&mut self) {
        self.server.down = false;
    }

    /// Moves everything that can move without time passing.
    pub(super) fn drive(&mut self) {
        for _ in 0..100_000 {
            if let Some(output) = self.core.poll_output() {
                self.on_output(output);
                continue;
            }
            if let Some(packet) = self.core.poll_transmit() {
                assert!(self.linked, "a packet to send without a link: {packet:?}");
                self.server.on_packet(packet);
                continue;
            }
            if self.linked {
                if let Some(packet) = self.server.to_client.pop_front() {
                    let size = packet.encode().len();
                    self.core.handle_message(self.now, packet, size);
                    continue;
                }
            }
            return;
        }
        panic!("the core never settles");
    }

    /// Jumps to the core's next deadline and fires it; `false` when there is none.
    pub(super) fn step(&mut self) -> bool {
        let Some(at) = self.core.poll_timeout() else {
            return false;
        };
        self.now = self.now.max(at);
        self.core.handle_timeout(self.now);
        self.drive();
        true
    }

    /// Steps until `done` holds, at most `limit` of virtual time.
    pub(super) fn step_until(&mut self, limit: Duration, mut done: impl FnMut(&Pair) -> bool) {
        let end = self.now + limit;
        while !done(self) {
            let next = self.core.poll_timeout();
            assert!(
                next.is_some_and(|at| at <= end),
                "not reached within {limit:?} (next deadline {:?})",
                next.map(|at| at - self.start)
            );
            self.step();
        }
    }

    /// Advances the clock by `d`, firing every deadline on the way.
    pub(super) fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(at) = self.core.poll_timeout().filter(|at| *at <= end) {
            self.now = self.now.max(at);
            self.core.handle_timeout(self.now);
            self.drive();
        }
        self.now = end;
    }

    fn on_output(&mut self, output: Output) {
        match output {
            Output::ConnectReply { token, result } => self
                .log
                .connect_replies
                .entry(token)
                .or_default()
                .push(result),
            Output::AckReply { token, result } => {
                self.log.ack_replies.entry(token).or_default().push(result)
            }
            Output::Status { namespace, status } => {
                self.log.status.push((namespace.to_string(), status))
            }
            Output::Event { namespace, event } => {
                self.log.events.push((namespace.to_string(), event))
            }
            Output::Message {
                namespace,
                event,
                args,
                ..
            } => {
                let (values, _) = args.into_wire();
                self.log
                    .messages
                    .push((namespace.to_string(), event, values));
            }
            Output::Forget { namespace } => self.log.forgotten.push(namespace.to_string()),
            Output::OpenLink { version, .. } => {
                self.log.links_opened.push(version);
                if self.server.hang_open {
                    return;
                }
                if self.server.down {
                    let error = Error::transport(Transport::WebSocket, "connection refused");
                    self.core.handle_link_failed(self.now, error);
                } else {
                    self.linked = true;
                    self.core
                        .handle_link_open(self.now, Transport::WebSocket, "engine-sid");
                }
            }
            Output::DropLink => {
                self.log.links_dropped += 1;
                self.linked = false;
                self.server.connected.clear();
                self.server.to_client.clear();
            }
            Output::Finished { reason, .. } => self.log.finished = Some(reason),
            Output::ResolveAuth { namespace, link } => {
                self.log.auth_requests.push((namespace.to_string(), link))
            }
        }
    }

    /// The one answer `token` got.
    pub(super) fn ack_reply(&self, token: Token) -> &Result<Args, Error> {
        let replies = self
            .log
            .ack_replies
            .get(&token)
            .unwrap_or_else(|| panic!("no answer for {token:?}"));
        assert_eq!(
            replies.len(),
            1,
            "{token:?} answered {} times",
            replies.len()
        );
        &replies[0]
    }

    pub(super) fn connect_reply(&self, token: Token) -> &Result<(), Error> {
        let replies = self
            .log
            .connect_replies
            .get(&token)
            .unwrap_or_else(|| panic!("no answer for {token:?}"));
        assert_eq!(
            replies.len(),
            1,
            "{token:?} answered {} times",
            replies.len()
        );
        &replies[0]
    }

    /// The events of `namespace` the application saw, by kind, in order.
    pub(super) fn event_kinds(&self, namespace: &str) -> Vec<String> {
        self.log
            .events
            .iter()
            .filter(|(n, _)| n == namespace)
            .map(|(_, e)| match e {
                Event::Connected { .. } => "connected".to_string(),
                Event::Disconnected { reason, .. } => format!("disconnected({reason})"),
                Event::Reconnecting { attempt, delay } => {
                    format!("reconnecting({attempt}, {}ms)", delay.as_millis())
                }
                Event::Reconnected {
                    attempt, recovered, ..
                } => format!("reconnected({attempt}, recovered={recovered})"),
                Event::ReconnectFailed => "reconnect_failed".to_string(),
                Event::Error(e) => format!("error({e})"),
                Event::TransportChanged { .. } => "transport_changed".to_string(),
                other => format!("{other:?}"),
            })
            .collect()
    }
}
