//! Server bursts against a real socket.io 4 server (Node, `tests/node/server.js`, in its own
//! process): the server emits `N` events of about 100 bytes back to back, and the client reads
//! them with a blocking `events()` iterator, an async stream, or an `on` handler.
//!
//!     cargo bench --bench burst
//!
//! For each transport (WebSocket, long-polling) and reader it prints events per second from
//! the request to the last event, checks that every event arrived in order (`lost` must be 0:
//! the client applies back-pressure instead of dropping), and the peak resident memory of this
//! process during the burst above what it held before (`/proc/self/status` VmHWM, reset with
//! `/proc/self/clear_refs` before each run), next to the event queue's bound.
//!
//! Environment knobs (optional): `SIO_BURST_EVENTS` (default 200000), `SIO_BURST_ROUNDS`
//! (default 3; the best round is shown with the median).

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sio_client::{AsyncClient, Client, Event, Transport};
use support::{NodeOptions, NodeServer, SioVersion};

/// Padding per event: with the name and the index, about 100 bytes on the wire.
const PAD: usize = 80;
const WAIT: Duration = Duration::from_secs(120);

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resets the peak-RSS counter (VmHWM) to the current RSS.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

#[derive(Clone, Copy, Debug)]
enum Reader {
    Blocking,
    Stream,
    Handler,
}

/// Checks the indices: how many are missing or out of place.
fn lost(items: &[u64], n: u64) -> u64 {
    let in_place = items
        .iter()
        .enumerate()
        .filter(|(i, v)| **v == *i as u64)
        .count() as u64;
    n - in_place.min(n)
}

fn item(event: &Event) -> Option<Result<u64, ()>> {
    match event {
        Event::Message { event, args, .. } if event == "item" => {
            Some(args.get::<u64>(0).map_err(|_| ()))
        }
        Event::Message { event, .. } if event == "burst-done" => Some(Err(())),
        _ => None,
    }
}

/// One burst; returns (seconds, items received in order).
fn run(url: &str, transport: Transport, reader: Reader, n: u64) -> (f64, Vec<u64>) {
    let builder = Client::builder(url)
        .transports([transport])
        .timeout(Duration::from_secs(20));
    match reader {
        Reader::Blocking => {
            let client = builder.connect().expect("connect");
            let mut events = client.events();
            let mut items = Vec::with_capacity(n as usize);
            let start = Instant::now();
            client.emit("burst", (n, PAD)).expect("emit");
            while let Some(event) = events.next_timeout(WAIT) {
                match item(&event) {
                    Some(Ok(i)) => items.push(i),
                    Some(Err(())) => break,
                    None => {}
                }
            }
            let secs = start.elapsed().as_secs_f64();
            client.disconnect();
            (secs, items)
        }
        Reader::Handler => {
            let items = Arc::new(Mutex::new(Vec::with_capacity(n as usize)));
            let (done_tx, done_rx) = mpsc::channel();
            let done_tx = Mutex::new(done_tx);
            let sink = items.clone();
            let client = builder
                .on("item", move |args, _| {
                    if let Ok(i) = args.get::<u64>(0) {
                        sink.lock().unwrap().push(i);
                    }
                })
                .on("burst-done", move |_, _| {
                    let _ = done_tx.lock().unwrap().send(());
                })
                .connect()
                .expect("connect");
            let start = Instant::now();
            client.emit("burst", (n, PAD)).expect("emit");
            let _ = done_rx.recv_timeout(WAIT);
            let secs = start.elapsed().as_secs_f64();
            client.disconnect();
            let items = items.lock().unwrap().clone();
            (secs, items)
        }
        Reader::Stream => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let client: AsyncClient = builder.connect_async().await.expect("connect");
                let mut events = Box::pin(client.events());
                let mut items = Vec::with_capacity(n as usize);
                let start = Instant::now();
                client.emit("burst", (n, PAD)).await.expect("emit");
                let _ = tokio::time::timeout(WAIT, async {
                    while let Some(event) = events.next().await {
                        match item(&event) {
                            Some(Ok(i)) => items.push(i),
                            Some(Err(())) => break,
                            None => {}
                        }
                    }
                })
                .await;
                let secs = start.elapsed().as_secs_f64();
                client.disconnect();
                (secs, items)
            })
        }
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is understood.
    let n = env_num("SIO_BURST_EVENTS", 200_000);
    let rounds = env_num("SIO_BURST_ROUNDS", 3).max(1);
    let server = NodeServer::start(SioVersion::V4, NodeOptions::default());
    let url = server.url();
    println!(
        "burst: {n} events of ~100 B from Node socket.io 4.8, {rounds} rounds; event queue bound 4096 events"
    );
    println!(
        "{:<10} {:<9} {:>12} {:>12} {:>6} {:>14}",
        "transport", "reader", "best ev/s", "median ev/s", "lost", "peak +RSS MiB"
    );
    for transport in [Transport::WebSocket, Transport::Polling] {
        for reader in [Reader::Blocking, Reader::Stream, Reader::Handler] {
            let mut rates = Vec::new();
            let mut worst_lost = 0;
            let mut peak = 0u64;
            for _ in 0..rounds {
                let before = status_kib("VmRSS:");
                reset_peak();
                let (secs, items) = run(&url, transport, reader, n);
                peak = peak.max(status_kib("VmHWM:").saturating_sub(before));
                worst_lost = worst_lost.max(lost(&items, n));
                rates.push(n as f64 / secs);
            }
            rates.sort_by(|a, b| a.total_cmp(b));
            println!(
                "{:<10} {:<9} {:>12.0} {:>12.0} {:>6} {:>14.1}",
                transport.as_str(),
                format!("{reader:?}").to_lowercase(),
                rates[rates.len() - 1],
                rates[rates.len() / 2],
                worst_lost,
                peak as f64 / 1024.0
            );
        }
    }
}
