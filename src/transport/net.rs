//! Network settings shared by every transport of a client: TLS (rustls, trusting the bundled
//! webpki roots and the operating system's store, or `SSL_CERT_FILE`/`SSL_CERT_DIR` when set,
//! plus custom CAs, or no verification at all for development; a client certificate, PEM or
//! PKCS#12, when one is given), the proxy choice, the WebSocket's TCP dial (Happy Eyeballs),
//! and one cookie jar so that sticky-session load balancers see the same cookies on the
//! handshake, every poll and the WebSocket upgrade.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::cookie::{CookieStore, Jar};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use url::Url;

use super::proxy::{self, ProxySetting};
use super::shared::Registry;
use crate::Error;

/// TLS options, as set on the builder. Clients with equal options share one rustls
/// configuration (see `shared.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TlsOptions {
    /// PEM files' contents of extra trusted CAs.
    pub(crate) extra_roots: Vec<Vec<u8>>,
    /// Trust the operating system's store, or `SSL_CERT_FILE`/`SSL_CERT_DIR` when set (feature
    /// `native-roots`, on by default).
    pub(crate) native_roots: bool,
    /// Trust the roots bundled with the crate (webpki-roots, Mozilla's list).
    pub(crate) builtin_roots: bool,
    /// Accept any certificate (development only).
    pub(crate) accept_invalid_certs: bool,
    /// The client identity for mutual TLS, presented to the server and to an `https://`
    /// proxy that asks for one. The last one set on the builder.
    pub(crate) client_identity: Option<ClientIdentity>,
}

/// A client certificate chain and its private key, as given to the builder.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) enum ClientIdentity {
    /// The chain (leaf first) and the key, both PEM.
    Pem { chain: Vec<u8>, key: Vec<u8> },
    /// A PKCS#12 archive (DER) and its password (feature `pkcs12`).
    #[cfg(feature = "pkcs12")]
    Pkcs12 { der: Vec<u8>, password: String },
}

// Keys and passwords stay out of logs and error messages.
impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientIdentity::Pem { .. } => f.write_str("ClientIdentity::Pem(..)"),
            #[cfg(feature = "pkcs12")]
            ClientIdentity::Pkcs12 { .. } => f.write_str("ClientIdentity::Pkcs12(..)"),
        }
    }
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            extra_roots: Vec::new(),
            // What the machine trusts, by default: an enterprise CA installed in the OS store
            // works without configuration, as in browsers and the JS client on Node with
            // `--use-system-ca`.
            native_roots: cfg!(feature = "native-roots"),
            builtin_roots: true,
            accept_invalid_certs: false,
            client_identity: None,
        }
    }
}

/// The resolved network settings of one client.
#[derive(Debug)]
pub(crate) struct Net {
    /// The rustls settings of every TLS session of this client: to the server on every
    /// transport, and to an `https://` proxy (the same trust and client identity).
    pub(crate) tls: Arc<ClientConfig>,
    pub(crate) proxy: ProxySetting,
    /// Addresses given for host names instead of DNS (`ClientBuilder::resolve`), by lower-case
    /// name.
    resolve: HashMap<String, Vec<IpAddr>>,
    pub(crate) cookies: Arc<Jar>,
    /// The options `tls` was made from: with the proxy and `resolve`, what decides which
    /// shared HTTP client this client uses.
    options: TlsOptions,
    /// The HTTP client (and connection pool) of every link of this client, shared with the
    /// clients of the process that have the same settings (see `shared.rs`); looked up on
    /// first use: building one costs far more than a request.
    http: std::sync::OnceLock<Arc<reqwest::Client>>,
    /// The same without a pool, looked up the first time it is needed: every request on a new
    /// connection, for the one retry of a request that met a closed kept-alive connection
    /// (the pool might hand out another connection the same proxy has closed).
    unpooled: std::sync::OnceLock<Arc<reqwest::Client>>,
}

/// What makes two clients' HTTP clients interchangeable. The runtime is part of it: a pooled
/// connection's task runs on the runtime that opened it and ends with it, so a pool shared
/// across runtimes (one per `#[tokio::test]`, say) would hand out connections that die when
/// another test's runtime shuts down.
#[derive(PartialEq, Eq, Hash)]
struct HttpKey {
    runtime: Option<tokio::runtime::Id>,
    tls: TlsOptions,
    proxy: ProxySetting,
    resolve: Vec<(String, Vec<IpAddr>)>,
    connect_timeout: std::time::Duration,
    pooled: bool,
}

/// The process's rustls configurations, by options.
fn tls_configs() -> &'static Registry<TlsOptions, ClientConfig> {
    static CONFIGS: std::sync::OnceLock<Registry<TlsOptions, ClientConfig>> =
        std::sync::OnceLock::new();
    CONFIGS.get_or_init(Registry::new)
}

/// The process's HTTP clients, by settings.
fn http_clients() -> &'static Registry<HttpKey, reqwest::Client> {
    static CLIENTS: std::sync::OnceLock<Registry<HttpKey, reqwest::Client>> =
        std::sync::OnceLock::new();
    CLIENTS.get_or_init(Registry::new)
}

impl Net {
    /// Builds the TLS configuration; a bad CA file or client identity (PEM or PKCS#12) is
    /// reported here, at connect time, before anything is dialled.
    pub(crate) fn new(tls: &TlsOptions, proxy: ProxySetting) -> Result<Net, Error> {
        Ok(Net {
            tls: tls_configs().get_or_try_insert(tls.clone(), || tls_config(tls))?,
            proxy,
            resolve: HashMap::new(),
            cookies: Arc::new(Jar::default()),
            options: tls.clone(),
            http: std::sync::OnceLock::new(),
            unpooled: std::sync::OnceLock::new(),
        })
    }

    /// Uses these addresses for these host names instead of DNS, on every transport.
    pub(crate) fn with_resolve(mut self, overrides: &[(String, Vec<IpAddr>)]) -> Net {
        for (host, addrs) in overrides {
            self.resolve
                .entry(host.to_ascii_lowercase())
                .or_default()
                .extend(addrs.iter().copied());
        }
        self
    }

    /// The addresses given for `host` instead of DNS, if any, with `port`.
    pub(crate) fn resolved(&self, host: &str, port: u16) -> Option<Vec<SocketAddr>> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.resolve
            .get(&host.to_ascii_lowercase())
            .map(|ips| ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect())
    }

    /// The client's HTTP client: our TLS and our proxy rule (cookies are the caller's, per
    /// request: see `retry::send`).
    pub(crate) fn http_client(
        &self,
        connect_timeout: std::time::Duration,
    ) -> Result<reqwest::Client, Error> {
        self.shared_http(&self.http, connect_timeout, true)
    }

    /// Like [`http_client`](Self::http_client), but every request goes on a new connection,
    /// closed after the response.
    pub(crate) fn unpooled_http_client(
        &self,
        connect_timeout: std::time::Duration,
    ) -> Result<reqwest::Client, Error> {
        self.shared_http(&self.unpooled, connect_timeout, false)
    }

    fn shared_http(
        &self,
        slot: &std::sync::OnceLock<Arc<reqwest::Client>>,
        connect_timeout: std::time::Duration,
        pooled: bool,
    ) -> Result<reqwest::Client, Error> {
        if let Some(client) = slot.get() {
            return Ok((**client).clone());
        }
        let mut resolve: Vec<(String, Vec<IpAddr>)> = self
            .resolve
            .iter()
            .map(|(host, ips)| (host.clone(), ips.clone()))
            .collect();
        resolve.sort();
        let key = HttpKey {
            runtime: tokio::runtime::Handle::try_current().ok().map(|r| r.id()),
            tls: self.options.clone(),
            proxy: self.proxy.clone(),
            resolve,
            connect_timeout,
            pooled,
        };
        let client = http_clients()
            .get_or_try_insert(key, || self.build_http_client(connect_timeout, pooled))?;
        Ok((**slot.get_or_init(|| client)).clone())
    }

    fn build_http_client(
        &self,
        connect_timeout: std::time::Duration,
        pooled: bool,
    ) -> Result<reqwest::Client, Error> {
        let proxy = self.proxy.clone();
        let builder = reqwest::Client::builder().tls_backend_preconfigured((*self.tls).clone());
        let mut builder = if pooled {
            builder
        } else {
            builder.pool_max_idle_per_host(0)
        };
        for (host, ips) in &self.resolve {
            // Port 0: reqwest then takes the URL's port.
            let addrs: Vec<SocketAddr> = ips.iter().map(|ip| SocketAddr::new(*ip, 0)).collect();
            builder = builder.resolve_to_addrs(host, &addrs);
        }
        builder
            .tcp_nodelay(true)
            .connect_timeout(connect_timeout)
            // One proxy rule for every transport: ours, not reqwest's own reading of the env.
            .no_proxy()
            .proxy(reqwest::Proxy::custom(move |url| {
                proxy::proxy_for(&proxy, url).ok().flatten()
            }))
            .build()
            .map_err(|e| Error::transport_caused(crate::Transport::Polling, e))
    }

    /// The proxy `url` goes through, if any.
    pub(crate) fn proxy_for(&self, url: &Url) -> Result<Option<Url>, Error> {
        proxy::proxy_for(&self.proxy, url)
    }

    /// The `Cookie` header value for a request to `url` (a `ws(s)` URL is looked up as
    /// `http(s)`: cookies do not care about the scheme's name).
    pub(crate) fn cookie_header(&self, url: &Url) -> Option<String> {
        let http = http_equivalent(url);
        self.cookies
            .cookies(&http)
            .and_then(|v| v.to_str().ok().map(str::to_string))
    }

    /// Stores the `Set-Cookie` headers of a response to `url`.
    pub(crate) fn store_cookies<'a>(
        &self,
        url: &Url,
        headers: impl Iterator<Item = &'a reqwest::header::HeaderValue>,
    ) {
        let http = http_equivalent(url);
        let mut headers = headers;
        self.cookies.set_cookies(&mut headers, &http);
    }
}

fn http_equivalent(url: &Url) -> Url {
    let mut http = url.clone();
    let scheme = match url.scheme() {
        "wss" => "https",
        "ws" => "http",
        other => other,
    }
    .to_string();
    let _ = http.set_scheme(&scheme);
    http
}

fn tls_error(message: String) -> Error {
    Error::transport(
        crate::Transport::WebSocket,
        format!("TLS configuration: {message}"),
    )
}

fn tls_config(options: &TlsOptions) -> Result<ClientConfig, Error> {
    let provider = crypto_provider()?;
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(e.to_string()))?;
    let builder = if options.accept_invalid_certs {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
    } else {
        builder.with_root_certificates(root_store(options)?)
    };
    match &options.client_identity {
        None => Ok(builder.with_no_client_auth()),
        Some(identity) => {
            let (chain, key) = client_identity(identity)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| tls_error(format!("client certificate: {e}")))
        }
    }
}

fn root_store(options: &TlsOptions) -> Result<Arc<RootCertStore>, Error> {
    let shared = shared_roots(options.builtin_roots, options.native_roots)?;
    if options.extra_roots.is_empty() {
        if shared.is_empty() {
            return Err(tls_error(
                "no trusted root certificate: the built-in and system roots are off and no CA was added"
                    .into(),
            ));
        }
        return Ok(shared);
    }
    let mut roots = (*shared).clone();
    for pem in &options.extra_roots {
        let mut found = false;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| tls_error(format!("CA certificate: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| tls_error(format!("CA certificate: {e}")))?;
            found = true;
        }
        if !found {
            return Err(tls_error("no PEM certificate in a CA file".into()));
        }
    }
    Ok(Arc::new(roots))
}

/// The bundled and/or system roots, built once per process for each combination: reading the
/// system store takes milliseconds and a store of a few hundred anchors tens of kilobytes,
/// which a process with a thousand clients should pay once. (A change to `SSL_CERT_FILE`
/// after the first client is therefore not seen.)
fn shared_roots(builtin: bool, native: bool) -> Result<Arc<RootCertStore>, Error> {
    static STORES: [std::sync::OnceLock<Arc<RootCertStore>>; 4] = [
        std::sync::OnceLock::new(),
        std::sync::OnceLock::new(),
        std::sync::OnceLock::new(),
        std::sync::OnceLock::new(),
    ];
    let slot = &STORES[usize::from(builtin) * 2 + usize::from(native)];
    if let Some(store) = slot.get() {
        return Ok(store.clone());
    }
    let mut roots = RootCertStore::empty();
    if builtin {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if native {
        add_native_roots(&mut roots)?;
    }
    Ok(slot.get_or_init(|| Arc::new(roots)).clone())
}

/// The client chain (leaf first) and key, read as rustls wants them.
fn client_identity(
    identity: &ClientIdentity,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Error> {
    match identity {
        ClientIdentity::Pem { chain, key } => pem_identity(chain, key),
        #[cfg(feature = "pkcs12")]
        ClientIdentity::Pkcs12 { der, password } => pkcs12_identity(der, password),
    }
}

fn pem_identity(
    chain: &[u8],
    key: &[u8],
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Error> {
    let chain = CertificateDer::pem_slice_iter(chain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(format!("client certificate: {e}")))?;
    if chain.is_empty() {
        return Err(tls_error(
            "no PEM certificate in the client certificate".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key)
        .map_err(|e| tls_error(format!("client private key: {e}")))?;
    Ok((chain, key))
}

/// The first private key of a PKCS#12 archive with its certificate chain (leaf first, then
/// the issuers the archive holds), the key as PKCS#8: what a PEM identity gives rustls.
#[cfg(feature = "pkcs12")]
fn pkcs12_identity(
    der: &[u8],
    password: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Error> {
    use p12_keystore::{KeyStore, Pkcs12ImportPolicy};
    use rustls::pki_types::PrivatePkcs8KeyDer;

    let store = KeyStore::from_pkcs12(der, password, Pkcs12ImportPolicy::Strict)
        .map_err(|e| tls_error(format!("PKCS#12 client identity: {}", pkcs12_problem(&e))))?;
    // Strict: a key comes with the certificate that has its local key id (the leaf, first in
    // `certs`), or not at all.
    let Some((_alias, key_chain)) = store.private_key_chain() else {
        return Err(tls_error(
            "PKCS#12 client identity: no private key with its certificate in the archive".into(),
        ));
    };
    let chain = key_chain
        .certs()
        .iter()
        .map(|cert| CertificateDer::from(cert.as_der().to_vec()))
        .collect();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_chain.key().as_der().to_vec()));
    Ok((chain, key))
}

/// What went wrong reading a PKCS#12 archive, in the words of someone holding a `.p12` file.
#[cfg(feature = "pkcs12")]
fn pkcs12_problem(error: &p12_keystore::error::Error) -> String {
    use p12_keystore::error::Error as P12;
    let what = match error {
        // The MAC over the archive is keyed by the password.
        P12::MacError(_) => "wrong password (the archive's MAC does not match)",
        // An archive without a MAC: the bags do not decrypt.
        P12::UnpadError | P12::Pkcs5Error(_) => "wrong password, or a damaged archive",
        P12::DerError(_) | P12::InvalidVersion | P12::UnsupportedContentType => {
            "not PKCS#12 (DER, `.p12`/`.pfx`)"
        }
        P12::UnsupportedEncryptionScheme | P12::UnsupportedMacAlgorithm => {
            "an unsupported encryption or MAC"
        }
        _ => "cannot read the archive",
    };
    format!("{what}: {error}")
}

#[cfg(feature = "native-roots")]
fn add_native_roots(roots: &mut RootCertStore) -> Result<(), Error> {
    // `SSL_CERT_FILE`/`SSL_CERT_DIR`, when set, replace the platform store here (as in
    // OpenSSL-based tools); the bundled roots are added separately.
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::debug!(%error, "system certificate store");
    }
    for cert in found.certs {
        // One unreadable system certificate must not make every connection fail.
        let _ = roots.add(cert);
    }
    Ok(())
}

#[cfg(not(feature = "native-roots"))]
fn add_native_roots(_roots: &mut RootCertStore) -> Result<(), Error> {
    Err(tls_error(
        "tls_native_roots(true) needs the crate feature `native-roots`".into(),
    ))
}

/// The rustls crypto provider every TLS connection uses: the process-wide default when the
/// application installed one (so that the whole process agrees, FIPS builds included), else
/// the one the crate features chose (see the `ring` and `aws-lc-rs` features in Cargo.toml).
pub(crate) fn crypto_provider() -> Result<Arc<CryptoProvider>, Error> {
    if let Some(installed) = CryptoProvider::get_default() {
        return Ok(installed.clone());
    }
    #[cfg(feature = "aws-lc-rs")]
    return Ok(Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    return Ok(Arc::new(rustls::crypto::ring::default_provider()));
    #[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
    Err(tls_error(
        "no rustls crypto provider: enable the crate feature `ring` or `aws-lc-rs`, or install \
         a process-wide default with rustls::crypto::CryptoProvider::install_default"
            .into(),
    ))
}

/// The verifier behind `danger_accept_invalid_certs`: signatures are still checked (so the
/// handshake is a real TLS handshake), the certificate chain and name are not.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where each key-exchange group of `provider` lives: ring's and aws-lc-rs's groups have
    /// the same names, but are different statics.
    #[cfg(any(feature = "ring", feature = "aws-lc-rs"))]
    fn kx_group_addresses(provider: &CryptoProvider) -> Vec<*const ()> {
        provider
            .kx_groups
            .iter()
            .map(|group| std::ptr::from_ref(*group).cast::<()>())
            .collect()
    }

    #[cfg(any(feature = "ring", feature = "aws-lc-rs"))]
    #[test]
    fn the_crate_features_pick_the_crypto_provider() {
        // Nothing in this test binary installs a process-wide default.
        assert!(CryptoProvider::get_default().is_none());
        #[cfg(feature = "aws-lc-rs")]
        let expected = rustls::crypto::aws_lc_rs::default_provider();
        #[cfg(not(feature = "aws-lc-rs"))]
        let expected = rustls::crypto::ring::default_provider();
        let chosen = crypto_provider().expect("a provider");
        assert_eq!(kx_group_addresses(&chosen), kx_group_addresses(&expected));
    }

    #[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
    #[test]
    fn without_a_provider_feature_connecting_is_a_typed_error() {
        let error = crypto_provider().expect_err("no provider compiled in or installed");
        assert!(error.to_string().contains("crypto provider"), "{error}");
    }
}
