//! Accepting TCP connections and routing their requests: Engine.IO request verification with
//! Node's error answers, polling, streaming, WebSocket upgrades, and where each fault switch
//! bites.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::engine::{Engine, Layer};
use super::engine_io::EngineIoLayer;
use super::http::{self, ReadError, Request, Response};
use super::socket::SioConn;
use super::streaming::{self, StreamEnd};
use super::{lock, ws, Inner};
use crate::proto::engineio::EngineVersion;
use crate::Transport;

/// What runs on top of a new session: the Socket.IO layer, or nothing but the message hook.
fn new_layer(inner: &Inner) -> Arc<dyn Layer> {
    if inner.config.engine_io_only {
        Arc::new(EngineIoLayer)
    } else {
        SioConn::new()
    }
}

/// Whether a handshake's `EIO` is one this server speaks. engine.io 3 does not look at it;
/// engine.io 4+ wants exactly `4`.
fn version_accepted(inner: &Inner, req: &Request) -> bool {
    match inner.config.engine_version {
        EngineVersion::V3 => true,
        _ => req.param("EIO") == Some("4"),
    }
}

/// Accepts connections until the listener is taken away (stop, drop or restart).
pub(crate) async fn accept_loop(inner: Arc<Inner>) {
    loop {
        let accepted = poll_fn(|cx| match lock(&inner.listener).as_ref() {
            Some(listener) => listener.poll_accept(cx).map(Some),
            None => Poll::Ready(None),
        })
        .await;
        match accepted {
            None => return,
            Some(Ok((stream, _))) => {
                if inner.faults.is_refusing() {
                    let _ = stream.set_zero_linger();
                    drop(stream);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                inner.spawn(connection(stream, inner.clone()));
            }
            // Transient accept errors (e.g. too many open files): keep serving.
            Some(Err(_)) => tokio::task::yield_now().await,
        }
    }
}

/// How a connection ended.
enum End {
    Close,
    Reset,
}

async fn connection(mut stream: TcpStream, inner: Arc<Inner>) {
    let mut kill = inner.faults.kill.subscribe();
    kill.mark_unchanged();
    let end = tokio::select! {
        end = serve(&mut stream, &inner) => end,
        _ = kill.changed() => End::Reset,
    };
    if let End::Reset = end {
        let _ = stream.set_zero_linger();
    }
}

async fn serve(stream: &mut TcpStream, inner: &Arc<Inner>) -> End {
    let mut buf = Vec::new();
    loop {
        let req = match http::read_request(stream, &mut buf, inner.config.max_payload).await {
            Ok(req) => req,
            Err(ReadError::Closed) => return End::Close,
            Err(ReadError::Malformed) => {
                let _ = http::write_response(stream, &Response::empty(400).closing()).await;
                return End::Close;
            }
            Err(ReadError::TooLarge) => {
                let _ = http::write_response(stream, &Response::empty(413).closing()).await;
                // Closing with the body unread would reset the connection before the client
                // reads the 413: half-close, then discard what is still coming for a while.
                let _ = stream.shutdown().await;
                let mut sink = [0u8; 4096];
                let drain = async { while let Ok(1..) = stream.read(&mut sink).await {} };
                let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
                return End::Close;
            }
        };
        if !path_matches(&inner.config.path, &req.path) {
            let r = Response::new(404, "text/plain", "Not Found");
            if http::write_response(stream, &r).await.is_err() || !req.keep_alive() {
                return End::Close;
            }
            continue;
        }
        if req.is_websocket_upgrade() {
            return upgrade(stream, buf, req, inner).await;
        }
        delay(inner).await;
        let cors = cors_headers(&req, inner);
        if req.method == "OPTIONS" && inner.config.cors_origin.is_some() {
            let mut r = Response::empty(204);
            let reflects_headers = req.header("access-control-request-headers").is_some();
            r.headers
                .extend(cors.into_iter().map(|(name, value)| match name {
                    // The `cors` middleware varies on the headers it reflects, too.
                    "Vary" if reflects_headers => {
                        (name, "Origin, Access-Control-Request-Headers".to_owned())
                    }
                    _ => (name, value),
                }));
            r.headers.extend(preflight_headers(&req));
            if http::write_response(stream, &r).await.is_err() || !req.keep_alive() {
                return End::Close;
            }
            continue;
        }
        let response = match route(&req, inner) {
            Routed::Answer(r) => r,
            Routed::Poll(guard) => match wait_poll(stream, &mut buf, guard).await {
                Some(r) => r,
                None => return End::Close,
            },
            Routed::Stream(guard) => {
                let keep_alive = req.keep_alive();
                match streaming::serve(stream, &mut buf, guard, inner, keep_alive, &cors).await {
                    StreamEnd::Complete if keep_alive => continue,
                    StreamEnd::Complete | StreamEnd::Gone => return End::Close,
                }
            }
        };
        let close = response.close || !req.keep_alive();
        let mut response = if close { response.closing() } else { response };
        response.headers.extend(cors);
        if http::write_response(stream, &response).await.is_err() || close {
            return End::Close;
        }
    }
}

/// The headers Node's `cors` middleware adds to every answer (none when CORS is off). `*`
/// reflects the request's `Origin`, as `origin: true` does, so that credentials are allowed.
fn cors_headers(req: &Request, inner: &Inner) -> Vec<(&'static str, String)> {
    let Some(origin) = inner.config.cors_origin.as_deref() else {
        if inner.config.engine_version == EngineVersion::V3 {
            // socket.io 2 (origins `*:*`) answers every polling request cross-origin.
            return match req.header("origin") {
                Some(origin) => vec![
                    ("Access-Control-Allow-Credentials", "true".to_owned()),
                    ("Access-Control-Allow-Origin", origin.to_owned()),
                ],
                None => vec![("Access-Control-Allow-Origin", "*".to_owned())],
            };
        }
        return Vec::new();
    };
    let allowed = match (origin, req.header("origin")) {
        ("*", Some(requested)) => requested.to_owned(),
        (origin, _) => origin.to_owned(),
    };
    vec![
        ("Access-Control-Allow-Origin", allowed),
        ("Vary", "Origin".to_owned()),
        ("Access-Control-Allow-Credentials", "true".to_owned()),
    ]
}

/// What the `cors` middleware adds to a preflight: its default methods and the requested
/// headers reflected.
fn preflight_headers(req: &Request) -> Vec<(&'static str, String)> {
    let mut headers = vec![(
        "Access-Control-Allow-Methods",
        "GET,HEAD,PUT,PATCH,POST,DELETE".to_owned(),
    )];
    if let Some(requested) = req.header("access-control-request-headers") {
        headers.push(("Access-Control-Allow-Headers", requested.to_owned()));
    }
    headers
}

/// Node matches the path as a prefix of the request target.
fn path_matches(path: &str, request_path: &str) -> bool {
    request_path.starts_with(path) || request_path == path.trim_end_matches('/')
}

async fn delay(inner: &Inner) {
    let delay = inner.faults.current_delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

/// Waits for a poll's packets while watching the connection: a client that closes it ends the
/// session ("poll connection closed prematurely").
async fn wait_poll(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    guard: super::engine::PollGuard,
) -> Option<Response> {
    let response = guard.response();
    tokio::pin!(response);
    loop {
        tokio::select! {
            r = &mut response => return Some(r),
            n = stream.read_buf(buf) => match n {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            },
        }
    }
}

enum Routed {
    Answer(Response),
    Poll(super::engine::PollGuard),
    Stream(super::engine::StreamGuard),
}

/// Engine.IO's `verify` for plain HTTP requests, then the polling or streaming transport.
fn route(req: &Request, inner: &Arc<Inner>) -> Routed {
    let answer = Routed::Answer;
    let transport = match req.param("transport") {
        Some("polling") if inner.config.polling_enabled => Transport::Polling,
        Some("websocket") if inner.config.websocket_enabled => Transport::WebSocket,
        Some("streaming") if inner.config.streaming_enabled => Transport::Streaming,
        _ => return answer(Response::engine_error(0)),
    };
    let engine = match req.param("sid") {
        Some(sid) if !sid.is_empty() => {
            let Some(engine) = lock(&inner.sessions).get(sid).cloned() else {
                return answer(Response::engine_error(1));
            };
            if engine.transport() != transport {
                return answer(Response::engine_error(3));
            }
            engine
        }
        _ => {
            if req.method != "GET" {
                return answer(Response::engine_error(2));
            }
            if transport == Transport::WebSocket {
                return answer(Response::engine_error(3));
            }
            if !version_accepted(inner, req) {
                return answer(Response::engine_error(5));
            }
            Engine::open(inner, transport, req, new_layer(inner))
        }
    };
    match req.method.as_str() {
        "GET" if transport == Transport::Streaming => match engine.attach_stream() {
            Ok(guard) => Routed::Stream(guard),
            Err(r) => answer(r),
        },
        "GET" => match engine.poll() {
            Ok(guard) => Routed::Poll(guard),
            Err(r) => answer(r),
        },
        "POST" => {
            let binary = req.header("content-type") == Some("application/octet-stream");
            answer(engine.post(&req.body, binary))
        }
        _ => answer(Response::empty(500)),
    }
}

/// Writes the plain-text 400 Node's `abortUpgrade` sends and closes.
async fn abort_upgrade(stream: &mut TcpStream, code: u8) -> End {
    let message = http::error_message(code);
    let raw = format!(
        "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-type: text/html\r\nContent-Length: {}\r\n\r\n{message}",
        message.len()
    );
    let _ = stream.write_all(raw.as_bytes()).await;
    let _ = stream.flush().await;
    End::Close
}

async fn upgrade(stream: &mut TcpStream, rest: Vec<u8>, req: Request, inner: &Arc<Inner>) -> End {
    let faults = &inner.faults;
    // Faults first: they model what sits in front of the server.
    if faults.is_reset_on_upgrade() {
        return End::Reset;
    }
    if let Some(status) = faults.rejected_websocket() {
        let body = http::reason(status);
        let r = Response::new(status, "text/plain", body).closing();
        let _ = http::write_response(stream, &r).await;
        return End::Close;
    }
    if faults.is_websocket_no_upgrade() {
        let r = Response::new(200, "text/html", "<html><body>proxy</body></html>").closing();
        let _ = http::write_response(stream, &r).await;
        return End::Close;
    }
    delay(inner).await;
    let Some(accept) = ws::accept_response(&req) else {
        let _ = http::write_response(stream, &Response::empty(400).closing()).await;
        return End::Close;
    };
    if faults.is_black_hole_websocket() {
        let _ = stream.write_all(&accept).await;
        let _ = stream.flush().await;
        let mut sink = [0u8; 4096];
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
        return End::Close;
    }
    if !(req.param("transport") == Some("websocket") && inner.config.websocket_enabled) {
        return abort_upgrade(stream, 0).await;
    }
    let max = inner.config.max_payload;
    match req.param("sid").filter(|s| !s.is_empty()) {
        Some(sid) => {
            let Some(engine) = lock(&inner.sessions).get(sid).cloned() else {
                return abort_upgrade(stream, 1).await;
            };
            let Some(mut ws) = ws::wrap(&mut *stream, &accept, rest, max).await else {
                return End::Close;
            };
            ws::run_probe(engine, &mut ws, inner.config.upgrade_timeout).await;
        }
        None => {
            // Node answers a wrong version after the 101 with a raw HTTP 400 on the socket;
            // answering before the upgrade tells the client the same thing more cleanly.
            if !version_accepted(inner, &req) {
                return abort_upgrade(stream, 5).await;
            }
            let Some(mut ws) = ws::wrap(&mut *stream, &accept, rest, max).await else {
                return End::Close;
            };
            let engine = Engine::open(inner, Transport::WebSocket, &req, new_layer(inner));
            ws::run_session(engine, &mut ws).await;
        }
    }
    End::Close
}
