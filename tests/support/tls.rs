//! A TLS-terminating reverse proxy, so that `https://` and `wss://` can be tested against the
//! plain-TCP servers the other tests use (the mock server, Node socket.io).
//!
//! [`TlsFront`] listens on 127.0.0.1 with an ephemeral port, completes a TLS handshake with a
//! certificate generated at start, and then pipes the decrypted bytes unchanged to the upstream
//! over a fresh plain TCP connection, one per client connection. It never parses HTTP, so
//! keep-alive, long-lived streaming responses and WebSocket upgrades pass as they are.
//!
//! Every front generates its own test CA (rcgen, ECDSA P-256) and, depending on [`FrontCert`],
//! a leaf it presents. Nothing is written to disk: [`TlsFront::ca_pem`] is what a test hands to
//! `ClientBuilder::add_root_certificate`. Tasks live in a [`Background`] that the handle drops,
//! so no listener or connection outlives the test.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::{TcpListener, TcpStream};

use super::background::{Background, Tasks};
use tokio_rustls::TlsAcceptor;

/// The names a valid leaf is issued for: what `https://localhost:PORT` and
/// `https://127.0.0.1:PORT` are checked against.
const GOOD_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];
/// A name no test connects to (`.invalid` is reserved, RFC 2606).
const WRONG_NAME: &str = "wrong-host.invalid";

/// Which certificate a [`TlsFront`] presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FrontCert {
    /// Issued by the front's test CA for `localhost` and `127.0.0.1`: trusted once
    /// [`TlsFront::ca_pem`] is added as a root.
    #[default]
    Valid,
    /// Issued by the test CA, but for another name only (`wrong-host.invalid`): the chain is
    /// trusted with the CA added, the name check fails.
    WrongName,
    /// Self-signed for `localhost` and `127.0.0.1`, issued by no CA: adding
    /// [`TlsFront::ca_pem`] does not help, only `danger_accept_invalid_certs` does.
    SelfSigned,
}

/// Counters of a [`TlsFront`], a snapshot taken by [`TlsFront::stats`]. Each is updated before
/// the corresponding step continues, so a client that saw the outcome already sees it counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsStats {
    /// TCP connections accepted.
    pub connections: u64,
    /// TLS handshakes completed.
    pub handshakes_ok: u64,
    /// TLS handshakes that failed (typically the client rejecting the certificate with an
    /// alert, or hanging up).
    pub handshakes_failed: u64,
    /// Plain connections opened to the upstream (one per completed handshake).
    pub upstream_connections: u64,
    /// The error of the most recent failed handshake, as rustls reports it on the server side.
    pub last_handshake_error: Option<String>,
}

/// A TLS-terminating byte pipe in front of a plain server. See the [module docs](self).
/// Dropping it stops every task and closes every connection it holds.
pub struct TlsFront {
    addr: SocketAddr,
    upstream: SocketAddr,
    cert: FrontCert,
    ca_pem: String,
    client_auth: Option<ClientAuth>,
    shared: Arc<Shared>,
    background: Background,
}

impl fmt::Debug for TlsFront {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsFront")
            .field("addr", &self.addr)
            .field("upstream", &self.upstream)
            .field("cert", &self.cert)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    handshakes_ok: AtomicU64,
    handshakes_failed: AtomicU64,
    upstream_connections: AtomicU64,
}

struct Shared {
    upstream: SocketAddr,
    acceptor: TlsAcceptor,
    counters: Counters,
    last_error: Mutex<Option<String>>,
    tasks: Arc<Tasks>,
}

/// A client certificate chain and key, both PEM, for `ClientBuilder::tls_client_certificate`.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    pub chain_pem: String,
    pub key_pem: String,
}

/// What a front that requires client certificates trusts and hands out.
#[derive(Debug, Clone)]
struct ClientAuth {
    /// The CA that client certificates must be issued by.
    ca: CertificateDer<'static>,
    /// A client certificate issued by that CA.
    trusted: ClientIdentity,
    /// A self-signed client certificate the front rejects.
    foreign: ClientIdentity,
}

fn client_auth_material() -> ClientAuth {
    let ca_key = KeyPair::generate().expect("client CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("client CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "sio-client test client CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .expect("self-signed client CA");
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_params = || {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params
            .distinguished_name
            .push(DnType::CommonName, "sio-client test client");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params
    };
    let trusted_key = KeyPair::generate().expect("client key");
    let trusted = leaf_params()
        .signed_by(&trusted_key, &issuer)
        .expect("client certificate signed by the client CA");
    let foreign_key = KeyPair::generate().expect("foreign client key");
    let foreign = leaf_params()
        .self_signed(&foreign_key)
        .expect("self-signed client certificate");
    ClientAuth {
        ca: ca_cert.der().clone(),
        trusted: ClientIdentity {
            chain_pem: trusted.pem(),
            key_pem: trusted_key.serialize_pem(),
        },
        foreign: ClientIdentity {
            chain_pem: foreign.pem(),
            key_pem: foreign_key.serialize_pem(),
        },
    }
}

/// The certificates of one front: the chain it presents, its key, and the CA's PEM.
struct Material {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    ca_pem: String,
}

fn generate(cert: FrontCert) -> Material {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "sio-client test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).expect("self-signed CA");
    let ca_pem = ca_cert.pem();
    let issuer = Issuer::new(ca_params, ca_key);

    let names: Vec<String> = match cert {
        FrontCert::Valid | FrontCert::SelfSigned => {
            GOOD_NAMES.iter().map(|n| (*n).to_owned()).collect()
        }
        FrontCert::WrongName => vec![WRONG_NAME.to_owned()],
    };
    let leaf_key = KeyPair::generate().expect("leaf key");
    let mut leaf_params = CertificateParams::new(names).expect("leaf params");
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "sio-client test server");
    let leaf = match cert {
        FrontCert::Valid | FrontCert::WrongName => leaf_params
            .signed_by(&leaf_key, &issuer)
            .expect("leaf signed by the CA"),
        FrontCert::SelfSigned => leaf_params
            .self_signed(&leaf_key)
            .expect("self-signed leaf"),
    };
    Material {
        chain: vec![leaf.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        ca_pem,
    }
}

fn server_config(material: &Material, client_auth: Option<&ClientAuth>) -> ServerConfig {
    // The provider is named explicitly: the process may have several compiled in (ring through
    // the crate, others through dev-dependencies), and then there is no usable default.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // No ALPN: clients then speak HTTP/1.1, which the byte pipe needs (and WebSocket uses).
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("TLS versions");
    let builder = match client_auth {
        None => builder.with_no_client_auth(),
        Some(auth) => {
            let mut roots = RootCertStore::empty();
            roots.add(auth.ca.clone()).expect("client CA as a root");
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("client certificate verifier");
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder
        .with_single_cert(material.chain.clone(), material.key.clone_key())
        .expect("server certificate and key")
}

impl TlsFront {
    /// Starts a front with the given certificate on the current tokio runtime.
    pub async fn start(upstream: SocketAddr, cert: FrontCert) -> TlsFront {
        TlsFront::start_with(upstream, cert, false).await
    }

    async fn start_with(
        upstream: SocketAddr,
        cert: FrontCert,
        require_client_cert: bool,
    ) -> TlsFront {
        let material = generate(cert);
        let client_auth = require_client_cert.then(client_auth_material);
        let acceptor = TlsAcceptor::from(Arc::new(server_config(&material, client_auth.as_ref())));
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("listener address");
        let background = Background::on_current_runtime();
        let shared = Arc::new(Shared {
            upstream,
            acceptor,
            counters: Counters::default(),
            last_error: Mutex::new(None),
            tasks: background.tasks(),
        });
        background.spawn(accept_loop(listener, shared.clone()));
        TlsFront {
            addr,
            upstream,
            cert,
            ca_pem: material.ca_pem,
            client_auth,
            shared,
            background,
        }
    }

    /// Starts a front with the certificate chosen by `cert` on a small runtime of its own, for
    /// tests without async code.
    pub fn start_background_with(upstream: SocketAddr, cert: FrontCert) -> TlsFront {
        TlsFront::start_background_inner(upstream, cert, false)
    }

    /// A front with a valid certificate that also requires a client certificate issued by a
    /// client CA of its own: [`client_identity`](Self::client_identity) passes,
    /// [`foreign_client_identity`](Self::foreign_client_identity) and none are refused.
    pub fn start_background_requiring_client_cert(upstream: SocketAddr) -> TlsFront {
        TlsFront::start_background_inner(upstream, FrontCert::Valid, true)
    }

    /// A client certificate this front accepts (only for a front requiring client certs).
    pub fn client_identity(&self) -> ClientIdentity {
        self.client_auth
            .as_ref()
            .expect("a front started requiring client certificates")
            .trusted
            .clone()
    }

    /// A self-signed client certificate this front refuses.
    pub fn foreign_client_identity(&self) -> ClientIdentity {
        self.client_auth
            .as_ref()
            .expect("a front started requiring client certificates")
            .foreign
            .clone()
    }

    fn start_background_inner(
        upstream: SocketAddr,
        cert: FrontCert,
        require_client_cert: bool,
    ) -> TlsFront {
        Background::start_on_own_runtime(
            "tls-front",
            TlsFront::start_with(upstream, cert, require_client_cert),
            |front: &mut TlsFront| &mut front.background,
        )
    }

    /// A front with a valid certificate (issued by [`ca_pem`](Self::ca_pem) for `localhost`
    /// and `127.0.0.1`), on a runtime of its own.
    pub fn start_background(upstream: SocketAddr) -> TlsFront {
        TlsFront::start_background_with(upstream, FrontCert::Valid)
    }

    /// A front whose certificate is issued by the test CA for another name
    /// ([`FrontCert::WrongName`]).
    pub fn start_background_wrong_name(upstream: SocketAddr) -> TlsFront {
        TlsFront::start_background_with(upstream, FrontCert::WrongName)
    }

    /// A front with a self-signed certificate that no CA issued ([`FrontCert::SelfSigned`]).
    pub fn start_background_self_signed(upstream: SocketAddr) -> TlsFront {
        TlsFront::start_background_with(upstream, FrontCert::SelfSigned)
    }

    /// `https://localhost:PORT`: the name the valid certificate is issued for. (`localhost`
    /// rather than the IP so the name check is the usual DNS-name one.)
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// `wss://localhost:PORT`, the same server under the WebSocket scheme.
    pub fn wss_url(&self) -> String {
        format!("wss://localhost:{}", self.addr.port())
    }

    /// The address the front listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The upstream the front pipes to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// Which certificate this front presents.
    pub fn cert(&self) -> FrontCert {
        self.cert
    }

    /// The test CA's certificate as PEM, for `add_root_certificate`. It issued the leaf of
    /// [`FrontCert::Valid`] and [`FrontCert::WrongName`] fronts, not the self-signed one.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> TlsStats {
        let c = &self.shared.counters;
        TlsStats {
            connections: c.connections.load(Ordering::SeqCst),
            handshakes_ok: c.handshakes_ok.load(Ordering::SeqCst),
            handshakes_failed: c.handshakes_failed.load(Ordering::SeqCst),
            upstream_connections: c.upstream_connections.load(Ordering::SeqCst),
            last_handshake_error: lock(&self.shared.last_error).clone(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of descriptors or similar: back off briefly instead of spinning.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        shared.counters.connections.fetch_add(1, Ordering::SeqCst);
        let conn_shared = shared.clone();
        shared.tasks.spawn(async move {
            let _ = serve(stream, conn_shared).await;
        });
    }
}

async fn serve(stream: TcpStream, shared: Arc<Shared>) -> io::Result<()> {
    let mut tls = match shared.acceptor.accept(stream).await {
        Ok(tls) => tls,
        Err(e) => {
            *lock(&shared.last_error) = Some(e.to_string());
            shared
                .counters
                .handshakes_failed
                .fetch_add(1, Ordering::SeqCst);
            return Err(e);
        }
    };
    shared.counters.handshakes_ok.fetch_add(1, Ordering::SeqCst);
    let mut upstream = TcpStream::connect(shared.upstream).await?;
    let _ = upstream.set_nodelay(true);
    shared
        .counters
        .upstream_connections
        .fetch_add(1, Ordering::SeqCst);
    // Half-closes are passed on both ways; the task ends when both directions are done.
    tokio::io::copy_bidirectional(&mut tls, &mut upstream).await?;
    Ok(())
}

/// A PKCS#12 archive (DER) of this PEM chain and key, protected by `password`, made by the
/// `openssl` command (Debian's `openssl` package) with its defaults (PBES2 with AES-256-CBC,
/// an HMAC-SHA256 MAC); panics with what is missing when it is not there.
pub fn pkcs12(chain_pem: &str, key_pem: &str, password: &str) -> Vec<u8> {
    pkcs12_with(chain_pem, key_pem, password, &[])
}

/// Like [`pkcs12`], with more `openssl pkcs12 -export` options: `-legacy` for the encryption
/// of OpenSSL 1.x (RC2-40 for the certificates, 3DES for the key, a SHA-1 MAC), `-nokeys` for
/// an archive of certificates only.
pub fn pkcs12_with(chain_pem: &str, key_pem: &str, password: &str, options: &[&str]) -> Vec<u8> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let dir = std::env::temp_dir().join(format!(
        "sio-client-pkcs12-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, chain_pem).expect("write the certificate");
    std::fs::write(&key, key_pem).expect("write the key");
    let child = Command::new("openssl")
        .args(["pkcs12", "-export", "-passout", "stdin"])
        .args(options)
        .arg("-in")
        .arg(&cert)
        .arg("-inkey")
        .arg(&key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => panic!(
            "the `openssl` command is needed to make a PKCS#12 test identity \
             (apt-get install openssl): {e}"
        ),
    };
    child
        .stdin
        .take()
        .expect("openssl stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("password to openssl");
    let output = child.wait_with_output().expect("openssl ran");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        output.status.success() && !output.stdout.is_empty(),
        "openssl pkcs12 -export failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// A value unique within the process, for temporary names.
fn rand_suffix() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::SeqCst)
}
