//! What a hostile server sends cannot push the client's memory past a bound: peak RSS growth
//! stays under 3 × `max_receive` + 64 MiB (the default `max_receive`, 100 MiB), and the client
//! either lives on (noops, pings) or disconnects with a typed error at once (a packet whose
//! attachments or JSON would cost more than `max_receive`: 99 MB of `[[],[],…]`, `[0,0,…]` or
//! `[{},…]`), or a server that stops reading while it sends 1 MB pings and the application
//! emits 30 MB (disconnected within pingTimeout, one pong queued). The server is Node
//! (`tests/node/hostile.js`) in a process of its own, so its allocations are not counted.
//!
//! One test, the cases in sequence: the process's peak (VmHWM) is reset before each one
//! (`/proc/self/clear_refs`), so each figure is that case's own.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sio_client::{Client, Event, Transport};

const MAX_RECEIVE: u64 = 100 * 1024 * 1024;
/// The bound: 3 × max_receive + 64 MiB.
const BOUND_KIB: u64 = (3 * MAX_RECEIVE + 64 * 1024 * 1024) / 1024;
/// Generous: the bodies are 99 MB, built and decoded in debug builds on a loaded machine.
const WAIT: Duration = Duration::from_secs(120);

struct Hostile {
    child: Child,
    _stdin: ChildStdin,
    lines: mpsc::Receiver<Value>,
    /// Lines read while waiting for another key: the client's next GET and its pong POST race,
    /// so `{"pongs":N}` may come before `{"next":true}` and must not be lost waiting for it.
    unclaimed: std::cell::RefCell<std::collections::VecDeque<Value>>,
    port: u16,
}

impl Hostile {
    fn start(mode: &str) -> Hostile {
        support::node::ensure_node_deps();
        let mut child = Command::new("node")
            .arg(support::node::node_dir().join("hostile.js"))
            .arg(mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the memory tests run tests/node/hostile.js and need Node.js on PATH");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(value);
                }
            }
        });
        let first = lines
            .recv_timeout(WAIT)
            .expect("hostile.js printed no port");
        let port = first["port"].as_u64().expect("port line") as u16;
        Hostile {
            child,
            _stdin: stdin,
            lines,
            unclaimed: Default::default(),
            port,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Waits for a line with `key` (the first one not yet claimed, whenever it came).
    fn wait_for(&self, key: &str) -> Value {
        {
            let mut unclaimed = self.unclaimed.borrow_mut();
            if let Some(at) = unclaimed.iter().position(|line| line.get(key).is_some()) {
                return unclaimed.remove(at).expect("present");
            }
        }
        let until = Instant::now() + WAIT;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("hostile.js never said {key:?}"));
            if line.get(key).is_some() {
                return line;
            }
            self.unclaimed.borrow_mut().push_back(line);
        }
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .expect("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

/// Runs one case and returns the peak RSS growth in KiB.
fn measure(case: &str, run: impl FnOnce()) -> u64 {
    let before = status_kib("VmRSS:");
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak RSS (clear_refs)");
    run();
    let grown = status_kib("VmHWM:").saturating_sub(before);
    eprintln!("{case}: peak RSS +{} MiB", grown / 1024);
    assert!(
        grown < BOUND_KIB,
        "{case}: peak RSS grew by {} MiB, over the bound of {} MiB",
        grown / 1024,
        BOUND_KIB / 1024
    );
    grown
}

fn connect(server: &Hostile, transport: Transport) -> Client {
    Client::builder(server.url())
        .transports([transport])
        .reconnection(false)
        .max_receive(MAX_RECEIVE as usize)
        .timeout(Duration::from_secs(30))
        .connect()
        .expect("connect")
}

/// A polling body the client must simply get through: it asks for the next one, still
/// connected.
fn survives_polling_body(mode: &str) {
    let server = Hostile::start(mode);
    measure(mode, || {
        let client = connect(&server, Transport::Polling);
        server.wait_for("sent");
        server.wait_for("next");
        assert!(client.is_connected(), "{mode}: disconnected");
        if mode == "pings" {
            // Ten million pings are answered, but not by ten million pongs.
            let until = Instant::now() + WAIT;
            let mut pongs = 0;
            while pongs == 0 {
                assert!(Instant::now() < until, "no pong for the ping flood");
                pongs = server.wait_for("pongs")["pongs"].as_u64().unwrap_or(0);
            }
            assert!(pongs < 1000, "{pongs} pongs in one POST for the flood");
        }
        client.disconnect();
    });
}

/// A WebSocket packet the client must refuse with a typed error, at once.
fn refuses_websocket_packet(mode: &str) {
    let server = Hostile::start(mode);
    measure(mode, || {
        let client = connect(&server, Transport::WebSocket);
        let mut events = client.events();
        let until = Instant::now() + WAIT;
        let mut error = None;
        loop {
            match events.next_timeout(until.saturating_duration_since(Instant::now())) {
                Some(Event::Error(e)) => error = Some(e.to_string()),
                Some(Event::Disconnected { .. }) => break,
                Some(_) => continue,
                None => panic!("{mode}: no disconnect"),
            }
        }
        let error = error.unwrap_or_default();
        assert!(
            error.contains("limit"),
            "{mode}: the disconnect does not say a limit was hit: {error:?}"
        );
        eprintln!("{mode}: {error}");
    });
}

/// A server that stops reading while it sends 1 MB pings, and the application emits 30 × 1 MB:
/// one pong is queued however many pings come, and the stalled writes end the connection
/// within pingTimeout (2 s here).
fn survives_a_deaf_server() {
    let server = Hostile::start("deaf");
    measure("deaf", || {
        let client = connect(&server, Transport::WebSocket);
        let mut events = client.events();
        server.wait_for("sent");
        let megabyte = "x".repeat(1 << 20);
        for _ in 0..30 {
            client.emit("big", &megabyte).expect("emit");
        }
        let start = Instant::now();
        let bound = Duration::from_secs(2 + 10);
        loop {
            match events.next_timeout(bound.saturating_sub(start.elapsed())) {
                Some(Event::Disconnected { .. }) => break,
                Some(_) => continue,
                None => panic!("deaf: no disconnect within {bound:?}"),
            }
        }
    });
}

#[test]
fn hostile_payloads_stay_within_the_memory_bound() {
    survives_a_deaf_server();
    survives_polling_body("noops");
    survives_polling_body("pings");
    refuses_websocket_packet("attachments");
    refuses_websocket_packet("json");
    refuses_websocket_packet("json-zeros");
    refuses_websocket_packet("json-objects");
}
