//! What a client reports to the application: events and ack senders (the disconnect reasons
//! they carry are `reason.rs`).

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::Serialize;

use crate::reason::DisconnectReason;
use crate::{Args, Error, Transport};

/// Something that happened on a socket (one namespace of a connection).
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum Event {
    /// The namespace is connected.
    Connected {
        /// Namespace.
        namespace: String,
        /// Transport carrying the connection.
        transport: Transport,
    },
    /// The server emitted an event.
    Message {
        /// Namespace.
        namespace: String,
        /// Event name.
        event: String,
        /// Its arguments.
        args: Args,
        /// Present when the server asked for an acknowledgement.
        ack: Option<AckSender>,
    },
    /// The namespace is disconnected.
    Disconnected {
        /// Namespace.
        namespace: String,
        /// Why.
        reason: DisconnectReason,
    },
    /// The connection moved to another transport (e.g. upgraded from polling to WebSocket).
    TransportChanged {
        /// Transport before.
        from: Transport,
        /// Transport now.
        to: Transport,
    },
    /// The connection was lost; reconnection attempt `attempt` starts after `delay`.
    Reconnecting {
        /// 1 for the first attempt after the loss.
        attempt: u32,
        /// The wait before the attempt.
        delay: std::time::Duration,
    },
    /// The namespace is connected again (after `Connected`, which comes too).
    Reconnected {
        /// The attempt that succeeded.
        attempt: u32,
        /// Transport carrying the new connection.
        transport: Transport,
        /// Whether the server restored the session (connection-state recovery): events missed
        /// during the outage have been delivered.
        recovered: bool,
    },
    /// Reconnection gave up after the configured number of attempts; the socket is closed.
    ReconnectFailed,
    /// Events were dropped before this point: only with
    /// [`EventOverflow::DropOldest`](crate::EventOverflow::DropOldest), or in the `events()`
    /// queue of a socket with handlers before the first `events()` call (see
    /// [`ClientBuilder::event_buffer`](crate::ClientBuilder::event_buffer)).
    Lagged {
        /// How many events were dropped since the last `Lagged`.
        dropped: u64,
    },
    /// An error the connection met (what led to a disconnect, a failed reconnection attempt, or
    /// a refused namespace).
    Error(Arc<Error>),
}

/// Where the acknowledgements of one namespace go (the driver's side, behind a trait so that
/// events do not depend on the driver).
pub(crate) trait AckRoute: Send + Sync {
    /// The namespace the acks answer in.
    fn namespace(&self) -> &str;
    /// Sends the ack `id` with `args`; `Error::Closed` when the client is gone.
    fn send_ack(&self, id: u64, args: Args) -> Result<(), Error>;
}

/// Answers a server's acknowledgement request; usable once (clones share that one use).
#[derive(Clone)]
pub struct AckSender {
    route: Arc<dyn AckRoute>,
    id: u64,
    used: Arc<AtomicBool>,
}

impl fmt::Debug for AckSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AckSender")
            .field("namespace", &self.route.namespace())
            .field("id", &self.id)
            .finish()
    }
}

impl AckSender {
    pub(crate) fn new(route: Arc<dyn AckRoute>, id: u64) -> AckSender {
        AckSender {
            route,
            id,
            used: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The ack id the server gave.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Sends the acknowledgement with `args` (a tuple for several values, `()` for none).
    /// Fails if already sent, or if the client is gone.
    pub fn send<T: Serialize + ?Sized>(&self, args: &T) -> Result<(), Error> {
        let args = Args::from_serialize(args)?;
        self.send_args(args)
    }

    /// Like [`send`](Self::send) with arguments already built.
    pub fn send_args(&self, args: Args) -> Result<(), Error> {
        if self.used.swap(true, Ordering::AcqRel) {
            return Err(Error::AckAlreadySent(self.id));
        }
        self.route.send_ack(self.id, args)
    }
}
