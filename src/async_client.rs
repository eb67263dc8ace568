//! The async facade, for tokio applications.

use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use serde::Serialize;

use crate::config::{AuthSource, ClientBuilder, Handlers};
use crate::socket::{self, SocketCore};
use crate::transport::report::Attempt;
use crate::{runtime, AckHandle, Args, Error, Event, Transport};

/// A connected socket.io namespace, for async code. Cheap to clone; the namespace is left when
/// the last clone is dropped (or on [`disconnect`](Self::disconnect)).
#[derive(Clone)]
pub struct AsyncClient {
    core: Arc<SocketCore>,
}

impl std::fmt::Debug for AsyncClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncClient")
            .field("namespace", &self.core.namespace)
            .field("transport", &self.core.transport())
            .finish()
    }
}

impl ClientBuilder {
    /// Connects from async code; resolves once the namespace is connected. The connection runs
    /// on the current tokio runtime (or the crate's own when there is none).
    pub async fn connect_async(self) -> Result<AsyncClient, Error> {
        let pending = socket::start(self, runtime::current_or_shared()?)?;
        Ok(AsyncClient {
            core: Arc::new(pending.wait().await?),
        })
    }
}

impl AsyncClient {
    /// A builder for a client of the server at `url`.
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(url)
    }

    /// The namespace of this handle.
    pub fn namespace(&self) -> &str {
        &self.core.namespace
    }

    /// The transport carrying the connection now.
    pub fn transport(&self) -> Transport {
        self.core.transport()
    }

    /// The transports tried when the connection was opened, with their outcomes.
    pub fn connect_report(&self) -> Vec<Attempt> {
        self.core.attempts()
    }

    crate::listeners::listener_methods!();

    /// Whether the namespace is connected now (false while reconnecting).
    pub fn is_connected(&self) -> bool {
        self.core.is_connected()
    }

    /// The socket's id, the same the server sees as `socket.id`; `None` while not connected
    /// (as the JS client's `socket.id`).
    pub fn id(&self) -> Option<String> {
        self.core.id()
    }

    /// Whether the socket is connected or will reconnect by itself: false once it is closed
    /// for good (`disconnect()`, the server's disconnect, reconnection given up), as the JS
    /// client's `socket.active`.
    pub fn active(&self) -> bool {
        self.core.is_active()
    }

    /// Whether the last (re)connection restored the server-side session (socket.io 4.6+
    /// servers with connection-state recovery): events missed during the outage were
    /// delivered.
    pub fn recovered(&self) -> bool {
        self.core.recovered()
    }

    /// Emits `event` with `args`: a tuple for several arguments, `()` for none, anything else
    /// `Serialize` for one. `bytes::Bytes` values anywhere inside are sent as binary.
    pub async fn emit<T: Serialize>(&self, event: &str, args: T) -> Result<(), Error> {
        self.core.emit(event, args, false)
    }

    /// Emits `event` only if connected now: while reconnecting it is dropped instead of
    /// buffered (the JS client's `volatile`), and `Ok` says so by being `false`; so it is
    /// while more than `max_send_queue` waits to be written.
    pub async fn emit_volatile<T: Serialize>(&self, event: &str, args: T) -> Result<bool, Error> {
        if !self.core.can_send_now() {
            return Ok(false);
        }
        self.core.emit(event, args, true).map(|()| true)
    }

    /// Emits `event` and waits for the server's acknowledgement, at most `timeout`.
    pub async fn emit_with_ack<T: Serialize>(
        &self,
        event: &str,
        args: T,
        timeout: Duration,
    ) -> Result<Args, Error> {
        self.core.emit_with_ack(event, args, timeout)?.await
    }

    /// [`emit_with_ack`](Self::emit_with_ack) with the answer read into `R`: a lone argument
    /// as itself, several as a tuple; an answer that does not fit is an
    /// [`Error::Deserialize`] naming the event and the argument.
    pub async fn emit_with_ack_typed<R, T>(
        &self,
        event: &str,
        args: T,
        timeout: Duration,
    ) -> Result<R, Error>
    where
        R: serde::de::DeserializeOwned,
        T: Serialize,
    {
        let answer = self.emit_with_ack(event, args, timeout).await?;
        socket::read_answer(event, answer)
    }

    /// Emits `event` and returns at once with its acknowledgement as a future
    /// ([`AckHandle`]): many acks can be in flight from one task and be awaited later, in any
    /// order (`futures::future::join_all`, say).
    pub fn emit_with_ack_handle<T: Serialize>(
        &self,
        event: &str,
        args: T,
        timeout: Duration,
    ) -> Result<AckHandle, Error> {
        self.core.emit_with_ack(event, args, timeout)
    }

    /// The stream of events of this namespace (messages without a handler, connection state
    /// changes). Several streams share one queue: each event goes to one reader. The stream
    /// ends when the connection is closed for good.
    ///
    /// Nothing is dropped while it is not read: the client stops reading from the server until
    /// the application catches up (see [`ClientBuilder::event_buffer`]).
    pub fn events(&self) -> impl Stream<Item = Event> + Send + 'static {
        let queue = self.core.reader_queue();
        futures_util::stream::unfold(queue, |queue| async move {
            let event = queue.pop().await?;
            Some((event, queue))
        })
    }

    /// Events dropped so far: 0 unless [`EventOverflow::DropOldest`](crate::EventOverflow)
    /// was chosen, or events without a handler arrived before the first `events()` call on a
    /// socket with handlers (see [`ClientBuilder::event_buffer`]).
    pub fn dropped_events(&self) -> u64 {
        self.core.dropped_events()
    }

    /// Joins another namespace over the same connection.
    pub fn socket(&self, namespace: impl Into<String>) -> SocketBuilder {
        SocketBuilder::new(self.core.clone(), namespace.into())
    }

    /// Leaves the namespace; the connection closes when no namespace is left.
    pub fn disconnect(&self) {
        self.core.disconnect();
    }
}

/// Options for joining another namespace on an existing connection.
pub struct SocketBuilder {
    parent: Arc<SocketCore>,
    namespace: String,
    auth: Result<AuthSource, String>,
    handlers: Handlers,
}

impl std::fmt::Debug for SocketBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketBuilder")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl SocketBuilder {
    crate::config::namespace_options!();

    pub(crate) fn new(parent: Arc<SocketCore>, namespace: String) -> SocketBuilder {
        SocketBuilder {
            parent,
            namespace,
            auth: Ok(AuthSource::None),
            handlers: Handlers::default(),
        }
    }

    pub(crate) fn start(self) -> Result<socket::Pending, Error> {
        let auth = self.auth.map_err(Error::Serialize)?;
        self.parent.join(&self.namespace, auth, self.handlers)
    }

    /// Joins from async code.
    pub async fn connect_async(self) -> Result<AsyncClient, Error> {
        let pending = self.start()?;
        Ok(AsyncClient {
            core: Arc::new(pending.wait().await?),
        })
    }
}
