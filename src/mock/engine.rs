//! Server-side Engine.IO v4 sessions: the write buffer, polling GET/POST, the streaming
//! downstream, the heartbeat (server pings, client pongs, close after pingTimeout without pong)
//! and close, as engine.io's `Socket` and `Polling` transport do. WebSocket framing lives in
//! `ws.rs`, the streaming response's framing in `streaming.rs`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use tokio::sync::Notify;

use super::http::{Request, Response};
use super::socket::SioConn;
use super::{lock, random_id, Inner};
use crate::proto::engineio::{
    decode_payload, encode_payload, Data, EngineVersion, Handshake, Packet,
};
use crate::Transport;

/// Why a session ended, with Node's reason strings (`Socket#disconnect` reasons on the
/// socket.io side).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseCause {
    /// No pong within pingTimeout.
    PingTimeout,
    /// The client sent a close packet or its transport went away.
    TransportClose,
    /// The transport broke the protocol (overlapping polls, bad content, heartbeat direction).
    TransportError,
    /// A packet that does not parse.
    ParseError,
    /// The server closed the session (`disconnect(true)`, connect timeout, shutdown).
    ServerClose,
}

impl CloseCause {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            CloseCause::PingTimeout => "ping timeout",
            CloseCause::TransportClose => "transport close",
            CloseCause::TransportError => "transport error",
            CloseCause::ParseError => "parse error",
            CloseCause::ServerClose => "server namespace disconnect",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    /// Closed by the server while no poll was pending: the next poll carries the close packet.
    Closing,
    Closed,
}

struct State {
    transport: Transport,
    out: VecDeque<Packet>,
    phase: Phase,
    /// A polling GET is pending, or a streaming GET is attached.
    get_pending: bool,
    post_pending: bool,
    /// A WebSocket is probing this polling session.
    pub(crate) upgrading: bool,
    /// Release the pending poll (or end the attached stream) with a noop: upgrade in progress.
    noop: bool,
    last_packet: Instant,
    awaiting_pong: bool,
}

/// One Engine.IO session.
pub(crate) struct Engine {
    pub(crate) sid: String,
    pub(crate) server: Weak<Inner>,
    st: Mutex<State>,
    /// Wakes the current writer (pending poll or WebSocket loop).
    pub(crate) wake: Notify,
    pong: Notify,
    pub(crate) sio: SioConn,
    /// Headers of the request that opened the session, names lowercased (as Node's
    /// `socket.handshake.headers`).
    pub(crate) headers: Vec<(String, String)>,
    /// Query of the request that opened the session (as Node's `socket.handshake.query`).
    pub(crate) query: HashMap<String, String>,
}

/// What a writer takes from the session.
pub(crate) struct Outgoing {
    pub(crate) packets: Vec<Packet>,
    /// The session is over after these packets.
    pub(crate) closed: bool,
}

impl Engine {
    /// Creates a session on `transport`, registers it and starts its timers. The open packet is
    /// the first thing queued.
    pub(crate) fn open(inner: &Arc<Inner>, transport: Transport, req: &Request) -> Arc<Engine> {
        let cfg = &inner.config;
        let sid = random_id();
        let upgrades = if transport != Transport::WebSocket && cfg.websocket_enabled {
            vec!["websocket".to_owned()]
        } else {
            Vec::new()
        };
        let handshake = Handshake {
            sid: sid.clone(),
            upgrades,
            ping_interval: cfg.ping_interval,
            ping_timeout: cfg.ping_timeout,
            max_payload: Some(cfg.max_payload as u64),
        };
        let engine = Arc::new(Engine {
            sid: sid.clone(),
            server: Arc::downgrade(inner),
            st: Mutex::new(State {
                transport,
                out: VecDeque::from([Packet::Open(handshake)]),
                phase: Phase::Open,
                get_pending: false,
                post_pending: false,
                upgrading: false,
                noop: false,
                last_packet: Instant::now(),
                awaiting_pong: false,
            }),
            wake: Notify::new(),
            pong: Notify::new(),
            sio: SioConn::new(),
            headers: req
                .headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
            query: req.query.clone(),
        });
        {
            let mut sessions = lock(&inner.sessions);
            sessions.insert(sid, engine.clone());
            inner.session_count.send_replace(sessions.len());
        }
        inner.spawn(heartbeat(engine.clone()));
        inner.spawn(super::socket::connect_timeout(engine.clone()));
        engine
    }

    /// Wakes whoever writes for the session. During an upgrade a pending poll and the new
    /// WebSocket may both wait, so every waiter is woken (each rechecks what is for it).
    pub(crate) fn wake(&self) {
        self.wake.notify_waiters();
        self.wake.notify_one();
    }

    pub(crate) fn server(&self) -> Option<Arc<Inner>> {
        self.server.upgrade()
    }

    /// The transport the session currently uses.
    pub(crate) fn transport(&self) -> Transport {
        lock(&self.st).transport
    }

    pub(crate) fn is_open(&self) -> bool {
        lock(&self.st).phase == Phase::Open
    }

    /// Queues a packet for the client (dropped once the session is closing).
    pub(crate) fn send(&self, packet: Packet) {
        self.send_all([packet]);
    }

    /// Queues packets that must travel together (a binary packet and its attachments).
    pub(crate) fn send_all(&self, packets: impl IntoIterator<Item = Packet>) {
        {
            let mut st = lock(&self.st);
            if st.phase != Phase::Open {
                return;
            }
            st.out.extend(packets);
        }
        self.wake();
    }

    /// Ends the session. `graceful` closes as `Socket#close()` does (buffered packets and a close
    /// packet still go out); otherwise as on an error (only the close packet to a pending poll).
    pub(crate) fn close(self: &Arc<Self>, cause: CloseCause, graceful: bool) {
        {
            let mut st = lock(&self.st);
            match st.phase {
                Phase::Closed => return,
                Phase::Closing if graceful => return,
                _ => {}
            }
            if !graceful {
                st.out.clear();
            }
            if cause == CloseCause::TransportClose
                && st.transport == Transport::Polling
                && st.get_pending
            {
                // engine.io's Polling#onClose releases the pending GET with a noop, not a close
                // packet: the client asked to close, it needs no confirmation.
                st.phase = Phase::Closed;
                st.out.push_back(Packet::Noop);
                drop(st);
                self.wake();
                self.finish(cause);
                return;
            }
            // Over HTTP with no GET to carry them, the close packet waits for the next GET.
            if graceful && st.transport != Transport::WebSocket && !st.get_pending {
                st.phase = Phase::Closing;
            } else {
                st.phase = Phase::Closed;
            }
            st.out.push_back(Packet::Close);
        }
        self.wake();
        if lock(&self.st).phase == Phase::Closing {
            // As Node, wait for the next poll to deliver the close packet, but not forever.
            if let Some(inner) = self.server() {
                let engine = self.clone();
                let wait = inner.config.close_timeout;
                inner.spawn(async move {
                    tokio::time::sleep(wait).await;
                    engine.finish(cause);
                });
            }
            self.sio.on_close(self, cause);
        } else {
            self.finish(cause);
        }
    }

    /// Final cleanup: unregisters the session and disconnects its sockets.
    fn finish(self: &Arc<Self>, cause: CloseCause) {
        lock(&self.st).phase = Phase::Closed;
        if let Some(inner) = self.server() {
            let mut sessions = lock(&inner.sessions);
            if sessions
                .get(&self.sid)
                .is_some_and(|e| Arc::ptr_eq(e, self))
            {
                sessions.remove(&self.sid);
            }
            inner.session_count.send_replace(sessions.len());
        }
        self.wake();
        self.sio.on_close(self, cause);
    }

    /// Takes what a writer may send now, or `None` when it must wait for `wake`.
    pub(crate) fn take_outgoing(self: &Arc<Self>, for_poll: bool) -> Option<Outgoing> {
        let mut st = lock(&self.st);
        if for_poll && st.transport != Transport::Polling {
            // The session moved to WebSocket: its packets go there; the old poll only ends.
            return Some(Outgoing {
                packets: vec![Packet::Noop],
                closed: false,
            });
        }
        if st.out.is_empty() {
            if for_poll && st.noop {
                st.noop = false;
                return Some(Outgoing {
                    packets: vec![Packet::Noop],
                    closed: false,
                });
            }
            return None;
        }
        let packets: Vec<Packet> = st.out.drain(..).collect();
        st.noop = false;
        let closed = packets.iter().any(|p| matches!(p, Packet::Close));
        let was_closing = st.phase == Phase::Closing;
        drop(st);
        if closed && was_closing {
            self.finish(CloseCause::ServerClose);
        }
        Some(Outgoing { packets, closed })
    }

    /// Handles a polling GET; the returned future resolves to the response once packets are
    /// there. Dropped before that (the client went away), it closes the session as Node does for
    /// a poll closed prematurely.
    pub(crate) fn poll(self: &Arc<Self>) -> Result<PollGuard, Response> {
        {
            let mut st = lock(&self.st);
            if st.get_pending {
                drop(st);
                // Node: "overlap from client" is a transport error that ends the session.
                self.close(CloseCause::TransportError, false);
                return Err(Response::empty(400));
            }
            st.get_pending = true;
        }
        Ok(PollGuard {
            engine: self.clone(),
            done: false,
        })
    }

    /// Attaches a streaming GET (the downstream of a streaming session). A second one while one
    /// is attached is a bad request that ends the session, as overlapping polls do.
    pub(crate) fn attach_stream(self: &Arc<Self>) -> Result<StreamGuard, Response> {
        {
            let mut st = lock(&self.st);
            if st.get_pending {
                drop(st);
                self.close(CloseCause::TransportError, false);
                return Err(Response::engine_error(3));
            }
            st.get_pending = true;
        }
        Ok(StreamGuard {
            engine: self.clone(),
            done: false,
        })
    }

    /// The next thing an attached stream writes, or `None` when it must wait for `wake`.
    fn take_for_stream(self: &Arc<Self>) -> Option<StreamStep> {
        let mut st = lock(&self.st);
        if st.transport != Transport::Streaming {
            // Upgraded: the WebSocket carries the session; the stream only ends.
            return Some(StreamStep {
                packet: Packet::Noop,
                last: true,
            });
        }
        if let Some(packet) = st.out.pop_front() {
            let last = matches!(packet, Packet::Close);
            let was_closing = st.phase == Phase::Closing;
            drop(st);
            if last && was_closing {
                self.finish(CloseCause::ServerClose);
            }
            return Some(StreamStep { packet, last });
        }
        if st.noop {
            st.noop = false;
            return Some(StreamStep {
                packet: Packet::Noop,
                last: true,
            });
        }
        if st.phase != Phase::Open {
            return Some(StreamStep {
                packet: Packet::Close,
                last: true,
            });
        }
        None
    }

    /// Handles a polling POST body.
    pub(crate) fn post(self: &Arc<Self>, body: &[u8], binary: bool) -> Response {
        {
            let mut st = lock(&self.st);
            if st.post_pending {
                drop(st);
                self.close(CloseCause::TransportError, false);
                return Response::empty(400);
            }
            st.post_pending = true;
        }
        let response = self.post_inner(body, binary);
        lock(&self.st).post_pending = false;
        response
    }

    fn post_inner(self: &Arc<Self>, body: &[u8], binary: bool) -> Response {
        let ok = || {
            let mut r = Response::new(200, "text/html", "ok");
            r.headers.push(("cache-control", "no-store".to_owned()));
            r
        };
        if binary {
            // EIO4 clients always post text; Node treats octet-stream as invalid content.
            self.close(CloseCause::TransportError, false);
            return Response::empty(400);
        }
        let packets = std::str::from_utf8(body)
            .ok()
            .and_then(|text| decode_payload(EngineVersion::V4, text).ok());
        match packets {
            Some(packets) => self.receive(packets),
            // Node still answers "ok" and closes the session with "parse error".
            None => self.close(CloseCause::ParseError, false),
        }
        ok()
    }

    /// Feeds packets received from the client on the session's transport.
    pub(crate) fn receive(self: &Arc<Self>, packets: Vec<Packet>) {
        let transport = self.transport();
        for packet in packets {
            {
                let mut st = lock(&self.st);
                if st.phase != Phase::Open {
                    return;
                }
                st.last_packet = Instant::now();
            }
            match packet {
                Packet::Pong(_) => {
                    let mut st = lock(&self.st);
                    if st.awaiting_pong {
                        st.awaiting_pong = false;
                        drop(st);
                        self.pong.notify_one();
                    }
                }
                // In v4 the server pings; a client ping is "invalid heartbeat direction".
                Packet::Ping(_) => return self.close(CloseCause::TransportError, false),
                Packet::Close => return self.close(CloseCause::TransportClose, false),
                Packet::Message(data) => self.sio.on_message(self, data, transport),
                Packet::Open(_) | Packet::Upgrade | Packet::Noop => {}
            }
        }
    }

    /// Starts an upgrade probe; false when the session cannot upgrade (Node closes the socket).
    pub(crate) fn begin_upgrade(&self) -> bool {
        let mut st = lock(&self.st);
        if st.phase != Phase::Open || st.transport == Transport::WebSocket || st.upgrading {
            return false;
        }
        st.upgrading = true;
        true
    }

    /// Ends a probe that did not upgrade.
    pub(crate) fn abort_upgrade(&self) {
        lock(&self.st).upgrading = false;
    }

    /// Releases a pending poll with a noop so the client can finish the upgrade. An attached
    /// stream gets its queued packets, then the noop, then its end, so that nothing is in
    /// flight on it when the WebSocket takes over.
    pub(crate) fn release_poll(&self) {
        let mut st = lock(&self.st);
        if st.get_pending && (st.out.is_empty() || st.transport == Transport::Streaming) {
            st.noop = true;
            drop(st);
            self.wake();
        }
    }

    /// The client sent `5`: the WebSocket carries the session from now on.
    pub(crate) fn complete_upgrade(&self) -> bool {
        let mut st = lock(&self.st);
        st.upgrading = false;
        if st.phase != Phase::Open {
            return false;
        }
        st.transport = Transport::WebSocket;
        st.noop = st.get_pending;
        drop(st);
        self.wake();
        true
    }
}

/// An outstanding polling GET.
pub(crate) struct PollGuard {
    engine: Arc<Engine>,
    done: bool,
}

impl PollGuard {
    /// Waits for packets and builds the response body.
    pub(crate) async fn response(mut self) -> Response {
        let engine = self.engine.clone();
        let out = loop {
            let notified = engine.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // A poll on a transport that is no longer polling is answered by the upgrade's noop.
            if let Some(out) = engine.take_outgoing(true) {
                break out;
            }
            if !engine.is_open() && lock(&engine.st).out.is_empty() {
                break Outgoing {
                    packets: vec![Packet::Close],
                    closed: true,
                };
            }
            notified.await;
        };
        self.done = true;
        lock(&engine.st).get_pending = false;
        let body = encode_payload(EngineVersion::V4, &out.packets);
        let mut r = Response::new(200, "text/plain; charset=UTF-8", body);
        r.headers.push(("cache-control", "no-store".to_owned()));
        r
    }
}

impl Drop for PollGuard {
    fn drop(&mut self) {
        if !self.done {
            lock(&self.engine.st).get_pending = false;
            if self.engine.transport() == Transport::Polling {
                self.engine.close(CloseCause::TransportClose, false);
            }
        }
    }
}

/// One event for an attached stream.
pub(crate) struct StreamStep {
    pub(crate) packet: Packet,
    /// End the response after this event.
    pub(crate) last: bool,
}

/// An attached streaming GET. Dropped without [`detach`](Self::detach) (the client's connection
/// went away), it closes the session as a poll closed prematurely does.
pub(crate) struct StreamGuard {
    engine: Arc<Engine>,
    done: bool,
}

impl StreamGuard {
    /// Waits for the next event to write.
    pub(crate) async fn next(&self) -> StreamStep {
        let engine = &self.engine;
        loop {
            let notified = engine.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(step) = engine.take_for_stream() {
                return step;
            }
            notified.await;
        }
    }

    /// The server ends the response on purpose (recycling, upgrade, close): the session lives
    /// on and buffers its packets until the client attaches a new GET.
    pub(crate) fn detach(mut self) {
        self.done = true;
        lock(&self.engine.st).get_pending = false;
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if !self.done {
            lock(&self.engine.st).get_pending = false;
            if self.engine.transport() == Transport::Streaming {
                self.engine.close(CloseCause::TransportClose, false);
            }
        }
    }
}

/// Server pings every pingInterval and closes the session when no pong (nor any other packet)
/// arrives within pingTimeout, as engine.io 6 does.
async fn heartbeat(engine: Arc<Engine>) {
    let Some(inner) = engine.server() else { return };
    let interval = inner.config.ping_interval;
    let timeout = inner.config.ping_timeout;
    drop(inner);
    loop {
        tokio::time::sleep(interval).await;
        let Some(inner) = engine.server() else { return };
        if !engine.is_open() {
            return;
        }
        if inner.faults.pings_stopped() {
            continue;
        }
        drop(inner);
        lock(&engine.st).awaiting_pong = true;
        engine.send(Packet::Ping(String::new()));
        let mut deadline = tokio::time::Instant::now() + timeout;
        loop {
            if tokio::time::timeout_at(deadline, engine.pong.notified())
                .await
                .is_ok()
            {
                break;
            }
            let last = lock(&engine.st).last_packet;
            let since = last.elapsed();
            if since < timeout {
                deadline = tokio::time::Instant::now() + (timeout - since);
                continue;
            }
            engine.close(CloseCause::PingTimeout, false);
            return;
        }
    }
}

/// Message data helper for the socket layer.
pub(crate) fn message(data: Data) -> Packet {
    Packet::Message(data)
}
