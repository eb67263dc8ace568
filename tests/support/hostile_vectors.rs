//! The hostile-server vectors of `tests/hostile_server.rs` as data: each [`Vector`] is a name,
//! what the scripted server ([`super::hostile::HostileServer`]) sends, and what the client must
//! make of it. Where each vector runs (transport, version, stage) and how an outcome is judged
//! stay with the runner in the test file.

use sio_client::{DisconnectReason, EngineVersion};

use super::hostile::{open_packet, Out, Stage};

/// What a vector must lead to (outside [`Stage::Open`], where anything but a valid open packet
/// must make `connect()` fail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A typed connect error, or an error/disconnect event.
    Fatal,
    /// The connection keeps working.
    Benign,
    /// Either of the above, as long as nothing panics or hangs (input whose right handling is a
    /// matter of taste).
    Handled,
}

/// The transports a vector runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Only {
    Both,
    WebSocket,
    Polling,
}

/// One vector: its name, what the server sends, and what the client must make of it.
pub struct Vector {
    /// Names the vector in failure reports.
    pub name: &'static str,
    /// What the server sends, in order.
    pub steps: Vec<Out>,
    /// What it sends instead with v3, when the wire form differs.
    pub steps_v3: Option<Vec<Out>>,
    /// The expected outcome with v4.
    pub v4: Expect,
    /// The expected outcome with v3.
    pub v3: Expect,
    /// The transports it runs on.
    pub only: Only,
    /// The only version to run with, when the vector is about one.
    pub version: Option<EngineVersion>,
    /// Stages to run at, when not the layer's default (see [`Vector::plan`]).
    pub stages: Option<&'static [Stage]>,
    /// For vectors about the open packet itself: its expectation holds at [`Stage::Open`] too.
    pub about_open: bool,
    /// The client's `max_receive` for this vector, when not the default.
    pub max_receive: Option<usize>,
    /// The disconnect reason required when the connection ends after connecting.
    pub reason: Option<DisconnectReason>,
}

/// A vector expecting `expect` with both versions, on both transports.
pub fn vector(name: &'static str, steps: Vec<Out>, expect: Expect) -> Vector {
    Vector {
        name,
        steps,
        steps_v3: None,
        v4: expect,
        v3: expect,
        only: Only::Both,
        version: None,
        stages: None,
        about_open: false,
        max_receive: None,
        reason: None,
    }
}

impl Vector {
    /// Runs over WebSocket only.
    pub fn websocket_only(mut self) -> Self {
        self.only = Only::WebSocket;
        self
    }

    /// Runs over polling only.
    pub fn polling_only(mut self) -> Self {
        self.only = Only::Polling;
        self
    }

    /// Runs with v3 only.
    pub fn v3_only(mut self) -> Self {
        self.version = Some(EngineVersion::V3);
        self
    }

    /// Runs with v4 only.
    pub fn v4_only(mut self) -> Self {
        self.version = Some(EngineVersion::V4);
        self
    }

    /// Sends `steps` instead with v3.
    pub fn v3_steps(mut self, steps: Vec<Out>) -> Self {
        self.steps_v3 = Some(steps);
        self
    }

    /// Sent in place of the open packet only; the expectation is about that.
    pub fn open(mut self) -> Self {
        self.stages = Some(&[Stage::Open]);
        self.about_open = true;
        self
    }

    /// Transparent to the protocol (nothing replaces the open packet), so not run there.
    pub fn not_instead_of_open(mut self) -> Self {
        self.stages = Some(&[Stage::AfterConnect]);
        self
    }

    /// Runs with the client's `max_receive` set to `bytes`.
    pub fn max_receive(mut self, bytes: usize) -> Self {
        self.max_receive = Some(bytes);
        self
    }

    /// Requires this disconnect reason once connected.
    pub fn reason(mut self, reason: DisconnectReason) -> Self {
        self.reason = Some(reason);
        self
    }

    /// What is sent with `version`.
    pub fn steps(&self, version: EngineVersion) -> Vec<Out> {
        match (&self.steps_v3, version) {
            (Some(steps), EngineVersion::V3) => steps.clone(),
            _ => self.steps.clone(),
        }
    }
}

/// An Engine.IO packet in text form.
pub fn t(text: impl Into<String>) -> Out {
    Out::Text(text.into())
}

/// A binary message.
pub fn bin(bytes: &[u8]) -> Out {
    Out::Binary(bytes.to_vec())
}

/// A text frame (or polling body) of exactly these bytes, valid UTF-8 or not.
pub fn raw(bytes: &[u8]) -> Out {
    Out::Raw(bytes.to_vec())
}

/// These bytes straight onto the connection, then a hang-up.
pub fn wire(bytes: &[u8]) -> Out {
    Out::WireThenHangup(bytes.to_vec())
}

/// An EVENT whose argument nests `depth` arrays deep.
pub fn deep_json(depth: usize) -> String {
    format!("42[\"deep\",{}1{}]", "[".repeat(depth), "]".repeat(depth))
}

/// Every vector, Engine.IO level first.
pub fn vectors() -> Vec<Vector> {
    use DisconnectReason::*;
    use Expect::*;
    let placeholder0 = r#"{"_placeholder":true,"num":0}"#;
    vec![
        // Engine.IO level.
        vector("empty frame / empty body", vec![t("")], Fatal),
        vector("unknown engine.io type 9", vec![t("9")], Fatal).reason(ParseError),
        vector("unknown engine.io type x", vec![t("x42[\"a\"]")], Fatal).reason(ParseError),
        vector("engine.io type beyond ASCII", vec![t("é")], Fatal).reason(ParseError),
        vector("close packet", vec![t("1")], Fatal).reason(TransportClose),
        vector("noop", vec![t("6")], Benign),
        vector("upgrade packet out of place", vec![t("5")], Benign),
        vector("unsolicited pong", vec![t("3")], Benign),
        vector("probe pong", vec![t("3probe")], Benign),
        vector("ping with data", vec![t("2hello")], Benign),
        vector("second open packet", vec![t(open_packet(EngineVersion::V4))], Benign),
        vector("open packet with bad JSON later", vec![t("0{nope")], Handled),
        vector("bad base64 binary bAQ!!", vec![t("bAQ!!")], Fatal),
        vector("bad base64 binary b4AQ!!", vec![t("b4AQ!!")], Fatal),
        vector("invalid UTF-8 text", vec![raw(&[b'4', b'2', 0xff, 0xfe])], Fatal),
        vector(
            "huge message over max_receive",
            vec![t(format!("42[\"big\",\"{}\"]", "x".repeat(4000)))],
            Fatal,
        )
        .max_receive(1024),
        // Socket.IO level.
        vector("empty socket.io packet", vec![t("4")], Fatal).reason(ParseError),
        vector("unknown socket.io type 9", vec![t("49")], Fatal).reason(ParseError),
        vector("truncated event", vec![t("42[\"ev\"")], Fatal).reason(ParseError),
        vector("bad JSON", vec![t("42[nope]")], Fatal).reason(ParseError),
        vector("trailing garbage after JSON", vec![t("42[\"a\"]xyz")], Fatal),
        vector("event not an array", vec![t("42{\"a\":1}")], Fatal).reason(ParseError),
        vector("event is a string", vec![t("42\"ev\"")], Fatal).reason(ParseError),
        vector("event without payload", vec![t("42")], Fatal).reason(ParseError),
        vector("event name not a string", vec![t("42[1]")], Fatal).reason(ParseError),
        vector("empty event array", vec![t("42[]")], Fatal).reason(ParseError),
        vector(
            "huge ack id",
            vec![t("42999999999999999999999[\"x\"]")],
            Fatal,
        ),
        vector(
            "largest ack id",
            vec![t("4218446744073709551615[\"x\"]")],
            Benign,
        ),
        vector("namespace without comma", vec![t("42/nope[\"x\"]")], Handled),
        vector("empty namespace", vec![t("42/,[\"x\"]")], Handled),
        vector("event for unknown namespace", vec![t("42/nope,[\"x\"]")], Benign),
        vector(
            "event named like a reserved event",
            vec![t("42[\"connect\"]"), t("42[\"disconnect\",\"x\"]")],
            Benign,
        ),
        vector(
            "unicode and NUL in event",
            vec![t("42[\"é😀\\u0000\",\"\\u0000\",\"😀\"]")],
            Benign,
        ),
        vector("lone surrogate escape", vec![t("42[\"\\ud800\"]")], Handled),
        vector("number out of range", vec![t("42[\"x\",1e999]")], Handled),
        vector("huge integer", vec![t(format!("42[\"x\",{}]", "9".repeat(400)))], Handled),
        vector("JSON nested 10000 deep", vec![t(deep_json(10_000))], Fatal),
        vector("JSON nested 100 deep", vec![t(deep_json(100))], Benign),
        vector(
            "placeholder in a plain event",
            vec![t(format!("42[\"x\",{placeholder0},{{\"_placeholder\":true,\"num\":7}}]"))],
            Benign,
        ),
        vector(
            "malformed placeholders in a plain event",
            vec![t(
                "42[\"x\",{\"_placeholder\":true},{\"_placeholder\":true,\"num\":-1},\
                 {\"_placeholder\":true,\"num\":\"0\"},{\"_placeholder\":true,\"num\":1.5}]",
            )],
            Benign,
        ),
        // Binary packets.
        vector(
            "binary event then text",
            vec![t(format!("451-[\"x\",{placeholder0}]")), t("42[\"y\"]")],
            Fatal,
        )
        .reason(ParseError),
        vector(
            "huge attachment count",
            vec![t(format!("45999999999-[\"x\",{placeholder0}]"))],
            Fatal,
        )
        .reason(ParseError),
        vector(
            "attachment count overflows u64",
            vec![t(format!("4518446744073709551616-[\"x\",{placeholder0}]"))],
            Fatal,
        )
        .reason(ParseError),
        vector(
            "attachment count missing",
            vec![t(format!("45-[\"x\",{placeholder0}]"))],
            Fatal,
        ),
        vector(
            "attachment count without dash",
            vec![t(format!("451[\"x\",{placeholder0}]"))],
            Fatal,
        ),
        vector(
            "placeholder out of range",
            vec![
                t("451-[\"x\",{\"_placeholder\":true,\"num\":5}]"),
                bin(&[1, 2, 3]),
            ],
            Fatal,
        )
        .reason(ParseError),
        vector(
            "placeholder with zero attachments",
            vec![t(format!("450-[\"x\",{placeholder0}]"))],
            Fatal,
        ),
        vector(
            "placeholder num beyond u64",
            vec![
                t("451-[\"x\",{\"_placeholder\":true,\"num\":99999999999999999999999}]"),
                bin(&[1]),
            ],
            Handled,
        ),
        vector("binary frame with no pending packet", vec![bin(&[1, 2, 3])], Fatal)
            .reason(ParseError),
        vector("empty binary message", vec![bin(&[])], Fatal),
        vector(
            "valid binary event",
            vec![t(format!("451-[\"bin\",{placeholder0}]")), bin(&[0, 255])],
            Benign,
        ),
        vector(
            "binary ack for unknown id",
            vec![t(format!("461-999[{placeholder0}]")), bin(&[9])],
            Benign,
        ),
        // Acknowledgements, connects, disconnects.
        vector("ack for unknown id", vec![t("43999[\"late\"]")], Benign),
        vector("ack without id", vec![t("43[1]")], Handled),
        vector("ack not an array", vec![t("431{}")], Handled),
        vector("ack without payload", vec![t("431")], Handled),
        vector("disconnect of unknown namespace", vec![t("41/nope,")], Benign),
        vector("disconnect of main namespace", vec![t("41")], Fatal).reason(IoServerDisconnect),
        vector(
            "disconnect with junk payload",
            vec![t("41[1,{\"a\":2}]")],
            Handled,
        ),
        vector(
            "connect for unknown namespace",
            vec![t("40/nope,{\"sid\":\"z\"}")],
            Benign,
        )
        .v3_steps(vec![t("40/nope,")]),
        vector("duplicate connect", vec![t("40{\"sid\":\"dup\"}")], Benign)
            .v3_steps(vec![t("40")]),
        vector("connect with array payload", vec![t("40[1]")], Handled),
        vector("connect_error with a number", vec![t("44123")], Fatal),
        vector("connect_error with an array", vec![t("44[1,2]")], Fatal),
        vector("connect_error with nothing", vec![t("44")], Fatal),
        vector(
            "connect_error with odd message and data",
            vec![t("44{\"message\":{\"nested\":[1]},\"data\":[null]}")],
            Fatal,
        ),
        vector(
            "connect_error for unknown namespace",
            vec![t("44/nope,{\"message\":\"no\"}")],
            Benign,
        ),
        // Connection breakage.
        // A polling request whose connection closes before any answer is sent once more on a
        // new connection, as one that met a stale kept-alive connection
        // (src/transport/retry.rs): one hang-up is survived, a second in a row is the error.
        vector("hang up", vec![Out::Hangup], Fatal).websocket_only(),
        vector("hang up twice", vec![Out::Hangup, Out::Hangup], Fatal).polling_only(),
        vector("hang up once", vec![Out::Hangup], Benign)
            .polling_only()
            .not_instead_of_open(),
        vector("WebSocket close frame", vec![Out::CloseFrame], Fatal)
            .reason(TransportClose)
            .websocket_only(),
        vector(
            "TCP closed mid-frame",
            vec![wire(&[0x81, 0x7e, 0x01, 0x00, b'4', b'2'])],
            Fatal,
        )
        .websocket_only(),
        vector(
            "TCP closed mid-body",
            vec![wire(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n42[",
            )],
            Fatal,
        )
        .polling_only(),
        // hyper reports a head cut short as it reports no answer at all, so this request too is
        // sent once more: the second cut is the error.
        vector(
            "TCP closed mid-headers",
            vec![
                wire(b"HTTP/1.1 200 OK\r\nContent-Le"),
                wire(b"HTTP/1.1 200 OK\r\nContent-Le"),
            ],
            Fatal,
        )
        .polling_only(),
        vector("not HTTP at all", vec![wire(b"garbage\r\n\r\n")], Fatal).polling_only(),
        vector(
            "bad content-length",
            vec![wire(b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n42[\"x\"]")],
            Fatal,
        )
        .polling_only(),
        vector(
            "bad chunked encoding",
            vec![wire(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n42\r\n0\r\n\r\n",
            )],
            Fatal,
        )
        .polling_only(),
        vector(
            "HTTP 500",
            vec![Out::Status(500, "boom".into())],
            Fatal,
        )
        .polling_only(),
        vector(
            "HTTP 400 session unknown",
            vec![Out::Status(
                400,
                "{\"code\":1,\"message\":\"Session ID unknown\"}".into(),
            )],
            Fatal,
        )
        .polling_only(),
        vector("empty polling body", vec![raw(b"")], Fatal).polling_only(),
        vector("v3 payload length past the end", vec![raw(b"99:4hi")], Fatal)
            .polling_only()
            .v3_only(),
        vector("v3 payload length not a number", vec![raw(b"x:4hi")], Fatal)
            .polling_only()
            .v3_only(),
        vector("v3 payload length without packet", vec![raw(b"4:")], Fatal)
            .polling_only()
            .v3_only(),
        vector("v3 payload without colon", vec![raw(b"42")], Fatal)
            .polling_only()
            .v3_only(),
        vector(
            "v3 payload length with too many digits",
            vec![raw(b"12345678901234567890123:4")],
            Fatal,
        )
        .polling_only()
        .v3_only(),
        vector(
            "v3 payload length inside a surrogate pair",
            vec![raw("2:4😀".as_bytes())],
            Fatal,
        )
        .polling_only()
        .v3_only(),
        vector("v3 empty payload 0:", vec![raw(b"0:")], Benign)
            .polling_only()
            .v3_only(),
        vector(
            "v3 payload with a bad second element",
            vec![raw(b"7:42[\"a\"]3:x")],
            Fatal,
        )
        .polling_only()
        .v3_only(),
        vector(
            "v4 payload with an empty element",
            vec![raw(b"42[\"a\"]\x1e\x1e42[\"b\"]")],
            Fatal,
        )
        .polling_only()
        .v4_only(),
        vector(
            "v3 binary element with bad type",
            vec![raw(b"4:b9AQ")],
            Fatal,
        )
        .polling_only()
        .v3_only(),
        // WebSocket framing.
        vector(
            "binary frame with bad v3 type byte",
            vec![Out::RawBinary(vec![9, 1, 2])],
            Fatal,
        )
        .websocket_only(),
        vector(
            "binary frame where text expected",
            vec![Out::RawBinary(b"42[\"x\"]".to_vec())],
            Fatal,
        )
        .websocket_only(),
        vector("empty binary frame", vec![Out::RawBinary(Vec::new())], Fatal)
            .websocket_only(),
        vector(
            "reserved opcode",
            vec![wire(&[0x83, 0x00])],
            Fatal,
        )
        .websocket_only(),
        vector(
            "masked frame from the server",
            vec![wire(&[0x81, 0x82, 1, 2, 3, 4, b'4' ^ 1, b'2' ^ 2])],
            Fatal,
        )
        .websocket_only(),
        vector(
            "continuation without a start",
            vec![wire(&[0x80, 0x01, b'x'])],
            Fatal,
        )
        .websocket_only(),
        vector(
            "oversized control frame",
            vec![wire(&[0x89, 0x7e, 0x00, 0xc8])],
            Fatal,
        )
        .websocket_only(),
        vector(
            "frame length beyond 2^63",
            vec![wire(&[0x81, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])],
            Fatal,
        )
        .websocket_only(),
        // The open packet itself.
        vector("open with bad JSON", vec![t("0{nope")], Fatal).open(),
        vector("open without JSON", vec![t("0")], Fatal).open(),
        vector("open not an object", vec![t("0[1]")], Fatal).open(),
        vector(
            "open without sid",
            vec![t(r#"0{"upgrades":[],"pingInterval":25000,"pingTimeout":20000}"#)],
            Fatal,
        )
        .open(),
        vector(
            "open with empty sid",
            vec![t(r#"0{"sid":"","upgrades":[],"pingInterval":25000,"pingTimeout":20000}"#)],
            Fatal,
        )
        .open(),
        vector(
            "open with numeric sid",
            vec![t(r#"0{"sid":1,"upgrades":[],"pingInterval":25000,"pingTimeout":20000}"#)],
            Fatal,
        )
        .open(),
        vector(
            "open with negative pingInterval",
            vec![t(r#"0{"sid":"s","upgrades":[],"pingInterval":-1,"pingTimeout":20000}"#)],
            Fatal,
        )
        .open(),
        vector(
            "open with string pingTimeout",
            vec![t(r#"0{"sid":"s","upgrades":[],"pingInterval":1,"pingTimeout":"x"}"#)],
            Fatal,
        )
        .open(),
        vector(
            "open with upgrades not an array",
            vec![t(r#"0{"sid":"s","upgrades":"websocket","pingInterval":1,"pingTimeout":1}"#)],
            Fatal,
        )
        .open(),
        vector(
            "open with bad maxPayload",
            vec![t(
                r#"0{"sid":"s","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":"x"}"#,
            )],
            Fatal,
        )
        .open(),
        vector(
            "open with huge heartbeat values",
            vec![t(
                r#"0{"sid":"s","upgrades":[],"pingInterval":1e300,"pingTimeout":99999999999999999999999}"#,
            )],
            Benign,
        )
        .open(),
        vector(
            "open with maxPayload 0",
            vec![t(
                r#"0{"sid":"s","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":0}"#,
            )],
            Benign,
        )
        .open(),
        vector(
            "open with zero heartbeat",
            vec![t(r#"0{"sid":"s","upgrades":[],"pingInterval":0,"pingTimeout":0}"#)],
            Handled,
        )
        .open(),
        vector(
            "open followed by garbage in the same body",
            vec![raw(format!("{}\x1e9", open_packet(EngineVersion::V4)).as_bytes())],
            Fatal,
        )
        .v3_steps(vec![raw(
            format!("{}:{}1:9", open_packet(EngineVersion::V3).len(), open_packet(EngineVersion::V3))
                .as_bytes(),
        )])
        .polling_only()
        .open(),
        vector(
            "handshake answered 403",
            vec![Out::Status(403, "go away".into())],
            Fatal,
        )
        .open(),
        vector(
            "WebSocket ping frame",
            vec![Out::Wire(vec![0x89, 0x02, b'h', b'i'])],
            Benign,
        )
        .websocket_only()
        .v4_only()
        .not_instead_of_open(),
        vector(
            "fragmented text message",
            vec![Out::Wire(vec![
                0x01, 0x02, b'4', b'2', 0x80, 0x05, b'[', b'"', b'x', b'"', b']',
            ])],
            Benign,
        )
        .websocket_only(),
    ]
}
