//! `sio mock` (src/bin/sio) as a standalone program: started as a process, driven by the
//! official JS client (tests/node/mock_client.js) and by its control API over plain HTTP.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sio_client::{Client, Transport};

/// How long any one thing may take before the test fails: generous for a loaded machine.
const WAIT: Duration = Duration::from_secs(30);

/// The options mock_client.js expects.
const MOCK_ARGS: &[&str] = &[
    "mock",
    "--echo",
    "echo",
    "--ack",
    "sum=[6]",
    "--namespace",
    "/admin",
    "--require-auth",
    r#"/admin={"token":"secret"}"#,
    "--ping-interval",
    "300",
    "--ping-timeout",
    "400",
];

/// A running `sio mock` and the URLs of its ready line.
struct Mock {
    child: Child,
    stdin: Option<ChildStdin>,
    url: String,
    control: String,
}

impl Mock {
    fn start(args: &[&str]) -> Mock {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sio"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting sio mock");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(WAIT)
            .expect("sio mock printed no ready line");
        let ready: Value = serde_json::from_str(&line).expect("the ready line is JSON");
        Mock {
            stdin: child.stdin.take(),
            child,
            url: ready["url"].as_str().expect("url").to_owned(),
            control: ready["control"].as_str().expect("control").to_owned(),
        }
    }

    /// One control API call: status and JSON body.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        http(&self.control, method, path, body)
    }

    fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, json) = self.call(method, path, body.clone());
        assert_eq!(status, 200, "{method} {path} {body:?}: {json}");
        json
    }

    /// Waits for the process to end by itself.
    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "sio mock did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 client on a plain TCP stream: what any language has at hand.
fn http(base: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let addr = base.strip_prefix("http://").expect("an http:// URL");
    let mut stream = TcpStream::connect(addr).expect("connecting to the control API");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .expect("reading the response");
    let head = support::http::parse_response_head(&response)
        .expect("a well-formed response head")
        .expect("a response head");
    let body = &response[head.raw.len()..];
    (
        head.status,
        serde_json::from_slice(body).expect("a JSON body"),
    )
}

#[test]
fn node_client_drives_every_fault_through_the_control_api() {
    support::node::ensure_node_deps();
    let mut mock = Mock::start(MOCK_ARGS);
    let script = support::node::node_dir().join("mock_client.js");
    let mut node = Command::new("node")
        .arg(&script)
        .args([&mock.url, &mock.control])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "running `node {}` (Node.js 18+ needed): {e}",
                script.display()
            )
        });
    let stdout = node.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut out = String::new();
        let _ = BufReader::new(stdout).read_to_string(&mut out);
        let _ = tx.send(out);
    });
    let out = match rx.recv_timeout(Duration::from_secs(90)) {
        Ok(out) => out,
        Err(_) => {
            let _ = node.kill();
            panic!("mock_client.js did not finish");
        }
    };
    let status = node.wait().unwrap();
    assert!(status.success(), "mock_client.js failed ({status}):\n{out}");
    let summary: Value = serde_json::from_str(out.lines().last().expect("output")).unwrap();
    assert_eq!(summary["ok"], json!(true), "{out}");
    let checks: Vec<&str> = summary["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    // Every switch of src/mock/faults.rs, and every control endpoint.
    for name in [
        "reject_websocket",
        "websocket_no_upgrade",
        "reset_on_upgrade",
        "black_hole_websocket",
        "delay",
        "stop_pings",
        "refuse_connections",
        "buffer_streaming",
        "drop_all_connections",
        "sockets",
        "received",
        "emit",
        "disconnect",
        "restart",
        "require_auth",
        "errors",
    ] {
        assert!(checks.contains(&name), "{name} not checked: {out}");
    }

    // What the Node client sent, read from the Rust side.
    let received = mock.ok("GET", "/received", None);
    let events: Vec<&str> = received
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert!(
        events.contains(&"echo") && events.contains(&"sum"),
        "{received}"
    );
    let bye = received
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "bye")
        .expect("the last event of mock_client.js");
    assert_eq!(bye["args"], json!(["from node"]));
    assert_eq!(bye["namespace"], json!("/"));

    // Streaming is this crate's transport, so its fault is checked with this crate's client.
    mock.ok(
        "POST",
        "/faults",
        Some(json!({"name": "buffer_streaming", "value": true})),
    );
    let refused = Client::builder(mock.url.clone())
        .transports([Transport::Streaming])
        .timeout(Duration::from_secs(2))
        .reconnection(false)
        .connect();
    assert!(refused.is_err(), "a buffered streaming GET was used");
    mock.ok("POST", "/faults/clear", None);
    let client = Client::builder(mock.url.clone())
        .transports([Transport::Streaming])
        .timeout(WAIT)
        .connect()
        .expect("streaming works again once the faults are cleared");
    assert_eq!(client.transport(), Transport::Streaming);
    client.disconnect();

    // The end of stdin stops it.
    drop(mock.stdin.take());
    assert!(mock.wait_exit().success());
}

#[test]
fn sigterm_stops_it_and_bad_arguments_exit_2() {
    let mut mock = Mock::start(&["mock", "--ignore-stdin"]);
    let (status, body) = mock.call(
        "POST",
        "/emit",
        Some(json!({"event": "x", "socket": "nope"})),
    );
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains("nope"));
    let (status, body) = mock.call(
        "POST",
        "/faults",
        Some(json!({"name": "delay", "value": "slow"})),
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = mock.call("GET", "/received?wait=1&timeout_ms=50", None);
    assert_eq!(status, 408, "{body}");
    assert_eq!(body["received"], json!([]));

    // stdin is closed yet --ignore-stdin keeps it up: the control API still answers.
    drop(mock.stdin.take());
    assert_eq!(mock.ok("GET", "/sockets", None), json!([]));
    let killed = Command::new("kill")
        .args(["-TERM", &mock.child.id().to_string()])
        .status()
        .expect("running kill");
    assert!(killed.success());
    assert!(mock.wait_exit().success());

    for args in [
        &["mock", "--ack", "no-equals-sign"][..],
        &["mock", "--require-auth", "{not json"][..],
        &["mock", "--namespace", "no-slash"][..],
        &["mock", "--port", "seventy"][..],
        &["doctor"][..],
        &["frobnicate"][..],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_sio"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr).to_lowercase();
        assert!(stderr.contains("usage: sio"), "{args:?}: {stderr}");
    }
    for command in ["connect", "doctor", "mock"] {
        let output = Command::new(env!("CARGO_BIN_EXE_sio"))
            .args([command, "--help"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{command} --help");
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(help.contains(&format!("Usage: sio {command}")), "{help}");
    }
}

#[test]
fn doctor_reports_a_blocked_websocket_and_exits_1_when_nothing_connects() {
    use sio_client::mock::MockServer;
    let server = MockServer::builder()
        .path("/custom/")
        .on("/", "ping", |_, _, ack| {
            if let Some(ack) = ack {
                ack.send(sio_client::Args::new());
            }
        })
        .start_background()
        .unwrap();
    server.faults().reject_websocket(Some(403));
    let output = Command::new(env!("CARGO_BIN_EXE_sio"))
        .args([
            "doctor",
            &server.url(),
            "--path",
            "/custom/",
            "--ack-event",
            "ping",
        ])
        .args(["--query", "room=7", "-H", "X-Test: 1", "--timeout", "10"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let websocket = stdout
        .lines()
        .find(|l| l.starts_with("websocket"))
        .expect("a websocket row");
    assert!(
        websocket.contains("FAILED") && websocket.contains("HTTP 403"),
        "{stdout}"
    );
    let polling = stdout.lines().find(|l| l.starts_with("polling")).unwrap();
    assert!(polling.contains(" ok "), "{stdout}");
    assert!(
        stdout.contains("verdict: connected, but WebSocket is blocked"),
        "{stdout}"
    );

    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = Command::new(env!("CARGO_BIN_EXE_sio"))
        .args([
            "doctor",
            &format!("http://127.0.0.1:{port}"),
            "--timeout",
            "5",
        ])
        .args(["--transport", "websocket,polling"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("verdict: cannot connect"), "{stdout}");
    // Only the transports asked for are tried.
    assert!(
        !stdout.lines().any(|l| l.starts_with("streaming")),
        "{stdout}"
    );
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The ```python block of the README's `sio mock` section.
fn readme_pytest_example() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("```python\n")
        .expect("a ```python block in README.md")
        + "```python\n".len();
    let end = start + readme[start..].find("```\n").expect("the block's end");
    readme[start..end].to_owned()
}

#[test]
fn the_readme_pytest_example_passes_against_sio_mock() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python");
    let file = dir.join("test_sio_mock_example.py");
    let example = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        readme_pytest_example(),
        example,
        "README.md's pytest example and {} must stay the same",
        file.display()
    );
    let python = support::servers::python_venv();
    let output = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(&file)
        .env("SIO", env!("CARGO_BIN_EXE_sio"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {} -m pytest: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "pytest failed ({}):\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
}

/// Runs a Node script of tests/node with arguments; its last stdout line, as JSON.
fn node_script(script: &str, args: &[&str]) -> Value {
    support::node::ensure_node_deps();
    let dir = support::node::node_dir();
    let output = Command::new("node")
        .arg(dir.join(script))
        .args(args)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running `node {script}` (Node.js 18+ needed): {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{script} failed ({}):\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.lines().last().expect("output")).unwrap()
}

#[test]
fn engine_io_mode_echoes_to_nodes_engine_io_client() {
    let mock = Mock::start(&["mock", "--engine-io"]);
    let summary = node_script("engine_client.js", &[&mock.url, "/engine.io/"]);
    assert_eq!(
        summary,
        json!({ "text": "hello", "binary": [1, 2, 3], "transport": "websocket" })
    );
    let received = mock.ok("GET", "/received?wait=2&timeout_ms=10000", None);
    assert_eq!(received[0]["event"], "message");
    assert_eq!(received[0]["namespace"], "");
    assert_eq!(received[0]["args"], json!(["hello"]));

    // Recording only, and messages pushed through the control API.
    let mock = Mock::start(&["mock", "--engine-io", "--no-echo", "--path", "/raw/"]);
    let url = format!("{}/raw/?EIO=4&transport=polling", mock.url);
    let addr = mock.url.strip_prefix("http://").unwrap().to_owned();
    let body = raw_get(&addr, &url);
    let sid = serde_json::from_str::<Value>(&body[1..]).unwrap()["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let sessions = mock.ok("GET", "/sockets", None);
    assert_eq!(sessions[0]["id"], json!(sid));
    assert_eq!(
        mock.ok("POST", "/emit", Some(json!({"message": "pushed"}))),
        json!({"sent": 1})
    );
    assert_eq!(raw_get(&addr, &format!("{url}&sid={sid}")), "4pushed");
    let (status, _) = mock.call("POST", "/emit", Some(json!({"event": "x"})));
    assert_eq!(status, 400, "a plain Engine.IO server has no events");
}

/// One GET on its own connection; the body.
fn raw_get(addr: &str, url: &str) -> String {
    let path = url.split_once(addr).map(|(_, p)| p).unwrap_or(url);
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.split_once("\r\n\r\n").unwrap().1.to_owned()
}

#[test]
fn eio3_mode_serves_the_socket_io_2_client() {
    let mock = Mock::start(&[
        "mock",
        "--eio",
        "3",
        "--echo",
        "echo",
        "--ack",
        "sum=[6]",
        "--require-auth",
        r#"/admin={"token":"secret"}"#,
    ]);
    for transport in ["websocket", "polling"] {
        let summary = node_script("socketio2_client.js", &[&mock.url, transport]);
        assert_eq!(
            summary,
            json!({
                "echo": ["hi", {"n": 1}],
                "sum": [6],
                "admin_refused": "not authorized",
                "admin_echo": ["in admin"],
                "transport": transport,
            }),
            "{transport}"
        );
    }
    let received = mock.ok("GET", "/received", None);
    let admin = received
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["namespace"] == "/admin")
        .expect("an event on /admin");
    assert_eq!(admin["args"], json!(["in admin"]));

    for args in [
        &["mock", "--eio", "5"][..],
        &["mock", "--eio", "3", "--recovery", "1000"][..],
        &["mock", "--engine-io", "--namespace", "/x"][..],
        &["mock", "--no-echo"][..],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_sio"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }
}
