//! Socket.IO packet codec: `<type>[<attachments>-][<nsp>,][<ack id>][json]`.

use std::fmt::Write as _;

use bytes::Bytes;
use serde_json::Value;

use crate::proto::ProtocolError;

/// Event names a client may not emit (they mean something to the socket.io libraries).
pub const RESERVED_EVENTS: &[&str] = &[
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// Whether `name` is one of [`RESERVED_EVENTS`].
pub fn is_reserved_event(name: &str) -> bool {
    RESERVED_EVENTS.contains(&name)
}

/// Longest attachment count accepted on the wire, in digits. Counts are checked against the
/// decoder's limit afterwards; this only keeps absurd prefixes from being scanned and parsed.
const MAX_COUNT_DIGITS: usize = 10;

/// Socket.IO packet types.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// 0: join a namespace (client), or accept a join (server).
    Connect,
    /// 1: leave a namespace.
    Disconnect,
    /// 2: an event.
    Event,
    /// 3: an acknowledgement.
    Ack,
    /// 4: the server refused a namespace join.
    ConnectError,
    /// 5: an event with binary attachments.
    BinaryEvent,
    /// 6: an acknowledgement with binary attachments.
    BinaryAck,
}

impl PacketType {
    /// The type for its wire digit (`'0'`…`'6'`).
    pub fn from_char(c: char) -> Option<PacketType> {
        Some(match c {
            '0' => PacketType::Connect,
            '1' => PacketType::Disconnect,
            '2' => PacketType::Event,
            '3' => PacketType::Ack,
            '4' => PacketType::ConnectError,
            '5' => PacketType::BinaryEvent,
            '6' => PacketType::BinaryAck,
            _ => return None,
        })
    }

    /// The wire digit of this type.
    pub fn as_char(self) -> char {
        match self {
            PacketType::Connect => '0',
            PacketType::Disconnect => '1',
            PacketType::Event => '2',
            PacketType::Ack => '3',
            PacketType::ConnectError => '4',
            PacketType::BinaryEvent => '5',
            PacketType::BinaryAck => '6',
        }
    }

    /// Whether the type carries an attachment count (`BinaryEvent`, `BinaryAck`).
    pub fn is_binary(self) -> bool {
        matches!(self, PacketType::BinaryEvent | PacketType::BinaryAck)
    }
}

/// The placeholder standing for `attachments[num]` in a binary packet's data:
/// `{"_placeholder":true,"num":num}`.
pub fn placeholder(num: u64) -> Value {
    serde_json::json!({ "_placeholder": true, "num": num })
}

/// The attachment index when `value` is exactly a placeholder object
/// (`{"_placeholder":true,"num":N}` with no other key and `N` a non-negative integer).
pub fn placeholder_num(value: &Value) -> Option<u64> {
    let obj = value.as_object()?;
    if obj.len() != 2 || obj.get("_placeholder") != Some(&Value::Bool(true)) {
        return None;
    }
    obj.get("num")?.as_u64()
}

/// Every placeholder index in `data`, in document order.
///
/// Walks with an explicit stack so that nesting depth cannot exhaust the call stack.
pub fn placeholder_nums(data: &Value) -> Vec<u64> {
    let mut found = Vec::new();
    let mut stack = vec![data];
    while let Some(value) = stack.pop() {
        if let Some(num) = placeholder_num(value) {
            found.push(num);
            continue;
        }
        // Children go on in reverse so they pop in document order.
        match value {
            Value::Array(items) => stack.extend(items.iter().rev()),
            Value::Object(map) => stack.extend(map.values().rev()),
            _ => {}
        }
    }
    found
}

/// Checks that every placeholder in `data` names one of `count` attachments.
pub fn check_placeholders(data: &Value, count: usize) -> Result<(), ProtocolError> {
    let mut stack = vec![data];
    while let Some(value) = stack.pop() {
        if let Some(num) = placeholder_num(value) {
            if usize::try_from(num).map_or(true, |n| n >= count) {
                return Err(ProtocolError::BadPlaceholder { num, count });
            }
            continue;
        }
        match value {
            Value::Array(items) => stack.extend(items.iter()),
            Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    Ok(())
}

/// One Socket.IO packet, with its binary attachments when it has any.
///
/// `data` keeps binary values as placeholders `{"_placeholder":true,"num":N}` referring to
/// `attachments[N]`, exactly as on the wire.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// Packet type. For `BinaryEvent`/`BinaryAck` the attachment count is `attachments.len()`.
    pub kind: PacketType,
    /// Namespace, `/` when absent on the wire.
    pub nsp: String,
    /// Ack id, when the packet asks for (Event) or answers (Ack) an acknowledgement.
    pub id: Option<u64>,
    /// JSON payload, if any.
    pub data: Option<Value>,
    /// Binary attachments of a binary packet.
    pub attachments: Vec<Bytes>,
    /// The data of an EVENT or ACK kept as JSON text (then `data` is `None`): what the client's
    /// decoder produces when asked to ([`super::Decoder::lazy_args`]).
    pub(crate) lazy: Option<LazyData>,
}

/// A packet's data as the client reads it: the event name and the arguments, the arguments
/// still JSON text (`payload/raw.rs`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LazyData {
    /// The event name (EVENT), `None` for an ACK.
    pub(crate) name: Option<String>,
    pub(crate) args: crate::Args,
}

impl Packet {
    /// An EVENT packet (BINARY_EVENT when `attachments` is not empty); `data` is the array
    /// `[name, args…]`.
    pub fn event(nsp: &str, data: Value, attachments: Vec<Bytes>, id: Option<u64>) -> Packet {
        let kind = if attachments.is_empty() {
            PacketType::Event
        } else {
            PacketType::BinaryEvent
        };
        Packet {
            kind,
            nsp: nsp.to_owned(),
            id,
            data: Some(data),
            attachments,
            lazy: None,
        }
    }

    /// An ACK packet (BINARY_ACK when `attachments` is not empty); `data` is the args array.
    pub fn ack(nsp: &str, id: u64, data: Value, attachments: Vec<Bytes>) -> Packet {
        let kind = if attachments.is_empty() {
            PacketType::Ack
        } else {
            PacketType::BinaryAck
        };
        Packet {
            kind,
            nsp: nsp.to_owned(),
            id: Some(id),
            data: Some(data),
            attachments,
            lazy: None,
        }
    }

    /// A CONNECT packet: the client's join request (`data` is the auth object, v5 only) or the
    /// server's acceptance (`data` is `{"sid":…}` in v5, absent in v4).
    pub fn connect(nsp: &str, data: Option<Value>) -> Packet {
        Packet::simple(PacketType::Connect, nsp, data)
    }

    /// A DISCONNECT packet for `nsp`.
    pub fn disconnect(nsp: &str) -> Packet {
        Packet::simple(PacketType::Disconnect, nsp, None)
    }

    /// A CONNECT_ERROR packet: `data` is `{"message":…}` (v5) or a string (v4).
    pub fn connect_error(nsp: &str, data: Value) -> Packet {
        Packet::simple(PacketType::ConnectError, nsp, Some(data))
    }

    fn simple(kind: PacketType, nsp: &str, data: Option<Value>) -> Packet {
        Packet {
            kind,
            nsp: nsp.to_owned(),
            id: None,
            data,
            attachments: Vec::new(),
            lazy: None,
        }
    }

    /// The event name of an EVENT/BINARY_EVENT packet (the first element of `data`).
    pub fn event_name(&self) -> Option<&str> {
        match self.kind {
            PacketType::Event | PacketType::BinaryEvent => match &self.lazy {
                Some(lazy) => lazy.name.as_deref(),
                None => self.data.as_ref()?.get(0)?.as_str(),
            },
            _ => None,
        }
    }

    /// Checks that every placeholder in `data` names one of `attachments`.
    pub fn check_placeholders(&self) -> Result<(), ProtocolError> {
        match &self.data {
            Some(data) => check_placeholders(data, self.attachments.len()),
            None => Ok(()),
        }
    }

    /// Encodes the text part; attachments follow as separate binary messages.
    ///
    /// The namespace is written as is (it must start with `/` and contain no `,` to decode
    /// back); `/` and the empty string are omitted, both meaning the main namespace.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        out.push(self.kind.as_char());
        if self.kind.is_binary() {
            // Writing to a String cannot fail.
            let _ = write!(out, "{}-", self.attachments.len());
        }
        if !self.nsp.is_empty() && self.nsp != "/" {
            out.push_str(&self.nsp);
            out.push(',');
        }
        if let Some(id) = self.id {
            let _ = write!(out, "{id}");
        }
        if let Some(data) = &self.data {
            let _ = write!(out, "{data}");
        }
        out
    }

    /// Decodes the text part of a packet. For a binary type the returned packet has no
    /// attachments yet and the count still expected is returned alongside; see [`super::Decoder`].
    pub fn decode_text(text: &str) -> Result<(Packet, usize), ProtocolError> {
        let header = Header::decode(text)?;
        let data = if header.rest.is_empty() {
            None
        } else {
            Some(
                serde_json::from_str::<Value>(header.rest)
                    .map_err(|e| ProtocolError::InvalidJson(e.to_string()))?,
            )
        };

        validate(header.kind, data.as_ref())?;
        let packet = Packet {
            kind: header.kind,
            nsp: header.nsp.to_owned(),
            id: header.id,
            data,
            attachments: Vec::new(),
            lazy: None,
        };
        Ok((packet, header.count))
    }

    /// An EVENT or ACK without attachments decoded with its arguments left as JSON text
    /// ([`LazyData`], which keeps `text` itself); `Err(text)` for every other packet and for
    /// one [`decode_text`](Self::decode_text) would refuse, so that refusals read the same
    /// either way.
    pub(crate) fn decode_text_lazy(text: String) -> Result<Packet, String> {
        let Ok(header) = Header::decode(&text) else {
            return Err(text);
        };
        let named = match header.kind {
            PacketType::Event => true,
            PacketType::Ack => false,
            _ => return Err(text),
        };
        let (kind, id) = (header.kind, header.id);
        let nsp = header.nsp.to_owned();
        let start = text.len() - header.rest.len();
        let (name, list) = crate::payload::RawList::parse(text, start, named)?;
        Ok(Packet {
            kind,
            nsp,
            id,
            data: None,
            attachments: Vec::new(),
            lazy: Some(LazyData {
                name,
                args: crate::Args::from_raw(list),
            }),
        })
    }
}

/// What comes before a packet's JSON: `<type>[<attachments>-][<nsp>,][<ack id>]`.
struct Header<'a> {
    kind: PacketType,
    /// Attachments announced (binary types).
    count: usize,
    nsp: &'a str,
    id: Option<u64>,
    /// The JSON after the header (maybe empty).
    rest: &'a str,
}

impl<'a> Header<'a> {
    fn decode(text: &'a str) -> Result<Header<'a>, ProtocolError> {
        let first = text.chars().next().ok_or(ProtocolError::Empty)?;
        let kind = PacketType::from_char(first)
            .ok_or_else(|| ProtocolError::UnknownPacketType(first.to_string()))?;
        let bytes = text.as_bytes();
        // The type digit is ASCII, so one byte.
        let mut pos = 1;

        let mut count = 0usize;
        if kind.is_binary() {
            let digits = digit_run(bytes, pos);
            if digits == 0 {
                return Err(invalid("binary packet without attachment count"));
            }
            if digits > MAX_COUNT_DIGITS {
                return Err(invalid("attachment count too long"));
            }
            let end = pos + digits;
            if bytes.get(end) != Some(&b'-') {
                return Err(invalid("attachment count not followed by '-'"));
            }
            count = parse_decimal(bytes.get(pos..end).unwrap_or_default())
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| invalid("attachment count overflows"))?;
            pos = end + 1;
        }

        let mut nsp = "/";
        if bytes.get(pos) == Some(&b'/') {
            let rest = text.get(pos..).ok_or_else(|| invalid("bad namespace"))?;
            match rest.find(',') {
                Some(comma) => {
                    nsp = rest.get(..comma).ok_or_else(|| invalid("bad namespace"))?;
                    pos += comma + 1;
                }
                None => {
                    nsp = rest;
                    pos = bytes.len();
                }
            }
        }

        let mut id = None;
        let digits = digit_run(bytes, pos);
        if digits > 0 {
            let end = pos + digits;
            id = Some(
                parse_decimal(bytes.get(pos..end).unwrap_or_default())
                    .ok_or_else(|| invalid("ack id overflows"))?,
            );
            pos = end;
        }

        let rest = text
            .get(pos..)
            .ok_or_else(|| invalid("bad packet layout"))?;
        Ok(Header {
            kind,
            count,
            nsp,
            id,
            rest,
        })
    }
}

fn invalid(why: &str) -> ProtocolError {
    ProtocolError::InvalidPacket(why.to_owned())
}

/// Number of ASCII digits starting at `pos`.
fn digit_run(bytes: &[u8], pos: usize) -> usize {
    bytes
        .get(pos..)
        .unwrap_or_default()
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count()
}

/// Parses ASCII digits as a u64; `None` on overflow (or a non-digit, which callers exclude).
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |acc, &b| {
        let d = u64::from(b.checked_sub(b'0').filter(|d| *d < 10)?);
        acc.checked_mul(10)?.checked_add(d)
    })
}

/// The payload shape each type requires.
fn validate(kind: PacketType, data: Option<&Value>) -> Result<(), ProtocolError> {
    match kind {
        PacketType::Connect => match data {
            // socket.io 2.x servers accept a join with no payload.
            None | Some(Value::Object(_)) => Ok(()),
            Some(_) => Err(invalid("CONNECT payload must be an object")),
        },
        // Nothing is expected; anything present is ignored rather than refused, since the
        // packet ends the namespace either way.
        PacketType::Disconnect => Ok(()),
        PacketType::Event | PacketType::BinaryEvent => match data {
            Some(Value::Array(items)) => match items.first() {
                Some(Value::String(_)) => Ok(()),
                Some(_) => Err(invalid("event name must be a string")),
                None => Err(invalid("event payload must not be empty")),
            },
            Some(_) => Err(invalid("event payload must be an array")),
            None => Err(invalid("event without payload")),
        },
        PacketType::Ack | PacketType::BinaryAck => match data {
            Some(Value::Array(_)) => Ok(()),
            Some(_) => Err(invalid("ack payload must be an array")),
            None => Err(invalid("ack without payload")),
        },
        PacketType::ConnectError => match data {
            // v5 sends {"message":…,"data":…}, v4 a bare string.
            Some(Value::Object(_)) | Some(Value::String(_)) => Ok(()),
            // A refusal without a reason is still a refusal.
            None => Ok(()),
            Some(_) => Err(invalid(
                "CONNECT_ERROR payload must be an object or a string",
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every example string of the socket.io-protocol v5 spec (packet encoding examples,
    /// exchange examples and sample session) as the Socket.IO part, without the Engine.IO `4`.
    const V5_EXAMPLES: &[&str] = &[
        "0",
        "0/admin,",
        "0/admin,{\"sid\":\"oSO0OpakMV_3jnilAAAA\"}",
        "0{\"sid\":\"wZX3oN0bSVIhsaknAAAI\"}",
        "0/admin,{\"token\":\"123\"}",
        "0/admin,{\"sid\":\"iLnRaVGHY4B75TeVAAAB\"}",
        "0/admin,{\"sid\":\"-G5j-67EZFp-q59rADQM\"}",
        "4{\"message\":\"Not authorized\"}",
        "2[\"foo\"]",
        "2[\"bar\"]",
        "2/admin,[\"bar\"]",
        "2[\"hey\",\"Jude\"]",
        "2[\"hello\"]",
        "2[\"world\"]",
        "51-[\"baz\",{\"_placeholder\":true,\"num\":0}]",
        "52-/admin,[\"baz\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]",
        "212[\"foo\"]",
        "312[]",
        "312[\"bar\"]",
        "2/admin,13[\"foo\"]",
        "3/admin,13[\"bar\"]",
        "514-[\"foo\",{\"_placeholder\":true,\"num\":0}]",
        "314[\"bar\"]",
        "215[\"foo\"]",
        "61-15[\"bar\",{\"_placeholder\":true,\"num\":0}]",
        "2/admin,1[\"tellme\"]",
        "61-/admin,1[{\"_placeholder\":true,\"num\":0}]",
        "1",
        "1/admin,",
    ];

    /// Every example string of the socket.io-protocol v4 spec (socket.io 2.x).
    const V4_EXAMPLES: &[&str] = &[
        "0",
        "0/admin,",
        "0/admin?token=1234,",
        "0/admin?token=1234&uid=abcd,",
        "1/admin,",
        "2[\"hello\",1]",
        "2/admin,456[\"project:delete\",123]",
        "3/admin,456[]",
        "4/admin,\"Not authorized\"",
        "51-[\"hello\",{\"_placeholder\":true,\"num\":0}]",
        "51-/admin,456[\"project:delete\",{\"_placeholder\":true,\"num\":0}]",
        "61-/admin,456[{\"_placeholder\":true,\"num\":0}]",
        "2[\"hey\",\"Jude\"]",
        "2/admin,1[\"tellme\"]",
        "61-/admin,1[{\"_placeholder\":true,\"num\":0}]",
    ];

    fn decode(text: &str) -> Packet {
        Packet::decode_text(text).unwrap().0
    }

    fn err(text: &str) -> ProtocolError {
        Packet::decode_text(text).unwrap_err()
    }

    fn is_invalid_packet(e: &ProtocolError) -> bool {
        matches!(e, ProtocolError::InvalidPacket(_))
    }

    #[test]
    fn spec_examples_round_trip_byte_for_byte() {
        for text in V5_EXAMPLES.iter().chain(V4_EXAMPLES) {
            let (mut packet, count) = Packet::decode_text(text).unwrap();
            // The text part alone encodes the announced count from the attachments.
            packet.attachments = vec![Bytes::from_static(b"\x01\x02\x03\x04"); count];
            assert_eq!(packet.encode(), *text, "re-encoding {text}");
        }
    }

    #[test]
    fn spec_examples_decode_to_the_documented_fields() {
        assert_eq!(decode("0"), Packet::connect("/", None));
        assert_eq!(
            decode("0/admin,{\"sid\":\"oSO0OpakMV_3jnilAAAA\"}"),
            Packet::connect("/admin", Some(json!({"sid": "oSO0OpakMV_3jnilAAAA"})))
        );
        assert_eq!(
            decode("4{\"message\":\"Not authorized\"}"),
            Packet::connect_error("/", json!({"message": "Not authorized"}))
        );
        assert_eq!(
            decode("4/admin,\"Not authorized\""),
            Packet::connect_error("/admin", json!("Not authorized"))
        );
        assert_eq!(
            decode("2/admin,[\"bar\"]"),
            Packet::event("/admin", json!(["bar"]), vec![], None)
        );
        assert_eq!(
            decode("2[\"hello\",1]"),
            Packet::event("/", json!(["hello", 1]), vec![], None)
        );
        assert_eq!(
            decode("212[\"foo\"]"),
            Packet::event("/", json!(["foo"]), vec![], Some(12))
        );
        assert_eq!(
            decode("3/admin,13[\"bar\"]"),
            Packet::ack("/admin", 13, json!(["bar"]), vec![])
        );
        assert_eq!(
            decode("3/admin,456[]"),
            Packet::ack("/admin", 456, json!([]), vec![])
        );
        assert_eq!(decode("1"), Packet::disconnect("/"));
        assert_eq!(decode("1/admin,"), Packet::disconnect("/admin"));
        assert_eq!(
            decode("0/admin?token=1234,").nsp,
            "/admin?token=1234".to_owned()
        );

        let (packet, count) =
            Packet::decode_text("61-/admin,456[{\"_placeholder\":true,\"num\":0}]").unwrap();
        assert_eq!(count, 1);
        assert_eq!(packet.kind, PacketType::BinaryAck);
        assert_eq!(packet.nsp, "/admin");
        assert_eq!(packet.id, Some(456));
        assert_eq!(packet.data, Some(json!([placeholder(0)])));
        assert!(packet.attachments.is_empty());

        let (packet, count) = Packet::decode_text(
            "52-/admin,[\"baz\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]",
        )
        .unwrap();
        assert_eq!(count, 2);
        assert_eq!(packet.kind, PacketType::BinaryEvent);
        assert_eq!(packet.event_name(), Some("baz"));
        assert_eq!(placeholder_nums(packet.data.as_ref().unwrap()), vec![0, 1]);
    }

    #[test]
    fn constructors_pick_binary_types_and_encode_counts() {
        let one = vec![Bytes::from_static(b"\x01\x02\x03\x04")];
        let event = Packet::event("/", json!(["baz", placeholder(0)]), one.clone(), None);
        assert_eq!(event.kind, PacketType::BinaryEvent);
        assert_eq!(
            event.encode(),
            "51-[\"baz\",{\"_placeholder\":true,\"num\":0}]"
        );
        let ack = Packet::ack("/", 15, json!(["bar", placeholder(0)]), one);
        assert_eq!(ack.kind, PacketType::BinaryAck);
        assert_eq!(
            ack.encode(),
            "61-15[\"bar\",{\"_placeholder\":true,\"num\":0}]"
        );
        assert_eq!(
            Packet::event("/", json!(["foo"]), vec![], None).kind,
            PacketType::Event
        );
        assert_eq!(Packet::ack("/", 1, json!([]), vec![]).kind, PacketType::Ack);
        assert_eq!(Packet::disconnect("").encode(), "1");
    }

    #[test]
    fn lenient_forms_decode_and_encode_canonically() {
        // Namespace running to the end of the text, without a comma.
        assert_eq!(decode("1/admin"), Packet::disconnect("/admin"));
        assert_eq!(decode("1/admin").encode(), "1/admin,");
        // The main namespace written out.
        assert_eq!(decode("0/,"), Packet::connect("/", None));
        // Leading zeros in the ack id.
        assert_eq!(decode("2007[\"a\"]").encode(), "27[\"a\"]");
        // Whitespace inside the JSON.
        assert_eq!(decode("2 [ \"a\" , 1 ]").encode(), "2[\"a\",1]");
        // The largest ack id.
        assert_eq!(decode("318446744073709551615[]").id, Some(u64::MAX));
        // Zero attachments on a binary type.
        assert_eq!(Packet::decode_text("50-[\"a\"]").unwrap().1, 0);
        // A refusal without a reason, and a disconnect with a stray payload.
        assert_eq!(decode("4/admin,").data, None);
        assert_eq!(decode("1{\"x\":1}").kind, PacketType::Disconnect);
        // Reserved names are the socket layer's business, not the codec's.
        assert_eq!(decode("2[\"connect\"]").event_name(), Some("connect"));
    }

    #[test]
    fn empty_and_unknown_types() {
        assert_eq!(err(""), ProtocolError::Empty);
        assert_eq!(err("7"), ProtocolError::UnknownPacketType("7".into()));
        assert_eq!(
            err("x[\"a\"]"),
            ProtocolError::UnknownPacketType("x".into())
        );
        assert_eq!(err("é"), ProtocolError::UnknownPacketType("é".into()));
        assert_eq!(err("{}"), ProtocolError::UnknownPacketType("{".into()));
    }

    #[test]
    fn malformed_attachment_counts() {
        assert!(is_invalid_packet(&err("5-[\"a\"]")));
        assert!(is_invalid_packet(&err("5x-[\"a\"]")));
        assert!(is_invalid_packet(&err("51x-[\"a\"]")));
        assert!(is_invalid_packet(&err("5[\"a\"]")));
        assert!(is_invalid_packet(&err("51")));
        assert!(is_invalid_packet(&err("5")));
        assert!(is_invalid_packet(&err("6/admin,1-[]")));
        // Too many digits to be a real count, and more than u64 can hold.
        assert!(is_invalid_packet(&err("599999999999-[\"a\"]")));
        assert!(is_invalid_packet(&err(&format!(
            "5{}-[\"a\"]",
            "9".repeat(10_000)
        ))));
        // Ten digits are still a count; the decoder's limit rejects it.
        let count = Packet::decode_text("59999999999-[\"a\"]").unwrap().1;
        assert_eq!(u64::try_from(count).unwrap(), 9_999_999_999);
    }

    #[test]
    fn ack_id_overflow() {
        assert!(is_invalid_packet(&err("318446744073709551616[]")));
        assert!(is_invalid_packet(&err(&format!(
            "2/admin,{}[\"a\"]",
            "1".repeat(5_000)
        ))));
    }

    #[test]
    fn bad_json_is_invalid_json() {
        for text in [
            "2[\"a\"",
            "2[\"a\"]]",
            "2[\"a\",]",
            "0{sid}",
            "2/admin,x",
            "2,[\"a\"]",
            "4\"unterminated",
            "2[\"\\ud800\"]",
        ] {
            assert!(
                matches!(err(text), ProtocolError::InvalidJson(_)),
                "{text}: {:?}",
                err(text)
            );
        }
        // serde_json's depth limit turns deep nesting into an error, not a stack overflow.
        let deep = format!("2[\"a\",{}{}]", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(err(&deep), ProtocolError::InvalidJson(_)));
    }

    #[test]
    fn wrong_payload_shapes() {
        for text in [
            "2",
            "2{\"a\":1}",
            "2\"a\"",
            "2[]",
            "2[1]",
            "2[null,\"a\"]",
            "2[[\"a\"]]",
            "51-{}",
            "3",
            "3{}",
            "312\"a\"",
            "61-",
            "0[]",
            "0\"x\"",
            "0/admin,true",
            "4[]",
            "4true",
            "4/admin,null",
        ] {
            assert!(is_invalid_packet(&err(text)), "{text}: {:?}", err(text));
        }
    }

    #[test]
    fn placeholder_helpers() {
        assert_eq!(placeholder_num(&placeholder(3)), Some(3));
        assert_eq!(
            placeholder_num(&json!({"_placeholder": true, "num": -1})),
            None
        );
        assert_eq!(
            placeholder_num(&json!({"_placeholder": true, "num": 1.5})),
            None
        );
        assert_eq!(
            placeholder_num(&json!({"_placeholder": "true", "num": 0})),
            None
        );
        assert_eq!(
            placeholder_num(&json!({"_placeholder": true, "num": 0, "x": 1})),
            None
        );
        let data = json!(["e", {"a": [placeholder(2), {"b": placeholder(0)}]}, placeholder(1)]);
        assert_eq!(placeholder_nums(&data), vec![2, 0, 1]);
        assert_eq!(check_placeholders(&data, 3), Ok(()));
        assert_eq!(
            check_placeholders(&data, 2),
            Err(ProtocolError::BadPlaceholder { num: 2, count: 2 })
        );
        let huge = json!([{"_placeholder": true, "num": u64::MAX}]);
        assert_eq!(
            check_placeholders(&huge, 1),
            Err(ProtocolError::BadPlaceholder {
                num: u64::MAX,
                count: 1
            })
        );
    }

    #[test]
    fn packet_type_digits() {
        for c in '0'..='6' {
            assert_eq!(PacketType::from_char(c).unwrap().as_char(), c);
        }
        assert_eq!(PacketType::from_char('7'), None);
        assert!(is_reserved_event("disconnecting"));
        assert!(!is_reserved_event("message"));
    }
}
