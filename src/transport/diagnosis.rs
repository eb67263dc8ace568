//! What a failed connect means: hints for the classic mistakes
//! (TLS to a plain-HTTP server, the wrong path, a proxy that wants credentials or is not there,
//! an untrusted certificate, nothing listening).
//!
//! The hints are read from the typed causes where the transports keep them (rustls' error,
//! the IO error kind, the HTTP status) and from the message text where a layer below only
//! gave text (reqwest's DNS and connect errors).

use super::report::Hint;
use crate::Error;

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
    // engine.io cuts a WebSocket upgrade to a path it does not serve without an HTTP answer
    // (its `destroyUpgrade`), and a bare Node HTTP server leaves the polling GET unanswered:
    // with no other cause in sight, that is the wrong path.
    if hints.is_empty() && failures.iter().any(|e| Cause::of(e).upgrade_cut) {
        hints.push(Hint::WrongPath {
            path: context.path.to_string(),
        });
    }
    let mut add = |hint: Hint| {
        if !hints.contains(&hint) {
            hints.push(hint);
        }
    };
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
    /// A WebSocket upgrade closed before any HTTP answer.
    upgrade_cut: bool,
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
        cause.upgrade_cut = text.contains("handshake not finished");
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
