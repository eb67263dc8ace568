//! Transports: each moves Engine.IO packets over one kind of connection. They know framing, not
//! session rules.

use std::fmt;

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

pub(crate) mod connect;
pub(crate) mod memory;
pub(crate) mod net;
pub(crate) mod polling;
pub(crate) mod proxy;
pub(crate) mod retry;
pub(crate) mod url;
pub(crate) mod websocket;

use crate::proto::engineio::Packet;
use crate::Error;
use polling::PollingTransport;
use websocket::WebSocketTransport;

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

/// The transport carrying a session right now.
pub(crate) enum Active {
    WebSocket(WebSocketTransport),
    Polling(Box<PollingTransport>),
}

impl Active {
    /// Which kind this is.
    pub(crate) fn kind(&self) -> Transport {
        match self {
            Active::WebSocket(_) => Transport::WebSocket,
            Active::Polling(http) => http.kind(),
        }
    }

    /// Queues packets for sending; never waits for the network (WebSocket: written as the
    /// socket takes them, polling: in the next POST), both driven by [`recv`](Self::recv).
    pub(crate) fn send(&mut self, packets: Vec<Packet>) {
        match self {
            Active::WebSocket(ws) => ws.queue(packets),
            Active::Polling(polling) => polling.send(packets),
        }
    }

    /// Counts this transport's queued bytes in `outgoing` from now on.
    pub(crate) fn share_outgoing(&mut self, outgoing: Outgoing) {
        match self {
            Active::WebSocket(ws) => ws.share_outgoing(outgoing),
            Active::Polling(polling) => polling.share_outgoing(outgoing),
        }
    }

    /// Since when writes have waited without progress (a WebSocket the server does not read,
    /// a POST not answered): the driver calls the connection dead after pingTimeout.
    pub(crate) fn stalled_since(&self) -> Option<std::time::Instant> {
        match self {
            Active::WebSocket(ws) => ws.stalled_since(),
            Active::Polling(polling) => polling.stalled_since(),
        }
    }

    /// Next packets from the server; `Ok(None)` when the server closed the connection.
    /// Cancel-safe. Drives the writes too. With `read` false nothing is read from the server
    /// (back-pressure: the WebSocket is not read, no GET is started and a GET's body is not
    /// read), while what was queued for sending still goes out.
    pub(crate) async fn recv(&mut self, read: bool) -> Result<Option<Vec<Packet>>, Error> {
        match self {
            Active::WebSocket(ws) => {
                let frame = std::future::poll_fn(|cx| ws.poll_io(cx, read)).await?;
                match frame {
                    None => Ok(None),
                    Some(frame) => Ok(Some(vec![Packet::from_frame(ws.version(), frame)?])),
                }
            }
            Active::Polling(polling) => polling.recv(read).await.map(Some),
        }
    }

    /// Closes politely (best effort, bounded in time).
    pub(crate) async fn close(self) {
        match self {
            Active::WebSocket(ws) => ws.close().await,
            Active::Polling(polling) => polling.close().await,
        }
    }
}
