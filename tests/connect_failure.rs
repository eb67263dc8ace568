//! A connect that gets through nowhere returns the whole report: every transport's attempt and
//! hints for the classic mistakes (TLS to a plain server, the wrong path, a proxy that wants
//! credentials or is not there, an untrusted certificate, nothing listening, no answer).
#![cfg(feature = "mock-server")]

mod support;

use std::net::TcpListener;
use std::time::Duration;

use sio_client::mock::MockServer;
use sio_client::{AsyncClient, Client, ConnectFailure, Error, Hint, Transport};
use support::tls::TlsFront;
use support::ConnectProxy;

const WAIT: Duration = Duration::from_secs(10);

const ALL: [Transport; 3] = [
    Transport::WebSocket,
    Transport::Streaming,
    Transport::Polling,
];

fn mock() -> MockServer {
    MockServer::builder()
        .start_background()
        .expect("mock server")
}

/// A loopback port nothing listens on: bound by the OS, then released.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

fn report(result: Result<Client, Error>) -> ConnectFailure {
    match result {
        Err(Error::ConnectFailed(failure)) => *failure,
        Err(other) => panic!("expected the connect report, got {other:?}"),
        Ok(client) => panic!("connected over {}", client.transport()),
    }
}

/// Every configured transport was tried, each failed, and the report says so in order.
fn assert_every_transport_failed(failure: &ConnectFailure, transports: &[Transport]) {
    let tried: Vec<Transport> = failure.attempts.iter().map(|a| a.transport).collect();
    assert_eq!(tried, transports, "{failure}");
    for attempt in &failure.attempts {
        assert!(attempt.outcome.is_err(), "{attempt:?}");
    }
    let text = failure.to_string();
    for transport in transports {
        assert!(text.contains(transport.as_str()), "{text}");
    }
}

#[test]
fn nothing_listening_reports_every_transport() {
    let port = closed_port();
    let url = format!("http://127.0.0.1:{port}");
    let failure = report(
        Client::builder(&url)
            .transports(ALL)
            .remember_transport(false)
            .timeout(WAIT)
            .connect(),
    );
    assert_every_transport_failed(&failure, &ALL);
    assert_eq!(failure.url, url);
    assert_eq!(
        failure.hints,
        [Hint::NothingListening {
            address: format!("127.0.0.1:{port}")
        }],
        "{failure}"
    );
    // The deciding error is still the last transport's, typed.
    assert!(
        matches!(
            failure.error,
            Error::Handshake {
                transport: Transport::Polling,
                ..
            } | Error::Transport {
                transport: Transport::Polling,
                ..
            }
        ),
        "{:?}",
        failure.error
    );
}

#[test]
fn https_to_a_plain_http_server_hints_at_the_scheme() {
    let server = mock();
    let url = server.url().replacen("http://", "https://", 1);
    let error = Client::builder(&url)
        .transports(ALL)
        .remember_transport(false)
        .timeout(WAIT)
        .connect()
        .expect_err("TLS to a plain-HTTP port");
    let failure = match &error {
        Error::ConnectFailed(failure) => failure,
        other => panic!("expected the report, got {other:?}"),
    };
    assert_every_transport_failed(failure, &ALL);
    assert_eq!(failure.hints, [Hint::PlainHttpServer], "{error}");
    assert!(error.to_string().contains("use http://"), "{error}");
}

#[test]
fn a_404_hints_at_the_path() {
    let server = mock();
    let failure = report(
        Client::builder(server.url())
            .path("/sockets/")
            .transports(ALL)
            .remember_transport(false)
            .timeout(WAIT)
            .connect(),
    );
    assert_every_transport_failed(&failure, &ALL);
    for attempt in &failure.attempts {
        assert_eq!(attempt.status, Some(404), "{attempt:?}");
    }
    assert_eq!(
        failure.hints,
        [Hint::WrongPath {
            path: "/sockets/".into()
        }],
        "{failure}"
    );
}

#[test]
fn a_proxy_wanting_credentials_and_a_missing_proxy() {
    let server = mock();
    let proxy = ConnectProxy::start_background(Some(("alice".into(), "pw".into())));
    let failure = report(
        Client::builder(server.url())
            .proxy(proxy.url())
            .transports([Transport::WebSocket, Transport::Polling])
            .remember_transport(false)
            .timeout(WAIT)
            .connect(),
    );
    assert_every_transport_failed(&failure, &[Transport::WebSocket, Transport::Polling]);
    assert_eq!(failure.hints, [Hint::ProxyCredentials], "{failure}");

    let port = closed_port();
    let failure = failure_of_proxy(&server, &format!("http://u:secret@127.0.0.1:{port}"));
    assert_eq!(
        failure.hints,
        [Hint::ProxyUnreachable {
            proxy: format!("http://127.0.0.1:{port}")
        }],
        "{failure}"
    );
    assert!(
        !failure.to_string().contains("secret"),
        "the proxy's password is not in the report: {failure}"
    );
}

fn failure_of_proxy(server: &MockServer, proxy: &str) -> ConnectFailure {
    report(
        Client::builder(server.url())
            .proxy(proxy)
            .transports([Transport::WebSocket, Transport::Polling])
            .remember_transport(false)
            .timeout(WAIT)
            .connect(),
    )
}

#[test]
fn untrusted_and_misnamed_certificates() {
    let server = mock();
    let front = TlsFront::start_background(server.addr());
    let failure = report(
        Client::builder(front.url())
            .transports(ALL)
            .remember_transport(false)
            .tls_native_roots(false)
            .timeout(WAIT)
            .connect(),
    );
    assert_every_transport_failed(&failure, &ALL);
    assert_eq!(failure.hints, [Hint::UntrustedCertificate], "{failure}");

    let front = TlsFront::start_background_wrong_name(server.addr());
    let failure = report(
        Client::builder(front.url())
            .transports(ALL)
            .remember_transport(false)
            .add_root_certificate(front.ca_pem())
            .timeout(WAIT)
            .connect(),
    );
    assert_every_transport_failed(&failure, &ALL);
    assert_eq!(
        failure.hints,
        [Hint::CertificateNameMismatch {
            host: "localhost".into()
        }],
        "{failure}"
    );
}

#[test]
fn a_black_hole_reports_no_answer_within_the_timeout() {
    let server = mock();
    server.faults().black_hole_websocket(true);
    let timeout = Duration::from_millis(800);
    let failure = report(
        Client::builder(server.url())
            .transports([Transport::WebSocket])
            .probe_timeout(Duration::from_secs(30))
            .timeout(timeout)
            .connect(),
    );
    assert_every_transport_failed(&failure, &[Transport::WebSocket]);
    assert!(
        matches!(failure.error, Error::ConnectTimeout(t) if t == timeout),
        "{:?}",
        failure.error
    );
    assert_eq!(failure.hints, [Hint::NoAnswer], "{failure}");
}

#[tokio::test]
async fn the_async_client_gets_the_same_report() {
    let port = closed_port();
    let error = AsyncClient::builder(format!("http://127.0.0.1:{port}"))
        .transports([Transport::WebSocket, Transport::Polling])
        .remember_transport(false)
        .timeout(WAIT)
        .connect_async()
        .await
        .expect_err("nothing listens");
    match &error {
        Error::ConnectFailed(failure) => {
            assert_every_transport_failed(failure, &[Transport::WebSocket, Transport::Polling]);
            assert!(
                matches!(failure.hints[..], [Hint::NothingListening { .. }]),
                "{error}"
            );
        }
        other => panic!("expected the report, got {other:?}"),
    }
    assert!(
        std::ptr::eq(
            error.last_failure(),
            match &error {
                Error::ConnectFailed(failure) => &failure.error,
                _ => unreachable!(),
            }
        ),
        "last_failure() is the report's error"
    );
}

/// The same hints against a real socket.io 4.8 server (Node), not only the mock: TLS to its
/// plain-HTTP port, and a path it does not serve.
#[test]
fn hints_against_node() {
    use support::{NodeOptions, NodeServer, SioVersion};
    let node = NodeServer::start(SioVersion::V4, NodeOptions::default());
    let tls = report(
        Client::builder(node.url().replacen("http://", "https://", 1))
            .transports(ALL)
            .remember_transport(false)
            .timeout(WAIT)
            .connect(),
    );
    assert!(tls.hints.contains(&Hint::PlainHttpServer), "{tls}");
    let path = report(
        Client::builder(node.url())
            .path("/sockets/")
            .transports([Transport::WebSocket, Transport::Polling])
            .remember_transport(false)
            .timeout(Duration::from_secs(3))
            .connect(),
    );
    // engine.io cuts the upgrade at a path it does not serve; the bare Node HTTP server under
    // it never answers the GET.
    assert!(
        path.hints.contains(&Hint::WrongPath {
            path: "/sockets/".into()
        }),
        "{path}"
    );
}
