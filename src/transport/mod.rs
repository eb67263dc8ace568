//! Transports: each moves Engine.IO packets over one kind of connection. They know framing, not
//! session rules.

use std::fmt;

use crate::proto::engineio::Packet;

/// A way of carrying Engine.IO packets.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// A WebSocket connection.
    WebSocket,
    /// HTTP streaming: one long GET answered as Server-Sent Events, POSTs to send (an
    /// extension of Engine.IO spoken by the mock server and servers that adopt it).
    Streaming,
    /// HTTP long-polling: a GET waiting for packets, a POST to send.
    Polling,
}

impl Transport {
    /// The name used in the `transport` query parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::WebSocket => "websocket",
            Transport::Streaming => "streaming",
            Transport::Polling => "polling",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

mod active;
pub(crate) mod connect;
pub(crate) mod diagnosis;
pub(crate) mod dial;
pub(crate) mod http;
pub(crate) mod memory;
pub(crate) mod net;
pub(crate) mod polling;
pub(crate) mod proxy;
pub(crate) mod report;
pub(crate) mod retry;
pub(crate) mod shared;
pub(crate) mod url;
pub(crate) mod websocket;

pub(crate) use active::Active;

/// What a transport's IO produced.
#[derive(Debug)]
pub(crate) enum Io {
    /// Packets from the server.
    Received(Vec<Packet>),
    /// One packet from the server (a WebSocket frame): not worth a `Vec` each.
    One(Packet),
    /// The server closed the connection.
    Closed,
    /// Writes went out (a POST was answered) or a request ended empty: nothing to read, but
    /// a caller waiting for the transport to be idle looks again.
    Progress,
}

/// Bytes queued for the server and not yet handed to the socket, shared between a
/// connection's transport (which counts) and its handles (which refuse emits past
/// `max_send_queue`). A transport that goes away takes its bytes off with it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Outgoing(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Outgoing {
    pub(crate) fn add(&self, bytes: usize) {
        self.0.fetch_add(bytes, std::sync::atomic::Ordering::AcqRel);
    }

    pub(crate) fn sub(&self, bytes: usize) {
        let _ = self.0.fetch_update(
            std::sync::atomic::Ordering::AcqRel,
            std::sync::atomic::Ordering::Acquire,
            |n| Some(n.saturating_sub(bytes)),
        );
    }

    /// Bytes waiting now.
    pub(crate) fn get(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Takes over `bytes` already counted: they are released when the returned guard is
    /// dropped, whichever way the emit they stand for ends (sent, acknowledged, failed).
    pub(crate) fn adopt(&self, bytes: usize) -> Held {
        Held {
            outgoing: self.clone(),
            bytes,
        }
    }
}

/// Bytes counted in an [`Outgoing`] for as long as this lives.
#[derive(Debug)]
pub(crate) struct Held {
    outgoing: Outgoing,
    bytes: usize,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.outgoing.sub(self.bytes);
    }
}
