//! Hand-written servers on their own runtime for tests that need a server to misbehave on cue
//! at the HTTP or TCP level (no real server stops reading or floods pings when asked), and the
//! minimal HTTP/1.1 request reader and responder they share.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sio_client::{DisconnectReason, Event, Events};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The ping interval the hand-written servers announce in their OPEN packet.
pub const PING_INTERVAL_MS: u64 = 200;
/// Slack for a loaded CI machine on top of the protocol's own bounds; a hang is minutes.
pub const MARGIN: Duration = Duration::from_secs(5);

/// The Engine.IO OPEN packet of a session `h` with no upgrades, [`PING_INTERVAL_MS`] and
/// `ping_timeout_ms`.
pub fn open_packet(ping_timeout_ms: u64) -> String {
    format!(
        r#"0{{"sid":"h","upgrades":[],"pingInterval":{PING_INTERVAL_MS},"pingTimeout":{ping_timeout_ms},"maxPayload":100000000}}"#
    )
}

/// Waits, until `bound` after `start`, for the disconnect that a stalled write to the hand-written
/// server ends in, and asserts it is a `TransportError`; the panic on the bound says it counts
/// from `stalled` (what stalled at `start`).
pub fn expect_transport_error(events: &mut Events, start: Instant, bound: Duration, stalled: &str) {
    loop {
        match events.next_timeout(bound.saturating_sub(start.elapsed())) {
            Some(Event::Disconnected { reason, .. }) => {
                assert_eq!(reason, DisconnectReason::TransportError);
                break;
            }
            Some(_) => continue,
            None => panic!("no disconnect within {bound:?} of {stalled} stalling"),
        }
    }
}

/// A server on its own runtime; dropping it stops everything.
pub struct Server {
    addr: SocketAddr,
    _runtime: tokio::runtime::Runtime,
}

impl Server {
    /// Serves every accepted connection with `serve`, on 127.0.0.1 and an ephemeral port.
    pub fn start<F, Fut>(serve: F) -> Server
    where
        F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let serve = Arc::new(serve);
        runtime.spawn(async move {
            let listener = TcpListener::from_std(listener).expect("listener");
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(stream));
            }
        });
        Server {
            addr,
            _runtime: runtime,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Reads one request (head and `Content-Length` body); `None` when the connection ends.
pub async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end + 4);
    let length: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < length {
        let mut chunk = [0u8; 65536];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf.drain(..length).collect();
    Some((head, body))
}

/// Writes a `200 OK` with `body`.
pub async fn respond(stream: &mut TcpStream, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await
}
