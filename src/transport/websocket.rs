//! WebSocket transport: one Engine.IO packet per frame.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest, http, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use url::Url;

use crate::proto::engineio::{EngineVersion, Frame, Packet};
use crate::{Error, Transport};

type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// An open WebSocket carrying Engine.IO packets.
pub(crate) struct WebSocketTransport {
    // Boxed: the TLS stream state is large and the transport moves between enums.
    stream: Box<Stream>,
    version: EngineVersion,
}

/// Wraps a tungstenite error as a transport error (or a handshake error during connect).
fn ws_error(e: tungstenite::Error) -> Error {
    Error::Transport {
        transport: Transport::WebSocket,
        message: e.to_string(),
    }
}

impl WebSocketTransport {
    /// Opens the WebSocket at `url` with the user's extra headers. A non-101 answer is a
    /// `Handshake` error carrying the HTTP status and body, so callers can tell a proxy's 403
    /// from a server's 400.
    pub(crate) async fn connect(
        url: &Url,
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
        let mut config = tungstenite::protocol::WebSocketConfig::default();
        config.max_message_size = Some(max_message);
        config.max_frame_size = Some(max_message);
        let connect = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
        let (stream, _response) = match tokio::time::timeout(timeout, connect).await {
            Err(_) => {
                return Err(Error::Handshake {
                    transport: Transport::WebSocket,
                    status: None,
                    body: format!("no WebSocket handshake answer within {timeout:?}"),
                })
            }
            Ok(Err(tungstenite::Error::Http(response))) => {
                let status = response.status().as_u16();
                let body = response
                    .body()
                    .as_deref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                return Err(Error::Handshake {
                    transport: Transport::WebSocket,
                    status: Some(status),
                    body,
                });
            }
            Ok(Err(e)) => {
                return Err(Error::Handshake {
                    transport: Transport::WebSocket,
                    status: None,
                    body: e.to_string(),
                })
            }
            Ok(Ok(pair)) => pair,
        };
        Ok(WebSocketTransport {
            stream: Box::new(stream),
            version,
        })
    }

    /// Protocol version spoken on this socket.
    pub(crate) fn version(&self) -> EngineVersion {
        self.version
    }

    /// Queues packets and flushes once, so a burst costs one syscall-ish write.
    pub(crate) async fn send(&mut self, packets: Vec<Packet>) -> Result<(), Error> {
        for packet in packets {
            let message = match packet.to_frame(self.version) {
                Frame::Text(text) => Message::text(text),
                Frame::Binary(bytes) => Message::binary(bytes),
            };
            self.stream.feed(message).await.map_err(ws_error)?;
        }
        self.stream.flush().await.map_err(ws_error)
    }

    /// Next frame as an Engine.IO frame. `Ok(None)` when the server closed the WebSocket.
    /// Cancel-safe: it can sit in a `select!`.
    pub(crate) async fn recv(&mut self) -> Result<Option<Frame>, Error> {
        loop {
            match self.stream.next().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(ws_error(e)),
                Some(Ok(Message::Text(text))) => return Ok(Some(Frame::Text(text.to_string()))),
                Some(Ok(Message::Binary(bytes))) => return Ok(Some(Frame::Binary(bytes))),
                Some(Ok(Message::Close(_))) => return Ok(None),
                // WebSocket-level pings are answered by tungstenite itself.
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Closes the WebSocket politely; errors do not matter any more at this point.
    pub(crate) async fn close(mut self) {
        let _ =
            tokio::time::timeout(Duration::from_secs(1), SinkExt::close(&mut *self.stream)).await;
    }
}
