//! Fault switches: ways to break the transports as real networks, proxies and servers do.
//! Each switch takes effect for requests and connections that arrive after it is set.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;

use super::lock;

/// The fault switches of one [`MockServer`](super::MockServer), reached with
/// [`MockServer::faults`](super::MockServer::faults). All default to off.
#[derive(Debug)]
pub struct Faults {
    reject_websocket: Mutex<Option<u16>>,
    websocket_no_upgrade: AtomicBool,
    reset_on_upgrade: AtomicBool,
    black_hole_websocket: AtomicBool,
    delay: Mutex<Duration>,
    stop_pings: AtomicBool,
    refuse_connections: AtomicBool,
    buffer_streaming: AtomicBool,
    /// Bumped to make every open TCP connection reset itself.
    pub(crate) kill: watch::Sender<u64>,
}

impl Faults {
    pub(crate) fn new() -> Faults {
        Faults {
            reject_websocket: Mutex::new(None),
            websocket_no_upgrade: AtomicBool::new(false),
            reset_on_upgrade: AtomicBool::new(false),
            black_hole_websocket: AtomicBool::new(false),
            delay: Mutex::new(Duration::ZERO),
            stop_pings: AtomicBool::new(false),
            refuse_connections: AtomicBool::new(false),
            buffer_streaming: AtomicBool::new(false),
            kill: watch::Sender::new(0),
        }
    }

    /// Answers every WebSocket upgrade request with this HTTP status (e.g. `Some(403)` as a
    /// corporate proxy does, `Some(400)`) and a short text body, then closes the connection.
    /// `None` turns the switch off.
    pub fn reject_websocket(&self, status: Option<u16>) {
        *lock(&self.reject_websocket) = status;
    }

    /// Answers WebSocket upgrade requests with `200 OK` and an HTML page instead of `101`, as a
    /// proxy that strips the `Upgrade` header and lets a default page answer.
    pub fn websocket_no_upgrade(&self, on: bool) {
        self.websocket_no_upgrade.store(on, Ordering::SeqCst);
    }

    /// Resets the TCP connection (RST, no HTTP answer) on every WebSocket upgrade request.
    pub fn reset_on_upgrade(&self, on: bool) {
        self.reset_on_upgrade.store(on, Ordering::SeqCst);
    }

    /// Completes WebSocket upgrades with a valid `101` and then never sends a byte (and ignores
    /// everything received): a buffering or black-holing middlebox. Applies to new WebSocket
    /// sessions and to upgrade probes alike.
    pub fn black_hole_websocket(&self, on: bool) {
        self.black_hole_websocket.store(on, Ordering::SeqCst);
    }

    /// Waits this long before handling every HTTP request, upgrades included (`Duration::ZERO`
    /// for none): a slow network or an overloaded server.
    pub fn delay(&self, delay: Duration) {
        *lock(&self.delay) = delay;
    }

    /// Stops sending heartbeat pings (and so also stops timing out clients that do not pong).
    /// A client then sees its heartbeat window pass without a ping.
    pub fn stop_pings(&self, on: bool) {
        self.stop_pings.store(on, Ordering::SeqCst);
    }

    /// Resets every new TCP connection right after accepting it, before reading a byte (the
    /// listener stays bound, so the client sees a reset rather than a refusal).
    pub fn refuse_connections(&self, on: bool) {
        self.refuse_connections.store(on, Ordering::SeqCst);
    }

    /// Holds back every byte of streaming responses (head included) until the response ends,
    /// as a buffering proxy does: a client never sees the open packet of a streaming handshake
    /// in time and must fall back to another transport. Applies to streaming GETs that start
    /// after it is set.
    pub fn buffer_streaming(&self, on: bool) {
        self.buffer_streaming.store(on, Ordering::SeqCst);
    }

    /// Resets every open TCP connection now (RST, no close frames, no close packets), as a
    /// network outage would. Sessions whose transport was on one of them end as on Node (a
    /// WebSocket closes its session, a pending poll closes it prematurely, so does an attached
    /// streaming GET); a polling or streaming session with no GET in flight lives on until its
    /// ping timeout.
    pub fn drop_all_connections(&self) {
        self.kill.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Turns every switch off.
    pub fn clear(&self) {
        self.reject_websocket(None);
        self.websocket_no_upgrade(false);
        self.reset_on_upgrade(false);
        self.black_hole_websocket(false);
        self.delay(Duration::ZERO);
        self.stop_pings(false);
        self.refuse_connections(false);
        self.buffer_streaming(false);
    }

    pub(crate) fn rejected_websocket(&self) -> Option<u16> {
        *lock(&self.reject_websocket)
    }
    pub(crate) fn is_websocket_no_upgrade(&self) -> bool {
        self.websocket_no_upgrade.load(Ordering::SeqCst)
    }
    pub(crate) fn is_reset_on_upgrade(&self) -> bool {
        self.reset_on_upgrade.load(Ordering::SeqCst)
    }
    pub(crate) fn is_black_hole_websocket(&self) -> bool {
        self.black_hole_websocket.load(Ordering::SeqCst)
    }
    pub(crate) fn current_delay(&self) -> Duration {
        *lock(&self.delay)
    }
    pub(crate) fn pings_stopped(&self) -> bool {
        self.stop_pings.load(Ordering::SeqCst)
    }
    pub(crate) fn is_refusing(&self) -> bool {
        self.refuse_connections.load(Ordering::SeqCst)
    }
    pub(crate) fn is_buffering_streaming(&self) -> bool {
        self.buffer_streaming.load(Ordering::SeqCst)
    }
}
