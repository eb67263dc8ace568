//! HTTP proxies: which one a URL goes through (explicit option, or the environment's
//! `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` with `NO_PROXY`), and the `CONNECT` tunnel that carries
//! WebSocket connections (`ws://` too: plain proxies do not forward upgrades) through it.

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use url::Url;

use crate::{Error, Transport};

/// Where proxy settings come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum ProxySetting {
    /// The environment variables, as curl reads them (the default).
    #[default]
    Environment,
    /// No proxy at all.
    Disabled,
    /// This proxy for every request.
    Explicit(String),
}

/// The proxy for `target`, if any. Loopback targets never go through an environment proxy:
/// a proxy elsewhere cannot reach this machine's loopback (the rule Go's HTTP client follows).
pub(crate) fn proxy_for(setting: &ProxySetting, target: &Url) -> Result<Option<Url>, Error> {
    let raw = match setting {
        ProxySetting::Disabled => return Ok(None),
        ProxySetting::Explicit(url) => url.clone(),
        ProxySetting::Environment => {
            let host = target.host_str().unwrap_or_default();
            if is_loopback(host) || no_proxy_matches(&env_any(&["NO_PROXY", "no_proxy"]), host) {
                return Ok(None);
            }
            let secure = matches!(target.scheme(), "https" | "wss");
            let specific = if secure {
                env_any(&["HTTPS_PROXY", "https_proxy"])
            } else {
                env_any(&["HTTP_PROXY", "http_proxy"])
            };
            match specific.or_else(|| env_any(&["ALL_PROXY", "all_proxy"])) {
                Some(url) => url,
                None => return Ok(None),
            }
        }
    };
    // `host:port` without a scheme is common in the environment.
    let with_scheme = if raw.contains("://") {
        raw
    } else {
        format!("http://{raw}")
    };
    Url::parse(&with_scheme)
        .map(Some)
        .map_err(|e| Error::InvalidUrl {
            url: with_scheme,
            reason: format!("proxy URL: {e}"),
        })
}

fn env_any(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok())
        .filter(|v| !v.trim().is_empty())
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `NO_PROXY` semantics: `*` matches all; `example.com` and `.example.com` match the domain and
/// its subdomains; entries may carry a port, which is ignored.
fn no_proxy_matches(list: &Option<String>, host: &str) -> bool {
    let Some(list) = list else {
        return false;
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            let entry = entry.to_ascii_lowercase();
            let entry = match entry.rsplit_once(':') {
                Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) && !h.contains(':') => {
                    h
                }
                _ => entry.as_str(),
            };
            let domain = entry.trim_start_matches('.');
            host == domain || host.ends_with(&format!(".{domain}"))
        })
}

fn proxy_error(status: Option<u16>, body: String) -> Error {
    Error::handshake(Transport::WebSocket, status, body)
}

/// Opens a TCP tunnel to `host:port` through the HTTP proxy `proxy` with `CONNECT`, sending
/// `Proxy-Authorization` when the proxy URL carries credentials. A 407 or any refusal is a
/// `Handshake` error carrying the proxy's status.
pub(crate) async fn connect_tunnel(
    proxy: &Url,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<TcpStream, Error> {
    if proxy.scheme() != "http" {
        return Err(proxy_error(
            None,
            format!(
                "proxy scheme {:?} is not supported for WebSocket (use an http:// proxy)",
                proxy.scheme()
            ),
        ));
    }
    let proxy_host = proxy.host_str().unwrap_or_default().to_string();
    let proxy_port = proxy.port_or_known_default().unwrap_or(80);
    let work = async {
        let mut stream = TcpStream::connect((proxy_host.as_str(), proxy_port))
            .await
            .map_err(|e| proxy_error(None, format!("proxy {proxy_host}:{proxy_port}: {e}")))?;
        let _ = stream.set_nodelay(true);
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
        if !proxy.username().is_empty() {
            let user = percent_decode(proxy.username());
            let pass = percent_decode(proxy.password().unwrap_or_default());
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
        }
        request.push_str("\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| proxy_error(None, format!("proxy write: {e}")))?;
        // Read the answer's head byte by byte: anything after it belongs to the tunnel.
        let mut head = Vec::with_capacity(256);
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() > 16 * 1024 {
                return Err(proxy_error(None, "proxy answer head too large".into()));
            }
            let byte = stream
                .read_u8()
                .await
                .map_err(|e| proxy_error(None, format!("proxy closed the tunnel request: {e}")))?;
            head.push(byte);
        }
        let head = String::from_utf8_lossy(&head);
        let status = head
            .lines()
            .next()
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|code| code.parse::<u16>().ok());
        match status {
            Some(200..=299) => Ok(stream),
            Some(407) => Err(proxy_error(
                Some(407),
                "proxy authentication required (put credentials in the proxy URL)".into(),
            )),
            Some(code) => Err(proxy_error(
                Some(code),
                format!("proxy refused CONNECT: {}", head.trim()),
            )),
            None => Err(proxy_error(
                None,
                format!("malformed proxy answer: {}", head.trim()),
            )),
        }
    };
    tokio::time::timeout(timeout, work).await.map_err(|_| {
        proxy_error(
            None,
            format!("proxy did not answer CONNECT within {timeout:?}"),
        )
    })?
}

/// Userinfo from a URL, percent-decoded as RFC 3986 says: not as form data, where `+` would
/// become a space and `&` would cut the value short.
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_rules() {
        let list = Some("example.com, .corp.net,10.0.0.1,svc:8080".to_string());
        assert!(no_proxy_matches(&list, "example.com"));
        assert!(no_proxy_matches(&list, "api.example.com"));
        assert!(!no_proxy_matches(&list, "badexample.com"));
        assert!(no_proxy_matches(&list, "x.corp.net"));
        assert!(no_proxy_matches(&list, "corp.net"));
        assert!(no_proxy_matches(&list, "10.0.0.1"));
        assert!(no_proxy_matches(&list, "svc"));
        assert!(!no_proxy_matches(&list, "other.org"));
        assert!(no_proxy_matches(&Some("*".into()), "anything"));
        assert!(!no_proxy_matches(&None, "anything"));
    }

    #[test]
    fn explicit_and_disabled_settings() {
        let target = Url::parse("wss://example.com/socket.io/").unwrap();
        let explicit = ProxySetting::Explicit("proxy.local:3128".into());
        assert_eq!(
            proxy_for(&explicit, &target).unwrap().unwrap().as_str(),
            "http://proxy.local:3128/"
        );
        assert_eq!(proxy_for(&ProxySetting::Disabled, &target).unwrap(), None);
        let bad = ProxySetting::Explicit("http://[bad".into());
        assert!(matches!(
            proxy_for(&bad, &target),
            Err(Error::InvalidUrl { .. })
        ));
    }

    #[test]
    fn loopback_is_never_proxied_from_the_environment() {
        for host in ["127.0.0.1", "localhost", "[::1]", "127.5.5.5"] {
            let target = Url::parse(&format!("http://{host}:3000/")).unwrap();
            assert_eq!(
                proxy_for(&ProxySetting::Environment, &target).unwrap(),
                None,
                "{host}"
            );
        }
    }

    #[test]
    fn credentials_are_percent_decoded() {
        assert_eq!(percent_decode("us%40er"), "us@er");
        assert_eq!(percent_decode("plain"), "plain");
        // Form decoding got these wrong: `+` is a plus, `&` is part of the value.
        assert_eq!(percent_decode("p+ss&word"), "p+ss&word");
        assert_eq!(percent_decode("a%25b%3Ac%40d%2Be%26f"), "a%b:c@d+e&f");
    }
}
