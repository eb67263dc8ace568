//! The README's "Mock server for your integration tests" example, compiled and run as is.
//! Keep it identical to the code block in the README.

use std::time::Duration;

use serde_json::{json, Value};
use sio_client::mock::MockServer;
use sio_client::{Args, Client, Event, Transport};

const WAIT: Duration = Duration::from_secs(5);

/// The code under test: subscribes to a topic, returns whether the server accepted.
fn subscribe(client: &Client, topic: &str) -> Result<bool, sio_client::Error> {
    let reply = client.emit_with_ack("subscribe", json!({ "topic": topic }), WAIT)?;
    reply.get::<bool>(0)
}

#[test]
fn subscribes_and_gets_news_even_behind_a_proxy() {
    // A socket.io server inside the test process, on a free port of 127.0.0.1.
    let server = MockServer::builder()
        .on("/", "subscribe", |socket, args, ack| {
            let request: Value = args.get(0).unwrap_or_default();
            socket.join(request["topic"].as_str().unwrap_or_default());
            if let Some(ack) = ack {
                ack.send(Args::from_serialize(&true).unwrap());
            }
        })
        .start_background()
        .unwrap();

    for proxy_blocks_websocket in [false, true] {
        // Second round: a proxy answers WebSocket upgrades with 403, as corporate networks
        // do. The same client code must get through, over HTTP streaming.
        let status = proxy_blocks_websocket.then_some(403);
        server.faults().reject_websocket(status);
        server.clear_received();

        let client = Client::builder(server.url()).connect().unwrap();
        let expected = match status {
            Some(_) => Transport::Streaming,
            None => Transport::WebSocket,
        };
        assert_eq!(client.transport(), expected);

        assert!(subscribe(&client, "rust").unwrap());
        // What the server received, and over which transport.
        let received = server.wait_for_events_blocking(1, WAIT).unwrap();
        assert_eq!(received[0].event, "subscribe");
        assert_eq!(
            received[0].args.get::<Value>(0).unwrap(),
            json!({ "topic": "rust" })
        );
        assert_eq!(received[0].transport, expected);

        // A push from the server to everyone in the room.
        let news = Args::from_serialize(&"sio-client 0.1 is out").unwrap();
        server.to_room("/", "rust").emit("news", news);
        let mut events = client.events();
        loop {
            match events.next_timeout(WAIT) {
                Some(Event::Message { event, args, .. }) => {
                    assert_eq!(event, "news");
                    assert_eq!(args.get::<String>(0).unwrap(), "sio-client 0.1 is out");
                    break;
                }
                Some(_) => continue, // Connected, ...
                None => panic!("no news within {WAIT:?}"),
            }
        }
        client.disconnect();
    }
}
