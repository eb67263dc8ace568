//! The control API of `sio mock`: JSON over HTTP/1.1, one request per connection, on top of
//! the public [`MockServer`] API. Small on purpose: a test driver in any language needs only
//! an HTTP client.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sio_client::mock::{MockConnection, MockServer, MockSocket, ReceivedEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::json::{args_to_json, value_to_args};

/// Largest request head read, bytes.
const MAX_HEAD: usize = 64 * 1024;
/// Largest request body read, bytes.
const MAX_BODY: usize = 16 * 1024 * 1024;
/// How long `/received?wait=N` and acknowledged emits wait when not told.
const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// A response: status and JSON body.
type Reply = (u16, Value);

fn error(status: u16, message: impl Into<String>) -> Reply {
    (status, json!({ "error": message.into() }))
}

/// Serves the control API until the process ends.
pub async fn serve(listener: TcpListener, server: Arc<MockServer>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let server = server.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(stream, &server).await {
                tracing::debug!("control connection: {e}");
            }
        });
    }
}

async fn handle(mut stream: TcpStream, server: &MockServer) -> std::io::Result<()> {
    let reply = match read_request(&mut stream).await? {
        Ok((method, target, body)) => route(server, &method, &target, &body).await,
        Err(reply) => reply,
    };
    let (status, body) = reply;
    let body = body.to_string();
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// Method, target and body of one request, or the error reply for a malformed one.
async fn read_request(
    stream: &mut TcpStream,
) -> std::io::Result<Result<(String, String, Vec<u8>), Reply>> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        if buf.len() > MAX_HEAD {
            return Ok(Err(error(413, "request head too large")));
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split_whitespace();
    let (Some(method), Some(target)) = (request_line.next(), request_line.next()) else {
        return Ok(Err(error(400, "malformed request line")));
    };
    let mut length = 0usize;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                match value.trim().parse() {
                    Ok(n) => length = n,
                    Err(_) => return Ok(Err(error(400, "bad Content-Length"))),
                }
            } else if name.trim().eq_ignore_ascii_case("transfer-encoding") {
                return Ok(Err(error(400, "send a Content-Length, not chunks")));
            }
        }
    }
    if length > MAX_BODY {
        return Ok(Err(error(413, "request body too large")));
    }
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = vec![0u8; (length - body.len()).min(64 * 1024)];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Ok(Ok((method.to_owned(), target.to_owned(), body)))
}

async fn route(server: &MockServer, method: &str, target: &str, body: &[u8]) -> Reply {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(value) => value,
            Err(e) => return error(400, format!("the body is not JSON: {e}")),
        }
    };
    match (method, path) {
        ("GET", "/sockets") => {
            let mut sockets: Vec<Value> = server.sockets().iter().map(socket_json).collect();
            sockets.extend(server.connections().iter().map(connection_json));
            (200, Value::Array(sockets))
        }
        ("GET", "/received") => received(server, query).await,
        ("POST", "/received/clear") => {
            server.clear_received();
            (200, json!({}))
        }
        ("POST", "/emit") => emit(server, &body).await,
        ("POST", "/faults") => fault(server, &body),
        ("POST", "/faults/clear") => {
            server.faults().clear();
            (200, json!({}))
        }
        ("POST", "/disconnect") => disconnect(server, &body),
        ("POST", "/restart") => match server.restart().await {
            Ok(()) => (200, json!({})),
            Err(e) => error(500, format!("restart failed: {e}")),
        },
        (
            _,
            "/sockets" | "/received" | "/received/clear" | "/emit" | "/faults" | "/faults/clear"
            | "/disconnect" | "/restart",
        ) => error(404, format!("{method} {path}: wrong method")),
        _ => error(404, format!("no such endpoint: {method} {path}")),
    }
}

fn socket_json(socket: &MockSocket) -> Value {
    let mut rooms: Vec<String> = socket.rooms().into_iter().collect();
    rooms.sort();
    json!({
        "id": socket.id(),
        "namespace": socket.namespace(),
        "connection_id": socket.connection_id(),
        "auth": socket.auth(),
        "transport": socket.transport().as_str(),
        "rooms": rooms,
    })
}

/// A plain Engine.IO session, in the shape of a socket.
fn connection_json(connection: &MockConnection) -> Value {
    json!({
        "id": connection.id(),
        "namespace": "",
        "connection_id": connection.id(),
        "auth": null,
        "transport": connection.transport().as_str(),
        "rooms": [],
    })
}

fn event_json(event: &ReceivedEvent) -> Value {
    json!({
        "socket": event.socket_id,
        "connection_id": event.connection_id,
        "namespace": event.namespace,
        "event": event.event,
        "args": args_to_json(&event.args),
        "ack_id": event.ack_id,
        "transport": event.transport.as_str(),
    })
}

fn wait_time(value: Option<u64>) -> Duration {
    value.map(Duration::from_millis).unwrap_or(DEFAULT_WAIT)
}

async fn received(server: &MockServer, query: &str) -> Reply {
    let mut wait = None;
    let mut timeout = None;
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let number = match value.parse::<u64>() {
            Ok(n) => n,
            Err(_) => return error(400, format!("{key} needs a number, got {value:?}")),
        };
        match key.as_ref() {
            "wait" => wait = Some(number),
            "timeout_ms" => timeout = Some(number),
            other => return error(400, format!("unknown parameter {other:?}")),
        }
    }
    let events = match wait {
        None => server.received(),
        Some(n) => {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            match server.wait_for_events(n, wait_time(timeout)).await {
                Ok(events) => events,
                Err(e) => {
                    let seen: Vec<Value> = server.received().iter().map(event_json).collect();
                    return (
                        408,
                        json!({ "error": format!("waiting for {n} events: {e}"), "received": seen }),
                    );
                }
            }
        }
    };
    (200, Value::Array(events.iter().map(event_json).collect()))
}

fn str_field<'a>(body: &'a Value, name: &str) -> Result<Option<&'a str>, Reply> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(error(400, format!("{name:?} must be a string"))),
    }
}

fn find_socket(server: &MockServer, id: &str) -> Result<MockSocket, Reply> {
    server
        .sockets()
        .into_iter()
        .find(|s| s.id() == id)
        .ok_or_else(|| error(404, format!("no connected socket {id:?}")))
}

async fn emit(server: &MockServer, body: &Value) -> Reply {
    match try_emit(server, body).await {
        Ok(reply) | Err(reply) => reply,
    }
}

/// `/emit` on a plain Engine.IO server: `{"message": "text", "socket"?: id}`.
fn engine_message(server: &MockServer, body: &Value) -> Result<Reply, Reply> {
    let message = str_field(body, "message")?.ok_or_else(|| {
        error(
            400,
            "a plain Engine.IO server sends {\"message\": \"text\"}",
        )
    })?;
    let socket = str_field(body, "socket")?;
    let targets: Vec<MockConnection> = server
        .connections()
        .into_iter()
        .filter(|c| socket.is_none_or(|id| c.id() == id))
        .collect();
    if let (Some(id), true) = (socket, targets.is_empty()) {
        return Err(error(404, format!("no open session {id:?}")));
    }
    for connection in &targets {
        connection.send_text(message);
    }
    Ok((200, json!({ "sent": targets.len() })))
}

async fn try_emit(server: &MockServer, body: &Value) -> Result<Reply, Reply> {
    if server.is_engine_io() {
        return engine_message(server, body);
    }
    let event = str_field(body, "event")?.ok_or_else(|| error(400, "\"event\" is needed"))?;
    let namespace = str_field(body, "namespace")?.unwrap_or("/");
    let args = match body.get("args") {
        None | Some(Value::Null) => sio_client::Args::new(),
        Some(value) => value_to_args(value).map_err(|e| error(400, format!("\"args\": {e}")))?,
    };
    let ack = body.get("ack").and_then(Value::as_bool).unwrap_or(false);
    let timeout = wait_time(body.get("timeout_ms").and_then(Value::as_u64));
    let targets: Vec<MockSocket> = match (str_field(body, "socket")?, str_field(body, "room")?) {
        (Some(id), _) => vec![find_socket(server, id)?],
        (None, Some(room)) => server.to_room(namespace, room).sockets().to_vec(),
        (None, None) => server
            .sockets()
            .into_iter()
            .filter(|s| s.namespace() == namespace)
            .collect(),
    };
    if !ack {
        for socket in &targets {
            socket.emit(event, args.clone());
        }
        return Ok((200, json!({ "sent": targets.len() })));
    }
    let acks = futures_util::future::join_all(targets.iter().map(|socket| {
        let args = args.clone();
        async move {
            match socket.emit_with_ack(event, args, timeout).await {
                Ok(reply) => json!({ "socket": socket.id(), "args": args_to_json(&reply) }),
                Err(e) => json!({ "socket": socket.id(), "error": e.to_string() }),
            }
        }
    }))
    .await;
    let mut reply = json!({ "sent": targets.len(), "acks": acks });
    // One target, the common case: its answer at the top too.
    if let [one] = acks.as_slice() {
        if let Some(args) = one.get("args") {
            reply["args"] = args.clone();
        } else if let Some(e) = one.get("error") {
            return Ok((408, json!({ "error": e, "sent": 1, "acks": acks })));
        }
    }
    Ok((200, reply))
}

fn fault(server: &MockServer, body: &Value) -> Reply {
    let Some(name) = body.get("name").and_then(Value::as_str) else {
        return error(400, "\"name\" is needed");
    };
    let value = body.get("value");
    let faults = server.faults();
    // A switch given no value is turned on.
    let on = value.and_then(Value::as_bool).unwrap_or(true);
    match name {
        "reject_websocket" => match value {
            None | Some(Value::Null | Value::Bool(false)) => faults.reject_websocket(None),
            Some(v) => match v.as_u64().and_then(|n| u16::try_from(n).ok()) {
                Some(status) if (100..=599).contains(&status) => {
                    faults.reject_websocket(Some(status))
                }
                _ => return error(400, "reject_websocket takes an HTTP status or null"),
            },
        },
        "delay" => match value.and_then(Value::as_u64) {
            Some(ms) => faults.delay(Duration::from_millis(ms)),
            None => return error(400, "delay takes milliseconds"),
        },
        "drop_all_connections" => faults.drop_all_connections(),
        "websocket_no_upgrade"
        | "reset_on_upgrade"
        | "black_hole_websocket"
        | "stop_pings"
        | "refuse_connections"
        | "buffer_streaming"
            if !matches!(value, None | Some(Value::Null | Value::Bool(_))) =>
        {
            return error(400, format!("{name} takes true or false"))
        }
        "websocket_no_upgrade" => faults.websocket_no_upgrade(on),
        "reset_on_upgrade" => faults.reset_on_upgrade(on),
        "black_hole_websocket" => faults.black_hole_websocket(on),
        "stop_pings" => faults.stop_pings(on),
        "refuse_connections" => faults.refuse_connections(on),
        "buffer_streaming" => faults.buffer_streaming(on),
        other => return error(404, format!("no fault named {other:?}")),
    }
    (200, json!({}))
}

fn disconnect(server: &MockServer, body: &Value) -> Reply {
    match str_field(body, "socket") {
        Err(reply) => reply,
        Ok(None) => {
            let count = server.sockets().len() + server.connections().len();
            server.disconnect_all();
            (200, json!({ "disconnected": count }))
        }
        Ok(Some(id)) => match find_socket(server, id) {
            Ok(socket) => {
                socket.disconnect();
                (200, json!({ "disconnected": 1 }))
            }
            Err(reply) => reply,
        },
    }
}
