//! sio-client against the official JavaScript client (socket.io-client 4.8, run by Node from
//! `tests/node/js_bench_client.js`) over HTTP long-polling, against one Node socket.io 4.8
//! server (`tests/node/server.js`, in its own process):
//!
//!     cargo bench --bench js_client
//!
//! 1. throughput: acks with 64 in flight ("ack" answers with its own arguments; a reply
//!    carrying another number counts as wrong), sio-client's blocking client (one thread with
//!    `AckHandle`s) and its `AsyncClient`;
//! 2. burst: the server emits 200,000 events of about 100 bytes back to back ("burst"), read
//!    with a blocking `events()` iterator and an async `events()` stream; every event must
//!    arrive, in order.
//!
//! Each client does a warm-up of a tenth of the run on its connection first (V8 compiles the
//! JS client's hot paths; the same for everyone), then the measured run; rounds alternate which
//! client goes first. Rates are from the first emit to the last reply or `burst-done`, timed
//! inside each client's own process; the ratios against the JS client are printed next to the
//! performance issue's target (≥ 3× over polling).
//!
//! Knobs (optional): `SIO_JS_ACKS` (default 20000), `SIO_JS_BURST` (default 200000),
//! `SIO_JS_ROUNDS` (default 2).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::VecDeque;
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sio_client::{AsyncClient, Client, Event, Transport};
use support::node::node_dir;
use support::{NodeOptions, NodeServer, SioVersion};

const WINDOW: usize = 64;
/// Padding per burst event: with the name and the index, about 100 bytes on the wire.
const PAD: u64 = 80;
const ACK_TIMEOUT: Duration = Duration::from_secs(30);
const WAIT: Duration = Duration::from_secs(300);
/// The ratio to the JS client the performance issue asks for over polling.
const TARGET: f64 = 3.0;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// This process's user + system CPU time (zero where `/proc` is missing).
fn cpu_now() -> Duration {
    support::cpu::cpu_time().unwrap_or_default()
}

/// One measured run: operations done, those wrong (misdelivered or out of order), wall time
/// and the client's CPU time.
#[derive(Clone, Copy, Default)]
struct Run {
    count: u64,
    wrong: u64,
    secs: f64,
    cpu: Duration,
}

impl Run {
    fn add(&mut self, other: Run) {
        self.count += other.count;
        self.wrong += other.wrong;
        self.secs += other.secs;
        self.cpu += other.cpu;
    }
    fn rate(&self) -> f64 {
        self.count as f64 / self.secs.max(1e-9)
    }
    fn cpu_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.count.max(1) as f64
    }
}

/// Times `f` (which returns the count and the wrong ones) with this process's CPU.
fn timed(f: impl FnOnce() -> (u64, u64)) -> Run {
    let (cpu0, start) = (cpu_now(), Instant::now());
    let (count, wrong) = f();
    Run {
        count,
        wrong,
        secs: start.elapsed().as_secs_f64(),
        cpu: cpu_now() - cpu0,
    }
}

fn js(url: &str, mode: &str, n: u64, extra: u64) -> Run {
    let script = node_dir().join("js_bench_client.js");
    let out = Command::new("node")
        .arg(&script)
        .args([url, mode, &n.to_string(), &extra.to_string()])
        .current_dir(node_dir())
        .output()
        .unwrap_or_else(|e| panic!("could not run node {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "the JS client's {mode} run failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value = serde_json::from_str(line.trim())
        .unwrap_or_else(|e| panic!("the JS client printed {line:?}: {e}"));
    let num = |key: &str| json[key].as_f64().unwrap_or(0.0);
    Run {
        count: num("count") as u64,
        wrong: num("wrong") as u64,
        secs: num("secs"),
        cpu: Duration::from_micros(num("cpu_us") as u64),
    }
}

fn blocking(url: &str) -> Client {
    Client::builder(url)
        .transports([Transport::Polling])
        .timeout(ACK_TIMEOUT)
        .connect()
        .expect("sio-client connect")
}

/// `n` acks, 64 in flight, from one thread; returns (replies, wrong).
fn acks_blocking(client: &Client, n: u64) -> (u64, u64) {
    let emit = |seq: u64| {
        let handle = client
            .emit_with_ack_handle("ack", seq, ACK_TIMEOUT)
            .expect("emit");
        (seq, handle)
    };
    let mut in_flight = VecDeque::with_capacity(WINDOW);
    let (mut next, mut replies, mut wrong) = (0u64, 0u64, 0u64);
    while next < n && in_flight.len() < WINDOW {
        in_flight.push_back(emit(next));
        next += 1;
    }
    while let Some((seq, handle)) = in_flight.pop_front() {
        let got = handle.wait().ok().and_then(|a| a.get::<u64>(0).ok());
        replies += 1;
        wrong += u64::from(got != Some(seq));
        if next < n {
            in_flight.push_back(emit(next));
            next += 1;
        }
    }
    (replies, wrong)
}

async fn acks_async(client: &AsyncClient, n: u64) -> (u64, u64) {
    let mut in_flight = futures_util::stream::FuturesOrdered::new();
    let (mut next, mut replies, mut wrong) = (0u64, 0u64, 0u64);
    let emit = |seq: u64| async move {
        let got = client
            .emit_with_ack("ack", seq, ACK_TIMEOUT)
            .await
            .ok()
            .and_then(|a| a.get::<u64>(0).ok());
        (seq, got)
    };
    while next < n && in_flight.len() < WINDOW {
        in_flight.push_back(emit(next));
        next += 1;
    }
    while let Some((seq, got)) = in_flight.next().await {
        replies += 1;
        wrong += u64::from(got != Some(seq));
        if next < n {
            in_flight.push_back(emit(next));
            next += 1;
        }
    }
    (replies, wrong)
}

/// What a burst delivered: items and those out of order; `None` for anything else.
fn item(event: &Event, items: &mut u64, disorder: &mut u64) -> Option<bool> {
    match event {
        Event::Message { event, args, .. } if event == "item" => {
            if args.get::<u64>(0).ok() != Some(*items) {
                *disorder += 1;
            }
            *items += 1;
            Some(false)
        }
        Event::Message { event, .. } if event == "burst-done" => Some(true),
        _ => None,
    }
}

fn burst_blocking(client: &Client, n: u64) -> (u64, u64) {
    let mut events = client.events();
    let (mut items, mut disorder) = (0, 0);
    client.emit("burst", (n, PAD)).expect("emit burst");
    while let Some(event) = events.next_timeout(WAIT) {
        if item(&event, &mut items, &mut disorder) == Some(true) {
            break;
        }
    }
    (items, disorder)
}

async fn burst_async(client: &AsyncClient, n: u64) -> (u64, u64) {
    let mut events = Box::pin(client.events());
    let (mut items, mut disorder) = (0, 0);
    client.emit("burst", (n, PAD)).await.expect("emit burst");
    while let Ok(Some(event)) = tokio::time::timeout(WAIT, events.next()).await {
        if item(&event, &mut items, &mut disorder) == Some(true) {
            break;
        }
    }
    (items, disorder)
}

#[derive(Clone, Copy, PartialEq)]
enum Who {
    Js,
    Blocking,
    Async,
}

const CLIENTS: [(Who, &str); 3] = [
    (Who::Js, "JS socket.io-client 4.8"),
    (Who::Blocking, "sio-client blocking"),
    (Who::Async, "sio-client async"),
];

/// One warm-up and one measured run of `mode` by `who`.
fn measure(runtime: &tokio::runtime::Runtime, url: &str, who: Who, mode: &str, n: u64) -> Run {
    let warm = (n / 10).max(1);
    match (who, mode) {
        (Who::Js, "throughput") => js(url, mode, n, WINDOW as u64),
        (Who::Js, _) => js(url, mode, n, PAD),
        (Who::Blocking, _) => {
            let client = blocking(url);
            let run = |n| match mode {
                "throughput" => acks_blocking(&client, n),
                _ => burst_blocking(&client, n),
            };
            run(warm);
            let out = timed(|| run(n));
            client.disconnect();
            out
        }
        (Who::Async, _) => runtime.block_on(async {
            let client = AsyncClient::builder(url)
                .transports([Transport::Polling])
                .timeout(ACK_TIMEOUT)
                .connect_async()
                .await
                .expect("sio-client connect");
            match mode {
                "throughput" => acks_async(&client, warm).await,
                _ => burst_async(&client, warm).await,
            };
            let (cpu0, start) = (cpu_now(), Instant::now());
            let (count, wrong) = match mode {
                "throughput" => acks_async(&client, n).await,
                _ => burst_async(&client, n).await,
            };
            let out = Run {
                count,
                wrong,
                secs: start.elapsed().as_secs_f64(),
                cpu: cpu_now() - cpu0,
            };
            client.disconnect();
            out
        }),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is understood.
    let acks = env_num("SIO_JS_ACKS", 20_000);
    let burst = env_num("SIO_JS_BURST", 200_000);
    let rounds = env_num("SIO_JS_ROUNDS", 2).max(1);
    let server = NodeServer::start(SioVersion::V4, NodeOptions::default());
    let url = server.url();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "js_client bench: Node socket.io 4.8 at {url}, long-polling; {cores} cores; {rounds} rounds \
         (the client order reversed every other round), each after a warm-up of a tenth"
    );
    let mut targets = Vec::new();
    for (mode, n, unit) in [("throughput", acks, "acks/s"), ("burst", burst, "events/s")] {
        let what = match mode {
            "throughput" => format!("{n} acks, {WINDOW} in flight"),
            _ => format!("a burst of {n} events of ~100 B"),
        };
        println!("\n{mode}: {what}");
        println!(
            "  {:<26} {:>10} {:>9} {:>7} {:>11}",
            "client", unit, "count", "wrong", "CPU µs/op"
        );
        let mut totals = [Run::default(); 3];
        for round in 0..rounds {
            let mut order: Vec<usize> = (0..CLIENTS.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for i in order {
                totals[i].add(measure(&runtime, &url, CLIENTS[i].0, mode, n));
            }
        }
        for (i, (_, name)) in CLIENTS.iter().enumerate() {
            let t = totals[i];
            println!(
                "  {:<26} {:>10.0} {:>9} {:>7} {:>11.1}",
                name,
                t.rate(),
                t.count,
                t.wrong,
                t.cpu_us()
            );
        }
        let js = totals[0];
        for (i, (_, name)) in CLIENTS.iter().enumerate().skip(1) {
            let ratio = totals[i].rate() / js.rate().max(1e-9);
            let label = format!("polling {mode}: {name} / JS client, {unit}");
            targets.push(format!(
                "  {label:<62} {ratio:>6.2}x  target >= {TARGET:.2}x {}",
                if ratio >= TARGET { "PASS" } else { "MISS" }
            ));
        }
        let expected = n * rounds;
        let missing: u64 = totals[1..]
            .iter()
            .map(|t| expected.saturating_sub(t.count) + t.wrong)
            .sum();
        let label = format!("polling {mode}: sio-client lost, wrong or out of order");
        targets.push(format!(
            "  {label:<62} {missing:>7}  target = 0     {}",
            if missing == 0 { "PASS" } else { "MISS" }
        ));
    }
    let passed = targets.iter().filter(|t| t.ends_with("PASS")).count();
    println!(
        "\nTargets (ratios from this run, against the same server process): {passed} PASS, {} MISS",
        targets.len() - passed
    );
    for line in targets {
        println!("{line}");
    }
}
