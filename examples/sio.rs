//! `sio`: a line-oriented socket.io client for the terminal and for scripts.
//!
//! ```text
//! cargo run --example sio -- URL [--namespace NS] [--auth JSON] [--header K:V]...
//!                               [--transport websocket|streaming|polling|upgrade|auto] [--eio 3|4|auto]
//! cargo run --example sio --features mock-server -- --mock [same options]
//! ```
//!
//! Commands, one per line on stdin:
//!
//! ```text
//! emit EVENT [JSON_ARGS]     JSON_ARGS: a JSON array is the argument list, any other JSON
//! ack EVENT [JSON_ARGS]      value is one argument; {"_binary":"<base64>"} is a binary value
//! reply ID [JSON_ARGS]       answers the server's acknowledgement request number ID
//! quit
//! ```
//!
//! Output, one JSON object per line on stdout:
//!
//! ```text
//! {"type":"connected","namespace":"/","transport":"websocket"}
//! {"type":"event","event":"news","args":[1,{"_binary":"AAEC"}]}   (+ "ack_id" when asked)
//! {"type":"ack","event":"sum","args":[6]}
//! {"type":"transport","from":"polling","to":"websocket"}
//! {"type":"error","message":"..."}
//! {"type":"disconnected","reason":"io server disconnect"}
//! ```
//!
//! A bad command line prints an `error` line and the program goes on. It exits 0 after `quit`,
//! at the end of stdin, or once the connection is gone; 1 with a message on stderr when it
//! cannot connect; 2 on bad arguments. `--mock` starts the crate's mock server in-process
//! (events `echo` and `ack`, namespace `/admin` with token `secret`) and prints its URL on
//! stderr: it needs `--features mock-server`.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{json, Value};
use sio_client::proto::ProtocolError;
use sio_client::{AckSender, Args, Client, EngineVersion, Event, Transport};

const USAGE: &str = "usage: sio URL [--namespace NS] [--auth JSON] [--header K:V]... \
[--transport websocket|streaming|polling|upgrade|auto] [--eio 3|4|auto] [--timeout SECS]
       sio --mock [options]   (needs --features mock-server)";

/// How long `ack` waits for the server's answer.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

struct Options {
    url: Option<String>,
    mock: bool,
    namespace: String,
    auth: Option<Value>,
    headers: Vec<(String, String)>,
    transports: Vec<Transport>,
    eio: EngineVersion,
    timeout: Duration,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        url: None,
        mock: false,
        namespace: "/".to_owned(),
        auth: None,
        headers: Vec::new(),
        transports: vec![
            Transport::WebSocket,
            Transport::Streaming,
            Transport::Polling,
        ],
        eio: EngineVersion::V4,
        timeout: Duration::from_secs(20),
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--mock" => options.mock = true,
            "--namespace" | "-n" => options.namespace = value("--namespace")?,
            "--auth" => {
                let text = value("--auth")?;
                let auth = serde_json::from_str(&text)
                    .map_err(|e| format!("--auth is not JSON ({e}): {text}"))?;
                options.auth = Some(auth);
            }
            "--header" | "-H" => {
                let header = value("--header")?;
                let (name, val) = header
                    .split_once(':')
                    .ok_or(format!("--header needs NAME:VALUE, got {header:?}"))?;
                options
                    .headers
                    .push((name.trim().to_owned(), val.trim().to_owned()));
            }
            "--transport" | "-t" => {
                options.transports = match value("--transport")?.as_str() {
                    "websocket" => vec![Transport::WebSocket],
                    "polling" => vec![Transport::Polling],
                    "streaming" => vec![Transport::Streaming],
                    // The JS client's way: start on polling, then upgrade to WebSocket.
                    "upgrade" => vec![Transport::Polling, Transport::WebSocket],
                    "auto" => vec![
                        Transport::WebSocket,
                        Transport::Streaming,
                        Transport::Polling,
                    ],
                    other => return Err(format!("unknown transport {other:?}")),
                }
            }
            "--eio" => {
                options.eio = match value("--eio")?.as_str() {
                    "4" => EngineVersion::V4,
                    "3" => EngineVersion::V3,
                    // Detects a socket.io 2 server and switches to 3.
                    "auto" => EngineVersion::Auto,
                    other => return Err(format!("--eio must be 3, 4 or auto, got {other:?}")),
                }
            }
            "--timeout" => {
                let text = value("--timeout")?;
                let secs: f64 = text
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0)
                    .ok_or(format!("--timeout needs a positive number, got {text:?}"))?;
                options.timeout = Duration::from_secs_f64(secs);
            }
            "--help" | "-h" => return Err(String::new()),
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            url if options.url.is_none() => options.url = Some(url.to_owned()),
            extra => return Err(format!("unexpected argument {extra:?}")),
        }
    }
    if options.url.is_some() == options.mock {
        return Err("give either a URL or --mock".to_owned());
    }
    Ok(options)
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("sio: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Kept alive for the whole run when --mock is given.
    let (_server, url) = match server_url(&options) {
        Ok(pair) => pair,
        Err(message) => {
            eprintln!("sio: {message}");
            return ExitCode::from(2);
        }
    };

    let pending_acks: Arc<Mutex<HashMap<u64, AckSender>>> = Arc::default();
    let mut builder = Client::builder(url.clone())
        .namespace(options.namespace.clone())
        .transports(options.transports.clone())
        .protocol_version(options.eio)
        .timeout(options.timeout);
    if let Some(auth) = &options.auth {
        builder = builder.auth(auth);
    }
    for (name, value) in &options.headers {
        builder = builder.extra_header(name, value);
    }
    let client = match builder.connect() {
        Ok(client) => client,
        Err(error) => {
            eprintln!("sio: cannot connect to {url}: {error}");
            if matches!(
                error,
                sio_client::Error::Protocol(ProtocolError::Socketio2Server { .. })
            ) {
                eprintln!("sio: for a socket.io 2 server, pass --eio 3 (or --eio auto)");
            }
            return ExitCode::from(1);
        }
    };

    // Events are printed from their own thread while the main one reads stdin; when the
    // connection is gone for good the stream ends and so does the program.
    let (done_tx, done_rx) = mpsc::channel();
    {
        let client = client.clone();
        let pending_acks = pending_acks.clone();
        std::thread::spawn(move || {
            for event in client.events() {
                print_event(event, &pending_acks);
            }
            let _ = done_tx.send(());
            std::process::exit(0);
        });
    }

    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        match run_command(&client, line.trim(), &pending_acks) {
            Ok(Flow::Continue) => {}
            Ok(Flow::Quit) => break,
            Err(message) => print_line(&[("type", json!("error")), ("message", json!(message))]),
        }
    }
    client.disconnect();
    // Let the event thread print the disconnect before leaving.
    let _ = done_rx.recv_timeout(Duration::from_secs(5));
    ExitCode::SUCCESS
}

/// The URL to connect to, starting the mock server first with `--mock`.
#[cfg(feature = "mock-server")]
fn server_url(options: &Options) -> Result<(Option<sio_client::mock::MockServer>, String), String> {
    if !options.mock {
        return Ok((None, options.url.clone().unwrap_or_default()));
    }
    let ack =
        |_: &sio_client::mock::MockSocket, args: Args, ack: Option<sio_client::mock::MockAck>| {
            if let Some(ack) = ack {
                ack.send(args);
            }
        };
    let server = sio_client::mock::MockServer::builder()
        .on("/", "echo", |socket, args, _| socket.emit("echo", args))
        .on("/", "ack", ack)
        .on("/admin", "echo", |socket, args, _| {
            socket.emit("echo", args)
        })
        .on("/admin", "ack", ack)
        .connect_guard("/admin", |auth| {
            match auth.and_then(|a| a.get("token")).and_then(Value::as_str) {
                Some("secret") => Ok(()),
                _ => Err(("not authorized".to_owned(), None)),
            }
        })
        .start_background()
        .map_err(|e| format!("cannot start the mock server: {e}"))?;
    let url = server.url();
    eprintln!("sio: mock socket.io server at {url}");
    Ok((Some(server), url))
}

#[cfg(not(feature = "mock-server"))]
fn server_url(options: &Options) -> Result<((), String), String> {
    if options.mock {
        return Err(
            "--mock needs the mock server: cargo run --example sio --features mock-server -- --mock"
                .to_owned(),
        );
    }
    Ok(((), options.url.clone().unwrap_or_default()))
}

enum Flow {
    Continue,
    Quit,
}

fn run_command(
    client: &Client,
    line: &str,
    pending_acks: &Mutex<HashMap<u64, AckSender>>,
) -> Result<Flow, String> {
    let (command, rest) = split_word(line);
    match command {
        "" => Ok(Flow::Continue),
        "quit" | "exit" => Ok(Flow::Quit),
        "emit" => {
            let (event, json) = split_word(rest);
            let args = parse_args_json(event, json)?;
            client.emit(event, args).map_err(|e| e.to_string())?;
            Ok(Flow::Continue)
        }
        "ack" => {
            let (event, json) = split_word(rest);
            let args = parse_args_json(event, json)?;
            let reply = client
                .emit_with_ack(event, args, ACK_TIMEOUT)
                .map_err(|e| format!("ack {event}: {e}"))?;
            print_line(&[
                ("type", json!("ack")),
                ("event", json!(event)),
                ("args", args_to_json(&reply)),
            ]);
            Ok(Flow::Continue)
        }
        "reply" => {
            let (id, json) = split_word(rest);
            let id: u64 = id
                .parse()
                .map_err(|_| format!("reply needs an ack id, got {id:?}"))?;
            let args = parse_args_json("reply", json)?;
            let ack = lock(pending_acks)
                .remove(&id)
                .ok_or(format!("no acknowledgement {id} is waiting"))?;
            ack.send_args(args).map_err(|e| e.to_string())?;
            Ok(Flow::Continue)
        }
        other => Err(format!(
            "unknown command {other:?}: use emit EVENT [JSON], ack EVENT [JSON], reply ID [JSON] or quit"
        )),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The first word of `text` and the rest, both trimmed.
fn split_word(text: &str) -> (&str, &str) {
    let text = text.trim();
    match text.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim()),
        None => (text, ""),
    }
}

/// Command-line JSON to arguments: an array is the list, anything else one argument, nothing
/// no argument; `{"_binary": base64}` objects become binary values.
fn parse_args_json(event: &str, json: &str) -> Result<Args, String> {
    if event.is_empty() {
        return Err("an event name is needed".to_owned());
    }
    if json.is_empty() {
        return Ok(Args::new());
    }
    let value: Value =
        serde_json::from_str(json).map_err(|e| format!("arguments are not JSON ({e}): {json}"))?;
    let values = match value {
        Value::Array(values) => values,
        one => vec![one],
    };
    let mut args = Args::new();
    for value in &values {
        args.push(&WithBinary(value)).map_err(|e| e.to_string())?;
    }
    Ok(args)
}

/// Serialises a JSON value, turning `{"_binary": base64}` objects into bytes.
struct WithBinary<'a>(&'a Value);

impl Serialize for WithBinary<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(map) => {
                if let (1, Some(Value::String(b64))) = (map.len(), map.get("_binary")) {
                    let bytes = BASE64
                        .decode(b64)
                        .map_err(|e| serde::ser::Error::custom(format!("bad _binary: {e}")))?;
                    return serializer.serialize_bytes(&bytes);
                }
                let mut out = serializer.serialize_map(Some(map.len()))?;
                for (key, value) in map {
                    out.serialize_entry(key, &WithBinary(value))?;
                }
                out.end()
            }
            Value::Array(values) => {
                let mut out = serializer.serialize_seq(Some(values.len()))?;
                for value in values {
                    out.serialize_element(&WithBinary(value))?;
                }
                out.end()
            }
            scalar => scalar.serialize(serializer),
        }
    }
}

/// Arguments to JSON, binary values as `{"_binary": base64}`.
fn args_to_json(args: &Args) -> Value {
    Value::Array(
        args.values()
            .iter()
            .map(|v| resolve_binary(v, args.attachments()))
            .collect(),
    )
}

fn resolve_binary(value: &Value, attachments: &[Bytes]) -> Value {
    match value {
        Value::Object(map) if map.get("_placeholder") == Some(&Value::Bool(true)) => {
            let data = map
                .get("num")
                .and_then(Value::as_u64)
                .and_then(|n| usize::try_from(n).ok())
                .and_then(|n| attachments.get(n));
            match data {
                Some(bytes) => json!({ "_binary": BASE64.encode(bytes) }),
                None => value.clone(),
            }
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), resolve_binary(v, attachments)))
                .collect(),
        ),
        Value::Array(values) => Value::Array(
            values
                .iter()
                .map(|v| resolve_binary(v, attachments))
                .collect(),
        ),
        scalar => scalar.clone(),
    }
}

fn print_event(event: Event, pending_acks: &Mutex<HashMap<u64, AckSender>>) {
    let line = match event {
        Event::Connected {
            namespace,
            transport,
        } => vec![
            ("type", json!("connected")),
            ("namespace", json!(namespace)),
            ("transport", json!(transport.as_str())),
        ],
        Event::Message {
            event, args, ack, ..
        } => {
            let mut line = vec![
                ("type", json!("event")),
                ("event", json!(event)),
                ("args", args_to_json(&args)),
            ];
            if let Some(ack) = ack {
                line.push(("ack_id", json!(ack.id())));
                lock(pending_acks).insert(ack.id(), ack);
            }
            line
        }
        Event::Disconnected { reason, .. } => vec![
            ("type", json!("disconnected")),
            ("reason", json!(reason.as_str())),
        ],
        Event::TransportChanged { from, to } => vec![
            ("type", json!("transport")),
            ("from", json!(from.as_str())),
            ("to", json!(to.as_str())),
        ],
        Event::Error(error) => vec![
            ("type", json!("error")),
            ("message", json!(error.to_string())),
        ],
        other => vec![
            ("type", json!("other")),
            ("debug", json!(format!("{other:?}"))),
        ],
    };
    print_line(&line);
}

/// One JSON object per line, keys in the order given (`type` first, for people reading along).
/// stdout is line-buffered, so each line goes out at once.
fn print_line(fields: &[(&str, Value)]) {
    let body: Vec<String> = fields
        .iter()
        .map(|(key, value)| format!("{}:{value}", Value::from(*key)))
        .collect();
    let mut out = std::io::stdout().lock();
    // A closed stdout (the reader went away) is not worth a panic.
    let _ = writeln!(out, "{{{}}}", body.join(","));
}
