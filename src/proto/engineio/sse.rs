//! The streaming transport's framing: Engine.IO packets as Server-Sent Events.
//!
//! `GET …&transport=streaming` answers `200 text/event-stream` and keeps the response open. The
//! body starts with a comment line of [`PRELUDE_LEN`] bytes (it makes proxies that buffer small
//! responses flush), then carries one event per packet: `data: <packet>\n\n`, the packet in its
//! polling text form (binary as `b<base64>`). A text packet that holds a line break would be cut
//! by SSE's line rules, so it goes as `event: base64\ndata: <base64 of the text>\n\n`.
//! Comment lines (`:` …) may come at any time (keep-alives) and are skipped.

use base64::Engine as _;

use super::{Data, Packet};
use crate::proto::ProtocolError;

/// Length of the comment line that opens every stream (newline included).
pub const PRELUDE_LEN: usize = 2048;

/// The comment line that opens a stream.
pub fn prelude() -> String {
    let mut line = String::with_capacity(PRELUDE_LEN);
    line.push(':');
    line.extend(std::iter::repeat_n(' ', PRELUDE_LEN - 2));
    line.push('\n');
    line
}

/// Encodes one packet as one SSE event.
pub fn encode_event(packet: &Packet) -> String {
    let text = packet.encode_text();
    let raw_text = matches!(packet, Packet::Message(Data::Text(_)));
    if raw_text && text.contains(['\n', '\r']) {
        let b64 = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
        format!("event: base64\ndata: {b64}\n\n")
    } else {
        format!("data: {text}\n\n")
    }
}

/// Incremental SSE decoder: bytes in as they arrive, packets out as events complete.
#[derive(Debug)]
pub struct SseDecoder {
    line: Vec<u8>,
    data: String,
    event: String,
    has_data: bool,
    max_event: usize,
}

impl SseDecoder {
    /// A decoder refusing events (or lines) larger than `max_event` bytes.
    pub fn new(max_event: usize) -> SseDecoder {
        SseDecoder {
            line: Vec::new(),
            data: String::new(),
            event: String::new(),
            has_data: false,
            max_event,
        }
    }

    /// Feeds a chunk of the response body; returns the packets of the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Packet>, ProtocolError> {
        let mut packets = Vec::new();
        for &byte in chunk {
            if byte == b'\n' {
                let mut line = std::mem::take(&mut self.line);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if let Some(packet) = self.on_line(&line)? {
                    packets.push(packet);
                }
                line.clear();
                self.line = line;
            } else {
                if self.line.len() >= self.max_event {
                    return Err(ProtocolError::PayloadTooLarge {
                        size: self.line.len() + 1,
                        max: self.max_event,
                    });
                }
                self.line.push(byte);
            }
        }
        Ok(packets)
    }

    fn on_line(&mut self, line: &[u8]) -> Result<Option<Packet>, ProtocolError> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.first() == Some(&b':') {
            return Ok(None);
        }
        let line = std::str::from_utf8(line).map_err(|_| ProtocolError::InvalidUtf8)?;
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
                if self.data.len() > self.max_event {
                    return Err(ProtocolError::PayloadTooLarge {
                        size: self.data.len(),
                        max: self.max_event,
                    });
                }
            }
            "event" => self.event = value.to_string(),
            // `id`, `retry` and unknown fields mean nothing here (SSE says: ignore).
            _ => {}
        }
        Ok(None)
    }

    fn dispatch(&mut self) -> Result<Option<Packet>, ProtocolError> {
        let event = std::mem::take(&mut self.event);
        if !self.has_data {
            return Ok(None);
        }
        self.has_data = false;
        let data = std::mem::take(&mut self.data);
        match event.as_str() {
            "base64" => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(data.as_bytes())
                    .map_err(|_| ProtocolError::InvalidBase64)?;
                let text = String::from_utf8(bytes).map_err(|_| ProtocolError::InvalidUtf8)?;
                Packet::decode_text(&text).map(Some)
            }
            "" | "message" => {
                if let Some(b64) = data.strip_prefix('b') {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(b64.as_bytes())
                        .map_err(|_| ProtocolError::InvalidBase64)?;
                    Ok(Some(Packet::Message(Data::Binary(bytes.into()))))
                } else {
                    Packet::decode_text(&data).map(Some)
                }
            }
            other => Err(ProtocolError::UnknownPacketType(format!(
                "SSE event {other:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn all(decoder: &mut SseDecoder, input: &[u8]) -> Result<Vec<Packet>, ProtocolError> {
        decoder.feed(input)
    }

    #[test]
    fn prelude_is_a_comment_of_the_announced_length() {
        let p = prelude();
        assert_eq!(p.len(), PRELUDE_LEN);
        assert!(p.starts_with(':') && p.ends_with('\n'));
        let mut d = SseDecoder::new(4096);
        assert_eq!(all(&mut d, p.as_bytes()).unwrap(), vec![]);
    }

    #[test]
    fn round_trips_every_packet_kind_byte_by_byte() {
        let packets = vec![
            Packet::Ping(String::new()),
            Packet::Message(Data::Text("42[\"a\",\"b\"]".into())),
            Packet::Message(Data::Text("line\nbreak\r\nand\rcr".into())),
            Packet::Message(Data::Binary(Bytes::from_static(&[0, 1, 2, 255]))),
            Packet::Noop,
            Packet::Close,
        ];
        let mut wire = prelude();
        for p in &packets {
            wire.push_str(&encode_event(p));
        }
        // Fed one byte at a time: event boundaries may fall anywhere in a chunk.
        let mut d = SseDecoder::new(4096);
        let mut got = Vec::new();
        for b in wire.as_bytes() {
            got.extend(d.feed(std::slice::from_ref(b)).unwrap());
        }
        assert_eq!(got, packets);
    }

    #[test]
    fn golden_wire_form() {
        assert_eq!(
            encode_event(&Packet::Message(Data::Text("hello".into()))),
            "data: 4hello\n\n"
        );
        assert_eq!(
            encode_event(&Packet::Message(Data::Binary(Bytes::from_static(&[
                1, 2, 3, 4
            ])))),
            "data: bAQIDBA==\n\n"
        );
        assert_eq!(
            encode_event(&Packet::Message(Data::Text("a\nb".into()))),
            "event: base64\ndata: NGEKYg==\n\n"
        );
        let mut d = SseDecoder::new(100);
        let got = d
            .feed(b": keep-alive\r\ndata:2\r\n\r\nid: 7\nretry: 5\ndata: 4x\n\n")
            .unwrap();
        assert_eq!(
            got,
            vec![
                Packet::Ping(String::new()),
                Packet::Message(Data::Text("x".into()))
            ]
        );
    }

    #[test]
    fn malformed_events_are_typed_errors() {
        let cases: &[(&[u8], &str)] = &[
            (b"data: 9\n\n", "unknown type"),
            (b"data: b!!!\n\n", "bad base64"),
            (b"event: base64\ndata: !!\n\n", "bad base64 text"),
            (b"event: weird\ndata: 4x\n\n", "unknown event"),
            (b"data: \xff\xfe\n\n", "invalid utf-8"),
            (b"data: \n\n", "empty packet"),
        ];
        for (input, what) in cases {
            let mut d = SseDecoder::new(100);
            assert!(d.feed(input).is_err(), "{what} should fail");
        }
        let mut d = SseDecoder::new(10);
        assert!(matches!(
            d.feed(&[b'a'; 64]),
            Err(ProtocolError::PayloadTooLarge { .. })
        ));
        let mut d = SseDecoder::new(10);
        assert!(matches!(
            d.feed(b"data: 4123\ndata: 45678\n"),
            Err(ProtocolError::PayloadTooLarge { .. })
        ));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let mut d = SseDecoder::new(256);
            let len = (state % 300) as usize;
            let mut buf = Vec::with_capacity(len);
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let alphabet = b"data: event:b64\n\r:4 2x\xff";
                buf.push(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            let _ = d.feed(&buf);
        }
    }
}
