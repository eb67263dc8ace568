//! The blocking facade, for desktop and command-line programs that do not use async.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::async_client::SocketBuilder;
use crate::config::ClientBuilder;
use crate::event_queue::EventQueue;
use crate::socket::{self, SocketCore};
use crate::transport::report::Attempt;
use crate::{runtime, AckHandle, Args, Error, Event, Transport};

/// A connected socket.io namespace with a blocking API. Cheap to clone; the namespace is left
/// when the last clone is dropped (or on [`disconnect`](Self::disconnect)), whatever
/// [`events()`](Self::events) readers still exist: they end. A handler that needs the client
/// captures a [`WeakClient`] ([`downgrade`](Self::downgrade)), which does not keep it joined. The connection runs
/// on a small runtime shared by all blocking clients; calling from inside a tokio runtime works.
#[derive(Clone)]
pub struct Client {
    core: Arc<SocketCore>,
}

/// A [`Client`] that does not keep its namespace joined; see [`Client::downgrade`].
#[derive(Clone, Debug)]
pub struct WeakClient {
    core: std::sync::Weak<SocketCore>,
}

impl WeakClient {
    /// The client, while some `Client` clone still exists.
    pub fn upgrade(&self) -> Option<Client> {
        self.core.upgrade().map(Client::from_core)
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("namespace", &self.core.namespace)
            .field("transport", &self.core.transport())
            .finish()
    }
}

impl ClientBuilder {
    /// Connects, blocking until the namespace is connected or connecting failed.
    pub fn connect(self) -> Result<Client, Error> {
        let pending = socket::start(self, runtime::shared()?)?;
        let core = runtime::block_on(pending.wait())?;
        Ok(Client::from_core(Arc::new(core)))
    }
}

impl Client {
    pub(crate) fn from_core(core: Arc<SocketCore>) -> Client {
        Client { core }
    }

    /// A builder for a client of the server at `url`.
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(url)
    }

    /// Connects to `url`'s main namespace with default options.
    pub fn connect(url: impl Into<String>) -> Result<Client, Error> {
        ClientBuilder::new(url).connect()
    }

    /// A handle that does not keep the namespace joined: for handlers that reply or emit
    /// (a `Client` captured by its own handler would keep it joined forever).
    ///
    /// ```no_run
    /// # use sio_client::{Client, WeakClient};
    /// # fn main() -> Result<(), sio_client::Error> {
    /// let me = std::sync::Arc::new(std::sync::OnceLock::<WeakClient>::new());
    /// let handle = me.clone();
    /// let client = Client::builder("http://localhost:3000")
    ///     .on("ping", move |_args, _ack| {
    ///         if let Some(client) = handle.get().and_then(WeakClient::upgrade) {
    ///             let _ = client.emit("pong", ());
    ///         }
    ///     })
    ///     .connect()?;
    /// let _ = me.set(client.downgrade());
    /// # Ok(()) }
    /// ```
    pub fn downgrade(&self) -> WeakClient {
        WeakClient {
            core: Arc::downgrade(&self.core),
        }
    }

    crate::listeners::listener_methods!();

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
    pub fn emit<T: Serialize>(&self, event: &str, args: T) -> Result<(), Error> {
        self.core.emit(event, args, false)
    }

    /// Emits `event` only if connected now: while reconnecting it is dropped instead of
    /// buffered (the JS client's `volatile`), and `Ok` says so by being `false`; so it is
    /// while more than `max_send_queue` waits to be written.
    pub fn emit_volatile<T: Serialize>(&self, event: &str, args: T) -> Result<bool, Error> {
        if !self.core.can_send_now() {
            return Ok(false);
        }
        self.core.emit(event, args, true).map(|()| true)
    }

    /// Emits `event` and blocks until the server's acknowledgement, at most `timeout`.
    pub fn emit_with_ack<T: Serialize>(
        &self,
        event: &str,
        args: T,
        timeout: Duration,
    ) -> Result<Args, Error> {
        let reply = self.core.emit_with_ack(event, args, timeout)?;
        runtime::block_on(reply)
    }

    /// [`emit_with_ack`](Self::emit_with_ack) with the answer read into `R`: a lone argument
    /// as itself (a struct, a number), several as a tuple. An answer that does not fit is an
    /// [`Error::Deserialize`] naming the event and the argument.
    pub fn emit_with_ack_typed<R, T>(
        &self,
        event: &str,
        args: T,
        timeout: Duration,
    ) -> Result<R, Error>
    where
        R: serde::de::DeserializeOwned,
        T: Serialize,
    {
        let answer = self.emit_with_ack(event, args, timeout)?;
        socket::read_answer(event, answer)
    }

    /// Emits `event` and returns at once with a handle on its acknowledgement: one thread can
    /// keep many acks in flight and collect them later ([`AckHandle::wait`],
    /// [`AckHandle::try_take`]). The handle resolves to the answer, or to
    /// [`Error::AckTimeout`] after `timeout`.
    pub fn emit_with_ack_handle<T: Serialize>(
        &self,
        event: &str,
        args: T,
        timeout: Duration,
    ) -> Result<AckHandle, Error> {
        self.core.emit_with_ack(event, args, timeout)
    }

    /// Emits `event` and calls `callback` with the acknowledgement (or its error) when it
    /// comes, on the client's runtime's blocking pool, without blocking the caller: the JS
    /// client's `socket.timeout(ms).emit(event, args, callback)`.
    pub fn emit_with_ack_callback<T, F>(
        &self,
        event: &str,
        args: T,
        timeout: Duration,
        callback: F,
    ) -> Result<(), Error>
    where
        T: Serialize,
        F: FnOnce(Result<Args, Error>) + Send + 'static,
    {
        let ack = self.core.emit_with_ack(event, args, timeout)?;
        self.core.runtime().spawn(async move {
            let answer = ack.await;
            let _ = tokio::task::spawn_blocking(move || callback(answer)).await;
        });
        Ok(())
    }

    /// A blocking iterator over this namespace's events (messages without a handler,
    /// connection state changes). It ends when the connection is closed for good.
    ///
    /// Nothing is dropped while it is not read: the client stops reading from the server until
    /// the application catches up (see [`ClientBuilder::event_buffer`]).
    pub fn events(&self) -> Events {
        Events {
            queue: self.core.reader_queue(),
        }
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

/// Blocking iterator over a client's events; see [`Client::events`].
pub struct Events {
    queue: Arc<EventQueue>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

impl Events {
    /// The next event, waiting at most `timeout`; `None` on timeout or when the stream ended.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Event> {
        self.queue.pop_timeout(timeout)
    }
}

impl Iterator for Events {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        self.queue.pop_blocking()
    }
}

// The blocking half of `SocketBuilder` (defined with its async half in `async_client.rs`),
// here so that `async_client` does not import this module, which imports it.
impl SocketBuilder {
    /// Joins, blocking until the namespace is connected.
    pub fn connect(self) -> Result<Client, Error> {
        let pending = self.start()?;
        let core = runtime::block_on(pending.wait())?;
        Ok(Client::from_core(Arc::new(core)))
    }
}
