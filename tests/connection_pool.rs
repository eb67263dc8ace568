//! Polling clients of one process share one HTTP connection pool per network settings: the
//! long-poll GETs hold a connection each, while POSTs reuse idle kept-alive connections of the
//! pool instead of every client keeping a second connection of its own. Counted at a pass-through
//! proxy in front of the mock server. Cookies stay per client (the sticky-session tests in
//! `tls_and_cookies.rs` check that a second client does not get the first one's cookie).
#![cfg(feature = "mock-server")]

mod support;

use std::time::Duration;

use sio_client::mock::MockServer;
use sio_client::{Client, Transport};
use support::{FaultProxy, ProxyMode};

const CLIENTS: usize = 40;
const EMITS: u64 = 5;
const WAIT: Duration = Duration::from_secs(20);

#[test]
fn polling_clients_share_kept_alive_connections_for_their_posts() {
    let server = MockServer::builder()
        .on("/", "ack", |_socket, args, ack| {
            if let Some(ack) = ack {
                ack.send(args);
            }
        })
        .start_background()
        .expect("mock");
    let proxy = FaultProxy::start_background(server.addr(), ProxyMode::Pass);
    let clients: Vec<Client> = (0..CLIENTS)
        .map(|_| {
            Client::builder(proxy.url())
                .transports([Transport::Polling])
                .upgrade(false)
                .timeout(WAIT)
                .connect()
                .expect("connect")
        })
        .collect();
    // One client at a time: each has its GET waiting while it POSTs, so its own pool would need
    // a second connection; a shared one has the POST connection of the client before idle.
    for (c, client) in clients.iter().enumerate() {
        for i in 0..EMITS {
            let answer = client
                .emit_with_ack("ack", (c, i), WAIT)
                .expect("acknowledged");
            assert_eq!(answer.parse::<(usize, u64)>().unwrap(), (c, i));
        }
    }
    let stats = proxy.stats();
    assert!(
        stats.requests >= (CLIENTS as u64) * EMITS,
        "every emit was a request: {stats:?}"
    );
    // Separate pools: at least two connections per client (80). Shared: one GET connection per
    // client, plus the few the POSTs and the handshakes need at once.
    assert!(
        stats.connections < (CLIENTS as u64) * 3 / 2,
        "{} connections for {CLIENTS} polling clients: {stats:?}",
        stats.connections
    );
}

/// A pooled connection lives on the runtime that opened it: clients on two runtimes (two
/// `#[tokio::test]`s, say) must not share a pool, or one runtime's shutdown kills connections
/// the other's clients were handed. After runtime A is gone, the client on runtime B keeps
/// working.
#[test]
fn clients_on_another_runtime_survive_a_runtime_shutting_down() {
    use sio_client::AsyncClient;
    let server = MockServer::builder()
        .on("/", "ack", |_socket, args, ack| {
            if let Some(ack) = ack {
                ack.send(args);
            }
        })
        .start_background()
        .expect("mock");
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime")
    };
    let connect = |url: String| async move {
        AsyncClient::builder(url)
            .transports([Transport::Polling])
            .upgrade(false)
            .reconnection(false)
            .timeout(WAIT)
            .connect_async()
            .await
            .expect("connect")
    };
    let emits = |client: AsyncClient, from: u64| async move {
        for i in from..from + 20 {
            let answer = client
                .emit_with_ack("ack", i, WAIT)
                .await
                .expect("acknowledged");
            assert_eq!(answer.get::<u64>(0).unwrap(), i);
        }
        client
    };
    let (a, b) = (runtime(), runtime());
    // Several clients on A leave several idle connections in A's pool, opened on A.
    let on_a: Vec<AsyncClient> = a.block_on(async {
        let clients = futures_util::future::join_all((0..8).map(|_| connect(server.url()))).await;
        futures_util::future::join_all(clients.into_iter().map(|c| emits(c, 0))).await
    });
    // B's handshake and polls would take those idle connections if the pool were shared.
    let on_b = b.block_on(async { emits(connect(server.url()).await, 100).await });
    drop(a);
    drop(on_a);
    let on_b = b.block_on(emits(on_b, 200));
    assert!(on_b.is_connected());
}
