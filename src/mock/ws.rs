//! The WebSocket transport: the `101` answer, a session carried on WebSocket from the start, and
//! the upgrade probe of a polling or streaming session (`2probe` → `3probe`, noops released to
//! the pending poll or ending the attached stream, `5`), as engine.io's `Server#onWebSocket` and
//! `Socket#_maybeUpgrade` do.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::close_cause::CloseCause;
use super::engine::Engine;
use super::http::Request;
use crate::proto::engineio::{EngineVersion, Frame, Packet};
use crate::Transport;

/// How often a running probe releases the pending poll (Node's check interval).
const NOOP_INTERVAL: Duration = Duration::from_millis(100);

/// The `101 Switching Protocols` answer, or `None` when the request lacks a usable key.
pub(crate) fn accept_response(req: &Request) -> Option<Vec<u8>> {
    let key = req.header("sec-websocket-key")?;
    if req.header("sec-websocket-version") != Some("13") {
        return None;
    }
    let accept = derive_accept_key(key.as_bytes());
    Some(
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        )
        .into_bytes(),
    )
}

/// Wraps the upgraded stream; `rest` holds bytes already read past the request.
pub(crate) async fn wrap<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    response: &[u8],
    rest: Vec<u8>,
    max_payload: usize,
) -> Option<WebSocketStream<S>> {
    stream.write_all(response).await.ok()?;
    stream.flush().await.ok()?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(max_payload))
        .max_frame_size(Some(max_payload))
        // The 128 KiB default would stay resident per connection; it grows when needed.
        .read_buffer_size(8 * 1024);
    Some(WebSocketStream::from_partially_read(stream, rest, Role::Server, Some(config)).await)
}

fn to_message(frame: Frame) -> Message {
    match frame {
        Frame::Text(text) => Message::Text(text.into()),
        Frame::Binary(bytes) => Message::Binary(bytes),
    }
}

/// Decodes a WebSocket message; `Ok(None)` for control frames, `Err(())` for a close or an
/// undecodable frame.
fn decode(version: EngineVersion, message: Message) -> Result<Option<Packet>, CloseCause> {
    let frame = match message {
        Message::Text(text) => Frame::Text(text.as_str().to_owned()),
        Message::Binary(bytes) => Frame::Binary(bytes),
        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return Ok(None),
        Message::Close(_) => return Err(CloseCause::TransportClose),
    };
    Packet::from_frame(version, frame)
        .map(Some)
        .map_err(|_| CloseCause::ParseError)
}

/// Closes the session if the WebSocket loop is dropped (connection killed or server stopped).
struct TransportGuard(Arc<Engine>);

impl Drop for TransportGuard {
    fn drop(&mut self) {
        self.0.close(CloseCause::TransportClose, false);
    }
}

/// Carries a session on this WebSocket until either ends.
pub(crate) async fn run_session<S: AsyncRead + AsyncWrite + Unpin>(
    engine: Arc<Engine>,
    ws: &mut WebSocketStream<S>,
) {
    let _guard = TransportGuard(engine.clone());
    loop {
        let notified = engine.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(out) = engine.take_outgoing(false) {
            for packet in out.packets {
                // Node closes a WebSocket session with a close frame, not a close packet.
                if matches!(packet, Packet::Close) {
                    continue;
                }
                if ws
                    .feed(to_message(packet.to_frame(engine.version)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            if ws.flush().await.is_err() {
                return;
            }
            if out.closed {
                let _ = ws.close(None).await;
                return;
            }
            continue;
        }
        if !engine.is_open() {
            let _ = ws.close(None).await;
            return;
        }
        tokio::select! {
            _ = &mut notified => {}
            message = ws.next() => {
                let Some(Ok(message)) = message else { return };
                match decode(engine.version, message) {
                    Ok(Some(packet)) => engine.receive(vec![packet]),
                    Ok(None) => {}
                    Err(cause) => {
                        engine.close(cause, false);
                        let _ = ws.close(None).await;
                        return;
                    }
                }
            }
        }
    }
}

/// Runs an upgrade probe for a polling or streaming session, then carries the session if the client
/// completes the upgrade.
pub(crate) async fn run_probe<S: AsyncRead + AsyncWrite + Unpin>(
    engine: Arc<Engine>,
    ws: &mut WebSocketStream<S>,
    upgrade_timeout: Duration,
) {
    if !engine.begin_upgrade() {
        let _ = ws.close(None).await;
        return;
    }
    struct ProbeGuard(Arc<Engine>);
    impl Drop for ProbeGuard {
        fn drop(&mut self) {
            self.0.abort_upgrade();
        }
    }
    let guard = ProbeGuard(engine.clone());
    let deadline = tokio::time::sleep(upgrade_timeout);
    tokio::pin!(deadline);
    let mut probed = false;
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            _ = tokio::time::sleep(NOOP_INTERVAL) => {
                if !engine.is_open() {
                    break;
                }
                if probed {
                    engine.release_poll();
                }
            }
            message = ws.next() => {
                let Some(Ok(message)) = message else { return };
                match decode(engine.version, message) {
                    Ok(None) => {}
                    Ok(Some(Packet::Ping(data))) if data == "probe" => {
                        let pong = Packet::Pong("probe".to_owned()).to_frame(engine.version);
                        if ws.send(to_message(pong)).await.is_err() {
                            return;
                        }
                        probed = true;
                        engine.release_poll();
                    }
                    Ok(Some(Packet::Upgrade)) => {
                        drop(guard);
                        if engine.complete_upgrade() {
                            debug_assert_eq!(engine.transport(), Transport::WebSocket);
                            run_session(engine, ws).await;
                        } else {
                            let _ = ws.close(None).await;
                        }
                        return;
                    }
                    // Anything else during a probe ends the probe, not the session.
                    _ => break,
                }
            }
        }
    }
    let _ = ws.close(None).await;
}
