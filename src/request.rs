//! What the handles (`Client`, `AsyncClient`, their sockets) send to a connection's driver, and
//! what they can read of it without asking: a layer below both, so that neither imports the
//! other.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::config::AuthSource;
use crate::event_queue::{EventQueue, EventSink};
use crate::listeners::Listeners;
use crate::reason::DisconnectReason;
use crate::transport::report::Attempt;
use crate::transport::Outgoing;
use crate::{Args, Error, Transport};

/// What the handles ask of the driver.
/// The channel from a client's handles to its driver. Requests travel boxed: tokio's channel
/// allocates its first block of 32 slots up front, and 32 slots of a 128-byte `Request` are
/// 4 KiB per client for the connection's whole life; boxed, 256 bytes, for one small
/// allocation per request beside the ones an emit makes anyway.
pub(crate) type RequestSender = tokio::sync::mpsc::UnboundedSender<Box<Request>>;
/// The driver's end of [`RequestSender`].
pub(crate) type RequestReceiver = tokio::sync::mpsc::UnboundedReceiver<Box<Request>>;
/// A [`RequestSender`] that does not keep the driver alive.
pub(crate) type WeakRequestSender = tokio::sync::mpsc::WeakUnboundedSender<Box<Request>>;

pub(crate) enum Request {
    /// Join a namespace.
    Connect {
        namespace: Arc<str>,
        auth: AuthSource,
        events: SocketSinks,
        status: Arc<SocketStatus>,
        deadline: Option<Instant>,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    /// Emit an event, optionally waiting for its acknowledgement.
    Emit {
        namespace: Arc<str>,
        event: String,
        args: Args,
        ack: Option<AckRequest>,
        /// Dropped instead of buffered while disconnected.
        volatile: bool,
        /// Its estimated size, counted in `Shared::outgoing` until the driver takes it.
        weight: usize,
    },
    /// Answer the server's acknowledgement request.
    Ack {
        namespace: Arc<str>,
        id: u64,
        args: Args,
    },
    /// Leave a namespace (the connection closes with the last one).
    Disconnect { namespace: Arc<str> },
}

/// Where a socket's events go: straight to its `events()` queue, or (while it has listeners)
/// through its dispatcher, which calls them and hands the rest on to that queue in order.
pub(crate) struct SocketSinks {
    pub(crate) events: Arc<EventQueue>,
    pub(crate) dispatch: EventSink,
    pub(crate) listeners: Arc<Listeners>,
}

/// The caller waiting for an acknowledgement.
pub(crate) struct AckRequest {
    pub(crate) reply: oneshot::Sender<Result<Args, Error>>,
    pub(crate) timeout: Duration,
}

/// What the handles of one namespace can see of it (written by the driver's routing only).
#[derive(Default)]
pub(crate) struct SocketStatus {
    pub(crate) connected: AtomicBool,
    /// The socket is gone for good: emits fail at the call site.
    pub(crate) closed: AtomicBool,
    pub(crate) recovered: AtomicBool,
    /// Emits waiting for a connection.
    pub(crate) buffered: AtomicUsize,
    /// The socket's id while connected.
    pub(crate) id: Mutex<Option<Arc<str>>>,
    /// Why the socket was closed, once it is.
    closed_reason: Mutex<Option<DisconnectReason>>,
}

impl SocketStatus {
    pub(crate) fn id(&self) -> Option<Arc<str>> {
        self.id.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Closes the socket for good: calls fail at the call site with `reason`.
    pub(crate) fn close(&self, reason: DisconnectReason) {
        *self.closed_reason.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
        self.closed.store(true, Ordering::Release);
    }

    /// The error of a call on a socket that is closed (or whose client is gone).
    pub(crate) fn closed_error(&self) -> Error {
        let reason = self
            .closed_reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Error::Disconnected(reason.unwrap_or(DisconnectReason::IoClientDisconnect))
    }

    pub(crate) fn set_id(&self, id: Option<Arc<str>>) {
        *self.id.lock().unwrap_or_else(|e| e.into_inner()) = id;
    }
}

/// What every handle can see of the connection.
#[derive(Default)]
pub(crate) struct Shared {
    transport: Mutex<Option<Transport>>,
    /// Bytes the current transport still has to write.
    pub(crate) outgoing: Outgoing,
    attempts: Mutex<Vec<Attempt>>,
    closed: AtomicBool,
}

impl Shared {
    pub(crate) fn transport(&self) -> Option<Transport> {
        *self.transport.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set_transport(&self, transport: Transport) {
        *self.transport.lock().unwrap_or_else(|e| e.into_inner()) = Some(transport);
    }

    pub(crate) fn attempts(&self) -> Vec<Attempt> {
        self.attempts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_attempts(&self, attempts: Vec<Attempt>) {
        *self.attempts.lock().unwrap_or_else(|e| e.into_inner()) = attempts;
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }
}
