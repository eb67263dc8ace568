//! Server-side Engine.IO sessions (v4, and v3 for socket.io 2): the write buffer, polling
//! GET/POST, the streaming downstream, the heartbeat and close, as engine.io's `Socket` and
//! `Polling` transport do. WebSocket framing lives in `ws.rs`, the streaming response's
//! framing in `streaming.rs`. What runs on top of a session (Socket.IO, or the plain Engine.IO
//! message hook) is a [`Layer`]: this module knows nothing of the layers above it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::close_cause::CloseCause;
use super::http::{Request, Response};
use super::{lock, random_id, Inner};
use crate::proto::engineio::{
    decode_payload, encode_payload, Data, EngineVersion, Handshake, Packet,
};
use crate::Transport;

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
    /// The close packet was held back for the next poll (once).
    close_deferred: bool,
    /// When the last packet arrived (v3: every packet defers the ping timeout).
    last_packet: Instant,
    /// v4: a ping is out and its pong not back yet.
    awaiting_pong: bool,
    /// v4: when the pong arrived, the start of the next ping interval.
    pong_at: Option<Instant>,
    /// v4: when another packet arrived while waiting for the pong. engine.io 6 refreshes the
    /// ping timeout once for it (`hasRefreshedPingTimeout`), never more.
    refreshed_at: Option<Instant>,
}

/// What runs on top of an Engine.IO session: the Socket.IO layer or the plain Engine.IO
/// message hook.
pub(crate) trait Layer: Send + Sync {
    /// The session is registered and its open packet queued.
    fn on_open(&self, engine: &Arc<Engine>);
    /// A message packet arrived on `transport`.
    fn on_message(&self, engine: &Arc<Engine>, data: Data, transport: Transport);
    /// The session ended; may be called more than once for one session.
    fn on_close(&self, engine: &Arc<Engine>, cause: CloseCause);
}

/// One Engine.IO session.
pub(crate) struct Engine {
    pub(crate) sid: String,
    pub(crate) server: Weak<Inner>,
    st: Mutex<State>,
    /// Wakes the current writer (pending poll or WebSocket loop).
    pub(crate) wake: Notify,
    pong: Notify,
    /// The Engine.IO revision of the session, the server's (`EIO=3` or `4`).
    pub(crate) version: EngineVersion,
    pub(crate) layer: Arc<dyn Layer>,
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
    pub(crate) fn open(
        inner: &Arc<Inner>,
        transport: Transport,
        req: &Request,
        layer: Arc<dyn Layer>,
    ) -> Arc<Engine> {
        let cfg = &inner.config;
        let version = cfg.engine_version;
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
            // engine.io 3 does not announce it.
            max_payload: (version == EngineVersion::V4).then_some(cfg.max_payload as u64),
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
                close_deferred: false,
                last_packet: Instant::now(),
                awaiting_pong: false,
                pong_at: None,
                refreshed_at: None,
            }),
            wake: Notify::new(),
            pong: Notify::new(),
            version,
            layer,
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
        match version {
            EngineVersion::V3 => inner.spawn(heartbeat_v3(engine.clone())),
            _ => inner.spawn(heartbeat(engine.clone())),
        }
        engine.layer.on_open(&engine);
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
            // Over HTTP the close packet waits for the next GET when no GET is there to carry
            // it, or when packets go first: Node closes the transport once they are written
            // (`drain`), and the closed polling transport appends `1` to the next poll.
            if graceful
                && st.transport != Transport::WebSocket
                && (!st.get_pending || !st.out.is_empty())
            {
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
            self.layer.on_close(self, cause);
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
        self.layer.on_close(self, cause);
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
        let close_at = st.out.iter().position(|p| matches!(p, Packet::Close));
        let packets: Vec<Packet> = match close_at {
            Some(at) if for_poll && at > 0 && st.phase == Phase::Closing && !st.close_deferred => {
                st.close_deferred = true;
                // What was queued before the close goes alone; the next poll gets
                // `6` + `1`, engine.io's "empty send to append close packet".
                let first: Vec<Packet> = st.out.drain(..at).collect();
                st.out.push_front(Packet::Noop);
                first
            }
            _ => st.out.drain(..).collect(),
        };
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
            // EIO4 clients always post text; Node treats octet-stream as invalid content. EIO3
            // clients may post binary payloads unless they ask for base64 (`b64=1`, as this
            // crate's client does): not spoken here.
            self.close(CloseCause::TransportError, false);
            return Response::empty(400);
        }
        let packets = std::str::from_utf8(body)
            .ok()
            .and_then(|text| decode_payload(self.version, text).ok());
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
                let now = Instant::now();
                st.last_packet = now;
                if st.awaiting_pong
                    && st.refreshed_at.is_none()
                    && !matches!(packet, Packet::Pong(_))
                {
                    st.refreshed_at = Some(now);
                }
            }
            match (packet, self.version) {
                (Packet::Pong(_), EngineVersion::V3) => {}
                (Packet::Pong(_), _) => {
                    let mut st = lock(&self.st);
                    if st.awaiting_pong {
                        st.awaiting_pong = false;
                        st.pong_at = Some(Instant::now());
                        drop(st);
                        self.pong.notify_one();
                    }
                }
                // In v3 the client pings and the server answers at once.
                // In v3 the client pings and the server answers at once, without the ping's data
                // (engine.io 3 `sendPacket('pong')`; a probe is answered by the WebSocket probe).
                (Packet::Ping(_), EngineVersion::V3) => {
                    let answering = self.server().is_some_and(|i| !i.faults.pings_stopped());
                    if answering {
                        self.send(Packet::Pong(String::new()));
                    }
                }
                // In v4 the server pings; a client ping is "invalid heartbeat direction".
                (Packet::Ping(_), _) => return self.close(CloseCause::TransportError, false),
                // Only the polling transport reads a close packet; over WebSocket engine.io
                // ignores it (the client closes the WebSocket itself).
                (Packet::Close, _) if transport == Transport::WebSocket => {}
                (Packet::Close, _) => return self.close(CloseCause::TransportClose, false),
                (Packet::Message(data), _) => self.layer.on_message(self, data, transport),
                (Packet::Open(_) | Packet::Upgrade | Packet::Noop, _) => {}
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
        let body = encode_payload(engine.version, &out.packets);
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

/// v4: the server pings pingInterval after the open or the last pong and closes the session
/// pingTimeout after the ping when no pong came, as engine.io 6's `schedulePing` and
/// `resetPingTimeout` do. Every instant is absolute (from the open, the ping, the pong's
/// arrival), so that a late wake-up of this task delays nothing that follows.
async fn heartbeat(engine: Arc<Engine>) {
    let Some(inner) = engine.server() else { return };
    let interval = inner.config.ping_interval;
    let timeout = inner.config.ping_timeout;
    drop(inner);
    let mut next_ping = Instant::now() + interval;
    loop {
        tokio::time::sleep_until(next_ping).await;
        let Some(inner) = engine.server() else { return };
        if !engine.is_open() {
            return;
        }
        if inner.faults.pings_stopped() {
            next_ping = Instant::now() + interval;
            continue;
        }
        drop(inner);
        let sent = Instant::now();
        {
            let mut st = lock(&engine.st);
            st.awaiting_pong = true;
            st.pong_at = None;
            st.refreshed_at = None;
        }
        engine.send(Packet::Ping(String::new()));
        let mut deadline = sent + timeout;
        loop {
            tokio::select! {
                () = engine.pong.notified() => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
            let st = lock(&engine.st);
            if let Some(pong_at) = st.pong_at {
                next_ping = pong_at + interval;
                break;
            }
            // One refresh for a packet that came while waiting, as Node: the deadline moves
            // to pingTimeout after that packet.
            let refreshed = st.refreshed_at.map(|at| at + timeout);
            drop(st);
            match refreshed {
                Some(later) if later > deadline => deadline = later,
                _ if Instant::now() < deadline => {}
                _ => {
                    engine.close(CloseCause::PingTimeout, false);
                    return;
                }
            }
        }
    }
}

/// v3: the client pings; the session closes pingInterval + pingTimeout after the last packet
/// received (the open to begin with), as engine.io 3's `setPingTimeout`, reset by every packet.
async fn heartbeat_v3(engine: Arc<Engine>) {
    let Some(inner) = engine.server() else { return };
    let window = inner.config.ping_interval + inner.config.ping_timeout;
    drop(inner);
    loop {
        let deadline = lock(&engine.st).last_packet + window;
        tokio::time::sleep_until(deadline).await;
        let Some(inner) = engine.server() else { return };
        if !engine.is_open() {
            return;
        }
        if lock(&engine.st).last_packet + window > Instant::now() {
            continue;
        }
        if inner.faults.pings_stopped() {
            // As in v4, a stopped heartbeat times out nobody.
            lock(&engine.st).last_packet = Instant::now();
            continue;
        }
        drop(inner);
        engine.close(CloseCause::PingTimeout, false);
        return;
    }
}

/// Message data helper for the socket layer.
pub(crate) fn message(data: Data) -> Packet {
    Packet::Message(data)
}
