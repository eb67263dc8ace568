//! Reassembles binary packets from their text header and the attachments that follow it.

use bytes::Bytes;

use super::Packet;
use crate::proto::ProtocolError;

/// Attachments reserved up front at most, whatever count the header announces: the count comes
/// from the network, so memory grows only as attachments actually arrive.
const PREALLOCATE_MAX: usize = 16;

/// Stateful Socket.IO decoder: text packets in, complete packets out.
#[derive(Debug)]
pub struct Decoder {
    max_attachments: usize,
    /// A binary packet and the number of attachments it announced.
    pending: Option<(Packet, usize)>,
}

impl Decoder {
    /// A decoder that refuses packets announcing more than `max_attachments` attachments.
    pub fn new(max_attachments: usize) -> Decoder {
        Decoder {
            max_attachments,
            pending: None,
        }
    }

    /// Feeds a text message. Returns the packet when complete (`None` while a binary packet
    /// waits for attachments). A text message while attachments are pending is an error.
    ///
    /// After any error the decoder is back in its initial state, ready for the next packet.
    pub fn decode_text(&mut self, text: &str) -> Result<Option<Packet>, ProtocolError> {
        if let Some((packet, expected)) = self.pending.take() {
            return Err(ProtocolError::AttachmentsMissing {
                missing: expected.saturating_sub(packet.attachments.len()),
            });
        }
        let (mut packet, count) = Packet::decode_text(text)?;
        if count > self.max_attachments {
            return Err(ProtocolError::TooManyAttachments {
                count,
                max: self.max_attachments,
            });
        }
        if !packet.kind.is_binary() {
            return Ok(Some(packet));
        }
        if count == 0 {
            packet.check_placeholders()?;
            return Ok(Some(packet));
        }
        packet.attachments = Vec::with_capacity(count.min(PREALLOCATE_MAX));
        self.pending = Some((packet, count));
        Ok(None)
    }

    /// Feeds a binary message (an attachment). An attachment nobody waits for is an error.
    pub fn decode_binary(&mut self, data: Bytes) -> Result<Option<Packet>, ProtocolError> {
        let (mut packet, expected) = self
            .pending
            .take()
            .ok_or(ProtocolError::UnexpectedAttachment)?;
        packet.attachments.push(data);
        if packet.attachments.len() < expected {
            self.pending = Some((packet, expected));
            return Ok(None);
        }
        packet.check_placeholders()?;
        Ok(Some(packet))
    }

    /// Attachments the pending binary packet still waits for (0 when none is pending).
    pub fn missing_attachments(&self) -> usize {
        self.pending.as_ref().map_or(0, |(packet, expected)| {
            expected.saturating_sub(packet.attachments.len())
        })
    }

    /// Drops a partially received binary packet, e.g. when the transport reconnects.
    pub fn reset(&mut self) {
        self.pending = None;
    }
}
