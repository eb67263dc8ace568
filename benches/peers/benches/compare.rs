//! sio-client against its peers in ONE run, all against the SAME socketioxide 0.18 server
//! process, every ratio printed next to its target:
//!
//!     cargo bench --manifest-path benches/peers/Cargo.toml --bench compare
//!
//! The server is `tests/socketioxide-server` (a standalone crate, the Rust twin of
//! tests/node/server.js), built here in release (`cargo build --release --locked`, into
//! `<this crate's target dir>/socketioxide-server`) and run as a child process, so the CPU time
//! this process reports (`getrusage(RUSAGE_SELF)`: user + system, every thread) is the
//! clients' alone. It acks "ack" with its own arguments, answers "burst" `(n, size)` with `n`
//! × `("item", i, "x" * size)` then `("burst-done", n)`, sets TCP_NODELAY on accepted sockets
//! and lets a connection buffer 4096 packets (a burst that outruns a client waits for room, it
//! is never dropped by the server).
//!
//! The clients, each measured in the same run:
//! - sio-client `AsyncClient` and blocking `Client` (this checkout, `path = "../.."`);
//! - rust_socketio 0.6, async and blocking;
//! - "raw": a minimal socket.io client written here on tokio-tungstenite (async) and on blocking
//!   tungstenite, both 0.30 as sio-client uses: WebSocket to
//!   `/socket.io/?EIO=4&transport=websocket`, read the `0{..}` open packet, send `40`, read
//!   `40{"sid":..}`, answer pings `2` with `3`, then send `42<id>["ack",<i>]` and expect
//!   `43<id>[<i>]` (serde_json parses the reply, as any client must). This is the floor: what
//!   the bytes cost with no client library. WebSocket only.
//!
//! Modes, over WebSocket and over HTTP long-polling (the raw clients over WebSocket only):
//! 1. `seq`: N sequential ack round trips per client and transport (`SIO_COMPARE_SEQ`,
//!    default 20,000), after 200 uncounted warm-up round trips per connection: msg/s, p50/p99
//!    latency, client CPU µs per round trip.
//! 2. `throughput`: 64 acks in flight, M acks in all per client and transport
//!    (`SIO_COMPARE_THROUGHPUT`, default 200,000): acks/s and CPU µs per ack. The blocking
//!    sio-client keeps 64 `AckHandle`s from one thread (`emit_with_ack_handle`, waits the
//!    oldest, emits the next); rust_socketio blocking uses ack callbacks (its only way); the
//!    async clients keep a window of 64 futures; the raw clients pipeline 64 frames (the
//!    replacements for all the replies already read go out with one flush).
//! 3. `burst`: the server emits B events of about 100 bytes back to back (`SIO_COMPARE_BURST`,
//!    default 200,000; `size` 80, which with the name and the index makes ~100 bytes on the
//!    wire): events/s from the request to `burst-done`. sio-client is read both ways: an
//!    `events()` reader (async stream and blocking iterator) and an `.on("item", ..)` listener.
//!
//! Every mode checks what it measures: each ack carries its own sequence number and a reply
//! with another one is counted as `wrong` (delivered to another emit), a missing one as `lost`;
//! a burst must deliver exactly `n` items with indices 0..n in order, then `burst-done`.
//! Nothing is hidden: rust_socketio draws its ack ids at random from 0..999, so with 64 in flight
//! it misdelivers and loses acks, and its async receive task can panic (an ack-list index out
//! of range); the panic is caught by a hook, counted as a crash, and a fresh client carries on
//! (as in `benches/ack.rs`). Its throughput counts replies right or wrong (a misdelivered ack
//! still made the round trip) over the time its connection worked. Its blocking client is never
//! disconnected here: in 0.6 a disconnected blocking client's poll thread spins at 100 % CPU
//! forever (rust-socketio #508), which would load every later measurement; the bench keeps
//! those clients connected and idle until it exits, and prints this process's idle CPU after
//! each mode to show that nothing is left running.
//!
//! Each measurement is split into rounds (6 for seq and throughput, 2 full bursts for burst)
//! and the order of the clients rotates from round to round, so that load from elsewhere on the
//! machine falls on all alike; a 2-core machine shared with other work is noisy, the ratios are
//! the point. A client run that panics is reported as failed and the bench goes on.
//!
//! Knobs (environment, all optional):
//! - `SIO_COMPARE_SEQ` (N, default 20000), `SIO_COMPARE_THROUGHPUT` (M, default 200000),
//!   `SIO_COMPARE_BURST` (B, default 200000);
//! - `SIO_COMPARE_ONLY=seq,throughput,burst` (a comma list of the modes to run);
//! - `SIO_COMPARE_TRANSPORTS=websocket,polling` (a comma list of the transports);
//! - `SIO_COMPARE_CAP_SECS` (default 180): the most wall time one client gets for one mode and
//!   transport, over all its rounds; a client that needs longer stops early and is marked
//!   `capped` (its rate still counts what it did);
//! - `SIO_COMPARE_SERVER_LOG` (set to anything): print the server's stderr at the end.
//!
//! A quick run: `SIO_COMPARE_SEQ=2000 SIO_COMPARE_THROUGHPUT=20000 SIO_COMPARE_BURST=20000`.
//!
//! Timing is plain `std::time::Instant`: each figure is one long loop over thousands of round
//! trips, where a statistics harness would add run time and nothing of value.

// The main crate's child-process machinery (`{"port":N}` on stdout, exit when stdin closes):
// it needs nothing but std.
#[allow(dead_code)]
#[path = "../../../tests/support/process.rs"]
mod process;

use std::collections::{HashMap, HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::{FutureExt, SinkExt};
use process::ServerProcess;
use rust_socketio::asynchronous::{Client as RsAsync, ClientBuilder as RsAsyncBuilder};
use rust_socketio::client::Client as RsBlocking;
use rust_socketio::{ClientBuilder as RsBlockingBuilder, Event as RsEvent, Payload, TransportType};
use sio_client::{AsyncClient, Client, Event, Transport};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tungstenite::{Message, Utf8Bytes};

/// Acks in flight in the throughput mode.
const WINDOW: usize = 64;
/// Rounds of the seq and throughput modes; the client order rotates by one each round.
const ROUNDS: usize = 6;
/// Full bursts per client and transport; the second runs the clients in reverse order.
const BURST_ROUNDS: usize = 2;
/// Sequential round trips on each new connection before anything is counted.
const WARMUP: u64 = 200;
/// Padding per burst event: with the name and the index, about 100 bytes on the wire.
const PAD: usize = 80;
/// Generous: a reply this late means the ack is lost, not slow.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// A rust_socketio ack outstanding this long in a throughput run is counted as lost.
const LOST_AFTER: Duration = Duration::from_secs(1);
/// No ack at all for this long ends a throughput segment as stalled (a new client goes on).
const STALL: Duration = Duration::from_secs(3);
/// The longest one burst may take.
const BURST_WAIT: Duration = Duration::from_secs(120);
/// No burst item for this long: the burst is given up as stalled.
const BURST_STALL: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Set-up: knobs, the server, CPU time.

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn listed(var: &str, item: &str) -> bool {
    match std::env::var(var) {
        Ok(list) if !list.trim().is_empty() => list.split(',').any(|p| p.trim() == item),
        _ => true,
    }
}

/// Builds `tests/socketioxide-server` in release into this crate's target directory and returns
/// the binary; exits with the build's output when that fails.
fn build_server() -> PathBuf {
    let root = Path::new(env!("SIO_CLIENT_ROOT"));
    let manifest = root
        .join("tests")
        .join("socketioxide-server")
        .join("Cargo.toml");
    // CARGO_TARGET_TMPDIR is `<target dir>/tmp`, wherever the target dir was put.
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR has a parent")
        .join("socketioxide-server");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    eprintln!(
        "building the socketioxide server (release): {}",
        manifest.display()
    );
    let out = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--locked",
            "--quiet",
            "--manifest-path",
        ])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir)
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(out) if out.status.success() => target_dir.join("release").join(format!(
            "socketioxide-server{}",
            std::env::consts::EXE_SUFFIX
        )),
        Ok(out) => {
            eprintln!(
                "error: `cargo build --release --locked --manifest-path {}` failed ({}); the \
                 compare bench needs that server:\n{}{}",
                manifest.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!(
                "error: could not run {} to build the socketioxide server: {e}",
                Path::new(&cargo).display()
            );
            std::process::exit(1);
        }
    }
}

/// CPU time (user + system, all threads) this process has used so far. The server is another
/// process and is not included.
fn cpu_now() -> Duration {
    // SAFETY: getrusage only writes into the struct it is given, which is plain old data.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage failed");
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// This process's CPU use while it sleeps, in % of one core: anything well above 0 is a
/// client left running in the background.
fn idle_cpu_percent() -> f64 {
    let (cpu, start) = (cpu_now(), Instant::now());
    std::thread::sleep(Duration::from_millis(500));
    (cpu_now() - cpu).as_secs_f64() / start.elapsed().as_secs_f64() * 100.0
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}

/// Panics raised inside rust_socketio's own tasks (see the module docs): counted, not printed.
static RS_PANICS: AtomicU64 = AtomicU64::new(0);

fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let in_rs = info
            .location()
            .is_some_and(|l| l.file().contains("rust_socketio"));
        if in_rs {
            RS_PANICS.fetch_add(1, Ordering::SeqCst);
        } else {
            default(info);
        }
    }));
}

/// Runs one client's measurement; a panic (printed by the hook) makes it `None`.
fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> Option<T> {
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => Some(v),
        Err(_) => {
            eprintln!("  !! {what}: the run panicked (above); counted as failed, going on");
            None
        }
    }
}

/// rust_socketio blocking clients, kept connected until the process exits (module docs).
static PARKED: Mutex<Vec<RsBlocking>> = Mutex::new(Vec::new());

fn park(client: RsBlocking) {
    PARKED.lock().unwrap().push(client);
}

fn parked() -> usize {
    PARKED.lock().unwrap().len()
}

// ---------------------------------------------------------------------------------------------
// Who is measured.

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Tr {
    WebSocket,
    Polling,
}

impl Tr {
    fn name(self) -> &'static str {
        match self {
            Tr::WebSocket => "websocket",
            Tr::Polling => "polling",
        }
    }
    fn sio(self) -> Transport {
        match self {
            Tr::WebSocket => Transport::WebSocket,
            Tr::Polling => Transport::Polling,
        }
    }
    fn rs(self) -> TransportType {
        match self {
            Tr::WebSocket => TransportType::Websocket,
            Tr::Polling => TransportType::Polling,
        }
    }
}

/// The ack clients (seq and throughput modes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Kind {
    SioAsync,
    SioBlocking,
    RsAsync,
    RsBlocking,
    RawAsync,
    RawBlocking,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::SioAsync => "sio-client async",
            Kind::SioBlocking => "sio-client blocking",
            Kind::RsAsync => "rust_socketio async",
            Kind::RsBlocking => "rust_socketio blocking",
            Kind::RawAsync => "raw tokio-tungstenite",
            Kind::RawBlocking => "raw tungstenite",
        }
    }
    fn all(tr: Tr) -> Vec<Kind> {
        let mut kinds = vec![
            Kind::SioAsync,
            Kind::SioBlocking,
            Kind::RsAsync,
            Kind::RsBlocking,
        ];
        if tr == Tr::WebSocket {
            kinds.extend([Kind::RawAsync, Kind::RawBlocking]);
        }
        kinds
    }
}

/// The burst readers.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Reader {
    SioStream,
    SioIter,
    SioOn,
    RsAsync,
    RsBlocking,
    RawAsync,
    RawBlocking,
}

impl Reader {
    fn name(self) -> &'static str {
        match self {
            Reader::SioStream => "sio-client async events()",
            Reader::SioIter => "sio-client blocking events()",
            Reader::SioOn => "sio-client .on(\"item\")",
            Reader::RsAsync => "rust_socketio async .on",
            Reader::RsBlocking => "rust_socketio blocking .on",
            Reader::RawAsync => "raw tokio-tungstenite",
            Reader::RawBlocking => "raw tungstenite",
        }
    }
    fn all(tr: Tr) -> Vec<Reader> {
        let mut readers = vec![
            Reader::SioStream,
            Reader::SioIter,
            Reader::SioOn,
            Reader::RsAsync,
            Reader::RsBlocking,
        ];
        if tr == Tr::WebSocket {
            readers.extend([Reader::RawAsync, Reader::RawBlocking]);
        }
        readers
    }
}

/// `total` split over `rounds` as evenly as whole numbers allow; the share of round `r`.
fn share(total: u64, rounds: usize, r: usize) -> u64 {
    let rounds = rounds as u64;
    total / rounds + u64::from((r as u64) < total % rounds)
}

/// `items` rotated left by `by`.
fn rotated<T: Copy>(items: &[T], by: usize) -> Vec<T> {
    (0..items.len())
        .map(|j| items[(j + by) % items.len()])
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Connecting.

async fn sio_async(url: &str, tr: Tr) -> AsyncClient {
    AsyncClient::builder(url)
        .transports([tr.sio()])
        .timeout(ACK_TIMEOUT)
        .connect_async()
        .await
        .expect("sio-client connect")
}

fn sio_blocking(url: &str, tr: Tr) -> Client {
    Client::builder(url)
        .transports([tr.sio()])
        .timeout(ACK_TIMEOUT)
        .connect()
        .expect("sio-client connect")
}

/// rust_socketio's connect() returns before the server has joined the namespace, and an event
/// sent in that gap may be refused; so every rust_socketio run waits for the "connect" callback.
async fn rs_async(builder: RsAsyncBuilder, tr: Tr) -> RsAsync {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let client = builder
        .transport_type(tr.rs())
        .reconnect(false)
        .on(RsEvent::Connect, move |_p, _c| {
            let _ = tx.send(());
            async {}.boxed()
        })
        .connect()
        .await
        .expect("rust_socketio async connect");
    tokio::time::timeout(ACK_TIMEOUT, rx.recv())
        .await
        .expect("rust_socketio async: no namespace CONNECT reply")
        .expect("rust_socketio async: connect callback dropped");
    client
}

fn rs_blocking(builder: RsBlockingBuilder, tr: Tr) -> RsBlocking {
    let (tx, rx) = std_mpsc::channel();
    let client = builder
        .transport_type(tr.rs())
        .reconnect(false)
        .on(RsEvent::Connect, move |_p, _c| {
            let _ = tx.send(());
        })
        .connect()
        .expect("rust_socketio blocking connect");
    rx.recv_timeout(ACK_TIMEOUT)
        .expect("rust_socketio blocking: no namespace CONNECT reply");
    client
}

/// The number a rust_socketio ack or event payload starts with: the server's `cb(seq)` comes as
/// the JSON array `[seq]` in one value, an event's arguments as separate values.
fn rs_first_u64(payload: &Payload) -> Option<u64> {
    match payload {
        Payload::Text(values) => values.first().and_then(|v| match v {
            serde_json::Value::Array(inner) => inner.first().and_then(|n| n.as_u64()),
            other => other.as_u64(),
        }),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// The raw clients.

type AsyncWs =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type SyncWs = tungstenite::WebSocket<std::net::TcpStream>;

fn ws_url(port: u16) -> String {
    format!("ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket")
}

/// `42<seq>["ack",<seq>]`: an event "ack" asking for acknowledgement `seq`.
fn ack_frame(seq: u64) -> Message {
    Message::text(format!("42{seq}[\"ack\",{seq}]"))
}

/// `43<id>[<value>]` into `(id, value)`.
fn parse_ack(text: &str) -> Option<(u64, Option<u64>)> {
    let rest = text.strip_prefix("43")?;
    let open = rest.find('[')?;
    let id = rest[..open].parse().ok()?;
    let value = serde_json::from_str::<(u64,)>(&rest[open..])
        .ok()
        .map(|(v,)| v);
    Some((id, value))
}

enum Frame {
    Item(Option<u64>),
    Done,
    Other,
}

/// `42["item",<i>,"xx.."]` or `42["burst-done",<n>]`.
fn parse_burst(text: &str) -> Frame {
    let Some(body) = text.strip_prefix("42") else {
        return Frame::Other;
    };
    if body.starts_with("[\"item\"") {
        Frame::Item(
            serde_json::from_str::<(&str, u64, &str)>(body)
                .ok()
                .map(|(_, i, _)| i),
        )
    } else if body.starts_with("[\"burst-done\"") {
        Frame::Done
    } else {
        Frame::Other
    }
}

/// The next text frame; engine.io pings (`2`) are answered (`3`) on the way.
async fn raw_text(ws: &mut AsyncWs) -> Result<Utf8Bytes, String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.as_str() == "2" => {
                ws.send(Message::text("3"))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Some(Ok(Message::Text(t))) => return Ok(t),
            Some(Ok(Message::Close(_))) | None => return Err("connection closed".into()),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.to_string()),
        }
    }
}

async fn raw_text_timeout(ws: &mut AsyncWs, wait: Duration) -> Result<Utf8Bytes, String> {
    tokio::time::timeout(wait, raw_text(ws))
        .await
        .unwrap_or_else(|_| Err(format!("nothing for {} s", wait.as_secs())))
}

async fn raw_connect_async(port: u16) -> AsyncWs {
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(ws_url(port), None, true)
        .await
        .expect("raw WebSocket connect");
    let open = raw_text_timeout(&mut ws, ACK_TIMEOUT).await.expect("open");
    assert!(
        open.starts_with("0{"),
        "not an engine.io open packet: {open}"
    );
    ws.send(Message::text("40")).await.expect("send 40");
    let joined = raw_text_timeout(&mut ws, ACK_TIMEOUT).await.expect("40");
    assert!(joined.starts_with("40{"), "not a CONNECT reply: {joined}");
    ws
}

fn raw_text_blocking(ws: &mut SyncWs) -> Result<Utf8Bytes, String> {
    loop {
        match ws.read() {
            Ok(Message::Text(t)) if t.as_str() == "2" => {
                ws.send(Message::text("3")).map_err(|e| e.to_string())?;
            }
            Ok(Message::Text(t)) => return Ok(t),
            Ok(Message::Close(_)) => return Err("connection closed".into()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn raw_connect_blocking(port: u16) -> SyncWs {
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("raw TCP connect");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    // A read that waits this long fails: the ack or the burst is lost, not slow.
    stream
        .set_read_timeout(Some(ACK_TIMEOUT))
        .expect("read timeout");
    let (mut ws, _) = tungstenite::client(ws_url(port), stream).expect("raw WebSocket handshake");
    let open = raw_text_blocking(&mut ws).expect("open");
    assert!(
        open.starts_with("0{"),
        "not an engine.io open packet: {open}"
    );
    ws.send(Message::text("40")).expect("send 40");
    let joined = raw_text_blocking(&mut ws).expect("40");
    assert!(joined.starts_with("40{"), "not a CONNECT reply: {joined}");
    ws
}

// ---------------------------------------------------------------------------------------------
// 1. Sequential acks.

#[derive(Default)]
struct Seq {
    times: Vec<Duration>,
    wall: Duration,
    cpu: Duration,
    wrong: u64,
    lost: u64,
    failed: u64,
    capped: u64,
}

impl Seq {
    fn add(&mut self, other: Seq) {
        self.times.extend(other.times);
        self.wall += other.wall;
        self.cpu += other.cpu;
        self.wrong += other.wrong;
        self.lost += other.lost;
        self.failed += other.failed;
        self.capped += other.capped;
    }
    fn per_sec(&self) -> f64 {
        self.times.len() as f64 / self.wall.as_secs_f64().max(1e-9)
    }
    fn cpu_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.times.len().max(1) as f64
    }
    fn quantile(&self, q: f64) -> Duration {
        let mut sorted = self.times.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
    }
}

/// Records the counted round trips of one run: wall and CPU time from `start` to `finish`.
struct Meter {
    seq: Seq,
    cpu0: Duration,
    start: Instant,
    deadline: Instant,
}

impl Meter {
    fn start(n: u64, cap: Duration) -> Meter {
        let start = Instant::now();
        Meter {
            seq: Seq {
                times: Vec::with_capacity(n as usize),
                ..Seq::default()
            },
            cpu0: cpu_now(),
            start,
            deadline: start + cap,
        }
    }
    /// Records one round trip; false once the run has used its share of the cap.
    fn record(&mut self, seq: u64, took: Duration, got: Option<u64>) -> bool {
        self.seq.times.push(took);
        match got {
            Some(g) if g == seq => {}
            Some(_) => self.seq.wrong += 1,
            None => self.seq.lost += 1,
        }
        if Instant::now() > self.deadline {
            self.seq.capped += 1;
            return false;
        }
        true
    }
    fn finish(mut self) -> Seq {
        self.seq.wall = self.start.elapsed();
        self.seq.cpu = cpu_now() - self.cpu0;
        self.seq
    }
}

async fn seq_sio_async(url: &str, tr: Tr, n: u64, cap: Duration) -> Seq {
    let client = sio_async(url, tr).await;
    let round_trip = |seq: u64| {
        let client = &client;
        async move {
            let args = client.emit_with_ack("ack", seq, ACK_TIMEOUT).await.ok()?;
            args.get::<u64>(0).ok()
        }
    };
    for seq in 0..WARMUP {
        round_trip(seq).await;
    }
    let mut meter = Meter::start(n, cap);
    for seq in WARMUP..WARMUP + n {
        let t0 = Instant::now();
        let got = round_trip(seq).await;
        if !meter.record(seq, t0.elapsed(), got) {
            break;
        }
    }
    let out = meter.finish();
    client.disconnect();
    out
}

fn seq_sio_blocking(url: &str, tr: Tr, n: u64, cap: Duration) -> Seq {
    let client = sio_blocking(url, tr);
    let round_trip = |seq: u64| {
        client
            .emit_with_ack("ack", seq, ACK_TIMEOUT)
            .ok()
            .and_then(|a| a.get::<u64>(0).ok())
    };
    for seq in 0..WARMUP {
        round_trip(seq);
    }
    let mut meter = Meter::start(n, cap);
    for seq in WARMUP..WARMUP + n {
        let t0 = Instant::now();
        let got = round_trip(seq);
        if !meter.record(seq, t0.elapsed(), got) {
            break;
        }
    }
    let out = meter.finish();
    client.disconnect();
    out
}

async fn seq_rs_async(url: &str, tr: Tr, n: u64, cap: Duration) -> Seq {
    let client = rs_async(RsAsyncBuilder::new(url), tr).await;
    let (tx, mut rx) = mpsc::unbounded_channel::<Option<u64>>();
    let mut round_trip = async |seq: u64| -> Option<u64> {
        let tx = tx.clone();
        let callback = move |payload: Payload, _c: RsAsync| {
            let _ = tx.send(rs_first_u64(&payload));
            async {}.boxed()
        };
        client
            .emit_with_ack("ack", serde_json::json!(seq), ACK_TIMEOUT, callback)
            .await
            .ok()?;
        tokio::time::timeout(ACK_TIMEOUT, rx.recv())
            .await
            .ok()
            .flatten()
            .flatten()
    };
    for seq in 0..WARMUP {
        round_trip(seq).await;
    }
    let mut meter = Meter::start(n, cap);
    for seq in WARMUP..WARMUP + n {
        let t0 = Instant::now();
        let got = round_trip(seq).await;
        if !meter.record(seq, t0.elapsed(), got) {
            break;
        }
    }
    let out = meter.finish();
    let _ = tokio::time::timeout(Duration::from_secs(1), client.disconnect()).await;
    out
}

fn seq_rs_blocking(url: &str, tr: Tr, n: u64, cap: Duration) -> Seq {
    let client = rs_blocking(RsBlockingBuilder::new(url), tr);
    let (tx, rx) = std_mpsc::channel::<Option<u64>>();
    let round_trip = |seq: u64| -> Option<u64> {
        let tx = tx.clone();
        let callback = move |payload: Payload, _c| {
            let _ = tx.send(rs_first_u64(&payload));
        };
        client
            .emit_with_ack("ack", serde_json::json!(seq), ACK_TIMEOUT, callback)
            .ok()?;
        rx.recv_timeout(ACK_TIMEOUT).ok().flatten()
    };
    for seq in 0..WARMUP {
        round_trip(seq);
    }
    let mut meter = Meter::start(n, cap);
    for seq in WARMUP..WARMUP + n {
        let t0 = Instant::now();
        let got = round_trip(seq);
        if !meter.record(seq, t0.elapsed(), got) {
            break;
        }
    }
    let out = meter.finish();
    park(client);
    out
}

/// One raw round trip: the reply to `seq`, skipping stale replies to earlier ones.
async fn raw_round_trip(ws: &mut AsyncWs, seq: u64) -> Option<u64> {
    ws.send(ack_frame(seq)).await.ok()?;
    loop {
        let text = raw_text_timeout(ws, ACK_TIMEOUT).await.ok()?;
        match parse_ack(&text) {
            Some((id, value)) if id == seq => return value,
            _ => {}
        }
    }
}

async fn seq_raw_async(port: u16, n: u64, cap: Duration) -> Seq {
    let mut ws = raw_connect_async(port).await;
    for seq in 0..WARMUP {
        raw_round_trip(&mut ws, seq).await;
    }
    let mut meter = Meter::start(n, cap);
    for seq in WARMUP..WARMUP + n {
        let t0 = Instant::now();
        let got = raw_round_trip(&mut ws, seq).await;
        if !meter.record(seq, t0.elapsed(), got) {
            break;
        }
    }
    let out = meter.finish();
    let _ = ws.close(None).await;
    out
}

fn raw_round_trip_blocking(ws: &mut SyncWs, seq: u64) -> Option<u64> {
    ws.send(ack_frame(seq)).ok()?;
    loop {
        let text = raw_text_blocking(ws).ok()?;
        match parse_ack(&text) {
            Some((id, value)) if id == seq => return value,
            _ => {}
        }
    }
}

fn seq_raw_blocking(port: u16, n: u64, cap: Duration) -> Seq {
    let mut ws = raw_connect_blocking(port);
    for seq in 0..WARMUP {
        raw_round_trip_blocking(&mut ws, seq);
    }
    let mut meter = Meter::start(n, cap);
    for seq in WARMUP..WARMUP + n {
        let t0 = Instant::now();
        let got = raw_round_trip_blocking(&mut ws, seq);
        if !meter.record(seq, t0.elapsed(), got) {
            break;
        }
    }
    let out = meter.finish();
    let _ = ws.close(None);
    let _ = ws.flush();
    out
}

// ---------------------------------------------------------------------------------------------
// 2. Throughput, 64 acks in flight.

#[derive(Clone, Copy, Default)]
struct Tput {
    acked: u64,
    wrong: u64,
    lost: u64,
    /// rust_socketio only: its receive task panicked and a new client took over.
    crashes: u64,
    /// No ack for [`STALL`]: a new client took over.
    stalls: u64,
    /// Time the replies were counted over (rust_socketio: only while its connection worked).
    active: Duration,
    cpu: Duration,
    failed: u64,
    capped: u64,
}

impl Tput {
    fn add(&mut self, o: Tput) {
        self.acked += o.acked;
        self.wrong += o.wrong;
        self.lost += o.lost;
        self.crashes += o.crashes;
        self.stalls += o.stalls;
        self.active += o.active;
        self.cpu += o.cpu;
        self.failed += o.failed;
        self.capped += o.capped;
    }
    fn replies(&self) -> u64 {
        self.acked + self.wrong
    }
    /// Replies per second, right or wrong.
    fn per_sec(&self) -> f64 {
        self.replies() as f64 / self.active.as_secs_f64().max(1e-9)
    }
    fn cpu_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.replies().max(1) as f64
    }
    fn count(&mut self, seq: u64, got: Option<u64>) {
        match got {
            Some(g) if g == seq => self.acked += 1,
            Some(_) => self.wrong += 1,
            None => self.lost += 1,
        }
    }
}

/// Runs `f` and sets the CPU time it used on the result.
fn timed_cpu(f: impl FnOnce() -> Tput) -> Tput {
    let before = cpu_now();
    let mut out = f();
    out.cpu = cpu_now() - before;
    out
}

async fn tput_sio_async(url: &str, tr: Tr, m: u64, cap: Duration) -> Tput {
    let client = sio_async(url, tr).await;
    let emit = |seq: u64| {
        let client = client.clone();
        async move {
            let got = client
                .emit_with_ack("ack", seq, ACK_TIMEOUT)
                .await
                .ok()
                .and_then(|a| a.get::<u64>(0).ok());
            (seq, got)
        }
    };
    let mut in_flight = FuturesUnordered::new();
    let mut next = 0u64;
    for _ in 0..WINDOW {
        in_flight.push(emit(next));
        next += 1;
    }
    while in_flight.next().await.is_some() {}

    let mut out = Tput::default();
    let (cpu0, start) = (cpu_now(), Instant::now());
    let deadline = start + cap;
    let end = next + m;
    while next < end && in_flight.len() < WINDOW {
        in_flight.push(emit(next));
        next += 1;
    }
    while let Some((seq, got)) = in_flight.next().await {
        out.count(seq, got);
        if next < end {
            if Instant::now() < deadline {
                in_flight.push(emit(next));
                next += 1;
            } else {
                out.capped = end - next;
                next = end;
            }
        }
    }
    out.active = start.elapsed();
    out.cpu = cpu_now() - cpu0;
    client.disconnect();
    out
}

fn tput_sio_blocking(url: &str, tr: Tr, m: u64, cap: Duration) -> Tput {
    let client = sio_blocking(url, tr);
    let mut in_flight = VecDeque::with_capacity(WINDOW);
    let mut next = 0u64;
    let emit = |seq: u64| (seq, client.emit_with_ack_handle("ack", seq, ACK_TIMEOUT));
    let wait = |(seq, handle): (u64, sio_client::Result<sio_client::AckHandle>)| {
        let got = handle
            .and_then(|h| h.wait())
            .ok()
            .and_then(|a| a.get::<u64>(0).ok());
        (seq, got)
    };
    for _ in 0..WINDOW {
        in_flight.push_back(emit(next));
        next += 1;
    }
    while let Some(pending) = in_flight.pop_front() {
        wait(pending);
    }

    let mut out = Tput::default();
    let (cpu0, start) = (cpu_now(), Instant::now());
    let deadline = start + cap;
    let end = next + m;
    while next < end && in_flight.len() < WINDOW {
        in_flight.push_back(emit(next));
        next += 1;
    }
    while let Some(pending) = in_flight.pop_front() {
        let (seq, got) = wait(pending);
        out.count(seq, got);
        if next < end {
            if Instant::now() < deadline {
                in_flight.push_back(emit(next));
                next += 1;
            } else {
                out.capped = end - next;
                next = end;
            }
        }
    }
    out.active = start.elapsed();
    out.cpu = cpu_now() - cpu0;
    client.disconnect();
    out
}

/// The bookkeeping of a rust_socketio throughput run, async or blocking: acks outstanding by
/// sequence number, replies counted once per emit (acks sharing an id all fire on the first
/// reply), losses after [`LOST_AFTER`], a stall after [`STALL`] without any reply.
struct RsWindow {
    pending: HashMap<u64, Instant>,
    start: Instant,
    last_reply: Instant,
}

impl RsWindow {
    fn new() -> RsWindow {
        let now = Instant::now();
        RsWindow {
            pending: HashMap::new(),
            start: now,
            last_reply: now,
        }
    }
    fn reply(&mut self, out: &mut Tput, expected: u64, got: Option<u64>) {
        if self.pending.remove(&expected).is_some() {
            self.last_reply = Instant::now();
            match got {
                Some(g) if g == expected => out.acked += 1,
                _ => out.wrong += 1,
            }
        }
    }
    /// Counts the overdue acks as lost; true when the connection looks dead.
    fn sweep(&mut self, out: &mut Tput) -> bool {
        let now = Instant::now();
        let before = self.pending.len();
        self.pending
            .retain(|_, sent| now.duration_since(*sent) < LOST_AFTER);
        out.lost += (before - self.pending.len()) as u64;
        now.duration_since(self.last_reply) > STALL
    }
    /// The connection is given up: what is outstanding is lost; the working time is counted.
    fn close(self, out: &mut Tput) {
        out.lost += self.pending.len() as u64;
        out.active += self.last_reply.duration_since(self.start);
    }
}

async fn tput_rs_async(url: &str, tr: Tr, m: u64, cap: Duration) -> Tput {
    let mut out = Tput::default();
    let deadline = Instant::now() + cap;
    let (mut issued, mut seq) = (0u64, 0u64);
    let mut first = true;
    while issued < m || first {
        let client = rs_async(RsAsyncBuilder::new(url), tr).await;
        let (tx, mut rx) = mpsc::unbounded_channel::<(u64, Option<u64>)>();
        let emit = |client: &RsAsync, seq: u64| {
            let tx = tx.clone();
            let callback = move |payload: Payload, _c: RsAsync| {
                let _ = tx.send((seq, rs_first_u64(&payload)));
                async {}.boxed()
            };
            let client = client.clone();
            async move {
                client
                    .emit_with_ack("ack", serde_json::json!(seq), ACK_TIMEOUT, callback)
                    .await
                    .is_ok()
            }
        };
        if first {
            // Warm-up, one ack in flight at a time: no id collisions possible.
            for _ in 0..WARMUP {
                if emit(&client, seq).await {
                    let _ = tokio::time::timeout(ACK_TIMEOUT, rx.recv()).await;
                }
                seq += 1;
            }
            first = false;
        }
        let panics = RS_PANICS.load(Ordering::SeqCst);
        let mut window = RsWindow::new();
        loop {
            while window.pending.len() < WINDOW && issued < m {
                if Instant::now() > deadline {
                    out.capped = m - issued;
                    issued = m;
                    break;
                }
                if emit(&client, seq).await {
                    window.pending.insert(seq, Instant::now());
                } else {
                    out.lost += 1;
                }
                seq += 1;
                issued += 1;
            }
            if window.pending.is_empty() {
                break;
            }
            if let Ok(Some((expected, got))) =
                tokio::time::timeout(Duration::from_millis(50), rx.recv()).await
            {
                window.reply(&mut out, expected, got);
            }
            if RS_PANICS.load(Ordering::SeqCst) != panics {
                out.crashes += 1;
                break;
            }
            if window.sweep(&mut out) {
                out.stalls += 1;
                break;
            }
        }
        window.close(&mut out);
        let _ = tokio::time::timeout(Duration::from_secs(1), client.disconnect()).await;
    }
    out
}

fn tput_rs_blocking(url: &str, tr: Tr, m: u64, cap: Duration) -> Tput {
    let mut out = Tput::default();
    let deadline = Instant::now() + cap;
    let (mut issued, mut seq) = (0u64, 0u64);
    let mut first = true;
    while issued < m || first {
        let client = rs_blocking(RsBlockingBuilder::new(url), tr);
        let (tx, rx) = std_mpsc::channel::<(u64, Option<u64>)>();
        let emit = |seq: u64| {
            let tx = tx.clone();
            let callback = move |payload: Payload, _c| {
                let _ = tx.send((seq, rs_first_u64(&payload)));
            };
            client
                .emit_with_ack("ack", serde_json::json!(seq), ACK_TIMEOUT, callback)
                .is_ok()
        };
        if first {
            for _ in 0..WARMUP {
                if emit(seq) {
                    let _ = rx.recv_timeout(ACK_TIMEOUT);
                }
                seq += 1;
            }
            first = false;
        }
        let mut window = RsWindow::new();
        loop {
            while window.pending.len() < WINDOW && issued < m {
                if Instant::now() > deadline {
                    out.capped = m - issued;
                    issued = m;
                    break;
                }
                if emit(seq) {
                    window.pending.insert(seq, Instant::now());
                } else {
                    out.lost += 1;
                }
                seq += 1;
                issued += 1;
            }
            if window.pending.is_empty() {
                break;
            }
            if let Ok((expected, got)) = rx.recv_timeout(Duration::from_millis(50)) {
                window.reply(&mut out, expected, got);
            }
            if window.sweep(&mut out) {
                out.stalls += 1;
                break;
            }
        }
        window.close(&mut out);
        park(client);
    }
    out
}

/// The raw clients' window: the acks outstanding, and for each reply read the frame that
/// goes out next (the next ack, or the pong to an engine.io ping).
struct RawWindow {
    outstanding: HashSet<u64>,
    next: u64,
    end: u64,
    deadline: Instant,
    out: Tput,
    start: Instant,
    cpu0: Duration,
}

impl RawWindow {
    /// Starts counting after the warm-up acks `0..WINDOW`; returns the first window's frames.
    fn start(m: u64, cap: Duration) -> (RawWindow, Vec<Message>) {
        let (cpu0, start) = (cpu_now(), Instant::now());
        let mut window = RawWindow {
            outstanding: HashSet::with_capacity(WINDOW),
            next: WINDOW as u64,
            end: WINDOW as u64 + m,
            deadline: start + cap,
            out: Tput::default(),
            start,
            cpu0,
        };
        let mut first = Vec::with_capacity(WINDOW);
        while window.outstanding.len() < WINDOW {
            match window.emit() {
                Some(frame) => first.push(frame),
                None => break,
            }
        }
        (window, first)
    }
    fn emit(&mut self) -> Option<Message> {
        if self.next >= self.end {
            return None;
        }
        if Instant::now() > self.deadline {
            self.out.capped = self.end - self.next;
            self.next = self.end;
            return None;
        }
        self.outstanding.insert(self.next);
        self.next += 1;
        Some(ack_frame(self.next - 1))
    }
    /// One frame read: counts an ack, returns what to send in answer.
    fn on_text(&mut self, text: &str) -> Option<Message> {
        if text == "2" {
            return Some(Message::text("3"));
        }
        let (id, value) = parse_ack(text)?;
        if !self.outstanding.remove(&id) {
            return None;
        }
        self.out.count(id, value);
        self.emit()
    }
    fn finish(mut self) -> Tput {
        self.out.lost += self.outstanding.len() as u64;
        self.out.active = self.start.elapsed();
        self.out.cpu = cpu_now() - self.cpu0;
        self.out
    }
}

/// Pipelined: the replacements for every reply already read (or readable without waiting) are
/// written with one flush, as a client with a window of 64 would.
async fn tput_raw_async(port: u16, m: u64, cap: Duration) -> Tput {
    let mut ws = raw_connect_async(port).await;
    for seq in 0..WINDOW as u64 {
        raw_round_trip(&mut ws, seq).await;
    }
    let (mut window, first) = RawWindow::start(m, cap);
    let mut broken = false;
    for frame in first {
        broken |= ws.feed(frame).await.is_err();
    }
    broken |= ws.flush().await.is_err();
    while !window.outstanding.is_empty() && !broken {
        let text = match raw_text_timeout(&mut ws, ACK_TIMEOUT).await {
            Ok(t) => t,
            Err(_) => break,
        };
        let mut answers: Vec<Message> = window.on_text(&text).into_iter().collect();
        while let Some(Some(Ok(Message::Text(text)))) = ws.next().now_or_never() {
            answers.extend(window.on_text(&text));
        }
        for frame in answers {
            broken |= ws.feed(frame).await.is_err();
        }
        broken |= ws.flush().await.is_err();
    }
    let out = window.finish();
    let _ = ws.close(None).await;
    out
}

/// As [`tput_raw_async`]: after each blocking read, what is readable without waiting is read
/// (the socket briefly non-blocking), then the replacements go out with one flush.
fn tput_raw_blocking(port: u16, m: u64, cap: Duration) -> Tput {
    let mut ws = raw_connect_blocking(port);
    for seq in 0..WINDOW as u64 {
        raw_round_trip_blocking(&mut ws, seq);
    }
    let (mut window, first) = RawWindow::start(m, cap);
    let mut broken = false;
    for frame in first {
        broken |= ws.write(frame).is_err();
    }
    broken |= ws.flush().is_err();
    while !window.outstanding.is_empty() && !broken {
        let text = match raw_text_blocking(&mut ws) {
            Ok(t) => t,
            Err(_) => break,
        };
        let mut answers: Vec<Message> = window.on_text(&text).into_iter().collect();
        broken |= ws.get_ref().set_nonblocking(true).is_err();
        while let Ok(message) = ws.read() {
            if let Message::Text(text) = message {
                answers.extend(window.on_text(&text));
            }
        }
        broken |= ws.get_ref().set_nonblocking(false).is_err();
        for frame in answers {
            broken |= ws.write(frame).is_err();
        }
        broken |= ws.flush().is_err();
    }
    let out = window.finish();
    let _ = ws.close(None);
    let _ = ws.flush();
    out
}

// ---------------------------------------------------------------------------------------------
// 3. Server bursts.

/// What a burst delivered: every index counted, those out of place, and whether `burst-done`
/// came.
#[derive(Clone, Copy, Default)]
struct Track {
    items: u64,
    next: u64,
    out_of_order: u64,
    unreadable: u64,
    done: bool,
}

impl Track {
    fn item(&mut self, index: Option<u64>) {
        match index {
            Some(i) => {
                self.items += 1;
                if i != self.next {
                    self.out_of_order += 1;
                }
                self.next = i + 1;
            }
            None => self.unreadable += 1,
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Burst {
    asked: u64,
    items: u64,
    out_of_order: u64,
    unreadable: u64,
    /// Bursts whose `burst-done` never came (within [`BURST_WAIT`]).
    unfinished: u64,
    secs: f64,
    cpu: Duration,
    failed: u64,
}

impl Burst {
    fn of(asked: u64, track: Track, secs: f64, cpu: Duration) -> Burst {
        Burst {
            asked,
            items: track.items,
            out_of_order: track.out_of_order,
            unreadable: track.unreadable,
            unfinished: u64::from(!track.done),
            secs,
            cpu,
            failed: 0,
        }
    }
    fn add(&mut self, o: Burst) {
        self.asked += o.asked;
        self.items += o.items;
        self.out_of_order += o.out_of_order;
        self.unreadable += o.unreadable;
        self.unfinished += o.unfinished;
        self.secs += o.secs;
        self.cpu += o.cpu;
        self.failed += o.failed;
    }
    fn lost(&self) -> u64 {
        self.asked.saturating_sub(self.items)
    }
    fn per_sec(&self) -> f64 {
        self.items as f64 / self.secs.max(1e-9)
    }
    fn cpu_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.items.max(1) as f64
    }
}

/// The timing of one burst: from just before the request to `burst-done`.
struct Clock {
    cpu0: Duration,
    start: Instant,
}

impl Clock {
    fn start() -> Clock {
        Clock {
            cpu0: cpu_now(),
            start: Instant::now(),
        }
    }
    fn stop(&self, n: u64, track: Track) -> Burst {
        Burst::of(
            n,
            track,
            self.start.elapsed().as_secs_f64(),
            cpu_now() - self.cpu0,
        )
    }
    /// How long to wait for the next event: until the burst's deadline, at most
    /// [`BURST_STALL`].
    fn left(&self) -> Duration {
        BURST_WAIT
            .saturating_sub(self.start.elapsed())
            .min(BURST_STALL)
    }
    /// Polls `done` (true once `burst-done` came) until it is, the deadline passes, or no item
    /// has arrived for [`BURST_STALL`]: for the readers that count in callbacks.
    fn wait_done(&self, track: &Mutex<Track>, mut done: impl FnMut(Duration) -> bool) {
        let (mut seen, mut since) = (0, Instant::now());
        while !done(Duration::from_millis(200)) {
            let items = track.lock().unwrap().items;
            if items != seen {
                (seen, since) = (items, Instant::now());
            } else if since.elapsed() > BURST_STALL || self.start.elapsed() > BURST_WAIT {
                return;
            }
        }
    }
    /// [`wait_done`](Self::wait_done) for an async `burst-done` signal.
    async fn wait_done_async(&self, track: &Mutex<Track>, done: &mut mpsc::UnboundedReceiver<()>) {
        let (mut seen, mut since) = (0, Instant::now());
        loop {
            match tokio::time::timeout(Duration::from_millis(200), done.recv()).await {
                Ok(_) => return,
                Err(_) => {
                    let items = track.lock().unwrap().items;
                    if items != seen {
                        (seen, since) = (items, Instant::now());
                    } else if since.elapsed() > BURST_STALL || self.start.elapsed() > BURST_WAIT {
                        return;
                    }
                }
            }
        }
    }
}

fn sio_item(event: &Event, track: &mut Track) -> bool {
    match event {
        Event::Message { event, args, .. } if event == "item" => {
            track.item(args.get::<u64>(0).ok());
            false
        }
        Event::Message { event, .. } if event == "burst-done" => {
            track.done = true;
            true
        }
        _ => false,
    }
}

async fn burst_sio_stream(url: &str, tr: Tr, n: u64) -> Burst {
    let client = sio_async(url, tr).await;
    let mut events = Box::pin(client.events());
    let mut track = Track::default();
    let clock = Clock::start();
    client.emit("burst", (n, PAD)).await.expect("emit burst");
    while let Ok(Some(event)) = tokio::time::timeout(clock.left(), events.next()).await {
        if sio_item(&event, &mut track) {
            break;
        }
    }
    let out = clock.stop(n, track);
    client.disconnect();
    out
}

fn burst_sio_iter(url: &str, tr: Tr, n: u64) -> Burst {
    let client = sio_blocking(url, tr);
    let mut events = client.events();
    let mut track = Track::default();
    let clock = Clock::start();
    client.emit("burst", (n, PAD)).expect("emit burst");
    while let Some(event) = events.next_timeout(clock.left()) {
        if sio_item(&event, &mut track) {
            break;
        }
    }
    let out = clock.stop(n, track);
    client.disconnect();
    out
}

fn burst_sio_on(url: &str, tr: Tr, n: u64) -> Burst {
    let track = Arc::new(Mutex::new(Track::default()));
    let (done_tx, done_rx) = std_mpsc::channel();
    let done_tx = Mutex::new(done_tx);
    let sink = track.clone();
    let done = track.clone();
    let client = Client::builder(url)
        .transports([tr.sio()])
        .timeout(ACK_TIMEOUT)
        .on("item", move |args, _| {
            sink.lock().unwrap().item(args.get::<u64>(0).ok());
        })
        .on("burst-done", move |_, _| {
            done.lock().unwrap().done = true;
            let _ = done_tx.lock().unwrap().send(());
        })
        .connect()
        .expect("sio-client connect");
    let clock = Clock::start();
    client.emit("burst", (n, PAD)).expect("emit burst");
    clock.wait_done(&track, |wait| {
        !matches!(
            done_rx.recv_timeout(wait),
            Err(std_mpsc::RecvTimeoutError::Timeout)
        )
    });
    let out = clock.stop(n, *track.lock().unwrap());
    client.disconnect();
    out
}

fn burst_args(n: u64) -> Vec<serde_json::Value> {
    vec![serde_json::json!(n), serde_json::json!(PAD)]
}

async fn burst_rs_async(url: &str, tr: Tr, n: u64) -> Burst {
    let track = Arc::new(Mutex::new(Track::default()));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let (sink, done) = (track.clone(), track.clone());
    let builder = RsAsyncBuilder::new(url)
        .on("item", move |payload, _c| {
            sink.lock().unwrap().item(rs_first_u64(&payload));
            async {}.boxed()
        })
        .on("burst-done", move |_p, _c| {
            done.lock().unwrap().done = true;
            let _ = done_tx.send(());
            async {}.boxed()
        });
    let client = rs_async(builder, tr).await;
    let clock = Clock::start();
    client
        .emit("burst", burst_args(n))
        .await
        .expect("emit burst");
    clock.wait_done_async(&track, &mut done_rx).await;
    let out = clock.stop(n, *track.lock().unwrap());
    let _ = tokio::time::timeout(Duration::from_secs(1), client.disconnect()).await;
    out
}

fn burst_rs_blocking(url: &str, tr: Tr, n: u64) -> Burst {
    let track = Arc::new(Mutex::new(Track::default()));
    let (done_tx, done_rx) = std_mpsc::channel();
    let (sink, done) = (track.clone(), track.clone());
    let builder = RsBlockingBuilder::new(url)
        .on("item", move |payload, _c| {
            sink.lock().unwrap().item(rs_first_u64(&payload));
        })
        .on("burst-done", move |_p, _c| {
            done.lock().unwrap().done = true;
            let _ = done_tx.send(());
        });
    let client = rs_blocking(builder, tr);
    let clock = Clock::start();
    client.emit("burst", burst_args(n)).expect("emit burst");
    clock.wait_done(&track, |wait| {
        !matches!(
            done_rx.recv_timeout(wait),
            Err(std_mpsc::RecvTimeoutError::Timeout)
        )
    });
    let out = clock.stop(n, *track.lock().unwrap());
    park(client);
    out
}

fn burst_frame(n: u64) -> Message {
    Message::text(format!("42[\"burst\",{n},{PAD}]"))
}

async fn burst_raw_async(port: u16, n: u64) -> Burst {
    let mut ws = raw_connect_async(port).await;
    let mut track = Track::default();
    let clock = Clock::start();
    ws.send(burst_frame(n)).await.expect("send burst");
    while let Ok(text) = raw_text_timeout(&mut ws, clock.left()).await {
        match parse_burst(&text) {
            Frame::Item(i) => track.item(i),
            Frame::Done => {
                track.done = true;
                break;
            }
            Frame::Other => {}
        }
    }
    let out = clock.stop(n, track);
    let _ = ws.close(None).await;
    out
}

fn burst_raw_blocking(port: u16, n: u64) -> Burst {
    let mut ws = raw_connect_blocking(port);
    let mut track = Track::default();
    let clock = Clock::start();
    ws.send(burst_frame(n)).expect("send burst");
    while let Ok(text) = raw_text_blocking(&mut ws) {
        match parse_burst(&text) {
            Frame::Item(i) => track.item(i),
            Frame::Done => {
                track.done = true;
                break;
            }
            Frame::Other => {}
        }
        if clock.start.elapsed() > BURST_WAIT {
            break;
        }
    }
    let out = clock.stop(n, track);
    let _ = ws.close(None);
    let _ = ws.flush();
    out
}

// ---------------------------------------------------------------------------------------------
// Report.

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn flags(failed: u64, capped: u64, extra: String) -> String {
    let mut notes = Vec::new();
    if failed > 0 {
        notes.push(format!("{failed} run(s) FAILED"));
    }
    if capped > 0 {
        notes.push(format!("capped: {capped} not run"));
    }
    if !extra.is_empty() {
        notes.push(extra);
    }
    if notes.is_empty() {
        String::new()
    } else {
        format!("  ({})", notes.join("; "))
    }
}

struct Targets {
    lines: Vec<String>,
    passed: usize,
    missed: usize,
}

impl Targets {
    /// A ratio against its target: `at_least` true for `>=`, false for `<=`; `None` (a side
    /// missing or failed) is a miss.
    fn ratio(&mut self, what: &str, ratio: Option<f64>, at_least: bool, target: f64) {
        let ok = ratio.is_some_and(|r| if at_least { r >= target } else { r <= target });
        // Two decimals, three where two would show the target itself for a miss (0.996x).
        let shown = ratio.map_or("n/a".to_string(), |r| {
            if format!("{r:.2}") == format!("{target:.2}") {
                format!("{r:.3}x")
            } else {
                format!("{r:.2}x")
            }
        });
        let op = if at_least { ">=" } else { "<=" };
        self.push(what, shown, format!("{op} {target:.2}x"), ok);
    }
    fn exact(&mut self, what: &str, value: u64, target: u64) {
        self.push(
            what,
            value.to_string(),
            format!("= {target}"),
            value == target,
        );
    }
    fn push(&mut self, what: &str, value: String, target: String, ok: bool) {
        if ok {
            self.passed += 1;
        } else {
            self.missed += 1;
        }
        self.lines.push(format!(
            "  {what:<72} {value:>7}  target {target:<8} {}",
            if ok { "PASS" } else { "MISS" }
        ));
    }
}

fn ratio_of(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && a.is_finite() => Some(a / b),
        _ => None,
    }
}

fn main() {
    let n_seq = env_num("SIO_COMPARE_SEQ", 20_000);
    let m_tput = env_num("SIO_COMPARE_THROUGHPUT", 200_000);
    let n_burst = env_num("SIO_COMPARE_BURST", 200_000);
    let cap = Duration::from_secs(env_num("SIO_COMPARE_CAP_SECS", 180).max(1));
    let transports: Vec<Tr> = [Tr::WebSocket, Tr::Polling]
        .into_iter()
        .filter(|t| listed("SIO_COMPARE_TRANSPORTS", t.name()))
        .collect();

    install_panic_hook();
    let binary = build_server();
    let (server, port) = match ServerProcess::spawn(Command::new(&binary), 0) {
        Ok(started) => started,
        Err(msg) => {
            eprintln!(
                "error: starting {} failed: {msg}",
                Path::new(&binary).display()
            );
            std::process::exit(1);
        }
    };
    let url = format!("http://127.0.0.1:{port}");
    let rt = Runtime::new().expect("tokio runtime");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "compare bench: socketioxide 0.18 (tests/socketioxide-server, release, pid {}) at {url}; \
         {cores} cores; load average {} at start; tokio multi-thread runtime for the async \
         clients; CPU = this process (the clients), user + system",
        server.pid(),
        loadavg()
    );
    let bench_start = Instant::now();
    let mut targets = Targets {
        lines: Vec::new(),
        passed: 0,
        missed: 0,
    };
    let mut sio_bad_acks = 0u64;

    if listed("SIO_COMPARE_ONLY", "seq") {
        println!(
            "\n1. Sequential acks: {n_seq} round trips per client and transport, one in flight \
             ({ROUNDS} rounds, client order rotated; {WARMUP} warm-up round trips per connection \
             not counted)"
        );
        println!(
            "  {:<10} {:<24} {:>9} {:>9} {:>9} {:>11} {:>6} {:>6}",
            "transport", "client", "msg/s", "p50", "p99", "CPU µs/rt", "wrong", "lost"
        );
        for &tr in &transports {
            let kinds = Kind::all(tr);
            let mut results: HashMap<Kind, Seq> = HashMap::new();
            let per_cap = cap / ROUNDS as u32;
            for round in 0..ROUNDS {
                let n = share(n_seq, ROUNDS, round);
                for kind in rotated(&kinds, round) {
                    let what = format!("seq {} {}", tr.name(), kind.name());
                    let run = guarded(&what, || match kind {
                        Kind::SioAsync => rt.block_on(seq_sio_async(&url, tr, n, per_cap)),
                        Kind::SioBlocking => seq_sio_blocking(&url, tr, n, per_cap),
                        Kind::RsAsync => rt.block_on(seq_rs_async(&url, tr, n, per_cap)),
                        Kind::RsBlocking => seq_rs_blocking(&url, tr, n, per_cap),
                        Kind::RawAsync => rt.block_on(seq_raw_async(port, n, per_cap)),
                        Kind::RawBlocking => seq_raw_blocking(port, n, per_cap),
                    });
                    let entry = results.entry(kind).or_default();
                    match run {
                        Some(s) => entry.add(s),
                        None => entry.failed += 1,
                    }
                }
            }
            for kind in &kinds {
                let s = &results[kind];
                println!(
                    "  {:<10} {:<24} {:>9.0} {:>9} {:>9} {:>11.1} {:>6} {:>6}{}",
                    tr.name(),
                    kind.name(),
                    s.per_sec(),
                    us(s.quantile(0.50)),
                    us(s.quantile(0.99)),
                    s.cpu_us(),
                    s.wrong,
                    s.lost,
                    flags(s.failed, s.capped, String::new())
                );
            }
            let rate = |k: Kind| {
                results
                    .get(&k)
                    .filter(|s| s.failed == 0 && !s.times.is_empty())
                    .map(Seq::per_sec)
            };
            let cpu = |k: Kind| {
                results
                    .get(&k)
                    .filter(|s| s.failed == 0 && !s.times.is_empty())
                    .map(Seq::cpu_us)
            };
            for k in [Kind::SioAsync, Kind::SioBlocking] {
                let s = &results[&k];
                sio_bad_acks += s.wrong + s.lost + s.failed;
            }
            let t = tr.name();
            targets.ratio(
                &format!("seq {t}: sio async / rust_socketio async, msg/s"),
                ratio_of(rate(Kind::SioAsync), rate(Kind::RsAsync)),
                true,
                1.0,
            );
            targets.ratio(
                &format!("seq {t}: sio blocking / rust_socketio blocking, msg/s"),
                ratio_of(rate(Kind::SioBlocking), rate(Kind::RsBlocking)),
                true,
                1.0,
            );
            if tr == Tr::WebSocket {
                targets.ratio(
                    "seq websocket: sio async / raw tokio-tungstenite, msg/s",
                    ratio_of(rate(Kind::SioAsync), rate(Kind::RawAsync)),
                    true,
                    0.9,
                );
                targets.ratio(
                    "seq websocket: sio blocking / raw tungstenite, msg/s",
                    ratio_of(rate(Kind::SioBlocking), rate(Kind::RawBlocking)),
                    true,
                    0.85,
                );
                targets.ratio(
                    "seq websocket: sio async / raw tokio-tungstenite, CPU per round trip",
                    ratio_of(cpu(Kind::SioAsync), cpu(Kind::RawAsync)),
                    false,
                    1.3,
                );
                targets.ratio(
                    "seq websocket: sio blocking / raw tungstenite, CPU per round trip",
                    ratio_of(cpu(Kind::SioBlocking), cpu(Kind::RawBlocking)),
                    false,
                    1.3,
                );
            }
        }
        println!(
            "  msg/s: counted round trips over their wall time; CPU µs/rt: this process's CPU \
             per round trip; wrong: a reply carrying another emit's number; lost: no reply \
             within {} s.",
            ACK_TIMEOUT.as_secs()
        );
        println!(
            "  idle CPU after this mode: {:.1} % of a core ({} rust_socketio blocking clients \
             parked)",
            idle_cpu_percent(),
            parked()
        );
    }

    if listed("SIO_COMPARE_ONLY", "throughput") {
        println!(
            "\n2. Throughput: {WINDOW} acks in flight, {m_tput} acks per client and transport \
             ({ROUNDS} rounds, client order rotated)"
        );
        println!(
            "  {:<10} {:<24} {:>9} {:>8} {:>6} {:>6} {:>8} {:>7} {:>11}",
            "transport",
            "client",
            "acks/s",
            "replies",
            "wrong",
            "lost",
            "crashes",
            "stalls",
            "CPU µs/ack"
        );
        for &tr in &transports {
            let kinds = Kind::all(tr);
            let mut results: HashMap<Kind, Tput> = HashMap::new();
            let per_cap = cap / ROUNDS as u32;
            for round in 0..ROUNDS {
                let m = share(m_tput, ROUNDS, round);
                for kind in rotated(&kinds, round) {
                    let what = format!("throughput {} {}", tr.name(), kind.name());
                    let run = guarded(&what, || match kind {
                        Kind::SioAsync => rt.block_on(tput_sio_async(&url, tr, m, per_cap)),
                        Kind::SioBlocking => tput_sio_blocking(&url, tr, m, per_cap),
                        // Reconnects included: an upper bound for rust_socketio's CPU per ack.
                        Kind::RsAsync => {
                            timed_cpu(|| rt.block_on(tput_rs_async(&url, tr, m, per_cap)))
                        }
                        Kind::RsBlocking => timed_cpu(|| tput_rs_blocking(&url, tr, m, per_cap)),
                        Kind::RawAsync => rt.block_on(tput_raw_async(port, m, per_cap)),
                        Kind::RawBlocking => tput_raw_blocking(port, m, per_cap),
                    });
                    let entry = results.entry(kind).or_default();
                    match run {
                        Some(t) => entry.add(t),
                        None => entry.failed += 1,
                    }
                }
            }
            for kind in &kinds {
                let t = results[kind];
                println!(
                    "  {:<10} {:<24} {:>9.0} {:>8} {:>6} {:>6} {:>8} {:>7} {:>11.1}{}",
                    tr.name(),
                    kind.name(),
                    t.per_sec(),
                    t.replies(),
                    t.wrong,
                    t.lost,
                    t.crashes,
                    t.stalls,
                    t.cpu_us(),
                    flags(t.failed, t.capped, String::new())
                );
            }
            let rate = |k: Kind| {
                results
                    .get(&k)
                    .filter(|t| t.failed == 0 && t.replies() > 0)
                    .map(Tput::per_sec)
            };
            for k in [Kind::SioAsync, Kind::SioBlocking] {
                let t = &results[&k];
                sio_bad_acks += t.wrong + t.lost + t.failed;
            }
            if tr == Tr::WebSocket {
                targets.ratio(
                    "throughput websocket: sio async / raw tokio-tungstenite, acks/s",
                    ratio_of(rate(Kind::SioAsync), rate(Kind::RawAsync)),
                    true,
                    0.5,
                );
            }
            targets.ratio(
                &format!(
                    "throughput {}: sio blocking (AckHandle) / rust_socketio blocking",
                    tr.name()
                ),
                ratio_of(rate(Kind::SioBlocking), rate(Kind::RsBlocking)),
                true,
                2.0,
            );
        }
        println!(
            "  acks/s: replies (right or wrong) per second of working connection; wrong: \
             delivered to another emit's callback;\n  lost: no reply within {} s (rust_socketio) \
             or {} s, or in flight when a connection died; crashes: rust_socketio's receive task \
             panicked\n  and a new client took over; stalls: no reply for {} s, a new client took \
             over; CPU µs/ack: this process's CPU per reply\n  (for rust_socketio including its \
             reconnects).",
            LOST_AFTER.as_secs(),
            ACK_TIMEOUT.as_secs(),
            STALL.as_secs()
        );
        println!(
            "  idle CPU after this mode: {:.1} % of a core ({} rust_socketio blocking clients \
             parked)",
            idle_cpu_percent(),
            parked()
        );
    }

    if listed("SIO_COMPARE_ONLY", "burst") {
        println!(
            "\n3. Server bursts: {n_burst} events of ~100 bytes back to back, {BURST_ROUNDS} bursts \
             per reader and transport (the second round in reverse order)"
        );
        println!(
            "  {:<10} {:<30} {:>9} {:>9} {:>6} {:>9} {:>11}",
            "transport", "reader", "events/s", "received", "lost", "disorder", "CPU µs/ev"
        );
        for &tr in &transports {
            let readers = Reader::all(tr);
            let mut results: HashMap<Reader, Burst> = HashMap::new();
            for round in 0..BURST_ROUNDS {
                let mut order = readers.clone();
                if round % 2 == 1 {
                    order.reverse();
                }
                for reader in order {
                    let what = format!("burst {} {}", tr.name(), reader.name());
                    let run = guarded(&what, || match reader {
                        Reader::SioStream => rt.block_on(burst_sio_stream(&url, tr, n_burst)),
                        Reader::SioIter => burst_sio_iter(&url, tr, n_burst),
                        Reader::SioOn => burst_sio_on(&url, tr, n_burst),
                        Reader::RsAsync => rt.block_on(burst_rs_async(&url, tr, n_burst)),
                        Reader::RsBlocking => burst_rs_blocking(&url, tr, n_burst),
                        Reader::RawAsync => rt.block_on(burst_raw_async(port, n_burst)),
                        Reader::RawBlocking => burst_raw_blocking(port, n_burst),
                    });
                    let entry = results.entry(reader).or_default();
                    match run {
                        Some(b) => entry.add(b),
                        None => {
                            entry.asked += n_burst;
                            entry.failed += 1;
                        }
                    }
                }
            }
            for reader in &readers {
                let b = results[reader];
                let extra = match (b.unfinished, b.unreadable) {
                    (0, 0) => String::new(),
                    (u, 0) => format!("{u} burst(s) without burst-done"),
                    (u, r) => format!("{u} burst(s) without burst-done, {r} unreadable"),
                };
                println!(
                    "  {:<10} {:<30} {:>9.0} {:>9} {:>6} {:>9} {:>11.2}{}",
                    tr.name(),
                    reader.name(),
                    b.per_sec(),
                    b.items,
                    b.lost(),
                    b.out_of_order,
                    b.cpu_us(),
                    flags(b.failed, 0, extra)
                );
            }
            let rate = |r: Reader| {
                results
                    .get(&r)
                    .filter(|b| b.failed == 0 && b.items > 0)
                    .map(Burst::per_sec)
            };
            let t = tr.name();
            for (reader, label) in [
                (Reader::SioStream, "async events()"),
                (Reader::SioIter, "blocking events()"),
                (Reader::SioOn, ".on()"),
            ] {
                targets.ratio(
                    &format!("burst {t}: sio {label} / rust_socketio blocking, events/s"),
                    ratio_of(rate(reader), rate(Reader::RsBlocking)),
                    true,
                    2.0,
                );
            }
            targets.ratio(
                &format!("burst {t}: sio .on() / sio blocking events(), events/s"),
                ratio_of(rate(Reader::SioOn), rate(Reader::SioIter)),
                true,
                1.0 / 1.5,
            );
            let sio_incomplete: u64 = [Reader::SioStream, Reader::SioIter, Reader::SioOn]
                .iter()
                .map(|r| {
                    let b = &results[r];
                    b.lost() + b.out_of_order + b.unreadable + b.unfinished + b.failed
                })
                .sum();
            targets.exact(
                &format!("burst {t}: sio events lost, out of order or unfinished (all readers)"),
                sio_incomplete,
                0,
            );
        }
        println!(
            "  events/s: items received per second from the request to burst-done; lost: items \
             never received;\n  disorder: items whose index was not the one after the previous \
             item's; CPU µs/ev: this process's CPU per item."
        );
        println!(
            "  idle CPU after this mode: {:.1} % of a core ({} rust_socketio blocking clients \
             parked)",
            idle_cpu_percent(),
            parked()
        );
    }

    if listed("SIO_COMPARE_ONLY", "seq") || listed("SIO_COMPARE_ONLY", "throughput") {
        targets.exact(
            "acks: sio-client misdelivered, lost or failed (seq and throughput)",
            sio_bad_acks,
            0,
        );
    }

    println!(
        "\nTargets (every ratio from this run, against the same server process): {} PASS, {} MISS",
        targets.passed, targets.missed
    );
    for line in &targets.lines {
        println!("{line}");
    }
    println!(
        "\ntotal bench time {:.1} s; load average {} at the end",
        bench_start.elapsed().as_secs_f64(),
        loadavg()
    );
    drop(rt);
    if std::env::var_os("SIO_COMPARE_SERVER_LOG").is_some() {
        eprintln!("--- server stderr ---\n{}", server.stderr());
    }
    drop(server);
    // The parked rust_socketio blocking clients go with the process (module docs).
    std::process::exit(0);
}
