//! Hand-written servers on their own runtime for tests that need a server to misbehave on cue
//! at the HTTP or TCP level (no real server stops reading or floods pings when asked), and the
//! request reader and responder they share (on [`super::http`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sio_client::{DisconnectReason, Event, Events};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use super::background::Background;
use super::http::{self, HttpConn, RequestHead};

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
    _background: Background,
}

impl Server {
    /// Serves every accepted connection with `serve`, on 127.0.0.1 and an ephemeral port.
    pub fn start<F, Fut>(serve: F) -> Server
    where
        F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let background = Background::on_own_runtime("raw-server");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let serve = Arc::new(serve);
        let tasks = background.tasks();
        background.spawn(async move {
            let listener = TcpListener::from_std(listener).expect("listener");
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                tasks.spawn(serve(stream));
            }
        });
        Server {
            addr,
            _background: background,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Reads one request (head and body) from `stream`, with `buf` holding what was read past the
/// previous one; `None` when the connection ends or the request is unreadable.
pub async fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Option<(RequestHead, Vec<u8>)> {
    let mut conn = HttpConn {
        stream,
        buf: std::mem::take(buf),
    };
    let request = async {
        let head = conn.read_request_head().await.ok()??;
        let body = conn.read_body(head.body().ok()?, u64::MAX).await.ok()?;
        Some((head, body))
    }
    .await;
    *buf = conn.buf;
    request
}

/// Writes a `200 OK` with `body`.
pub async fn respond(stream: &mut TcpStream, body: &str) -> std::io::Result<()> {
    let answer = http::response(
        200,
        "OK",
        &[("Content-Type", "text/plain; charset=UTF-8")],
        body.as_bytes(),
    );
    stream.write_all(&answer).await
}
