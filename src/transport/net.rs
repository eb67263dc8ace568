//! Network settings shared by every transport of a client: TLS (rustls, with the webpki roots,
//! optionally the system's, plus custom CAs, or no verification at all for development), the
//! proxy choice, and one cookie jar so that sticky-session load balancers see the same cookies
//! on the handshake, every poll and the WebSocket upgrade.

use std::sync::Arc;

use reqwest::cookie::{CookieStore, Jar};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use url::Url;

use super::proxy::{self, ProxySetting};
use crate::Error;

/// TLS options, as set on the builder.
#[derive(Debug, Clone, Default)]
pub(crate) struct TlsOptions {
    /// PEM files' contents of extra trusted CAs.
    pub(crate) extra_roots: Vec<Vec<u8>>,
    /// Trust the operating system's store (feature `native-roots`).
    pub(crate) native_roots: bool,
    /// Accept any certificate (development only).
    pub(crate) accept_invalid_certs: bool,
    /// Use the platform's TLS library (feature `native-tls`) instead of rustls.
    pub(crate) native_tls: bool,
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
    pub(crate) proxy: ProxySetting,
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
        let backend = if tls.native_tls {
            native_backend(tls)?
        } else {
            TlsBackend::Rustls(Arc::new(tls_config(tls)?))
        };
        Ok(Net {
            tls: backend,
            proxy,
            cookies: Arc::new(Jar::default()),
            http: std::sync::OnceLock::new(),
            unpooled: std::sync::OnceLock::new(),
        })
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
            TlsBackend::Rustls(config) => builder.use_preconfigured_tls((**config).clone()),
            #[cfg(feature = "native-tls")]
            TlsBackend::Native(connector) => builder.use_preconfigured_tls(connector.clone()),
        };
        let builder = if pooled {
            builder
        } else {
            builder.pool_max_idle_per_host(0)
        };
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
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(e.to_string()))?;
    if options.accept_invalid_certs {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth());
    }
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if options.native_roots {
        add_native_roots(&mut roots)?;
    }
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
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

#[cfg(feature = "native-roots")]
fn add_native_roots(roots: &mut RootCertStore) -> Result<(), Error> {
    let found = rustls_native_certs::load_native_certs();
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
