//! `sio connect`: a line-oriented socket.io client for the terminal and for scripts.
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
//! cannot connect; 2 on bad arguments.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use sio_client::mock::{MockAck, MockServer, MockSocket};
use sio_client::proto::ProtocolError;
use sio_client::{AckSender, Args, Client, Event};

use crate::json::{args_to_json, text_to_args};
use crate::net::NetOptions;

/// How long `ack` waits for the server's answer.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// `sio connect`'s command line.
#[derive(Debug, clap::Args)]
pub struct ConnectArgs {
    /// Server URL, e.g. http://localhost:3000 (not with --mock).
    #[arg(required_unless_present = "mock", conflicts_with = "mock")]
    pub url: Option<String>,
    /// Start the crate's mock server in-process (events `echo` and `ack`, namespace `/admin`
    /// with auth token `secret`) and connect to it; its URL goes to stderr.
    #[arg(long)]
    pub mock: bool,
    #[command(flatten)]
    pub net: NetOptions,
}

/// Runs `sio connect`.
pub fn run(args: ConnectArgs) -> ExitCode {
    let transports = match args.net.transports() {
        Ok(transports) => transports,
        Err(message) => return crate::usage_error("connect", &message),
    };
    // Kept alive for the whole run when --mock is given.
    let (_server, url) = if args.mock {
        match start_mock() {
            Ok((server, url)) => (Some(server), url),
            Err(message) => {
                eprintln!("sio: {message}");
                return ExitCode::from(1);
            }
        }
    } else {
        (None, args.url.clone().unwrap_or_default())
    };
    let builder = match args.net.builder(&url, Duration::from_secs(20)) {
        Ok(builder) => builder.transports(transports),
        Err(message) => return crate::usage_error("connect", &message),
    };

    let pending_acks: Arc<Mutex<HashMap<u64, AckSender>>> = Arc::default();
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

/// The in-process mock server of `--mock`, and its URL.
fn start_mock() -> Result<(MockServer, String), String> {
    let ack = |_: &MockSocket, args: Args, ack: Option<MockAck>| {
        if let Some(ack) = ack {
            ack.send(args);
        }
    };
    let server = MockServer::builder()
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
    Ok((server, url))
}

/// Command-line JSON to arguments for `event`.
fn parse_args_json(event: &str, json: &str) -> Result<Args, String> {
    if event.is_empty() {
        return Err("an event name is needed".to_owned());
    }
    text_to_args(json)
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
