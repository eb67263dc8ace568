//! Over polling, a server that never answers POSTs while it floods pings (every GET answered
//! at once with 10,000 of them): one pong is queued, not one per ping, the process does not
//! grow, and the stalled POST ends the connection within pingTimeout. Alone in its test binary
//! so that the process's memory figure is this test's own.
#![cfg(feature = "mock-server")]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sio_client::{Client, Transport};
use support::raw::{expect_transport_error, open_packet, read_request, respond, Server, MARGIN};

/// `VmRSS` of this process in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .expect("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Polling: the CONNECT's POST is answered, later POSTs never are, and every GET returns a
/// payload of 10,000 pings at once.
fn ping_flood_server(ping_timeout_ms: u64, gets: Arc<AtomicUsize>) -> Server {
    let connected = Arc::new(tokio::sync::Notify::new());
    let posts = Arc::new(AtomicUsize::new(0));
    Server::start(move |mut stream| {
        let (connected, posts, gets) = (connected.clone(), posts.clone(), gets.clone());
        async move {
            let mut buf = Vec::new();
            while let Some((head, _body)) = read_request(&mut stream, &mut buf).await {
                let target = head.target;
                let ok = if head.method == "POST" {
                    if posts.fetch_add(1, Ordering::SeqCst) == 0 {
                        connected.notify_one();
                        respond(&mut stream, "ok").await
                    } else {
                        // Never answered: the connection is held open, unread.
                        std::future::pending::<()>().await;
                        Ok(())
                    }
                } else if !target.contains("sid=") {
                    respond(&mut stream, &open_packet(ping_timeout_ms)).await
                } else if gets.fetch_add(1, Ordering::SeqCst) == 0 {
                    connected.notified().await;
                    respond(&mut stream, r#"40{"sid":"n"}"#).await
                } else {
                    let pings = vec!["2"; 10_000].join("\u{1e}");
                    respond(&mut stream, &pings).await
                };
                if ok.is_err() {
                    return;
                }
            }
        }
    })
}

#[test]
fn a_ping_flood_while_posts_stall_queues_one_pong_and_ends_the_connection() {
    let ping_timeout_ms = 3000;
    let gets = Arc::new(AtomicUsize::new(0));
    let server = ping_flood_server(ping_timeout_ms, gets.clone());
    let client = Client::builder(server.url())
        .transports([Transport::Polling])
        .reconnection(false)
        .connect()
        .expect("connect");
    let mut events = client.events();
    let before = rss_kib();
    let start = Instant::now();
    // The first pong's POST stalls; meanwhile the GETs go on bringing pings.
    let bound = Duration::from_millis(ping_timeout_ms) + MARGIN;
    expect_transport_error(&mut events, start, bound, "the POST");
    let grown = rss_kib().saturating_sub(before);
    assert!(
        gets.load(Ordering::SeqCst) > 10,
        "the server's flood did not happen: {} GETs",
        gets.load(Ordering::SeqCst)
    );
    assert!(
        grown < 64 * 1024,
        "the process grew by {grown} KiB during the flood"
    );
}
