//! The session's heartbeat, messages and close, and the upgrade probe, on a virtual clock.

use super::*;

#[test]
fn v4_ping_is_answered_and_resets_the_deadline() {
    let t0 = Instant::now();
    let mut session = Session::new(V4, handshake(25_000, 20_000), t0);
    assert_eq!(session.handshake().sid, "abc");
    assert_eq!(session.poll_timeout(), Some(t0 + ms(45_000)));
    assert_eq!(session.heartbeats(), 0);

    session.handle_packet(t0 + ms(25_000), Packet::Ping(String::new()));
    assert_eq!(session.heartbeats(), 1);
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

    assert_eq!(session.heartbeats(), 0);
    session.handle_packet(t0 + ms(26_000), Packet::Pong(String::new()));
    assert_eq!(
        session.heartbeats(),
        1,
        "the answer to our ping is a heartbeat"
    );
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
