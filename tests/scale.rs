//! Many clients in one process: 1,000 `AsyncClient`s connected at the same time to one mock
//! server, each doing 100 acknowledged emits with several in flight. Every ack must come back to
//! the emit that asked for it, and the server must have seen each event exactly once.
//!
//! The full 1,000 × 100 runs here, in debug builds too: connects are bounded
//! ([`CONNECTING`] in flight) so the server's accept queue never overflows, and each client
//! pipelines [`WINDOW`] acks so the run is bound by throughput, not by round trips.
//! `cargo bench --bench memory --features mock-server` runs the same load in release mode and
//! reports memory per client and acks per second.
#![cfg(feature = "mock-server")]

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt, TryStreamExt};
use sio_client::mock::MockServer;
use sio_client::{AsyncClient, Transport};

const CLIENTS: u64 = 1_000;
const EMITS: u64 = 100;
/// Connects in flight at once.
const CONNECTING: usize = 64;
/// Acks in flight per client.
const WINDOW: usize = 25;
/// Generous: on two loaded cores in a debug build a reply this late is lost, not slow.
const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_clients_each_get_their_own_hundred_acks() {
    let server = MockServer::builder()
        // Every event is checked below: keep them all (the default history is 10,000).
        .max_received((CLIENTS * EMITS) as usize)
        .on("/", "ack", |_socket, args, ack| {
            if let Some(ack) = ack {
                ack.send(args);
            }
        })
        .start()
        .await
        .unwrap();
    let url = server.url();
    let started = Instant::now();

    let clients: Vec<(u64, AsyncClient)> = stream::iter(0..CLIENTS)
        .map(|id| {
            let builder = AsyncClient::builder(url.clone())
                .transports([Transport::WebSocket])
                .remember_transport(false)
                .reconnection(false)
                .timeout(WAIT);
            async move { builder.connect_async().await.map(|c| (id, c)) }
        })
        .buffer_unordered(CONNECTING)
        .try_collect()
        .await
        .unwrap();
    let connected = started.elapsed();
    // All of them at the same time, each on a connection of its own.
    server
        .wait_for_sockets(CLIENTS as usize, WAIT)
        .await
        .unwrap();
    assert_eq!(server.sockets().len(), CLIENTS as usize);
    assert_eq!(server.connection_count(), CLIENTS as usize);
    assert!(clients.iter().all(|(_, c)| c.is_connected()));

    // Every client at once; each checks that every reply carries its own (id, seq).
    let tasks: Vec<_> = clients
        .iter()
        .map(|(id, client)| {
            let (id, client) = (*id, client.clone());
            tokio::spawn(async move {
                let replies: Vec<(u64, u64)> = stream::iter(0..EMITS)
                    .map(|seq| {
                        let client = &client;
                        async move {
                            let reply = client.emit_with_ack("ack", (id, seq), WAIT).await?;
                            reply.parse::<(u64, u64)>()
                        }
                    })
                    .buffered(WINDOW)
                    .try_collect()
                    .await?;
                let expected: Vec<(u64, u64)> = (0..EMITS).map(|seq| (id, seq)).collect();
                assert_eq!(
                    replies, expected,
                    "client {id} got replies meant for others"
                );
                Ok::<u64, sio_client::Error>(replies.len() as u64)
            })
        })
        .collect();
    let mut acked = 0;
    for task in tasks {
        acked += task.await.unwrap().unwrap();
    }
    let all_acked = started.elapsed();
    assert_eq!(acked, CLIENTS * EMITS);

    // Each event reached the server before its ack left it, so the record is complete now.
    let received = server.received();
    assert_eq!(received.len() as u64, CLIENTS * EMITS);
    let mut by_socket: HashMap<&str, (u64, HashSet<u64>)> = HashMap::new();
    for event in &received {
        assert_eq!(event.event, "ack");
        assert!(event.ack_id.is_some(), "sent without an ack id");
        let (id, seq) = event.args.parse::<(u64, u64)>().unwrap();
        let (owner, seqs) = by_socket
            .entry(event.socket_id.as_str())
            .or_insert_with(|| (id, HashSet::new()));
        assert_eq!(*owner, id, "two clients' events on one socket");
        assert!(seqs.insert(seq), "client {id} seq {seq} received twice");
    }
    assert_eq!(by_socket.len() as u64, CLIENTS);
    let owners: HashSet<u64> = by_socket.values().map(|(id, _)| *id).collect();
    assert_eq!(owners.len() as u64, CLIENTS, "a client used two sockets");
    assert!(by_socket
        .values()
        .all(|(_, seqs)| seqs.len() as u64 == EMITS));

    eprintln!(
        "{CLIENTS} clients connected in {connected:?}; {} acks in {:?}",
        CLIENTS * EMITS,
        all_acked - connected
    );
    for (_, client) in &clients {
        client.disconnect();
    }
}
