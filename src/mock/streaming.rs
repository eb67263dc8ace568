//! The streaming transport's downstream: one chunked `text/event-stream` response per attached
//! GET, written event by event, recycled after a byte budget, and the `buffer_streaming` fault.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::engine::StreamGuard;
use super::Inner;
use crate::proto::engineio::sse;

/// How a streaming response ended.
pub(crate) enum StreamEnd {
    /// The server ended it with the zero chunk: the connection may serve the next request.
    Complete,
    /// The connection is gone (closed by the client or failed).
    Gone,
}

/// Where the response's bytes go: straight to the socket, or held back by the buffering-proxy
/// fault until the response ends.
struct Out {
    held: Option<Vec<u8>>,
}

impl Out {
    async fn write(&mut self, stream: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
        match self.held.as_mut() {
            Some(held) => {
                held.extend_from_slice(bytes);
                Ok(())
            }
            None => {
                stream.write_all(bytes).await?;
                stream.flush().await
            }
        }
    }

    /// One chunk of the chunked body.
    async fn chunk(&mut self, stream: &mut TcpStream, data: &[u8]) -> std::io::Result<()> {
        let mut framed = format!("{:x}\r\n", data.len()).into_bytes();
        framed.extend_from_slice(data);
        framed.extend_from_slice(b"\r\n");
        self.write(stream, &framed).await
    }

    /// The terminating zero chunk, then whatever was held back.
    async fn finish(mut self, stream: &mut TcpStream) -> std::io::Result<()> {
        self.write(stream, b"0\r\n\r\n").await?;
        if let Some(held) = self.held.take() {
            stream.write_all(&held).await?;
            stream.flush().await?;
        }
        Ok(())
    }
}

/// Writes the streaming response of an attached GET until the session ends it (recycling,
/// upgrade, close) or the client's connection goes away. Bytes the client sends meanwhile (a
/// pipelined request) stay in `buf`.
pub(crate) async fn serve(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    guard: StreamGuard,
    inner: &Inner,
    keep_alive: bool,
    extra_headers: &[(&'static str, String)],
) -> StreamEnd {
    let mut out = Out {
        held: inner.faults.is_buffering_streaming().then(Vec::new),
    };
    let extra: String = extra_headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache, no-transform\r\nX-Accel-Buffering: no\r\n{extra}Transfer-Encoding: chunked\r\nConnection: {}\r\n\r\n",
        if keep_alive { "keep-alive" } else { "close" }
    );
    let prelude = sse::prelude();
    if out.write(stream, head.as_bytes()).await.is_err()
        || out.chunk(stream, prelude.as_bytes()).await.is_err()
    {
        return StreamEnd::Gone;
    }
    let limit = inner.config.stream_recycle_bytes;
    let mut written = prelude.len();
    loop {
        let step = tokio::select! {
            step = guard.next() => step,
            n = stream.read_buf(buf) => match n {
                // Dropping the guard ends the session, as Node does for a closed poll.
                Ok(0) | Err(_) => return StreamEnd::Gone,
                Ok(_) => continue,
            },
        };
        let event = sse::encode_event(&step.packet);
        if out.chunk(stream, event.as_bytes()).await.is_err() {
            return StreamEnd::Gone;
        }
        written = written.saturating_add(event.len());
        if step.last || written >= limit {
            // Detached before the zero chunk goes out: a client that re-attaches as soon as it
            // sees the end must not look like a second concurrent GET.
            guard.detach();
            return match out.finish(stream).await {
                Ok(()) => StreamEnd::Complete,
                Err(_) => StreamEnd::Gone,
            };
        }
    }
}
