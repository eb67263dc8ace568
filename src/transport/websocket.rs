//! WebSocket transport: one Engine.IO packet per frame.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::{Sink, SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest, http, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use url::Url;

use super::net::Net;
use super::proxy::{self, BoxedIo};
use super::Outgoing;

use crate::proto::engineio::{EngineVersion, Frame, Packet};
use crate::{Error, Transport};

type Stream = WebSocketStream<MaybeTlsStream<BoxedIo>>;

/// An open WebSocket carrying Engine.IO packets.
///
/// Writing never blocks the caller: [`queue`](Self::queue) puts frames in an outbox that
/// [`poll_io`](Self::poll_io) hands to the socket as it takes them, next to reading. A server
/// that stops reading therefore cannot wedge the driver; [`stalled_since`](Self::stalled_since)
/// tells it how long the writes have been waiting, so it can call the connection dead.
pub(crate) struct WebSocketTransport {
    // Boxed: the TLS stream state is large and the transport moves between enums.
    stream: Box<Stream>,
    version: EngineVersion,
    /// Frames to write, each marked whether it is a pong.
    outbox: VecDeque<(Message, bool)>,
    /// Frames handed to the socket but not yet flushed.
    unflushed: bool,
    /// A pong is in the outbox: a flood of pings is answered by one pong.
    pong_queued: bool,
    /// When the writes last moved (or started waiting).
    progress: Instant,
    /// Bytes in the outbox, shared with the handles (see [`Outgoing`]).
    outgoing: Outgoing,
}

impl Drop for WebSocketTransport {
    fn drop(&mut self) {
        // What was never written no longer waits.
        self.outgoing
            .sub(self.outbox.iter().map(|(m, _)| m.len()).sum());
    }
}

/// The text of a frame as a `String`. A small frame shares tungstenite's read buffer, so it is
/// copied either way: from the `&str` tungstenite checked, with no second UTF-8 check (that
/// check was a percent of a burst's CPU). A large one reuses its buffer when nothing else
/// shares it (a 99 MB frame must not be copied to be read), at the cost of the check.
fn into_string(text: tungstenite::Utf8Bytes) -> String {
    const COPIED: usize = 64 * 1024;
    if text.len() <= COPIED {
        return text.as_str().to_owned();
    }
    let bytes = bytes::Bytes::from(text);
    match String::from_utf8(Vec::from(bytes)) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// Wraps a tungstenite error as a transport error (or a handshake error during connect).
fn ws_error(e: tungstenite::Error) -> Error {
    Error::transport_caused(Transport::WebSocket, e)
}

impl WebSocketTransport {
    /// Opens the WebSocket at `url` with the user's extra headers. A non-101 answer is a
    /// `Handshake` error carrying the HTTP status and body, so callers can tell a proxy's 403
    /// from a server's 400.
    /// The connection goes through the client's proxy (a `CONNECT` tunnel) when one applies,
    /// carries the cookie jar's cookies, and stores the cookies of the 101 answer.
    pub(crate) async fn connect(
        url: &Url,
        net: &Net,
        headers: &[(String, String)],
        version: EngineVersion,
        max_message: usize,
        timeout: Duration,
    ) -> Result<WebSocketTransport, Error> {
        let mut request = url.as_str().into_client_request().map_err(ws_error)?;
        for (k, v) in headers {
            let name = http::HeaderName::from_bytes(k.as_bytes());
            let value = http::HeaderValue::from_str(v);
            if let (Ok(name), Ok(value)) = (name, value) {
                request.headers_mut().append(name, value);
            }
        }
        if let Some(cookie) = net.cookie_header(url) {
            if let Ok(value) = http::HeaderValue::from_str(&cookie) {
                request.headers_mut().insert(http::header::COOKIE, value);
            }
        }
        let mut config = tungstenite::protocol::WebSocketConfig::default();
        config.max_message_size = Some(max_message);
        config.max_frame_size = Some(max_message);
        // tungstenite's 128 KiB default read buffer is allocated eagerly and stays resident:
        // 128 KiB per idle connection. It is also the most read per syscall; a larger frame
        // grows it for that frame. 4 KiB holds dozens of typical events per read.
        config.read_buffer_size = 4 * 1024;
        let host = url.host_str().unwrap_or_default().to_string();
        let port = url.port_or_known_default().unwrap_or(80);
        let proxy = net.proxy_for(url)?;
        let connector = Connector::Rustls(net.tls.clone());
        let proxy_tls = net.tls.clone();
        let resolved = net.resolved(&host, port);
        let connect = async move {
            let tcp: BoxedIo = match &proxy {
                Some(proxy) => {
                    proxy::connect_through(proxy, &host, port, timeout, &proxy_tls, resolved)
                        .await?
                }
                None => {
                    let host = host.trim_start_matches('[').trim_end_matches(']');
                    let tcp = super::dial::dial(host, port, resolved)
                        .await
                        .map_err(|e| Error::handshake_caused(Transport::WebSocket, None, e))?;
                    // Small packets both ways: Nagle plus delayed ACKs would add up to 40 ms
                    // per ack.
                    let _ = tcp.set_nodelay(true);
                    Box::new(tcp)
                }
            };
            Ok::<_, Error>(
                tokio_tungstenite::client_async_tls_with_config(
                    request,
                    tcp,
                    Some(config),
                    Some(connector),
                )
                .await,
            )
        };
        let (stream, response) = match tokio::time::timeout(timeout, connect).await {
            Err(_) => {
                return Err(Error::handshake(
                    Transport::WebSocket,
                    None,
                    format!("no WebSocket handshake answer within {timeout:?}"),
                ))
            }
            Ok(Err(e)) => return Err(e),
            Ok(Ok(Err(tungstenite::Error::Http(response)))) => {
                let status = response.status().as_u16();
                let body = response
                    .body()
                    .as_deref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                return Err(Error::handshake(Transport::WebSocket, Some(status), body));
            }
            Ok(Ok(Err(e))) => return Err(Error::handshake_caused(Transport::WebSocket, None, e)),
            Ok(Ok(Ok(pair))) => pair,
        };
        net.store_cookies(
            url,
            response.headers().get_all(http::header::SET_COOKIE).iter(),
        );
        Ok(WebSocketTransport {
            stream: Box::new(stream),
            version,
            outbox: VecDeque::new(),
            unflushed: false,
            pong_queued: false,
            progress: Instant::now(),
            outgoing: Outgoing::default(),
        })
    }

    /// Queues packets for the socket; [`poll_io`](Self::poll_io) writes them.
    pub(crate) fn queue(&mut self, packets: impl IntoIterator<Item = Packet>) {
        for packet in packets {
            let pong = matches!(packet, Packet::Pong(_));
            if pong {
                if self.pong_queued {
                    continue;
                }
                self.pong_queued = true;
            }
            if !self.has_pending_writes() {
                self.progress = Instant::now();
            }
            let message = match packet.to_frame(self.version) {
                Frame::Text(text) => Message::text(text),
                Frame::Binary(bytes) => Message::binary(bytes),
            };
            self.outgoing.add(message.len());
            self.outbox.push_back((message, pong));
        }
    }

    /// Queues packets and waits until they are written and flushed.
    pub(crate) async fn send(&mut self, packets: Vec<Packet>) -> Result<(), Error> {
        self.queue(packets);
        poll_fn(|cx| match self.poll_write(cx) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            _ if self.has_pending_writes() => Poll::Pending,
            _ => Poll::Ready(Ok(())),
        })
        .await
    }

    /// Counts this transport's queued bytes in `outgoing` from now on.
    pub(crate) fn share_outgoing(&mut self, outgoing: Outgoing) {
        let queued: usize = self.outbox.iter().map(|(m, _)| m.len()).sum();
        outgoing.add(queued);
        self.outgoing = outgoing;
    }

    /// Whether queued frames wait for the socket.
    pub(crate) fn has_pending_writes(&self) -> bool {
        !self.outbox.is_empty() || self.unflushed
    }

    /// Since when the pending writes have made no progress (`None` when nothing waits).
    pub(crate) fn stalled_since(&self) -> Option<Instant> {
        self.has_pending_writes().then_some(self.progress)
    }

    /// Moves the outbox into the socket as far as it takes it. Ready only with an error.
    pub(crate) fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut stream = Pin::new(&mut *self.stream);
        while !self.outbox.is_empty() {
            match stream.as_mut().poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(ws_error(e))),
                Poll::Pending => return Poll::Pending,
            }
            let Some((message, pong)) = self.outbox.pop_front() else {
                break;
            };
            if pong {
                self.pong_queued = false;
            }
            self.outgoing.sub(message.len());
            if let Err(e) = stream.as_mut().start_send(message) {
                return Poll::Ready(Err(ws_error(e)));
            }
            self.unflushed = true;
            self.progress = Instant::now();
        }
        if self.unflushed {
            match stream.as_mut().poll_flush(cx) {
                Poll::Ready(Ok(())) => {
                    self.unflushed = false;
                    self.progress = Instant::now();
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(ws_error(e))),
                Poll::Pending => {}
            }
        }
        Poll::Pending
    }

    /// Writes what is queued, and with `read` reads the next frame, decoded: ready with a
    /// packet, `Ok(None)` when the server closed the WebSocket, or an error of either
    /// direction. With `read` false (back-pressure) only writes are driven. The one place
    /// where WebSocket frames become Engine.IO packets.
    pub(crate) fn poll_io(
        &mut self,
        cx: &mut Context<'_>,
        read: bool,
    ) -> Poll<Result<Option<Packet>, Error>> {
        self.poll_frame(cx, read).map(|frame| match frame? {
            Some(frame) => Ok(Some(Packet::from_frame(self.version, frame)?)),
            None => Ok(None),
        })
    }

    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
        read: bool,
    ) -> Poll<Result<Option<Frame>, Error>> {
        if let Poll::Ready(Err(e)) = self.poll_write(cx) {
            return Poll::Ready(Err(e));
        }
        if !read {
            return Poll::Pending;
        }
        loop {
            return match self.stream.poll_next_unpin(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(None) => Poll::Ready(Ok(None)),
                Poll::Ready(Some(Err(e))) => Poll::Ready(Err(ws_error(e))),
                Poll::Ready(Some(Ok(Message::Text(text)))) => {
                    Poll::Ready(Ok(Some(Frame::Text(into_string(text)))))
                }
                Poll::Ready(Some(Ok(Message::Binary(bytes)))) => {
                    Poll::Ready(Ok(Some(Frame::Binary(bytes))))
                }
                Poll::Ready(Some(Ok(Message::Close(_)))) => Poll::Ready(Ok(None)),
                // WebSocket-level pings are answered by tungstenite itself.
                Poll::Ready(Some(Ok(_))) => continue,
            };
        }
    }

    /// Next Engine.IO packet (writing what is queued meanwhile). `Ok(None)` when the server
    /// closed the WebSocket. Cancel-safe: it can sit in a `select!`.
    pub(crate) async fn recv(&mut self) -> Result<Option<Packet>, Error> {
        poll_fn(|cx| self.poll_io(cx, true)).await
    }

    /// Closes the WebSocket politely; errors do not matter any more at this point.
    /// What is still queued goes first (the client's DISCONNECT, say), all within one second.
    pub(crate) async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let _ = self.send(Vec::new()).await;
            let _ = SinkExt::close(&mut *self.stream).await;
        })
        .await;
    }
}
