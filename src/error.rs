//! The crate's one error type.
//!
//! `Error` is `Clone`: one failure often answers several waiting callers (every pending ack and
//! connect of a connection that is lost), and each gets the same error, cause included. IO, TLS
//! and HTTP causes are kept as [`ErrorSource`] (an `Arc`), reachable through
//! [`std::error::Error::source`], rather than flattened into the message alone.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::proto::ProtocolError;
use crate::Transport;

/// Everything that can go wrong, saying what failed and where.
#[non_exhaustive]
#[derive(Debug, Clone, thiserror::Error)]
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
        /// The underlying IO, TLS or HTTP error, when there is one.
        #[source]
        source: Option<ErrorSource>,
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
        /// What happened (the whole cause chain, as text).
        message: String,
        /// The underlying IO, TLS, HTTP or WebSocket error, when there is one.
        #[source]
        source: Option<ErrorSource>,
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

/// The cause of a transport or handshake error, shared by every copy of the error.
pub type ErrorSource = Arc<dyn std::error::Error + Send + Sync>;

impl Error {
    /// A transport failure without an underlying error value.
    pub(crate) fn transport(transport: Transport, message: impl Into<String>) -> Self {
        Error::Transport {
            transport,
            message: message.into(),
            source: None,
        }
    }

    /// A transport failure caused by `cause`; the message is its whole chain as text.
    pub(crate) fn transport_caused(
        transport: Transport,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Transport {
            transport,
            message: error_chain(&cause),
            source: Some(Arc::new(cause)),
        }
    }

    /// A failed handshake (no HTTP answer or a refusing one).
    pub(crate) fn handshake(
        transport: Transport,
        status: Option<u16>,
        body: impl Into<String>,
    ) -> Self {
        Error::Handshake {
            transport,
            status,
            body: body.into(),
            source: None,
        }
    }

    /// A handshake that failed because of `cause`; the body is its whole chain as text.
    pub(crate) fn handshake_caused(
        transport: Transport,
        status: Option<u16>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Handshake {
            transport,
            status,
            body: error_chain(&cause),
            source: Some(Arc::new(cause)),
        }
    }
}

/// An error and its causes as one line, each cause said once (reqwest and hyper repeat them).
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// Shorthand for `Result<T, sio_client::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn copies_keep_the_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let error = Error::transport_caused(Transport::WebSocket, io);
        let copy = error.clone();
        for e in [&error, &copy] {
            let source = e.source().expect("the io error is kept");
            let io = source
                .downcast_ref::<std::io::Error>()
                .expect("typed, not a string");
            assert_eq!(io.kind(), std::io::ErrorKind::ConnectionReset);
        }
        assert_eq!(error.to_string(), copy.to_string());
    }
}
