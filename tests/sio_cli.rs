//! `sio connect` (src/bin/sio), driven through stdin/stdout against the mock server and real
//! Node socket.io 4 and 2 servers.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use serde_json::{json, Value};
use support::{NodeOptions, NodeServer, SioVersion};

const WAIT: Duration = Duration::from_secs(10);

/// The `sio` binary cargo built for this test (the test needs the `cli` feature).
fn sio_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sio"))
}

/// A running `sio` with its stdout read line by line on a thread.
struct Sio {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Sio {
    fn start(args: &[&str]) -> Sio {
        let mut child = Command::new(sio_binary())
            .arg("connect")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting sio");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Sio {
            child,
            stdin,
            lines,
        }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// The next output line, parsed; panics if none comes in time or stdout ended.
    fn next(&mut self) -> Value {
        let line = self
            .lines
            .recv_timeout(WAIT)
            .expect("sio printed no line in time");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// The next line of `kind`, skipping transport changes (an upgrade may happen any time).
    fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let line = self.next();
            if line["type"] == kind {
                return line;
            }
            assert_eq!(line["type"], "transport", "waiting for {kind}, got {line}");
        }
    }

    /// Closes stdin, collects the remaining lines and waits for the exit.
    fn finish(mut self) -> (ExitStatus, Vec<Value>) {
        drop(self.stdin.take());
        self.wait_exit()
    }

    /// Waits (bounded) until sio exits by itself; returns its status and remaining lines.
    fn wait_exit(mut self) -> (ExitStatus, Vec<Value>) {
        let mut rest = Vec::new();
        loop {
            match self.lines.recv_timeout(WAIT) {
                Ok(line) => rest.push(serde_json::from_str(&line).unwrap()),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("sio did not exit; printed {rest:?}"),
            }
        }
        // stdout is closed: the process has exited or is exiting.
        let status = self.child.wait().unwrap();
        (status, rest)
    }
}

impl Drop for Sio {
    fn drop(&mut self) {
        // Only reached with the process still running when a test failed.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs sio with `args` and no stdin until it exits.
fn run_to_exit(args: &[&str]) -> Output {
    Command::new(sio_binary())
        .arg("connect")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running sio")
}

/// The conversation every server must hold: echo with several arguments, an acknowledged
/// event, a bad command line, then `quit`.
fn echo_ack_quit(mut sio: Sio) {
    sio.send(r#"emit echo ["hi", 42, {"nested": [1, 2]}]"#);
    let line = sio.next_of("event");
    assert_eq!(line["event"], "echo");
    assert_eq!(line["args"], json!(["hi", 42, {"nested": [1, 2]}]));

    // A single JSON value is one argument.
    sio.send(r#"ack ack {"a": 1}"#);
    assert_eq!(
        sio.next_of("ack"),
        json!({"type": "ack", "event": "ack", "args": [{"a": 1}]})
    );

    sio.send("this is not a command");
    let error = sio.next_of("error");
    assert!(error["message"]
        .as_str()
        .unwrap()
        .contains("unknown command"));
    sio.send("emit echo [not json");
    let error = sio.next_of("error");
    assert!(error["message"].as_str().unwrap().contains("not JSON"));

    sio.send("quit");
    let (status, rest) = sio.finish();
    assert!(status.success(), "{status}");
    assert_eq!(
        rest,
        vec![json!({"type": "disconnected", "reason": "io client disconnect"})]
    );
}

#[test]
fn node_v4_over_websocket() {
    let server = NodeServer::start(SioVersion::V4, NodeOptions::default());
    let mut sio = Sio::start(&[&server.url(), "--transport", "websocket"]);
    assert_eq!(
        sio.next(),
        json!({"type": "connected", "namespace": "/", "transport": "websocket"})
    );
    echo_ack_quit(sio);
}

#[test]
fn node_v4_over_polling_with_binary_on_a_namespace() {
    let server = NodeServer::start(SioVersion::V4, NodeOptions::default());
    let mut sio = Sio::start(&[
        &server.url(),
        "--transport",
        "polling",
        "--namespace",
        "/admin",
        "--auth",
        r#"{"token": "secret"}"#,
        "--header",
        "X-Test: yes",
    ]);
    assert_eq!(
        sio.next(),
        json!({"type": "connected", "namespace": "/admin", "transport": "polling"})
    );
    sio.send(r#"ack ack [{"_binary": "AAEC/w=="}, {"deep": [{"_binary": ""}]}]"#);
    assert_eq!(
        sio.next_of("ack")["args"],
        json!([{"_binary": "AAEC/w=="}, {"deep": [{"_binary": ""}]}])
    );
    echo_ack_quit(sio);
}

#[test]
fn node_v4_refused_namespace_fails_to_connect() {
    let server = NodeServer::start(SioVersion::V4, NodeOptions::default());
    let output = run_to_exit(&[&server.url(), "--namespace", "/admin", "--auth", "{}"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not authorized"), "{stderr}");
}

#[test]
fn node_v2_is_refused_by_default_with_a_hint() {
    let server = NodeServer::start(SioVersion::V2, NodeOptions::default());
    let output = run_to_exit(&[&server.url(), "--transport", "websocket"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("socket.io 2") && stderr.contains("--eio 3"),
        "{stderr}"
    );
}

#[test]
fn node_v2_with_eio_auto() {
    let server = NodeServer::start(SioVersion::V2, NodeOptions::default());
    let mut sio = Sio::start(&[&server.url(), "--transport", "polling", "--eio", "auto"]);
    assert_eq!(
        sio.next(),
        json!({"type": "connected", "namespace": "/", "transport": "polling"})
    );
    echo_ack_quit(sio);
}

#[test]
fn unreachable_url_exits_non_zero_with_a_message() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let output = run_to_exit(&[&url, "--timeout", "5"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot connect") && stderr.contains(&url),
        "{stderr}"
    );
}

#[test]
fn bad_arguments_exit_2_with_usage() {
    for args in [
        &[][..],
        &["http://x", "--transport", "carrier-pigeon"][..],
        &["http://x", "--eio", "5"][..],
        &["http://x", "--auth", "{not json"][..],
        &["http://x", "--bogus"][..],
    ] {
        let output = run_to_exit(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr).to_lowercase();
        assert!(stderr.contains("usage: sio connect"), "{args:?}: {stderr}");
    }
}

mod mock {
    use super::*;
    use sio_client::mock::{MockServer, MockServerBuilder};
    use sio_client::{Args, Transport};

    fn mock() -> MockServerBuilder {
        MockServer::builder()
            .ping_interval(Duration::from_millis(100))
            .on("/", "echo", |socket, args, _| socket.emit("echo", args))
            .on("/", "ack", |_, args, ack| {
                if let Some(ack) = ack {
                    ack.send(args)
                }
            })
            .on_connect("/", |socket| {
                let hello =
                    Args::from_serialize(&("hello", bytes::Bytes::from_static(b"\x00\x01")));
                socket.emit("welcome", hello.unwrap());
            })
    }

    #[test]
    fn mock_over_websocket() {
        let server = mock().start_background().unwrap();
        let mut sio = Sio::start(&[&server.url(), "--transport", "websocket"]);
        assert_eq!(
            sio.next(),
            json!({"type": "connected", "namespace": "/", "transport": "websocket"})
        );
        assert_eq!(
            sio.next(),
            json!({"type": "event", "event": "welcome", "args": ["hello", {"_binary": "AAE="}]})
        );
        // What sio sent arrived as such, binary included.
        sio.send(r#"emit echo [{"_binary": "AAEC"}]"#);
        assert_eq!(sio.next_of("event")["args"], json!([{"_binary": "AAEC"}]));
        let received = server.wait_for_events_blocking(1, WAIT).unwrap();
        assert_eq!(received[0].args.binary(0).unwrap().as_ref(), [0, 1, 2]);
        assert_eq!(received[0].transport, Transport::WebSocket);
        echo_ack_quit(sio);
    }

    #[test]
    fn mock_upgrade_is_reported() {
        let server = mock().start_background().unwrap();
        let mut sio = Sio::start(&[&server.url(), "--transport", "upgrade"]);
        // The upgrade may complete at any point around the namespace's CONNECT and the
        // server's greeting; those two keep their order.
        let lines = [sio.next(), sio.next(), sio.next()];
        let kinds: Vec<_> = lines.iter().filter(|l| l["type"] != "transport").collect();
        assert_eq!(kinds[0]["type"], "connected");
        assert_eq!(kinds[0]["transport"], "polling");
        assert_eq!(kinds[1]["event"], "welcome");
        let transport: Vec<_> = lines.iter().filter(|l| l["type"] == "transport").collect();
        assert_eq!(
            transport,
            [&json!({"type": "transport", "from": "polling", "to": "websocket"})]
        );
        echo_ack_quit(sio);
    }

    #[test]
    fn server_acknowledgement_is_answered_with_reply() {
        let server = mock().start_background().unwrap();
        let mut sio = Sio::start(&[&server.url()]);
        assert_eq!(sio.next_of("connected")["transport"], "websocket");
        assert_eq!(sio.next_of("event")["event"], "welcome");
        let socket = server.wait_for_sockets_blocking(1, WAIT).unwrap().remove(0);
        let asked = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            let question = Args::from_serialize(&("ready?",)).unwrap();
            runtime.block_on(socket.emit_with_ack("question", question, WAIT))
        });
        let line = sio.next_of("event");
        assert_eq!(line["event"], "question");
        assert_eq!(line["args"], json!(["ready?"]));
        let id = line["ack_id"].as_u64().expect("an ack id");
        sio.send(&format!(r#"reply {id} ["yes", 1]"#));
        let answer = asked.join().unwrap().unwrap();
        assert_eq!(
            answer.parse::<(String, i32)>().unwrap(),
            ("yes".to_owned(), 1)
        );
        // An id nobody waits for is an error line, not an exit.
        sio.send(&format!("reply {id} []"));
        assert!(sio.next_of("error")["message"]
            .as_str()
            .unwrap()
            .contains("no acknowledgement"));
        echo_ack_quit(sio);
    }

    #[test]
    fn server_disconnect_ends_sio() {
        let server = mock().start_background().unwrap();
        let mut sio = Sio::start(&[&server.url(), "--transport", "polling"]);
        assert_eq!(sio.next_of("connected")["transport"], "polling");
        let socket = server.wait_for_sockets_blocking(1, WAIT).unwrap().remove(0);
        socket.disconnect();
        // stdin stays open: sio leaves because the connection is gone.
        let (status, rest) = sio.wait_exit();
        assert!(status.success(), "{status}");
        assert_eq!(
            rest.last(),
            Some(&json!({"type": "disconnected", "reason": "io server disconnect"}))
        );
    }

    #[test]
    fn end_of_stdin_quits() {
        let server = mock().start_background().unwrap();
        let mut sio = Sio::start(&[&server.url()]);
        sio.next_of("connected");
        let (status, rest) = sio.finish();
        assert!(status.success(), "{status}");
        assert_eq!(
            rest.last(),
            Some(&json!({"type": "disconnected", "reason": "io client disconnect"}))
        );
    }

    #[test]
    fn built_in_mock_flag() {
        let mut sio = Sio::start(&["--mock", "--transport", "polling"]);
        assert_eq!(
            sio.next(),
            json!({"type": "connected", "namespace": "/", "transport": "polling"})
        );
        echo_ack_quit(sio);
    }

    #[test]
    fn websocket_refused_by_a_proxy_shows_as_an_error() {
        let server = mock().start_background().unwrap();
        server.faults().reject_websocket(Some(403));
        let output = run_to_exit(&[&server.url(), "--transport", "websocket"]);
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("403"), "{stderr}");
    }

    #[test]
    fn ca_insecure_and_proxy_options_reach_the_client() {
        use support::tls::TlsFront;
        let server = mock().start_background().unwrap();
        let front = TlsFront::start_background(server.addr());
        let ca = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("sio-cli-ca-{}.pem", std::process::id()));
        std::fs::write(&ca, front.ca_pem()).unwrap();
        let ca = ca.to_str().unwrap();

        // Not trusted without the CA: cannot connect.
        let output = run_to_exit(&[&front.url(), "--transport", "polling", "--timeout", "5"]);
        assert_eq!(output.status.code(), Some(1));

        let mut sio = Sio::start(&[&front.url(), "--ca", ca, "--transport", "websocket"]);
        assert_eq!(sio.next_of("connected")["transport"], json!("websocket"));
        sio.send("quit");
        assert!(sio.finish().0.success());

        let mut sio = Sio::start(&[&front.url(), "--insecure", "-t", "polling"]);
        assert_eq!(sio.next_of("connected")["transport"], json!("polling"));
        sio.send("quit");
        assert!(sio.finish().0.success());

        let proxy = support::ConnectProxy::start_background(None);
        let mut sio = Sio::start(&[&server.url(), "--proxy", &proxy.url(), "-t", "websocket"]);
        assert_eq!(sio.next_of("connected")["transport"], json!("websocket"));
        sio.send("quit");
        assert!(sio.finish().0.success());
        assert!(proxy.stats().tunnels >= 1, "{:?}", proxy.stats());
    }
}
