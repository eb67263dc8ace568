//! Engine.IO packet codec: one packet to/from one WebSocket frame or one polling payload element.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use bytes::Bytes;

use super::Handshake;
use crate::proto::ProtocolError;

/// Standard alphabet, padded on output. Padding is optional on input because JavaScript's
/// decoders (`atob`, `Buffer.from(s, "base64")`) accept it either way and servers may omit it.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Base64 (standard alphabet, padded) as used by `b`-prefixed binary packets.
pub(super) fn encode_base64(data: &[u8]) -> String {
    BASE64.encode(data)
}

/// Decodes the base64 of a `b`-prefixed binary packet.
pub(super) fn decode_base64(text: &str) -> Result<Bytes, ProtocolError> {
    BASE64
        .decode(text)
        .map(Bytes::from)
        .map_err(|_| ProtocolError::InvalidBase64)
}

/// Engine.IO protocol revision spoken with the server (`EIO=` query parameter).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EngineVersion {
    /// Engine.IO v3 (socket.io 2.x servers): client pings, length-prefixed polling payloads.
    V3,
    /// Engine.IO v4 (socket.io 3.x and 4.x servers): server pings, 0x1E-separated payloads.
    #[default]
    V4,
    /// A client setting, not a wire revision: speak v4, and when the server turns out to be
    /// socket.io 2 (see [`detect`](super::detect)) open the session again with v3. The codecs
    /// here treat it as [`V4`](EngineVersion::V4), the revision it starts with.
    Auto,
}

impl EngineVersion {
    /// The value of the `EIO` query parameter: `"3"` or `"4"` (`Auto` starts with `"4"`).
    pub fn query_value(self) -> &'static str {
        match self.wire() {
            EngineVersion::V3 => "3",
            _ => "4",
        }
    }

    /// The revision on the wire: `Auto` is `V4` until a socket.io 2 server is detected.
    pub fn wire(self) -> EngineVersion {
        match self {
            EngineVersion::Auto => EngineVersion::V4,
            other => other,
        }
    }
}

/// The body of a message packet: text or binary.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Data {
    /// A UTF-8 message.
    Text(String),
    /// A binary message.
    Binary(Bytes),
}

/// One WebSocket frame as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Frame {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Bytes),
}

/// One Engine.IO packet.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
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
        match (self, version.wire()) {
            (Packet::Message(Data::Binary(bytes)), EngineVersion::V4 | EngineVersion::Auto) => {
                Frame::Binary(bytes.clone())
            }
            (Packet::Message(Data::Binary(bytes)), EngineVersion::V3) => {
                let mut framed = Vec::with_capacity(bytes.len().saturating_add(1));
                framed.push(4);
                framed.extend_from_slice(bytes);
                Frame::Binary(Bytes::from(framed))
            }
            (packet, _) => Frame::Text(packet.encode_text()),
        }
    }

    /// Decodes a WebSocket frame.
    ///
    /// An empty v4 binary frame is an empty binary message; an empty v3 binary frame lacks its
    /// type byte and is [`ProtocolError::Empty`].
    pub fn from_frame(version: EngineVersion, frame: Frame) -> Result<Packet, ProtocolError> {
        match frame {
            // A message keeps the frame's own buffer (the type digit shifted out, no copy): a
            // 99 MB frame must not cost 99 MB more to be read.
            Frame::Text(mut text) if text.starts_with('4') => {
                text.remove(0);
                Ok(Packet::Message(Data::Text(text)))
            }
            Frame::Text(text) => Packet::decode_text(&text),
            Frame::Binary(bytes) => match version.wire() {
                EngineVersion::V4 | EngineVersion::Auto => Ok(Packet::Message(Data::Binary(bytes))),
                EngineVersion::V3 => match bytes.first() {
                    None => Err(ProtocolError::Empty),
                    // v3 binary frames carry the type as a raw byte (4), not the digit '4'.
                    Some(4) => Ok(Packet::Message(Data::Binary(bytes.slice(1..)))),
                    Some(other) => Err(ProtocolError::UnknownPacketType(format!(
                        "binary frame type byte {other}"
                    ))),
                },
            },
        }
    }

    /// Decodes one text packet (`<type digit><data>`), as found in a text frame or a payload.
    /// A `b`-prefixed element (base64 binary in polling payloads) is NOT handled here.
    pub fn decode_text(text: &str) -> Result<Packet, ProtocolError> {
        let mut chars = text.chars();
        let type_char = chars.next().ok_or(ProtocolError::Empty)?;
        let data = chars.as_str();
        match type_char {
            '0' => Handshake::parse(data).map(Packet::Open),
            // Close, upgrade and noop carry no data; like the reference parser, extra text after
            // the type is ignored rather than rejected.
            '1' => Ok(Packet::Close),
            '2' => Ok(Packet::Ping(data.to_owned())),
            '3' => Ok(Packet::Pong(data.to_owned())),
            '4' => Ok(Packet::Message(Data::Text(data.to_owned()))),
            '5' => Ok(Packet::Upgrade),
            '6' => Ok(Packet::Noop),
            other => Err(ProtocolError::UnknownPacketType(other.to_string())),
        }
    }

    /// Encodes as one text packet, `<type digit><data>`. A binary message has no text form and
    /// is encoded by the payload codec instead; here it becomes `b<base64>` (v4 form).
    pub fn encode_text(&self) -> String {
        match self {
            Packet::Open(handshake) => format!("0{}", handshake.to_json()),
            Packet::Close => "1".to_owned(),
            Packet::Ping(data) => format!("2{data}"),
            Packet::Pong(data) => format!("3{data}"),
            Packet::Message(Data::Text(text)) => format!("4{text}"),
            Packet::Message(Data::Binary(bytes)) => format!("b{}", encode_base64(bytes)),
            Packet::Upgrade => "5".to_owned(),
            Packet::Noop => "6".to_owned(),
        }
    }

    /// Decodes a `b`-prefixed polling payload element: `b<base64>` (v4) or `b4<base64>` (v3,
    /// where the type follows the `b`). Elements without the `b` are text packets.
    pub(super) fn decode_payload_element(
        version: EngineVersion,
        element: &str,
    ) -> Result<Packet, ProtocolError> {
        let Some(encoded) = element.strip_prefix('b') else {
            return Packet::decode_text(element);
        };
        let base64 = match version.wire() {
            EngineVersion::V4 | EngineVersion::Auto => encoded,
            EngineVersion::V3 => {
                let mut chars = encoded.chars();
                match chars.next() {
                    Some('4') => chars.as_str(),
                    Some(c) => {
                        return Err(ProtocolError::UnknownPacketType(format!("b{c}")));
                    }
                    None => return Err(ProtocolError::Empty),
                }
            }
        };
        decode_base64(base64).map(|bytes| Packet::Message(Data::Binary(bytes)))
    }
}
