//! Mistakes and limits the caller hears at the call site, at once: an empty event name, a URL
//! path that names a namespace (as in the JS client) or contradicts `namespace()`, and
//! `timeout` bounding `connect()` even with `retry_initial_connect`.
#![cfg(feature = "mock-server")]

use std::time::{Duration, Instant};

use sio_client::mock::MockServer;
use sio_client::{Client, Error, Transport};

#[test]
fn an_empty_event_name_is_refused_at_the_call_site() {
    let server = MockServer::builder().start_background().unwrap();
    let client = Client::connect(server.url()).unwrap();
    assert!(matches!(client.emit("", 1), Err(Error::EmptyEventName)));
    assert!(matches!(
        client.emit_with_ack("", 1, Duration::from_secs(1)),
        Err(Error::EmptyEventName)
    ));
    assert!(matches!(
        client.emit_volatile("", 1),
        Err(Error::EmptyEventName)
    ));
}

#[test]
fn the_url_path_is_the_namespace_as_in_the_js_client() {
    let server = MockServer::builder()
        .namespace("/admin")
        .start_background()
        .unwrap();
    let client = Client::connect(format!("{}/admin", server.url())).unwrap();
    assert_eq!(client.namespace(), "/admin");
    let sockets = server
        .wait_for_sockets_blocking(1, Duration::from_secs(10))
        .unwrap();
    assert_eq!(sockets[0].namespace(), "/admin");
    // A trailing slash names the same namespace.
    let again = Client::connect(format!("{}/admin/", server.url())).unwrap();
    assert_eq!(again.namespace(), "/admin");
}

#[test]
fn a_url_path_contradicting_namespace_is_an_error_at_once() {
    let started = Instant::now();
    let result = Client::builder("http://127.0.0.1:9/admin")
        .namespace("/other")
        .connect();
    match result {
        Err(Error::InvalidUrl { reason, .. }) => {
            assert!(
                reason.contains("/admin") && reason.contains("/other"),
                "{reason}"
            )
        }
        other => panic!("expected InvalidUrl, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(1), "not at once");
}

#[test]
fn timeout_bounds_connect_even_with_retry_initial_connect() {
    let server = MockServer::builder().start_background().unwrap();
    server.faults().refuse_connections(true);
    let started = Instant::now();
    let result = Client::builder(server.url())
        .transports([Transport::WebSocket])
        .timeout(Duration::from_secs(1))
        .reconnection_delay(Duration::from_millis(50))
        .retry_initial_connect(true)
        .connect();
    assert!(
        matches!(
            result.as_ref().map_err(Error::last_failure),
            Err(Error::ConnectTimeout(_))
        ),
        "{result:?}"
    );
    // One second, plus one handshake attempt in flight when it ran out, plus slack for CI.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "connect() returned after {:?}",
        started.elapsed()
    );
}
