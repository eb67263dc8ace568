//! Per-host memory of the transport that worked, so that reconnects and new clients to the same
//! host start with it instead of waiting for a blocked WebSocket again. In-process, with an
//! expiry: networks change (a laptop leaves the corporate proxy), so memory fades.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::Transport;

/// How long a host's transport is remembered.
pub(crate) const TTL: Duration = Duration::from_secs(10 * 60);

fn table() -> &'static Mutex<HashMap<String, (Transport, Instant)>> {
    static TABLE: OnceLock<Mutex<HashMap<String, (Transport, Instant)>>> = OnceLock::new();
    TABLE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Records that `transport` carried a connection to `host` at `now`.
pub(crate) fn remember(host: &str, transport: Transport, now: Instant) {
    let mut table = table().lock().unwrap_or_else(|e| e.into_inner());
    // Bounded: a process talking to very many hosts keeps only the recent ones.
    if table.len() >= 1024 {
        table.retain(|_, (_, at)| now.saturating_duration_since(*at) < TTL);
    }
    table.insert(host.to_string(), (transport, now));
}

/// The transport that last worked for `host`, if not expired.
pub(crate) fn recall(host: &str, now: Instant) -> Option<Transport> {
    let table = table().lock().unwrap_or_else(|e| e.into_inner());
    table
        .get(host)
        .filter(|(_, at)| now.saturating_duration_since(*at) < TTL)
        .map(|(t, _)| *t)
}

/// The order to try: the configured one, with the remembered transport moved to the front.
pub(crate) fn order(configured: &[Transport], remembered: Option<Transport>) -> Vec<Transport> {
    let mut order = configured.to_vec();
    if let Some(t) = remembered {
        if let Some(pos) = order.iter().position(|&c| c == t) {
            let t = order.remove(pos);
            order.insert(0, t);
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_transport_goes_first_and_expires() {
        let t0 = Instant::now();
        let all = [
            Transport::WebSocket,
            Transport::Streaming,
            Transport::Polling,
        ];
        assert_eq!(order(&all, None), all.to_vec());
        assert_eq!(
            order(&all, Some(Transport::Polling)),
            vec![
                Transport::Polling,
                Transport::WebSocket,
                Transport::Streaming
            ]
        );
        // A remembered transport the user no longer allows is not added back.
        assert_eq!(
            order(&[Transport::WebSocket], Some(Transport::Polling)),
            vec![Transport::WebSocket]
        );
        remember("memory-test-host:1", Transport::Streaming, t0);
        assert_eq!(
            recall("memory-test-host:1", t0 + Duration::from_secs(1)),
            Some(Transport::Streaming)
        );
        assert_eq!(recall("memory-test-host:1", t0 + TTL), None);
        assert_eq!(recall("memory-test-host:2", t0), None);
    }
}
