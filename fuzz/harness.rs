//! Fuzz harnesses shared by the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`) and the corpus
//! replay test (`tests/fuzz_corpus.rs`), so CI without cargo-fuzz runs the very same code on the
//! committed corpora.
//!
//! Each harness takes arbitrary bytes and drives one decoder of the crate with them. Besides
//! "never panics", every harness checks invariants (round trips, chunking independence, state
//! machine rules) with `assert!`, so a wrong answer shows up as a crash just like a panic does.

// Each fuzz target includes this file but uses only its own harness.
#![allow(dead_code)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;
use sio_client::proto::engineio::sse::{self, SseDecoder};
use sio_client::proto::engineio::{
    self, Data, EngineVersion, Frame, Handshake, Session, SessionEvent,
};
use sio_client::proto::socketio::{self, Decoder, PacketType};
use sio_client::proto::ProtocolError;
use sio_client::Args;

/// A harness: bytes in, panics on a bug.
pub type Harness = fn(&[u8]);

/// Every target by name (the name of its `fuzz/fuzz_targets/<name>.rs` and corpus directory).
pub const TARGETS: &[(&str, Harness)] = &[
    ("engineio_packet", engineio_packet),
    ("engineio_payload", engineio_payload),
    ("socketio_decoder", socketio_decoder),
    ("sse_decoder", sse_decoder),
    ("engineio_session", engineio_session),
];

/// Runs `harness` on `data`, turning a panic into its message.
pub fn run_catching(harness: Harness, data: &[u8]) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| harness(data))).map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "non-string panic".to_owned())
    })
}

fn version_from(byte: u8) -> EngineVersion {
    if byte & 1 == 0 {
        EngineVersion::V3
    } else {
        EngineVersion::V4
    }
}

// ---------------------------------------------------------------------------------------------
// (1) Engine.IO packets
// ---------------------------------------------------------------------------------------------

/// Byte 0 picks the entry point (`decode_text`, a text frame or a binary frame) and the
/// protocol version; the rest is the packet.
pub fn engineio_packet(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let version = version_from(mode);
    let decoded = match (mode >> 1) % 3 {
        0 => engineio::Packet::decode_text(&String::from_utf8_lossy(rest)),
        1 => engineio::Packet::from_frame(
            version,
            Frame::Text(String::from_utf8_lossy(rest).into_owned()),
        ),
        _ => engineio::Packet::from_frame(version, Frame::Binary(Bytes::copy_from_slice(rest))),
    };
    if let Ok(packet) = decoded {
        check_engineio_round_trip(&packet);
    }
}

/// A decoded packet comes back unchanged from each of its encodings.
fn check_engineio_round_trip(packet: &engineio::Packet) {
    for version in [EngineVersion::V3, EngineVersion::V4] {
        let frame = packet.to_frame(version);
        assert_eq!(
            engineio::Packet::from_frame(version, frame.clone()).as_ref(),
            Ok(packet),
            "frame round trip ({version:?}, {frame:?})"
        );
    }
    // A binary message's text form is the payload codec's `b<base64>`, not a packet.
    if !matches!(packet, engineio::Packet::Message(Data::Binary(_))) {
        let text = packet.encode_text();
        assert_eq!(
            engineio::Packet::decode_text(&text).as_ref(),
            Ok(packet),
            "text round trip ({text:?})"
        );
    }
    if let engineio::Packet::Open(handshake) = packet {
        check_handshake_round_trip(handshake);
    }
}

fn check_handshake_round_trip(handshake: &Handshake) {
    let json = handshake.to_json();
    assert_eq!(
        Handshake::parse(&json).as_ref(),
        Ok(handshake),
        "handshake round trip ({json})"
    );
}

// ---------------------------------------------------------------------------------------------
// (2) Polling payloads
// ---------------------------------------------------------------------------------------------

/// Byte 0 picks the protocol version; the rest is a polling response body.
pub fn engineio_payload(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let version = version_from(mode);
    let from_bytes = engineio::decode_payload_bytes(version, body);
    match std::str::from_utf8(body) {
        Ok(text) => assert_eq!(
            engineio::decode_payload(version, text),
            from_bytes,
            "decode_payload and decode_payload_bytes disagree"
        ),
        Err(_) => assert_eq!(from_bytes, Err(ProtocolError::InvalidUtf8)),
    }
    let Ok(packets) = from_bytes else {
        return;
    };
    let encoded = engineio::encode_payload(version, &packets);
    assert_eq!(
        engineio::decode_payload(version, &encoded).as_ref(),
        Ok(&packets),
        "payload round trip ({encoded:?})"
    );
    for packet in &packets {
        check_engineio_round_trip(packet);
    }
}

// ---------------------------------------------------------------------------------------------
// (3) Socket.IO decoder, attachments and `Args`
// ---------------------------------------------------------------------------------------------

/// Separates messages in the input; never part of UTF-8 text, so text messages stay intact.
const MESSAGE_SEPARATOR: u8 = 0xFF;
/// A message starting with this byte is a binary message (an attachment) of the bytes after it.
const BINARY_MARK: u8 = 0x00;

/// Byte 0 sets the decoder's attachment limit (0…7); the rest is a sequence of messages
/// separated by 0xFF, binary when they start with 0x00, text otherwise.
pub fn socketio_decoder(data: &[u8]) {
    let Some((&limit, rest)) = data.split_first() else {
        return;
    };
    let mut decoder = Decoder::new(usize::from(limit % 8));
    for message in rest.split(|&b| b == MESSAGE_SEPARATOR) {
        let result = match message.split_first() {
            Some((&BINARY_MARK, bytes)) => decoder.decode_binary(Bytes::copy_from_slice(bytes)),
            _ => decoder.decode_text(&String::from_utf8_lossy(message)),
        };
        match result {
            Ok(Some(packet)) => {
                assert_eq!(decoder.missing_attachments(), 0);
                check_socketio_packet(&packet);
            }
            Ok(None) => assert!(decoder.missing_attachments() > 0),
            // The decoder promises to be back in its initial state after any error.
            Err(_) => assert_eq!(decoder.missing_attachments(), 0),
        }
    }
}

/// Decodes a packet's text and attachments with a fresh decoder.
fn decode_socketio(
    text: &str,
    attachments: &[Bytes],
) -> Result<Option<socketio::Packet>, ProtocolError> {
    let mut decoder = Decoder::new(attachments.len());
    let mut result = decoder.decode_text(text);
    for attachment in attachments {
        result = decoder.decode_binary(attachment.clone());
    }
    result
}

fn check_socketio_packet(packet: &socketio::Packet) {
    if packet.kind.is_binary() {
        assert_eq!(packet.check_placeholders(), Ok(()));
    } else {
        assert!(packet.attachments.is_empty());
    }

    // A DISCONNECT's stray numeric payload reads back as an ack id; the codec never writes one.
    let numeric_disconnect =
        packet.kind == PacketType::Disconnect && matches!(packet.data, Some(Value::Number(_)));
    if !numeric_disconnect {
        let text = packet.encode();
        match decode_socketio(&text, &packet.attachments) {
            Ok(Some(again)) => assert!(
                same_socketio_packet(&again, packet),
                "re-encoded packet differs: {text:?} gave {again:?}, expected {packet:?}"
            ),
            other => panic!("re-encoded packet {text:?} does not decode: {other:?}"),
        }
    }

    let values = match (packet.kind, &packet.data) {
        (PacketType::Event | PacketType::BinaryEvent, Some(Value::Array(items))) => {
            items.get(1..).unwrap_or_default().to_vec()
        }
        (_, Some(Value::Array(items))) => items.clone(),
        (_, Some(other)) => vec![other.clone()],
        (_, None) => Vec::new(),
    };
    let args = Args::from_wire(values, packet.attachments.clone());
    check_args(&args);

    // The arguments re-encoded by the client's own path make a packet that decodes again.
    let Ok(reencoded) = Args::from_serialize(&args) else {
        return;
    };
    let (values, attachments) = reencoded.into_wire();
    let rebuilt = match (packet.kind, packet.event_name()) {
        (PacketType::Event | PacketType::BinaryEvent, Some(name)) => {
            let mut data = vec![Value::String(name.to_owned())];
            data.extend(values);
            socketio::Packet::event(&packet.nsp, Value::Array(data), attachments, packet.id)
        }
        (PacketType::Ack | PacketType::BinaryAck, _) => socketio::Packet::ack(
            &packet.nsp,
            packet.id.unwrap_or(0),
            Value::Array(values),
            attachments,
        ),
        // Other kinds have no argument list to rebuild.
        _ => return,
    };
    let text = rebuilt.encode();
    match decode_socketio(&text, &rebuilt.attachments) {
        Ok(Some(again)) => assert!(
            same_socketio_packet(&again, &rebuilt),
            "rebuilt packet differs: {text:?} gave {again:?}, expected {rebuilt:?}"
        ),
        other => panic!("rebuilt packet {text:?} does not decode: {other:?}"),
    }
}

/// Exercises every `Args` accessor; checks the ones whose answers are tied to each other.
fn check_args(args: &Args) {
    for index in 0..=args.len() {
        let _ = args.get::<Value>(index);
        let _ = args.get::<String>(index);
        let _ = args.get::<Option<u64>>(index);
        let _ = args.get::<Option<Vec<u8>>>(index);
        let _ = args.get::<std::collections::BTreeMap<String, Value>>(index);
        let _ = args.get::<(String, Vec<Value>)>(index);
        let as_bytes = args.get::<Bytes>(index);
        if let Some(binary) = args.binary(index) {
            assert_eq!(
                as_bytes.as_ref().ok(),
                Some(binary),
                "binary({index}) and get::<Bytes>({index}) disagree"
            );
        }
    }
    assert!(args.binary(args.len()).is_none());
    assert!(args
        .get::<Option<Value>>(args.len())
        .is_ok_and(|v| v.is_none()));
    if let Ok(list) = args.parse::<Vec<Value>>() {
        assert_eq!(list.len(), args.len());
    }
    let _ = args.parse::<(String,)>();
    let _ = args.parse::<Vec<Option<Bytes>>>();
    let _ = args.parse::<()>();

    // Re-serialised through the client's own path, the arguments mean the same: same length,
    // and the same JSON once binary values are resolved.
    let Ok(reencoded) = Args::from_serialize(args) else {
        return;
    };
    assert_eq!(reencoded.len(), args.len());
    let before = serde_json::to_value(args);
    let after = serde_json::to_value(&reencoded);
    match (&before, &after) {
        (Ok(before), Ok(after)) => assert!(
            json_close(before, after),
            "re-serialised arguments differ: {before} vs {after}"
        ),
        _ => panic!("re-serialisation disagrees: {before:?} vs {after:?}"),
    }
}

/// Packet equality, with floats compared loosely: serde_json's default float parser may be one
/// unit in the last place off, so a float need not survive print → parse bit for bit.
fn same_socketio_packet(a: &socketio::Packet, b: &socketio::Packet) -> bool {
    a.kind == b.kind
        && a.nsp == b.nsp
        && a.id == b.id
        && a.attachments == b.attachments
        && match (&a.data, &b.data) {
            (Some(x), Some(y)) => json_close(x, y),
            (None, None) => true,
            _ => false,
        }
}

fn json_close(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y
                || match (x.as_f64(), y.as_f64()) {
                    (Some(x), Some(y)) => (x - y).abs() <= x.abs().max(y.abs()) * 1e-12,
                    _ => false,
                }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_close(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, x)| y.get(key).is_some_and(|y| json_close(x, y)))
        }
        _ => a == b,
    }
}

// ---------------------------------------------------------------------------------------------
// (4) Server-Sent Events
// ---------------------------------------------------------------------------------------------

/// Event size limits the harness picks from.
const SSE_LIMITS: [usize; 8] = [0, 1, 8, 64, 256, 4096, 1 << 20, usize::MAX];

/// Byte 0 picks the decoder's size limit (low 3 bits) and how the rest of the input, the
/// response body, is cut into chunks (high 5 bits).
pub fn sse_decoder(data: &[u8]) {
    let Some((&config, body)) = data.split_first() else {
        return;
    };
    let limit = SSE_LIMITS[usize::from(config & 7)];
    let step = usize::from(config >> 3);

    // The decoder works byte by byte, so one byte at a time is the reference for any chunking.
    let (reference, reference_error) = feed_sse(limit, body.chunks(1));
    let (chunked, chunked_error) = if step == 0 {
        feed_sse(limit, std::iter::once(body))
    } else {
        feed_sse(limit, uneven_chunks(body, step))
    };
    assert_eq!(chunked_error, reference_error, "chunking changed the error");
    if chunked_error.is_none() {
        assert_eq!(chunked, reference, "chunking changed the packets");
    } else {
        // `feed` drops the packets of the chunk that failed, so only a prefix is guaranteed.
        assert!(
            reference.starts_with(&chunked),
            "chunking changed the packets"
        );
    }

    for packet in &reference {
        check_sse_round_trip(packet);
    }
}

/// Chunks of lengths 1, 1 + step, 1 + 2·step… (mod 61), so boundaries fall everywhere.
fn uneven_chunks(body: &[u8], step: usize) -> impl Iterator<Item = &[u8]> {
    let mut rest = body;
    let mut turn = 0usize;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let len = 1 + turn.wrapping_mul(step) % 61;
        turn = turn.wrapping_add(1);
        let (chunk, after) = rest.split_at(len.min(rest.len()));
        rest = after;
        Some(chunk)
    })
}

/// Feeds chunks until the first error: the packets decoded before it, and the error.
fn feed_sse<'a>(
    limit: usize,
    chunks: impl Iterator<Item = &'a [u8]>,
) -> (Vec<engineio::Packet>, Option<ProtocolError>) {
    let mut decoder = SseDecoder::new(limit);
    let mut packets = Vec::new();
    for chunk in chunks {
        match decoder.feed(chunk) {
            Ok(more) => packets.extend(more),
            Err(error) => return (packets, Some(error)),
        }
    }
    (packets, None)
}

/// A decoded event re-encoded by `encode_event` decodes to the same packet. Only messages are
/// protected from SSE's line rules by the encoder (base64 event); other packets are checked
/// when their text has no line break, the only form a server sends them in.
fn check_sse_round_trip(packet: &engineio::Packet) {
    let is_message = matches!(packet, engineio::Packet::Message(_));
    if !is_message && packet.encode_text().contains(['\n', '\r']) {
        return;
    }
    let event = sse::encode_event(packet);
    let mut decoder = SseDecoder::new(usize::MAX);
    assert_eq!(
        decoder.feed(event.as_bytes()),
        Ok(vec![packet.clone()]),
        "SSE round trip ({event:?})"
    );
}

// ---------------------------------------------------------------------------------------------
// (5) Engine.IO session on a virtual clock
// ---------------------------------------------------------------------------------------------

/// Lines of input. Line 0: byte 0 picks the version, the rest is the handshake JSON (when it
/// does not parse, a default handshake with 25 ms / 20 ms heartbeat is used). Each later line
/// is one step:
/// `t<ms>` advance the clock and `handle_timeout`; `w` jump to `poll_timeout()`;
/// `s<text>` send; `c` close; `x` ask `has_ping_expired`; anything else is decoded with
/// `decode_text` and fed to `handle_packet` (decode errors are skipped).
pub fn engineio_session(data: &[u8]) {
    let mut lines = data.split(|&b| b == b'\n');
    let first = lines.next().unwrap_or_default();
    let Some((&mode, json)) = first.split_first() else {
        return;
    };
    let version = version_from(mode);
    let handshake = match Handshake::parse(&String::from_utf8_lossy(json)) {
        Ok(handshake) => {
            check_handshake_round_trip(&handshake);
            handshake
        }
        // Handshake is #[non_exhaustive]: built by its parser, as any caller outside the crate.
        Err(_) => {
            Handshake::parse(r#"{"sid":"fuzz","upgrades":[],"pingInterval":25,"pingTimeout":20}"#)
                .expect("a valid fallback handshake")
        }
    };
    let mut now = Instant::now();
    let mut session = Session::new(version, handshake.clone(), now);
    assert_eq!(session.handshake(), &handshake);
    let mut watch = SessionWatch::default();

    for line in lines {
        let line = String::from_utf8_lossy(line);
        let mut chars = line.chars();
        let op = chars.next();
        let arg = chars.as_str();
        let was_closed = session.is_closed();
        let mut timer_ran = false;
        let mut ping = None;
        match op {
            Some('t') => {
                let millis = arg.parse::<u64>().unwrap_or(1);
                if let Some(later) = now.checked_add(Duration::from_millis(millis)) {
                    now = later;
                }
                session.handle_timeout(now);
                timer_ran = true;
            }
            Some('w') => {
                if let Some(at) = session.poll_timeout() {
                    now = now.max(at);
                }
                session.handle_timeout(now);
                timer_ran = true;
            }
            Some('s') => session.send(Data::Text(arg.to_owned())),
            Some('c') => session.close(),
            Some('x') => {
                let _ = session.has_ping_expired(now);
            }
            _ => {
                if let Ok(packet) = engineio::Packet::decode_text(&line) {
                    if let engineio::Packet::Ping(data) = &packet {
                        ping = Some(data.clone());
                    }
                    session.handle_packet(now, packet);
                }
            }
        }
        let sent = watch.drain(&mut session);

        if was_closed {
            assert!(sent.is_empty(), "a closed session transmitted {sent:?}");
        }
        if let (Some(data), EngineVersion::V4, false) = (ping, version, was_closed) {
            assert_eq!(
                sent,
                vec![engineio::Packet::Pong(data)],
                "a v4 ping is answered by its pong at once"
            );
        }
        if timer_ran && !session.is_closed() {
            assert!(
                session.poll_timeout().is_none_or(|at| at >= now),
                "the next timer is already past after handle_timeout"
            );
            assert!(
                !session.has_ping_expired(now),
                "ping expired though handle_timeout did not close the session"
            );
        }
    }
}

/// Rules that hold over a whole session, checked as its output is drained.
#[derive(Default)]
struct SessionWatch {
    closed_event: bool,
    close_sent: bool,
}

impl SessionWatch {
    /// Drains events and transmissions, checking them; returns the transmissions.
    fn drain(&mut self, session: &mut Session) -> Vec<engineio::Packet> {
        while let Some(event) = session.poll_event() {
            assert!(!self.closed_event, "event {event:?} after Closed");
            if let SessionEvent::Closed(_) = event {
                self.closed_event = true;
            }
        }
        assert_eq!(
            session.is_closed(),
            self.closed_event,
            "is_closed() and the Closed event disagree"
        );
        if session.is_closed() {
            assert_eq!(session.poll_timeout(), None, "a closed session has a timer");
        }
        let sent: Vec<_> = std::iter::from_fn(|| session.poll_transmit()).collect();
        for packet in &sent {
            assert!(!self.close_sent, "{packet:?} transmitted after close");
            if *packet == engineio::Packet::Close {
                self.close_sent = true;
            }
        }
        sent
    }
}
