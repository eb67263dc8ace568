//! TLS and cookies end to end: `https://`/`wss://` through a TLS-terminating front with a test
//! CA (trusted, untrusted, wrong name, self-signed, `danger_accept_invalid_certs`), and a
//! sticky-session load balancer that answers 503 to any request without its affinity cookie
//! after the first, so every poll, POST, streaming GET and WebSocket upgrade must carry the
//! cookie jar. Upstreams are the mock server and a real Node socket.io 4 server.
#![cfg(feature = "mock-server")]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use sio_client::mock::MockServer;
use sio_client::{Client, ClientBuilder, Error, Event, Transport};
use support::sticky::{StickyBalancer, StickyStats};
use support::tls::{FrontCert, TlsFront};
use support::{NodeOptions, NodeServer, SioVersion};

const WAIT: Duration = Duration::from_secs(10);

const ALL: [Transport; 3] = [
    Transport::WebSocket,
    Transport::Streaming,
    Transport::Polling,
];

fn mock() -> MockServer {
    MockServer::builder()
        .on("/", "ack", |_socket, args, ack| {
            if let Some(ack) = ack {
                ack.send(args);
            }
        })
        .start_background()
        .expect("mock server")
}

fn node() -> NodeServer {
    NodeServer::start(SioVersion::V4, NodeOptions::default())
}

fn node_addr(server: &NodeServer) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], server.port()))
}

fn client(url: String) -> ClientBuilder {
    Client::builder(url)
        .remember_transport(false)
        .no_proxy()
        .timeout(WAIT)
}

/// `n` acknowledged round trips, each checked for its payload.
fn acks(client: &Client, what: &str, n: i32) {
    for i in 0..n {
        let reply = client
            .emit_with_ack("ack", (what, i), WAIT)
            .unwrap_or_else(|e| panic!("{what}: ack {i}: {e}"));
        assert_eq!(
            reply.parse::<(String, i32)>().unwrap(),
            (what.to_owned(), i),
            "{what}: ack {i}"
        );
    }
}

fn wait_transport_change(client: &Client) -> (Transport, Transport) {
    let mut events = client.events();
    loop {
        match events.next_timeout(WAIT) {
            Some(Event::TransportChanged { from, to }) => return (from, to),
            Some(Event::Connected { .. }) => continue,
            other => panic!("expected a transport change, got {other:?}"),
        }
    }
}

/// The connection was opened by `transport` on the first attempt.
fn assert_single_attempt(client: &Client, transport: Transport) {
    let report = client.connect_report();
    assert_eq!(report.len(), 1, "{report:?}");
    assert_eq!(report[0].transport, transport, "{report:?}");
    assert!(report[0].outcome.is_ok(), "{report:?}");
}

/// The failure a transport reports when the server's certificate is refused, with its text.
fn tls_failure(error: &Error, transport: Transport) -> String {
    match error.last_failure() {
        Error::Handshake {
            transport: t,
            status,
            body,
            ..
        } => {
            assert_eq!(*t, transport, "{error}");
            assert_eq!(
                *status, None,
                "no HTTP answer behind a failed TLS handshake: {error}"
            );
            body.clone()
        }
        Error::Transport {
            transport: t,
            message,
            ..
        } => {
            assert_eq!(*t, transport, "{error}");
            message.clone()
        }
        other => panic!("{transport}: expected a handshake or transport error, got {other:?}"),
    }
}

// ------------------------------------------------------------------------------------------
// TLS
// ------------------------------------------------------------------------------------------

#[test]
fn trusted_test_ca_connects_over_wss() {
    let server = mock();
    let front = TlsFront::start_background(server.addr());
    let client = client(front.url())
        .add_root_certificate(front.ca_pem())
        .connect()
        .expect("wss with the test CA");
    assert_eq!(client.transport(), Transport::WebSocket);
    assert_single_attempt(&client, Transport::WebSocket);
    acks(&client, "wss", 3);
    let received = server.wait_for_events_blocking(3, WAIT).unwrap();
    assert!(received.iter().all(|e| e.transport == Transport::WebSocket));
    assert!(front.stats().handshakes_ok >= 1, "{:?}", front.stats());
}

#[test]
fn trusted_test_ca_connects_over_https_polling_and_streaming() {
    let server = mock();
    let front = TlsFront::start_background(server.addr());
    for transport in [Transport::Polling, Transport::Streaming] {
        let client = client(front.url())
            .add_root_certificate(front.ca_pem())
            .transports([transport])
            .connect()
            .unwrap_or_else(|e| panic!("{transport} over https: {e}"));
        assert_eq!(client.transport(), transport);
        assert_single_attempt(&client, transport);
        acks(&client, &format!("https {transport}"), 3);
        client.disconnect();
    }
    let stats = front.stats();
    assert_eq!(stats.handshakes_failed, 0, "{stats:?}");
}

#[test]
fn wss_url_scheme_is_accepted_for_every_transport() {
    let server = mock();
    let front = TlsFront::start_background(server.addr());
    for transport in ALL {
        let client = client(front.wss_url())
            .add_root_certificate(front.ca_pem())
            .transports([transport])
            .connect()
            .unwrap_or_else(|e| panic!("{transport} from a wss:// URL: {e}"));
        assert_eq!(client.transport(), transport);
        acks(&client, &format!("wss url {transport}"), 1);
        client.disconnect();
    }
}

#[test]
fn untrusted_ca_fails_on_every_transport_with_a_certificate_error() {
    let server = mock();
    let front = TlsFront::start_background(server.addr());
    for transport in ALL {
        let error = client(front.url())
            .transports([transport])
            .connect()
            .err()
            .unwrap_or_else(|| panic!("{transport} connected without trusting the CA"));
        let text = tls_failure(&error, transport).to_ascii_lowercase();
        assert!(
            text.contains("certificate") || text.contains("unknownissuer"),
            "{transport}: the error should say the certificate is not trusted: {error}"
        );
    }
    // Each transport reached the front (the certificate was seen and refused, not a connection
    // error), and nothing ever got past TLS to the server. (The front's own count of failed
    // handshakes may lag: the client gives up as soon as it sends its alert.)
    let stats = front.stats();
    assert!(stats.connections >= 3, "{stats:?}");
    assert_eq!(stats.handshakes_ok, 0, "{stats:?}");
    assert_eq!(stats.upstream_connections, 0, "{stats:?}");
    assert_eq!(server.connection_count(), 0);
}

#[test]
fn untrusted_ca_fails_with_the_default_transports_too() {
    let server = mock();
    let front = TlsFront::start_background(server.addr());
    let error = client(front.url())
        .connect()
        .expect_err("no transport gets through an untrusted certificate");
    // The error is the last transport's to fail; whichever it was, it names the certificate.
    let transport = match error.last_failure() {
        Error::Handshake { transport, .. } | Error::Transport { transport, .. } => *transport,
        other => panic!("expected a handshake or transport error, got {other:?}"),
    };
    let text = tls_failure(&error, transport).to_ascii_lowercase();
    assert!(
        text.contains("certificate") || text.contains("unknownissuer"),
        "{error}"
    );
    let stats = front.stats();
    assert!(
        stats.connections >= 3,
        "every transport was tried: {stats:?}"
    );
    assert_eq!(stats.handshakes_ok, 0, "{stats:?}");
    assert_eq!(stats.upstream_connections, 0, "{stats:?}");
}

#[test]
fn certificate_for_another_name_fails_unless_danger_flag() {
    let server = mock();
    let front = TlsFront::start_background_wrong_name(server.addr());
    assert_eq!(front.cert(), FrontCert::WrongName);
    for transport in ALL {
        // The chain is trusted; only the name is wrong.
        let error = client(front.url())
            .add_root_certificate(front.ca_pem())
            .transports([transport])
            .connect()
            .err()
            .unwrap_or_else(|| panic!("{transport} accepted a certificate for another name"));
        let text = tls_failure(&error, transport).to_ascii_lowercase();
        assert!(
            text.contains("certificate") || text.contains("notvalidforname"),
            "{transport}: {error}"
        );
    }
    assert_eq!(front.stats().upstream_connections, 0);

    for transport in ALL {
        let client = client(front.url())
            .danger_accept_invalid_certs(true)
            .transports([transport])
            .connect()
            .unwrap_or_else(|e| panic!("{transport} with danger_accept_invalid_certs: {e}"));
        assert_eq!(client.transport(), transport);
        acks(&client, &format!("wrong name {transport}"), 2);
        client.disconnect();
    }
}

#[test]
fn self_signed_certificate_fails_even_with_the_ca_unless_danger_flag() {
    let server = mock();
    let front = TlsFront::start_background_self_signed(server.addr());
    let error = client(front.url())
        .add_root_certificate(front.ca_pem())
        .transports([Transport::WebSocket])
        .connect()
        .expect_err("a self-signed certificate is not trusted");
    let text = tls_failure(&error, Transport::WebSocket).to_ascii_lowercase();
    assert!(
        text.contains("certificate") || text.contains("unknownissuer"),
        "{error}"
    );

    let client = client(front.url())
        .danger_accept_invalid_certs(true)
        .connect()
        .expect("danger_accept_invalid_certs accepts a self-signed certificate");
    assert_eq!(client.transport(), Transport::WebSocket);
    acks(&client, "self-signed", 2);
}

#[test]
fn malformed_root_certificate_is_a_clear_error() {
    let server = mock();
    let front = TlsFront::start_background(server.addr());
    let error = client(front.url())
        .add_root_certificate("not a PEM file")
        .connect()
        .expect_err("a CA file without a certificate is refused");
    assert!(
        error
            .to_string()
            .to_ascii_lowercase()
            .contains("certificate"),
        "{error}"
    );
    assert_eq!(
        front.stats().connections,
        0,
        "refused before any connection"
    );
}

#[cfg(not(feature = "native-roots"))]
#[test]
fn native_roots_without_the_feature_is_a_clear_error() {
    let server = mock();
    let front = TlsFront::start_background(server.addr());
    let error = client(front.url())
        .add_root_certificate(front.ca_pem())
        .tls_native_roots(true)
        .connect()
        .expect_err("tls_native_roots(true) needs the native-roots feature");
    assert!(error.to_string().contains("native-roots"), "{error}");
    assert_eq!(
        front.stats().connections,
        0,
        "refused before any connection"
    );
}

#[cfg(feature = "native-roots")]
#[test]
fn native_roots_keep_the_added_test_ca() {
    let server = mock();
    let front = TlsFront::start_background(server.addr());
    let client = client(front.url())
        .add_root_certificate(front.ca_pem())
        .tls_native_roots(true)
        .connect()
        .expect("the system store plus the test CA");
    acks(&client, "native roots", 1);
}

/// A PKCS#12 client identity on every transport, and an upgrade, to a front that requires a
/// client certificate: rustls on every link, the first and the upgraded one.
#[cfg(feature = "pkcs12")]
#[test]
fn pkcs12_identity_on_every_transport_and_the_upgrade() {
    let server = mock();
    let front = TlsFront::start_background_requiring_client_cert(server.addr());
    let identity = front.client_identity();
    let password = "p12 +&=%";
    let pkcs12 = support::tls::pkcs12(&identity.chain_pem, &identity.key_pem, password);
    for transport in ALL {
        let client = client(front.url())
            .add_root_certificate(front.ca_pem())
            .tls_client_pkcs12(pkcs12.clone(), password)
            .transports([transport])
            .connect()
            .unwrap_or_else(|e| panic!("{transport} with a PKCS#12 identity: {e}"));
        assert_eq!(client.transport(), transport);
        assert_single_attempt(&client, transport);
        acks(&client, "pkcs12", 2);
    }
    // Polling first, then the WebSocket upgrade: both links present the identity.
    let upgraded = client(front.url())
        .add_root_certificate(front.ca_pem())
        .tls_client_pkcs12(pkcs12.clone(), password)
        .transports([Transport::Polling, Transport::WebSocket])
        .connect()
        .expect("polling with a PKCS#12 identity");
    acks(&upgraded, "pkcs12 polling", 1);
    assert_eq!(
        wait_transport_change(&upgraded),
        (Transport::Polling, Transport::WebSocket)
    );
    acks(&upgraded, "pkcs12 websocket", 1);
    assert_eq!(front.stats().handshakes_failed, 0, "{:?}", front.stats());

    // The same front refuses a client without a certificate, on every transport.
    for transport in ALL {
        let refused = client(front.url())
            .add_root_certificate(front.ca_pem())
            .transports([transport])
            .connect();
        assert!(
            refused.is_err(),
            "{transport} without a client certificate connected"
        );
    }
    // A wrong password is a clear error before anything is dialled.
    let connections = front.stats().connections;
    let error = client(front.url())
        .add_root_certificate(front.ca_pem())
        .tls_client_pkcs12(pkcs12, "p12 +&")
        .connect()
        .expect_err("a wrong PKCS#12 password");
    let message = error.to_string();
    assert!(
        message.contains("PKCS#12") && message.contains("wrong password"),
        "{message}"
    );
    assert_eq!(
        front.stats().connections,
        connections,
        "dialled with a bad identity"
    );
}

// ------------------------------------------------------------------------------------------
// Sticky sessions
// ------------------------------------------------------------------------------------------

/// Every request after the first carried the cookie, and nothing was turned away.
fn assert_sticky(stats: StickyStats) {
    assert_eq!(stats.cookies_issued, 1, "{stats:?}");
    assert_eq!(stats.without_cookie, 1, "{stats:?}");
    assert_eq!(stats.cookieless_after_first(), 0, "{stats:?}");
    assert_eq!(stats.rejected, 0, "{stats:?}");
}

#[test]
fn sticky_balancer_default_client_works_over_websocket() {
    let server = mock();
    let lb = StickyBalancer::start_background(server.addr());
    let client = client(lb.url()).connect().expect("through the balancer");
    assert_eq!(client.transport(), Transport::WebSocket);
    acks(&client, "sticky ws", 5);
    let stats = lb.stats();
    assert_eq!(stats.upgrades_completed, 1, "{stats:?}");
    // The upgrade was the first request, so it is the one that got the cookie (stored from
    // the 101). Only when WebSocket won alone: had it been slower than the head start, the
    // next transport would have raced it without a cookie and been turned away, correctly.
    if client.connect_report().len() == 1 {
        assert_sticky(stats);
    }
}

#[test]
fn sticky_balancer_polling_carries_the_cookie_on_every_request() {
    let server = mock();
    let lb = StickyBalancer::start_background(server.addr());
    let client = client(lb.url())
        .transports([Transport::Polling])
        .connect()
        .expect("polling through the balancer");
    assert_eq!(client.transport(), Transport::Polling);
    acks(&client, "sticky polling", 5);
    let stats = lb.stats();
    assert_sticky(stats);
    // Handshake, CONNECT POST, polls and the acks' POSTs: all but the handshake had the cookie.
    assert!(stats.with_cookie >= 5, "{stats:?}");
    assert_eq!(stats.upgrades, 0, "{stats:?}");
}

#[test]
fn sticky_balancer_streaming_carries_the_cookie_on_every_request() {
    let server = mock();
    let lb = StickyBalancer::start_background(server.addr());
    let client = client(lb.url())
        .transports([Transport::Streaming])
        .connect()
        .expect("streaming through the balancer");
    assert_eq!(client.transport(), Transport::Streaming);
    acks(&client, "sticky streaming", 5);
    let stats = lb.stats();
    assert_sticky(stats);
    assert!(stats.with_cookie >= 5, "{stats:?}");
}

#[test]
fn sticky_balancer_polling_upgrade_carries_the_cookie() {
    let server = mock();
    let lb = StickyBalancer::start_background(server.addr());
    let client = client(lb.url())
        .transports([Transport::Polling, Transport::WebSocket])
        .connect()
        .expect("polling through the balancer");
    assert_single_attempt(&client, Transport::Polling);
    acks(&client, "sticky before upgrade", 2);
    assert_eq!(
        wait_transport_change(&client),
        (Transport::Polling, Transport::WebSocket)
    );
    acks(&client, "sticky after upgrade", 3);
    let received = server.wait_for_events_blocking(5, WAIT).unwrap();
    assert_eq!(received.last().unwrap().transport, Transport::WebSocket);
    let stats = lb.stats();
    assert_sticky(stats);
    assert_eq!(stats.upgrades, 1, "{stats:?}");
    assert_eq!(stats.upgrades_with_cookie, 1, "{stats:?}");
    assert_eq!(stats.upgrades_completed, 1, "{stats:?}");
}

#[test]
fn sticky_balancer_turns_away_a_client_without_the_cookie() {
    // The balancer itself: a second client (its own cookie jar) is a stranger after the
    // first one is pinned, as another node would not know its session.
    let server = mock();
    let lb = StickyBalancer::start_background(server.addr());
    let first = client(lb.url())
        .transports([Transport::Polling])
        .connect()
        .expect("first client");
    let error = client(lb.url())
        .transports([Transport::Polling])
        .connect()
        .expect_err("a second cookie jar is turned away");
    match error.last_failure() {
        Error::Handshake { status, .. } => assert_eq!(*status, Some(503), "{error}"),
        other => panic!("expected a 503 handshake error, got {other:?}"),
    }
    assert_eq!(lb.stats().rejected, 1, "{:?}", lb.stats());
    acks(&first, "still pinned", 1);
}

#[test]
fn sticky_balancer_in_front_of_node() {
    let server = node();
    let lb = StickyBalancer::start_background(node_addr(&server));
    let client = client(lb.url())
        .transports([Transport::Polling, Transport::WebSocket])
        .connect()
        .unwrap_or_else(|e| panic!("Node through the balancer: {e}\n{}", server.stderr()));
    assert_single_attempt(&client, Transport::Polling);
    acks(&client, "node polling", 3);
    assert_eq!(
        wait_transport_change(&client),
        (Transport::Polling, Transport::WebSocket)
    );
    acks(&client, "node websocket", 3);
    let stats = lb.stats();
    assert_sticky(stats);
    assert_eq!(stats.upgrades_with_cookie, 1, "{stats:?}");
    assert_eq!(stats.upgrades_completed, 1, "{stats:?}");
}

#[test]
fn tls_and_sticky_balancer_in_front_of_node() {
    // https → TLS front → balancer → Node: the cookie set over TLS comes back on every request.
    let server = node();
    let lb = StickyBalancer::start_background(node_addr(&server));
    let front = TlsFront::start_background(lb.addr());
    let client = client(front.url())
        .add_root_certificate(front.ca_pem())
        .transports([Transport::Polling, Transport::WebSocket])
        .connect()
        .unwrap_or_else(|e| {
            panic!(
                "Node through TLS and the balancer: {e}\n{}",
                server.stderr()
            )
        });
    acks(&client, "node https", 2);
    assert_eq!(
        wait_transport_change(&client),
        (Transport::Polling, Transport::WebSocket)
    );
    acks(&client, "node wss", 2);
    let stats = lb.stats();
    assert_sticky(stats);
    assert_eq!(stats.upgrades_with_cookie, 1, "{stats:?}");
    assert_eq!(front.stats().handshakes_failed, 0, "{:?}", front.stats());
}
