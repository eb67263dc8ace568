//! The crate's one error type.
//!
//! `Error` is `Clone`: one failure often answers several waiting callers (every pending ack and
//! connect of a connection that is lost), and each gets the same error, cause included. IO, TLS
//! and HTTP causes are kept as [`ErrorSource`] (an `Arc`), reachable through
//! [`std::error::Error::source`], rather than flattened into the message alone.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::proto::ProtocolError;
use crate::reason::DisconnectReason;
use crate::transport::report::{Attempt, Hint};
use crate::Transport;

/// Everything that can go wrong, saying what failed and where.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum Error {
    /// The URL given to the builder cannot be used.
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The event name is reserved by socket.io (`connect`, `disconnect`, …).
    ReservedEvent(String),
    /// An emit without an event name.
    EmptyEventName,
    /// A namespace name must start with `/`.
    InvalidNamespace(String),
    /// An extra header's name or value is not valid HTTP.
    InvalidHeader(String),
    /// Arguments could not be turned into JSON.
    Serialize(String),
    /// Received arguments do not have the requested type.
    Deserialize(String),
    /// The Engine.IO handshake failed on a transport.
    Handshake {
        /// Transport that was tried.
        transport: Transport,
        /// HTTP status, when the server answered.
        status: Option<u16>,
        /// Response body or error description.
        body: String,
        /// The underlying IO, TLS or HTTP error, when there is one.
        source: Option<ErrorSource>,
    },
    /// The server refused to connect a namespace (CONNECT_ERROR).
    ConnectRefused {
        /// Namespace refused.
        namespace: String,
        /// The server's message.
        message: String,
        /// Extra data the server attached (v5 servers only).
        data: Option<Value>,
    },
    /// Connecting took longer than the configured timeout.
    ConnectTimeout(Duration),
    /// No acknowledgement arrived in time.
    AckTimeout(Duration),
    /// The socket is not connected, or stopped being connected while the call waited, and why
    /// (the JS client's reasons): an acknowledgement lost with the connection (`transport
    /// close`, `ping timeout`, ...), an emit on a socket the server disconnected (`io server
    /// disconnect`) or on a client that was closed or dropped (`io client disconnect`).
    Disconnected(DisconnectReason),
    /// The server sent something that breaks the protocol.
    Protocol(ProtocolError),
    /// A transport failed (IO, TLS, HTTP status, WebSocket error).
    Transport {
        /// Transport that failed.
        transport: Transport,
        /// What happened (the whole cause chain, as text).
        message: String,
        /// The underlying IO, TLS, HTTP or WebSocket error, when there is one.
        source: Option<ErrorSource>,
    },
    /// Too many emits are waiting for the connection to come back.
    SendBufferFull(usize),
    /// Too much is already waiting to be written to the server: it reads more slowly than the
    /// application emits (see `ClientBuilder::max_send_queue`).
    SendQueueFull {
        /// Bytes waiting.
        queued: usize,
        /// The limit in force.
        limit: usize,
    },
    /// An acknowledgement was answered twice.
    AckAlreadySent(u64),
    /// The client was closed with `disconnect()` or dropped.
    Closed,
    /// No transport got through: every attempt, with hints for the classic mistakes (see
    /// [`ConnectFailure`]). [`Error::last_failure`] is the last transport's error (the one a
    /// connect returned before the report existed).
    ///
    /// ```no_run
    /// # fn main() {
    /// match sio_client::ClientBuilder::new("https://localhost:3000").connect() {
    ///     Err(sio_client::Error::ConnectFailed(failure)) => {
    ///         for attempt in &failure.attempts {
    ///             eprintln!("{}: {:?}", attempt.transport, attempt.outcome);
    ///         }
    ///         for hint in &failure.hints {
    ///             eprintln!("hint: {hint}");
    ///         }
    ///     }
    ///     Err(other) => eprintln!("{other}"),
    ///     Ok(_client) => {}
    /// }
    /// # }
    /// ```
    ConnectFailed(Box<ConnectFailure>),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidUrl { url, reason } => write!(f, "invalid URL {url:?}: {reason}"),
            Error::ReservedEvent(name) => write!(f, "event name {name:?} is reserved by socket.io"),
            Error::EmptyEventName => f.write_str("an event name cannot be empty"),
            Error::InvalidNamespace(nsp) => {
                write!(f, "invalid namespace {nsp:?}: a namespace starts with '/'")
            }
            Error::InvalidHeader(header) => write!(f, "invalid header {header:?}"),
            Error::Serialize(why) => write!(f, "arguments cannot be serialised: {why}"),
            Error::Deserialize(why) => write!(f, "arguments cannot be deserialised: {why}"),
            Error::Handshake {
                transport,
                status,
                body,
                ..
            } => {
                write!(f, "handshake over {transport} failed")?;
                if let Some(status) = status {
                    write!(f, " with HTTP {status}")?;
                }
                write!(f, ": {body}")
            }
            Error::ConnectRefused {
                namespace, message, ..
            } => write!(f, "namespace {namespace} refused the connection: {message}"),
            Error::ConnectTimeout(d) => write!(f, "connection not established within {d:?}"),
            Error::AckTimeout(d) => write!(f, "no acknowledgement within {d:?}"),
            Error::Disconnected(reason) => write!(f, "disconnected: {reason}"),
            Error::Protocol(e) => write!(f, "protocol error: {e}"),
            Error::Transport {
                transport, message, ..
            } => write!(f, "{transport} transport error: {message}"),
            Error::SendBufferFull(n) => {
                write!(f, "{n} emits are already waiting for the reconnection")
            }
            Error::SendQueueFull { queued, limit } => write!(
                f,
                "{queued} bytes are already waiting to be written to the server (limit {limit}): \
                 it reads more slowly than the application emits"
            ),
            Error::AckAlreadySent(id) => write!(f, "acknowledgement {id} was already sent"),
            Error::Closed => f.write_str("client is closed"),
            Error::ConnectFailed(failure) => failure.fmt(f),
        }
    }
}

/// Written by hand rather than derived: the cause is the error inside the `Arc`, so that
/// `source().downcast_ref::<std::io::Error>()` works (a derived impl would hand out the `Arc`).
impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Handshake {
                source: Some(source),
                ..
            }
            | Error::Transport {
                source: Some(source),
                ..
            } => Some(&**source),
            Error::Protocol(e) => Some(e),
            Error::ConnectFailed(failure) => Some(&failure.error),
            _ => None,
        }
    }
}

impl From<ProtocolError> for Error {
    fn from(error: ProtocolError) -> Self {
        Error::Protocol(error)
    }
}

/// The cause of a transport or handshake error, shared by every copy of the error.
pub type ErrorSource = Arc<dyn std::error::Error + Send + Sync>;

impl Error {
    /// The error that decided a failed connect: for [`Error::ConnectFailed`], the last
    /// transport's error (a [`Error::Handshake`], [`Error::Transport`],
    /// [`Error::ConnectTimeout`], ...); any other error is itself.
    pub fn last_failure(&self) -> &Error {
        match self {
            Error::ConnectFailed(failure) => failure.error.last_failure(),
            other => other,
        }
    }

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

/// A connect that did not get through: the error that decided it, every transport's attempt,
/// and what the failures suggest. Reached through [`Error::ConnectFailed`]; the hints come from `transport/diagnosis.rs`.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct ConnectFailure {
    /// The URL as given to the builder.
    pub url: String,
    /// The last transport's error (or [`Error::ConnectTimeout`] when the whole race ran out of
    /// time); the same as [`Error::last_failure`].
    pub error: Error,
    /// Every transport tried, in the order they started, with what went wrong for each.
    pub attempts: Vec<Attempt>,
    /// What the failures suggest, most likely first; empty when nothing stands out.
    pub hints: Vec<Hint>,
}

impl fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "could not connect to {}", self.url)?;
        if self.attempts.is_empty() {
            write!(f, ": {}", self.error)?;
        }
        for (i, attempt) in self.attempts.iter().enumerate() {
            let sep = if i == 0 { ": " } else { "; " };
            match &attempt.outcome {
                Ok(()) => write!(f, "{sep}{} opened", attempt.transport)?,
                Err(why) => write!(f, "{sep}{}: {why}", attempt.transport)?,
            }
        }
        for hint in &self.hints {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
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
