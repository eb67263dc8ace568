//! Socket.IO packet codec: `<type>[<attachments>-][<nsp>,][<ack id>][json]`.

use bytes::Bytes;
use serde_json::Value;

use crate::proto::ProtocolError;

/// Event names a client may not emit (they mean something to the socket.io libraries).
pub const RESERVED_EVENTS: &[&str] = &[
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// Whether `name` is one of [`RESERVED_EVENTS`].
pub fn is_reserved_event(name: &str) -> bool {
    RESERVED_EVENTS.contains(&name)
}

/// Socket.IO packet types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// 0: join a namespace (client), or accept a join (server).
    Connect,
    /// 1: leave a namespace.
    Disconnect,
    /// 2: an event.
    Event,
    /// 3: an acknowledgement.
    Ack,
    /// 4: the server refused a namespace join.
    ConnectError,
    /// 5: an event with binary attachments.
    BinaryEvent,
    /// 6: an acknowledgement with binary attachments.
    BinaryAck,
}

/// One Socket.IO packet, with its binary attachments when it has any.
///
/// `data` keeps binary values as placeholders `{"_placeholder":true,"num":N}` referring to
/// `attachments[N]`, exactly as on the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// Packet type. For `BinaryEvent`/`BinaryAck` the attachment count is `attachments.len()`.
    pub kind: PacketType,
    /// Namespace, `/` when absent on the wire.
    pub nsp: String,
    /// Ack id, when the packet asks for (Event) or answers (Ack) an acknowledgement.
    pub id: Option<u64>,
    /// JSON payload, if any.
    pub data: Option<Value>,
    /// Binary attachments of a binary packet.
    pub attachments: Vec<Bytes>,
}

impl Packet {
    /// An EVENT packet (BINARY_EVENT when `attachments` is not empty); `data` is the array
    /// `[name, args…]`.
    pub fn event(nsp: &str, data: Value, attachments: Vec<Bytes>, id: Option<u64>) -> Packet {
        let _ = (nsp, data, attachments, id);
        todo!()
    }

    /// An ACK packet (BINARY_ACK when `attachments` is not empty); `data` is the args array.
    pub fn ack(nsp: &str, id: u64, data: Value, attachments: Vec<Bytes>) -> Packet {
        let _ = (nsp, id, data, attachments);
        todo!()
    }

    /// Encodes the text part; attachments follow as separate binary messages.
    pub fn encode(&self) -> String {
        todo!()
    }

    /// Decodes the text part of a packet. For a binary type the returned packet has no
    /// attachments yet and the count still expected is returned alongside; see [`super::Decoder`].
    pub fn decode_text(text: &str) -> Result<(Packet, usize), ProtocolError> {
        let _ = text;
        todo!()
    }
}
