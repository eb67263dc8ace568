//! The crate's one error type.

use std::time::Duration;

use serde_json::Value;

use crate::proto::ProtocolError;
use crate::Transport;

/// Everything that can go wrong, saying what failed and where.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL given to the builder cannot be used.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The event name is reserved by socket.io (`connect`, `disconnect`, …).
    #[error("event name {0:?} is reserved by socket.io")]
    ReservedEvent(String),
    /// An emit without an event name.
    #[error("an event name cannot be empty")]
    EmptyEventName,
    /// A namespace name must start with `/`.
    #[error("invalid namespace {0:?}: a namespace starts with '/'")]
    InvalidNamespace(String),
    /// An extra header's name or value is not valid HTTP.
    #[error("invalid header {0:?}")]
    InvalidHeader(String),
    /// Arguments could not be turned into JSON.
    #[error("arguments cannot be serialised: {0}")]
    Serialize(String),
    /// Received arguments do not have the requested type.
    #[error("arguments cannot be deserialised: {0}")]
    Deserialize(String),
    /// The Engine.IO handshake failed on a transport.
    #[error("handshake over {transport} failed{}: {body}", status.map(|s| format!(" with HTTP {s}")).unwrap_or_default())]
    Handshake {
        /// Transport that was tried.
        transport: Transport,
        /// HTTP status, when the server answered.
        status: Option<u16>,
        /// Response body or error description.
        body: String,
    },
    /// The server refused to connect a namespace (CONNECT_ERROR).
    #[error("namespace {namespace} refused the connection: {message}")]
    ConnectRefused {
        /// Namespace refused.
        namespace: String,
        /// The server's message.
        message: String,
        /// Extra data the server attached (v5 servers only).
        data: Option<Value>,
    },
    /// Connecting took longer than the configured timeout.
    #[error("connection not established within {0:?}")]
    ConnectTimeout(Duration),
    /// No acknowledgement arrived in time.
    #[error("no acknowledgement within {0:?}")]
    AckTimeout(Duration),
    /// The connection is gone (or went away while waiting).
    #[error("disconnected: {0}")]
    Disconnected(String),
    /// The server sent something that breaks the protocol.
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// A transport failed (IO, TLS, HTTP status, WebSocket error).
    #[error("{transport} transport error: {message}")]
    Transport {
        /// Transport that failed.
        transport: Transport,
        /// What happened.
        message: String,
    },
    /// Too many emits are waiting for the connection to come back.
    #[error("{0} emits are already waiting for the reconnection")]
    SendBufferFull(usize),
    /// Too much is already waiting to be written to the server: it reads more slowly than the
    /// application emits (see `ClientBuilder::max_send_queue`).
    #[error("{queued} bytes are already waiting to be written to the server (limit {limit}): it reads more slowly than the application emits")]
    SendQueueFull {
        /// Bytes waiting.
        queued: usize,
        /// The limit in force.
        limit: usize,
    },
    /// An acknowledgement was answered twice.
    #[error("acknowledgement {0} was already sent")]
    AckAlreadySent(u64),
    /// The client was closed with `disconnect()` or dropped.
    #[error("client is closed")]
    Closed,
}

/// Shorthand for `Result<T, sio_client::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
