//! Time from `connect()` to connected for each way a network can break WebSocket, against the
//! in-process mock server, compared with the single-transport connects they must stay close to.
//! Prints medians; asserts nothing (timings are never asserted in this project).
//!
//! `cargo bench --bench getting_through --features mock-server`

use std::time::{Duration, Instant};

use sio_client::mock::MockServer;
use sio_client::{Client, Transport};

const RUNS: usize = 25;
const HEAD_START: Duration = Duration::from_millis(300);

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Median connect time of `RUNS` fresh clients; each is dropped before the next.
fn connect_time(server: &MockServer, transports: &[Transport]) -> (Duration, Transport) {
    let mut samples = Vec::with_capacity(RUNS);
    let mut used = Transport::WebSocket;
    for _ in 0..RUNS {
        let started = Instant::now();
        let client = Client::builder(server.url())
            .transports(transports.iter().copied())
            .remember_transport(false)
            .upgrade(false)
            .head_start(HEAD_START)
            .connect()
            .expect("connect");
        samples.push(started.elapsed());
        used = client.transport();
        client.disconnect();
    }
    (median(samples), used)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let server = MockServer::builder()
        .start_background()
        .expect("mock server");
    let all = [
        Transport::WebSocket,
        Transport::Streaming,
        Transport::Polling,
    ];
    let (ws_only, _) = connect_time(&server, &[Transport::WebSocket]);
    let (polling_only, _) = connect_time(&server, &[Transport::Polling]);
    let (streaming_only, _) = connect_time(&server, &[Transport::Streaming]);
    println!("baselines (median of {RUNS}, loopback):");
    println!("  websocket only   {:8.2} ms", ms(ws_only));
    println!("  streaming only   {:8.2} ms", ms(streaming_only));
    println!("  polling only     {:8.2} ms", ms(polling_only));
    println!();
    println!(
        "{:<26} {:>10} {:>10} {:>12} {:>8}",
        "scenario (default order)", "median", "carried by", "bound", "within"
    );
    let row = |name: &str, took: Duration, used: Transport, bound: Duration| {
        println!(
            "{:<26} {:>7.2} ms {:>10} {:>9.2} ms {:>8}",
            name,
            ms(took),
            used.as_str(),
            ms(bound),
            if took <= bound { "yes" } else { "NO" }
        );
    };
    let (t, used) = connect_time(&server, &all);
    row(
        "nothing blocked",
        t,
        used,
        ws_only + Duration::from_millis(5),
    );
    // The HTTP round trip on loopback is well under a millisecond; 1 ms is a generous stand-in.
    let fast_bound = polling_only + Duration::from_millis(51);
    type Fault = fn(&MockServer);
    let fast: [(&str, Fault); 3] = [
        ("websocket 403", |s| s.faults().reject_websocket(Some(403))),
        ("upgrade stripped (200)", |s| {
            s.faults().websocket_no_upgrade(true)
        }),
        ("reset on upgrade", |s| s.faults().reset_on_upgrade(true)),
    ];
    for (name, fault) in fast {
        server.faults().clear();
        fault(&server);
        let (t, used) = connect_time(&server, &all);
        row(name, t, used, fast_bound);
    }
    server.faults().clear();
    server.faults().black_hole_websocket(true);
    let (t, used) = connect_time(&server, &all);
    row(
        "websocket black hole",
        t,
        used,
        polling_only + HEAD_START + Duration::from_millis(100),
    );
    server.faults().clear();
}
