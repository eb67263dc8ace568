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
    let mut reader = PayloadReader::new(version, body.to_owned())?;
    let mut packets = Vec::new();
    while let Some(packet) = reader.next_packet() {
        packets.push(packet?);
    }
    Ok(packets)
}

/// Decodes a polling response body one packet at a time, so that what a body costs in memory
/// is the body itself plus the packets taken so far, not every packet at once (a 99 MB body of
/// noops would otherwise be fifty million packets), and a reader can stop taking (back-pressure)
/// with the rest of the body still undecoded.
#[derive(Debug)]
pub struct PayloadReader {
    version: EngineVersion,
    body: String,
    /// Byte offset of the next packet.
    at: usize,
    /// The body ended, or an error was returned.
    done: bool,
}

impl PayloadReader {
    /// A reader over `body`; an empty body is [`ProtocolError::Empty`], as in
    /// [`decode_payload`].
    pub fn new(version: EngineVersion, body: String) -> Result<PayloadReader, ProtocolError> {
        if body.is_empty() {
            return Err(ProtocolError::Empty);
        }
        Ok(PayloadReader {
            version,
            body,
            at: 0,
            done: false,
        })
    }

    /// Whether every packet has been taken.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The next packet; `None` at the end. After an error, `None`.
    pub fn next_packet(&mut self) -> Option<Result<Packet, ProtocolError>> {
        loop {
            if self.done {
                return None;
            }
            let rest = self.body.get(self.at..).unwrap_or_default();
            let element = match self.version.wire() {
                EngineVersion::V4 | EngineVersion::Auto => {
                    let (element, next) = match rest.find(SEPARATOR) {
                        Some(i) => (&rest[..i], self.at + i + SEPARATOR.len_utf8()),
                        None => {
                            self.done = true;
                            (rest, self.body.len())
                        }
                    };
                    self.at = next;
                    element
                }
                EngineVersion::V3 => {
                    if rest.is_empty() {
                        self.done = true;
                        return None;
                    }
                    let split = split_length_prefix(rest)
                        .and_then(|(length, after)| split_utf16_units(after, length));
                    let (element, remainder) = match split {
                        Ok(pair) => pair,
                        Err(e) => {
                            self.done = true;
                            return Some(Err(e));
                        }
                    };
                    self.at = self.body.len() - remainder.len();
                    if element.is_empty() {
                        continue;
                    }
                    element
                }
            };
            let packet = Packet::decode_payload_element(self.version, element);
            if packet.is_err() {
                self.done = true;
            }
            return Some(packet);
        }
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
