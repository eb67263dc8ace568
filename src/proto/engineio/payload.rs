//! Polling payloads: several packets in one HTTP body.
//! v4: packets joined by 0x1E, binary as `b<base64>`.
//! v3: each packet as `<length>:<packet>` where length counts UTF-16 code units, binary as
//! `b4<base64>` (the client asks for base64 with `b64=1`).

use super::{EngineVersion, Packet};
use crate::proto::ProtocolError;

/// Encodes packets into one polling request body.
pub fn encode_payload(version: EngineVersion, packets: &[Packet]) -> String {
    let _ = (version, packets);
    todo!()
}

/// Decodes one polling response body into its packets.
pub fn decode_payload(version: EngineVersion, body: &str) -> Result<Vec<Packet>, ProtocolError> {
    let _ = (version, body);
    todo!()
}
