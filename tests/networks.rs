//! The networks desktop and CLI users sit on: SOCKS5 proxies (`socks5://` with local name
//! resolution, `socks5h://` with the proxy resolving), WebSocket through an `https://` proxy,
//! TLS client certificates, and what is trusted by default (`SSL_CERT_FILE`), each on every
//! transport, against the mock server behind the test proxies and TLS fronts of
//! tests/support, and Node socket.io for the main cases.
#![cfg(feature = "mock-server")]

mod support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use sio_client::mock::MockServer;
use sio_client::{Client, ClientBuilder, Event, Transport};
use support::proxy::ConnectProxy;
use support::socks::{Socks5Server, SocksHost, SocksRequest};
use support::tls::TlsFront;
use support::{NodeOptions, NodeServer, SioVersion};

const WAIT: Duration = Duration::from_secs(10);

/// Credentials with the characters URL userinfo percent-encodes (`%`, `@`, `:`) or keeps
/// (`+`, `&`), which must reach the proxy as typed.
fn special_credentials() -> (String, String) {
    ("al+ce@corp".into(), "p+a&s%s:w@rd".into())
}

const EVERY_TRANSPORT: [Transport; 3] = [
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
        .on("/", "echo", |socket, args, _| socket.emit("echo", args))
        .start_background()
        .expect("mock server")
}

fn client(url: String) -> ClientBuilder {
    Client::builder(url)
        .remember_transport(false)
        .reconnection(false)
        .timeout(WAIT)
}

/// `http://localhost:PORT` for a server on 127.0.0.1: a name, so that `socks5://` and
/// `socks5h://` differ in what they send the proxy.
fn by_name(addr: SocketAddr) -> String {
    format!("http://localhost:{}", addr.port())
}

/// Emit with an ack, and an event the server answers with an event.
fn exchange(client: &Client, what: &str) {
    let reply = client
        .emit_with_ack("ack", (what, 1), WAIT)
        .unwrap_or_else(|e| panic!("{what}: ack: {e}"));
    assert_eq!(
        reply.parse::<(String, i32)>().unwrap(),
        (what.to_string(), 1)
    );
    client.emit("echo", what).unwrap();
    let mut events = client.events();
    loop {
        match events.next_timeout(WAIT) {
            Some(Event::Message { event, args, .. }) => {
                assert_eq!(event, "echo", "{what}");
                assert_eq!(args.get::<String>(0).unwrap(), what);
                return;
            }
            Some(Event::Connected { .. } | Event::TransportChanged { .. }) => continue,
            other => panic!("{what}: waiting for echo, got {other:?}"),
        }
    }
}

/// Polls `condition` until it holds or [`WAIT`] passes; whether it held.
fn wait_until(condition: impl Fn() -> bool) -> bool {
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    condition()
}

fn connect_and_exchange(builder: ClientBuilder, transport: Transport, what: &str) {
    let client = builder
        .transports([transport])
        .connect()
        .unwrap_or_else(|e| panic!("{what} over {transport:?}: {e}"));
    assert_eq!(client.transport(), transport, "{what}");
    exchange(&client, what);
    client.disconnect();
}

/// What the SOCKS5 server must have been asked for: the name for `socks5h`, the address the
/// client resolved it to for `socks5`.
fn expected_socks_host(scheme: &str) -> SocksHost {
    match scheme {
        "socks5h" => SocksHost::Name("localhost".into()),
        _ => SocksHost::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
    }
}

fn assert_socks_requests(proxy: &Socks5Server, scheme: &str, port: u16, what: &str) {
    let requests = proxy.requests();
    assert!(!requests.is_empty(), "{what}: no CONNECT reached the proxy");
    let expected = SocksRequest {
        host: expected_socks_host(scheme),
        port,
    };
    for request in &requests {
        assert_eq!(request, &expected, "{what}: {requests:?}");
    }
}

#[test]
fn socks5_and_socks5h_carry_every_transport_with_and_without_credentials() {
    let server = mock();
    let target = by_name(server.addr());
    for scheme in ["socks5", "socks5h"] {
        for credentials in [None, Some(special_credentials())] {
            let with_auth = credentials.is_some();
            for transport in EVERY_TRANSPORT {
                let what = format!("{scheme} (credentials: {with_auth}) {transport:?}");
                let proxy = Socks5Server::start_background(credentials.clone());
                connect_and_exchange(
                    client(target.clone()).proxy(proxy.url(scheme)),
                    transport,
                    &what,
                );
                assert_socks_requests(&proxy, scheme, server.addr().port(), &what);
                let stats = proxy.stats();
                assert_eq!(stats.auth_rejected, 0, "{what}: {stats:?}");
                assert!(stats.tunnels >= 1, "{what}: {stats:?}");
                if with_auth {
                    assert!(stats.auth_ok >= 1, "{what}: {stats:?}");
                }
            }
        }
    }
}

/// A name under `.invalid` (RFC 2606) that only the test proxy resolves: the client never looks
/// it up, or it could not connect.
const PROXY_ONLY_NAME: &str = "upstream.sio-test.invalid";

#[test]
fn socks5h_reaches_a_name_only_the_proxy_knows() {
    let server = mock();
    let proxy = Socks5Server::start_background(Some(special_credentials()));
    proxy.add_name(PROXY_ONLY_NAME, server.addr());
    let target = format!("http://{PROXY_ONLY_NAME}:{}", server.addr().port());
    for transport in EVERY_TRANSPORT {
        connect_and_exchange(
            client(target.clone()).proxy(proxy.url("socks5h")),
            transport,
            "a name only the proxy resolves",
        );
    }
    let expected = SocksRequest {
        host: SocksHost::Name(PROXY_ONLY_NAME.into()),
        port: server.addr().port(),
    };
    let requests = proxy.requests();
    assert!(requests.len() >= 3, "{requests:?}");
    assert!(requests.iter().all(|r| r == &expected), "{requests:?}");
}

/// Set for the copy of this test binary that [`socks5h_from_all_proxy`] starts.
const CHILD_SOCKS_TARGET: &str = "SIO_NETWORKS_TEST_SOCKS_TARGET";

/// `ALL_PROXY=socks5h://…` in the environment carries every transport, with a `NO_PROXY` of
/// ranges and domains that do not match the target. In a child process, whose environment is
/// its own.
#[test]
fn socks5h_from_all_proxy() {
    if let Ok(target) = std::env::var(CHILD_SOCKS_TARGET) {
        for transport in EVERY_TRANSPORT {
            connect_and_exchange(client(target.clone()), transport, "ALL_PROXY");
        }
        return;
    }
    let server = mock();
    let proxy = Socks5Server::start_background(Some(special_credentials()));
    proxy.add_name(PROXY_ONLY_NAME, server.addr());
    let target = format!("http://{PROXY_ONLY_NAME}:{}", server.addr().port());
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"));
    child
        .args([
            "--exact",
            "socks5h_from_all_proxy",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD_SOCKS_TARGET, &target)
        .env("ALL_PROXY", proxy.url("socks5h"))
        .env("NO_PROXY", "10.0.0.0/8, fd00::/8, .corp.example");
    for name in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "all_proxy",
        "no_proxy",
    ] {
        child.env_remove(name);
    }
    let output = child.output().expect("run the test binary again");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let requests = proxy.requests();
    assert!(requests.len() >= 3, "{requests:?}");
    assert!(
        requests
            .iter()
            .all(|r| r.host == SocksHost::Name(PROXY_ONLY_NAME.into())),
        "{requests:?}"
    );
    assert_eq!(proxy.stats().auth_rejected, 0);
}

#[test]
fn socks5h_reaches_node_socketio_on_websocket_and_polling() {
    let node = NodeServer::start(SioVersion::V4, NodeOptions::default());
    let proxy = Socks5Server::start_background(Some(special_credentials()));
    for transport in [Transport::WebSocket, Transport::Polling] {
        connect_and_exchange(
            client(format!("http://localhost:{}", node.port())).proxy(proxy.url("socks5h")),
            transport,
            "node via socks5h",
        );
    }
    assert_socks_requests(&proxy, "socks5h", node.port(), "node via socks5h");
}

#[test]
fn socks5_wrong_or_missing_credentials_are_refused_on_every_transport() {
    let server = mock();
    let proxy = Socks5Server::start_background(Some(special_credentials()));
    let wrong = proxy
        .url("socks5h")
        .replace("p%2Ba", "wrong")
        .replace("p+a", "wrong");
    assert_ne!(wrong, proxy.url("socks5h"), "the password was replaced");
    for transport in EVERY_TRANSPORT {
        for (url, what) in [
            (wrong.clone(), "wrong password"),
            (proxy.url_without_credentials("socks5h"), "no credentials"),
        ] {
            let before = proxy.stats().auth_rejected;
            let result = client(server.url())
                .proxy(url)
                .transports([transport])
                .connect();
            assert!(result.is_err(), "{what} over {transport:?} connected");
            assert!(
                proxy.stats().auth_rejected > before,
                "{what} over {transport:?}: {:?}",
                proxy.stats()
            );
        }
    }
    assert!(proxy.requests().is_empty(), "{:?}", proxy.requests());
    // The WebSocket's own message names the cause.
    let error = client(server.url())
        .proxy(wrong)
        .transports([Transport::WebSocket])
        .connect()
        .unwrap_err();
    assert!(
        error.to_string().contains("SOCKS5") && error.to_string().contains("rejected"),
        "{error}"
    );
}

/// A listener on `ip:port` whose accept queue is full, so that the kernel drops further SYNs:
/// a connection attempt to it hangs like one to a blackholed route (a half-broken IPv6, say),
/// with no traffic leaving the machine. It lasts as long as the returned runtime and
/// connections do.
fn black_hole(ip: IpAddr, port: u16) -> (tokio::runtime::Runtime, Vec<tokio::net::TcpStream>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime for the black hole");
    let fillers = runtime.block_on(async {
        let socket = match ip {
            IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        }
        .expect("socket");
        socket
            .bind(SocketAddr::from((ip, port)))
            .unwrap_or_else(|e| panic!("bind {ip}:{port}: {e}"));
        let listener = socket.listen(0).expect("listen with backlog 0");
        let addr = listener.local_addr().expect("address");
        let mut fillers = Vec::new();
        // Connect until an attempt hangs; a loopback connect with room in the queue completes
        // in the kernel at once.
        for _ in 0..64 {
            let attempt =
                tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr));
            match attempt.await {
                Ok(Ok(stream)) => fillers.push(stream),
                Ok(Err(e)) => panic!("connecting to the black hole's listener: {e}"),
                Err(_) => {
                    // The listener must outlive the test: leaked into the runtime's task.
                    tokio::spawn(async move {
                        let _listener = listener;
                        std::future::pending::<()>().await;
                    });
                    return fillers;
                }
            }
        }
        panic!("64 connections never filled a listener with backlog 0");
    });
    (runtime, fillers)
}

/// A host with half-broken IPv6: its name resolves to an IPv6 address that never answers
/// first, and to the server on 127.0.0.1 second. The WebSocket's Happy Eyeballs dial starts
/// the IPv4 attempt after 250 ms and connects, where a dial that waits on the first address
/// would run into the connect timeout; polling gets the same from reqwest (hyper's IPv4
/// fallback after 300 ms).
#[test]
fn happy_eyeballs_past_an_address_that_never_answers() {
    const NAME: &str = "dual.sio-test.invalid";
    let server = mock();
    let port = server.addr().port();
    let broken_v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let (_hole, _fillers) = black_hole(broken_v6, port);
    for transport in [Transport::WebSocket, Transport::Polling] {
        let client = client(format!("http://{NAME}:{port}"))
            .resolve(NAME, [broken_v6, IpAddr::V4(Ipv4Addr::LOCALHOST)])
            .transports([transport])
            .connect()
            .unwrap_or_else(|e| panic!("{transport:?} past the black hole: {e}"));
        assert_eq!(client.transport(), transport);
        exchange(&client, "happy eyeballs");
        client.disconnect();
    }
}

/// `https://user:password@localhost:PORT` for a TLS front in front of `proxy`.
fn https_proxy_url(front: &TlsFront, credentials: Option<&(String, String)>) -> String {
    let mut url = url::Url::parse(&front.url()).unwrap();
    if let Some((user, pass)) = credentials {
        url.set_username(user).unwrap();
        url.set_password(Some(pass)).unwrap();
    }
    url.as_str().trim_end_matches('/').to_owned()
}

#[test]
fn websocket_and_polling_through_an_https_proxy() {
    let server = mock();
    let credentials = special_credentials();
    let proxy = ConnectProxy::start_background(Some(credentials.clone()));
    // TLS to the proxy, then CONNECT inside it.
    let front = TlsFront::start_background(proxy.addr());
    for transport in EVERY_TRANSPORT {
        let before = proxy.stats();
        connect_and_exchange(
            client(server.url())
                .proxy(https_proxy_url(&front, Some(&credentials)))
                .add_root_certificate(front.ca_pem()),
            transport,
            "https proxy",
        );
        let after = proxy.stats();
        match transport {
            Transport::WebSocket => assert!(after.tunnels > before.tunnels, "{after:?}"),
            _ => assert!(
                after.forwarded + after.tunnels > before.forwarded + before.tunnels,
                "{after:?}"
            ),
        }
    }
    assert_eq!(proxy.stats().auth_rejected, 0, "{:?}", proxy.stats());
    assert!(front.stats().handshakes_ok >= 3, "{:?}", front.stats());

    // The proxy's certificate is checked like a server's: not trusted without the CA.
    let result = client(server.url())
        .proxy(https_proxy_url(&front, Some(&credentials)))
        .transports([Transport::WebSocket])
        .connect();
    assert!(
        result.is_err(),
        "an untrusted proxy certificate was accepted"
    );
}

/// An `https://` proxy that requires a client certificate gets the PKCS#12 identity, the same
/// as the server would: one rustls configuration for every TLS session of the client.
#[cfg(feature = "pkcs12")]
#[test]
fn pkcs12_identity_to_an_https_proxy_requiring_one() {
    let server = mock();
    let proxy = ConnectProxy::start_background(Some(special_credentials()));
    let proxy_front = TlsFront::start_background_requiring_client_cert(proxy.addr());
    let identity = proxy_front.client_identity();
    let pkcs12 = support::tls::pkcs12(&identity.chain_pem, &identity.key_pem, PKCS12_PASSWORD);
    for transport in EVERY_TRANSPORT {
        connect_and_exchange(
            client(server.url())
                .proxy(https_proxy_url(&proxy_front, Some(&special_credentials())))
                .add_root_certificate(proxy_front.ca_pem())
                .tls_client_pkcs12(pkcs12.clone(), PKCS12_PASSWORD),
            transport,
            "PKCS#12 identity to an https proxy",
        );
    }
    // The WebSocket tunnelled, the HTTP transports forwarded.
    let stats = proxy.stats();
    assert!(stats.tunnels >= 1 && stats.forwarded >= 1, "{stats:?}");
    assert_eq!(stats.auth_rejected, 0, "{stats:?}");
    assert!(
        proxy_front.stats().handshakes_ok >= 3,
        "{:?}",
        proxy_front.stats()
    );

    // Without the identity the proxy's front refuses the handshake.
    let before = proxy_front.stats().handshakes_failed;
    let result = client(server.url())
        .proxy(https_proxy_url(&proxy_front, Some(&special_credentials())))
        .add_root_certificate(proxy_front.ca_pem())
        .transports([Transport::WebSocket])
        .connect();
    assert!(
        result.is_err(),
        "an https proxy requiring a client certificate let one without in"
    );
    assert!(
        wait_until(|| proxy_front.stats().handshakes_failed > before),
        "{:?}",
        proxy_front.stats()
    );
    // Refused for the missing certificate (a count of successful handshakes would race with
    // the previous clients' last requests).
    let refusal = proxy_front.stats().last_handshake_error.unwrap_or_default();
    assert!(refusal.contains("certificate"), "{refusal}");
}

#[test]
fn wss_inside_an_https_proxy_tunnel() {
    // TLS to the server inside TLS to the proxy: two certificates, two CAs.
    let server = mock();
    let server_front = TlsFront::start_background(server.addr());
    let proxy = ConnectProxy::start_background(None);
    let proxy_front = TlsFront::start_background(proxy.addr());
    for transport in [Transport::WebSocket, Transport::Polling] {
        connect_and_exchange(
            client(server_front.url())
                .proxy(proxy_front.url())
                .add_root_certificate(server_front.ca_pem())
                .add_root_certificate(proxy_front.ca_pem()),
            transport,
            "wss in an https proxy",
        );
    }
    assert!(proxy.stats().tunnels >= 2, "{:?}", proxy.stats());
    assert!(server_front.stats().handshakes_ok >= 2);
    assert!(proxy_front.stats().handshakes_ok >= 2);
}

#[test]
fn client_certificates_on_every_transport() {
    let server = mock();
    let front = TlsFront::start_background_requiring_client_cert(server.addr());
    let identity = front.client_identity();
    for transport in EVERY_TRANSPORT {
        connect_and_exchange(
            client(front.url())
                .add_root_certificate(front.ca_pem())
                .tls_client_certificate(identity.chain_pem.clone(), identity.key_pem.clone()),
            transport,
            "client certificate",
        );
    }
    let accepted = front.stats().handshakes_ok;
    assert!(accepted >= 3, "{:?}", front.stats());

    let foreign = front.foreign_client_identity();
    for transport in EVERY_TRANSPORT {
        for (what, builder) in [
            ("no client certificate", client(front.url())),
            (
                "a client certificate from another CA",
                client(front.url())
                    .tls_client_certificate(foreign.chain_pem.clone(), foreign.key_pem.clone()),
            ),
        ] {
            let before = front.stats().handshakes_failed;
            let result = builder
                .add_root_certificate(front.ca_pem())
                .transports([transport])
                .connect();
            assert!(result.is_err(), "{what} over {transport:?} connected");
            // The client can see the front's alert before the front has counted it.
            let counted = wait_until(|| front.stats().handshakes_failed > before);
            assert!(counted, "{what} over {transport:?}: {:?}", front.stats());
        }
    }
    assert_eq!(front.stats().handshakes_ok, accepted, "{:?}", front.stats());
}

#[test]
fn client_certificate_reaches_node_through_wss() {
    let node = NodeServer::start(SioVersion::V4, NodeOptions::default());
    let front = TlsFront::start_background_requiring_client_cert(SocketAddr::from((
        [127, 0, 0, 1],
        node.port(),
    )));
    let identity = front.client_identity();
    for transport in [Transport::WebSocket, Transport::Polling] {
        connect_and_exchange(
            client(front.wss_url())
                .add_root_certificate(front.ca_pem())
                .tls_client_certificate(identity.chain_pem.clone(), identity.key_pem.clone()),
            transport,
            "node behind mutual TLS",
        );
    }
}

#[test]
fn bad_client_certificate_material_is_a_clear_error() {
    let server = mock();
    let front = TlsFront::start_background_requiring_client_cert(server.addr());
    let identity = front.client_identity();
    for (what, chain, key) in [
        (
            "no certificate",
            "not PEM".to_string(),
            identity.key_pem.clone(),
        ),
        ("no key", identity.chain_pem.clone(), "not PEM".to_string()),
    ] {
        let error = client(front.url())
            .add_root_certificate(front.ca_pem())
            .tls_client_certificate(chain, key)
            .connect()
            .unwrap_err();
        assert!(error.to_string().contains("client"), "{what}: {error}");
    }
    assert_eq!(front.stats().connections, 0, "refused before dialling");
}

/// A password with characters a shell or a URL would mangle: it must reach the PKCS#12 key
/// derivation as typed.
#[cfg(feature = "pkcs12")]
const PKCS12_PASSWORD: &str = "s3cret+&";

#[cfg(feature = "pkcs12")]
#[test]
fn pkcs12_client_identity_on_every_transport() {
    let server = mock();
    let front = TlsFront::start_background_requiring_client_cert(server.addr());
    let identity = front.client_identity();
    let pkcs12 = support::tls::pkcs12(&identity.chain_pem, &identity.key_pem, PKCS12_PASSWORD);
    for transport in EVERY_TRANSPORT {
        connect_and_exchange(
            client(front.url())
                .add_root_certificate(front.ca_pem())
                .tls_client_pkcs12(pkcs12.clone(), PKCS12_PASSWORD),
            transport,
            "PKCS#12 identity",
        );
    }
    // OpenSSL 1.x's encryption (RC2-40 and 3DES, a SHA-1 MAC), still what many exports are.
    let legacy = support::tls::pkcs12_with(
        &identity.chain_pem,
        &identity.key_pem,
        PKCS12_PASSWORD,
        &["-legacy"],
    );
    for transport in EVERY_TRANSPORT {
        connect_and_exchange(
            client(front.url())
                .add_root_certificate(front.ca_pem())
                .tls_client_pkcs12(legacy.clone(), PKCS12_PASSWORD),
            transport,
            "legacy PKCS#12 identity",
        );
    }
    let accepted = front.stats().handshakes_ok;
    assert!(accepted >= 6, "{:?}", front.stats());

    // The front still refuses a client without a certificate, and one whose PKCS#12 holds a
    // certificate from another CA.
    let foreign = front.foreign_client_identity();
    let foreign = support::tls::pkcs12(&foreign.chain_pem, &foreign.key_pem, PKCS12_PASSWORD);
    for transport in EVERY_TRANSPORT {
        for (what, builder) in [
            ("no client certificate", client(front.url())),
            (
                "a PKCS#12 identity from another CA",
                client(front.url()).tls_client_pkcs12(foreign.clone(), PKCS12_PASSWORD),
            ),
        ] {
            let before = front.stats().handshakes_failed;
            let result = builder
                .add_root_certificate(front.ca_pem())
                .transports([transport])
                .connect();
            assert!(result.is_err(), "{what} over {transport:?} connected");
            let counted = wait_until(|| front.stats().handshakes_failed > before);
            assert!(counted, "{what} over {transport:?}: {:?}", front.stats());
        }
    }
    assert_eq!(front.stats().handshakes_ok, accepted, "{:?}", front.stats());
}

#[cfg(feature = "pkcs12")]
#[test]
fn bad_pkcs12_material_is_a_clear_error() {
    let server = mock();
    let front = TlsFront::start_background_requiring_client_cert(server.addr());
    let identity = front.client_identity();
    let pkcs12 = support::tls::pkcs12(&identity.chain_pem, &identity.key_pem, PKCS12_PASSWORD);
    let certificates_only = support::tls::pkcs12_with(
        &identity.chain_pem,
        &identity.key_pem,
        PKCS12_PASSWORD,
        &["-nokeys"],
    );
    for (what, der, password, expected) in [
        (
            "a wrong password",
            pkcs12.clone(),
            "s3cret+",
            "wrong password",
        ),
        ("an empty password", pkcs12, "", "wrong password"),
        (
            "an archive without a key",
            certificates_only,
            PKCS12_PASSWORD,
            "no private key",
        ),
        (
            "not PKCS#12",
            b"a PEM file?".to_vec(),
            PKCS12_PASSWORD,
            "not PKCS#12",
        ),
    ] {
        for transport in EVERY_TRANSPORT {
            let error = client(front.url())
                .add_root_certificate(front.ca_pem())
                .tls_client_pkcs12(der.clone(), password)
                .transports([transport])
                .connect()
                .expect_err(what);
            assert!(
                matches!(error, sio_client::Error::Transport { .. }),
                "{what} over {transport:?}: {error:?}"
            );
            let message = error.to_string();
            assert!(
                message.contains("PKCS#12"),
                "{what} over {transport:?}: {message}"
            );
            assert!(
                message.contains(expected),
                "{what} over {transport:?}: {message}"
            );
            // The passwords stay out of the message.
            assert!(!message.contains(PKCS12_PASSWORD), "{what}: {message}");
            assert!(
                password.is_empty() || !message.contains(password),
                "{what}: {message}"
            );
        }
    }
    assert_eq!(front.stats().connections, 0, "refused before dialling");
}

#[test]
fn narrowing_trust_to_one_pinned_ca() {
    let server = mock();
    let front = TlsFront::start_background(server.addr());
    for transport in [Transport::WebSocket, Transport::Polling] {
        connect_and_exchange(
            client(front.url())
                .tls_builtin_roots(false)
                .tls_native_roots(false)
                .add_root_certificate(front.ca_pem()),
            transport,
            "pinned CA",
        );
    }
    let error = client(front.url())
        .tls_builtin_roots(false)
        .tls_native_roots(false)
        .connect()
        .unwrap_err();
    assert!(error.to_string().contains("no trusted root"), "{error}");
}

/// Set for the copy of this test binary that [`ssl_cert_file_is_trusted_by_default`] starts.
const CHILD_URL: &str = "SIO_NETWORKS_TEST_FRONT_URL";

/// `SSL_CERT_FILE` naming a private CA makes a server it signed trusted with no option set,
/// and `tls_native_roots(false)` takes that trust away again. The environment is the child
/// process's only: this binary runs itself again with `SSL_CERT_FILE` set, this test alone.
#[test]
fn ssl_cert_file_is_trusted_by_default() {
    if let Ok(url) = std::env::var(CHILD_URL) {
        for transport in [Transport::WebSocket, Transport::Polling] {
            connect_and_exchange(client(url.clone()), transport, "SSL_CERT_FILE");
            let result = client(url.clone())
                .tls_native_roots(false)
                .transports([transport])
                .connect();
            assert!(
                result.is_err(),
                "{transport:?}: trusted without the system store"
            );
        }
        return;
    }
    let server = mock();
    let front = TlsFront::start_background(server.addr());
    // Without the environment, the private CA is trusted by nothing.
    let result = client(front.url())
        .transports([Transport::WebSocket])
        .connect();
    assert!(
        result.is_err(),
        "a private CA was trusted without SSL_CERT_FILE"
    );

    let bundle = std::env::temp_dir().join(format!(
        "sio-client-networks-ca-{}-{}.pem",
        std::process::id(),
        front.addr().port()
    ));
    std::fs::write(&bundle, front.ca_pem()).expect("write the CA bundle");
    let output = std::process::Command::new(std::env::current_exe().expect("test binary path"))
        .args([
            "--exact",
            "ssl_cert_file_is_trusted_by_default",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD_URL, front.url())
        .env("SSL_CERT_FILE", &bundle)
        .env_remove("SSL_CERT_DIR")
        .output()
        .expect("run the test binary again");
    let _ = std::fs::remove_file(&bundle);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child failed: {}\n{stdout}\n{stderr}",
        output.status
    );
    assert!(front.stats().handshakes_ok >= 2, "{:?}", front.stats());
}
