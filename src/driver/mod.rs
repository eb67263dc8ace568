//! The connection driver: one tokio task per client connection, the thin IO loop around the
//! sans-IO client core (`proto::socketio::client`). A `select!` over the handles' requests, the
//! link's transport, a link being opened and the next deadline; each wakes feeds the core (or
//! the link's Engine.IO session) and then flushes what came out. No protocol decision is made
//! here: which namespace joins, what fails, when to reconnect is the core's.
//!
//! - `link`: the session + transport + decoder of one Engine.IO session;
//! - `upgrade`: the IO half of the polling → WebSocket upgrade;
//! - `open`: opening a link (the transport race, bounded by the connect timeout);
//! - `routes`: tokens to oneshot answers, namespaces to event queues, status to atomics.
//!
//! Application callbacks never run here (events leave through queues), so a slow handler
//! cannot delay a pong; a full queue only stops the reading (back-pressure).

mod link;
mod open;
mod routes;
mod upgrade;

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::future::Future;
use std::pin::Pin;

use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use serde_json::Value;
use tracing::Instrument;

use self::link::{link_next, Link, LinkEvent, LinkInput};
use self::open::{OpenedLink, Opening};

use self::routes::Routes;
use self::upgrade::{Progress, UpgradeOptions};
use crate::config::{AuthSource, Config};
use crate::proto::engineio::{EngineVersion, Session};
use crate::proto::socketio::client::{ClientCore, Command, CoreConfig, Output};
use crate::reason::DisconnectReason;
use crate::request::{Request, RequestReceiver, Shared, WeakRequestSender};
use crate::transport::connect::Opened;
use crate::transport::net::Net;
use crate::transport::{Active, Io, Transport};
use crate::Error;

/// An asynchronous auth payload being computed: its namespace, the link it was asked on, and
/// the value.
type Resolving = Pin<Box<dyn Future<Output = (Arc<str>, u64, Value)> + Send>>;

/// Most requests, or incoming frames, handled in one turn of the loop before it flushes.
const BATCH: usize = 64;

/// Starts a client's driver on `runtime`. The first namespace to join is already queued in
/// `requests`.
pub(crate) fn spawn(
    runtime: &tokio::runtime::Handle,
    config: Arc<Config>,
    requests: RequestReceiver,
    weak: WeakRequestSender,
    shared: Arc<Shared>,
    handshake_auth: AuthSource,
    net: Arc<Net>,
) {
    let span = tracing::debug_span!("sio_connection", url = %config.url);
    let handshake_async = match &handshake_auth {
        AuthSource::Async(auth) => Some(auth.clone()),
        _ => None,
    };
    let core = ClientCore::new(core_config(&config), handshake_auth, rand::random());
    let driver = Driver {
        config,
        shared,
        net,
        core,
        handshake_async,
        routes: Routes::new(weak),
        link: None,
        opening: None,
        resolving: FuturesUnordered::new(),
        closing: Vec::new(),
        finished: None,
        heartbeats_seen: 0,
        release_due: false,
    };
    // Boxed: an async fn keeps its by-value arguments twice in its state (as the argument
    // and as the binding), and the driver is 1.7 KiB, every client's task.
    runtime.spawn(Box::new(driver).run(requests).instrument(span));
}

/// Closes a transport politely. Boxed: the close future is large (a WebSocket close handshake,
/// a polling close POST) and rare, and awaited inline it would make every client's driver
/// future, kept for the whole life of the connection, that much larger.
async fn close_transport(transport: Active) {
    Box::pin(transport.close()).await;
}

/// What of the user's options the core acts on.
fn core_config(config: &Config) -> CoreConfig {
    CoreConfig {
        version: config.version,
        reconnection: config.reconnection,
        reconnection_attempts: config.reconnection_attempts,
        reconnection_delay: config.reconnection_delay,
        reconnection_delay_max: config.reconnection_delay_max,
        randomization_factor: config.randomization_factor,
        retry_initial_connect: config.retry_initial_connect,
        retries: config.retries,
        ack_timeout: config.ack_timeout,
        timeout: config.timeout,
    }
}

struct Driver {
    config: Arc<Config>,
    shared: Arc<Shared>,
    net: Arc<Net>,
    core: ClientCore,
    /// The main namespace's auth when it is asynchronous: socket.io 2 servers take it in the
    /// handshake query, so it is resolved before each EIO=3 handshake.
    handshake_async: Option<crate::config::AsyncAuth>,
    routes: Routes,
    link: Option<Link>,
    /// The link being opened, with the Engine.IO revision it speaks.
    opening: Option<(Opening, EngineVersion)>,
    /// Asynchronous auth payloads being computed: namespace, link epoch, value.
    resolving: FuturesUnordered<Resolving>,
    /// Transports of dropped links, closed politely from the loop.
    closing: Vec<Active>,
    /// The core is done: why, and the error for requests still queued.
    finished: Option<Option<Error>>,
    /// The link's heartbeat count when its buffers were last released: at every heartbeat
    /// the queues that are empty give their memory back, so that an idle client holds no
    /// more than it needs however large its last burst was, at no cost per message.
    heartbeats_seen: u64,
    /// A connect was answered since the buffers were last released.
    release_due: bool,
}

impl Driver {
    async fn run(mut self: Box<Self>, mut requests: RequestReceiver) {
        // The first namespace's CONNECT is already queued.
        while let Ok(request) = requests.try_recv() {
            self.on_request(*request);
        }
        // One timer for the driver's whole life, moved only when the next deadline changes: a
        // fresh `sleep_until` on every turn of the loop is a timer-wheel insert and removal per
        // packet.
        let sleep = tokio::time::sleep(Duration::from_secs(3600));
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
        while self.finished.is_none() {
            for transport in self.closing.drain(..) {
                close_transport(transport).await;
            }
            if let Some(link) = self.link.as_mut() {
                link.flush();
            }
            self.routes.wake_readers();
            self.release_at_heartbeat();
            let deadline = self.next_deadline();
            if deadline != armed {
                if let Some(at) = deadline {
                    sleep.as_mut().reset(at.into());
                }
                armed = deadline;
            }
            // Back-pressure: while a socket's queue is full, nothing more is read from the
            // server until its application has made room.
            let full = self.routes.full_queue();
            let read = full.is_none();
            tokio::select! {
                request = requests.recv() => match request {
                    Some(request) => {
                        self.on_request(*request);
                        // Requests already queued go out in the same write (one flush).
                        for _ in 0..BATCH {
                            if self.finished.is_some() {
                                break;
                            }
                            let Ok(request) = requests.try_recv() else { break };
                            self.on_request(*request);
                        }
                    }
                    None => self.feed_core(|core, now| core.handle_command(now, Command::DisconnectAll)),
                },
                (opened, version) = open::next_opened(&mut self.opening) => {
                    self.opening = None;
                    // Namespaces that asked to join meanwhile join on this link too.
                    while let Ok(request) = requests.try_recv() {
                        self.on_request(*request);
                    }
                    self.on_opened(opened, version);
                }
                Some((namespace, link, value)) = self.resolving.next(), if !self.resolving.is_empty() => {
                    self.feed_core(|core, now| core.handle_auth(now, &namespace, link, Some(value)));
                }
                event = link_next(&mut self.link, read) => {
                    self.on_link_event(event);
                    // Frames already read are handled before the next flush, so what they
                    // trigger (acks, pongs) shares one write as well.
                    for _ in 0..BATCH {
                        if self.finished.is_some() || self.link.is_none() {
                            break;
                        }
                        let read = self.routes.full_queue().is_none();
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
        self.shared.close();
        self.routes.close_all();
        let error = self
            .finished
            .take()
            .flatten()
            .unwrap_or(Error::Disconnected(DisconnectReason::IoClientDisconnect));
        refuse_pending(&mut requests, &error);
        // What was queued last (the DISCONNECTs of a client leaving) goes out before the
        // transport closes, so the server hears the client's reason, not a network failure.
        if let Some(link) = self.link.take() {
            let mut link = link;
            link.flush();
            for transport in link.into_transports() {
                close_transport(transport).await;
            }
        }
        for transport in self.closing.drain(..) {
            close_transport(transport).await;
        }
    }

    /// At each new heartbeat of the link, and once a connect was answered, the empty queues
    /// give their memory back.
    fn release_at_heartbeat(&mut self) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        let beats = link.session.heartbeats();
        if beats == self.heartbeats_seen && !self.release_due {
            return;
        }
        self.heartbeats_seen = beats;
        self.release_due = false;
        link.session.release_idle_buffers();
        self.core.release_idle_buffers();
        self.routes.release_idle_buffers();
    }

    /// Calls the core, then carries out what it asked for.
    fn feed_core(&mut self, input: impl FnOnce(&mut ClientCore, Instant)) {
        input(&mut self.core, Instant::now());
        self.pump();
    }

    /// Carries out the core's outputs and moves its packets onto the link.
    fn pump(&mut self) {
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::OpenLink {
                    version,
                    query_auth,
                } => {
                    let query_async = match version {
                        EngineVersion::V3 => self.handshake_async.clone(),
                        _ => None,
                    };
                    let opening = open::open_link(
                        self.config.clone(),
                        self.net.clone(),
                        version,
                        query_auth,
                        query_async,
                    );
                    self.opening = Some((opening, version));
                }
                Output::ResolveAuth { namespace, link } => {
                    if let Some(auth) = self.routes.async_auth(&namespace) {
                        self.resolving.push(Box::pin(async move {
                            let value = auth().await;
                            (namespace, link, value)
                        }));
                    }
                }
                Output::DropLink => {
                    if let Some(link) = self.link.take() {
                        self.closing.extend(link.into_transports());
                    }
                }
                Output::Finished { reason, error } => {
                    tracing::debug!(%reason, "connection finished");
                    self.finished = Some(error);
                    self.opening = None;
                }
                other => {
                    // A namespace's connect is answered: the burst of outputs that came with
                    // it is over, its buffers can go (see `release_at_heartbeat`).
                    self.release_due |= matches!(other, Output::ConnectReply { .. });
                    self.routes.deliver(other)
                }
            }
        }
        if let Some(link) = self.link.as_mut() {
            while let Some(packet) = self.core.poll_transmit() {
                link.send(packet);
            }
        }
    }

    fn on_request(&mut self, request: Request) {
        let command = match request {
            Request::Connect {
                namespace,
                auth,
                events,
                status,
                deadline,
                reply,
            } => {
                if self.routes.has_socket(&namespace) {
                    let _ = reply.send(Err(Error::InvalidNamespace(format!(
                        "{namespace} is already connected on this client"
                    ))));
                    return;
                }
                let reply =
                    self.routes
                        .add_socket(namespace.clone(), auth.clone(), events, status, reply);
                Command::Connect {
                    namespace,
                    auth,
                    reply,
                    deadline,
                }
            }
            Request::Emit {
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
                self.check_heartbeat(Instant::now());
                let ack = ack.map(|ack| (self.routes.add_ack(ack.reply), ack.timeout));
                Command::Emit {
                    namespace,
                    event,
                    args,
                    ack,
                    volatile,
                    held,
                }
            }
            Request::Ack {
                namespace,
                id,
                args,
            } => Command::Ack {
                namespace,
                id,
                args,
            },
            Request::Disconnect { namespace } => Command::Disconnect { namespace },
        };
        self.feed_core(|core, now| core.handle_command(now, command));
    }

    /// A timer that fired late (suspended process) leaves a connection that only looks alive:
    /// notice before sending into the void.
    fn check_heartbeat(&mut self, now: Instant) {
        if self
            .link
            .as_ref()
            .is_some_and(|l| l.session.has_ping_expired(now))
        {
            self.read_before_heartbeat_verdict(now);
            if let Some(link) = self.link.as_mut() {
                link.session.handle_timeout(now);
            }
            self.drain_link(now);
        }
    }

    fn on_opened(&mut self, opened: Result<OpenedLink, Error>, version: EngineVersion) {
        let OpenedLink {
            settings,
            opened,
            headers,
        } = match opened {
            Ok(link) => link,
            Err(error) => {
                tracing::warn!(%error, "connecting failed");
                return self.feed_core(|core, now| core.handle_link_failed(now, error));
            }
        };
        self.shared.set_attempts(opened.attempts.clone());
        let kind = opened.transport.kind();
        self.shared.set_transport(kind);
        let ws_failed = opened
            .attempts
            .iter()
            .any(|a| a.transport == Transport::WebSocket && a.outcome.is_err());
        let can_upgrade = self.config.upgrade
            && !ws_failed
            && kind != Transport::WebSocket
            && self.config.transports.contains(&Transport::WebSocket)
            && opened.handshake.upgrades.iter().any(|u| u == "websocket");
        let Opened {
            mut transport,
            handshake,
            initial,
            ..
        } = opened;
        transport.share_outgoing(self.shared.outgoing.clone());
        let now = Instant::now();
        let mut link = Link::new(
            Session::new(version, handshake, now),
            transport,
            settings,
            self.config.max_attachments,
            self.config.max_receive,
        );
        if can_upgrade {
            link.start_upgrade(UpgradeOptions {
                headers,
                net: self.net.clone(),
                version,
                max_receive: self.config.max_receive,
                timeout: self.config.upgrade_timeout,
            });
        }
        let engine_sid = link.session.handshake().sid.clone();
        self.link = Some(link);
        self.feed_core(|core, now| core.handle_link_open(now, kind, &engine_sid));
        self.feed_packets(now, initial);
    }

    fn on_link_event(&mut self, event: LinkEvent) {
        match event {
            LinkEvent::Io(io) => {
                match io {
                    Ok(Io::Received(packets)) => self.feed_packets(Instant::now(), packets),
                    Ok(Io::Progress) => {}
                    Ok(Io::Closed) => self.lose_link(DisconnectReason::TransportClose, None),
                    Err(Error::Protocol(e)) => {
                        self.lose_link(DisconnectReason::ParseError, Some(Error::Protocol(e)))
                    }
                    Err(error) => self.lose_link(DisconnectReason::TransportError, Some(error)),
                }
                let outgoing = self.shared.outgoing.clone();
                let progress = match self.link.as_mut() {
                    Some(link) => link.upgrade_parts().check_ready(&outgoing),
                    None => Progress::Going,
                };
                self.on_upgrade_progress(progress);
            }
            LinkEvent::Upgrade(step) => {
                let outgoing = self.shared.outgoing.clone();
                let probe_timeout = self.config.upgrade_timeout;
                let progress = match self.link.as_mut() {
                    Some(link) => {
                        link.upgrade_parts()
                            .on_step(Instant::now(), step, probe_timeout, &outgoing)
                    }
                    None => Progress::Going,
                };
                self.on_upgrade_progress(progress);
            }
        }
    }

    fn on_upgrade_progress(&mut self, progress: Progress) {
        match progress {
            Progress::Going => {}
            Progress::Failed(why) => {
                if let Some(ws) = self
                    .link
                    .as_mut()
                    .and_then(|l| l.upgrade_parts().fail(&why))
                {
                    self.closing.push(ws);
                }
            }
            Progress::Done(from) => {
                self.shared.set_transport(Transport::WebSocket);
                self.feed_core(|core, _| core.handle_transport_changed(from, Transport::WebSocket));
            }
        }
    }

    fn lose_link(&mut self, reason: DisconnectReason, error: Option<Error>) {
        match &error {
            Some(error) => tracing::warn!(%reason, %error, "connection lost"),
            None => tracing::debug!(%reason, "connection closed"),
        }
        self.feed_core(|core, now| core.handle_link_lost(now, reason, error));
        // The core drops the link; make sure of it even if it had no namespace left.
        if let Some(link) = self.link.take() {
            self.closing.extend(link.into_transports());
        }
    }

    /// Feeds received Engine.IO packets through the session, and what they carry to the core.
    fn feed_packets(&mut self, now: Instant, packets: Vec<crate::proto::engineio::Packet>) {
        for packet in packets {
            let Some(link) = self.link.as_mut() else {
                return;
            };
            link.session.handle_packet(now, packet);
            self.drain_link(now);
        }
    }

    /// Hands what the session decoded to the core, until the session has nothing or the
    /// link is gone. `now` is when the packets were read: one clock read per read, not per
    /// packet.
    fn drain_link(&mut self, now: Instant) {
        while let Some(input) = self.link.as_mut().and_then(Link::poll_input) {
            match input {
                LinkInput::Packet(packet, size) => {
                    self.core.handle_message(now, packet, size);
                    self.pump();
                }
                LinkInput::Lost(reason, error) => {
                    self.lose_link(reason, error);
                    return;
                }
            }
        }
    }

    /// Before the heartbeat is called dead, takes what the transport already holds: a driver
    /// that was busy (a batch of large emits, a slow machine) must not miss a ping that is
    /// waiting in its socket. Nothing is read while an application queue is full.
    fn read_before_heartbeat_verdict(&mut self, now: Instant) {
        for _ in 0..BATCH {
            let expired = self.link.as_ref().is_some_and(|l| l.heartbeat_expired(now));
            if !expired || self.finished.is_some() || self.routes.full_queue().is_some() {
                return;
            }
            let Some(event) = link_next(&mut self.link, true).now_or_never() else {
                return;
            };
            self.on_link_event(event);
        }
    }

    fn next_deadline(&mut self) -> Option<Instant> {
        let link = self.link.as_ref().and_then(Link::poll_timeout);
        [self.core.poll_timeout(), link].into_iter().flatten().min()
    }

    fn on_timeout(&mut self, now: Instant) {
        if let Some(link) = &self.link {
            if link.write_deadline().is_some_and(|at| at <= now) {
                let waited = link.session.handshake().ping_timeout;
                let error = Error::transport(
                    link.kind(),
                    format!(
                        "writes made no progress for {waited:?} (pingTimeout): the server is not reading"
                    ),
                );
                self.lose_link(DisconnectReason::TransportError, Some(error));
            }
        }
        self.read_before_heartbeat_verdict(now);
        if let Some(link) = self.link.as_mut() {
            link.session.handle_timeout(now);
            self.drain_link(now);
        }
        let progress = match self.link.as_mut() {
            Some(link) => link.upgrade_parts().on_timeout(now),
            None => Progress::Going,
        };
        self.on_upgrade_progress(progress);
        self.feed_core(|core, now| core.handle_timeout(now));
    }
}

/// Answers every queued request of a connection that is gone.
fn refuse_pending(requests: &mut RequestReceiver, error: &Error) {
    requests.close();
    while let Ok(request) = requests.try_recv() {
        match *request {
            Request::Connect { reply, .. } => {
                let _ = reply.send(Err(error.clone()));
            }
            Request::Emit { ack: Some(ack), .. } => {
                let _ = ack.reply.send(Err(error.clone()));
            }
            _ => {}
        }
    }
}
