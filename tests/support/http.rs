//! The one HTTP/1.1 reader and writer of the test support: the fake servers, the proxies and the
//! tests that look at raw responses all parse heads with `httparse` here and frame bodies the same
//! way, so a framing bug shows up once instead of in nine hand-written copies.
//!
//! Reading: [`HttpConn`] wraps a stream with a read buffer (bytes read past a head stay for the
//! body, a pipelined request or the first WebSocket frame), reads a bounded request or response
//! head, and decodes a body by `Content-Length`, chunked framing or end of stream ([`Body`]).
//! Writing: [`response`], [`request`] and [`chunk`] build the bytes; nothing here adds headers
//! the caller did not name except the `Content-Length` of [`response`] and [`request`].

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest request or response head accepted; beyond it reading fails.
pub const HEAD_LIMIT: usize = 64 * 1024;
/// Longest chunk-size or trailer line accepted in a chunked body.
pub const LINE_LIMIT: usize = 8 * 1024;
/// Read size for bodies and raw pipes.
pub const CHUNK: usize = 16 * 1024;
/// Most header lines in one head; more is an error (none of the peers here sends that many).
const MAX_HEADERS: usize = 128;

/// An `InvalidData` error with this message.
pub fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

/// The error for a stream that ended inside a message.
pub fn eof() -> io::Error {
    io::Error::from(io::ErrorKind::UnexpectedEof)
}

/// Header lines in the order received, names as sent, values trimmed.
#[derive(Debug, Clone, Default)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    fn from_httparse(headers: &[httparse::Header<'_>]) -> Headers {
        Headers(
            headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_owned(),
                        String::from_utf8_lossy(h.value).trim().to_owned(),
                    )
                })
                .collect(),
        )
    }

    /// The first `name` header's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every `name` header's value, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether any `name` header lists `token` (comma-separated, case-insensitive).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.all(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Removes every `name` header.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// Appends a header.
    pub fn push(&mut self, name: &str, value: &str) {
        self.0.push((name.to_owned(), value.to_owned()));
    }

    /// The headers as `(name, value)` pairs, for [`head`] and [`response`].
    pub fn pairs(&self) -> Vec<(&str, &str)> {
        self.0
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect()
    }

    /// The `Content-Length`; an error when it is not a number or two of them disagree.
    pub fn content_length(&self) -> io::Result<Option<u64>> {
        let mut found: Option<u64> = None;
        for v in self.all("content-length") {
            let n: u64 = v.trim().parse().map_err(|_| bad("bad Content-Length"))?;
            if found.is_some_and(|f| f != n) {
                return Err(bad("conflicting Content-Length"));
            }
            found = Some(n);
        }
        Ok(found)
    }

    /// Whether the body is chunked.
    pub fn is_chunked(&self) -> bool {
        self.has_token("transfer-encoding", "chunked")
    }

    /// Headers that end-to-end forwarding keeps: hop-by-hop ones, those the `Connection`
    /// header names, and framing (which the forwarder computes again) are left out.
    pub fn end_to_end(&self) -> impl Iterator<Item = &(String, String)> {
        const HOP: [&str; 10] = [
            "connection",
            "keep-alive",
            "proxy-connection",
            "proxy-authorization",
            "proxy-authenticate",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "content-length",
        ];
        let named: Vec<String> = self
            .all("connection")
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .collect();
        self.0.iter().filter(move |(n, _)| {
            let n = n.to_ascii_lowercase();
            !HOP.contains(&n.as_str()) && !named.contains(&n)
        })
    }
}

/// A request head.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// The head as received, through the blank line.
    pub raw: Vec<u8>,
    pub method: String,
    /// The request target as sent (origin, absolute or authority form).
    pub target: String,
    /// The `x` of `HTTP/1.x`.
    pub minor_version: u8,
    pub headers: Headers,
}

impl RequestHead {
    /// Whether this asks for a WebSocket upgrade.
    pub fn is_websocket(&self) -> bool {
        self.headers.has_token("upgrade", "websocket")
    }

    /// Whether the client wants the connection kept after the response.
    pub fn wants_keep_alive(&self) -> bool {
        if self.minor_version == 0 {
            self.headers.has_token("connection", "keep-alive")
        } else {
            !self.headers.has_token("connection", "close")
        }
    }

    /// The value of `key` in the target's query string, percent-decoded.
    pub fn query(&self, key: &str) -> Option<String> {
        let query = self.target.split_once('?')?.1;
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }

    /// How the request's body is framed (none without `Content-Length` or chunking).
    pub fn body(&self) -> io::Result<Body> {
        if self.headers.is_chunked() {
            Ok(Body::chunked())
        } else {
            Ok(Body::Length(self.headers.content_length()?.unwrap_or(0)))
        }
    }
}

/// A response head.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    /// The head as received, through the blank line.
    pub raw: Vec<u8>,
    pub status: u16,
    /// The reason phrase, possibly empty.
    pub reason: String,
    /// The `x` of `HTTP/1.x`.
    pub minor_version: u8,
    pub headers: Headers,
}

impl ResponseHead {
    /// The head as text (lossy), through the blank line.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }

    /// How the body is framed for a response to `method` (RFC 9112 section 6.3).
    pub fn body(&self, method: &str) -> io::Result<Body> {
        if method.eq_ignore_ascii_case("HEAD")
            || (100..200).contains(&self.status)
            || self.status == 204
            || self.status == 304
        {
            Ok(Body::Done)
        } else if self.headers.is_chunked() {
            Ok(Body::chunked())
        } else if let Some(len) = self.headers.content_length()? {
            Ok(Body::Length(len))
        } else {
            Ok(Body::UntilClose)
        }
    }
}

/// Where a message body stands while it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// Nothing (more) to read.
    Done,
    /// This many bytes left.
    Length(u64),
    /// Chunked: `remaining` bytes of the current chunk, then its CRLF when `need_crlf`.
    Chunked { remaining: u64, need_crlf: bool },
    /// Everything up to the end of the stream.
    UntilClose,
}

impl Body {
    /// The state at the start of a chunked body.
    pub fn chunked() -> Body {
        Body::Chunked {
            remaining: 0,
            need_crlf: false,
        }
    }
}

/// A stream with a read buffer, so bytes read past a head (a pipelined request, the first
/// WebSocket frame after a `101`) are not lost.
pub struct HttpConn<S> {
    pub stream: S,
    /// Read and not consumed yet.
    pub buf: Vec<u8>,
}

impl<S: AsyncRead + Unpin> HttpConn<S> {
    pub fn new(stream: S) -> HttpConn<S> {
        HttpConn {
            stream,
            buf: Vec::new(),
        }
    }

    /// Reads more bytes into the buffer; 0 means end of stream.
    pub async fn fill(&mut self) -> io::Result<usize> {
        let mut tmp = vec![0u8; CHUNK];
        let n = self.stream.read(&mut tmp).await?;
        self.buf.extend_from_slice(tmp.get(..n).unwrap_or_default());
        Ok(n)
    }

    /// Reads until `parse` finds a complete head (at most [`HEAD_LIMIT`]) at the start of the
    /// buffer, stray CRLFs before it dropped (RFC 9112 section 2.2); the caller takes the head
    /// out of the buffer. `None` at a clean end of stream before any byte of a head.
    async fn read_head_with<T>(
        &mut self,
        parse: impl Fn(&[u8]) -> io::Result<Option<T>>,
    ) -> io::Result<Option<T>> {
        let limit = HEAD_LIMIT;
        loop {
            let blank = self
                .buf
                .iter()
                .position(|&b| b != b'\r' && b != b'\n')
                .unwrap_or(self.buf.len());
            self.buf.drain(..blank);
            if !self.buf.is_empty() {
                let window = &self.buf[..self.buf.len().min(limit)];
                if let Some(parsed) = parse(window)? {
                    return Ok(Some(parsed));
                }
                if self.buf.len() >= limit {
                    return Err(bad("head too large"));
                }
            }
            if self.fill().await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(eof())
                };
            }
        }
    }

    /// The next request head (at most [`HEAD_LIMIT`]); `None` at a clean end of stream.
    pub async fn read_request_head(&mut self) -> io::Result<Option<RequestHead>> {
        let head = self.read_head_with(parse_request_head).await?;
        if let Some(head) = &head {
            self.buf.drain(..head.raw.len());
        }
        Ok(head)
    }

    /// The next response head (at most [`HEAD_LIMIT`]); `None` at a clean end of stream.
    pub async fn read_response_head(&mut self) -> io::Result<Option<ResponseHead>> {
        let head = self.read_head_with(parse_response_head).await?;
        if let Some(head) = &head {
            self.buf.drain(..head.raw.len());
        }
        Ok(head)
    }

    /// One line without its line ending (at most [`LINE_LIMIT`]).
    pub async fn read_line(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if self.buf.len() > LINE_LIMIT {
                return Err(bad("line too long"));
            }
            if self.fill().await? == 0 {
                return Err(eof());
            }
        }
    }

    /// Up to `max` bytes, buffered ones first; empty at end of stream.
    pub async fn read_some(&mut self, max: usize) -> io::Result<Vec<u8>> {
        if self.buf.is_empty() {
            let mut tmp = vec![0u8; max.min(CHUNK)];
            let n = self.stream.read(&mut tmp).await?;
            tmp.truncate(n);
            return Ok(tmp);
        }
        let n = max.min(self.buf.len());
        Ok(self.buf.drain(..n).collect())
    }

    /// Exactly `len` bytes, buffered ones first.
    pub async fn read_exact_bytes(&mut self, len: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < len {
            if self.fill().await? == 0 {
                return Err(eof());
            }
        }
        Ok(self.buf.drain(..len).collect())
    }

    /// What was read and not consumed, emptying the buffer.
    pub fn take_buffered(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// The next piece of a body, decoded from its framing; `None` once it is complete.
    pub async fn next_body_chunk(&mut self, state: &mut Body) -> io::Result<Option<Vec<u8>>> {
        loop {
            match state {
                Body::Done => return Ok(None),
                Body::Length(0) => *state = Body::Done,
                Body::Length(left) => {
                    let want = usize::try_from(*left).unwrap_or(usize::MAX).min(CHUNK);
                    let data = self.read_some(want).await?;
                    if data.is_empty() {
                        return Err(eof());
                    }
                    *left = left.saturating_sub(u64::try_from(data.len()).unwrap_or(u64::MAX));
                    return Ok(Some(data));
                }
                Body::UntilClose => {
                    let data = self.read_some(CHUNK).await?;
                    if data.is_empty() {
                        *state = Body::Done;
                        return Ok(None);
                    }
                    return Ok(Some(data));
                }
                Body::Chunked {
                    remaining,
                    need_crlf,
                } => {
                    if *remaining > 0 {
                        let want = usize::try_from(*remaining).unwrap_or(usize::MAX).min(CHUNK);
                        let data = self.read_some(want).await?;
                        if data.is_empty() {
                            return Err(eof());
                        }
                        *remaining =
                            remaining.saturating_sub(u64::try_from(data.len()).unwrap_or(u64::MAX));
                        if *remaining == 0 {
                            *need_crlf = true;
                        }
                        return Ok(Some(data));
                    }
                    if *need_crlf {
                        if !self.read_line().await?.is_empty() {
                            return Err(bad("chunk not followed by CRLF"));
                        }
                        *need_crlf = false;
                    }
                    let line = self.read_line().await?;
                    let line = String::from_utf8_lossy(&line);
                    let size = line.split(';').next().unwrap_or_default().trim();
                    let size = u64::from_str_radix(size, 16).map_err(|_| bad("bad chunk size"))?;
                    if size == 0 {
                        // Trailers, up to the blank line; dropped (nothing here uses them).
                        while !self.read_line().await?.is_empty() {}
                        *state = Body::Done;
                        return Ok(None);
                    }
                    *remaining = size;
                }
            }
        }
    }

    /// One whole chunk of a chunked body, chunk boundaries kept: `Some(data)`, or `None` for
    /// the last chunk (its trailers read and dropped).
    pub async fn read_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        let line = self.read_line().await?;
        let line = String::from_utf8_lossy(&line);
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| bad("bad chunk size"))?;
        if size == 0 {
            while !self.read_line().await?.is_empty() {}
            return Ok(None);
        }
        let data = self.read_exact_bytes(size).await?;
        if !self.read_line().await?.is_empty() {
            return Err(bad("chunk not followed by CRLF"));
        }
        Ok(Some(data))
    }

    /// A whole body, at most `limit` bytes (more is an error).
    pub async fn read_body(&mut self, mut state: Body, limit: u64) -> io::Result<Vec<u8>> {
        if let Body::Length(len) = state {
            if len > limit {
                return Err(bad("body too large"));
            }
        }
        let mut body = Vec::new();
        while let Some(chunk) = self.next_body_chunk(&mut state).await? {
            body.extend_from_slice(&chunk);
            if u64::try_from(body.len()).unwrap_or(u64::MAX) > limit {
                return Err(bad("body too large"));
            }
        }
        Ok(body)
    }
}

/// The request head at the start of `buf` once it is complete (`None` while it is not); stray
/// CRLFs before it count as part of it.
pub fn parse_request_head(buf: &[u8]) -> io::Result<Option<RequestHead>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req
        .parse(buf)
        .map_err(|e| bad(&format!("request head: {e}")))?
    {
        httparse::Status::Partial => Ok(None),
        httparse::Status::Complete(len) => Ok(Some(RequestHead {
            raw: buf[..len].to_vec(),
            method: req.method.unwrap_or_default().to_owned(),
            target: req.path.unwrap_or_default().to_owned(),
            minor_version: req.version.unwrap_or(1),
            headers: Headers::from_httparse(req.headers),
        })),
    }
}

/// The response head at the start of `buf` once it is complete (`None` while it is not).
pub fn parse_response_head(buf: &[u8]) -> io::Result<Option<ResponseHead>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    match resp
        .parse(buf)
        .map_err(|e| bad(&format!("response head: {e}")))?
    {
        httparse::Status::Partial => Ok(None),
        httparse::Status::Complete(len) => Ok(Some(ResponseHead {
            raw: buf[..len].to_vec(),
            status: resp.code.unwrap_or_default(),
            reason: resp.reason.unwrap_or_default().to_owned(),
            minor_version: resp.version.unwrap_or(1),
            headers: Headers::from_httparse(resp.headers),
        })),
    }
}

/// The reason phrase this support code sends with `status`.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        411 => "Length Required",
        413 => "Payload Too Large",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}

/// A head: `start` (request or status line), then `headers`, then the blank line.
pub fn head(start: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = format!("{start}\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// A complete response: status line, `headers`, `Content-Length: body.len()` after them, and
/// the body.
pub fn response(status: u16, reason: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let length = body.len().to_string();
    let mut all = headers.to_vec();
    all.push(("Content-Length", &length));
    let mut out = head(&format!("HTTP/1.1 {status} {reason}"), &all);
    out.extend_from_slice(body);
    out
}

/// A complete request: request line, `headers`, `Content-Length` after them when there is a
/// body, and the body.
pub fn request(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let length = body.len().to_string();
    let mut all = headers.to_vec();
    if !body.is_empty() {
        all.push(("Content-Length", &length));
    }
    let mut out = head(&format!("{method} {target} HTTP/1.1"), &all);
    out.extend_from_slice(body);
    out
}

/// One chunk of a chunked body (`data` must not be empty: that is the last chunk).
pub fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// The last chunk of a chunked body, with no trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// A reqwest client builder for tests that speak HTTP to the fakes directly. The crate builds
/// rustls without picking a crypto provider for reqwest (it hands reqwest its own config), and
/// with `--all-features` both ring and aws-lc-rs are compiled in, so reqwest's own default
/// would panic ("No rustls crypto provider is configured"): the test process installs ring
/// first, as an application in that position would.
pub fn reqwest_builder() -> reqwest::ClientBuilder {
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}
