//! Telling a socket.io 2 server (Engine.IO 3, Socket.IO protocol 4) from a socket.io 3/4 one
//! (Engine.IO 4, Socket.IO protocol 5) by what it answers a client speaking v4.
//!
//! A socket.io 2 server ignores `EIO=4`: it opens an Engine.IO 3 session and joins `/` at once.
//! What gives it away, measured against socket.io 2.5 / engine.io 3.6:
//!
//! - the polling handshake body is a v3 payload, packets framed as `<length>:<packet>`
//!   (`97:0{"sid":…,"pingInterval":25000,"pingTimeout":20000}2:40`), where a v4 server answers
//!   `0{…}` (a v4 payload cannot start with `<digits>:`, so the two never look alike);
//! - a namespace CONNECT reply carries no data (`40`, `40/admin,`), where socket.io 3+ always
//!   answers `40{"sid":"…"}`. The official JS client refuses such a reply for the same reason.
//!   Over WebSocket this is the first sign: socket.io 2 sends `40` for `/` unasked right after
//!   the open packet.
//!
//! A CONNECT_ERROR carrying a bare string (`44"not authorized"`, what socket.io 2 sends when a
//! middleware refuses `/`) is no proof: python-socketio 5, a v5 server, sends one for an
//! unknown namespace (`44/nope,"Unable to connect"`). It is a refusal either way, never a false
//! connect, so it stays a plain `ConnectRefused`.
//!
//! The open packet itself is no proof either way: engine.io 3 leaves out `maxPayload`, but so
//! does every engine.io 4 server before 6.2 (socket.io 3.0 to 4.4), and over WebSocket the open
//! packet is otherwise the same.

use serde_json::Value;

use super::{decode_payload, EngineVersion, Handshake, Packet};
use crate::proto::ProtocolError;

/// The handshake of a polling handshake body that is an Engine.IO 3 payload starting with an
/// open packet; `None` for anything else (a v4 body included).
pub fn v3_polling_handshake(body: &str) -> Option<Handshake> {
    if !body.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    match decode_payload(EngineVersion::V3, body)
        .ok()?
        .into_iter()
        .next()
    {
        Some(Packet::Open(handshake)) => Some(handshake),
        _ => None,
    }
}

/// Whether the data of a namespace CONNECT reply marks a socket.io 2 server: socket.io 3+
/// always sends `{"sid": "…"}` with it.
pub fn connect_reply_is_socketio2(data: Option<&Value>) -> bool {
    let sid = data
        .and_then(|data| data.get("sid"))
        .and_then(Value::as_str);
    sid.is_none_or(str::is_empty)
}

/// Whether a refused handshake is an Engine.IO 4+ server turning down `EIO=3`: HTTP 400 with
/// engine.io's error code 5, `{"code":5,"message":"Unsupported protocol version"}` (over
/// polling; its WebSocket answer is no cleaner than a broken stream). A socket.io 2 server
/// upgraded to 4 answers a client that detected it before this way.
pub fn refuses_engineio3(status: Option<u16>, body: &str) -> bool {
    status == Some(400) && body.contains("Unsupported protocol version")
}

/// The error of a client set to v4 that reached a socket.io 2 server; `evidence` says how it
/// showed.
pub fn socketio2_server(evidence: impl Into<String>) -> ProtocolError {
    ProtocolError::Socketio2Server {
        evidence: evidence.into(),
    }
}

/// Whether `error` says the server speaks socket.io 2.
pub fn is_socketio2_server(error: &ProtocolError) -> bool {
    matches!(error, ProtocolError::Socketio2Server { .. })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    /// What socket.io 2.5 answered `GET /socket.io/?EIO=4&transport=polling`.
    const SIO2_POLLING: &str =
        "97:0{\"sid\":\"gqqkGjMfGteyAkeGAAAA\",\"upgrades\":[\"websocket\"],\
                                \"pingInterval\":25000,\"pingTimeout\":20000}2:40";
    /// What socket.io 4.8 answered the same request.
    const SIO4_POLLING: &str = "0{\"sid\":\"OjTfaBOOOqkQTArTAAAA\",\"upgrades\":[\"websocket\"],\
                                \"pingInterval\":25000,\"pingTimeout\":20000,\"maxPayload\":1000000}";

    #[test]
    fn a_socketio2_polling_handshake_is_recognised_with_its_session() {
        let handshake = v3_polling_handshake(SIO2_POLLING).expect("an EIO3 handshake");
        assert_eq!(handshake.sid, "gqqkGjMfGteyAkeGAAAA");
        assert_eq!(handshake.ping_interval, Duration::from_millis(25000));
        assert_eq!(handshake.max_payload, None);
        // The same body fails the v4 decoder the way the bug report saw it.
        assert_eq!(
            decode_payload(EngineVersion::V4, SIO2_POLLING),
            Err(ProtocolError::UnknownPacketType("9".into()))
        );
        // Alone, without the `40` socket.io 2 adds for "/".
        let open = "0{\"sid\":\"a\",\"upgrades\":[],\"pingInterval\":25000,\"pingTimeout\":60000}";
        let alone = format!("{}:{open}", open.len());
        assert_eq!(
            v3_polling_handshake(&alone).map(|h| h.sid),
            Some("a".into())
        );
    }

    #[test]
    fn a_v4_body_or_garbage_is_not_taken_for_socketio2() {
        for body in [
            SIO4_POLLING,
            "",
            "0",
            "97:",
            "2:40",
            "9:0{\"sid\":1}",
            "5:hello",
            "1:1",
            "12345678901234567890:0{}",
            "{\"code\":5,\"message\":\"Unsupported protocol version\"}",
            "<html>proxy error</html>",
        ] {
            assert_eq!(v3_polling_handshake(body), None, "{body:?}");
        }
        // An open packet that is not first is no handshake.
        assert_eq!(
            v3_polling_handshake(
                "1:69:0{\"sid\":\"a\",\"upgrades\":[],\"pingInterval\":1,\"pingTimeout\":1}"
            ),
            None
        );
    }

    #[test]
    fn a_connect_reply_without_sid_marks_socketio2() {
        assert!(connect_reply_is_socketio2(None));
        assert!(connect_reply_is_socketio2(Some(&json!({}))));
        assert!(connect_reply_is_socketio2(Some(&json!({"sid": ""}))));
        assert!(connect_reply_is_socketio2(Some(&json!({"sid": 5}))));
        assert!(connect_reply_is_socketio2(Some(&json!("x"))));
        assert!(!connect_reply_is_socketio2(Some(
            &json!({"sid": "F_U8Pyk06u8rc6OzAAAA"})
        )));
        assert!(!connect_reply_is_socketio2(Some(
            &json!({"sid": "a", "pid": "b"})
        )));
    }

    #[test]
    fn a_v4_server_refusing_eio3_is_recognised() {
        // socket.io 4.8's answer to `GET ?EIO=3&transport=polling`.
        let body = r#"{"code":5,"message":"Unsupported protocol version"}"#;
        assert!(refuses_engineio3(Some(400), body));
        assert!(!refuses_engineio3(Some(403), body));
        assert!(!refuses_engineio3(None, body));
        assert!(!refuses_engineio3(
            Some(400),
            r#"{"code":3,"message":"Bad request"}"#
        ));
    }

    #[test]
    fn auto_speaks_v4_on_the_wire() {
        let auto = EngineVersion::Auto;
        assert_eq!(auto.wire(), EngineVersion::V4);
        assert_eq!(auto.query_value(), "4");
        assert_eq!(EngineVersion::V3.wire(), EngineVersion::V3);
        let packets = [
            Packet::Message(super::super::Data::Text("2[\"a\"]".into())),
            Packet::Message(super::super::Data::Binary(vec![1, 2].into())),
            Packet::Ping(String::new()),
        ];
        let body = super::super::encode_payload(auto, &packets);
        assert_eq!(
            body,
            super::super::encode_payload(EngineVersion::V4, &packets)
        );
        assert_eq!(decode_payload(auto, &body).unwrap(), packets);
        for packet in &packets {
            let frame = packet.to_frame(auto);
            assert_eq!(frame, packet.to_frame(EngineVersion::V4));
            assert_eq!(&Packet::from_frame(auto, frame).unwrap(), packet);
        }
    }

    #[test]
    fn the_error_names_the_server_and_the_setting_to_use() {
        let error = socketio2_server("its CONNECT reply for / carries no sid");
        assert!(is_socketio2_server(&error));
        assert!(!is_socketio2_server(&ProtocolError::Empty));
        let text = error.to_string();
        assert!(text.contains("socket.io 2"), "{text}");
        assert!(
            text.contains("protocol_version(EngineVersion::V3)"),
            "{text}"
        );
        assert!(text.contains("EngineVersion::Auto"), "{text}");
        assert!(text.contains("carries no sid"), "{text}");
    }
}
