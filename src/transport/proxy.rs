//! Proxies: which one a URL goes through (explicit option, or the environment's
//! `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` with `NO_PROXY`), and the tunnel that carries
//! WebSocket connections through it (`ws://` too: plain proxies do not forward upgrades): HTTP
//! `CONNECT` through `http://` and `https://` proxies, SOCKS5 `CONNECT` through `socks5://` and
//! `socks5h://` ones. The HTTP transports go through the same proxy with reqwest.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use url::Url;

use crate::{Error, Transport};

/// Where proxy settings come from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) enum ProxySetting {
    /// The environment variables, as curl reads them, then the operating system's proxy
    /// settings on Windows and macOS (the default).
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
                None => return Ok(system_proxy(target)),
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

/// The proxy the operating system's settings give for `target` (Windows: the registry's
/// `ProxyServer`/`ProxyOverride`; macOS: System Configuration), read once per process. No
/// settings on other systems: the environment is what they use.
fn system_proxy(target: &Url) -> Option<Url> {
    #[cfg(any(windows, target_os = "macos"))]
    {
        static SYSTEM: std::sync::OnceLock<hyper_util::client::proxy::matcher::Matcher> =
            std::sync::OnceLock::new();
        let matcher = SYSTEM.get_or_init(hyper_util::client::proxy::matcher::Matcher::from_system);
        intercepted(matcher, target)
    }
    #[cfg(not(any(windows, target_os = "macos")))]
    {
        let _ = target;
        None
    }
}

/// What hyper-util's `matcher` says for `target` (a `ws(s)` URL asked as `http(s)`), as a
/// proxy URL with the credentials it holds for SOCKS proxies.
#[cfg_attr(not(any(windows, target_os = "macos", test)), allow(dead_code))]
fn intercepted(matcher: &hyper_util::client::proxy::matcher::Matcher, target: &Url) -> Option<Url> {
    let scheme = match target.scheme() {
        "wss" | "https" => "https",
        _ => "http",
    };
    let host = target.host_str()?;
    let port = target.port_or_known_default()?;
    let uri: hyper::Uri = format!("{scheme}://{host}:{port}/").parse().ok()?;
    let intercept = matcher.intercept(&uri)?;
    let mut proxy = Url::parse(&intercept.uri().to_string()).ok()?;
    if let Some((user, pass)) = intercept.raw_auth() {
        let _ = proxy.set_username(user);
        let _ = proxy.set_password(Some(pass));
    }
    Some(proxy)
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
/// its subdomains; `10.0.0.0/8` or `fd00::/8` match the addresses in the range (when the
/// target is given as an address); entries may carry a port, which is ignored.
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
            if let Some((network, prefix)) = entry.split_once('/') {
                return in_cidr(&host, network, prefix);
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

/// Whether `host` is an IP address inside `network/prefix`.
fn in_cidr(host: &str, network: &str, prefix: &str) -> bool {
    let (Ok(host), Ok(network), Ok(prefix)) = (
        host.parse::<IpAddr>(),
        network
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>(),
        prefix.parse::<u32>(),
    ) else {
        return false;
    };
    let (host, network, bits) = match (host, network) {
        (IpAddr::V4(h), IpAddr::V4(n)) => (u128::from(u32::from(h)), u128::from(u32::from(n)), 32),
        (IpAddr::V6(h), IpAddr::V6(n)) => (u128::from(h), u128::from(n), 128),
        // An IPv4-mapped IPv6 target against an IPv4 range.
        (IpAddr::V6(h), IpAddr::V4(n)) => match h.to_ipv4_mapped() {
            Some(h) => (u128::from(u32::from(h)), u128::from(u32::from(n)), 32),
            None => return false,
        },
        (IpAddr::V4(_), IpAddr::V6(_)) => return false,
    };
    if prefix > bits {
        return false;
    }
    let shift = bits - prefix;
    shift >= bits || (host >> shift) == (network >> shift)
}

fn proxy_error(status: Option<u16>, body: String) -> Error {
    Error::handshake(Transport::WebSocket, status, body)
}

/// A byte stream to the server: a plain TCP connection, or one carried by a proxy (a TLS
/// session to an `https://` proxy, say). Boxed so that every way of getting through gives the
/// WebSocket handshake one type.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// See [`Io`].
pub(crate) type BoxedIo = Box<dyn Io>;

/// The default port of a proxy URL without one (`socks5://host` means 1080, as in curl).
pub(crate) fn proxy_port(proxy: &Url) -> u16 {
    proxy
        .port_or_known_default()
        .unwrap_or(match proxy.scheme() {
            "socks5" | "socks5h" => 1080,
            "https" => 443,
            _ => 80,
        })
}

/// Opens a byte stream to `host:port` through `proxy`: a `CONNECT` tunnel through an
/// `http://` proxy, the same inside TLS to an `https://` proxy (verified with `tls`, the
/// client's own TLS settings), or a SOCKS5 `CONNECT` (`socks5://` resolves the name here,
/// `socks5h://` lets the proxy resolve it; `resolved`, from `ClientBuilder::resolve`, replaces
/// the local lookup). Credentials come from the proxy URL. A 407 or any
/// refusal by an HTTP proxy is a `Handshake` error carrying the proxy's status.
pub(crate) async fn connect_through(
    proxy: &Url,
    host: &str,
    port: u16,
    timeout: Duration,
    tls: &Arc<rustls::ClientConfig>,
    resolved: Option<Vec<std::net::SocketAddr>>,
) -> Result<BoxedIo, Error> {
    // `Url::host_str` keeps the brackets of an IPv6 address; the tunnel requests add their own.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let scheme = proxy.scheme().to_string();
    if !matches!(scheme.as_str(), "http" | "https" | "socks5" | "socks5h") {
        return Err(proxy_error(
            None,
            format!(
                "proxy scheme {scheme:?} is not supported (use http://, https://, socks5:// or socks5h://)"
            ),
        ));
    }
    let proxy_host = proxy
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let proxy_port = proxy_port(proxy);
    let credentials = (!proxy.username().is_empty()).then(|| {
        (
            percent_decode(proxy.username()),
            percent_decode(proxy.password().unwrap_or_default()),
        )
    });
    let work = async {
        let open_tcp = || async {
            let stream = TcpStream::connect((proxy_host.as_str(), proxy_port))
                .await
                .map_err(|e| proxy_error(None, format!("proxy {proxy_host}:{proxy_port}: {e}")))?;
            let _ = stream.set_nodelay(true);
            Ok::<_, Error>(stream)
        };
        match scheme.as_str() {
            "http" => {
                let mut stream = open_tcp().await?;
                http_connect(&mut stream, host, port, credentials.as_ref()).await?;
                Ok(Box::new(stream) as BoxedIo)
            }
            "https" => {
                let stream = open_tcp().await?;
                let name = rustls_pki_types::ServerName::try_from(proxy_host.clone())
                    .map_err(|e| proxy_error(None, format!("proxy name {proxy_host:?}: {e}")))?;
                let mut stream = tokio_rustls::TlsConnector::from(tls.clone())
                    .connect(name, stream)
                    .await
                    .map_err(|e| {
                        proxy_error(None, format!("TLS to the proxy {proxy_host}: {e}"))
                    })?;
                http_connect(&mut stream, host, port, credentials.as_ref()).await?;
                Ok(Box::new(stream) as BoxedIo)
            }
            "socks5h" => {
                let mut stream = open_tcp().await?;
                let target = match host.parse::<IpAddr>() {
                    Ok(ip) => SocksTarget::Ip(ip),
                    Err(_) => SocksTarget::Name(host),
                };
                socks5_connect(&mut stream, target, port, credentials.as_ref()).await?;
                Ok(Box::new(stream) as BoxedIo)
            }
            _ => {
                // socks5: resolved here; every address is tried in turn, as a direct dial would.
                let addrs: Vec<std::net::SocketAddr> = match resolved {
                    Some(addrs) => addrs,
                    None => tokio::net::lookup_host((host, port))
                        .await
                        .map_err(|e| {
                            proxy_error(None, format!("resolving {host} for SOCKS5: {e}"))
                        })?
                        .collect(),
                };
                let mut last = proxy_error(None, format!("{host} resolved to no address"));
                for addr in addrs {
                    let mut stream = open_tcp().await?;
                    match socks5_connect(
                        &mut stream,
                        SocksTarget::Ip(addr.ip()),
                        port,
                        credentials.as_ref(),
                    )
                    .await
                    {
                        Ok(()) => return Ok(Box::new(stream) as BoxedIo),
                        Err(e) => last = e,
                    }
                }
                Err(last)
            }
        }
    };
    tokio::time::timeout(timeout, work).await.map_err(|_| {
        proxy_error(
            None,
            format!("proxy did not open the tunnel within {timeout:?}"),
        )
    })?
}

/// Asks an HTTP proxy for a `CONNECT` tunnel on `stream`, sending `Proxy-Authorization` when
/// there are credentials.
async fn http_connect<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    host: &str,
    port: u16,
    credentials: Option<&(String, String)>,
) -> Result<(), Error> {
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some((user, pass)) = credentials {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| proxy_error(None, format!("proxy write: {e}")))?;
    stream
        .flush()
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
        Some(200..=299) => Ok(()),
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
}

/// What a SOCKS5 `CONNECT` asks for: an address, or a name the proxy resolves.
enum SocksTarget<'a> {
    Ip(IpAddr),
    Name(&'a str),
}

const SOCKS_VERSION: u8 = 5;
const SOCKS_NO_AUTH: u8 = 0x00;
const SOCKS_USER_PASS: u8 = 0x02;
const SOCKS_NO_ACCEPTABLE: u8 = 0xff;

fn socks_error(message: String) -> Error {
    proxy_error(None, format!("SOCKS5 proxy: {message}"))
}

/// The SOCKS5 client side of RFC 1928 (`CONNECT` only) with the username/password method of
/// RFC 1929 when there are credentials.
async fn socks5_connect<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    target: SocksTarget<'_>,
    port: u16,
    credentials: Option<&(String, String)>,
) -> Result<(), Error> {
    let io = |e: std::io::Error| socks_error(e.to_string());
    let greeting: &[u8] = if credentials.is_some() {
        &[SOCKS_VERSION, 2, SOCKS_NO_AUTH, SOCKS_USER_PASS]
    } else {
        &[SOCKS_VERSION, 1, SOCKS_NO_AUTH]
    };
    stream.write_all(greeting).await.map_err(io)?;
    let mut choice = [0u8; 2];
    stream.read_exact(&mut choice).await.map_err(io)?;
    if choice[0] != SOCKS_VERSION {
        return Err(socks_error(format!(
            "not a SOCKS5 server (version byte {})",
            choice[0]
        )));
    }
    match (choice[1], credentials) {
        (SOCKS_NO_AUTH, _) => {}
        (SOCKS_USER_PASS, Some((user, pass))) => {
            if user.len() > 255 || pass.len() > 255 {
                return Err(socks_error(
                    "username and password are limited to 255 bytes each".into(),
                ));
            }
            let mut auth = vec![1, user.len() as u8];
            auth.extend_from_slice(user.as_bytes());
            auth.push(pass.len() as u8);
            auth.extend_from_slice(pass.as_bytes());
            stream.write_all(&auth).await.map_err(io)?;
            let mut status = [0u8; 2];
            stream.read_exact(&mut status).await.map_err(io)?;
            if status[1] != 0 {
                return Err(socks_error(
                    "username or password rejected (check the credentials in the proxy URL)".into(),
                ));
            }
        }
        (SOCKS_NO_ACCEPTABLE, None) | (SOCKS_USER_PASS, None) => {
            return Err(socks_error(
                "authentication required (put credentials in the proxy URL)".into(),
            ))
        }
        (method, _) => {
            return Err(socks_error(format!(
                "no acceptable authentication method (server chose {method:#04x})"
            )))
        }
    }
    let mut request = vec![SOCKS_VERSION, 1, 0];
    match target {
        SocksTarget::Ip(IpAddr::V4(ip)) => {
            request.push(1);
            request.extend_from_slice(&ip.octets());
        }
        SocksTarget::Ip(IpAddr::V6(ip)) => {
            request.push(4);
            request.extend_from_slice(&ip.octets());
        }
        SocksTarget::Name(name) => {
            if name.len() > 255 {
                return Err(socks_error(format!("host name too long: {name}")));
            }
            request.push(3);
            request.push(name.len() as u8);
            request.extend_from_slice(name.as_bytes());
        }
    }
    request.extend_from_slice(&port.to_be_bytes());
    stream.write_all(&request).await.map_err(io)?;
    let mut reply = [0u8; 4];
    stream.read_exact(&mut reply).await.map_err(io)?;
    if reply[1] != 0 {
        let reason = match reply[1] {
            1 => "general failure",
            2 => "connection not allowed by ruleset",
            3 => "network unreachable",
            4 => "host unreachable",
            5 => "connection refused",
            6 => "TTL expired",
            7 => "command not supported",
            8 => "address type not supported",
            _ => "unknown error",
        };
        return Err(socks_error(format!(
            "CONNECT refused: {reason} (code {})",
            reply[1]
        )));
    }
    // The bound address is of no use to the client, but its bytes precede the tunnel's.
    let address_len = match reply[3] {
        1 => 4,
        4 => 16,
        3 => usize::from(stream.read_u8().await.map_err(io)?),
        other => {
            return Err(socks_error(format!(
                "unknown address type {other} in reply"
            )))
        }
    };
    let mut bound = vec![0u8; address_len + 2];
    stream.read_exact(&mut bound).await.map_err(io)?;
    Ok(())
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

    /// The matcher the OS settings are read into on Windows and macOS, fed here by hand.
    #[test]
    fn system_settings_through_the_matcher() {
        use hyper_util::client::proxy::matcher::Matcher;
        let matcher = Matcher::builder()
            .http("http://proxy.corp:3128")
            .https("socks5h://us%40er:p%2Bss@socks.corp:1080")
            .no(".internal, 10.0.0.0/8")
            .build();
        let ws = Url::parse("ws://example.com/socket.io/").unwrap();
        assert_eq!(
            intercepted(&matcher, &ws).unwrap().as_str(),
            "http://proxy.corp:3128/"
        );
        let wss = Url::parse("wss://example.com/socket.io/").unwrap();
        let socks = intercepted(&matcher, &wss).unwrap();
        assert_eq!(socks.scheme(), "socks5h");
        assert_eq!(socks.host_str(), Some("socks.corp"));
        assert_eq!(percent_decode(socks.username()), "us@er");
        assert_eq!(percent_decode(socks.password().unwrap()), "p+ss");
        for bypassed in ["https://api.internal/", "http://10.2.3.4:8080/"] {
            assert_eq!(
                intercepted(&matcher, &Url::parse(bypassed).unwrap()),
                None,
                "{bypassed}"
            );
        }
    }

    #[test]
    fn default_proxy_ports() {
        for (url, port) in [
            ("socks5://127.0.0.1", 1080),
            ("socks5h://proxy.example", 1080),
            ("socks5h://proxy.example:9050", 9050),
            ("https://proxy.example", 443),
            ("http://proxy.example", 80),
        ] {
            assert_eq!(proxy_port(&Url::parse(url).unwrap()), port, "{url}");
        }
    }

    #[test]
    fn no_proxy_cidr_ranges() {
        let list = Some("192.168.0.0/16, 10.1.2.0/24, fd00::/8, 0.0.0.0/0x".to_string());
        assert!(no_proxy_matches(&list, "192.168.7.9"));
        assert!(no_proxy_matches(&list, "10.1.2.200"));
        assert!(!no_proxy_matches(&list, "10.1.3.1"));
        assert!(no_proxy_matches(&list, "[fd12:3456::1]"));
        assert!(!no_proxy_matches(&list, "[fe80::1]"));
        assert!(!no_proxy_matches(&list, "192.169.0.1"));
        // Names are not resolved to be matched against a range.
        assert!(!no_proxy_matches(&list, "intranet.example"));
        assert!(no_proxy_matches(&Some("0.0.0.0/0".into()), "8.8.8.8"));
        assert!(!no_proxy_matches(
            &Some("0.0.0.0/0".into()),
            "[2001:db8::1]"
        ));
        assert!(no_proxy_matches(
            &Some("10.0.0.0/8".into()),
            "[::ffff:10.9.8.7]"
        ));
        assert!(!no_proxy_matches(&Some("10.0.0.0/33".into()), "10.0.0.1"));
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
