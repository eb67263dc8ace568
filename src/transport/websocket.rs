//! WebSocket transport: one Engine.IO packet per frame.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest, http, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use url::Url;

use super::net::Net;
use super::proxy;

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
        // tungstenite's 128 KiB default read buffer is zero-filled on the first read and then
        // stays resident: 128 KiB per idle connection. It grows per frame when needed.
        config.read_buffer_size = 8 * 1024;
        let host = url.host_str().unwrap_or_default().to_string();
        let port = url.port_or_known_default().unwrap_or(80);
        let proxy = net.proxy_for(url)?;
        let connector = match &net.tls {
            super::net::TlsBackend::Rustls(config) => Connector::Rustls(config.clone()),
            #[cfg(feature = "native-tls")]
            super::net::TlsBackend::Native(connector) => Connector::NativeTls(connector.clone()),
        };
        let connect = async move {
            let tcp = match &proxy {
                Some(proxy) => proxy::connect_tunnel(proxy, &host, port, timeout).await?,
                None => {
                    let host = host.trim_start_matches('[').trim_end_matches(']');
                    TcpStream::connect((host, port))
                        .await
                        .map_err(|e| Error::Handshake {
                            transport: Transport::WebSocket,
                            status: None,
                            body: e.to_string(),
                        })?
                }
            };
            // Small packets both ways: Nagle plus delayed ACKs would add up to 40 ms per ack.
            let _ = tcp.set_nodelay(true);
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
                return Err(Error::Handshake {
                    transport: Transport::WebSocket,
                    status: None,
                    body: format!("no WebSocket handshake answer within {timeout:?}"),
                })
            }
            Ok(Err(e)) => return Err(e),
            Ok(Ok(Err(tungstenite::Error::Http(response)))) => {
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
            Ok(Ok(Err(e))) => {
                return Err(Error::Handshake {
                    transport: Transport::WebSocket,
                    status: None,
                    body: e.to_string(),
                })
            }
            Ok(Ok(Ok(pair))) => pair,
        };
        net.store_cookies(
            url,
            response.headers().get_all(http::header::SET_COOKIE).iter(),
        );
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
