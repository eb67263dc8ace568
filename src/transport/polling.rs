//! HTTP transports: long-polling and streaming. Both send with at most one POST in flight
//! (everything queued meanwhile goes in the next one, batched up to the server's `maxPayload`)
//! and keep one GET open for what the server sends: long-polling's GET returns one payload and
//! is re-issued; streaming's GET stays open as a Server-Sent Events stream (see
//! [`crate::proto::engineio::sse`]) and is re-issued only when the server ends it.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::stream::{self, BoxStream, StreamExt};
use reqwest::header::CONTENT_TYPE;

use crate::proto::engineio::detect;
use crate::proto::engineio::sse::SseDecoder;
use crate::proto::engineio::{encode_payload, EngineVersion, Handshake, Packet, PayloadReader};
use crate::proto::ProtocolError;
use crate::transport::http::HttpSettings;
use crate::transport::retry;
use crate::transport::{Io, Outgoing};
use crate::{Error, Transport};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Reads a response body, refusing to buffer more than `limit` bytes.
async fn read_body(mut response: reqwest::Response, limit: usize) -> Result<String, Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| Error::transport_caused(Transport::Polling, e))?
    {
        if body.len().saturating_add(chunk.len()) > limit {
            return Err(Error::Protocol(ProtocolError::PayloadTooLarge {
                size: body.len().saturating_add(chunk.len()),
                max: limit,
            }));
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body).map_err(|_| Error::Protocol(ProtocolError::InvalidUtf8))
}

/// Most packets handed on at once from one polling response: the body is decoded as it is
/// taken, so a reader that stops taking (back-pressure) leaves the rest of it undecoded.
const PACKETS_PER_TAKE: usize = 256;

/// One long-polling GET as a stream of packet batches, decoded as they are taken.
fn poll_stream(settings: HttpSettings, sid: String) -> Downstream {
    stream::once(poll_once(settings, sid))
        .flat_map(|fetched| match fetched {
            Err(e) => stream::iter([Err(e)]).boxed(),
            Ok(reader) => stream::unfold((reader, None), |(mut reader, error)| async move {
                if let Some(error) = error {
                    return Some((Err(Error::Protocol(error)), (reader, None)));
                }
                let mut batch = Vec::new();
                let mut error = None;
                while batch.len() < PACKETS_PER_TAKE {
                    match reader.next_packet() {
                        Some(Ok(packet)) => batch.push(packet),
                        // The packets before the error go first; the error comes next.
                        Some(Err(e)) => {
                            error = Some(e);
                            break;
                        }
                        None => break,
                    }
                }
                if batch.is_empty() {
                    return error.map(|e| (Err(Error::Protocol(e)), (reader, None)));
                }
                Some((Ok(batch), (reader, error)))
            })
            .boxed(),
        })
        .boxed()
}

/// Performs one long-polling GET; its payload is decoded as it is read.
async fn poll_once(settings: HttpSettings, sid: String) -> Result<PayloadReader, Error> {
    let response = retry::send(&settings, |http| {
        http.get(settings.url(Transport::Polling, Some(&sid)))
            .headers(settings.headers.clone())
    })
    .await
    .map_err(|e| Error::transport_caused(Transport::Polling, e))?;
    let status = response.status();
    let body = read_body(response, settings.max_response).await?;
    if status != reqwest::StatusCode::OK {
        return Err(Error::transport(
            Transport::Polling,
            format!("GET answered {status}: {body}"),
        ));
    }
    Ok(PayloadReader::new(settings.endpoint.version(), body)?)
}

/// What the server sends, as batches of packets; ends when the server ends the response.
type Downstream = BoxStream<'static, Result<Vec<Packet>, Error>>;

/// Opens a streaming GET. A non-200 answer is returned as `(status, body)` for the caller to
/// turn into the right error.
async fn open_stream(
    settings: &HttpSettings,
    sid: Option<&str>,
) -> Result<Result<Downstream, (u16, String)>, Error> {
    let response = retry::send(settings, |http| {
        http.get(settings.url(Transport::Streaming, sid))
            .headers(settings.headers.clone())
    })
    .await
    .map_err(|e| Error::transport_caused(Transport::Streaming, e))?;
    let status = response.status();
    let is_sse = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if status != reqwest::StatusCode::OK || !is_sse {
        let body = read_body(response, 64 * 1024).await.unwrap_or_default();
        return Ok(Err((status.as_u16(), body)));
    }
    let decoder = SseDecoder::new(settings.max_response);
    let events = stream::unfold(Some((response, decoder)), |state| async move {
        let (mut response, mut decoder) = state?;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => match decoder.feed(&chunk) {
                    Ok(packets) if packets.is_empty() => continue,
                    Ok(packets) => return Some((Ok(packets), Some((response, decoder)))),
                    Err(e) => return Some((Err(Error::Protocol(e)), None)),
                },
                Ok(None) => return None,
                Err(e) => {
                    let error = Error::transport_caused(Transport::Streaming, e);
                    return Some((Err(error), None));
                }
            }
        }
    });
    Ok(Ok(events.boxed()))
}

/// Re-attaches the streaming downstream of an existing session.
fn stream_again(settings: HttpSettings, sid: String) -> Downstream {
    stream::once(async move {
        match open_stream(&settings, Some(&sid)).await? {
            Ok(stream) => Ok(stream),
            Err((status, body)) => Err(Error::transport(
                Transport::Streaming,
                format!("streaming GET answered {status}: {body}"),
            )),
        }
    })
    .map(|opened| match opened {
        Ok(stream) => stream,
        Err(e) => stream::once(async move { Err(e) }).boxed(),
    })
    .flatten()
    .boxed()
}

/// Opens a streaming session: the open packet arrives as the first event of a GET that then
/// stays open. Returns the handshake, packets that came with it, and the open stream.
pub(crate) async fn handshake_streaming(
    settings: &HttpSettings,
) -> Result<(Handshake, Vec<Packet>, Downstream), Error> {
    let failed =
        |status: Option<u16>, body: String| Error::handshake(Transport::Streaming, status, body);
    let mut stream = match open_stream(settings, None).await {
        Err(e) => return Err(Error::handshake_caused(Transport::Streaming, None, e)),
        Ok(Err((status, body))) => return Err(failed(Some(status), body)),
        Ok(Ok(stream)) => stream,
    };
    let mut packets = match stream.next().await {
        Some(Ok(packets)) => packets.into_iter(),
        Some(Err(e)) => return Err(Error::handshake_caused(Transport::Streaming, Some(200), e)),
        None => {
            return Err(failed(
                Some(200),
                "stream ended before the open packet".into(),
            ))
        }
    };
    match packets.next() {
        Some(Packet::Open(handshake)) => Ok((handshake, packets.collect(), stream)),
        other => Err(failed(
            Some(200),
            format!("expected an open packet, got {other:?}"),
        )),
    }
}

/// POSTs in flight at once in the whole process. Each polling client has one GET waiting (a
/// connection each, whatever the pool) and at most one POST in flight; with the shared pool
/// (`shared.rs`) POSTs reuse idle connections, but when thousands of clients POST at once the
/// pool opens a connection for each. Past this many, a POST waits for one to finish instead:
/// the process stays within its descriptor limit (10,000 polling clients under load would
/// otherwise need 20,000), at the cost of some latency only under that load. A POST carries
/// every packet queued meanwhile, so waiting batches rather than slows.
const MAX_POSTS_IN_FLIGHT: usize = 512;

fn posts_in_flight() -> &'static tokio::sync::Semaphore {
    static POSTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    POSTS.get_or_init(|| tokio::sync::Semaphore::new(MAX_POSTS_IN_FLIGHT))
}

/// Performs one POST of an encoded payload; the server answers `ok`.
async fn post(
    settings: HttpSettings,
    transport: Transport,
    sid: String,
    body: String,
) -> Result<(), Error> {
    // Shared, not copied, by the two tries a stale connection can cost.
    let body = bytes::Bytes::from(body);
    // Waits while too many POSTs of the process are in flight: see `MAX_POSTS_IN_FLIGHT`.
    let _permit = posts_in_flight().acquire().await.ok();
    // Sent again only when the connection closed before an answer began: on a kept-alive
    // connection, one the peer had closed idle, so the payload was never read and the server
    // does not see it twice (the retry module has the reasoning and its limits).
    let response = retry::send(&settings, |http| {
        http.post(settings.url(transport, Some(&sid)))
            .headers(settings.headers.clone())
            // The Node server answers 400 to application/octet-stream bodies.
            .header(CONTENT_TYPE, "text/plain;charset=UTF-8")
            .body(body.clone())
    })
    .await
    .map_err(|e| Error::transport_caused(transport, e))?;
    let status = response.status();
    if status != reqwest::StatusCode::OK {
        let body = read_body(response, 64 * 1024).await.unwrap_or_default();
        return Err(Error::transport(
            transport,
            format!("POST answered {status}: {body}"),
        ));
    }
    // Read to its end (the server's `ok`): a response dropped unread makes the HTTP client
    // close its connection instead of handing it back to the pool, a new connection per POST.
    read_body(response, 64 * 1024).await?;
    Ok(())
}

/// The handshake GET: returns the open packet's handshake and any packets that came with it.
pub(crate) async fn handshake(settings: &HttpSettings) -> Result<(Handshake, Vec<Packet>), Error> {
    let response = retry::send(settings, |http| {
        http.get(settings.url(Transport::Polling, None))
            .headers(settings.headers.clone())
    })
    .await
    .map_err(|e| Error::handshake_caused(Transport::Polling, None, e))?;
    let status = response.status();
    let body = read_body(response, settings.max_response).await?;
    if status != reqwest::StatusCode::OK {
        return Err(Error::handshake(
            Transport::Polling,
            Some(status.as_u16()),
            body,
        ));
    }
    let version = settings.endpoint.version();
    let mut packets = match decode_handshake_body(version, &body) {
        Ok(packets) => packets.into_iter(),
        Err(error) => {
            if version.wire() == EngineVersion::V4 {
                if let Some(open) = detect::v3_polling_handshake(&body) {
                    // The server opened an Engine.IO 3 session (and joined "/" on it): close it
                    // rather than leave it to its ping timeout. An EIO3 server reads the `1:1`
                    // payload whatever the request's `EIO`.
                    let close = post(settings.clone(), Transport::Polling, open.sid, "1:1".into());
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), close).await;
                    return Err(Error::Protocol(detect::socketio2_server(
                        "its polling handshake is an Engine.IO 3 payload",
                    )));
                }
            }
            return Err(Error::Protocol(error));
        }
    };
    match packets.next() {
        Some(Packet::Open(handshake)) => Ok((handshake, packets.collect())),
        _ => Err(Error::handshake(
            Transport::Polling,
            Some(status.as_u16()),
            format!("expected an open packet, got {body:?}"),
        )),
    }
}

/// Most packets a handshake response may carry after the open packet: a server sends at most
/// a few (socket.io 2 joins `/` there); a body of millions is an attack on memory.
const MAX_HANDSHAKE_PACKETS: usize = 64;

/// The packets of a polling handshake body, noops left out.
fn decode_handshake_body(version: EngineVersion, body: &str) -> Result<Vec<Packet>, ProtocolError> {
    let mut reader = PayloadReader::new(version, body.to_owned())?;
    let mut packets = Vec::new();
    while let Some(packet) = reader.next_packet() {
        match packet? {
            Packet::Noop => {}
            _ if packets.len() > MAX_HANDSHAKE_PACKETS => {
                return Err(ProtocolError::InvalidHandshake(format!(
                    "the handshake response carries more than {MAX_HANDSHAKE_PACKETS} packets"
                )));
            }
            packet => packets.push(packet),
        }
    }
    Ok(packets)
}

/// An established long-polling or streaming session.
pub(crate) struct PollingTransport {
    settings: HttpSettings,
    kind: Transport,
    sid: String,
    version: EngineVersion,
    max_payload: usize,
    queue: VecDeque<Packet>,
    get: Option<Downstream>,
    post: Option<BoxFuture<Result<(), Error>>>,
    /// When the POST in flight started.
    post_started: Option<std::time::Instant>,
    /// A pong waits in `queue`: a flood of pings is answered by one pong.
    pong_queued: bool,
    /// Bytes in `queue`, shared with the handles (see [`Outgoing`]).
    outgoing: Outgoing,
    paused: bool,
}

impl PollingTransport {
    /// Wraps a long-polling session opened by [`handshake`].
    pub(crate) fn new(settings: HttpSettings, handshake: &Handshake) -> PollingTransport {
        Self::with_kind(settings, handshake, Transport::Polling, None)
    }

    /// Wraps a streaming session opened by [`handshake_streaming`], its stream still open.
    pub(crate) fn streaming(
        settings: HttpSettings,
        handshake: &Handshake,
        stream: Downstream,
    ) -> PollingTransport {
        Self::with_kind(settings, handshake, Transport::Streaming, Some(stream))
    }

    fn with_kind(
        settings: HttpSettings,
        handshake: &Handshake,
        kind: Transport,
        get: Option<Downstream>,
    ) -> PollingTransport {
        let version = settings.endpoint.version();
        let max_payload = handshake
            .max_payload
            .and_then(|m| usize::try_from(m).ok())
            .unwrap_or(usize::MAX);
        PollingTransport {
            settings,
            kind,
            sid: handshake.sid.clone(),
            version,
            max_payload,
            queue: VecDeque::new(),
            get,
            post: None,
            post_started: None,
            pong_queued: false,
            outgoing: Outgoing::default(),
            paused: false,
        }
    }

    /// Long-polling or streaming.
    pub(crate) fn kind(&self) -> Transport {
        self.kind
    }

    /// Queues packets for the next POST.
    pub(crate) fn send(&mut self, packets: impl IntoIterator<Item = Packet>) {
        for packet in packets {
            if matches!(packet, Packet::Pong(_)) {
                if self.pong_queued {
                    continue;
                }
                self.pong_queued = true;
            }
            self.outgoing.add(packet_size(&packet));
            self.queue.push_back(packet);
        }
    }

    /// Counts this transport's queued bytes in `outgoing` from now on.
    pub(crate) fn share_outgoing(&mut self, outgoing: Outgoing) {
        outgoing.add(self.queue.iter().map(packet_size).sum());
        self.outgoing = outgoing;
    }

    /// Since when the POST in flight has waited for its answer.
    pub(crate) fn stalled_since(&self) -> Option<std::time::Instant> {
        self.post_started
    }

    /// Stops starting GETs and POSTs (for an upgrade); in-flight requests finish.
    pub(crate) fn pause(&mut self) {
        self.paused = true;
    }

    /// Starts requests again after an upgrade that failed.
    pub(crate) fn resume(&mut self) {
        self.paused = false;
    }

    /// No request in flight (after `pause`, the moment the upgrade may complete).
    pub(crate) fn is_idle(&self) -> bool {
        self.get.is_none() && self.post.is_none()
    }

    /// Takes the packets still queued (handed to the transport that replaces this one).
    pub(crate) fn take_queue(&mut self) -> Vec<Packet> {
        self.pong_queued = false;
        self.outgoing.sub(self.queue.iter().map(packet_size).sum());
        self.queue.drain(..).collect()
    }

    /// The next POST body: see [`take_batch`].
    fn next_batch(&mut self) -> Option<String> {
        let batch = take_batch(&mut self.queue, self.max_payload);
        if batch.iter().any(|p| matches!(p, Packet::Pong(_))) {
            self.pong_queued = false;
        }
        self.outgoing.sub(batch.iter().map(packet_size).sum());
        (!batch.is_empty()).then(|| encode_payload(self.version, &batch))
    }

    /// Drives the requests: POSTs of what is queued, and with `read` the GET. Ready with the
    /// packets of a completed GET, or with [`Io::Progress`] when a POST was answered or a GET
    /// ended empty (a caller waiting for `is_idle`, an upgrade in progress, looks again).
    /// With `read` false (back-pressure) only POSTs are driven: no GET starts and a GET in
    /// flight is not polled, so its body stays unread and TCP pushes back on the server.
    pub(crate) fn poll_io(&mut self, cx: &mut Context<'_>, read: bool) -> Poll<Result<Io, Error>> {
        let posted = self.poll_posts(cx)?;
        if read {
            if let Poll::Ready(received) = self.poll_get(cx) {
                return Poll::Ready(received);
            }
        }
        if posted {
            return Poll::Ready(Ok(Io::Progress));
        }
        Poll::Pending
    }

    /// Starts and drives POSTs, one at a time, until the queue is empty or one is in flight;
    /// whether one was answered.
    fn poll_posts(&mut self, cx: &mut Context<'_>) -> Result<bool, Error> {
        let mut posted = false;
        loop {
            if self.post.is_none() && !self.paused {
                if let Some(body) = self.next_batch() {
                    let fut = post(self.settings.clone(), self.kind, self.sid.clone(), body);
                    self.post = Some(Box::pin(fut));
                    self.post_started = Some(std::time::Instant::now());
                }
            }
            match self.post.as_mut().map(|f| f.as_mut().poll(cx)) {
                Some(Poll::Ready(result)) => {
                    self.post = None;
                    self.post_started = None;
                    result?;
                    posted = true;
                    if self.queue.is_empty() || self.paused {
                        break;
                    }
                }
                _ => break,
            }
        }
        Ok(posted)
    }

    /// Starts and drives the GET: ready with its packets, or progress when it ended.
    fn poll_get(&mut self, cx: &mut Context<'_>) -> Poll<Result<Io, Error>> {
        if self.get.is_none() && !self.paused {
            let (settings, sid) = (self.settings.clone(), self.sid.clone());
            self.get = Some(match self.kind {
                Transport::Streaming => stream_again(settings, sid),
                _ => poll_stream(settings, sid),
            });
        }
        if let Some(get) = self.get.as_mut() {
            match get.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(packets))) => return Poll::Ready(Ok(Io::Received(packets))),
                Poll::Ready(Some(Err(e))) => {
                    self.get = None;
                    return Poll::Ready(Err(e));
                }
                // The server ended this GET (a poll answered, a stream recycled): the next
                // call opens another one. Report so a caller waiting for idleness looks again.
                Poll::Ready(None) => {
                    self.get = None;
                    return Poll::Ready(Ok(Io::Progress));
                }
                Poll::Pending => {}
            }
        }
        Poll::Pending
    }

    /// Sends a close packet, best effort, and drops the in-flight requests.
    /// The pending GET is dropped only after the close packet went out: a server that saw the
    /// poll cut first would report a network failure instead of the client leaving.
    pub(crate) async fn close(mut self) {
        let limit = std::time::Duration::from_secs(1);
        if let Some(post) = self.post.take() {
            let _ = tokio::time::timeout(limit, post).await;
        }
        // What is queued goes first, on its own: the Node server acts on a close packet at once
        // but on the messages of the same payload a tick later, so a DISCONNECT sharing the
        // close packet's POST would be lost.
        while let Some(body) = self.next_batch() {
            let fut = post(self.settings.clone(), self.kind, self.sid.clone(), body);
            if !matches!(tokio::time::timeout(limit, fut).await, Ok(Ok(()))) {
                break;
            }
        }
        self.queue.clear();
        self.queue.push_back(Packet::Close);
        while let Some(body) = self.next_batch() {
            let fut = post(self.settings.clone(), self.kind, self.sid.clone(), body);
            if !matches!(tokio::time::timeout(limit, fut).await, Ok(Ok(()))) {
                break;
            }
        }
        self.get = None;
    }
}

/// Most packets one POST carries. python-engineio (python-socketio, Flask-SocketIO) refuses a
/// payload of more than 16 packets (`Payload.max_decode_packets`) yet answers such a POST with
/// 200 OK and drops all of it, so a larger batch would lose messages without any error. Node's
/// engine.io limits bytes only; the official JS client batches without a count limit and loses
/// bursts to python servers this way.
const MAX_PACKETS_PER_POST: usize = 16;

/// Takes from the front of `queue` as many packets as fit in the server's maxPayload and in
/// [`MAX_PACKETS_PER_POST`] (at least one, when any is queued), in order.
fn take_batch(queue: &mut VecDeque<Packet>, max_payload: usize) -> Vec<Packet> {
    let mut batch = Vec::new();
    let mut size = 0usize;
    while let Some(packet) = queue.front() {
        // Each packet costs its text plus a separator; an estimate that errs large.
        let cost = packet_size(packet).saturating_add(8);
        let full = batch.len() >= MAX_PACKETS_PER_POST || size.saturating_add(cost) > max_payload;
        if !batch.is_empty() && full {
            break;
        }
        size = size.saturating_add(cost);
        if let Some(packet) = queue.pop_front() {
            batch.push(packet);
        }
    }
    batch
}

impl Drop for PollingTransport {
    fn drop(&mut self) {
        // What was never posted no longer waits.
        self.outgoing.sub(self.queue.iter().map(packet_size).sum());
    }
}

/// Encoded size of one packet, for batching.
fn packet_size(packet: &Packet) -> usize {
    match packet {
        Packet::Message(crate::proto::engineio::Data::Text(t)) => t.len() + 1,
        Packet::Message(crate::proto::engineio::Data::Binary(b)) => b.len() / 3 * 4 + 6,
        _ => 16,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::engineio::Data;

    fn text(len: usize) -> Packet {
        Packet::Message(Data::Text("x".repeat(len)))
    }

    fn batches(mut queue: VecDeque<Packet>, max_payload: usize) -> Vec<usize> {
        let mut sizes = Vec::new();
        loop {
            let batch = take_batch(&mut queue, max_payload);
            if batch.is_empty() {
                return sizes;
            }
            sizes.push(batch.len());
        }
    }

    #[test]
    fn a_burst_is_split_into_posts_of_at_most_16_packets() {
        let queue: VecDeque<Packet> = (0..40).map(|_| text(3)).collect();
        assert_eq!(batches(queue, usize::MAX), vec![16, 16, 8]);
    }

    #[test]
    fn a_batch_stays_within_max_payload_but_takes_one_oversized_packet() {
        let queue: VecDeque<Packet> = vec![text(40), text(40), text(40), text(500), text(1)].into();
        assert_eq!(batches(queue, 100), vec![2, 1, 1, 1]);
    }

    #[test]
    fn packets_keep_their_order_across_batches() {
        let mut queue: VecDeque<Packet> = (0..20)
            .map(|i| Packet::Message(Data::Text(i.to_string())))
            .collect();
        let mut seen = Vec::new();
        loop {
            let batch = take_batch(&mut queue, usize::MAX);
            if batch.is_empty() {
                break;
            }
            for packet in batch {
                match packet {
                    Packet::Message(Data::Text(t)) => seen.push(t.parse::<i32>().unwrap()),
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        assert_eq!(seen, (0..20).collect::<Vec<_>>());
    }
}
