//! What the blocking and async facades share: a handle on one namespace of one connection.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::config::{check_namespace, AuthSource, ClientBuilder, Config, Handlers};
use crate::driver;
use crate::event_queue::{EventQueue, EventSink};
use crate::listeners::Listeners;
use crate::proto::socketio::is_reserved_event;
use crate::proto::time::deadline_after;
use crate::request::{AckRequest, Request, Shared, SocketSinks, SocketStatus};
use crate::transport::connect::{header_map, Attempt};
use crate::transport::net::Net;
use crate::transport::url::Endpoint;
use crate::{AckHandle, Args, Error, Event, Transport};

/// One namespace of one connection.
pub(crate) struct SocketCore {
    pub(crate) namespace: Arc<str>,
    commands: mpsc::UnboundedSender<Request>,
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
        let _ = self.commands.send(Request::Disconnect {
            namespace: self.namespace.clone(),
        });
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
            Err(_) => Err(Error::Disconnected(
                "connection closed while connecting".into(),
            )),
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
    let (commands, receiver) = mpsc::unbounded_channel();
    let weak = commands.downgrade();
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
    driver::spawn(&runtime, config, receiver, weak, shared, auth, net);
    Ok(Pending { core, reply })
}

/// Queues the CONNECT of a namespace and starts its event dispatcher.
fn join(
    namespace: Arc<str>,
    auth: AuthSource,
    handlers: Handlers,
    commands: mpsc::UnboundedSender<Request>,
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
        .send(Request::Connect {
            namespace: namespace.clone(),
            auth,
            events,
            status: status.clone(),
            deadline: Some(deadline_after(Instant::now(), config.timeout)),
            reply: reply_tx,
        })
        .map_err(|_| Error::Disconnected("the connection is closed".into()))?;
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

/// Runs listeners off the driver, in order, and hands everything else to `events()` readers.
/// Back-pressure passes through: the dispatcher takes the next event only when the listeners
/// of the one before returned and the `events()` queue has room, so a slow listener fills
/// `inbound` and the driver stops reading the transport (see `event_queue.rs`).
fn spawn_dispatcher(
    runtime: &tokio::runtime::Handle,
    listeners: Arc<Listeners>,
    inbound: Arc<EventQueue>,
    queue: Arc<EventQueue>,
) {
    runtime.spawn(async move {
        while let Some((event, bytes)) = inbound.pop_sized().await {
            match event {
                Event::Message {
                    namespace,
                    event,
                    args,
                    ack,
                } => {
                    let calls = listeners.take_calls(&event);
                    if calls.event.is_empty() {
                        // No listener of its own: `on_any` listeners see it, then `events()`.
                        if !calls.any.is_empty() {
                            let (name, args, ack) = (event.clone(), args.clone(), ack.clone());
                            run_handler(move || {
                                for any in &calls.any {
                                    any(&name, args.clone(), ack.clone());
                                }
                            })
                            .await;
                        }
                        queue.room().await;
                        let message = Event::Message {
                            namespace,
                            event,
                            args,
                            ack,
                        };
                        queue.push(message, bytes);
                    } else {
                        // One trip to the blocking pool per event, whatever its listener
                        // count; the last listener gets the arguments themselves.
                        let errors = run_listeners(move || {
                            for any in &calls.any {
                                any(&event, args.clone(), ack.clone());
                            }
                            let (last, others) = calls.event.split_last().expect("not empty");
                            let mut errors: Vec<Error> = others
                                .iter()
                                .filter_map(|l| l.call(args.clone(), ack.clone()))
                                .collect();
                            errors.extend(last.call(args, ack));
                            errors
                        })
                        .await;
                        // A typed listener's arguments that did not fit: the application
                        // hears it rather than the event vanishing.
                        for error in errors {
                            tracing::warn!(%error, "a typed listener could not read its event");
                            queue.room().await;
                            queue.push(Event::Error(Arc::new(error)), 0);
                        }
                    }
                }
                other => {
                    queue.room().await;
                    queue.push(other, bytes);
                }
            }
        }
        queue.close();
    });
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

/// Listeners that may report errors, on the blocking pool as [`run_handler`].
async fn run_listeners(listeners: impl FnOnce() -> Vec<Error> + Send + 'static) -> Vec<Error> {
    match tokio::task::spawn_blocking(listeners).await {
        Ok(errors) => errors,
        Err(e) => {
            tracing::warn!(error = %e, "an event handler panicked");
            Vec::new()
        }
    }
}

/// Handlers are plain blocking closures: they run on the blocking pool so that a slow one never
/// stalls a runtime worker.
async fn run_handler(handler: impl FnOnce() + Send + 'static) {
    if let Err(e) = tokio::task::spawn_blocking(handler).await {
        tracing::warn!(error = %e, "an event handler panicked");
    }
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
            return Err(Error::Disconnected("the connection is closed".into()));
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
        self.commands.send(command).map_err(|_| {
            self.shared.outgoing.sub(weight);
            Error::Disconnected("the connection is closed".into())
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
        let _ = self.commands.send(Request::Disconnect {
            namespace: self.namespace.clone(),
        });
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
