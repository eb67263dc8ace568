//! A minimal HTTP/1.1 server side: reads one request (request line, headers, a `Content-Length`
//! body) from a TCP stream and writes responses byte for byte. Hand-written rather than taken from
//! a framework because the fault switches need to decide, per request, whether to answer, upgrade,
//! stay silent or reset the TCP connection.

use std::collections::HashMap;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest request head (request line + headers) accepted.
const MAX_HEAD: usize = 64 * 1024;

/// One parsed request.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: HashMap<String, String>,
    /// HTTP/1.0 requests close the connection by default.
    http10: bool,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Request {
    /// The first header named `name` (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the header holds `token` in its comma-separated list (case-insensitive).
    fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Whether the connection stays open after the response.
    pub(crate) fn keep_alive(&self) -> bool {
        if self.http10 {
            self.header_has_token("connection", "keep-alive")
        } else {
            !self.header_has_token("connection", "close")
        }
    }

    /// Whether this asks for a WebSocket upgrade.
    pub(crate) fn is_websocket_upgrade(&self) -> bool {
        self.header_has_token("upgrade", "websocket")
            && self.header_has_token("connection", "upgrade")
    }

    /// A query parameter.
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }
}

/// Why no request could be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The peer closed the connection or the socket failed.
    Closed,
    /// The head is malformed or too large: answer 400 and close.
    Malformed,
    /// The declared body exceeds the limit: answer 413 and close.
    TooLarge,
}

/// Whether `start` can begin an HTTP request line: a method of capital letters, then a space.
/// Node's parser answers 400 at the first byte that cannot be HTTP (a TLS ClientHello's 0x16,
/// say) rather than waiting for a head that never ends; so does the mock, so that an
/// `https://` client to a plain port fails at once, as against Node.
fn could_be_request_line(start: &[u8]) -> bool {
    // Leading empty lines are allowed before a request (RFC 9112 §2.2).
    let start = start
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .map_or(&[][..], |i| &start[i..]);
    let method_len = start.iter().position(|&b| b == b' ').unwrap_or(start.len());
    method_len <= 16 && start[..method_len].iter().all(u8::is_ascii_uppercase)
}

/// Reads the next request. `buf` holds bytes already read from the stream (pipelined requests or
/// bytes read while a poll was pending) and keeps whatever follows this request.
pub(crate) async fn read_request<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    max_body: usize,
) -> Result<Request, ReadError> {
    let head_end = loop {
        if let Some(pos) = find_head_end(buf) {
            break pos;
        }
        if buf.len() > MAX_HEAD || !could_be_request_line(buf) {
            return Err(ReadError::Malformed);
        }
        let n = stream.read_buf(buf).await.map_err(|_| ReadError::Closed)?;
        if n == 0 {
            return Err(ReadError::Closed);
        }
    };
    let head = std::str::from_utf8(buf.get(..head_end).ok_or(ReadError::Malformed)?)
        .map_err(|_| ReadError::Malformed)?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().ok_or(ReadError::Malformed)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Malformed);
    };
    if !version.starts_with("HTTP/1.") {
        return Err(ReadError::Malformed);
    }
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(ReadError::Malformed)?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    let mut request = Request {
        method: method.to_owned(),
        path: path.to_owned(),
        query: url::form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
        http10: version == "HTTP/1.0",
        headers,
        body: Vec::new(),
    };
    if request.header("transfer-encoding").is_some() {
        // Chunked uploads are not needed by socket.io clients; refusing them keeps this small.
        return Err(ReadError::Malformed);
    }
    let length = match request.header("content-length") {
        Some(v) => v.parse::<usize>().map_err(|_| ReadError::Malformed)?,
        None => 0,
    };
    if length > max_body {
        return Err(ReadError::TooLarge);
    }
    let body_start = head_end.saturating_add(4);
    let body_end = body_start.saturating_add(length);
    while buf.len() < body_end {
        let n = stream.read_buf(buf).await.map_err(|_| ReadError::Closed)?;
        if n == 0 {
            return Err(ReadError::Closed);
        }
    }
    request.body = buf.get(body_start..body_end).unwrap_or_default().to_vec();
    buf.drain(..body_end);
    Ok(request)
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// A response to write.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Vec<u8>,
    /// Close the connection after writing.
    pub(crate) close: bool,
}

impl Response {
    /// A response with a body of the given content type.
    pub(crate) fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type", content_type.to_owned())],
            body: body.into(),
            close: false,
        }
    }

    /// A response without body.
    pub(crate) fn empty(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            close: false,
        }
    }

    /// An Engine.IO error: `{"code":N,"message":"…"}` with 400 (403 for code 4), as Node sends.
    pub(crate) fn engine_error(code: u8) -> Response {
        let status = if code == 4 { 403 } else { 400 };
        let body = serde_json::json!({ "code": code, "message": error_message(code) }).to_string();
        Response::new(status, "application/json", body)
    }

    /// Marks the connection to close after this response.
    pub(crate) fn closing(mut self) -> Response {
        self.close = true;
        self
    }

    /// Serialises status line, headers and body.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        out.push_str(if self.close {
            "Connection: close\r\n\r\n"
        } else {
            "Connection: keep-alive\r\n\r\n"
        });
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// Writes a response and flushes.
pub(crate) async fn write_response<S: AsyncWrite + Unpin>(
    stream: &mut S,
    response: &Response,
) -> std::io::Result<()> {
    stream.write_all(&response.to_bytes()).await?;
    stream.flush().await
}

/// Engine.IO's error messages, by code.
pub(crate) fn error_message(code: u8) -> &'static str {
    match code {
        0 => "Transport unknown",
        1 => "Session ID unknown",
        2 => "Bad handshake method",
        3 => "Bad request",
        4 => "Forbidden",
        _ => "Unsupported protocol version",
    }
}

/// Reason phrase for the statuses this server writes.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        413 => "Payload Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_pipelined_requests_with_bodies() {
        let raw = b"POST /socket.io/?EIO=4&sid=a%2Bb HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nConnection: close\r\n\r\n";
        let mut stream: &[u8] = raw;
        let mut buf = Vec::new();
        let first = read_request(&mut stream, &mut buf, 10).await.unwrap();
        assert_eq!(first.method, "POST");
        assert_eq!(first.param("sid"), Some("a+b"));
        assert_eq!(first.body, b"abc");
        assert!(first.keep_alive());
        let second = read_request(&mut stream, &mut buf, 10).await.unwrap();
        assert_eq!(second.path, "/");
        assert!(!second.keep_alive());
        assert!(matches!(
            read_request(&mut stream, &mut buf, 10).await,
            Err(ReadError::Closed)
        ));
    }

    #[tokio::test]
    async fn refuses_bodies_over_the_limit_and_garbage() {
        let mut stream: &[u8] = b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n";
        let mut buf = Vec::new();
        assert!(matches!(
            read_request(&mut stream, &mut buf, 10).await,
            Err(ReadError::TooLarge)
        ));
        let mut stream: &[u8] = b"NONSENSE\r\n\r\n";
        let mut buf = Vec::new();
        assert!(matches!(
            read_request(&mut stream, &mut buf, 10).await,
            Err(ReadError::Malformed)
        ));
    }
}
