//! The Engine.IO session after the handshake: heartbeat in both protocol versions, ping-timeout
//! detection, message queueing and close. Sans-IO: fed packets and time, polled for output.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{Data, EngineVersion, Handshake, Packet};

/// Why a session ended.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// No ping (v4) / pong (v3) within the heartbeat window.
    PingTimeout,
    /// The server sent a close packet.
    ServerClose,
    /// `close()` was called.
    ClientClose,
}

/// Output of the session for the layer above.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// A message packet's data.
    Message(Data),
    /// The session ended; nothing more will be emitted.
    Closed(CloseReason),
}

/// Heartbeat timers, by who pings.
///
/// Deadlines are `None` when adding the handshake's durations to `Instant` overflowed: such a
/// deadline lies beyond anything representable and never fires.
#[derive(Debug)]
enum Heartbeat {
    /// v4: the server pings; it is gone when no ping arrives by `deadline`.
    ServerPings { deadline: Option<Instant> },
    /// v3: the client pings. Between a pong and the next ping, `next_ping` is set; between a
    /// ping and its pong, `pong_deadline` is. Unlike the v3 reference client, other packets do
    /// not push the pong deadline back: the pong itself must arrive within `pingTimeout`.
    ClientPings {
        next_ping: Option<Instant>,
        pong_deadline: Option<Instant>,
        awaiting_pong: bool,
    },
}

/// Heartbeat and message state of one Engine.IO session.
#[derive(Debug)]
pub struct Session {
    handshake: Handshake,
    heartbeat: Heartbeat,
    transmit: VecDeque<Packet>,
    events: VecDeque<SessionEvent>,
    closed: bool,
    /// A pong is queued and not yet taken: a flood of pings is answered by one pong (each
    /// ping only resets the server's timer), so the queue cannot grow with the flood.
    pong_queued: bool,
    /// Heartbeats so far: pings received (v4) or pongs to our pings (v3).
    heartbeats: u64,
}

/// `now + a + b`, or `None` when that is past what `Instant` can hold.
fn deadline_after(now: Instant, a: Duration, b: Duration) -> Option<Instant> {
    now.checked_add(a)?.checked_add(b)
}

/// Whether a timer with this deadline has fired at `now` (`None` never fires).
fn reached(deadline: Option<Instant>, now: Instant) -> bool {
    deadline.is_some_and(|deadline| now >= deadline)
}

impl Session {
    /// Starts a session from the server's handshake, received at `now`.
    pub fn new(version: EngineVersion, handshake: Handshake, now: Instant) -> Session {
        let heartbeat = match version.wire() {
            EngineVersion::V4 | EngineVersion::Auto => Heartbeat::ServerPings {
                deadline: deadline_after(now, handshake.ping_interval, handshake.ping_timeout),
            },
            EngineVersion::V3 => Heartbeat::ClientPings {
                next_ping: now.checked_add(handshake.ping_interval),
                pong_deadline: None,
                awaiting_pong: false,
            },
        };
        Session {
            handshake,
            heartbeat,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            heartbeats: 0,
            closed: false,
            pong_queued: false,
        }
    }

    /// The handshake the session was opened with.
    pub fn handshake(&self) -> &Handshake {
        &self.handshake
    }

    /// How many heartbeats the session has had: pings from a v4 server, answers to our pings
    /// from a v3 one. A driver that sees it change knows a heartbeat period went by.
    pub fn heartbeats(&self) -> u64 {
        self.heartbeats
    }

    /// Frees the queues' memory while they are empty (an idle session keeps none).
    pub fn release_idle_buffers(&mut self) {
        if self.transmit.is_empty() {
            self.transmit = VecDeque::new();
        }
        if self.events.is_empty() {
            self.events = VecDeque::new();
        }
    }

    /// Feeds one packet received from the server at `now`.
    ///
    /// Packets that make no sense here (open, upgrade, a pong nobody asked for) are ignored
    /// rather than fatal, as the reference client does.
    pub fn handle_packet(&mut self, now: Instant, packet: Packet) {
        if self.closed {
            return;
        }
        match packet {
            Packet::Message(data) => self.events.push_back(SessionEvent::Message(data)),
            Packet::Close => self.end(CloseReason::ServerClose),
            Packet::Ping(data) => {
                if let Heartbeat::ServerPings { deadline } = &mut self.heartbeat {
                    self.heartbeats += 1;
                    *deadline = deadline_after(
                        now,
                        self.handshake.ping_interval,
                        self.handshake.ping_timeout,
                    );
                    if !self.pong_queued {
                        self.pong_queued = true;
                        self.transmit.push_back(Packet::Pong(data));
                    }
                }
                // v3 servers never ping; the v3 reference client ignores one.
            }
            Packet::Pong(data) => {
                if let Heartbeat::ClientPings {
                    next_ping,
                    pong_deadline,
                    awaiting_pong,
                } = &mut self.heartbeat
                {
                    // Only the answer to our own empty ping counts; a stray `3probe` from an
                    // upgrade must not reset the heartbeat.
                    if *awaiting_pong && data.is_empty() {
                        self.heartbeats += 1;
                        *awaiting_pong = false;
                        *pong_deadline = None;
                        *next_ping = now.checked_add(self.handshake.ping_interval);
                    }
                }
            }
            Packet::Open(_) | Packet::Upgrade | Packet::Noop => {}
        }
    }

    /// Advances timers to `now` (v3: send a ping when due; both: detect ping timeout).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        let timed_out = match &mut self.heartbeat {
            Heartbeat::ServerPings { deadline } => reached(*deadline, now),
            Heartbeat::ClientPings {
                next_ping,
                pong_deadline,
                awaiting_pong,
            } => {
                if *awaiting_pong {
                    reached(*pong_deadline, now)
                } else {
                    if reached(*next_ping, now) {
                        *awaiting_pong = true;
                        *next_ping = None;
                        *pong_deadline = now.checked_add(self.handshake.ping_timeout);
                        self.transmit.push_back(Packet::Ping(String::new()));
                    }
                    false
                }
            }
        };
        if timed_out {
            self.end(CloseReason::PingTimeout);
        }
    }

    /// When `handle_timeout` must next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        match &self.heartbeat {
            Heartbeat::ServerPings { deadline } => *deadline,
            Heartbeat::ClientPings {
                next_ping,
                pong_deadline,
                awaiting_pong,
            } => {
                if *awaiting_pong {
                    *pong_deadline
                } else {
                    *next_ping
                }
            }
        }
    }

    /// Next packet to send to the server, in order.
    ///
    /// After `close()` this still yields what was queued before, then the close packet.
    pub fn poll_transmit(&mut self) -> Option<Packet> {
        let packet = self.transmit.pop_front();
        if matches!(packet, Some(Packet::Pong(_))) {
            self.pong_queued = false;
        }
        packet
    }

    /// Next event for the layer above.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// Queues a message for the server.
    pub fn send(&mut self, data: Data) {
        if !self.closed {
            self.transmit.push_back(Packet::Message(data));
        }
    }

    /// Closes the session: queues a close packet and emits `Closed(ClientClose)`.
    pub fn close(&mut self) {
        if !self.closed {
            self.transmit.push_back(Packet::Close);
            self.closed = true;
            self.events
                .push_back(SessionEvent::Closed(CloseReason::ClientClose));
        }
    }

    /// Whether the heartbeat window has passed at `now` even if no timer fired yet (a suspended
    /// process or a sleeping laptop): a connection that looks alive but is not.
    ///
    /// A closed session counts as expired: nothing can be sent on it any more.
    pub fn has_ping_expired(&self, now: Instant) -> bool {
        if self.closed {
            return true;
        }
        let deadline = match &self.heartbeat {
            Heartbeat::ServerPings { deadline } => *deadline,
            Heartbeat::ClientPings {
                next_ping,
                pong_deadline,
                awaiting_pong,
            } => {
                if *awaiting_pong {
                    *pong_deadline
                } else {
                    // Had the ping timer fired on time, the pong would be due by now.
                    next_ping.and_then(|at| at.checked_add(self.handshake.ping_timeout))
                }
            }
        };
        deadline.is_some_and(|deadline| now > deadline)
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Ends the session from the server's side or by timeout: the server is gone or going, so
    /// packets still queued for it are dropped.
    fn end(&mut self, reason: CloseReason) {
        self.closed = true;
        self.transmit.clear();
        self.events.push_back(SessionEvent::Closed(reason));
    }
}
