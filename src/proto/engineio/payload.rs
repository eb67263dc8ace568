//! Polling payloads: several packets in one HTTP body.
//! v4: packets joined by 0x1E, binary as `b<base64>`.
//! v3: each packet as `<length>:<packet>` where length counts UTF-16 code units, binary as
//! `b4<base64>` (the client asks for base64 with `b64=1`).

use super::packet::encode_base64;
use super::{Data, EngineVersion, Packet};
use crate::proto::ProtocolError;

/// Separates packets in a v4 payload (ASCII record separator).
const SEPARATOR: char = '\x1e';

/// Most digits a v3 length prefix may have. Ten digits already allow bodies of gigabytes;
/// longer prefixes are garbage, and capping them keeps the parse from overflowing.
const MAX_LENGTH_DIGITS: usize = 10;

/// Encodes packets into one polling request body.
///
/// An empty list encodes as `""` (v4) or `"0:"` (v3, as engine.io-parser 2.x does).
pub fn encode_payload(version: EngineVersion, packets: &[Packet]) -> String {
    match version.wire() {
        EngineVersion::V4 | EngineVersion::Auto => {
            let mut body = String::new();
            for (i, packet) in packets.iter().enumerate() {
                if i > 0 {
                    body.push(SEPARATOR);
                }
                body.push_str(&packet.encode_text());
            }
            body
        }
        EngineVersion::V3 => {
            if packets.is_empty() {
                return "0:".to_owned();
            }
            let mut body = String::new();
            for packet in packets {
                let encoded = match packet {
                    Packet::Message(Data::Binary(bytes)) => format!("b4{}", encode_base64(bytes)),
                    other => other.encode_text(),
                };
                body.push_str(&utf16_len(&encoded).to_string());
                body.push(':');
                body.push_str(&encoded);
            }
            body
        }
    }
}

/// Decodes one polling response body into its packets.
///
/// An empty body is [`ProtocolError::Empty`] in both versions: a server always answers a poll
/// with at least one packet (a noop when it has nothing to say).
pub fn decode_payload(version: EngineVersion, body: &str) -> Result<Vec<Packet>, ProtocolError> {
    if body.is_empty() {
        return Err(ProtocolError::Empty);
    }
    match version.wire() {
        EngineVersion::V4 | EngineVersion::Auto => body
            .split(SEPARATOR)
            .map(|element| Packet::decode_payload_element(version, element))
            .collect(),
        EngineVersion::V3 => decode_v3(body),
    }
}

/// Decodes a polling response body as received (bytes), rejecting invalid UTF-8 with
/// [`ProtocolError::InvalidUtf8`] before [`decode_payload`].
pub fn decode_payload_bytes(
    version: EngineVersion,
    body: &[u8],
) -> Result<Vec<Packet>, ProtocolError> {
    let body = std::str::from_utf8(body).map_err(|_| ProtocolError::InvalidUtf8)?;
    decode_payload(version, body)
}

/// Length of `text` in UTF-16 code units, the unit of v3 length prefixes (JavaScript's
/// `String.length`).
pub fn utf16_len(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

fn decode_v3(body: &str) -> Result<Vec<Packet>, ProtocolError> {
    let mut packets = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (length, after_colon) = split_length_prefix(rest)?;
        let (element, remainder) = split_utf16_units(after_colon, length)?;
        rest = remainder;
        // engine.io-parser 2.x skips zero-length elements (`0:` is how it encodes no packets).
        if !element.is_empty() {
            packets.push(Packet::decode_payload_element(EngineVersion::V3, element)?);
        }
    }
    Ok(packets)
}

/// Splits `<digits>:` off the front of `text`, returning the length and the text after `:`.
fn split_length_prefix(text: &str) -> Result<(usize, &str), ProtocolError> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    match text.as_bytes().get(digits) {
        Some(b':') => {}
        Some(_) => return Err(invalid_length("length prefix is not a number")),
        None => return Err(invalid_length("missing ':' after the length prefix")),
    }
    if digits == 0 {
        return Err(invalid_length("empty length prefix"));
    }
    if digits > MAX_LENGTH_DIGITS {
        return Err(invalid_length("length prefix has too many digits"));
    }
    // The prefix is ASCII digits and the byte after it is ':', so both splits are on char
    // boundaries; `get` keeps that from being an assumption that could panic.
    let (number, after) = match (text.get(..digits), text.get(digits.saturating_add(1)..)) {
        (Some(number), Some(after)) => (number, after),
        _ => return Err(invalid_length("length prefix is not a number")),
    };
    let length = number
        .parse::<usize>()
        .map_err(|_| invalid_length("length prefix overflows"))?;
    Ok((length, after))
}

/// Splits the first `units` UTF-16 code units off `text`.
fn split_utf16_units(text: &str, units: usize) -> Result<(&str, &str), ProtocolError> {
    let mut counted = 0usize;
    let mut end = text.len();
    for (index, c) in text.char_indices() {
        if counted >= units {
            end = index;
            break;
        }
        counted = counted.saturating_add(c.len_utf16());
    }
    if counted < units {
        return Err(invalid_length("length runs past the end of the payload"));
    }
    if counted > units {
        return Err(invalid_length("length ends inside a surrogate pair"));
    }
    match (text.get(..end), text.get(end..)) {
        (Some(element), Some(rest)) => Ok((element, rest)),
        _ => Err(invalid_length(
            "length does not end on a character boundary",
        )),
    }
}

fn invalid_length(reason: &str) -> ProtocolError {
    ProtocolError::InvalidLength(reason.to_owned())
}
