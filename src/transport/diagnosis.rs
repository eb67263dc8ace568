//! What a failed connect means: every transport's attempt, and hints for the classic mistakes
//! (TLS to a plain-HTTP server, the wrong path, a proxy that wants credentials or is not there,
//! an untrusted certificate, nothing listening).
//!
//! The hints are read from the typed causes where the transports keep them (rustls' error,
//! the IO error kind, the HTTP status) and from the message text where a layer below only
//! gave text (reqwest's DNS and connect errors).

use std::fmt;

use super::connect::Attempt;
use crate::Error;

/// A connect that did not get through: the error that decided it, every transport's attempt,
/// and what the failures suggest. Reached through [`Error::ConnectFailed`].
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct ConnectFailure {
    /// The URL as given to the builder.
    pub url: String,
    /// The last transport's error (or [`Error::ConnectTimeout`] when the whole race ran out of
    /// time); the same as [`Error::last_failure`].
    pub error: Error,
    /// Every transport tried, in the order they started, with what went wrong for each.
    pub attempts: Vec<Attempt>,
    /// What the failures suggest, most likely first; empty when nothing stands out.
    pub hints: Vec<Hint>,
}

impl fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "could not connect to {}", self.url)?;
        if self.attempts.is_empty() {
            write!(f, ": {}", self.error)?;
        }
        for (i, attempt) in self.attempts.iter().enumerate() {
            let sep = if i == 0 { ": " } else { "; " };
            match &attempt.outcome {
                Ok(()) => write!(f, "{sep}{} opened", attempt.transport)?,
                Err(why) => write!(f, "{sep}{}: {why}", attempt.transport)?,
            }
        }
        for hint in &self.hints {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
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

/// What the diagnosis needs to know about the connect, besides the failures.
pub(crate) struct Context<'a> {
    pub(crate) path: &'a str,
    pub(crate) host: &'a str,
    pub(crate) address: String,
    pub(crate) tls: bool,
    /// The proxy the requests went through, if any.
    pub(crate) proxy: Option<String>,
}

/// Hints for the failures of one connect, most telling first, each said once.
pub(crate) fn hints(context: &Context<'_>, failures: &[&Error]) -> Vec<Hint> {
    let mut hints = Vec::new();
    let mut add = |hint: Hint| {
        if !hints.contains(&hint) {
            hints.push(hint);
        }
    };
    for error in failures {
        let cause = Cause::of(error);
        if context.tls && cause.plain_http {
            add(Hint::PlainHttpServer);
        }
        if let Some(certificate) = cause.certificate {
            match certificate {
                CertificateProblem::Untrusted => add(Hint::UntrustedCertificate),
                CertificateProblem::Name => add(Hint::CertificateNameMismatch {
                    host: context.host.to_string(),
                }),
            }
        }
        match status_of(error) {
            Some(404) => add(Hint::WrongPath {
                path: context.path.to_string(),
            }),
            Some(407) => add(Hint::ProxyCredentials),
            _ => {}
        }
        if cause.refused {
            match &context.proxy {
                Some(proxy) => add(Hint::ProxyUnreachable {
                    proxy: proxy.clone(),
                }),
                None => add(Hint::NothingListening {
                    address: context.address.clone(),
                }),
            }
        }
        if cause.dns {
            match &context.proxy {
                Some(proxy) if cause.text.contains("proxy") => add(Hint::ProxyUnreachable {
                    proxy: proxy.clone(),
                }),
                _ => add(Hint::HostNotFound {
                    host: context.host.to_string(),
                }),
            }
        }
    }
    if !failures.is_empty() && failures.iter().all(|e| Cause::of(e).timed_out) {
        add(Hint::NoAnswer);
    }
    hints
}

fn status_of(error: &Error) -> Option<u16> {
    match error {
        Error::Handshake { status, .. } => *status,
        _ => None,
    }
}

#[derive(Clone, Copy)]
enum CertificateProblem {
    Untrusted,
    Name,
}

/// What one failure's cause chain says.
#[derive(Default)]
struct Cause {
    plain_http: bool,
    certificate: Option<CertificateProblem>,
    refused: bool,
    dns: bool,
    timed_out: bool,
    text: String,
}

impl Cause {
    fn of(error: &Error) -> Cause {
        let mut cause = Cause {
            text: error.to_string().to_ascii_lowercase(),
            timed_out: matches!(error, Error::ConnectTimeout(_)),
            ..Cause::default()
        };
        let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(current) = next {
            cause.read(current);
            // `io::Error::source` skips the error it wraps (it returns that error's source),
            // so the wrapped one is looked at here.
            if let Some(io) = current.downcast_ref::<std::io::Error>() {
                if let Some(inner) = io.get_ref() {
                    cause.read(inner);
                }
            }
            next = current.source();
        }
        // Text for the layers that kept none of the typed cause.
        let text = &cause.text;
        cause.plain_http |= text.contains("invalidcontenttype") || text.contains("corrupt message");
        cause.certificate = cause.certificate.or(if text.contains("unknownissuer") {
            Some(CertificateProblem::Untrusted)
        } else if text.contains("notvalidforname") {
            Some(CertificateProblem::Name)
        } else {
            None
        });
        cause.refused |= text.contains("connection refused");
        cause.dns |= text.contains("dns error")
            || text.contains("failed to lookup address")
            || text.contains("name or service not known");
        cause.timed_out |= text.contains("timed out") || text.contains("no open packet within");
        cause
    }

    fn read(&mut self, error: &(dyn std::error::Error + 'static)) {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            match tls {
                rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => {
                    self.plain_http = true;
                }
                rustls::Error::InvalidCertificate(
                    rustls::CertificateError::UnknownIssuer
                    | rustls::CertificateError::BadSignature,
                ) => self.certificate = Some(CertificateProblem::Untrusted),
                rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. },
                ) => self.certificate = Some(CertificateProblem::Name),
                _ => {}
            }
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => self.refused = true,
                std::io::ErrorKind::TimedOut => self.timed_out = true,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Transport;

    fn context(tls: bool, proxy: Option<&str>) -> Context<'static> {
        Context {
            path: "/socket.io/",
            host: "example.test",
            address: "example.test:443".into(),
            tls,
            proxy: proxy.map(str::to_string),
        }
    }

    #[test]
    fn tls_to_a_plain_server_from_the_typed_cause() {
        let io = std::io::Error::other(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType,
        ));
        let error = Error::transport_caused(Transport::WebSocket, io);
        assert_eq!(
            hints(&context(true, None), &[&error]),
            [Hint::PlainHttpServer]
        );
        // Over http:// the same bytes mean something else.
        assert!(hints(&context(false, None), &[&error]).is_empty());
    }

    #[test]
    fn statuses_and_refusals() {
        let not_found = Error::handshake(Transport::Polling, Some(404), "Not Found");
        let proxy_auth = Error::handshake(Transport::WebSocket, Some(407), "");
        let refused = Error::transport_caused(
            Transport::WebSocket,
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        );
        assert_eq!(
            hints(&context(false, None), &[&not_found, &proxy_auth, &refused]),
            [
                Hint::WrongPath {
                    path: "/socket.io/".into()
                },
                Hint::ProxyCredentials,
                Hint::NothingListening {
                    address: "example.test:443".into()
                }
            ]
        );
        assert_eq!(
            hints(&context(false, Some("http://proxy:3128")), &[&refused]),
            [Hint::ProxyUnreachable {
                proxy: "http://proxy:3128".into()
            }]
        );
    }

    #[test]
    fn only_timeouts_mean_no_answer() {
        let timeout = Error::ConnectTimeout(std::time::Duration::from_secs(1));
        let not_found = Error::handshake(Transport::Polling, Some(404), "Not Found");
        assert_eq!(hints(&context(false, None), &[&timeout]), [Hint::NoAnswer]);
        assert!(!hints(&context(false, None), &[&timeout, &not_found]).contains(&Hint::NoAnswer));
    }
}
