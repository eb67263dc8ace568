//! Engine.IO request URLs: the user's URL plus path, `EIO`, `transport`, `sid`, a cache-busting
//! `t`, and the user's query on every request.

use url::Url;

use crate::proto::engineio::EngineVersion;
use crate::{Error, Transport};

/// Everything needed to address the server, fixed at connect time.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// `http(s)://host:port/path/` with the user's query already applied.
    base: Url,
    version: EngineVersion,
}

impl Endpoint {
    /// Validates the user's URL (http, https, ws or wss) and fixes the Engine.IO path.
    pub(crate) fn new(
        url: &str,
        path: &str,
        query: &[(String, String)],
        version: EngineVersion,
    ) -> Result<Endpoint, Error> {
        let invalid = |reason: &str| Error::InvalidUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let mut base = Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
        let scheme = match base.scheme() {
            "http" | "ws" => "http",
            "https" | "wss" => "https",
            other => return Err(invalid(&format!("unsupported scheme {other:?}"))),
        };
        if base.host_str().is_none_or(str::is_empty) {
            return Err(invalid("no host"));
        }
        base.set_scheme(scheme)
            .map_err(|()| invalid("cannot change scheme"))?;
        base.set_fragment(None);
        // The JS client uses the URL's path as the namespace only when it is not "/"; we keep
        // the namespace an explicit option and take the Engine.IO path from `path`.
        let mut path = path.to_string();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        if !path.ends_with('/') {
            path.push('/');
        }
        base.set_path(&path);
        {
            let existing: Vec<(String, String)> = base.query_pairs().into_owned().collect();
            let mut pairs = base.query_pairs_mut();
            pairs.clear();
            for (k, v) in existing.iter().chain(query) {
                if !matches!(k.as_str(), "EIO" | "transport" | "sid" | "t" | "b64") {
                    pairs.append_pair(k, v);
                }
            }
        }
        if base.query() == Some("") {
            base.set_query(None);
        }
        Ok(Endpoint { base, version })
    }

    /// Protocol version spoken with this endpoint.
    pub(crate) fn version(&self) -> EngineVersion {
        self.version
    }

    /// The Engine.IO path asked for (`/socket.io/` by default).
    pub(crate) fn path(&self) -> &str {
        self.base.path()
    }

    /// The server's host name.
    pub(crate) fn host(&self) -> &str {
        self.base.host_str().unwrap_or_default()
    }

    /// Whether the server is reached over TLS (`https://`, `wss://`).
    pub(crate) fn is_tls(&self) -> bool {
        self.base.scheme() == "https"
    }

    /// `host:port` of the server, the key of the per-host transport memory.
    pub(crate) fn host_key(&self) -> String {
        let host = self.base.host_str().unwrap_or_default();
        let port = self.base.port_or_known_default().unwrap_or_default();
        format!("{host}:{port}")
    }

    /// The URL of one request on `transport` (with `sid` once the session exists).
    pub(crate) fn url(&self, transport: Transport, sid: Option<&str>, stamp: u64) -> Url {
        let mut url = self.base.clone();
        {
            let mut pairs = url.query_pairs_mut();
            pairs.append_pair("EIO", self.version.query_value());
            pairs.append_pair("transport", transport.as_str());
            if let Some(sid) = sid {
                pairs.append_pair("sid", sid);
            }
            if transport != Transport::WebSocket {
                // Proxies and browsers' caches must not answer a poll from cache.
                pairs.append_pair("t", &cache_buster(stamp));
                if self.version == EngineVersion::V3 {
                    // EIO3 servers would otherwise answer XHR2 binary payloads.
                    pairs.append_pair("b64", "1");
                }
            }
        }
        if transport == Transport::WebSocket {
            let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
            // Switching between these special schemes is always allowed by `url`.
            let _ = url.set_scheme(scheme);
        }
        url
    }
}

/// A short, unique-per-request token in the style of the JS client's `yeast`.
fn cache_buster(stamp: u64) -> String {
    const ALPHABET: &[u8; 64] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_";
    let mut n = stamp;
    let mut out = Vec::with_capacity(12);
    loop {
        out.push(ALPHABET[(n % 64) as usize]);
        n /= 64;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(url: &str) -> Endpoint {
        Endpoint::new(url, "/socket.io/", &[], EngineVersion::V4).unwrap()
    }

    #[test]
    fn builds_polling_and_websocket_urls() {
        let e = ep("http://127.0.0.1:3000");
        let u = e.url(Transport::Polling, None, 5);
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:3000/socket.io/?EIO=4&transport=polling&t=5"
        );
        let u = e.url(Transport::WebSocket, Some("abc"), 5);
        assert_eq!(
            u.as_str(),
            "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket&sid=abc"
        );
        let e = ep("https://example.com/chat?x=1");
        let u = e.url(Transport::WebSocket, None, 0);
        assert_eq!(
            u.as_str(),
            "wss://example.com/socket.io/?x=1&EIO=4&transport=websocket"
        );
    }

    #[test]
    fn v3_polling_asks_for_base64() {
        let e = Endpoint::new(
            "ws://h",
            "engine.io",
            &[("k".into(), "v w".into())],
            EngineVersion::V3,
        )
        .unwrap();
        let u = e.url(Transport::Polling, Some("s"), 64);
        assert_eq!(
            u.as_str(),
            "http://h/engine.io/?k=v+w&EIO=3&transport=polling&sid=s&t=10&b64=1"
        );
    }

    #[test]
    fn rejects_bad_urls() {
        for bad in ["", "not a url", "ftp://h/", "file:///tmp/x", "http://"] {
            let r = Endpoint::new(bad, "/socket.io/", &[], EngineVersion::V4);
            assert!(
                matches!(r, Err(Error::InvalidUrl { .. })),
                "{bad:?} gave {r:?}"
            );
        }
    }
}
