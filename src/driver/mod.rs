//! The connection driver: one tokio task per client connection, the thin IO loop around the
//! sans-IO client core (`proto::socketio::client`). Each turn polls the handles' requests, the
//! link's transport, a link being opened, auth being resolved, room in a full queue and the
//! next deadline, starting from a different one each turn; what fired feeds the core (or the
//! link's Engine.IO session), and what came out is flushed. No protocol decision is made here:
//! which namespace joins, what fails, when to reconnect is the core's.
//!
//! The driver's state sits in a [`DriverCell`], locked by the task for each poll (never
//! across an await), so that a handle's thread can carry out an emit itself while the task is
//! idle: the round trip then has one thread hop (the answer's) instead of two. The turn is a
//! hand-written poll rather than a `select!` because a `select!`'s futures borrow the state
//! across the await, which a lock shared with the handles cannot allow.
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

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::Value;
use tracing::Instrument;

use self::link::{Link, LinkEvent, LinkInput};
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

/// A connection's driver, shared by its task and its handles.
///
/// Why shared: a round trip that goes caller → driver task → socket costs a thread wake-up
/// (a futex or eventfd write, a worker unparked) before the frame is even written, next to
/// the one that brings the answer back. When the driver is idle, a handle's emit (or ack)
/// therefore runs the driver's code on the handle's own thread: it takes the lock, hands the
/// request to the core, and writes the frame to the WebSocket itself, with the task's waker
/// registered for whatever the socket does not take. Everything else — reading, timers,
/// opening links, upgrades, HTTP transports, requests while others still wait in the channel
/// — stays with the task, which takes the same lock for each of its turns (never across an
/// await). A handle that finds the lock taken sends its request through the channel, as
/// before; order is kept because the direct way is only taken while the channel is empty.
///
/// The direct way is for a connection with nothing awaited: a round trip at a time, or
/// fire-and-forget emits. While a caller awaits an ack, answers are on their way and the task
/// will be polled for them anyway, so an emit goes through the channel and is written in the
/// task's next batch: with 64 acks in flight, writing each emit from its caller's thread cost
/// a `send` per emit (half the caller's time by a profile) against one per batch, 125–160k
/// acks/s against 147–185k in alternating runs.
pub(crate) struct DriverCell {
    driver: Mutex<Option<Box<Driver>>>,
    /// The task waits for the lock: handles leave it to the task (through the channel), so
    /// that a thread emitting in a tight loop cannot keep the task from reading.
    task_waiting: AtomicBool,
}

impl DriverCell {
    /// A cell for a driver about to be started by [`spawn`].
    pub(crate) fn new() -> Arc<DriverCell> {
        Arc::new(DriverCell {
            driver: Mutex::new(None),
            task_waiting: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Box<Driver>>> {
        self.driver.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The task's lock: taken at once when free, else announced to the handles while waited.
    fn lock_for_task(&self) -> std::sync::MutexGuard<'_, Option<Box<Driver>>> {
        if let Ok(guard) = self.driver.try_lock() {
            return guard;
        }
        self.task_waiting.store(true, Ordering::Relaxed);
        let guard = self.lock();
        self.task_waiting.store(false, Ordering::Relaxed);
        guard
    }

    /// Runs `request` on the calling thread if the driver is idle and the request can go
    /// straight to the socket; gives it back (for the channel) otherwise.
    pub(crate) fn try_direct(&self, request: Box<Request>) -> Result<(), Box<Request>> {
        if self.task_waiting.load(Ordering::Relaxed) {
            return Err(request);
        }
        let Ok(mut guard) = self.driver.try_lock() else {
            return Err(request);
        };
        let mut replies = Vec::new();
        match guard.as_mut() {
            Some(driver) if driver.takes_directly(&request) => {
                driver.run_directly(*request);
                driver.routes.take_replies(&mut replies);
            }
            _ => return Err(request),
        }
        drop(guard);
        for (reply, result) in replies {
            let _ = reply.send(result);
        }
        Ok(())
    }
}

/// Starts a client's driver on `runtime`, in `cell`. The first namespace to join is already
/// queued in `requests`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn spawn(
    runtime: &tokio::runtime::Handle,
    cell: &Arc<DriverCell>,
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
    // One timer for the driver's whole life, moved only when the next deadline changes: a
    // fresh `sleep_until` on every turn is a timer-wheel insert and removal per packet.
    let sleep = {
        let _runtime = runtime.enter();
        Box::pin(tokio::time::sleep(Duration::from_secs(3600)))
    };
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
        requests,
        sleep,
        armed: None,
        room: None,
        read: true,
        waker: None,
        rotation: 0,
        wrote_directly: false,
        runtime: runtime.clone(),
        span: span.clone(),
    };
    *cell.lock() = Some(Box::new(driver));
    runtime.spawn(run(cell.clone()).instrument(span));
}

/// Empties the cell when the task ends, however it ends: a runtime shut down drops the task
/// mid-way, and a driver left in the cell would take handles' emits with nobody to send them.
/// Emptied, the cell sends handles to the channel, whose closed end fails their requests.
struct EmptiedOnDrop(Arc<DriverCell>);

impl Drop for EmptiedOnDrop {
    fn drop(&mut self) {
        let driver = self.0.lock().take();
        if let Some(mut driver) = driver {
            // The task was dropped before the core finished: the handles hear the connection
            // is gone. Dropped outside the lock (waiting acks fail as their senders go).
            driver.shared.close();
            driver.routes.close_all();
        }
    }
}

/// Closes transports politely, one after the other. Boxed: the close futures are large (a
/// WebSocket close handshake, a polling close POST) and rare, and awaited inline they would
/// make every client's task, kept for the whole life of the connection, that much larger.
fn close_transports(transports: Vec<Active>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        for transport in transports {
            transport.close().await;
        }
    })
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
    /// The handles' requests.
    requests: RequestReceiver,
    /// The timer of the next deadline, and the deadline it is set to.
    sleep: Pin<Box<tokio::time::Sleep>>,
    armed: Option<Instant>,
    /// Waits for room in a full application queue (back-pressure), while one is full.
    room: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// Whether the server is read from (no application queue is full).
    read: bool,
    /// The task's waker, for what a handle's thread leaves to the task.
    waker: Option<Waker>,
    /// Which source a turn polls first: each in turn, so that none starves the others.
    rotation: usize,
    /// A handle wrote directly since the task's last poll: the next requests go through the
    /// channel, where the task takes them in batches (one write for up to [`BATCH`]). A round
    /// trip at a time keeps the direct way (the task polls to read each answer); a thread
    /// emitting in a loop, or with 64 acks in flight, gets the batches.
    wrote_directly: bool,
    runtime: tokio::runtime::Handle,
    span: tracing::Span,
}

/// What woke the driver.
enum Fired {
    Request(Option<Box<Request>>),
    /// Boxed: a link opens once in a while, and the outcome is large.
    Opened(Box<Result<OpenedLink, Error>>, EngineVersion),
    Resolved(Arc<str>, u64, Value),
    Link(LinkEvent),
    Room,
    Timeout,
}

/// Most events one poll of the task handles before it yields to the runtime's other tasks.
const TURNS: usize = 256;

/// The driver's task: turns until the core is finished, closing dropped transports between
/// turns (they are awaited, so outside the lock), then winds the connection down.
async fn run(cell: Arc<DriverCell>) {
    let cell = EmptiedOnDrop(cell);
    let cell = &cell.0;
    let mut replies = Vec::new();
    loop {
        let (closing, finished) = std::future::poll_fn(|cx| {
            let turned = match cell.lock_for_task().as_mut() {
                Some(driver) => {
                    let turned = driver.poll_turns(cx);
                    driver.routes.take_replies(&mut replies);
                    turned
                }
                None => Poll::Ready((Vec::new(), true)),
            };
            // Answers go out with the lock released (see `Routes::take_replies`).
            for (reply, result) in replies.drain(..) {
                let _ = reply.send(result);
            }
            turned
        })
        .await;
        if !closing.is_empty() {
            close_transports(closing).await;
        }
        if finished {
            break;
        }
    }
    let driver = cell.lock().take();
    if let Some(driver) = driver {
        close_transports(driver.wind_down()).await;
    }
}

impl Driver {
    /// Turns of the loop until there is nothing to do (pending), or transports to close or
    /// the core finished (ready: the task does those outside the lock).
    fn poll_turns(&mut self, cx: &mut Context<'_>) -> Poll<(Vec<Active>, bool)> {
        if !self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            self.waker = Some(cx.waker().clone());
        }
        self.wrote_directly = false;
        for _ in 0..TURNS {
            if self.finished.is_some() || !self.closing.is_empty() {
                self.routes.wake_readers();
                return Poll::Ready((std::mem::take(&mut self.closing), self.finished.is_some()));
            }
            self.prepare_turn();
            match self.poll_sources(cx) {
                Poll::Ready(fired) => self.on_fired(fired, cx),
                Poll::Pending => return Poll::Pending,
            }
        }
        // Busy for a long while: the runtime's other tasks get their turn.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// What each turn starts with: what the core queued goes to the transport, readers of
    /// delivered events are woken, idle buffers released, the timer set, back-pressure noted.
    fn prepare_turn(&mut self) {
        if let Some(link) = self.link.as_mut() {
            link.flush();
        }
        self.routes.wake_readers();
        self.release_at_heartbeat();
        let deadline = self.next_deadline();
        if deadline != self.armed {
            if let Some(at) = deadline {
                self.sleep.as_mut().reset(at.into());
            }
            self.armed = deadline;
        }
        // Back-pressure: while a socket's queue is full, nothing more is read from the
        // server until its application has made room.
        match self.routes.full_queue() {
            Some(queue) => {
                self.read = false;
                if self.room.is_none() {
                    self.room = Some(Box::pin(async move { queue.room().await }));
                }
            }
            None => {
                self.read = true;
                self.room = None;
            }
        }
    }

    /// The first source that has something, starting from a different one each turn.
    fn poll_sources(&mut self, cx: &mut Context<'_>) -> Poll<Fired> {
        const SOURCES: usize = 6;
        self.rotation = (self.rotation + 1) % SOURCES;
        for i in 0..SOURCES {
            let fired = match (self.rotation + i) % SOURCES {
                0 => self.requests.poll_recv(cx).map(Fired::Request),
                1 => open::poll_opened(&mut self.opening, cx)
                    .map(|(opened, version)| Fired::Opened(Box::new(opened), version)),
                2 if !self.resolving.is_empty() => match self.resolving.poll_next_unpin(cx) {
                    Poll::Ready(Some((namespace, link, value))) => {
                        Poll::Ready(Fired::Resolved(namespace, link, value))
                    }
                    _ => Poll::Pending,
                },
                3 => match self.link.as_mut() {
                    Some(link) => link.poll_next(cx, self.read).map(Fired::Link),
                    None => Poll::Pending,
                },
                4 => match self.room.as_mut() {
                    Some(room) => room.as_mut().poll(cx).map(|()| {
                        self.room = None;
                        Fired::Room
                    }),
                    None => Poll::Pending,
                },
                5 if self.armed.is_some() => self.sleep.as_mut().poll(cx).map(|()| {
                    self.armed = None;
                    Fired::Timeout
                }),
                _ => Poll::Pending,
            };
            if fired.is_ready() {
                return fired;
            }
        }
        Poll::Pending
    }

    fn on_fired(&mut self, fired: Fired, cx: &mut Context<'_>) {
        match fired {
            Fired::Request(Some(request)) => {
                self.on_request(*request);
                // Requests already queued go out in the same write (one flush).
                for _ in 0..BATCH {
                    if self.finished.is_some() {
                        break;
                    }
                    let Ok(request) = self.requests.try_recv() else {
                        break;
                    };
                    self.on_request(*request);
                }
            }
            Fired::Request(None) => {
                self.feed_core(|core, now| core.handle_command(now, Command::DisconnectAll))
            }
            Fired::Opened(opened, version) => {
                self.opening = None;
                // Namespaces that asked to join meanwhile join on this link too.
                while let Ok(request) = self.requests.try_recv() {
                    self.on_request(*request);
                }
                self.on_opened(*opened, version);
            }
            Fired::Resolved(namespace, link, value) => {
                self.feed_core(|core, now| core.handle_auth(now, &namespace, link, Some(value)));
            }
            Fired::Link(event) => {
                let now = Instant::now();
                self.on_link_event(event, now);
                // Frames already read are handled before the next flush, so what they
                // trigger (acks, pongs) shares one write as well.
                for _ in 0..BATCH {
                    if self.finished.is_some() {
                        break;
                    }
                    let read = self.routes.full_queue().is_none();
                    let Some(Poll::Ready(event)) =
                        self.link.as_mut().map(|link| link.poll_next(cx, read))
                    else {
                        break;
                    };
                    self.on_link_event(event, now);
                }
            }
            Fired::Room => {}
            Fired::Timeout => self.on_timeout(Instant::now()),
        }
    }

    /// Whether a handle's thread can carry out `request` itself (see [`DriverCell`]).
    fn takes_directly(&self, request: &Request) -> bool {
        matches!(request, Request::Emit { .. } | Request::Ack { .. })
            && !self.wrote_directly
            && self.finished.is_none()
            && self.waker.is_some()
            && self.opening.is_none()
            && self.closing.is_empty()
            && self.requests.is_empty()
            && self.routes.acks_awaited() == 0
            && self
                .link
                .as_ref()
                .is_some_and(|link| link.writes_directly(Instant::now()))
    }

    /// A handle's request, carried out on the handle's thread: to the core, and what the
    /// core sends straight into the socket. What is left for the task wakes it.
    fn run_directly(&mut self, request: Request) {
        let _runtime = self.runtime.enter();
        let span = self.span.clone();
        let _span = span.enter();
        let resolving = self.resolving.len();
        self.wrote_directly = true;
        self.on_request(request);
        let Some(waker) = self.waker.clone() else {
            return;
        };
        if let Some(link) = self.link.as_mut() {
            link.flush();
            // What the socket does not take now, it takes when the task's waker is called.
            if let Poll::Ready(Err(error)) =
                link.transport.poll_write(&mut Context::from_waker(&waker))
            {
                self.on_link_event(LinkEvent::Io(Err(error)), Instant::now());
            }
        }
        self.routes.wake_readers();
        let mut wake = self.finished.is_some()
            || self.link.is_none()
            || self.opening.is_some()
            || !self.closing.is_empty()
            || self.resolving.len() != resolving;
        // A deadline earlier than the timer's (an ack timeout): the timer moves, or, if none
        // is set, the task sets it.
        if let Some(at) = self.next_deadline() {
            match self.armed {
                Some(armed) if at < armed => {
                    self.sleep.as_mut().reset(at.into());
                    self.armed = Some(at);
                }
                Some(_) => {}
                None => wake = true,
            }
        }
        if wake {
            waker.wake();
        }
    }

    /// The core is finished: handles hear it, requests still queued are refused, and what was
    /// queued last is handed to the transports, which are returned for closing.
    fn wind_down(mut self: Box<Self>) -> Vec<Active> {
        self.shared.close();
        self.routes.close_all();
        let error = self
            .finished
            .take()
            .flatten()
            .unwrap_or(Error::Disconnected(DisconnectReason::IoClientDisconnect));
        refuse_pending(&mut self.requests, &error);
        // What was queued last (the DISCONNECTs of a client leaving) goes out before the
        // transport closes, so the server hears the client's reason, not a network failure.
        let mut transports = Vec::new();
        if let Some(mut link) = self.link.take() {
            link.flush();
            transports.extend(link.into_transports());
        }
        transports.append(&mut self.closing);
        transports
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
        for packet in initial {
            self.feed_packet(now, packet);
        }
    }

    /// What the link delivered; `now` is when it was read (one clock read per batch).
    fn on_link_event(&mut self, event: LinkEvent, now: Instant) {
        match event {
            LinkEvent::Io(io) => {
                match io {
                    Ok(Io::Received(packets)) => {
                        for packet in packets {
                            self.feed_packet(now, packet);
                        }
                    }
                    Ok(Io::One(packet)) => self.feed_packet(now, packet),
                    Ok(Io::Progress) => {}
                    Ok(Io::Closed) => self.lose_link(DisconnectReason::TransportClose, None),
                    Err(Error::Protocol(e)) => {
                        self.lose_link(DisconnectReason::ParseError, Some(Error::Protocol(e)))
                    }
                    Err(error) => self.lose_link(DisconnectReason::TransportError, Some(error)),
                }
                let progress = match self.link.as_mut() {
                    Some(link) => link.upgrade_parts().check_ready(&self.shared.outgoing),
                    None => Progress::Going,
                };
                self.on_upgrade_progress(progress);
            }
            LinkEvent::Upgrade(step) => {
                let probe_timeout = self.config.upgrade_timeout;
                let progress = match self.link.as_mut() {
                    Some(link) => link.upgrade_parts().on_step(
                        now,
                        step,
                        probe_timeout,
                        &self.shared.outgoing,
                    ),
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

    /// Feeds a received Engine.IO packet through the session, and what it carries to the core.
    fn feed_packet(&mut self, now: Instant, packet: crate::proto::engineio::Packet) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        link.session.handle_packet(now, packet);
        self.drain_link(now);
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
            // With the task's waker: this also runs on a handle's thread, and whatever the
            // socket registers must wake the task.
            let waker = self.waker.clone().unwrap_or_else(|| Waker::noop().clone());
            let mut cx = Context::from_waker(&waker);
            let Some(Poll::Ready(event)) =
                self.link.as_mut().map(|link| link.poll_next(&mut cx, true))
            else {
                return;
            };
            self.on_link_event(event, now);
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
