//! Memory per idle connected client, and ack throughput, with 1,000 clients in one process.
//!
//!     cargo bench --bench memory --features mock-server
//!
//! For each of WebSocket and HTTP long-polling, a fresh process (this binary, re-run with
//! `SIO_MEMORY_ROLE=clients`) connects one warm-up client, reads its resident set size
//! (`VmRSS` in `/proc/self/status`), connects [`CLIENTS`] `AsyncClient`s, waits until every one
//! has had one ack round trip, and reads it again: the difference over [`CLIENTS`] is the cost
//! of one idle connected client (its task, buffers, sockets, HTTP client). The mock server runs
//! in another process (`SIO_MEMORY_ROLE=server`) so its own per-connection state is not
//! counted; its growth is reported beside for comparison. Each transport gets a process of its
//! own so memory freed by one run cannot be reused by the next and hide its cost.
//!
//! Then, with the clients still connected, every client does [`EMITS`] acknowledged emits with
//! [`WINDOW`] in flight, all clients at once, and the rate is reported. Every reply is checked
//! against the (client, sequence) it answers.
//!
//! Between the two, the clients sit idle for [`IDLE_HEARTBEATS`] heartbeats of the server
//! (pingInterval [`PING_INTERVAL`], pingTimeout [`PING_TIMEOUT`]): every ping must be answered in
//! time, so every client must still be connected, on its first session, afterwards. The time
//! to connect all clients is reported too.
//!
//! RSS is what the kernel charges to the process, allocator slack included: the figures are
//! an upper bound on what the client keeps, measured as an application would see it.
//! `SIO_MEMORY_CLIENTS` and `SIO_MEMORY_EMITS` override the defaults, `SIO_MEMORY_TRANSPORTS`
//! (a comma list of `websocket`, `streaming`, `polling`) the transports measured. With 10,000
//! clients the process needs about 10,000 descriptors for WebSocket and 10,000 plus a few
//! hundred for polling and streaming (one waiting GET each; POSTs share the pool).

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt, TryStreamExt};
use sio_client::mock::MockServer;
use sio_client::{AsyncClient, Transport};

/// Clients connected at once.
const CLIENTS: u64 = 1_000;
/// Acked emits per client in the throughput run.
const EMITS: u64 = 100;
/// Connects in flight at once.
const CONNECTING: usize = 64;
/// Acks in flight per client in the throughput run.
const WINDOW: usize = 25;
const WAIT: Duration = Duration::from_secs(120);
/// The mock server's heartbeat: shorter than Node's 25 s + 20 s, so that the idle period spans
/// several pings, long enough for a server saturated by the throughput run to ping on time.
const PING_INTERVAL: Duration = Duration::from_secs(5);
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// Heartbeat periods (interval + timeout) the clients sit through, idle, before the
/// throughput run: four pings at least.
const IDLE_HEARTBEATS: u32 = 2;

const ROLE: &str = "SIO_MEMORY_ROLE";

fn main() {
    match std::env::var(ROLE).as_deref() {
        Ok("server") => serve(),
        Ok("clients") => clients(),
        _ => drive(),
    }
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// `VmRSS` of a process, in KiB.
fn rss_kib(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc status")
}

/// The mock server, alone in its process: prints its URL, serves until stdin closes.
fn serve() {
    runtime().block_on(async {
        let server = MockServer::builder()
            .ping_interval(PING_INTERVAL)
            .ping_timeout(PING_TIMEOUT)
            .on("/", "ack", |_socket, args, ack| {
                if let Some(ack) = ack {
                    ack.send(args);
                }
            })
            .start()
            .await
            .expect("mock server");
        println!("{}", server.url());
        std::io::stdout().flush().expect("stdout");
        tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new()))
            .await
            .expect("stdin reader")
            .ok();
    });
}

fn transport_named(name: &str) -> Transport {
    match name {
        "websocket" => Transport::WebSocket,
        "streaming" => Transport::Streaming,
        "polling" => Transport::Polling,
        other => panic!("unknown transport {other}"),
    }
}

async fn connect(url: &str, transport: Transport) -> Result<AsyncClient, sio_client::Error> {
    AsyncClient::builder(url)
        .transports([transport])
        .upgrade(false)
        .remember_transport(false)
        .reconnection(false)
        .timeout(WAIT)
        .connect_async()
        .await
}

/// Checks that every reply answers its own emit: the server echoes `(client, seq)`.
async fn acks(client: &AsyncClient, id: u64, seqs: std::ops::Range<u64>, window: usize) {
    let expected: Vec<(u64, u64)> = seqs.clone().map(|seq| (id, seq)).collect();
    let replies: Vec<(u64, u64)> = stream::iter(seqs)
        .map(|seq| async move {
            client
                .emit_with_ack("ack", (id, seq), WAIT)
                .await?
                .parse::<(u64, u64)>()
        })
        .buffered(window)
        .try_collect()
        .await
        .expect("ack");
    assert_eq!(
        replies, expected,
        "client {id} got replies meant for others"
    );
}

/// One transport's run, in a process of its own. Talks to [`drive`] by lines: prints
/// `settled <rss before> <rss after>`, waits for a line on stdin (the driver reads the
/// server's memory meanwhile), then prints `acked <count> <seconds>`.
fn clients() {
    let url = std::env::var("SIO_MEMORY_URL").expect("SIO_MEMORY_URL");
    let transport = transport_named(&std::env::var("SIO_MEMORY_TRANSPORT").expect("transport"));
    let n = env_num("SIO_MEMORY_CLIENTS", CLIENTS);
    let emits = env_num("SIO_MEMORY_EMITS", EMITS);
    runtime().block_on(async {
        // One-time costs (runtime threads, TLS roots, lazily built tables) land before the
        // first reading, not in the per-client figure.
        let warm = connect(&url, transport).await.expect("warm-up connect");
        acks(&warm, 1_000_000, 0..1, 1).await;
        let before = rss_kib("self");

        let connecting = Instant::now();
        let clients: Vec<AsyncClient> = stream::iter(0..n)
            .map(|_| connect(&url, transport))
            .buffer_unordered(CONNECTING)
            .try_collect()
            .await
            .expect("connect");
        let connect_secs = connecting.elapsed().as_secs_f64();
        // Settled: every client connected and through one round trip.
        stream::iter(clients.iter().enumerate())
            .for_each_concurrent(CONNECTING, |(id, c)| acks(c, id as u64, 0..1, 1))
            .await;
        assert!(clients.iter().all(AsyncClient::is_connected));
        let ids: Vec<Option<String>> = clients.iter().map(AsyncClient::id).collect();
        let after = rss_kib("self");
        // Idle through several heartbeats: a ping answered late would have the server close
        // the session (a new id after the reconnection, or no connection at all).
        tokio::time::sleep((PING_INTERVAL + PING_TIMEOUT) * IDLE_HEARTBEATS).await;
        let lost = clients
            .iter()
            .zip(&ids)
            .filter(|(c, id)| !c.is_connected() || c.id() != **id)
            .count();
        println!("settled {before} {after} {connect_secs} {lost}");
        std::io::stdout().flush().expect("stdout");
        let mut line = String::new();
        tokio::task::spawn_blocking(move || std::io::stdin().read_line(&mut line))
            .await
            .expect("stdin reader")
            .expect("stdin");

        let started = Instant::now();
        let tasks: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(id, c)| {
                let c = c.clone();
                tokio::spawn(async move { acks(&c, id as u64, 1..emits + 1, WINDOW).await })
            })
            .collect();
        for task in tasks {
            task.await.expect("client task");
        }
        let secs = started.elapsed().as_secs_f64();
        println!("acked {} {secs}", n * emits);
        std::io::stdout().flush().expect("stdout");
        for c in &clients {
            c.disconnect();
        }
        warm.disconnect();
    });
}

struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Proc {
    fn spawn(envs: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(std::env::current_exe().expect("current exe"));
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn bench child");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("child stdout"));
        Proc {
            child,
            stdin,
            stdout,
        }
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("child stdout");
        assert!(!line.is_empty(), "a bench child exited early");
        line.trim().to_owned()
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Closing stdin ends the server; the clients process ends by itself.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

fn numbers(line: &str, tag: &str) -> Vec<f64> {
    let rest = line
        .strip_prefix(tag)
        .unwrap_or_else(|| panic!("expected {tag:?}, got {line:?}"));
    rest.split_whitespace()
        .map(|v| v.parse().expect("number"))
        .collect()
}

fn drive() {
    let n = env_num("SIO_MEMORY_CLIENTS", CLIENTS);
    let emits = env_num("SIO_MEMORY_EMITS", EMITS);
    println!(
        "{n} idle connected AsyncClients in one process (mock server in another), 2 tokio workers"
    );
    println!(
        "{:<10} {:>12} {:>12} {:>12} {:>16} {:>14}",
        "transport", "RSS before", "RSS after", "per client", "server per conn", "acks/s"
    );
    let transports =
        std::env::var("SIO_MEMORY_TRANSPORTS").unwrap_or("websocket,streaming,polling".into());
    for name in transports.split(',').map(str::trim) {
        // A fresh server per transport, so its figure is for this transport's sessions only.
        let mut server = Proc::spawn(&[(ROLE, "server")]);
        let url = server.line();
        let server_before = rss_kib(&server.pid());
        let mut clients = Proc::spawn(&[
            (ROLE, "clients"),
            ("SIO_MEMORY_URL", url.as_str()),
            ("SIO_MEMORY_TRANSPORT", name),
        ]);
        let settled = numbers(&clients.line(), "settled");
        let server_after = rss_kib(&server.pid());
        writeln!(clients.stdin.as_mut().expect("stdin"), "go").expect("clients stdin");
        let acked = numbers(&clients.line(), "acked");
        let (before, after) = (settled[0], settled[1]);
        println!(
            "{name:<10} {:>8.1} MiB {:>8.1} MiB {:>8.1} KiB {:>12.1} KiB {:>14.0}",
            before / 1024.0,
            after / 1024.0,
            (after - before) / n as f64,
            (server_after as f64 - server_before as f64) / n as f64,
            acked[0] / acked[1],
        );
        eprintln!(
            "  ({name}: all {n} connected in {:.1} s; {} of them lost their session while idle \
             through {IDLE_HEARTBEATS} heartbeats of {:?} + {:?}; {n} x {emits} acked emits, \
             {WINDOW} in flight per client, in {:.2} s)",
            settled[2], settled[3], PING_INTERVAL, PING_TIMEOUT, acked[1]
        );
        assert_eq!(
            settled[3], 0.0,
            "{name}: clients lost their session while idle (pings answered late)"
        );
    }
}
