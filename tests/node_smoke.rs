//! Proves the interop machinery itself (tests/support + tests/node/server.js) with raw
//! HTTP long-polling, independent of the client under test.

mod support;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::panic;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use support::{NodeOptions, NodeServer, SioVersion};

/// A safety net so a broken server fails the test instead of hanging it; every response
/// these tests wait for is due immediately.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// One HTTP/1.1 request on a fresh connection; returns (status, body).
fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let head = support::http::parse_response_head(&raw)
        .unwrap()
        .expect("a complete response head");
    assert!(
        !head.headers.is_chunked(),
        "unexpected chunked response: {}",
        head.text()
    );
    let body = String::from_utf8(raw[head.raw.len()..].to_vec()).unwrap();
    (head.status, body)
}

fn get(port: u16, path: &str) -> String {
    let (status, body) = http(port, "GET", path, "");
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

fn post(port: u16, path: &str, body: &str) {
    let (status, reply) = http(port, "POST", path, body);
    assert_eq!(
        (status, reply.as_str()),
        (200, "ok"),
        "POST {path} {body:?}"
    );
}

/// Engine.IO v4 polling handshake: returns (sid, open packet JSON).
fn v4_open(port: u16) -> (String, serde_json::Value) {
    let body = get(port, "/socket.io/?EIO=4&transport=polling");
    let json = body.strip_prefix('0').unwrap_or_else(|| panic!("{body}"));
    let open: serde_json::Value = serde_json::from_str(json).unwrap();
    (open["sid"].as_str().unwrap().to_owned(), open)
}

/// Splits an Engine.IO v3 (b64=1) payload `len:packet len:packet...` into its packets.
fn v3_packets(mut payload: &str) -> Vec<String> {
    let mut packets = Vec::new();
    while !payload.is_empty() {
        let (len, rest) = payload.split_once(':').unwrap();
        let len: usize = len.parse().unwrap();
        // Lengths count UTF-16 units; these tests only exchange ASCII.
        let (packet, rest) = rest.split_at(len);
        packets.push(packet.to_owned());
        payload = rest;
    }
    packets
}

fn v3_frame(packet: &str) -> String {
    format!("{}:{packet}", packet.len())
}

#[test]
fn v4_polling_handshake() {
    let server = NodeServer::start_default(SioVersion::V4);
    assert_eq!(server.url(), format!("http://127.0.0.1:{}", server.port()));
    let body = get(server.port(), "/socket.io/?EIO=4&transport=polling");
    assert!(body.starts_with("0{"), "{body}");
    assert!(body.contains("\"sid\""), "{body}");
    let (_, open) = v4_open(server.port());
    assert_eq!(open["upgrades"], serde_json::json!(["websocket"]));
    assert_eq!(open["pingInterval"], 25000);
}

#[test]
fn v2_polling_handshake_connects_default_namespace() {
    let server = NodeServer::start_default(SioVersion::V2);
    assert_eq!(server.version().eio(), 3);
    let body = get(server.port(), "/socket.io/?EIO=3&transport=polling&b64=1");
    let packets = v3_packets(&body);
    assert_eq!(packets.len(), 2, "{body}");
    assert!(packets[0].starts_with("0{"), "{body}");
    assert!(packets[0].contains("\"sid\""), "{body}");
    assert_eq!(packets[1], "40", "{body}");
}

#[test]
fn options_reach_the_server() {
    let options = NodeOptions {
        ping_interval_ms: Some(1234),
        ping_timeout_ms: Some(567),
        max_payload: Some(4321),
        recovery: false,
    };
    let server = NodeServer::start(SioVersion::V4, options.clone());
    assert_eq!(server.options(), &options);
    let (_, open) = v4_open(server.port());
    assert_eq!(open["pingInterval"], 1234);
    assert_eq!(open["pingTimeout"], 567);
    assert_eq!(open["maxPayload"], 4321);

    let server = NodeServer::start(SioVersion::V2, options);
    let body = get(server.port(), "/socket.io/?EIO=3&transport=polling&b64=1");
    let open: serde_json::Value =
        serde_json::from_str(v3_packets(&body)[0].strip_prefix('0').unwrap()).unwrap();
    assert_eq!(open["pingInterval"], 1234);
    assert_eq!(open["pingTimeout"], 567);
}

#[test]
fn v4_events_acks_and_admin_auth() {
    let server = NodeServer::start_default(SioVersion::V4);
    let port = server.port();
    let (sid, _) = v4_open(port);
    let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");

    post(port, &path, "40");
    let connect = get(port, &path);
    assert!(connect.starts_with("40{\"sid\":"), "{connect}");
    assert!(
        !connect.contains("\"pid\""),
        "no recovery by default: {connect}"
    );

    // Several packets in one POST are separated by \x1e in Engine.IO v4.
    post(
        port,
        &path,
        "42[\"echo\",1,\"a\"]\x1e421[\"ack\",\"x\",{\"y\":2}]",
    );
    let replies = get(port, &path);
    let mut replies: Vec<&str> = replies.split('\x1e').collect();
    replies.sort();
    assert_eq!(replies, ["42[\"echo\",1,\"a\"]", "431[\"x\",{\"y\":2}]"]);

    post(port, &path, "42[\"request-ack\",7]");
    assert_eq!(get(port, &path), "420[\"need-ack\",7]");
    post(port, &path, "430[\"back\",8]");
    assert_eq!(get(port, &path), "42[\"got-ack\",\"back\",8]");

    post(port, &path, "40/admin,{\"token\":\"nope\"}");
    assert_eq!(
        get(port, &path),
        "44/admin,{\"message\":\"not authorized\",\"data\":{\"reason\":\"bad token\"}}"
    );
    post(port, &path, "40/admin,{\"token\":\"secret\"}");
    let admin = get(port, &path);
    assert!(admin.starts_with("40/admin,{\"sid\":"), "{admin}");

    post(port, &path, "42/admin,[\"broadcast\",\"hi\"]");
    assert_eq!(get(port, &path), "42/admin,[\"broadcast\",\"hi\"]");
    // disconnect(true) closes the whole Engine.IO connection, so "/" goes down too.
    post(port, &path, "42/admin,[\"disconnect-me\"]");
    assert_eq!(get(port, &path), "41\x1e41/admin,");
}

#[test]
fn v4_recovery_flag_enables_connection_state_recovery() {
    let options = NodeOptions {
        recovery: true,
        ..NodeOptions::default()
    };
    let server = NodeServer::start(SioVersion::V4, options);
    let port = server.port();
    let (sid, _) = v4_open(port);
    let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    post(port, &path, "40");
    let connect = get(port, &path);
    assert!(connect.contains("\"pid\""), "{connect}");
}

#[test]
fn v2_admin_token_comes_from_the_namespace_connect_query() {
    let server = NodeServer::start_default(SioVersion::V2);
    let port = server.port();
    // No token in the request URL: only the CONNECT packet carries it.
    let body = get(port, "/socket.io/?EIO=3&transport=polling&b64=1");
    let open: serde_json::Value =
        serde_json::from_str(v3_packets(&body)[0].strip_prefix('0').unwrap()).unwrap();
    let sid = open["sid"].as_str().unwrap();
    let path = format!("/socket.io/?EIO=3&transport=polling&b64=1&sid={sid}");

    post(port, &path, &v3_frame("40/admin?token=nope,"));
    assert_eq!(
        v3_packets(&get(port, &path)),
        ["44/admin,\"not authorized\""]
    );
    post(port, &path, &v3_frame("40/admin?token=secret,"));
    assert_eq!(v3_packets(&get(port, &path)), ["40/admin,"]);

    post(port, &path, &v3_frame("42/admin,1[\"ack\",\"x\"]"));
    assert_eq!(v3_packets(&get(port, &path)), ["43/admin,1[\"x\"]"]);
    post(port, &path, &v3_frame("42[\"echo\",\"e\"]"));
    assert_eq!(v3_packets(&get(port, &path)), ["42[\"echo\",\"e\"]"]);
}

fn assert_refused(port: u16) {
    let err = TcpStream::connect(("127.0.0.1", port)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
}

#[test]
fn drop_kills_the_process() {
    let server = NodeServer::start_default(SioVersion::V4);
    let port = server.port();
    let pid = server.pid().unwrap();
    TcpStream::connect(("127.0.0.1", port)).unwrap();
    drop(server);
    assert_refused(port);
    if cfg!(target_os = "linux") {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} still exists"
        );
    }
}

#[test]
fn kill_then_restart_on_the_same_port() {
    let mut server = NodeServer::start_default(SioVersion::V2);
    let port = server.port();
    let first_pid = server.pid().unwrap();
    get(port, "/socket.io/?EIO=3&transport=polling&b64=1");

    server.kill();
    assert!(!server.is_running());
    assert_eq!(server.pid(), None);
    assert_refused(port);

    server.restart();
    assert_eq!(server.port(), port);
    assert_ne!(server.pid(), Some(first_pid));
    let body = get(port, "/socket.io/?EIO=3&transport=polling&b64=1");
    assert!(v3_packets(&body)[0].starts_with("0{"), "{body}");
    assert!(server.stderr().contains("listening"), "{}", server.stderr());

    // restart() also works while the old process is still alive.
    let second_pid = server.pid();
    server.restart();
    assert_ne!(server.pid(), second_pid);
    get(port, "/socket.io/?EIO=3&transport=polling&b64=1");
}

#[test]
fn server_exits_when_its_stdin_closes() {
    support::node::ensure_node_deps();
    let dir = support::node::node_dir();
    let mut child = Command::new("node")
        .arg(dir.join("server.js"))
        .args(["--sio", "4"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("{\"port\":"), "{line}");

    drop(child.stdin.take());
    let (tx, rx) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let status = child.wait();
        let _ = tx.send(());
        (child, status)
    });
    if rx.recv_timeout(IO_TIMEOUT).is_err() {
        panic!("server still running {IO_TIMEOUT:?} after its stdin closed");
    }
    let (_, status) = waiter.join().unwrap();
    assert!(status.unwrap().success());
}

#[test]
fn startup_failure_reports_the_server_stderr() {
    let options = NodeOptions {
        recovery: true,
        ..NodeOptions::default()
    };
    let err = panic::catch_unwind(|| NodeServer::start(SioVersion::V2, options)).unwrap_err();
    let msg = err
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_else(|| format!("{err:?}"));
    assert!(msg.contains("server stderr"), "{msg}");
    assert!(msg.contains("--recovery needs --sio 4"), "{msg}");
}
