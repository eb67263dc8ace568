//! `sio mock`: the crate's mock socket.io server as a program, with a control API
//! (see [`crate::control`]) on a second port.

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sio_client::mock::{MockServer, MockServerBuilder};
use sio_client::Transport;

use crate::json::value_to_args;
use crate::net::parse_json;

/// Printed after `sio mock --help`.
pub const AFTER_HELP: &str = "\
Modes: socket.io 4 by default; --eio 3 a socket.io 2 server (Engine.IO v3); --engine-io a
  plain Engine.IO server on /engine.io/ that echoes every message (--no-echo: records only).
Control API (JSON over HTTP on the \"control\" URL; errors are {\"error\": \"...\"} with 400/404):
  GET  /sockets                          connected sockets: id, namespace, auth, transport
                                         (--engine-io: the sessions, namespace \"\")
  GET  /received[?wait=N&timeout_ms=T]   events received (waits until N are, 408 on timeout)
  POST /received/clear                   forget them
  POST /emit {\"namespace\",\"event\",\"args\":[..],\"socket\"?,\"room\"?,\"ack\"?,\"timeout_ms\"?}
             (--engine-io: {\"message\":\"text\",\"socket\"?} sends a message)
  POST /faults {\"name\":\"reject_websocket\",\"value\":403}   (see below)   POST /faults/clear
  POST /disconnect {\"socket\"?}          one socket, or every one
  POST /restart                          drop every connection, keep the port
Faults: reject_websocket (status or null), websocket_no_upgrade, reset_on_upgrade,
  black_hole_websocket, stop_pings, refuse_connections, buffer_streaming (true/false),
  delay (milliseconds), drop_all_connections (no value).
Exit codes: 0 ok, 1 cannot start, 2 bad arguments.";

/// `sio mock`'s command line.
#[derive(Debug, clap::Args)]
pub struct MockArgs {
    /// Address to bind, both the server and the control API.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// socket.io port; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Control API port; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    pub control_port: u16,
    /// Request path served (default /socket.io/).
    #[arg(long)]
    pub path: Option<String>,
    /// Heartbeat ping interval, milliseconds.
    #[arg(long, value_name = "MS")]
    pub ping_interval: Option<u64>,
    /// Heartbeat ping timeout, milliseconds.
    #[arg(long, value_name = "MS")]
    pub ping_timeout: Option<u64>,
    /// Largest HTTP payload accepted, bytes (Engine.IO maxHttpBufferSize).
    #[arg(long, value_name = "BYTES")]
    pub max_payload: Option<usize>,
    /// Transports served (default all): websocket, polling, streaming; repeatable or a comma
    /// list.
    #[arg(long = "transport", value_name = "NAME", value_delimiter = ',')]
    pub transports: Vec<String>,
    /// A namespace clients may join besides "/" (repeatable).
    #[arg(long = "namespace", value_name = "NSP")]
    pub namespaces: Vec<String>,
    /// Refuse CONNECT to a namespace ("/" unless NSP= is given) unless the auth payload holds
    /// every key of this JSON object with the same value (any other JSON: equal to it).
    /// Repeatable.
    #[arg(long = "require-auth", value_name = "[NSP=]JSON", value_parser = parse_require_auth)]
    pub require_auth: Vec<(String, Value)>,
    /// Send every EVENT received back to its sender, same arguments (repeatable).
    #[arg(long = "echo", value_name = "EVENT")]
    pub echo: Vec<String>,
    /// Acknowledge every EVENT received with these arguments (a JSON array is the list, any
    /// other value one argument). Repeatable.
    #[arg(long = "ack", value_name = "EVENT=JSON", value_parser = parse_ack)]
    pub ack: Vec<(String, Value)>,
    /// Engine.IO revision: 4 (socket.io 3/4, the default) or 3 (a socket.io 2 server: v3
    /// framing, client pings, the main namespace joined with the handshake).
    #[arg(long, value_name = "3|4", default_value_t = 4, value_parser = clap::value_parser!(u8).range(3..=4))]
    pub eio: u8,
    /// A plain Engine.IO server (no Socket.IO layer) on /engine.io/ unless --path: every
    /// message is recorded (event "message", namespace "") and echoed to its sender.
    #[arg(long)]
    pub engine_io: bool,
    /// With --engine-io: record messages without echoing them.
    #[arg(long, requires = "engine_io")]
    pub no_echo: bool,
    /// Connection-state recovery (socket.io 4.6+), keeping sessions and events for this
    /// maxDisconnectionDuration, milliseconds.
    #[arg(long, value_name = "MS")]
    pub recovery: Option<u64>,
    /// Keep running when stdin closes (stop with SIGTERM/SIGINT only).
    #[arg(long)]
    pub ignore_stdin: bool,
}

fn parse_require_auth(text: &str) -> Result<(String, Value), String> {
    match text.split_once('=') {
        Some((nsp, json)) if nsp.starts_with('/') => Ok((nsp.to_owned(), parse_json(json)?)),
        _ => Ok(("/".to_owned(), parse_json(text)?)),
    }
}

fn parse_ack(text: &str) -> Result<(String, Value), String> {
    let (event, json) = text
        .split_once('=')
        .ok_or(format!("needs EVENT=JSON, got {text:?}"))?;
    let value = parse_json(json)?;
    value_to_args(&value)?;
    Ok((event.to_owned(), value))
}

/// Whether a CONNECT auth payload satisfies `--require-auth`.
fn auth_matches(required: &Value, auth: Option<&Value>) -> bool {
    match (required, auth) {
        (Value::Object(required), Some(Value::Object(auth))) => {
            required.iter().all(|(k, v)| auth.get(k) == Some(v))
        }
        (required, Some(auth)) => required == auth,
        (_, None) => false,
    }
}

fn builder(args: &MockArgs) -> Result<MockServerBuilder, String> {
    let mut builder = MockServer::builder().bind(SocketAddr::new(args.host, args.port));
    if let Some(path) = &args.path {
        builder = builder.path(path);
    }
    if args.eio == 3 {
        if args.recovery.is_some() {
            return Err("--recovery is a socket.io 4 feature, not for --eio 3".to_owned());
        }
        builder = builder.eio3();
    }
    if let Some(ms) = args.recovery {
        builder = builder.recovery(Duration::from_millis(ms));
    }
    if args.engine_io {
        let socketio_only = !args.namespaces.is_empty()
            || !args.require_auth.is_empty()
            || !args.echo.is_empty()
            || !args.ack.is_empty()
            || args.recovery.is_some();
        if socketio_only {
            return Err(
                "--namespace, --require-auth, --echo, --ack and --recovery are Socket.IO options, not for --engine-io"
                    .to_owned(),
            );
        }
        builder = builder.engine_io();
        if !args.no_echo {
            builder = builder.on_engine_message(|connection, data| connection.send(data));
        }
    }
    if let Some(ms) = args.ping_interval {
        builder = builder.ping_interval(Duration::from_millis(ms));
    }
    if let Some(ms) = args.ping_timeout {
        builder = builder.ping_timeout(Duration::from_millis(ms));
    }
    if let Some(bytes) = args.max_payload {
        builder = builder.max_payload(bytes);
    }
    if !args.transports.is_empty() {
        let mut transports = Vec::new();
        for name in &args.transports {
            transports.push(match name.trim() {
                "websocket" => Transport::WebSocket,
                "polling" => Transport::Polling,
                "streaming" => Transport::Streaming,
                other => return Err(format!("unknown transport {other:?}")),
            });
        }
        builder = builder.transports(&transports);
    }
    let mut namespaces = vec!["/".to_owned()];
    for nsp in args
        .namespaces
        .iter()
        .chain(args.require_auth.iter().map(|(nsp, _)| nsp))
    {
        if !nsp.starts_with('/') {
            return Err(format!("a namespace starts with '/', got {nsp:?}"));
        }
        if !namespaces.contains(nsp) {
            namespaces.push(nsp.clone());
        }
    }
    // An event given to both --echo and --ack gets both answers: one handler per event.
    let mut events: Vec<(String, bool, Option<sio_client::Args>)> = Vec::new();
    for event in &args.echo {
        if !events.iter().any(|(e, _, _)| e == event) {
            events.push((event.clone(), true, None));
        }
    }
    for (event, reply) in &args.ack {
        let reply = value_to_args(reply)?;
        match events.iter_mut().find(|(e, _, _)| e == event) {
            Some(entry) => entry.2 = Some(reply),
            None => events.push((event.clone(), false, Some(reply))),
        }
    }
    for nsp in &namespaces {
        builder = builder.namespace(nsp);
        for (event, echo, reply) in &events {
            let (name, echo, reply) = (event.clone(), *echo, reply.clone());
            builder = builder.on(nsp, event, move |socket, received, ack| {
                if let (Some(ack), Some(reply)) = (ack, &reply) {
                    ack.send(reply.clone());
                }
                if echo {
                    socket.emit(&name, received);
                }
            });
        }
    }
    for (nsp, required) in &args.require_auth {
        let required = required.clone();
        builder = builder.connect_guard(nsp, move |auth| {
            if auth_matches(&required, auth) {
                Ok(())
            } else {
                Err(("not authorized".to_owned(), None))
            }
        });
    }
    Ok(builder)
}

/// Runs `sio mock`.
pub fn run(args: MockArgs) -> ExitCode {
    let builder = match builder(&args) {
        Ok(builder) => builder,
        Err(message) => return crate::usage_error("mock", &message),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("sio mock: cannot start a runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(serve(args, builder))
}

async fn serve(args: MockArgs, builder: MockServerBuilder) -> ExitCode {
    let server = match builder.start().await {
        Ok(server) => Arc::new(server),
        Err(e) => {
            eprintln!("sio mock: cannot start the server: {e}");
            return ExitCode::from(1);
        }
    };
    let control = match tokio::net::TcpListener::bind((args.host, args.control_port)).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("sio mock: cannot bind the control API: {e}");
            return ExitCode::from(1);
        }
    };
    let control_addr = match control.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("sio mock: {e}");
            return ExitCode::from(1);
        }
    };
    tokio::spawn(crate::control::serve(control, server.clone()));
    // Installed before the ready line, so a signal sent right after it is not missed.
    let shutdown = shutdown_signal();
    // The one line a script waits for: everything is listening once it is out.
    println!(
        "{}",
        json!({
            "url": server.url(),
            "path": server.path(),
            "control": format!("http://{control_addr}"),
        })
    );

    let (stdin_closed_tx, stdin_closed) = tokio::sync::oneshot::channel::<()>();
    if !args.ignore_stdin {
        std::thread::spawn(move || {
            // Whatever comes in is ignored; the end of it is the signal.
            let mut sink = [0u8; 1024];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            let _ = stdin_closed_tx.send(());
        });
    } else {
        std::mem::forget(stdin_closed_tx);
    }
    let stdin_closed = async move {
        if stdin_closed.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = stdin_closed => tracing::info!("stdin closed, stopping"),
        () = shutdown => tracing::info!("signal received, stopping"),
    }
    if let Ok(server) = Arc::try_unwrap(server) {
        server.stop().await;
    }
    ExitCode::SUCCESS
}

/// Resolves on SIGTERM or SIGINT; the handlers are installed when this is called.
#[cfg(unix)]
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

/// Resolves on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
