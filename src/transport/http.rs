//! The HTTP client and settings shared by every request of one connection (handshakes, polls,
//! streams, POSTs, and their retries), apart from the transports that use them.

use std::sync::Arc;

use reqwest::header::HeaderMap;

use crate::transport::url::Endpoint;
use crate::Transport;

/// Settings shared by every request of one polling session.
#[derive(Clone)]
pub(crate) struct HttpSettings {
    pub(crate) http: reqwest::Client,
    pub(crate) net: Arc<super::net::Net>,
    pub(crate) endpoint: Arc<Endpoint>,
    pub(crate) headers: HeaderMap,
    /// Largest response body accepted, in bytes.
    pub(crate) max_response: usize,
    /// Connect timeout of the HTTP clients (the pooled one above, and the one a retry uses).
    pub(crate) connect_timeout: std::time::Duration,
}

impl HttpSettings {
    pub(crate) fn url(&self, transport: Transport, sid: Option<&str>) -> url::Url {
        self.endpoint.url(transport, sid, next_stamp())
    }
}

/// A process-wide request counter: unique `t` values without reading the clock.
fn next_stamp() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STAMP: AtomicU64 = AtomicU64::new(0);
    STAMP.fetch_add(1, Ordering::Relaxed)
}
