//! Network settings shared by every transport of a client: TLS (rustls, trusting the bundled
//! webpki roots and the operating system's store, or `SSL_CERT_FILE`/`SSL_CERT_DIR` when set,
//! plus custom CAs, or no verification at all for development; a client certificate when one
//! is given), the proxy choice, the WebSocket's TCP dial (Happy Eyeballs), and one cookie jar
//! so that sticky-session load balancers see the same cookies on the handshake, every poll and
//! the WebSocket upgrade.

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
use crate::Error;

/// TLS options, as set on the builder.
#[derive(Debug, Clone)]
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
    /// Use the platform's TLS library (feature `native-tls`) instead of rustls.
    pub(crate) native_tls: bool,
    /// Client certificate chain and its private key, both PEM (mutual TLS).
    pub(crate) client_pem: Option<ClientPem>,
    /// Client identity as PKCS#12 (DER) with its password, for the `native-tls` backend.
    pub(crate) client_pkcs12: Option<ClientPkcs12>,
}

/// A PEM client certificate chain and private key.
#[derive(Clone)]
pub(crate) struct ClientPem {
    pub(crate) chain: Vec<u8>,
    pub(crate) key: Vec<u8>,
}

/// A PKCS#12 archive and its password.
#[derive(Clone)]
#[cfg_attr(not(feature = "native-tls"), allow(dead_code))]
pub(crate) struct ClientPkcs12 {
    pub(crate) der: Vec<u8>,
    pub(crate) password: String,
}

// Keys stay out of logs and error messages.
impl std::fmt::Debug for ClientPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientPem(..)")
    }
}

impl std::fmt::Debug for ClientPkcs12 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientPkcs12(..)")
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
            native_tls: false,
            client_pem: None,
            client_pkcs12: None,
        }
    }
}

/// The TLS implementation a client uses for every transport.
#[derive(Debug, Clone)]
pub(crate) enum TlsBackend {
    Rustls(Arc<ClientConfig>),
    #[cfg(feature = "native-tls")]
    Native(native_tls::TlsConnector),
}

/// The resolved network settings of one client.
#[derive(Debug)]
pub(crate) struct Net {
    pub(crate) tls: TlsBackend,
    /// rustls settings for the TLS session to an `https://` proxy (the same trust as the
    /// server's, whichever backend talks to the server).
    pub(crate) proxy_tls: Arc<ClientConfig>,
    pub(crate) proxy: ProxySetting,
    /// Addresses given for host names instead of DNS (`ClientBuilder::resolve`), by lower-case
    /// name.
    resolve: HashMap<String, Vec<IpAddr>>,
    pub(crate) cookies: Arc<Jar>,
    /// One HTTP client (and connection pool) for every link of this client, built on first
    /// use: building one costs far more than a request.
    http: std::sync::OnceLock<reqwest::Client>,
    /// The same without a pool, built the first time it is needed: every request on a new
    /// connection, for the one retry of a request that met a closed kept-alive connection
    /// (the pool might hand out another connection the same proxy has closed).
    unpooled: std::sync::OnceLock<reqwest::Client>,
}

impl Net {
    /// Builds the TLS configuration; a bad CA file is reported here, at connect time.
    pub(crate) fn new(tls: &TlsOptions, proxy: ProxySetting) -> Result<Net, Error> {
        let (backend, proxy_tls) = if tls.native_tls {
            let without_pkcs12 = TlsOptions {
                client_pkcs12: None,
                ..tls.clone()
            };
            (native_backend(tls)?, Arc::new(tls_config(&without_pkcs12)?))
        } else {
            if tls.client_pkcs12.is_some() {
                return Err(tls_error(
                    "a PKCS#12 client identity needs use_native_tls(true) (feature `native-tls`); \
                     with rustls, give the certificate and key as PEM"
                        .into(),
                ));
            }
            let config = Arc::new(tls_config(tls)?);
            (TlsBackend::Rustls(config.clone()), config)
        };
        Ok(Net {
            tls: backend,
            proxy_tls,
            proxy,
            resolve: HashMap::new(),
            cookies: Arc::new(Jar::default()),
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

    /// The client's HTTP client: our TLS, our cookie jar, our proxy rule.
    pub(crate) fn http_client(
        self: &Arc<Self>,
        connect_timeout: std::time::Duration,
    ) -> Result<reqwest::Client, Error> {
        if let Some(client) = self.http.get() {
            return Ok(client.clone());
        }
        let client = self.build_http_client(connect_timeout, true)?;
        Ok(self.http.get_or_init(|| client).clone())
    }

    /// Like [`http_client`](Self::http_client), but every request goes on a new connection,
    /// closed after the response.
    pub(crate) fn unpooled_http_client(
        self: &Arc<Self>,
        connect_timeout: std::time::Duration,
    ) -> Result<reqwest::Client, Error> {
        if let Some(client) = self.unpooled.get() {
            return Ok(client.clone());
        }
        let client = self.build_http_client(connect_timeout, false)?;
        Ok(self.unpooled.get_or_init(|| client).clone())
    }

    fn build_http_client(
        self: &Arc<Self>,
        connect_timeout: std::time::Duration,
        pooled: bool,
    ) -> Result<reqwest::Client, Error> {
        let proxy_net = self.clone();
        let builder = reqwest::Client::builder();
        let builder = match &self.tls {
            TlsBackend::Rustls(config) => builder.tls_backend_preconfigured((**config).clone()),
            #[cfg(feature = "native-tls")]
            TlsBackend::Native(connector) => builder.tls_backend_preconfigured(connector.clone()),
        };
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
            .cookie_provider(self.cookies.clone())
            // One proxy rule for every transport: ours, not reqwest's own reading of the env.
            .no_proxy()
            .proxy(reqwest::Proxy::custom(move |url| {
                proxy_net.proxy_for(url).ok().flatten()
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

#[cfg(feature = "native-tls")]
fn native_backend(options: &TlsOptions) -> Result<TlsBackend, Error> {
    let mut builder = native_tls::TlsConnector::builder();
    for pem in &options.extra_roots {
        let cert = native_tls::Certificate::from_pem(pem)
            .map_err(|e| tls_error(format!("CA certificate: {e}")))?;
        builder.add_root_certificate(cert);
    }
    if let Some(pkcs12) = &options.client_pkcs12 {
        let identity = native_tls::Identity::from_pkcs12(&pkcs12.der, &pkcs12.password)
            .map_err(|e| tls_error(format!("PKCS#12 client identity: {e}")))?;
        builder.identity(identity);
    } else if let Some(pem) = &options.client_pem {
        let identity = native_tls::Identity::from_pkcs8(&pem.chain, &pem.key)
            .map_err(|e| tls_error(format!("client certificate: {e}")))?;
        builder.identity(identity);
    }
    builder.danger_accept_invalid_certs(options.accept_invalid_certs);
    builder.danger_accept_invalid_hostnames(options.accept_invalid_certs);
    builder
        .build()
        .map(TlsBackend::Native)
        .map_err(|e| tls_error(e.to_string()))
}

#[cfg(not(feature = "native-tls"))]
fn native_backend(_options: &TlsOptions) -> Result<TlsBackend, Error> {
    Err(tls_error(
        "use_native_tls(true) needs the crate feature `native-tls`".into(),
    ))
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
    match &options.client_pem {
        None => Ok(builder.with_no_client_auth()),
        Some(pem) => {
            let (chain, key) = client_identity(pem)?;
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

/// The PEM client chain (leaf first) and key, read as rustls wants them.
fn client_identity(
    pem: &ClientPem,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Error> {
    let chain = CertificateDer::pem_slice_iter(&pem.chain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(format!("client certificate: {e}")))?;
    if chain.is_empty() {
        return Err(tls_error(
            "no PEM certificate in the client certificate".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&pem.key)
        .map_err(|e| tls_error(format!("client private key: {e}")))?;
    Ok((chain, key))
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
