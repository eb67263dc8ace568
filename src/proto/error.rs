//! Typed errors for malformed protocol input. Every decoder in `proto` returns these; none panics.

/// What was wrong with bytes received from a server (or a client, in the mock server).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// An empty packet or payload where one was required.
    #[error("empty packet")]
    Empty,
    /// The packet type is not one the protocol defines.
    #[error("unknown packet type {0:?}")]
    UnknownPacketType(String),
    /// Text that is not valid UTF-8.
    #[error("invalid UTF-8")]
    InvalidUtf8,
    /// A `b`-prefixed binary packet whose base64 does not decode.
    #[error("invalid base64 in binary packet")]
    InvalidBase64,
    /// JSON that does not parse, or parses to the wrong shape.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// A length prefix (EIO3 payloads) that is missing, not a number, or past the end.
    #[error("invalid length prefix: {0}")]
    InvalidLength(String),
    /// The handshake (open packet) lacks a field or has a wrong one.
    #[error("invalid handshake: {0}")]
    InvalidHandshake(String),
    /// A packet is larger than the configured limit.
    #[error("payload of {size} bytes exceeds the limit of {max}")]
    PayloadTooLarge {
        /// Size received.
        size: usize,
        /// Limit in force.
        max: usize,
    },
    /// A packet's JSON would take more memory decoded than the configured limit (estimated
    /// from its values: `[0,0,…]` costs 16 times its size as `serde_json::Value`s).
    #[error(
        "JSON of {values} values would take about {cost} bytes decoded, over the limit of {max}"
    )]
    JsonTooLarge {
        /// Values counted in the packet.
        values: usize,
        /// Estimated bytes once decoded.
        cost: usize,
        /// Limit in force.
        max: usize,
    },
    /// A binary packet announces more attachments than allowed.
    #[error("{count} attachments exceed the limit of {max}")]
    TooManyAttachments {
        /// Count announced.
        count: usize,
        /// Limit in force.
        max: usize,
    },
    /// A binary attachment arrived when no binary packet was waiting for one.
    #[error("unexpected binary attachment")]
    UnexpectedAttachment,
    /// A text packet arrived while a binary packet still waited for attachments.
    #[error("packet interrupted a binary packet waiting for {missing} attachment(s)")]
    AttachmentsMissing {
        /// How many attachments were still missing.
        missing: usize,
    },
    /// A placeholder refers to an attachment that does not exist.
    #[error("placeholder refers to attachment {num} of {count}")]
    BadPlaceholder {
        /// Attachment index named by the placeholder.
        num: u64,
        /// Attachments the packet carries.
        count: usize,
    },
    /// A Socket.IO packet is malformed (bad namespace, ack id, event shape …).
    #[error("invalid packet: {0}")]
    InvalidPacket(String),
    /// A packet that is valid in itself but not allowed in the current state.
    #[error("unexpected packet: {0}")]
    UnexpectedPacket(String),
    /// The server speaks socket.io 2 (Engine.IO 3, Socket.IO protocol 4) while the client speaks
    /// the socket.io 3/4 protocol ([`EngineVersion::V4`](crate::EngineVersion::V4)): the two
    /// cannot talk, so the connection is refused rather than half-established. See
    /// [`engineio::detect`](crate::proto::engineio::detect) for how it shows.
    #[error(
        "the server speaks socket.io 2 ({evidence}), not the socket.io 3/4 protocol this client \
         was set to: connect to it with `.protocol_version(EngineVersion::V3)`, or with \
         `.protocol_version(EngineVersion::Auto)` to detect the server's version"
    )]
    Socketio2Server {
        /// What the server answered that gave it away.
        evidence: String,
    },
}
