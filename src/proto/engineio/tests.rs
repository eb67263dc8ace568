//! Engine.IO tests: golden vectors from the protocol specs and engine.io-parser, round trips,
//! heartbeat timers on a virtual clock, malformed input, and a no-panic loop over random bytes.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::proto::ProtocolError;

const V3: EngineVersion = EngineVersion::V3;
const V4: EngineVersion = EngineVersion::V4;

/// The open packet of the v4 spec's sample session.
const SPEC_OPEN_V4: &str = r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
/// The same session opened by a v3 server (no maxPayload).
const SPEC_OPEN_V3: &str = r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":5000}"#;

fn text(s: &str) -> Packet {
    Packet::Message(Data::Text(s.to_owned()))
}

fn binary(b: &[u8]) -> Packet {
    Packet::Message(Data::Binary(Bytes::copy_from_slice(b)))
}

fn handshake(interval_ms: u64, timeout_ms: u64) -> Handshake {
    Handshake {
        sid: "abc".to_owned(),
        upgrades: vec!["websocket".to_owned()],
        ping_interval: Duration::from_millis(interval_ms),
        ping_timeout: Duration::from_millis(timeout_ms),
        max_payload: Some(1_000_000),
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn drain_transmit(session: &mut Session) -> Vec<Packet> {
    std::iter::from_fn(|| session.poll_transmit()).collect()
}

fn drain_events(session: &mut Session) -> Vec<SessionEvent> {
    std::iter::from_fn(|| session.poll_event()).collect()
}

// ---------------------------------------------------------------------------------------------
// Versions and packets
// ---------------------------------------------------------------------------------------------

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

#[test]
fn v4_ping_is_answered_and_resets_the_deadline() {
    let t0 = Instant::now();
    let mut session = Session::new(V4, handshake(25_000, 20_000), t0);
    assert_eq!(session.handshake().sid, "abc");
    assert_eq!(session.poll_timeout(), Some(t0 + ms(45_000)));

    session.handle_packet(t0 + ms(25_000), Packet::Ping(String::new()));
    assert_eq!(
        drain_transmit(&mut session),
        vec![Packet::Pong(String::new())]
    );
    assert_eq!(session.poll_timeout(), Some(t0 + ms(70_000)));

    // The old deadline has passed, but the ping moved it.
    session.handle_timeout(t0 + ms(45_000));
    assert!(!session.is_closed());
    assert!(!session.has_ping_expired(t0 + ms(70_000)));
    assert!(session.has_ping_expired(t0 + ms(70_001)));

    // Pong echoes the ping's data.
    session.handle_packet(t0 + ms(30_000), Packet::Ping("x".to_owned()));
    assert_eq!(
        drain_transmit(&mut session),
        vec![Packet::Pong("x".to_owned())]
    );
    assert!(drain_events(&mut session).is_empty());
}

#[test]
fn v4_a_ping_flood_queues_one_pong_until_it_is_taken() {
    let t0 = Instant::now();
    let mut session = Session::new(V4, handshake(25_000, 20_000), t0);
    for i in 0..100_000u64 {
        session.handle_packet(t0 + ms(i / 100), Packet::Ping(String::new()));
    }
    assert_eq!(
        drain_transmit(&mut session),
        vec![Packet::Pong(String::new())]
    );
    // The timer follows the last ping all the same.
    assert!(!session.has_ping_expired(t0 + ms(999 + 45_000)));
    session.handle_packet(t0 + ms(1_000), Packet::Ping(String::new()));
    session.send(Data::Text("after".to_owned()));
    session.handle_packet(t0 + ms(1_001), Packet::Ping(String::new()));
    assert_eq!(
        drain_transmit(&mut session),
        vec![
            Packet::Pong(String::new()),
            Packet::Message(Data::Text("after".to_owned()))
        ]
    );
}

#[test]
fn v4_missing_ping_times_out_once() {
    let t0 = Instant::now();
    let mut session = Session::new(V4, handshake(25_000, 20_000), t0);
    session.handle_timeout(t0 + ms(44_999));
    assert!(!session.is_closed());
    assert!(!session.has_ping_expired(t0 + ms(45_000)));
    assert!(session.has_ping_expired(t0 + ms(45_001)));

    session.handle_timeout(t0 + ms(45_000));
    assert!(session.is_closed());
    assert_eq!(
        drain_events(&mut session),
        vec![SessionEvent::Closed(CloseReason::PingTimeout)]
    );
    session.handle_timeout(t0 + ms(90_000));
    session.handle_packet(t0 + ms(90_000), Packet::Ping(String::new()));
    session.send(Data::Text("late".to_owned()));
    assert!(drain_events(&mut session).is_empty());
    assert!(drain_transmit(&mut session).is_empty());
    assert_eq!(session.poll_timeout(), None);
}

#[test]
fn v4_only_pings_reset_the_timer() {
    let t0 = Instant::now();
    let mut session = Session::new(V4, handshake(100, 50), t0);
    session.handle_packet(t0 + ms(100), text("hi"));
    session.handle_packet(t0 + ms(120), Packet::Noop);
    session.handle_timeout(t0 + ms(150));
    assert_eq!(
        drain_events(&mut session),
        vec![
            SessionEvent::Message(Data::Text("hi".to_owned())),
            SessionEvent::Closed(CloseReason::PingTimeout)
        ]
    );
}

#[test]
fn v3_client_pings_and_expects_pong() {
    let t0 = Instant::now();
    let mut session = Session::new(V3, handshake(25_000, 5_000), t0);
    assert_eq!(session.poll_timeout(), Some(t0 + ms(25_000)));
    session.handle_timeout(t0 + ms(24_999));
    assert!(drain_transmit(&mut session).is_empty());

    session.handle_timeout(t0 + ms(25_000));
    assert_eq!(
        drain_transmit(&mut session),
        vec![Packet::Ping(String::new())]
    );
    assert_eq!(session.poll_timeout(), Some(t0 + ms(30_000)));
    // Calling again does not ping twice.
    session.handle_timeout(t0 + ms(25_001));
    assert!(drain_transmit(&mut session).is_empty());

    session.handle_packet(t0 + ms(26_000), Packet::Pong(String::new()));
    assert_eq!(session.poll_timeout(), Some(t0 + ms(51_000)));
    session.handle_timeout(t0 + ms(30_000));
    assert!(!session.is_closed());

    session.handle_timeout(t0 + ms(51_000));
    assert_eq!(
        drain_transmit(&mut session),
        vec![Packet::Ping(String::new())]
    );
    assert!(!session.has_ping_expired(t0 + ms(56_000)));
    assert!(session.has_ping_expired(t0 + ms(56_001)));
    session.handle_timeout(t0 + ms(56_000));
    assert!(session.is_closed());
    assert_eq!(
        drain_events(&mut session),
        vec![SessionEvent::Closed(CloseReason::PingTimeout)]
    );
}

#[test]
fn v3_expiry_without_any_timer_firing() {
    // A suspended process: the ping was never sent, yet the pong would be long overdue.
    let t0 = Instant::now();
    let session = Session::new(V3, handshake(25_000, 5_000), t0);
    assert!(!session.has_ping_expired(t0 + ms(30_000)));
    assert!(session.has_ping_expired(t0 + ms(30_001)));
}

#[test]
fn v3_unexpected_pongs_and_pings_are_ignored() {
    let t0 = Instant::now();
    let mut session = Session::new(V3, handshake(1_000, 500), t0);
    // Pong before any ping, and a probe pong while waiting: neither counts.
    session.handle_packet(t0 + ms(10), Packet::Pong(String::new()));
    assert_eq!(session.poll_timeout(), Some(t0 + ms(1_000)));
    session.handle_timeout(t0 + ms(1_000));
    assert_eq!(
        drain_transmit(&mut session),
        vec![Packet::Ping(String::new())]
    );
    session.handle_packet(t0 + ms(1_100), Packet::Pong("probe".to_owned()));
    assert_eq!(session.poll_timeout(), Some(t0 + ms(1_500)));
    // v3 servers do not ping; the client does not answer one.
    session.handle_packet(t0 + ms(1_200), Packet::Ping(String::new()));
    assert!(drain_transmit(&mut session).is_empty());
    session.handle_timeout(t0 + ms(1_500));
    assert!(session.is_closed());
}

#[test]
fn messages_flow_both_ways() {
    let t0 = Instant::now();
    for version in [V3, V4] {
        let mut session = Session::new(version, handshake(1_000, 500), t0);
        session.handle_packet(t0, text("a"));
        session.handle_packet(t0, binary(&[1]));
        for ignored in [
            Packet::Noop,
            Packet::Upgrade,
            Packet::Open(handshake(1, 1)),
            Packet::Pong("?".to_owned()),
        ] {
            session.handle_packet(t0, ignored);
        }
        session.send(Data::Text("b".to_owned()));
        session.send(Data::Binary(Bytes::from_static(&[2])));
        assert_eq!(
            drain_events(&mut session),
            vec![
                SessionEvent::Message(Data::Text("a".to_owned())),
                SessionEvent::Message(Data::Binary(Bytes::from_static(&[1]))),
            ]
        );
        assert_eq!(drain_transmit(&mut session), vec![text("b"), binary(&[2])]);
        assert!(!session.is_closed());
    }
}

#[test]
fn server_close() {
    let t0 = Instant::now();
    let mut session = Session::new(V4, handshake(1_000, 500), t0);
    session.send(Data::Text("unsent".to_owned()));
    session.handle_packet(t0, text("before"));
    session.handle_packet(t0, Packet::Close);
    session.handle_packet(t0, text("after"));
    session.close();
    assert!(session.is_closed());
    assert_eq!(
        drain_events(&mut session),
        vec![
            SessionEvent::Message(Data::Text("before".to_owned())),
            SessionEvent::Closed(CloseReason::ServerClose),
        ]
    );
    assert!(drain_transmit(&mut session).is_empty());
    assert!(session.has_ping_expired(t0));
}

#[test]
fn client_close_flushes_then_closes() {
    let t0 = Instant::now();
    let mut session = Session::new(V3, handshake(1_000, 500), t0);
    session.send(Data::Text("last".to_owned()));
    session.close();
    session.close();
    session.send(Data::Text("too late".to_owned()));
    session.handle_packet(t0, text("ignored"));
    session.handle_timeout(t0 + ms(10_000));
    assert_eq!(
        drain_transmit(&mut session),
        vec![text("last"), Packet::Close]
    );
    assert_eq!(
        drain_events(&mut session),
        vec![SessionEvent::Closed(CloseReason::ClientClose)]
    );
    assert_eq!(session.poll_timeout(), None);
}

#[test]
fn unrepresentable_deadlines_never_fire() {
    // Handshake fields are public, so a caller can bypass parse's clamp.
    let hs = Handshake {
        ping_interval: Duration::MAX,
        ping_timeout: Duration::MAX,
        ..handshake(0, 0)
    };
    let t0 = Instant::now();
    for version in [V3, V4] {
        let mut session = Session::new(version, hs.clone(), t0);
        assert_eq!(session.poll_timeout(), None);
        session.handle_timeout(t0 + ms(1_000_000));
        session.handle_packet(t0, Packet::Ping(String::new()));
        assert!(!session.is_closed());
        assert!(!session.has_ping_expired(t0 + ms(1_000_000)));
    }
    let mut probe = UpgradeProbe::new(t0, Duration::MAX);
    assert_eq!(probe.poll_timeout(), None);
    probe.handle_timeout(t0 + ms(1_000_000));
    assert_eq!(probe.state(), ProbeState::Probing);
}

// ---------------------------------------------------------------------------------------------
// Upgrade probe
// ---------------------------------------------------------------------------------------------

#[test]
fn probe_happy_path_waiting_for_pause() {
    let t0 = Instant::now();
    let mut probe = UpgradeProbe::new(t0, ms(10_000));
    assert_eq!(probe.state(), ProbeState::Probing);
    assert_eq!(probe.poll_timeout(), Some(t0 + ms(10_000)));
    assert_eq!(
        probe.poll_transmit(),
        Some(Packet::Ping("probe".to_owned()))
    );
    assert_eq!(probe.poll_transmit(), None);
    // The spec's wire forms.
    assert_eq!(Packet::Ping("probe".to_owned()).encode_text(), "2probe");

    let pong = Packet::decode_text("3probe").unwrap();
    probe.handle_packet(t0 + ms(100), pong).unwrap();
    assert_eq!(probe.state(), ProbeState::AwaitingPause);
    assert_eq!(probe.poll_transmit(), None);
    assert_eq!(probe.poll_timeout(), Some(t0 + ms(10_000)));

    probe.polling_paused();
    assert_eq!(probe.state(), ProbeState::Upgraded);
    assert_eq!(probe.poll_timeout(), None);
    let upgrade = probe.poll_transmit().unwrap();
    assert_eq!(upgrade.encode_text(), "5");
    assert_eq!(probe.poll_transmit(), None);
    // Upgraded is final: late timeouts and later packets change nothing.
    probe.handle_timeout(t0 + ms(20_000));
    assert_eq!(probe.state(), ProbeState::Upgraded);
    probe.handle_packet(t0 + ms(20_000), text("x")).unwrap();
    assert_eq!(probe.state(), ProbeState::Upgraded);
}

#[test]
fn probe_already_paused_goes_straight_to_upgraded() {
    let t0 = Instant::now();
    let mut probe = UpgradeProbe::new(t0, ms(10_000));
    probe.polling_paused();
    assert_eq!(probe.state(), ProbeState::Probing);
    probe
        .handle_packet(t0, Packet::Pong("probe".to_owned()))
        .unwrap();
    assert_eq!(probe.state(), ProbeState::Upgraded);
    // The ping still goes first, then the upgrade, each once.
    assert_eq!(
        probe.poll_transmit(),
        Some(Packet::Ping("probe".to_owned()))
    );
    assert_eq!(probe.poll_transmit(), Some(Packet::Upgrade));
    assert_eq!(probe.poll_transmit(), None);
}

#[test]
fn probe_wrong_answer_fails() {
    let t0 = Instant::now();
    for wrong in [
        Packet::Pong(String::new()),
        Packet::Pong("prob".to_owned()),
        Packet::Ping("probe".to_owned()),
        text("probe"),
        Packet::Noop,
        Packet::Close,
    ] {
        let mut probe = UpgradeProbe::new(t0, ms(10_000));
        probe.poll_transmit();
        assert!(matches!(
            probe.handle_packet(t0, wrong),
            Err(ProtocolError::UnexpectedPacket(_))
        ));
        assert_eq!(probe.state(), ProbeState::Failed);
        assert_eq!(probe.poll_timeout(), None);
        assert_eq!(probe.poll_transmit(), None);
        // Failed is final.
        assert!(probe
            .handle_packet(t0, Packet::Pong("probe".to_owned()))
            .is_err());
        probe.polling_paused();
        assert_eq!(probe.state(), ProbeState::Failed);
    }
}

#[test]
fn probe_packet_while_awaiting_pause_fails() {
    let t0 = Instant::now();
    let mut probe = UpgradeProbe::new(t0, ms(10_000));
    probe
        .handle_packet(t0, Packet::Pong("probe".to_owned()))
        .unwrap();
    assert!(probe.handle_packet(t0, text("early")).is_err());
    assert_eq!(probe.state(), ProbeState::Failed);
}

#[test]
fn probe_times_out() {
    let t0 = Instant::now();
    // While probing.
    let mut probe = UpgradeProbe::new(t0, ms(1_000));
    probe.poll_transmit();
    probe.handle_timeout(t0 + ms(999));
    assert_eq!(probe.state(), ProbeState::Probing);
    probe.handle_timeout(t0 + ms(1_000));
    assert_eq!(probe.state(), ProbeState::Failed);
    // While waiting for the pause.
    let mut probe = UpgradeProbe::new(t0, ms(1_000));
    probe
        .handle_packet(t0, Packet::Pong("probe".to_owned()))
        .unwrap();
    probe.handle_timeout(t0 + ms(1_000));
    assert_eq!(probe.state(), ProbeState::Failed);
    probe.polling_paused();
    assert_eq!(probe.state(), ProbeState::Failed);
    // A pong that arrives after the deadline is too late.
    let mut probe = UpgradeProbe::new(t0, ms(1_000));
    assert!(probe
        .handle_packet(t0 + ms(2_000), Packet::Pong("probe".to_owned()))
        .is_err());
    assert_eq!(probe.state(), ProbeState::Failed);
    assert_eq!(probe.poll_transmit(), None);
}

// ---------------------------------------------------------------------------------------------
// No panics on arbitrary input
// ---------------------------------------------------------------------------------------------

/// xorshift64*: deterministic, dependency-free randomness for the fuzz loops.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Pieces that steer random bodies towards the interesting corners of the grammar.
const PIECES: &[&[u8]] = &[
    b"0",
    b"1",
    b"2",
    b"3",
    b"4",
    b"5",
    b"6",
    b"7",
    b"9",
    b":",
    b"b",
    b"b4",
    b"\x1e",
    b"AQID",
    b"BA==",
    b"=",
    "€".as_bytes(),
    "😀".as_bytes(),
    b"\xf0\x9f",
    b"\xff",
    b"{",
    b"}",
    b"\"sid\":",
    b"\"pingInterval\":",
    b"\"pingTimeout\":",
    b"1e999",
    b"-",
    b"99999999999",
    b"probe",
    b"",
];

const SEEDS: &[&str] = &[
    "6:4hello2:4€",
    "2:4€10:b4AQIDBA==",
    "4hello\x1e4€",
    "4hello\x1ebAQIDBA==",
    "3:4😀",
    SPEC_OPEN_V4,
    SPEC_OPEN_V3,
    "96:0{\"sid\":\"lv_VI97HAXpY6yYWAAAC\",\"upgrades\":[\"websocket\"],\"pingInterval\":25000,\"pingTimeout\":5000}",
];

fn random_body(rng: &mut Rng) -> Vec<u8> {
    let mut body = if rng.below(2) == 0 {
        SEEDS[rng.below(SEEDS.len())].as_bytes().to_vec()
    } else {
        Vec::new()
    };
    for _ in 0..rng.below(8) {
        match rng.below(4) {
            // Insert a piece.
            0 | 1 => {
                let piece = PIECES[rng.below(PIECES.len())];
                let at = rng.below(body.len() + 1);
                body.splice(at..at, piece.iter().copied());
            }
            // Flip a byte.
            2 if !body.is_empty() => {
                let at = rng.below(body.len());
                body[at] = rng.next() as u8;
            }
            // Truncate.
            _ => {
                let at = rng.below(body.len() + 1);
                body.truncate(at);
            }
        }
    }
    body
}

/// Whatever decodes must re-encode into something that decodes to the same packets.
fn check_round_trip(version: EngineVersion, packets: &[Packet]) {
    let body = encode_payload(version, packets);
    assert_eq!(
        decode_payload(version, &body).unwrap_or_default(),
        packets,
        "{version:?} {body:?}"
    );
}

#[test]
fn random_bodies_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut decoded = 0;
    for _ in 0..20_000 {
        let body = random_body(&mut rng);
        for version in [V3, V4] {
            if let Ok(packets) = decode_payload_bytes(version, &body) {
                decoded += 1;
                check_round_trip(version, &packets);
            }
            let _ = Packet::from_frame(version, Frame::Binary(Bytes::from(body.clone())));
        }
        let lossy = String::from_utf8_lossy(&body).into_owned();
        let _ = Handshake::parse(&lossy);
        if let Ok(packet) = Packet::from_frame(V4, Frame::Text(lossy)) {
            assert_eq!(
                Packet::decode_text(&packet.encode_text()).ok(),
                Some(packet)
            );
        }
    }
    // The generator must reach valid inputs too, or the round-trip checks test nothing.
    assert!(decoded > 1_000, "only {decoded} bodies decoded");
}

#[test]
fn random_session_and_probe_driving_never_panics() {
    let mut rng = Rng(0xDEAD_BEEF_CAFE_F00D);
    let t0 = Instant::now();
    for round in 0..500 {
        let version = if round % 2 == 0 { V3 } else { V4 };
        let hs = handshake(rng.below(2_000) as u64, rng.below(2_000) as u64);
        let mut session = Session::new(version, hs, t0);
        let mut probe = UpgradeProbe::new(t0, ms(rng.below(3_000) as u64));
        let mut now = t0;
        let mut closed_events = 0;
        for _ in 0..50 {
            now += ms(rng.below(700) as u64);
            let packet = match rng.below(8) {
                0 => Packet::Ping(String::new()),
                1 => Packet::Pong(String::new()),
                2 => Packet::Pong("probe".to_owned()),
                3 => text("m"),
                4 => Packet::Noop,
                5 => Packet::Upgrade,
                6 if rng.below(10) == 0 => Packet::Close,
                _ => Packet::Ping("probe".to_owned()),
            };
            match rng.below(6) {
                0 => session.handle_timeout(now),
                1 => session.send(Data::Text("s".to_owned())),
                2 if rng.below(20) == 0 => session.close(),
                3 => {
                    let _ = probe.handle_packet(now, packet.clone());
                }
                4 => probe.polling_paused(),
                _ => session.handle_packet(now, packet),
            }
            probe.handle_timeout(now);
            let _ = probe.poll_transmit();
            let _ = session.has_ping_expired(now);
            if let Some(deadline) = session.poll_timeout() {
                assert!(!session.is_closed());
                // A deadline always lies after the event that set it, never in the far past.
                assert!(deadline >= t0);
            }
            while let Some(event) = session.poll_event() {
                if matches!(event, SessionEvent::Closed(_)) {
                    closed_events += 1;
                } else {
                    assert_eq!(closed_events, 0, "message after Closed");
                }
            }
            drain_transmit(&mut session);
        }
        assert!(closed_events <= 1);
        assert_eq!(closed_events == 1, session.is_closed());
    }
}
