//! The core's interface: the commands it takes, the outputs it gives, the tokens that name
//! callers, and its options.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::config::AuthSource;
use crate::event::Event;
use crate::proto::engineio::EngineVersion;
use crate::reason::DisconnectReason;
use crate::transport::Held;
use crate::{Args, Error};

/// Names a caller waiting for an answer (a connect, an acknowledgement). Chosen by the IO
/// side, unique among the callers waiting at any time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Token(pub(crate) u64);

/// What the application asks of the client.
pub(crate) enum Command {
    /// Join `namespace`; the answer goes to `reply`.
    Connect {
        namespace: Arc<str>,
        auth: AuthSource,
        reply: Token,
        /// When a first connect gives up (`None`: never).
        deadline: Option<Instant>,
    },
    /// Emit an event, the answer (with an ack) going to `ack`'s token.
    Emit {
        namespace: Arc<str>,
        event: String,
        args: Args,
        ack: Option<(Token, Duration)>,
        /// Dropped instead of buffered while disconnected.
        volatile: bool,
        /// Its bytes, counted against `max_send_queue` while the core keeps it.
        held: Held,
    },
    /// Answer the server's acknowledgement request `id`.
    Ack {
        namespace: Arc<str>,
        id: u64,
        args: Args,
    },
    /// Leave a namespace (the connection closes with the last one).
    Disconnect { namespace: Arc<str> },
    /// Leave every namespace (every handle is gone).
    DisconnectAll,
}

/// A change of what the handles of a namespace can see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Status {
    Connected(bool),
    /// Gone for good, and why: emits fail at the call site with that reason.
    Closed(DisconnectReason),
    Recovered(bool),
    /// Emits waiting for a connection.
    Buffered(usize),
    /// The socket's id, as the server named it (cleared with `Connected(false)`).
    Id(Arc<str>),
}

/// What the core wants done.
#[derive(Debug)]
pub(crate) enum Output {
    /// The answer to a `Connect`.
    ConnectReply {
        token: Token,
        result: Result<(), Error>,
    },
    /// The answer to an emit that asked for an acknowledgement.
    AckReply {
        token: Token,
        result: Result<Args, Error>,
    },
    /// What the handles of `namespace` see changed.
    Status { namespace: Arc<str>, status: Status },
    /// Something for the application of `namespace` (never `Event::Message`: see `Message`).
    Event { namespace: Arc<str>, event: Event },
    /// The server emitted an event; `ack` is its acknowledgement id, `size` its wire size.
    Message {
        namespace: Arc<str>,
        /// The namespace's name as the packet carried it (the same text as `namespace`): the
        /// event's own copy, so that delivering it allocates no other.
        namespace_text: String,
        event: String,
        args: Args,
        ack: Option<u64>,
        size: usize,
    },
    /// `namespace` is gone: its event stream ends.
    Forget { namespace: Arc<str> },
    /// Open an Engine.IO session with `version`, then call `handle_link_open` or
    /// `handle_link_failed`. `query_auth` goes into the handshake query (socket.io 2 servers
    /// take the main namespace's auth there).
    OpenLink {
        version: EngineVersion,
        query_auth: Option<Value>,
    },
    /// Compute the asynchronous auth of `namespace`, then call `handle_auth` with `link`.
    ResolveAuth { namespace: Arc<str>, link: u64 },
    /// Close the current link (politely); it carries nothing for the core any more.
    DropLink,
    /// Every namespace is gone; `error` is the last failure, for callers still queued.
    Finished {
        reason: DisconnectReason,
        error: Option<Error>,
    },
}

/// The options the core acts on.
#[derive(Debug, Clone)]
pub(crate) struct CoreConfig {
    /// `EngineVersion::Auto` starts with v4 and switches to v3 when the server turns out to
    /// be a socket.io 2 one.
    pub(crate) version: EngineVersion,
    pub(crate) reconnection: bool,
    pub(crate) reconnection_attempts: Option<u32>,
    pub(crate) reconnection_delay: Duration,
    pub(crate) reconnection_delay_max: Duration,
    pub(crate) randomization_factor: f64,
    pub(crate) retry_initial_connect: bool,
    /// At-least-once delivery: resend each emit until acknowledged, this many times more.
    pub(crate) retries: Option<u32>,
    pub(crate) ack_timeout: Duration,
    /// The connect timeout (for the error of a connect that ran out of it).
    pub(crate) timeout: Duration,
}
