//! One Engine.IO session and the transport carrying it: packets for the core go into the
//! session and out through the transport; what the transport delivers goes through the session
//! (heartbeat, close) and the decoder (attachments reassembled) and comes out as complete
//! Socket.IO packets. Frames are decoded in one place, here.

use std::task::{Context, Poll};
use std::time::Instant;

use crate::proto::engineio::{CloseReason, Data, Packet as EnginePacket, Session, SessionEvent};
use crate::proto::socketio as sio;
use crate::proto::time::deadline_after;
use crate::reason::DisconnectReason;
use crate::transport::http::HttpSettings;
use crate::transport::{Active, Io, Transport};
use crate::Error;

use super::upgrade::{self, poll_upgrade_step, Parts, Upgrade, UpgradeOptions, UpgradeStep};

/// What the link has for the core.
pub(super) enum LinkInput {
    /// A complete packet and its weight on the wire.
    Packet(sio::Packet, usize),
    /// The link is gone.
    Lost(DisconnectReason, Option<Error>),
}

pub(super) struct Link {
    pub(super) session: Session,
    pub(super) transport: Active,
    decoder: sio::Decoder,
    upgrade: Option<Upgrade>,
    /// Packets that must precede the session's own on the next flush (after an upgrade).
    preface: Vec<EnginePacket>,
    settings: HttpSettings,
}

/// What happened on the link: its transport delivered, or its upgrade probe moved.
pub(super) enum LinkEvent {
    Io(Result<Io, Error>),
    Upgrade(UpgradeStep),
}

impl Link {
    pub(super) fn new(
        session: Session,
        transport: Active,
        settings: HttpSettings,
        max_attachments: usize,
        max_receive: usize,
    ) -> Link {
        Link {
            session,
            transport,
            decoder: sio::Decoder::new(max_attachments)
                .with_max_bytes(max_receive)
                .lazy_args(),
            upgrade: None,
            preface: Vec::new(),
            settings,
        }
    }

    pub(super) fn kind(&self) -> Transport {
        self.transport.kind()
    }

    /// The link's next event. With `read` false (an application queue is full) nothing new
    /// is taken from the server, but sending and the upgrade probe go on.
    pub(super) fn poll_next(&mut self, cx: &mut Context<'_>, read: bool) -> Poll<LinkEvent> {
        if let Poll::Ready(io) = self.transport.poll_io(cx, read) {
            return Poll::Ready(LinkEvent::Io(io));
        }
        poll_upgrade_step(&mut self.upgrade, cx).map(LinkEvent::Upgrade)
    }

    /// Whether the link can take a handle's request on the handle's own thread: a WebSocket
    /// that carries the session alone (no upgrade in flight) and whose heartbeat is not
    /// overdue (that verdict reads the socket first, which is the driver's task's job).
    pub(super) fn writes_directly(&self, now: Instant) -> bool {
        self.upgrade.is_none()
            && self.transport.kind() == Transport::WebSocket
            && !self.session.has_ping_expired(now)
    }

    /// Queues a Socket.IO packet (text part, then its attachments) on the session.
    pub(super) fn send(&mut self, packet: sio::Packet) {
        let text = packet.encode();
        self.session.send(Data::Text(text));
        for attachment in packet.attachments {
            self.session.send(Data::Binary(attachment));
        }
    }

    /// Hands everything the session (and the upgrade probe) wants to send to the transports.
    /// Never waits for the network: the transports write as their sockets take it (driven by
    /// `poll_next`), and a write that makes no progress for pingTimeout ends the link.
    pub(super) fn flush(&mut self) {
        if let Some(Upgrade::Probing { ws, probe }) = &mut self.upgrade {
            let mut probes = Vec::new();
            while let Some(packet) = probe.poll_transmit() {
                probes.push(packet);
            }
            if !probes.is_empty() {
                ws.queue(probes);
            }
        }
        let mut out = std::mem::take(&mut self.preface);
        while let Some(packet) = self.session.poll_transmit() {
            out.push(packet);
        }
        if !out.is_empty() {
            self.transport.send(out);
        }
    }

    /// When the transport's waiting writes count as a dead connection.
    pub(super) fn write_deadline(&self) -> Option<Instant> {
        let since = self.transport.stalled_since()?;
        Some(deadline_after(since, self.session.handshake().ping_timeout))
    }

    /// The link's next deadline: heartbeat, upgrade probe, stalled writes.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        let probe = match &self.upgrade {
            Some(Upgrade::Probing { probe, .. }) => probe.poll_timeout(),
            _ => None,
        };
        [self.session.poll_timeout(), probe, self.write_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether the heartbeat is overdue at `now`.
    pub(super) fn heartbeat_expired(&self, now: Instant) -> bool {
        self.session.poll_timeout().is_some_and(|at| at <= now)
    }

    /// The next input for the core from what the session has; `None` when it has nothing.
    pub(super) fn poll_input(&mut self) -> Option<LinkInput> {
        loop {
            let decoded = match self.session.poll_event()? {
                SessionEvent::Message(Data::Text(text)) => self.decoder.decode_text_owned(text),
                SessionEvent::Message(Data::Binary(bytes)) => self.decoder.decode_binary(bytes),
                SessionEvent::Closed(CloseReason::PingTimeout) => {
                    return Some(LinkInput::Lost(DisconnectReason::PingTimeout, None))
                }
                SessionEvent::Closed(CloseReason::ServerClose) => {
                    return Some(LinkInput::Lost(DisconnectReason::TransportClose, None))
                }
                SessionEvent::Closed(_) => return None,
            };
            match decoded {
                Ok(Some(packet)) => {
                    let size = self.decoder.last_packet_bytes();
                    return Some(LinkInput::Packet(packet, size));
                }
                // An attachment still missing.
                Ok(None) => continue,
                Err(error) => {
                    return Some(LinkInput::Lost(
                        DisconnectReason::ParseError,
                        Some(Error::Protocol(error)),
                    ))
                }
            }
        }
    }

    /// Starts the upgrade to WebSocket.
    pub(super) fn start_upgrade(&mut self, options: UpgradeOptions) {
        let sid = self.session.handshake().sid.clone();
        let url = self
            .settings
            .endpoint
            .url(Transport::WebSocket, Some(&sid), 0);
        upgrade::start(&mut self.upgrade, url, options);
    }

    /// What the upgrade works on.
    pub(super) fn upgrade_parts(&mut self) -> Parts<'_> {
        Parts {
            upgrade: &mut self.upgrade,
            transport: &mut self.transport,
            preface: &mut self.preface,
        }
    }

    /// Every transport of the link, for closing.
    pub(super) fn into_transports(self) -> Vec<Active> {
        let mut transports = vec![self.transport];
        if let Some(Upgrade::Probing { ws, .. }) = self.upgrade {
            transports.push(Active::WebSocket(ws));
        }
        transports
    }
}
