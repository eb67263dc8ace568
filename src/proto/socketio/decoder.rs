//! Reassembles binary packets from their text header and the attachments that follow it.

use bytes::Bytes;

use super::Packet;
use crate::payload::{JsonByte, JsonStrings};
use crate::proto::ProtocolError;

/// Attachments reserved up front at most, whatever count the header announces: the count comes
/// from the network, so memory grows only as attachments actually arrive.
const PREALLOCATE_MAX: usize = 16;

/// What one JSON value costs decoded, at least: the size of a `serde_json::Value`.
const VALUE_COST: usize = std::mem::size_of::<serde_json::Value>();

/// Counts a JSON text's values from its structure, without parsing: every `[`, `{` and `,`
/// outside strings, plus one. An upper bound for arrays and objects, close for flat ones, and
/// a linear scan that costs nothing next to the parse it may save.
pub fn json_value_count(text: &str) -> usize {
    let mut count = 1usize;
    let mut strings = JsonStrings::default();
    for byte in text.bytes() {
        if strings.step(byte) == JsonByte::Outside && matches!(byte, b'[' | b'{' | b',') {
            count = count.saturating_add(1);
        }
    }
    count
}

/// Stateful Socket.IO decoder: text packets in, complete packets out.
#[derive(Debug)]
pub struct Decoder {
    max_attachments: usize,
    /// Most bytes one packet may carry, its text and every attachment together.
    max_bytes: usize,
    /// Bytes of the pending packet so far.
    pending_bytes: usize,
    /// Bytes of the last packet that came out (text and attachments).
    completed_bytes: usize,
    /// A binary packet and the number of attachments it announced.
    pending: Option<(Packet, usize)>,
    /// EVENTs and ACKs without attachments keep their arguments as JSON text
    /// ([`lazy_args`](Self::lazy_args)).
    lazy: bool,
}

impl Decoder {
    /// A decoder that refuses packets announcing more than `max_attachments` attachments.
    pub fn new(max_attachments: usize) -> Decoder {
        Decoder {
            max_attachments,
            max_bytes: usize::MAX,
            pending_bytes: 0,
            completed_bytes: 0,
            pending: None,
            lazy: false,
        }
    }

    /// Refuses a packet whose text and attachments together exceed `max_bytes`
    /// ([`ProtocolError::PayloadTooLarge`]): each frame being under the transport's limit is not
    /// enough when a packet announces a thousand attachments. Also refuses a packet whose JSON
    /// would take more than `max_bytes` decoded ([`ProtocolError::JsonTooLarge`]), at
    /// 32 bytes (a `serde_json::Value`) per value.
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Decoder {
        self.max_bytes = max_bytes;
        self
    }

    /// EVENTs and ACKs without attachments fed through
    /// [`decode_text_owned`](Self::decode_text_owned) come out with their arguments still JSON
    /// text, in the packet's `lazy` field instead of `data`: the client reads them that way, so
    /// that a burst costs a syntax check per event on the connection's task rather than a tree
    /// of values (see `payload/raw.rs`). Everything else, and every packet the general decoding
    /// would refuse, decodes as before.
    pub(crate) fn lazy_args(mut self) -> Decoder {
        self.lazy = true;
        self
    }

    /// Feeds a text message. Returns the packet when complete (`None` while a binary packet
    /// waits for attachments). A text message while attachments are pending is an error.
    ///
    /// After any error the decoder is back in its initial state, ready for the next packet.
    pub fn decode_text(&mut self, text: &str) -> Result<Option<Packet>, ProtocolError> {
        self.check_text(text)?;
        self.decode_checked(text)
    }

    /// [`decode_text`](Self::decode_text) of a message the decoder may keep: with
    /// [`lazy_args`](Self::lazy_args), an EVENT's or ACK's arguments stay in `text` itself.
    pub(crate) fn decode_text_owned(
        &mut self,
        text: String,
    ) -> Result<Option<Packet>, ProtocolError> {
        self.check_text(&text)?;
        if !self.lazy {
            return self.decode_checked(&text);
        }
        let size = text.len();
        match Packet::decode_text_lazy(text) {
            Ok(packet) => {
                self.completed_bytes = size;
                Ok(Some(packet))
            }
            Err(text) => self.decode_checked(&text),
        }
    }

    /// Refuses a text message while attachments are pending, or one too large decoded.
    fn check_text(&mut self, text: &str) -> Result<(), ProtocolError> {
        if let Some((packet, expected)) = self.pending.take() {
            return Err(ProtocolError::AttachmentsMissing {
                missing: expected.saturating_sub(packet.attachments.len()),
            });
        }
        // Decoded JSON can be 16 times its text (`[0,0,…]`): the limit is on that cost, not only
        // on the bytes received. Each value takes a byte at least: a text too short to exceed
        // the limit however it nests is not scanned.
        let most = text.len().saturating_add(1).saturating_mul(VALUE_COST);
        let values = if most > self.max_bytes {
            json_value_count(text)
        } else {
            0
        };
        let cost = values.saturating_mul(VALUE_COST);
        if cost > self.max_bytes {
            return Err(ProtocolError::JsonTooLarge {
                values,
                cost,
                max: self.max_bytes,
            });
        }
        Ok(())
    }

    /// Decodes a text message [`check_text`](Self::check_text) let through.
    fn decode_checked(&mut self, text: &str) -> Result<Option<Packet>, ProtocolError> {
        let (mut packet, count) = Packet::decode_text(text)?;
        self.completed_bytes = text.len();
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
        self.pending_bytes = text.len();
        Ok(None)
    }

    /// Feeds a binary message (an attachment). An attachment nobody waits for is an error.
    ///
    /// With the last attachment the packet's placeholders are checked against the attachments
    /// ([`ProtocolError::BadPlaceholder`]); a packet failing that is dropped.
    pub fn decode_binary(&mut self, data: Bytes) -> Result<Option<Packet>, ProtocolError> {
        let (mut packet, expected) = self
            .pending
            .take()
            .ok_or(ProtocolError::UnexpectedAttachment)?;
        let size = self.pending_bytes.saturating_add(data.len());
        if size > self.max_bytes {
            self.pending_bytes = 0;
            return Err(ProtocolError::PayloadTooLarge {
                size,
                max: self.max_bytes,
            });
        }
        self.pending_bytes = size;
        self.completed_bytes = size;
        packet.attachments.push(data);
        if packet.attachments.len() < expected {
            self.pending = Some((packet, expected));
            return Ok(None);
        }
        packet.check_placeholders()?;
        Ok(Some(packet))
    }

    /// Bytes on the wire of the last packet returned, its text and attachments together: what
    /// it weighs in the application's queue.
    pub fn last_packet_bytes(&self) -> usize {
        self.completed_bytes
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
        self.pending_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::socketio::{placeholder, PacketType};
    use serde_json::{json, Value};

    /// An EVENT's or ACK's name and arguments, whichever way it was decoded.
    fn name_and_args(packet: Packet) -> (String, Option<u64>, Option<String>, crate::Args) {
        let (nsp, id) = (packet.nsp.clone(), packet.id);
        match packet.lazy {
            Some(lazy) => (nsp, id, lazy.name, lazy.args),
            None if packet.kind == PacketType::Event => {
                let (name, values) = crate::proto::socketio::split_event(packet.data).unwrap();
                (nsp, id, Some(name), crate::Args::from_wire(values, vec![]))
            }
            None => {
                let values = crate::proto::socketio::ack_args(packet.data);
                (nsp, id, None, crate::Args::from_wire(values, vec![]))
            }
        }
    }

    #[test]
    fn lazy_arguments_decode_and_refuse_exactly_as_values_do() {
        let cases = [
            r#"2["item",7,"xxxx"]"#,
            r#"2/chat,12["msg",{"a":[1,{"b":null}]},-1.5,true]"#,
            r#"2["only"]"#,
            r#"31["ok"]"#,
            r#"3/admin,9[]"#,
            r#"2["e","\u00e9"]"#,
            r#"2["e",1e3]"#,
            r#"2["e","a\"b\\c"]"#,
            "2[\"e\" , 1 ,\n\"x\" ]",
            r#"2["e",1"#,
            r#"2["e",1] "#,
            r#"2["e",1]x"#,
            r#"2[1,2]"#,
            r#"2[]"#,
            r#"2{}"#,
            r#"2"#,
            r#"3["no id"]"#,
            r#"3"#,
            r#"2["e","\ud800"]"#,
            r#"2["e",1e999]"#,
            r#"2["e",{"_placeholder":true,"num":0}]"#,
            r#"0{"sid":"x"}"#,
            r#"1"#,
            r#"2["e",01]"#,
            r#"2["e",[1,]]"#,
            r#"2["e","a\x"]"#,
            "2[\"e\",\"a\u{1}b\"]",
            r#"2["e",{1:2}]"#,
            r#"2["e",tru]"#,
            r#"2["e",-]"#,
            r#"2["e",1.]"#,
            r#"2["e","\\u0041"]"#,
            r#"2["e\"x\/y",1]"#,
            r#"2["e",1.5,-0,0.25]"#,
            r#"2["e",{"a":1,"a":2}]"#,
            r#"2["é",["日本"],{"ü":"x"}]"#,
            r#"2["e",NaN]"#,
            r#"2["e",[[[[]]]],{}]"#,
        ];
        for text in cases {
            let lazy = Decoder::new(4)
                .lazy_args()
                .decode_text_owned(text.to_owned());
            let plain = Decoder::new(4).decode_text(text);
            match (lazy, plain) {
                (Ok(Some(lazy)), Ok(Some(plain)))
                    if matches!(plain.kind, PacketType::Event | PacketType::Ack) =>
                {
                    assert_eq!(lazy.kind, plain.kind, "{text}");
                    let (lazy, plain) = (name_and_args(lazy), name_and_args(plain));
                    assert_eq!(lazy, plain, "{text}");
                    let (args, plain) = (&lazy.3, &plain.3);
                    for i in 0..=args.len() {
                        assert_eq!(
                            args.get::<Value>(i).map_err(|e| e.to_string()),
                            plain.get::<Value>(i).map_err(|e| e.to_string()),
                            "{text} argument {i}"
                        );
                        assert_eq!(
                            args.get::<u64>(i).map_err(|e| e.to_string()),
                            plain.get::<u64>(i).map_err(|e| e.to_string()),
                            "{text} argument {i} as u64"
                        );
                    }
                }
                (lazy, plain) => assert_eq!(lazy, plain, "{text}"),
            }
        }
    }

    fn att(n: u8) -> Bytes {
        Bytes::from(vec![n; usize::from(n) + 1])
    }

    #[test]
    fn json_values_are_counted_outside_strings() {
        assert_eq!(json_value_count(r#"2["e"]"#), 2);
        assert_eq!(json_value_count(r#"2["e",[],[],{}]"#), 8);
        assert_eq!(json_value_count(r#"2["a,b[c{\"d,",1]"#), 3);
        let flood = format!("2[{}]", vec!["[]"; 1000].join(","));
        assert!(json_value_count(&flood) >= 2000);
    }

    #[test]
    fn json_that_would_decode_over_the_limit_is_refused_before_parsing() {
        let mut d = Decoder::new(10).with_max_bytes(64 * 1024);
        let flood = format!(r#"2["e",{}]"#, vec!["0"; 10_000].join(","));
        assert!(matches!(
            d.decode_text(&flood),
            Err(ProtocolError::JsonTooLarge { .. })
        ));
        let fine = format!(r#"2["e",{}]"#, vec!["0"; 1_000].join(","));
        assert!(d.decode_text(&fine).unwrap().is_some());
    }

    #[test]
    fn a_packet_over_its_byte_limit_in_attachments_is_refused() {
        let mut d = Decoder::new(1000).with_max_bytes(100_000);
        let header = format!(r#"51000-["e",{}]"#, placeholder_list(1000));
        assert_eq!(d.decode_text(&header), Ok(None));
        let mut result = Ok(None);
        for _ in 0..10 {
            result = d.decode_binary(Bytes::from(vec![0u8; 40_000]));
            if result.is_err() {
                break;
            }
        }
        assert!(
            matches!(result, Err(ProtocolError::PayloadTooLarge { .. })),
            "{result:?}"
        );
        // Back to the initial state: the next packet decodes.
        assert!(d.decode_text(r#"2["ok"]"#).unwrap().is_some());
    }

    fn placeholder_list(n: usize) -> String {
        (0..n)
            .map(|i| format!(r#"{{"_placeholder":true,"num":{i}}}"#))
            .collect::<Vec<_>>()
            .join(",")
    }

    #[test]
    fn plain_packets_come_out_at_once() {
        let mut d = Decoder::new(4);
        let p = d.decode_text("2/admin,1[\"tellme\"]").unwrap().unwrap();
        assert_eq!(
            p,
            Packet::event("/admin", json!(["tellme"]), vec![], Some(1))
        );
        let p = d.decode_text("0").unwrap().unwrap();
        assert_eq!(p, Packet::connect("/", None));
        assert_eq!(d.missing_attachments(), 0);
    }

    #[test]
    fn spec_binary_examples_reassemble_and_re_encode() {
        let mut d = Decoder::new(4);
        for (text, count) in [
            ("51-[\"baz\",{\"_placeholder\":true,\"num\":0}]", 1u8),
            (
                "52-/admin,[\"baz\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]",
                2,
            ),
            ("61-15[\"bar\",{\"_placeholder\":true,\"num\":0}]", 1),
            ("61-/admin,1[{\"_placeholder\":true,\"num\":0}]", 1),
            (
                "51-/admin,456[\"project:delete\",{\"_placeholder\":true,\"num\":0}]",
                1,
            ),
        ] {
            assert_eq!(d.decode_text(text).unwrap(), None);
            for i in 0..count - 1 {
                assert_eq!(d.decode_binary(att(i)).unwrap(), None);
                assert_eq!(d.missing_attachments(), usize::from(count - 1 - i));
            }
            let p = d.decode_binary(att(count - 1)).unwrap().unwrap();
            assert_eq!(p.attachments, (0..count).map(att).collect::<Vec<_>>());
            assert_eq!(p.encode(), text);
            assert_eq!(d.missing_attachments(), 0);
        }
    }

    #[test]
    fn binary_with_zero_attachments_comes_out_at_once() {
        let mut d = Decoder::new(4);
        let p = d.decode_text("50-[\"a\",1]").unwrap().unwrap();
        assert_eq!(p.kind, PacketType::BinaryEvent);
        assert!(p.attachments.is_empty());
        // With nothing to refer to, any placeholder is out of range.
        assert_eq!(
            d.decode_text("60-3[{\"_placeholder\":true,\"num\":0}]"),
            Err(ProtocolError::BadPlaceholder { num: 0, count: 0 })
        );
    }

    #[test]
    fn several_attachments_nested_deep() {
        // Placeholders at several depths, out of order, inside arrays and objects.
        let mut inner = json!({"leaf": placeholder(0), "list": [1, placeholder(3)]});
        for depth in 0..100 {
            inner = if depth % 2 == 0 {
                json!([inner, depth])
            } else {
                json!({ "k": inner })
            };
        }
        let data = json!(["upload", {"a": placeholder(2)}, inner, [[placeholder(1)]]]);
        let packet = Packet::event("/files", data, (0..4).map(att).collect(), Some(7));
        let text = packet.encode();
        assert!(text.starts_with("54-/files,7[\"upload\""));

        let mut d = Decoder::new(8);
        assert_eq!(d.decode_text(&text).unwrap(), None);
        for i in 0..3 {
            assert_eq!(d.decode_binary(att(i)).unwrap(), None);
        }
        let got = d.decode_binary(att(3)).unwrap().unwrap();
        assert_eq!(got, packet);

        // The same packet with one attachment fewer names an attachment that does not exist.
        let short = Packet::event(
            "/files",
            packet.data.clone().unwrap(),
            (0..3).map(att).collect(),
            Some(7),
        );
        assert_eq!(d.decode_text(&short.encode()).unwrap(), None);
        for i in 0..2 {
            assert_eq!(d.decode_binary(att(i)).unwrap(), None);
        }
        assert_eq!(
            d.decode_binary(att(2)),
            Err(ProtocolError::BadPlaceholder { num: 3, count: 3 })
        );
        // The failed packet is gone; the decoder takes the next one.
        assert_eq!(
            d.decode_binary(att(0)),
            Err(ProtocolError::UnexpectedAttachment)
        );
    }

    #[test]
    fn placeholder_check_survives_deep_and_wide_data() {
        // Deep nesting that serde_json accepts (under its 128 limit) and a wide array.
        let deep = format!(
            "51-[\"e\",{}{{\"_placeholder\":true,\"num\":1}}{}]",
            "[".repeat(120),
            "]".repeat(120)
        );
        let mut d = Decoder::new(4);
        assert_eq!(d.decode_text(&deep).unwrap(), None);
        assert_eq!(
            d.decode_binary(att(0)),
            Err(ProtocolError::BadPlaceholder { num: 1, count: 1 })
        );
        let wide = format!(
            "51-[\"e\",{}{{\"_placeholder\":true,\"num\":0}}]",
            "{\"x\":[1,2]},".repeat(10_000)
        );
        assert_eq!(d.decode_text(&wide).unwrap(), None);
        assert!(d.decode_binary(att(0)).unwrap().is_some());
    }

    #[test]
    fn objects_not_exactly_placeholders_are_plain_data() {
        let mut d = Decoder::new(4);
        let text = "51-[\"e\",{\"_placeholder\":true,\"num\":5,\"extra\":1},\
                    {\"_placeholder\":true,\"num\":-1},{\"_placeholder\":false,\"num\":9},\
                    {\"_placeholder\":true,\"num\":0}]";
        assert_eq!(d.decode_text(text).unwrap(), None);
        let p = d.decode_binary(att(0)).unwrap().unwrap();
        assert_eq!(p.attachments.len(), 1);
        // Plain (non-binary) packets are not checked: placeholders only mean something in
        // binary packets.
        assert!(d
            .decode_text("2[\"e\",{\"_placeholder\":true,\"num\":3}]")
            .unwrap()
            .is_some());
    }

    #[test]
    fn attachment_without_packet() {
        let mut d = Decoder::new(4);
        assert_eq!(
            d.decode_binary(att(0)),
            Err(ProtocolError::UnexpectedAttachment)
        );
        // A complete binary packet leaves nothing waiting.
        d.decode_text("51-[\"a\",{\"_placeholder\":true,\"num\":0}]")
            .unwrap();
        assert!(d.decode_binary(att(0)).unwrap().is_some());
        assert_eq!(
            d.decode_binary(att(1)),
            Err(ProtocolError::UnexpectedAttachment)
        );
    }

    #[test]
    fn text_during_pending_attachments_resets() {
        let mut d = Decoder::new(4);
        let text = "53-[\"a\",{\"_placeholder\":true,\"num\":0}]";
        assert_eq!(d.decode_text(text).unwrap(), None);
        assert_eq!(d.decode_binary(att(0)).unwrap(), None);
        assert_eq!(
            d.decode_text("2[\"b\"]"),
            Err(ProtocolError::AttachmentsMissing { missing: 2 })
        );
        assert_eq!(d.missing_attachments(), 0);
        assert_eq!(
            d.decode_binary(att(1)),
            Err(ProtocolError::UnexpectedAttachment)
        );
        assert!(d.decode_text("2[\"b\"]").unwrap().is_some());

        assert_eq!(d.decode_text(text).unwrap(), None);
        d.reset();
        assert!(d.decode_text("2[\"b\"]").unwrap().is_some());
    }

    #[test]
    fn too_many_attachments() {
        let mut d = Decoder::new(10);
        assert_eq!(
            d.decode_text("511-[\"a\"]"),
            Err(ProtocolError::TooManyAttachments { count: 11, max: 10 })
        );
        assert_eq!(
            d.decode_text("69999999999-1[]"),
            Err(ProtocolError::TooManyAttachments {
                count: 9_999_999_999,
                max: 10
            })
        );
        assert!(matches!(
            d.decode_text("5184467440737095516160-[\"a\"]"),
            Err(ProtocolError::InvalidPacket(_))
        ));
        // At the limit is fine.
        assert_eq!(d.decode_text("510-[\"a\"]").unwrap(), None);
        // Not checked for packets that cannot carry attachments.
        assert!(Decoder::new(0).decode_text("2[\"a\"]").unwrap().is_some());
    }

    #[test]
    fn errors_are_typed() {
        let mut d = Decoder::new(4);
        assert_eq!(d.decode_text(""), Err(ProtocolError::Empty));
        assert_eq!(
            d.decode_text("9"),
            Err(ProtocolError::UnknownPacketType("9".into()))
        );
        assert!(matches!(
            d.decode_text("2[\"a\""),
            Err(ProtocolError::InvalidJson(_))
        ));
        assert!(matches!(
            d.decode_text("2{}"),
            Err(ProtocolError::InvalidPacket(_))
        ));
        assert!(matches!(
            d.decode_text("2[2]"),
            Err(ProtocolError::InvalidPacket(_))
        ));
        assert!(matches!(
            d.decode_text("5-[\"a\"]"),
            Err(ProtocolError::InvalidPacket(_))
        ));
        assert!(matches!(
            d.decode_text("5x-[\"a\"]"),
            Err(ProtocolError::InvalidPacket(_))
        ));
    }

    /// xorshift64*: deterministic, so a failure reproduces exactly.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % u64::try_from(n).unwrap()).unwrap()
        }
    }

    /// Whether `p` survives encode → decode unchanged. A DISCONNECT with a stray numeric payload
    /// does not: its digits would read back as an ack id, and the codec never produces one.
    fn round_trips(p: &Packet) -> bool {
        !(p.kind == PacketType::Disconnect && matches!(p.data, Some(Value::Number(_))))
    }

    #[test]
    fn mutated_input_never_panics() {
        const SEEDS: &[&str] = &[
            "0",
            "0/admin,{\"sid\":\"oSO0OpakMV_3jnilAAAA\"}",
            "0/admin?token=1234,",
            "1/admin,",
            "2[\"hello\",1]",
            "2/admin,456[\"project:delete\",123]",
            "3/admin,456[]",
            "4{\"message\":\"Not authorized\"}",
            "4/admin,\"Not authorized\"",
            "51-[\"baz\",{\"_placeholder\":true,\"num\":0}]",
            "52-/admin,[\"baz\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]",
            "61-/admin,1[{\"_placeholder\":true,\"num\":0}]",
            "212[\"foo\",{\"a\":[1.5,-2e3,null,true,\"\\u00e9\"]}]",
        ];
        const ALPHABET: &[char] = &[
            '0', '1', '2', '3', '5', '6', '9', '-', '/', ',', '[', ']', '{', '}', '"', ':', '\\',
            '_', 'n', 'u', 'm', 't', 'e', ' ', '.', 'é', '\u{0}', '\u{1e}', '😀',
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut decoded = 0usize;
        for _ in 0..30_000 {
            let mut chars: Vec<char> = SEEDS[rng.below(SEEDS.len())].chars().collect();
            for _ in 0..=rng.below(4) {
                let at = rng.below(chars.len() + 1);
                let c = ALPHABET[rng.below(ALPHABET.len())];
                match rng.below(5) {
                    0 => chars.insert(at, c),
                    1 if at < chars.len() => chars[at] = c,
                    2 if at < chars.len() => {
                        chars.remove(at);
                    }
                    3 => chars.truncate(at),
                    _ => {
                        let from = rng.below(chars.len() + 1);
                        let segment: Vec<char> = chars[from.min(at)..from.max(at)].to_vec();
                        chars.splice(at..at, segment);
                    }
                }
            }
            let text: String = chars.into_iter().collect();

            let mut d = Decoder::new(3);
            if rng.below(8) == 0 {
                let _ = d.decode_binary(att(0));
            }
            let mut result = d.decode_text(&text);
            let mut fed = 0;
            while matches!(result, Ok(None)) && fed < 4 {
                result = d.decode_binary(att(fed));
                fed += 1;
            }
            if rng.below(4) == 0 {
                let _ = d.decode_text(&text);
            }
            if let Ok(Some(packet)) = result {
                decoded += 1;
                if round_trips(&packet) {
                    let mut again = Decoder::new(3);
                    let mut back = again.decode_text(&packet.encode());
                    for a in &packet.attachments {
                        back = again.decode_binary(a.clone());
                    }
                    assert_eq!(back, Ok(Some(packet)), "round trip of {text:?}");
                }
            }
        }
        // The loop must exercise the success path too, not only rejections.
        assert!(decoded > 1_000, "only {decoded} mutants decoded");
    }
}
