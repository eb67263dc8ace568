//! What a connect reports: each transport's attempt, and the hints a failed one gives (the
//! diagnosis itself is `diagnosis.rs`).

use std::fmt;
use std::time::Duration;

use super::Transport;

/// One transport tried while connecting.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct Attempt {
    /// Transport tried.
    pub transport: Transport,
    /// `Ok(())` if it delivered the open packet first, else what went wrong (or that another
    /// transport won while it was still running).
    pub outcome: Result<(), String>,
    /// HTTP status of the failure, when there was one.
    pub status: Option<u16>,
    /// Time from the start of connecting to the start of this attempt.
    pub started_after: Duration,
    /// Time from the start of the attempt to its outcome.
    pub elapsed: Duration,
}

/// A likely cause of a failed connect, with what to do about it (`Display` says both).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// An `https://`/`wss://` URL to a server that answered in plain HTTP.
    PlainHttpServer,
    /// The server answered 404 at the Engine.IO path: it serves something else there.
    WrongPath {
        /// The path that was asked for (the builder's `path`, default `/socket.io/`).
        path: String,
    },
    /// A proxy answered 407: it wants credentials.
    ProxyCredentials,
    /// The proxy itself could not be reached.
    ProxyUnreachable {
        /// The proxy's address.
        proxy: String,
    },
    /// Nothing accepts connections at the server's address.
    NothingListening {
        /// `host:port` of the server.
        address: String,
    },
    /// The host name did not resolve.
    HostNotFound {
        /// The host name.
        host: String,
    },
    /// The server's certificate is not signed by a trusted authority.
    UntrustedCertificate,
    /// The server's certificate is for another name.
    CertificateNameMismatch {
        /// The host name asked for.
        host: String,
    },
    /// No transport got an answer in time: a firewall dropping packets, or a server that
    /// accepts connections and never answers.
    NoAnswer,
}

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hint::PlainHttpServer => f.write_str(
                "the server answered in plain HTTP, not TLS: use http:// (or ws://) for this port",
            ),
            Hint::WrongPath { path } => write!(
                f,
                "nothing answers at {path} on this server: socket.io servers listen on \
                 /socket.io/ unless configured otherwise; set the builder's path() to the \
                 server's `path` option"
            ),
            Hint::ProxyCredentials => f.write_str(
                "the proxy wants credentials: put them in the proxy URL \
                 (http://user:password@proxy:port, percent-encoded)",
            ),
            Hint::ProxyUnreachable { proxy } => write!(
                f,
                "the proxy {proxy} cannot be reached: check the builder's proxy() or \
                 HTTPS_PROXY/HTTP_PROXY/ALL_PROXY/NO_PROXY (no_proxy() turns proxies off)"
            ),
            Hint::NothingListening { address } => write!(
                f,
                "nothing accepts connections at {address}: is the server running, and on this port?"
            ),
            Hint::HostNotFound { host } => {
                write!(f, "the host name {host:?} does not resolve: check the URL")
            }
            Hint::UntrustedCertificate => f.write_str(
                "the server's certificate is not signed by a trusted authority: add its CA with \
                 add_root_certificate() (or SSL_CERT_FILE), or danger_accept_invalid_certs(true) \
                 for testing only",
            ),
            Hint::CertificateNameMismatch { host } => write!(
                f,
                "the server's certificate is not valid for {host:?}: connect by the name the \
                 certificate was issued for"
            ),
            Hint::NoAnswer => f.write_str(
                "no transport got an answer in time: a firewall dropping packets, or a server \
                 that accepts connections and never answers (raise timeout() if it is just slow)",
            ),
        }
    }
}
