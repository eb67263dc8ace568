//! Ack round trips against a real socket.io 4 server (Node, `tests/node/server.js`):
//! sio-client next to rust_socketio 0.6, in the same process and against the same server.
//!
//!     cargo bench --manifest-path benches/peers/Cargo.toml --bench ack
//!
//! (A crate of its own with its own lockfile, so that rust_socketio's dependencies stay out of
//! sio-client's Cargo.lock.)
//!
//! Measures, over WebSocket and over HTTP long-polling:
//! 1. sequential ack round-trip latency (p50/p99 after a warm-up),
//! 2. windowed throughput (acks/s with [`WINDOW`] acks in flight, for a fixed duration),
//! 3. (WebSocket only) time from `connect()` to connected, and to the first ack round trip.
//!
//! Every emit carries a unique sequence number; the server's "ack" handler calls back with the
//! same arguments, so a reply carrying another number is an ack delivered to the wrong emit.
//! rust_socketio draws its ack ids at random from 0..999, so with many acks in flight it
//! sometimes does that (and sometimes loses acks); both are counted and reported rather than
//! treated as fatal.
//!
//! Environment knobs (all optional): `SIO_BENCH_SECS` (throughput duration per run, default 3),
//! `SIO_BENCH_SAMPLES` (latency samples, default 3000), `SIO_BENCH_CONNECTS` (default 30),
//! `SIO_BENCH_ONLY` (comma list of `latency`, `throughput`, `connect`), `SIO_BENCH_TRANSPORTS`
//! (comma list of `websocket`, `polling`).
//!
//! Timing is plain `std::time::Instant`: each figure is one long loop over thousands of
//! network round trips, where criterion's statistics add run time but nothing of value.

// The Node server machinery and the CPU clock of the main crate's tests: only the files that
// need nothing but std (the rest of tests/support needs the main crate's dev-dependencies).
// Siblings at the crate root, as node.rs reaches process.rs through `super::`.
#[path = "../../../tests/support/cpu.rs"]
mod cpu;
#[allow(dead_code)]
#[path = "../../../tests/support/node.rs"]
mod node;
#[allow(dead_code)]
#[path = "../../../tests/support/process.rs"]
mod process;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cpu::cpu_time;
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use node::{NodeOptions, NodeServer, SioVersion};
use rust_socketio::asynchronous::{Client as RsClient, ClientBuilder as RsBuilder};
use rust_socketio::{Event as RsEvent, Payload, TransportType};
use sio_client::{AsyncClient, Client, Transport};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

/// Each measurement is split into this many rounds, alternating which client goes first, so
/// that load from elsewhere on the machine falls on both clients alike.
const ROUNDS: usize = 6;
/// Acks in flight in the throughput runs.
const WINDOW: usize = 64;
/// Sequential round trips before the latency samples are taken.
const WARMUP: usize = 100;
/// Generous: a reply this late means the ack is lost, not slow.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// A rust_socketio ack outstanding this long in a throughput run is counted as lost.
const LOST_AFTER: Duration = Duration::from_secs(1);
/// No ack at all for this long ends a throughput run as stalled.
const STALL: Duration = Duration::from_secs(3);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    WebSocket,
    Polling,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::WebSocket => "websocket",
            Mode::Polling => "polling",
        }
    }
    fn sio(self) -> Transport {
        match self {
            Mode::WebSocket => Transport::WebSocket,
            Mode::Polling => Transport::Polling,
        }
    }
    fn rs(self) -> TransportType {
        match self {
            Mode::WebSocket => TransportType::Websocket,
            Mode::Polling => TransportType::Polling,
        }
    }
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The transports to measure: `SIO_BENCH_TRANSPORTS=websocket` (or `polling`) for one only.
fn modes() -> Vec<Mode> {
    let wanted = std::env::var("SIO_BENCH_TRANSPORTS").unwrap_or_default();
    [Mode::WebSocket, Mode::Polling]
        .into_iter()
        .filter(|m| wanted.is_empty() || wanted.split(',').any(|w| w.trim() == m.name()))
        .collect()
}

fn enabled(part: &str) -> bool {
    match std::env::var("SIO_BENCH_ONLY") {
        Ok(list) => list.split(',').any(|p| p.trim() == part),
        Err(_) => true,
    }
}

// ---------------------------------------------------------------------------------------------
// Clients under test, behind one small interface.

/// The sequence number a rust_socketio ack payload carries: the server replies `cb(seq)`, which
/// rust_socketio hands over as the raw JSON array `[seq]` parsed into one value.
fn rs_seq(payload: &Payload) -> Option<u64> {
    match payload {
        Payload::Text(values) => values.first().and_then(|v| match v {
            serde_json::Value::Array(inner) => inner.first().and_then(|n| n.as_u64()),
            other => other.as_u64(),
        }),
        _ => None,
    }
}

type Reports = mpsc::UnboundedSender<(u64, Option<u64>)>;

/// Emits `seq` on "ack"; the callback reports `(seq it was registered for, seq it received)`.
async fn rs_emit(client: &RsClient, seq: u64, reports: &Reports) -> bool {
    let tx = reports.clone();
    let callback = move |payload: Payload, _c: RsClient| {
        let _ = tx.send((seq, rs_seq(&payload)));
        async {}.boxed()
    };
    client
        .emit_with_ack("ack", serde_json::json!(seq), ACK_TIMEOUT, callback)
        .await
        .map_err(|e| eprintln!("rust_socketio emit_with_ack failed: {e:?}"))
        .is_ok()
}

async fn rs_connect(url: &str, mode: Mode) -> (RsClient, mpsc::UnboundedReceiver<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let client = RsBuilder::new(url)
        .transport_type(mode.rs())
        .reconnect(false)
        .on(RsEvent::Connect, move |_p, _c| {
            let _ = tx.send(());
            async {}.boxed()
        })
        .connect()
        .await
        .expect("rust_socketio connect");
    (client, rx)
}

/// rust_socketio's connect() returns before the server has joined the namespace, and
/// socket.io 4 answers an event that arrives in that gap by closing the transport ("invalid
/// state"); so every rust_socketio run waits for the "connect" callback before emitting.
async fn rs_connect_ready(url: &str, mode: Mode) -> RsClient {
    let (client, mut connected) = rs_connect(url, mode).await;
    tokio::time::timeout(ACK_TIMEOUT, connected.recv())
        .await
        .expect("rust_socketio: no namespace CONNECT reply")
        .expect("rust_socketio: connect callback dropped");
    client
}

async fn sio_connect(url: &str, mode: Mode) -> AsyncClient {
    AsyncClient::builder(url)
        .transports([mode.sio()])
        .timeout(ACK_TIMEOUT)
        .connect_async()
        .await
        .expect("sio-client connect")
}

fn sio_connect_blocking(url: &str, mode: Mode) -> Client {
    Client::builder(url)
        .transports([mode.sio()])
        .timeout(ACK_TIMEOUT)
        .connect()
        .expect("sio-client connect")
}

// ---------------------------------------------------------------------------------------------
// Latency.

#[derive(Clone, Copy, Debug)]
struct Latency {
    p50: Duration,
    p99: Duration,
    mean: Duration,
    wrong: u64,
}

/// Round-trip times of one client, possibly gathered over several rounds.
#[derive(Default)]
struct Samples {
    times: Vec<Duration>,
    wrong: u64,
}

impl Samples {
    fn add(&mut self, other: Samples) {
        self.times.extend(other.times);
        self.wrong += other.wrong;
    }
}

fn summarise(samples: Samples) -> Latency {
    let Samples {
        times: mut samples,
        wrong,
    } = samples;
    samples.sort_unstable();
    let n = samples.len().max(1);
    let at = |q: usize| {
        samples
            .get((n * q / 100).min(n - 1))
            .copied()
            .unwrap_or_default()
    };
    let total: Duration = samples.iter().sum();
    Latency {
        p50: at(50),
        p99: at(99),
        mean: total / n as u32,
        wrong,
    }
}

async fn sequential<F, Fut>(samples: usize, mut round_trip: F) -> Samples
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = Option<u64>>,
{
    let mut times = Vec::with_capacity(samples);
    let mut wrong = 0;
    for seq in 0..(WARMUP + samples) as u64 {
        let start = Instant::now();
        let got = round_trip(seq).await;
        let took = start.elapsed();
        if got != Some(seq) {
            wrong += 1;
        }
        if seq >= WARMUP as u64 {
            times.push(took);
        }
    }
    Samples { times, wrong }
}

async fn latency_sio(url: &str, mode: Mode, samples: usize) -> Samples {
    let client = sio_connect(url, mode).await;
    let result = sequential(samples, |seq| {
        let client = client.clone();
        async move {
            let args = client.emit_with_ack("ack", seq, ACK_TIMEOUT).await.ok()?;
            args.get::<u64>(0).ok()
        }
    })
    .await;
    client.disconnect();
    result
}

/// The blocking client, driven from a plain thread as its users would.
fn latency_sio_blocking(url: &str, mode: Mode, samples: usize) -> Samples {
    let client = sio_connect_blocking(url, mode);
    let mut times = Vec::with_capacity(samples);
    let mut wrong = 0;
    for seq in 0..(WARMUP + samples) as u64 {
        let start = Instant::now();
        let got = client
            .emit_with_ack("ack", seq, ACK_TIMEOUT)
            .ok()
            .and_then(|a| a.get::<u64>(0).ok());
        let took = start.elapsed();
        if got != Some(seq) {
            wrong += 1;
        }
        if seq >= WARMUP as u64 {
            times.push(took);
        }
    }
    client.disconnect();
    Samples { times, wrong }
}

async fn latency_rs(url: &str, mode: Mode, samples: usize) -> Samples {
    let client = rs_connect_ready(url, mode).await;
    let (tx, rx) = mpsc::unbounded_channel();
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let result = sequential(samples, |seq| {
        let client = client.clone();
        let tx = tx.clone();
        let rx = rx.clone();
        async move {
            if !rs_emit(&client, seq, &tx).await {
                return None;
            }
            let mut rx = rx.lock().await;
            match tokio::time::timeout(ACK_TIMEOUT, rx.recv()).await {
                Ok(Some((_, got))) => got,
                _ => None,
            }
        }
    })
    .await;
    let _ = client.disconnect().await;
    result
}

// ---------------------------------------------------------------------------------------------
// Throughput.

/// Runs `f` and adds the process CPU time it used to `cpu`.
async fn with_cpu<T>(cpu: &mut Option<Duration>, f: impl Future<Output = T>) -> T {
    let before = cpu_time();
    let out = f.await;
    if let (Some(b), Some(a), Some(total)) = (before, cpu_time(), cpu.as_mut()) {
        *total += a.saturating_sub(b);
    } else {
        *cpu = None;
    }
    out
}

#[derive(Clone, Copy, Debug, Default)]
struct Throughput {
    /// Time the acks were counted over.
    active: Duration,
    acked: u64,
    wrong: u64,
    lost: u64,
    /// rust_socketio only: its receive task panicked and the client was replaced.
    crashes: u64,
    /// No ack at all for [`STALL`]; the client was replaced.
    stalls: u64,
}

impl Throughput {
    fn add(&mut self, other: Throughput) {
        self.active += other.active;
        self.acked += other.acked;
        self.wrong += other.wrong;
        self.lost += other.lost;
        self.crashes += other.crashes;
        self.stalls += other.stalls;
    }

    /// Replies per second, right or wrong (a misdelivered ack still made the round trip).
    fn per_sec(&self) -> f64 {
        (self.acked + self.wrong) as f64 / self.active.as_secs_f64().max(1e-9)
    }
}

async fn throughput_sio(url: &str, mode: Mode, run: Duration) -> Throughput {
    let client = sio_connect(url, mode).await;
    let mut next = 0u64;
    let mut in_flight = FuturesUnordered::new();
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
    // Warm-up: one window's worth, so that buffers and connections are set up.
    for _ in 0..WINDOW {
        in_flight.push(emit(next));
        next += 1;
    }
    while in_flight.next().await.is_some() {}

    let mut out = Throughput::default();
    let start = Instant::now();
    let deadline = start + run;
    for _ in 0..WINDOW {
        in_flight.push(emit(next));
        next += 1;
    }
    while let Some((seq, got)) = in_flight.next().await {
        match got {
            Some(g) if g == seq => out.acked += 1,
            Some(_) => out.wrong += 1,
            None => out.lost += 1,
        }
        if Instant::now() < deadline {
            in_flight.push(emit(next));
            next += 1;
        }
    }
    out.active = start.elapsed();
    client.disconnect();
    out
}

/// The blocking client from one thread: [`WINDOW`] acks in flight as `AckHandle`s, the oldest
/// waited for and replaced, as a caller without async would keep many requests going.
fn throughput_blocking_one_thread(url: &str, mode: Mode, run: Duration) -> Throughput {
    let client = sio_connect_blocking(url, mode);
    let mut next = 0u64;
    let mut in_flight = std::collections::VecDeque::new();
    let mut out = Throughput::default();
    let start = Instant::now();
    let deadline = start + run;
    for _ in 0..WINDOW {
        in_flight.push_back((next, client.emit_with_ack_handle("ack", next, ACK_TIMEOUT)));
        next += 1;
    }
    while let Some((seq, handle)) = in_flight.pop_front() {
        match handle
            .and_then(|h| h.wait())
            .ok()
            .and_then(|a| a.get::<u64>(0).ok())
        {
            Some(g) if g == seq => out.acked += 1,
            Some(_) => out.wrong += 1,
            None => out.lost += 1,
        }
        if Instant::now() < deadline {
            in_flight.push_back((next, client.emit_with_ack_handle("ack", next, ACK_TIMEOUT)));
            next += 1;
        }
    }
    out.active = start.elapsed();
    client.disconnect();
    out
}

/// The blocking client as before `AckHandle`: [`WINDOW`] threads, each waiting on its own
/// `emit_with_ack`.
fn throughput_blocking_threads(url: &str, mode: Mode, run: Duration) -> Throughput {
    let client = sio_connect_blocking(url, mode);
    let start = Instant::now();
    let deadline = start + run;
    let workers: Vec<_> = (0..WINDOW as u64)
        .map(|w| {
            let client = client.clone();
            std::thread::spawn(move || {
                let mut out = Throughput::default();
                let mut seq = w;
                while Instant::now() < deadline {
                    match client
                        .emit_with_ack("ack", seq, ACK_TIMEOUT)
                        .ok()
                        .and_then(|a| a.get::<u64>(0).ok())
                    {
                        Some(g) if g == seq => out.acked += 1,
                        Some(_) => out.wrong += 1,
                        None => out.lost += 1,
                    }
                    seq += WINDOW as u64;
                }
                out
            })
        })
        .collect();
    let mut out = Throughput::default();
    for worker in workers {
        out.add(worker.join().expect("worker"));
    }
    out.active = start.elapsed();
    client.disconnect();
    out
}

/// Panics raised inside rust_socketio's own tasks. When two acks in flight share an id, its
/// receive task can index past the end of its ack list (`Vec::remove`) and die; the
/// connection then never delivers anything again. The panic hook counts these instead of
/// letting them end the run.
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

/// rust_socketio with [`WINDOW`] acks in flight for `run` of wall time. When its receive task
/// dies (see [`RS_PANICS`]) or it stops answering, the in-flight acks count as lost and a
/// fresh client carries on; the rate is taken over the time spent with a working connection
/// (from each segment's start to its last ack), so reconnects and stall detection do not count
/// against it.
async fn throughput_rs(url: &str, mode: Mode, run: Duration) -> Throughput {
    let mut out = Throughput::default();
    let deadline = Instant::now() + run;
    let mut active = Duration::ZERO;
    let mut next = 0u64;
    let mut first = true;
    while Instant::now() < deadline {
        let client = rs_connect_ready(url, mode).await;
        let (tx, mut rx) = mpsc::unbounded_channel();
        if first {
            // Warm-up with one ack in flight at a time: no id collisions possible.
            for _ in 0..WINDOW {
                if rs_emit(&client, next, &tx).await {
                    let _ = tokio::time::timeout(ACK_TIMEOUT, rx.recv()).await;
                }
                next += 1;
            }
            first = false;
        }
        let panics = RS_PANICS.load(Ordering::SeqCst);
        // seq -> time sent, for the acks still outstanding.
        let mut pending: HashMap<u64, Instant> = HashMap::new();
        let start = Instant::now();
        let mut last_ack = start;
        let mut dead = false;
        loop {
            if Instant::now() < deadline {
                while pending.len() < WINDOW {
                    if rs_emit(&client, next, &tx).await {
                        pending.insert(next, Instant::now());
                    } else {
                        out.lost += 1;
                    }
                    next += 1;
                }
            } else if pending.is_empty() {
                break;
            }
            if let Ok(Some((expected, got))) =
                tokio::time::timeout(Duration::from_millis(50), rx.recv()).await
            {
                // The callback registered for `expected` may run more than once (acks sharing
                // an id all fire on the first reply); count it once.
                if pending.remove(&expected).is_some() {
                    last_ack = Instant::now();
                    if got == Some(expected) {
                        out.acked += 1;
                    } else {
                        out.wrong += 1;
                    }
                }
            }
            let now = Instant::now();
            if RS_PANICS.load(Ordering::SeqCst) != panics {
                out.crashes += 1;
                dead = true;
            } else if now.duration_since(last_ack) > STALL {
                out.stalls += 1;
                dead = true;
            }
            if dead {
                out.lost += pending.len() as u64;
                break;
            }
            let before = pending.len();
            pending.retain(|_, sent| now.duration_since(*sent) < LOST_AFTER);
            out.lost += (before - pending.len()) as u64;
        }
        active += last_ack.duration_since(start);
        let _ = tokio::time::timeout(Duration::from_secs(1), client.disconnect()).await;
    }
    out.active = active;
    out
}

// ---------------------------------------------------------------------------------------------
// Connect time.

#[derive(Clone, Copy, Debug)]
struct ConnectTimes {
    /// connect() returned (sio-client: namespace connected; rust_socketio: see below).
    returned: Duration,
    /// rust_socketio only: its "connect" callback ran (the namespace CONNECT reply arrived).
    connect_event: Option<Duration>,
    /// The first ack round trip after connect() completed.
    first_ack: Duration,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn medians(all: Vec<ConnectTimes>) -> ConnectTimes {
    let events: Vec<Duration> = all.iter().filter_map(|c| c.connect_event).collect();
    ConnectTimes {
        returned: median(all.iter().map(|c| c.returned).collect()),
        connect_event: if events.is_empty() {
            None
        } else {
            Some(median(events))
        },
        first_ack: median(all.iter().map(|c| c.first_ack).collect()),
    }
}

async fn connect_sio(url: &str, n: usize) -> ConnectTimes {
    let mut all = Vec::with_capacity(n);
    for i in 0..n + 3 {
        let start = Instant::now();
        let client = sio_connect(url, Mode::WebSocket).await;
        let returned = start.elapsed();
        let reply = client.emit_with_ack("ack", 1, ACK_TIMEOUT).await;
        let first_ack = start.elapsed();
        assert!(reply.is_ok(), "first ack failed: {reply:?}");
        client.disconnect();
        if i >= 3 {
            all.push(ConnectTimes {
                returned,
                connect_event: None,
                first_ack,
            });
        }
    }
    medians(all)
}

fn connect_sio_blocking(url: &str, n: usize) -> ConnectTimes {
    let mut all = Vec::with_capacity(n);
    for i in 0..n + 3 {
        let start = Instant::now();
        let client = sio_connect_blocking(url, Mode::WebSocket);
        let returned = start.elapsed();
        let reply = client.emit_with_ack("ack", 1, ACK_TIMEOUT);
        let first_ack = start.elapsed();
        assert!(reply.is_ok(), "first ack failed: {reply:?}");
        client.disconnect();
        if i >= 3 {
            all.push(ConnectTimes {
                returned,
                connect_event: None,
                first_ack,
            });
        }
    }
    medians(all)
}

async fn connect_rs(url: &str, n: usize) -> ConnectTimes {
    let mut all = Vec::with_capacity(n);
    for i in 0..n + 3 {
        let start = Instant::now();
        let (client, mut connected) = rs_connect(url, Mode::WebSocket).await;
        let returned = start.elapsed();
        // Emitting before the "connect" callback gets the transport closed by the server
        // (see rs_connect_ready), so a correct rust_socketio program waits for it first.
        tokio::time::timeout(ACK_TIMEOUT, connected.recv())
            .await
            .expect("rust_socketio: no namespace CONNECT reply");
        let connect_event = Some(start.elapsed());
        let (tx, mut rx) = mpsc::unbounded_channel();
        assert!(rs_emit(&client, 1, &tx).await, "rust_socketio emit failed");
        let first_ack = tokio::time::timeout(ACK_TIMEOUT, rx.recv())
            .await
            .ok()
            .flatten()
            .map(|_| start.elapsed());
        assert!(first_ack.is_some(), "rust_socketio: first ack lost");
        let _ = client.disconnect().await;
        if i >= 3 {
            all.push(ConnectTimes {
                returned,
                connect_event,
                first_ack: first_ack.unwrap_or_default(),
            });
        }
    }
    medians(all)
}

/// Runs the server's ack path hot over both transports before anything is measured: Node
/// compiles it on first use, and whichever client came first would otherwise pay for that.
async fn warm_server(url: &str) -> Duration {
    let start = Instant::now();
    for mode in [Mode::WebSocket, Mode::Polling] {
        throughput_sio(url, mode, Duration::from_millis(700)).await;
        latency_sio(url, mode, 200).await;
    }
    start.elapsed()
}

// ---------------------------------------------------------------------------------------------
// Report.

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "MET"
    } else {
        "MISSED"
    }
}

struct Targets {
    lines: Vec<String>,
}

impl Targets {
    fn check(&mut self, what: &str, value: String, ok: bool) {
        self.lines
            .push(format!("  {:<46} {:>14}  {}", what, value, verdict(ok)));
    }
}

fn main() {
    let secs = env_num("SIO_BENCH_SECS", 3);
    let samples = env_num("SIO_BENCH_SAMPLES", 3000) as usize;
    let connects = env_num("SIO_BENCH_CONNECTS", 30) as usize;
    let run = Duration::from_secs(secs);

    install_panic_hook();
    let server = NodeServer::start(SioVersion::V4, NodeOptions::default());
    let url = server.url();
    let rt = Runtime::new().expect("tokio runtime");
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "ack bench: socket.io 4 (Node) at {url}; {threads} cores; tokio multi-thread runtime; \
         window {WINDOW}; {samples} latency samples per client and transport ({ROUNDS} rounds, \
         {WARMUP} warm-up round trips per connection)"
    );
    let mut targets = Targets { lines: Vec::new() };
    let bench_start = Instant::now();
    let warm = rt.block_on(warm_server(&url));
    println!("server warm-up (JIT): {:.1} s", warm.as_secs_f64());

    if enabled("latency") {
        println!("\n1. Sequential ack round trip (emit_with_ack, one in flight)");
        println!(
            "  {:<10} {:<22} {:>9} {:>9} {:>9} {:>6}",
            "transport", "client", "p50", "p99", "mean", "wrong"
        );
        for mode in modes() {
            let (mut sio, mut blocking, mut rs) = Default::default();
            let per_round = samples.div_ceil(ROUNDS);
            for round in 0..ROUNDS {
                // Alternate the order so that neither client always meets the server in the
                // state the other one left it in.
                let first_sio = round % 2 == 0;
                if !first_sio {
                    Samples::add(&mut rs, rt.block_on(latency_rs(&url, mode, per_round)));
                }
                Samples::add(&mut sio, rt.block_on(latency_sio(&url, mode, per_round)));
                Samples::add(&mut blocking, latency_sio_blocking(&url, mode, per_round));
                if first_sio {
                    Samples::add(&mut rs, rt.block_on(latency_rs(&url, mode, per_round)));
                }
            }
            let (sio, blocking, rs) = (summarise(sio), summarise(blocking), summarise(rs));
            for (name, l) in [
                ("sio-client (async)", sio),
                ("sio-client (blocking)", blocking),
                ("rust_socketio (async)", rs),
            ] {
                println!(
                    "  {:<10} {:<22} {:>9} {:>9} {:>9} {:>6}",
                    mode.name(),
                    name,
                    us(l.p50),
                    us(l.p99),
                    us(l.mean),
                    l.wrong
                );
            }
            let r50 = sio.p50.as_secs_f64() / rs.p50.as_secs_f64();
            let r99 = sio.p99.as_secs_f64() / rs.p99.as_secs_f64();
            println!(
                "  {:<10} ratio sio-client(async)/rust_socketio: p50 {r50:.2}x, p99 {r99:.2}x \
                 (lower is better)",
                mode.name()
            );
            if mode == Mode::WebSocket {
                targets.check(
                    "WebSocket p50 latency <= 1.1x rust_socketio",
                    format!("{r50:.2}x"),
                    r50 <= 1.1,
                );
            }
        }
    }

    if enabled("throughput") {
        println!(
            "\n2. Windowed throughput ({WINDOW} acks in flight, {secs} s per client and transport, \
             in {ROUNDS} rounds)"
        );
        println!(
            "  {:<10} {:<22} {:>10} {:>8} {:>6} {:>6} {:>8} {:>11}",
            "transport", "client", "acks/s", "acked", "wrong", "lost", "crashes", "CPU µs/ack"
        );
        for mode in modes() {
            let (mut sio, mut rs) = (Throughput::default(), Throughput::default());
            let (mut sio_cpu, mut rs_cpu) = (Some(Duration::ZERO), Some(Duration::ZERO));
            let per_round = run / ROUNDS as u32;
            for round in 0..ROUNDS {
                let mut sio_round = || {
                    let t = rt.block_on(with_cpu(
                        &mut sio_cpu,
                        throughput_sio(&url, mode, per_round),
                    ));
                    sio.add(t);
                };
                if round % 2 == 0 {
                    sio_round();
                    rs.add(
                        rt.block_on(with_cpu(&mut rs_cpu, throughput_rs(&url, mode, per_round))),
                    );
                } else {
                    rs.add(
                        rt.block_on(with_cpu(&mut rs_cpu, throughput_rs(&url, mode, per_round))),
                    );
                    sio_round();
                }
            }
            // CPU per reply over the whole run (connects and stalls included, which for
            // rust_socketio's reconnects makes this an upper bound).
            let per_ack = |cpu: Option<Duration>, t: &Throughput| {
                cpu.map_or("n/a".to_string(), |c| {
                    format!(
                        "{:.1}",
                        c.as_secs_f64() * 1e6 / (t.acked + t.wrong).max(1) as f64
                    )
                })
            };
            let cpu_col = [per_ack(sio_cpu, &sio), per_ack(rs_cpu, &rs)];
            for ((name, t), cpu) in [("sio-client (async)", sio), ("rust_socketio (async)", rs)]
                .into_iter()
                .zip(cpu_col)
            {
                println!(
                    "  {:<10} {:<22} {:>10.0} {:>8} {:>6} {:>6} {:>8} {:>11}{}",
                    mode.name(),
                    name,
                    t.per_sec(),
                    t.acked,
                    t.wrong,
                    t.lost,
                    t.crashes,
                    cpu,
                    if t.stalls > 0 {
                        format!("  ({} stalls: no ack for {} s)", t.stalls, STALL.as_secs())
                    } else {
                        String::new()
                    }
                );
            }
            let ratio = sio.per_sec() / rs.per_sec().max(f64::MIN_POSITIVE);
            println!(
                "  {:<10} ratio sio-client/rust_socketio: {ratio:.2}x (higher is better)",
                mode.name()
            );
            match mode {
                Mode::WebSocket => targets.check(
                    "WebSocket throughput >= 1.0x rust_socketio",
                    format!("{ratio:.2}x"),
                    ratio >= 1.0,
                ),
                Mode::Polling => targets.check(
                    "Polling throughput >= 1.5x rust_socketio",
                    format!("{ratio:.2}x"),
                    ratio >= 1.5,
                ),
            }
        }
        println!(
            "  wrong = ack delivered to another emit's callback (checked by sequence number);\n  \
             lost = no reply within {} s, or in flight when the connection died;\n  \
             crashes = rust_socketio's receive task panicked (ack id collision) and a new\n  \
             client took over; its acks/s counts only the time with a working connection;\n  \
             CPU µs/ack = this process's user+system CPU per reply (the Node server excluded).",
            LOST_AFTER.as_secs()
        );
    }

    if enabled("throughput") {
        println!(
            "\n2b. The blocking client with {WINDOW} acks in flight: one thread holding AckHandles \
             against {WINDOW} threads each blocked in emit_with_ack ({secs} s each, same run)"
        );
        for mode in modes() {
            let (one, many) = if mode == Mode::WebSocket {
                let one = throughput_blocking_one_thread(&url, mode, run);
                (one, throughput_blocking_threads(&url, mode, run))
            } else {
                let many = throughput_blocking_threads(&url, mode, run);
                (throughput_blocking_one_thread(&url, mode, run), many)
            };
            for (name, t) in [("1 thread, AckHandle", one), ("64 threads", many)] {
                println!(
                    "  {:<10} {:<22} {:>10.0} acks/s  wrong {}  lost {}",
                    mode.name(),
                    name,
                    t.per_sec(),
                    t.wrong,
                    t.lost
                );
            }
            println!(
                "  {:<10} ratio 1 thread / 64 threads: {:.2}x (higher is better)",
                mode.name(),
                one.per_sec() / many.per_sec().max(1e-9)
            );
        }
    }

    if enabled("connect") {
        println!("\n3. Connect over WebSocket on loopback (median of {connects}, after 3 warm-up)");
        let sio = rt.block_on(connect_sio(&url, connects));
        let blocking = connect_sio_blocking(&url, connects);
        let rs = rt.block_on(connect_rs(&url, connects));
        println!(
            "  {:<22} {:>18} {:>16} {:>16}",
            "client", "connect() returned", "connect event", "first ack done"
        );
        for (name, c) in [
            ("sio-client (async)", sio),
            ("sio-client (blocking)", blocking),
            ("rust_socketio (async)", rs),
        ] {
            println!(
                "  {:<22} {:>18} {:>16} {:>16}",
                name,
                ms(c.returned),
                c.connect_event.map_or("(= returned)".to_string(), ms),
                ms(c.first_ack)
            );
        }
        println!(
            "  sio-client's connect() returns once the namespace CONNECT reply arrived; \
             rust_socketio's\n  returns after sending its CONNECT packet, and its \"connect\" \
             callback marks the reply.\n  \"first ack done\": connect() then one emit_with_ack \
             round trip, the fair end-to-end figure."
        );
        let ratio = sio.first_ack.as_secs_f64() / rs.first_ack.as_secs_f64();
        println!(
            "  ratio sio-client(async)/rust_socketio to first ack: {ratio:.2}x (lower is better)"
        );
        targets.check(
            "sio-client WebSocket connect <= 5 ms",
            ms(sio.returned),
            sio.returned <= Duration::from_millis(5),
        );
    }

    println!("\nTargets");
    for line in &targets.lines {
        println!("{line}");
    }
    println!(
        "\ntotal bench time {:.1} s",
        bench_start.elapsed().as_secs_f64()
    );
    drop(rt);
    if std::env::var_os("SIO_BENCH_SERVER_LOG").is_some() {
        eprintln!("--- server stderr ---\n{}", server.stderr());
    }
    drop(server);
}
