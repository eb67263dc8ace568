//! Packets, handshakes and payloads: spec vectors, round trips, malformed input.

use super::*;

#[test]
fn query_values() {
    assert_eq!(V3.query_value(), "3");
    assert_eq!(V4.query_value(), "4");
    assert_eq!(EngineVersion::default(), V4);
}

#[test]
fn spec_open_packet_decodes() {
    let packet = Packet::decode_text(SPEC_OPEN_V4).unwrap();
    let expected = Handshake {
        sid: "lv_VI97HAXpY6yYWAAAC".to_owned(),
        upgrades: vec!["websocket".to_owned()],
        ping_interval: ms(25_000),
        ping_timeout: ms(20_000),
        max_payload: Some(1_000_000),
    };
    assert_eq!(packet, Packet::Open(expected));
    assert_eq!(packet.encode_text(), SPEC_OPEN_V4);
}

#[test]
fn spec_v3_open_packet_has_no_max_payload() {
    let Packet::Open(handshake) = Packet::decode_text(SPEC_OPEN_V3).unwrap() else {
        panic!("not an open packet");
    };
    assert_eq!(handshake.max_payload, None);
    assert_eq!(handshake.ping_timeout, ms(5_000));
    assert_eq!(format!("0{}", handshake.to_json()), SPEC_OPEN_V3);
}

#[test]
fn spec_text_packets() {
    let vectors: Vec<(&str, Packet)> = vec![
        ("1", Packet::Close),
        ("2", Packet::Ping(String::new())),
        ("3", Packet::Pong(String::new())),
        ("2probe", Packet::Ping("probe".to_owned())),
        ("3probe", Packet::Pong("probe".to_owned())),
        ("4hey", text("hey")),
        ("4hello", text("hello")),
        ("4HelloWorld", text("HelloWorld")),
        ("4€", text("€")),
        ("4", text("")),
        ("5", Packet::Upgrade),
        ("6", Packet::Noop),
    ];
    for (wire, packet) in vectors {
        assert_eq!(
            Packet::decode_text(wire).unwrap(),
            packet,
            "decoding {wire:?}"
        );
        assert_eq!(packet.encode_text(), wire, "encoding {packet:?}");
        for version in [V3, V4] {
            assert_eq!(packet.to_frame(version), Frame::Text(wire.to_owned()));
            assert_eq!(
                Packet::from_frame(version, Frame::Text(wire.to_owned())).unwrap(),
                packet
            );
        }
    }
}

#[test]
fn data_after_dataless_types_is_ignored() {
    assert_eq!(Packet::decode_text("1x").unwrap(), Packet::Close);
    assert_eq!(Packet::decode_text("5x").unwrap(), Packet::Upgrade);
    assert_eq!(Packet::decode_text("6x").unwrap(), Packet::Noop);
}

#[test]
fn binary_message_text_form_is_b_base64() {
    assert_eq!(binary(&[1, 2, 3, 4]).encode_text(), "bAQIDBA==");
    assert_eq!(binary(&[1, 2, 3]).encode_text(), "bAQID");
    assert_eq!(binary(&[]).encode_text(), "b");
}

#[test]
fn spec_v4_binary_frame_is_raw_bytes() {
    let packet = binary(&[1, 2, 3, 4]);
    let frame = Frame::Binary(Bytes::from_static(&[1, 2, 3, 4]));
    assert_eq!(packet.to_frame(V4), frame);
    assert_eq!(Packet::from_frame(V4, frame).unwrap(), packet);
    // An empty binary message is legal in v4.
    assert_eq!(
        Packet::from_frame(V4, Frame::Binary(Bytes::new())).unwrap(),
        binary(&[])
    );
}

#[test]
fn spec_v3_binary_frame_leads_with_type_byte() {
    // The v3 spec's example `4|0|1|2|3|4|5`: a message carrying bytes 0..=5.
    let frame = Frame::Binary(Bytes::from_static(&[4, 0, 1, 2, 3, 4, 5]));
    let packet = binary(&[0, 1, 2, 3, 4, 5]);
    assert_eq!(Packet::from_frame(V3, frame.clone()).unwrap(), packet);
    assert_eq!(packet.to_frame(V3), frame);
    // The engine.io-parser changelog's v3 binary packet: <Buffer 04 01 02 03>.
    assert_eq!(
        binary(&[1, 2, 3]).to_frame(V3),
        Frame::Binary(Bytes::from_static(&[4, 1, 2, 3]))
    );
    assert_eq!(
        Packet::from_frame(V3, Frame::Binary(Bytes::from_static(&[4]))).unwrap(),
        binary(&[])
    );
}

#[test]
fn bad_frames_are_typed_errors() {
    assert_eq!(
        Packet::from_frame(V3, Frame::Binary(Bytes::new())),
        Err(ProtocolError::Empty)
    );
    assert!(matches!(
        Packet::from_frame(V3, Frame::Binary(Bytes::from_static(&[2, 1]))),
        Err(ProtocolError::UnknownPacketType(_))
    ));
    // The ASCII digit is not the v3 binary type byte.
    assert!(matches!(
        Packet::from_frame(V3, Frame::Binary(Bytes::from_static(b"4abc"))),
        Err(ProtocolError::UnknownPacketType(_))
    ));
    assert_eq!(
        Packet::from_frame(V4, Frame::Text(String::new())),
        Err(ProtocolError::Empty)
    );
}

#[test]
fn bad_text_packets_are_typed_errors() {
    assert_eq!(Packet::decode_text(""), Err(ProtocolError::Empty));
    for wire in ["7", "9x", "x", "bAQID", "€4", "😀", " 4hello", "-1"] {
        assert!(
            matches!(
                Packet::decode_text(wire),
                Err(ProtocolError::UnknownPacketType(_))
            ),
            "{wire:?}"
        );
    }
    assert!(matches!(
        Packet::decode_text("0{"),
        Err(ProtocolError::InvalidJson(_))
    ));
    assert!(matches!(
        Packet::decode_text("0"),
        Err(ProtocolError::InvalidJson(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// Handshake
// ---------------------------------------------------------------------------------------------

#[test]
fn handshake_round_trips() {
    for hs in [
        handshake(25_000, 20_000),
        Handshake {
            upgrades: vec![],
            max_payload: None,
            sid: "quote\"back\\slash€".to_owned(),
            ..handshake(1, 2)
        },
    ] {
        assert_eq!(Handshake::parse(&hs.to_json()).unwrap(), hs);
    }
}

#[test]
fn handshake_missing_or_mistyped_fields() {
    let cases = [
        r#"{"upgrades":[],"pingInterval":1,"pingTimeout":1}"#,
        r#"{"sid":1,"upgrades":[],"pingInterval":1,"pingTimeout":1}"#,
        r#"{"sid":"","upgrades":[],"pingInterval":1,"pingTimeout":1}"#,
        r#"{"sid":"a","upgrades":"websocket","pingInterval":1,"pingTimeout":1}"#,
        r#"{"sid":"a","upgrades":[1],"pingInterval":1,"pingTimeout":1}"#,
        r#"{"sid":"a","upgrades":[],"pingTimeout":1}"#,
        r#"{"sid":"a","upgrades":[],"pingInterval":1}"#,
        r#"{"sid":"a","upgrades":[],"pingInterval":"1","pingTimeout":1}"#,
        r#"{"sid":"a","upgrades":[],"pingInterval":-1,"pingTimeout":1}"#,
        r#"{"sid":"a","upgrades":[],"pingInterval":1,"pingTimeout":null}"#,
        r#"{"sid":"a","upgrades":[],"pingInterval":1,"pingTimeout":1,"maxPayload":"x"}"#,
        r#"{"sid":"a","upgrades":[],"pingInterval":1,"pingTimeout":1,"maxPayload":-5}"#,
        r#"[]"#,
        r#""sid""#,
        r#"null"#,
    ];
    for json in cases {
        assert!(
            matches!(
                Handshake::parse(json),
                Err(ProtocolError::InvalidHandshake(_))
            ),
            "{json}"
        );
    }
}

#[test]
fn handshake_bad_json() {
    for json in ["", "{", "{\"sid\":", "not json", "{\"sid\":\"a\"} trailing"] {
        assert!(
            matches!(Handshake::parse(json), Err(ProtocolError::InvalidJson(_))),
            "{json:?}"
        );
    }
}

#[test]
fn handshake_lenient_parts() {
    // No upgrades field (or null) means no upgrades; unknown fields are ignored.
    let hs =
        Handshake::parse(r#"{"sid":"a","pingInterval":10,"pingTimeout":20,"extra":true}"#).unwrap();
    assert!(hs.upgrades.is_empty());
    assert_eq!(hs.max_payload, None);
    let hs = Handshake::parse(
        r#"{"sid":"a","upgrades":null,"pingInterval":10.7,"pingTimeout":2e3,"maxPayload":null}"#,
    )
    .unwrap();
    assert!(hs.upgrades.is_empty());
    assert_eq!(hs.ping_interval, ms(10));
    assert_eq!(hs.ping_timeout, ms(2_000));
}

#[test]
fn handshake_huge_numbers_are_clamped() {
    let max = ms(MAX_HEARTBEAT_MILLIS);
    for number in [
        "18446744073709551615",
        "1e300",
        "99999999999999999999999999",
        "2147483648",
    ] {
        let json = format!(
            r#"{{"sid":"a","upgrades":[],"pingInterval":{number},"pingTimeout":{number},"maxPayload":{number}}}"#
        );
        let hs = Handshake::parse(&json).unwrap();
        assert_eq!(hs.ping_interval, max, "{number}");
        assert_eq!(hs.ping_timeout, max, "{number}");
        assert!(hs.max_payload.unwrap() >= 2_147_483_648);
        // The clamped handshake drives a session without overflowing.
        let t0 = Instant::now();
        let mut session = Session::new(V4, hs.clone(), t0);
        assert_eq!(session.poll_timeout(), Some(t0 + max + max));
        session.handle_timeout(t0 + max);
        assert!(!session.is_closed());
        let session = Session::new(V3, hs, t0);
        assert_eq!(session.poll_timeout(), Some(t0 + max));
    }
    // A bare out-of-range literal is still a number to serde_json.
    assert!(Handshake::parse(r#"{"sid":"a","pingInterval":1e999,"pingTimeout":1}"#).is_err());
}

// ---------------------------------------------------------------------------------------------
// Payloads
// ---------------------------------------------------------------------------------------------

#[test]
fn spec_v4_payloads() {
    let vectors: Vec<(&str, Vec<Packet>)> = vec![
        ("4hey", vec![text("hey")]),
        ("4hello\x1e4world", vec![text("hello"), text("world")]),
        ("4hello\x1e4€", vec![text("hello"), text("€")]),
        ("4hello\x1e4€€€", vec![text("hello"), text("€€€")]),
        (
            "4hello\x1ebAQIDBA==",
            vec![text("hello"), binary(&[1, 2, 3, 4])],
        ),
        ("4hello\x1ebAQID", vec![text("hello"), binary(&[1, 2, 3])]),
        ("6", vec![Packet::Noop]),
        (
            "2\x1e2probe",
            vec![
                Packet::Ping(String::new()),
                Packet::Ping("probe".to_owned()),
            ],
        ),
        (
            SPEC_OPEN_V4,
            vec![Packet::decode_text(SPEC_OPEN_V4).unwrap()],
        ),
    ];
    for (body, packets) in vectors {
        assert_eq!(
            decode_payload(V4, body).unwrap(),
            packets,
            "decoding {body:?}"
        );
        assert_eq!(encode_payload(V4, &packets), body, "encoding {packets:?}");
        assert_eq!(decode_payload_bytes(V4, body.as_bytes()).unwrap(), packets);
    }
    assert_eq!(encode_payload(V4, &[]), "");
}

#[test]
fn spec_v3_payloads() {
    let vectors: Vec<(&str, Vec<Packet>)> = vec![
        ("6:4hello2:4€", vec![text("hello"), text("€")]),
        ("6:4hello4:4€€€", vec![text("hello"), text("€€€")]),
        ("2:4€10:b4AQIDBA==", vec![text("€"), binary(&[1, 2, 3, 4])]),
        (
            "6:2probe11:4HelloWorld1:5",
            vec![
                Packet::Ping("probe".to_owned()),
                text("HelloWorld"),
                Packet::Upgrade,
            ],
        ),
        // An emoji is two UTF-16 code units.
        ("3:4😀", vec![text("😀")]),
        ("5:4a😀b1:6", vec![text("a😀b"), Packet::Noop]),
        ("1:1", vec![Packet::Close]),
        ("2:b4", vec![binary(&[])]),
    ];
    for (body, packets) in vectors {
        assert_eq!(
            decode_payload(V3, body).unwrap(),
            packets,
            "decoding {body:?}"
        );
        assert_eq!(encode_payload(V3, &packets), body, "encoding {packets:?}");
    }
    // The v3 handshake in a payload: `96:0{…}`.
    let open = Packet::decode_text(SPEC_OPEN_V3).unwrap();
    let body = encode_payload(V3, std::slice::from_ref(&open));
    assert_eq!(body, format!("96:{SPEC_OPEN_V3}"));
    assert_eq!(decode_payload(V3, &body).unwrap(), vec![open]);
}

#[test]
fn v3_empty_packet_list_and_empty_elements() {
    assert_eq!(encode_payload(V3, &[]), "0:");
    assert_eq!(decode_payload(V3, "0:").unwrap(), vec![]);
    assert_eq!(decode_payload(V3, "0:1:60:").unwrap(), vec![Packet::Noop]);
}

#[test]
fn utf16_lengths() {
    assert_eq!(utf16_len(""), 0);
    assert_eq!(utf16_len("4hello"), 6);
    assert_eq!(utf16_len("€"), 1);
    assert_eq!(utf16_len("😀"), 2);
}

#[test]
fn empty_payloads_are_errors() {
    assert_eq!(decode_payload(V3, ""), Err(ProtocolError::Empty));
    assert_eq!(decode_payload(V4, ""), Err(ProtocolError::Empty));
}

#[test]
fn bad_v3_lengths() {
    let cases = [
        "4hello",                       // no length at all
        "6",                            // missing colon
        "64hello",                      // missing colon, digits then text
        ":4hello",                      // empty length
        "x:4hello",                     // not a number
        "-6:4hello",                    // sign
        " 6:4hello",                    // whitespace
        "6 :4hello",                    // whitespace
        "7:4hello",                     // past the end
        "6:4hello3:4€",                 // second packet past the end
        "6:4hello2",                    // trailing garbage without colon
        "2:4😀",                        // ends inside a surrogate pair
        "1:😀",                         // ends inside a surrogate pair
        "12345678901:4",                // too many digits
        "99999999999999999999999999:4", // would overflow
        "9999999999:4",                 // fits but past the end
    ];
    for body in cases {
        assert!(
            matches!(
                decode_payload(V3, body),
                Err(ProtocolError::InvalidLength(_))
            ),
            "{body:?} gave {:?}",
            decode_payload(V3, body)
        );
    }
}

#[test]
fn bad_payload_elements() {
    // Bad base64.
    for (version, body) in [
        (V4, "b!!!!"),
        (V4, "4hello\x1ebA"),
        (V4, "bAQIDBA=x"),
        (V3, "5:b4!!!"),
        (V3, "3:b4A"),
    ] {
        assert_eq!(
            decode_payload(version, body),
            Err(ProtocolError::InvalidBase64),
            "{body:?}"
        );
    }
    // Base64 binary of a non-message type, or no type at all (v3).
    assert!(matches!(
        decode_payload(V3, "6:b2AQID"),
        Err(ProtocolError::UnknownPacketType(_))
    ));
    assert_eq!(decode_payload(V3, "1:b"), Err(ProtocolError::Empty));
    // Unknown types and empty elements.
    assert!(matches!(
        decode_payload(V4, "4a\x1e9"),
        Err(ProtocolError::UnknownPacketType(_))
    ));
    assert!(matches!(
        decode_payload(V3, "1:9"),
        Err(ProtocolError::UnknownPacketType(_))
    ));
    assert_eq!(
        decode_payload(V4, "4a\x1e\x1e4b"),
        Err(ProtocolError::Empty)
    );
    assert_eq!(decode_payload(V4, "4a\x1e"), Err(ProtocolError::Empty));
    // Bad JSON in an open packet inside a payload.
    assert!(matches!(
        decode_payload(V4, "0{bad"),
        Err(ProtocolError::InvalidJson(_))
    ));
    assert!(matches!(
        decode_payload(V3, "3:0{}"),
        Err(ProtocolError::InvalidHandshake(_))
    ));
}

#[test]
fn base64_padding_is_optional_on_input() {
    assert_eq!(
        decode_payload(V4, "bAQIDBA").unwrap(),
        vec![binary(&[1, 2, 3, 4])]
    );
}

#[test]
fn invalid_utf8_payload() {
    for body in [&b"4\xff"[..], b"\xc3\x28", b"6:4hell\xe2\x82"] {
        assert_eq!(
            decode_payload_bytes(V4, body),
            Err(ProtocolError::InvalidUtf8)
        );
        assert_eq!(
            decode_payload_bytes(V3, body),
            Err(ProtocolError::InvalidUtf8)
        );
    }
}

#[test]
fn payload_round_trips() {
    let packets = vec![
        Packet::Open(handshake(25_000, 20_000)),
        Packet::Close,
        Packet::Ping("probe".to_owned()),
        Packet::Pong(String::new()),
        text("hello 😀 € : 12:"),
        binary(&[0, 255, 4, 30]),
        binary(&[]),
        text(""),
        Packet::Upgrade,
        Packet::Noop,
    ];
    for version in [V3, V4] {
        let body = encode_payload(version, &packets);
        assert_eq!(
            decode_payload(version, &body).unwrap(),
            packets,
            "{version:?}"
        );
        for packet in &packets {
            let frame = packet.to_frame(version);
            assert_eq!(&Packet::from_frame(version, frame).unwrap(), packet);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Session (virtual clock)
// ---------------------------------------------------------------------------------------------
