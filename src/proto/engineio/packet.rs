//! Engine.IO packet codec: one packet to/from one WebSocket frame or one polling payload element.

use bytes::Bytes;

use super::Handshake;
use crate::proto::ProtocolError;

/// Engine.IO protocol revision spoken with the server (`EIO=` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EngineVersion {
    /// Engine.IO v3 (socket.io 2.x servers): client pings, length-prefixed polling payloads.
    V3,
    /// Engine.IO v4 (socket.io 3.x and 4.x servers): server pings, 0x1E-separated payloads.
    #[default]
    V4,
}

impl EngineVersion {
    /// The value of the `EIO` query parameter: `"3"` or `"4"`.
    pub fn query_value(self) -> &'static str {
        todo!()
    }
}

/// The body of a message packet: text or binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// A UTF-8 message.
    Text(String),
    /// A binary message.
    Binary(Bytes),
}

/// One WebSocket frame as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Bytes),
}

/// One Engine.IO packet.
#[derive(Debug, Clone, PartialEq)]
pub enum Packet {
    /// `0{json}`: the server's handshake.
    Open(Handshake),
    /// `1`: close the session.
    Close,
    /// `2[data]`: ping; data is `probe` during an upgrade, usually empty otherwise.
    Ping(String),
    /// `3[data]`: pong, echoing the ping's data.
    Pong(String),
    /// `4…`: a message (text), or a binary message.
    Message(Data),
    /// `5`: upgrade completes.
    Upgrade,
    /// `6`: no-op (releases a pending poll during an upgrade).
    Noop,
}

impl Packet {
    /// Encodes for a WebSocket frame. Text packets are `<type digit><data>`; a binary message is
    /// a binary frame holding the raw bytes (v4) or `0x04` followed by the bytes (v3).
    pub fn to_frame(&self, version: EngineVersion) -> Frame {
        let _ = version;
        todo!()
    }

    /// Decodes a WebSocket frame.
    pub fn from_frame(version: EngineVersion, frame: Frame) -> Result<Packet, ProtocolError> {
        let _ = (version, frame);
        todo!()
    }

    /// Decodes one text packet (`<type digit><data>`), as found in a text frame or a payload.
    /// A `b`-prefixed element (base64 binary in polling payloads) is NOT handled here.
    pub fn decode_text(text: &str) -> Result<Packet, ProtocolError> {
        let _ = text;
        todo!()
    }

    /// Encodes as one text packet, `<type digit><data>`. A binary message has no text form and
    /// is encoded by the payload codec instead; here it becomes `b<base64>` (v4 form).
    pub fn encode_text(&self) -> String {
        todo!()
    }
}
