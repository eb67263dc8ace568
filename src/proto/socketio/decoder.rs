//! Reassembles binary packets from their text header and the attachments that follow it.

use bytes::Bytes;

use super::Packet;
use crate::proto::ProtocolError;

/// Stateful Socket.IO decoder: text packets in, complete packets out.
#[derive(Debug)]
pub struct Decoder {
    _private: (),
}

impl Decoder {
    /// A decoder that refuses packets announcing more than `max_attachments` attachments.
    pub fn new(max_attachments: usize) -> Decoder {
        let _ = max_attachments;
        todo!()
    }

    /// Feeds a text message. Returns the packet when complete (`None` while a binary packet
    /// waits for attachments). A text message while attachments are pending is an error.
    pub fn decode_text(&mut self, text: &str) -> Result<Option<Packet>, ProtocolError> {
        let _ = text;
        todo!()
    }

    /// Feeds a binary message (an attachment). An attachment nobody waits for is an error.
    pub fn decode_binary(&mut self, data: Bytes) -> Result<Option<Packet>, ProtocolError> {
        let _ = data;
        todo!()
    }
}
