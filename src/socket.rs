//! What the blocking and async facades share: a handle on one namespace of one connection.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::config::{check_namespace, AuthSource, ClientBuilder, Config, Handlers};
use crate::driver::{self, DriverCell};
use crate::event_queue::{EventQueue, EventSink};
use crate::listeners::{CallsCache, Listeners};
use crate::proto::socketio::is_reserved_event;
use crate::proto::time::deadline_after;
use crate::request::{AckRequest, Request, RequestSender, Shared, SocketSinks, SocketStatus};
use crate::transport::connect::header_map;
use crate::transport::net::Net;
use crate::transport::report::Attempt;
use crate::transport::url::Endpoint;
use crate::{AckHandle, Args, DisconnectReason, Error, Event, Transport};

/// The way from the handles to their connection's driver: its request channel, and the
/// driver itself for requests a handle's thread can carry out while the driver is idle (see
/// `driver::DriverCell`).
#[derive(Clone)]
struct Commands {
    channel: RequestSender,
    driver: Arc<DriverCell>,
}

impl Commands {
    /// Hands `request` to the driver: carried out now on this thread when it can be, else
    /// queued for the driver's task. Fails when the driver is gone.
    fn send(&self, request: Box<Request>) -> Result<(), ()> {
        match self.driver.try_direct(request) {
            Ok(()) => Ok(()),
            Err(request) => self.channel.send(request).map_err(|_| ()),
        }
    }
}

/// One namespace of one connection.
pub(crate) struct SocketCore {
    pub(crate) namespace: Arc<str>,
    commands: Commands,
    shared: Arc<Shared>,
    status: Arc<SocketStatus>,
    pub(crate) queue: Arc<EventQueue>,
    /// The queue in front of the listener dispatcher.
    inbound: Arc<EventQueue>,
    pub(crate) listeners: Arc<Listeners>,
    runtime: tokio::runtime::Handle,
    config: Arc<Config>,
}

impl Drop for SocketCore {
    fn drop(&mut self) {
        // The last handle of a namespace leaves it; the driver closes the connection when no
        // namespace is left. Dropping never waits.
        let _ = self.commands.send(Box::new(Request::Disconnect {
            namespace: self.namespace.clone(),
        }));
    }
}

/// A connection in progress: the handle, and where the outcome arrives.
pub(crate) struct Pending {
    pub(crate) core: SocketCore,
    pub(crate) reply: oneshot::Receiver<Result<(), Error>>,
}

impl Pending {
    pub(crate) async fn wait(self) -> Result<SocketCore, Error> {
        match self.reply.await {
            Ok(Ok(())) => Ok(self.core),
            Ok(Err(e)) => Err(e),
            // The driver ended without answering: the client was dropped meanwhile.
            Err(_) => Err(Error::Disconnected(DisconnectReason::IoClientDisconnect)),
        }
    }
}

/// The URL's path names the namespace, as in the JS client (`io("https://host/admin")` joins
/// `/admin`; the Engine.IO path stays `path`, `/socket.io/` by default). A `namespace()` naming
/// another one is a mistake the caller hears at once rather than a path silently ignored.
fn namespace_from_url(builder: &mut ClientBuilder) -> Result<(), Error> {
    let Ok(url) = url::Url::parse(&builder.config.url) else {
        return Ok(()); // Endpoint::new reports a bad URL.
    };
    let path = url.path().trim_end_matches('/');
    if path.is_empty() {
        return Ok(());
    }
    if builder.namespace == "/" {
        builder.namespace = path.to_string();
        return Ok(());
    }
    if builder.namespace.trim_end_matches('/') != path {
        return Err(Error::InvalidUrl {
            url: builder.config.url.clone(),
            reason: format!(
                "its path {path} names a namespace, and namespace() names {}; give one (the                  Engine.IO path is set with path())",
                builder.namespace
            ),
        });
    }
    Ok(())
}

/// Validates the builder and starts a new connection with its first namespace.
pub(crate) fn start(
    mut builder: ClientBuilder,
    runtime: tokio::runtime::Handle,
) -> Result<Pending, Error> {
    namespace_from_url(&mut builder)?;
    check_namespace(&builder.namespace)?;
    let auth = builder.take_auth()?;
    let config = Arc::new(builder.config);
    // Caller mistakes surface here, at the call site, not later from the driver.
    Endpoint::new(&config.url, &config.path, &config.query, config.version)?;
    header_map(&config.headers)?;
    let net = Arc::new(Net::new(&config.tls, config.proxy.clone())?.with_resolve(&config.resolve));
    if let Ok(url) = url::Url::parse(&config.url) {
        net.proxy_for(&url)?;
    }
    let (channel, receiver) = mpsc::unbounded_channel();
    let weak = channel.downgrade();
    let cell = DriverCell::new();
    let commands = Commands {
        channel,
        driver: cell.clone(),
    };
    let shared = Arc::new(Shared::default());
    let namespace: Arc<str> = Arc::from(builder.namespace.as_str());
    let (core, reply) = join(
        namespace,
        auth.clone(),
        builder.handlers,
        commands,
        shared.clone(),
        runtime.clone(),
        config.clone(),
    )?;
    driver::spawn(&runtime, &cell, config, receiver, weak, shared, auth, net);
    Ok(Pending { core, reply })
}

/// Queues the CONNECT of a namespace and starts its event dispatcher.
fn join(
    namespace: Arc<str>,
    auth: AuthSource,
    handlers: Handlers,
    commands: Commands,
    shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
    config: Arc<Config>,
) -> Result<(SocketCore, oneshot::Receiver<Result<(), Error>>), Error> {
    let (capacity, overflow) = (config.event_buffer, config.event_overflow);
    // Bounded in bytes too: half of max_receive per queue, so that a socket's queues and one
    // transport read together stay within about twice max_receive.
    let max_bytes = config.max_receive / 2;
    // A socket built with listeners may never be read through `events()`: its queue then
    // drops its oldest rather than stall the connection (see `EventQueue::optional_reader`).
    let queue = Arc::new(if handlers.has_incoming() {
        EventQueue::optional_reader(capacity, max_bytes, overflow)
    } else {
        EventQueue::new(capacity, max_bytes, overflow)
    });
    // The dispatcher always exists, so that listeners can be added to a connected socket;
    // the driver feeds it only while the socket has listeners.
    let inbound = Arc::new(EventQueue::new(capacity, max_bytes, overflow));
    let listeners = Arc::new(Listeners::new(handlers));
    spawn_dispatcher(&runtime, listeners.clone(), inbound.clone(), queue.clone());
    let events = SocketSinks {
        events: queue.clone(),
        dispatch: EventSink(inbound.clone()),
        listeners: listeners.clone(),
    };
    let status = Arc::new(SocketStatus::default());
    let (reply_tx, reply) = oneshot::channel();
    commands
        .send(Box::new(Request::Connect {
            namespace: namespace.clone(),
            auth,
            events,
            status: status.clone(),
            deadline: Some(deadline_after(Instant::now(), config.timeout)),
            reply: reply_tx,
        }))
        .map_err(|_| Error::Disconnected(DisconnectReason::IoClientDisconnect))?;
    let core = SocketCore {
        namespace,
        commands,
        shared,
        status,
        queue,
        inbound,
        listeners,
        runtime,
        config,
    };
    Ok((core, reply))
}

/// Events the dispatcher takes in one go when they have piled up (a burst): they cost one
/// trip to the blocking pool instead of one each.
const DISPATCH_BATCH: usize = 256;

/// Runs listeners off the driver, in order, and hands everything else to `events()` readers.
/// Back-pressure passes through: the dispatcher takes more only when the listeners of what it
/// took returned and the `events()` queue has room, so a slow listener fills `inbound` and the
/// driver stops reading the transport (see `event_queue.rs`). What has piled up in `inbound`
/// (at most [`DISPATCH_BATCH`] events) goes to the blocking pool together; each event's
/// listeners are looked up just before they run, so an `off` or `once` inside a listener
/// holds for the very next event, as when they went one by one.
fn spawn_dispatcher(
    runtime: &tokio::runtime::Handle,
    listeners: Arc<Listeners>,
    inbound: Arc<EventQueue>,
    queue: Arc<EventQueue>,
) {
    runtime.spawn(async move {
        let mut pending: VecDeque<(Event, usize)> = VecDeque::new();
        loop {
            if pending.is_empty() {
                let Some(first) = inbound.pop_sized().await else {
                    break;
                };
                pending.push_back(first);
                inbound.try_pop_many(DISPATCH_BATCH - 1, &mut pending);
            }
            if !matches!(pending.front(), Some((Event::Message { .. }, _))) {
                // State changes go straight to `events()`.
                if let Some((event, bytes)) = pending.pop_front() {
                    queue.room().await;
                    queue.push(event, bytes);
                }
                continue;
            }
            let batch = std::mem::take(&mut pending);
            let listeners = listeners.clone();
            let outcome =
                match tokio::task::spawn_blocking(move || run_batch(&listeners, batch)).await {
                    Ok(outcome) => outcome,
                    // `run_batch` catches every listener's panic: only a failure of the pool
                    // itself (a runtime shutting down) lands here.
                    Err(e) => {
                        tracing::warn!(error = %e, "the event dispatcher stopped");
                        break;
                    }
                };
            // A typed listener's arguments that did not fit: the application hears it rather
            // than the event vanishing.
            for error in outcome.errors {
                tracing::warn!(%error, "a typed listener could not read its event");
                queue.room().await;
                queue.push(Event::Error(Arc::new(error)), 0);
            }
            if let Some((event, bytes)) = outcome.for_events {
                queue.room().await;
                queue.push(event, bytes);
            }
            pending = outcome.rest;
        }
        queue.close();
    });
}

/// What a batch of listener calls left for the async side.
struct BatchOutcome {
    /// Typed listeners' errors, in the order of their events.
    errors: Vec<Error>,
    /// The event that stopped the batch: one without a listener of its own (its `on_any`
    /// listeners have run) or a state change; it goes to `events()` next.
    for_events: Option<(Event, usize)>,
    /// The events after it, not yet looked at.
    rest: VecDeque<(Event, usize)>,
}

/// Runs the listeners of `batch`'s messages in order, up to the first event that goes to
/// `events()`. A panicking listener is reported and skipped: the others, and the events after
/// it, still run.
fn run_batch(listeners: &Listeners, mut batch: VecDeque<(Event, usize)>) -> BatchOutcome {
    let mut errors = Vec::new();
    let mut cache = CallsCache::default();
    while let Some((event, bytes)) = batch.pop_front() {
        let Event::Message {
            namespace,
            event,
            args,
            ack,
        } = event
        else {
            return BatchOutcome {
                errors,
                for_events: Some((event, bytes)),
                rest: batch,
            };
        };
        let calls = listeners.calls(&mut cache, &event);
        for any in calls.any.iter() {
            guarded(|| (any.handler)(&event, args.clone(), ack.clone()));
        }
        let Some(own) = calls.event.as_deref().filter(|own| !own.is_empty()) else {
            let message = Event::Message {
                namespace,
                event,
                args,
                ack,
            };
            return BatchOutcome {
                errors,
                for_events: Some((message, bytes)),
                rest: batch,
            };
        };
        // The last listener gets the arguments themselves.
        let (last, others) = own.split_last().expect("not empty");
        for listener in others {
            errors.extend(guarded(|| listener.handler.call(args.clone(), ack.clone())).flatten());
        }
        errors.extend(guarded(|| last.handler.call(args, ack)).flatten());
    }
    BatchOutcome {
        errors,
        for_events: None,
        rest: batch,
    }
}

/// Runs one listener; a panic in it is logged (as a panicking handler task was before) and
/// does not take the other listeners or events down with it.
fn guarded<R>(listener: impl FnOnce() -> R) -> Option<R> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(listener)) {
        Ok(value) => Some(value),
        Err(_) => {
            tracing::warn!("an event handler panicked");
            None
        }
    }
}

/// An acknowledgement read into `R` (see `Args::parse_data`), an error naming the event when
/// it does not fit.
pub(crate) fn read_answer<R: serde::de::DeserializeOwned>(
    event: &str,
    answer: Args,
) -> Result<R, Error> {
    answer.parse_data::<R>().map_err(|e| match e {
        Error::Deserialize(why) => Error::Deserialize(format!("the ack of {event:?}: {why}")),
        other => other,
    })
}

impl SocketCore {
    pub(crate) fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }

    pub(crate) fn transport(&self) -> Transport {
        self.shared.transport().unwrap_or(Transport::WebSocket)
    }

    pub(crate) fn attempts(&self) -> Vec<Attempt> {
        self.shared.attempts()
    }

    pub(crate) fn is_connected(&self) -> bool {
        !self.shared.is_closed()
            && !self.status.closed.load(Ordering::Acquire)
            && self.status.connected.load(Ordering::Acquire)
    }

    /// Events dropped by a dropping overflow policy (see `EventOverflow`).
    pub(crate) fn dropped_events(&self) -> u64 {
        self.queue.dropped() + self.inbound.dropped()
    }

    /// The queue an `events()` reader takes from, marked as read from now on.
    pub(crate) fn reader_queue(&self) -> Arc<EventQueue> {
        self.queue.attach_reader();
        self.queue.clone()
    }

    /// Connected, and the transport not more than `max_send_queue` behind.
    pub(crate) fn can_send_now(&self) -> bool {
        self.is_connected() && self.shared.outgoing.get() <= self.config.max_send_queue
    }

    /// The socket's id while connected (the server's `socket.id`).
    pub(crate) fn id(&self) -> Option<String> {
        if !self.is_connected() {
            return None;
        }
        self.status.id().map(|id| id.to_string())
    }

    /// Whether the socket is connected or will be again (not closed by either side).
    pub(crate) fn is_active(&self) -> bool {
        !self.shared.is_closed() && !self.status.closed.load(Ordering::Acquire)
    }

    pub(crate) fn recovered(&self) -> bool {
        self.status.recovered.load(Ordering::Acquire)
    }

    fn check_event(&self, event: &str) -> Result<(), Error> {
        if event.is_empty() {
            return Err(Error::EmptyEventName);
        }
        if is_reserved_event(event) {
            return Err(Error::ReservedEvent(event.to_string()));
        }
        Ok(())
    }

    fn send(&self, command: Request) -> Result<(), Error> {
        if self.shared.is_closed() || self.status.closed.load(Ordering::Acquire) {
            return Err(self.status.closed_error());
        }
        // While disconnected, an emit takes a slot of the send buffer here, at the call site,
        // so a full buffer is an error the caller sees (the driver empties it on reconnection).
        let buffers = matches!(
            command,
            Request::Emit {
                volatile: false,
                ..
            }
        ) && !self.status.connected.load(Ordering::Acquire);
        // What waits to be written, in the command channel and in the transport, is bounded in
        // bytes: past `max_send_queue` an emit fails here instead of memory growing.
        let weight = match &command {
            Request::Emit { weight, .. } => *weight,
            _ => 0,
        };
        if weight > 0 {
            let queued = self.shared.outgoing.get();
            let limit = self.config.max_send_queue;
            if queued > limit {
                return Err(Error::SendQueueFull { queued, limit });
            }
        }
        if buffers {
            let limit = self.config.send_buffer;
            let taken = self.status.buffered.fetch_add(1, Ordering::AcqRel);
            if taken >= limit {
                self.status.buffered.fetch_sub(1, Ordering::AcqRel);
                return Err(Error::SendBufferFull(limit));
            }
        }
        self.shared.outgoing.add(weight);
        self.commands.send(Box::new(command)).map_err(|_| {
            self.shared.outgoing.sub(weight);
            self.status.closed_error()
        })
    }

    pub(crate) fn emit<T: Serialize>(
        &self,
        event: &str,
        args: T,
        volatile: bool,
    ) -> Result<(), Error> {
        self.check_event(event)?;
        let args = Args::from_serialize(&args)?;
        self.listeners.emitting(event, &args);
        let weight = args.wire_size_estimate().max(1);
        self.send(Request::Emit {
            namespace: self.namespace.clone(),
            event: event.to_string(),
            args,
            ack: None,
            volatile,
            weight,
        })
    }

    pub(crate) fn emit_with_ack<T: Serialize>(
        &self,
        event: &str,
        args: T,
        timeout: Duration,
    ) -> Result<AckHandle, Error> {
        self.check_event(event)?;
        let args = Args::from_serialize(&args)?;
        self.listeners.emitting(event, &args);
        let (reply, rx) = oneshot::channel();
        let weight = args.wire_size_estimate().max(1);
        self.send(Request::Emit {
            namespace: self.namespace.clone(),
            event: event.to_string(),
            args,
            ack: Some(AckRequest { reply, timeout }),
            volatile: false,
            weight,
        })?;
        Ok(AckHandle::new(rx))
    }

    pub(crate) fn disconnect(&self) {
        self.status.closed.store(true, Ordering::Release);
        let _ = self.commands.send(Box::new(Request::Disconnect {
            namespace: self.namespace.clone(),
        }));
    }

    /// Starts joining another namespace on the same connection.
    pub(crate) fn join(
        &self,
        namespace: &str,
        auth: AuthSource,
        handlers: Handlers,
    ) -> Result<Pending, Error> {
        check_namespace(namespace)?;
        let (core, reply) = join(
            Arc::from(namespace),
            auth,
            handlers,
            self.commands.clone(),
            self.shared.clone(),
            self.runtime.clone(),
            self.config.clone(),
        )?;
        Ok(Pending { core, reply })
    }
}
