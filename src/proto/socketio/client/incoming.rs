//! What the server sends, as the core sees it: CONNECT replies (socket.io 2 told apart),
//! CONNECT_ERROR, DISCONNECT, events (recovery offsets noted) and acknowledgements.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use super::acks::Answered;
use super::namespace::{self, Phase};
use super::{is_socketio2_server, ClientCore, Link, Output, Status, Timer};
use crate::event::Event;
use crate::proto::engineio::{detect, EngineVersion};
use crate::proto::socketio::{ack_args, split_event, LazyData, Packet, PacketType};
use crate::proto::ProtocolError;
use crate::reason::DisconnectReason;
use crate::{Args, Error, Transport};

impl ClientCore {
    /// A complete packet from the server; `size` is its weight on the wire.
    pub(crate) fn handle_message(&mut self, now: Instant, packet: Packet, size: usize) {
        let Link::Up(transport) = self.link else {
            return;
        };
        if let Err(error) = self.on_packet(now, packet, size, transport) {
            let error = Error::Protocol(error);
            if !(is_socketio2_server(&error) && self.switch_to_v3(now)) {
                self.handle_link_lost(now, DisconnectReason::ParseError, Some(error));
            }
        }
    }

    pub(super) fn on_packet(
        &mut self,
        now: Instant,
        packet: Packet,
        size: usize,
        transport: Transport,
    ) -> Result<(), ProtocolError> {
        match packet.kind {
            PacketType::Connect => self.on_connected(now, packet, transport)?,
            PacketType::ConnectError => {
                let Some(namespace) = self.key(&packet.nsp) else {
                    return Ok(());
                };
                let error = namespace::refusal(&packet.nsp, packet.data);
                let socket = self.namespaces.get_mut(&namespace).expect("present");
                if socket.has_reply() {
                    self.close_namespace(
                        &namespace,
                        DisconnectReason::IoServerDisconnect,
                        Some(&error),
                    );
                } else {
                    // Refused on a reconnection (e.g. an expired token): the socket is closed,
                    // the application hears why.
                    self.status(
                        &namespace,
                        Status::Closed(DisconnectReason::IoServerDisconnect),
                    );
                    self.status(&namespace, Status::Connected(false));
                    self.event(&namespace, Event::Error(Arc::new(error.clone())));
                    self.drop_namespace(&namespace, &error);
                }
                if self.namespaces.is_empty() {
                    self.finish(DisconnectReason::IoServerDisconnect);
                }
            }
            PacketType::Disconnect => {
                if let Some(namespace) = self.key(&packet.nsp) {
                    self.close_namespace(&namespace, DisconnectReason::IoServerDisconnect, None);
                }
                if self.namespaces.is_empty() {
                    self.finish(DisconnectReason::IoServerDisconnect);
                }
            }
            PacketType::Event | PacketType::BinaryEvent => {
                let Some(namespace) = self.key(&packet.nsp) else {
                    return Ok(());
                };
                let (event, args) = match packet.lazy {
                    Some(LazyData {
                        name: Some(name),
                        args,
                    }) => (name, args),
                    _ => {
                        let (event, values) = split_event(packet.data)?;
                        (event, Args::from_wire(values, packet.attachments))
                    }
                };
                let socket = self.namespaces.get_mut(&namespace).expect("present");
                // With connection-state recovery on, the server appends its offset to every
                // event as a last string argument (left in place, as the JS client does).
                if socket.pid.is_some() {
                    if let Some(offset) = args.last_string() {
                        socket.offset = Some(offset);
                    }
                }
                self.outputs.push_back(Output::Message {
                    namespace,
                    namespace_text: packet.nsp,
                    event,
                    args,
                    ack: packet.id,
                    size,
                });
            }
            PacketType::Ack | PacketType::BinaryAck => {
                let Some(id) = packet.id else {
                    return Err(ProtocolError::InvalidPacket("ack without an id".into()));
                };
                let Some(namespace) = self.key(&packet.nsp) else {
                    return Ok(());
                };
                let socket = self.namespaces.get_mut(&namespace).expect("present");
                let answered = socket.acks.answer(id);
                let args = || match packet.lazy {
                    Some(lazy) => lazy.args,
                    None => Args::from_wire(ack_args(packet.data), packet.attachments),
                };
                match answered {
                    Answered::Pending(token) => {
                        self.timers.cancel(&Timer::Ack(namespace, id));
                        self.outputs.push_back(Output::AckReply {
                            token,
                            result: Ok(args()),
                        });
                    }
                    Answered::QueueHead(token) => {
                        self.timers.cancel(&Timer::Retry(namespace.clone()));
                        if let Some(token) = token {
                            self.outputs.push_back(Output::AckReply {
                                token,
                                result: Ok(args()),
                            });
                        }
                        self.drain_queue(now, &namespace);
                    }
                    Answered::Nobody => {}
                }
            }
        }
        Ok(())
    }

    /// The server accepted a namespace: answer the caller, announce it, send what waited.
    pub(super) fn on_connected(
        &mut self,
        now: Instant,
        packet: Packet,
        transport: Transport,
    ) -> Result<(), ProtocolError> {
        // Before the namespace lookup: socket.io 2 joins "/" unasked.
        if self.version != EngineVersion::V3
            && detect::connect_reply_is_socketio2(packet.data.as_ref())
        {
            return Err(detect::socketio2_server(format!(
                "its CONNECT reply for {} carries no sid",
                packet.nsp
            )));
        }
        let Some(namespace) = self.key(&packet.nsp) else {
            return Ok(());
        };
        let socket = self.namespaces.get_mut(&namespace).expect("present");
        let Phase::Connecting { reply, attempt, .. } =
            std::mem::replace(&mut socket.phase, Phase::Connected)
        else {
            if !socket.is_connected() {
                // Waiting (not asked on this link): stays so.
                let reply = socket.take_reply();
                socket.phase = Phase::Waiting { reply };
            }
            return Ok(());
        };
        let recovered = socket.accept_pid(packet.data.as_ref());
        let buffered = std::mem::take(&mut socket.buffer);
        socket.acks.mark_sent();
        self.timers.cancel(&Timer::Connect(namespace.clone()));
        self.status(&namespace, Status::Recovered(recovered));
        // socket.io 3+ names the socket in its CONNECT reply; socket.io 2's socket id is the
        // session's, prefixed with the namespace but for `/` (as its JS client computes it).
        let id: Arc<str> = match packet
            .data
            .as_ref()
            .and_then(|d| d.get("sid"))
            .and_then(Value::as_str)
        {
            Some(sid) => Arc::from(sid),
            None if &*namespace == "/" => self.engine_sid.clone(),
            None => Arc::from(format!("{namespace}#{}", self.engine_sid)),
        };
        self.status(&namespace, Status::Id(id));
        self.status(&namespace, Status::Connected(true));
        if let Some(token) = reply {
            self.outputs.push_back(Output::ConnectReply {
                token,
                result: Ok(()),
            });
        }
        self.event(
            &namespace,
            Event::Connected {
                namespace: packet.nsp.clone(),
                transport,
            },
        );
        if let Some(attempt) = attempt {
            self.event(
                &namespace,
                Event::Reconnected {
                    attempt,
                    transport,
                    recovered,
                },
            );
        }
        if !buffered.is_empty() {
            self.status(&namespace, Status::Buffered(0));
        }
        self.ever_connected = true;
        self.backoff.reset();
        self.transmit
            .extend(buffered.into_iter().map(|(packet, _held)| packet));
        self.drain_queue(now, &namespace);
        Ok(())
    }
}
