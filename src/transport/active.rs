//! The transport carrying a session right now, whichever kind it is: one interface for the
//! driver over WebSocket and the HTTP transports.

use std::task::{Context, Poll};

use super::polling::PollingTransport;
use super::websocket::WebSocketTransport;
use super::{Io, Outgoing, Transport};
use crate::proto::engineio::Packet;
use crate::Error;

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
    /// socket takes them, polling: in the next POST), both driven by [`poll_io`](Self::poll_io).
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

    /// The transport's IO: writes what is queued and, with `read`, reads. Ready with what
    /// the server sent, its close, or progress on the writes (a POST answered). Cancel-safe.
    /// With `read` false nothing is read from the server (back-pressure: the WebSocket is not
    /// read, no GET is started and a GET's body is not read), while what was queued for
    /// sending still goes out.
    pub(crate) fn poll_io(&mut self, cx: &mut Context<'_>, read: bool) -> Poll<Result<Io, Error>> {
        match self {
            Active::WebSocket(ws) => ws.poll_io(cx, read).map(|packet| {
                Ok(match packet? {
                    Some(packet) => Io::One(packet),
                    None => Io::Closed,
                })
            }),
            Active::Polling(polling) => polling.poll_io(cx, read),
        }
    }

    /// Hands what is queued to the socket now, as far as it takes it (WebSocket only: the
    /// HTTP transports write from their own requests). Ready only with an error.
    pub(crate) fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        match self {
            Active::WebSocket(ws) => ws.poll_write(cx),
            Active::Polling(_) => Poll::Pending,
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
