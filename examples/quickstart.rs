//! Quickstart: a socket.io server and client in one process, no Node.js needed.
//!
//! ```text
//! cargo run --example quickstart --features mock-server
//! ```
//!
//! Starts the crate's mock socket.io server, connects a client (over WebSocket), emits an
//! event, gets an acknowledgement and events from the server. Then it makes the "network"
//! refuse WebSocket upgrades with a 403, as some corporate proxies do, and runs the very same
//! client code again: this time the client gets through over HTTP streaming. Last, the proxy
//! also buffers streamed responses, and the same code gets through over HTTP long-polling.

use std::time::Duration;

use sio_client::mock::MockServer;
use sio_client::{Args, Client, Event};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = MockServer::builder()
        // "echo": the server sends the arguments straight back as an "echo" event.
        .on("/", "echo", |socket, args, _ack| socket.emit("echo", args))
        // "sum": the server answers the client's acknowledgement with the sum of the numbers.
        .on("/", "sum", |_socket, args, ack| {
            let total: i64 = args.parse::<Vec<i64>>().unwrap_or_default().iter().sum();
            if let Some(ack) = ack {
                ack.send(Args::from_serialize(&total).unwrap_or_default());
            }
        })
        // Every client is greeted as soon as it has connected.
        .on_connect("/", |socket| {
            let greeting = Args::from_serialize("hello from the server").unwrap_or_default();
            socket.emit("welcome", greeting);
        })
        // A server on its own background thread, for code without async.
        .start_background()?;
    println!("mock socket.io server at {}", server.url());

    println!("\n1. a clear network");
    talk(&server.url())?;

    println!("\n2. a proxy that answers WebSocket upgrades with 403 Forbidden");
    server.faults().reject_websocket(Some(403));
    talk(&server.url())?;

    println!("\n3. ... that also holds back streamed responses until they end");
    server.faults().buffer_streaming(true);
    talk(&server.url())?;
    Ok(())
}

/// The application's client code: the same for both runs.
fn talk(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    // Default transports: WebSocket first, then HTTP streaming, then HTTP long-polling; a
    // transport that fails hands over at once, one that hangs after a 300 ms head start.
    let client = Client::builder(url)
        .timeout(Duration::from_secs(5))
        .connect()?;
    println!("connected over {}", client.transport());
    for attempt in client.connect_report() {
        match &attempt.outcome {
            Ok(()) => println!("  tried {}: ok", attempt.transport),
            Err(why) => println!("  tried {}: failed: {why}", attempt.transport),
        }
    }

    // An event the server acknowledges: emit_with_ack blocks until the reply comes.
    let reply = client.emit_with_ack("sum", (1, 2, 3), Duration::from_secs(5))?;
    println!("sum(1, 2, 3) acknowledged with {}", reply.get::<i64>(0)?);

    // Events from the server without a handler arrive on events(), in order.
    client.emit("echo", ("ping", 42))?;
    let mut events = client.events();
    while let Some(event) = events.next_timeout(Duration::from_secs(5)) {
        if let Event::Message { event, args, .. } = event {
            println!(
                "server sent {event:?} with {}",
                serde_json::json!(args.values())
            );
            if event == "echo" {
                break;
            }
        }
    }

    client.disconnect();
    Ok(())
}
