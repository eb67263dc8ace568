//! A real socketioxide server for the sio-client interop tests (tests/support/servers.rs).
//!
//!   socketioxide-server [--ping-interval MS] [--ping-timeout MS]
//!
//! Listens on 127.0.0.1 with an ephemeral port, prints exactly one line `{"port":N}` to stdout
//! once listening, logs to stderr only, and exits as soon as its stdin closes (the test process
//! holds the write end, so a test binary that dies takes its servers with it).
//!
//! Behaviour, the same on "/" and "/admin", as in tests/node/server.js:
//!   "echo" (args...)            -> emit("echo", ...args)
//!   "ack" (args..., cb)         -> cb(...args)
//!   "request-ack" (args...)     -> emit("need-ack", ...args, reply => emit("got-ack", ...reply))
//!   "disconnect-me"             -> socket.disconnect()
//!   "burst" (n, size)           -> n x emit("item", i, <size x "x">) back to back, then
//!                                  emit("burst-done", n) (benches/peers/benches/compare.rs)
//! "/admin" needs `auth: {token: "secret"}`; otherwise the CONNECT is refused with the message
//! "not authorized" (socketioxide sends no `data` with a refusal).
//!
//! Accepted sockets get TCP_NODELAY (a lone small frame, an ack, leaves at once instead of
//! waiting for the client's delayed ACK), and each connection may buffer [`BUFFER`] packets;
//! a burst that outruns the client waits for room instead of losing events.
#![forbid(unsafe_code)]

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, SerializeTuple, Serializer};
use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide::handler::ConnectHandler;
use socketioxide::{SendError, SocketError, SocketIo};
use tokio::net::TcpListener;

/// Packets a connection may hold before `emit` reports it full (socketioxide's default: 128).
const BUFFER: usize = 4096;

/// Any socket.io argument, binary included (`serde_json::Value` would turn bytes into arrays of
/// numbers). socketioxide's parser hands binary attachments to `visit_byte_buf` and turns
/// `serialize_bytes` back into attachments.
#[derive(Debug, Clone)]
enum Dyn {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Bytes(Vec<u8>),
    Array(Vec<Dyn>),
    Map(Vec<(String, Dyn)>),
}

impl Serialize for Dyn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Dyn::Null => s.serialize_unit(),
            Dyn::Bool(b) => s.serialize_bool(*b),
            Dyn::Number(n) => n.serialize(s),
            Dyn::String(v) => s.serialize_str(v),
            Dyn::Bytes(b) => s.serialize_bytes(b),
            Dyn::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Dyn::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

struct DynVisitor;

impl<'de> Visitor<'de> for DynVisitor {
    type Value = Dyn;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any socket.io argument")
    }
    fn visit_unit<E>(self) -> Result<Dyn, E> {
        Ok(Dyn::Null)
    }
    fn visit_none<E>(self) -> Result<Dyn, E> {
        Ok(Dyn::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Dyn, D::Error> {
        Dyn::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Dyn, E> {
        Ok(Dyn::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Dyn, E> {
        Ok(Dyn::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Dyn, E> {
        Ok(Dyn::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Dyn, E> {
        serde_json::Number::from_f64(v)
            .map(Dyn::Number)
            .ok_or_else(|| E::custom("not a finite number"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Dyn, E> {
        Ok(Dyn::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Dyn, E> {
        Ok(Dyn::String(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Dyn, E> {
        Ok(Dyn::Bytes(v.to_vec()))
    }
    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Dyn, E> {
        Ok(Dyn::Bytes(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Dyn, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Dyn::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Dyn, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Dyn::Map(entries))
    }
}

impl<'de> Deserialize<'de> for Dyn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dyn, D::Error> {
        d.deserialize_any(DynVisitor)
    }
}

/// All the arguments of an event or ack. socketioxide spreads a value over the argument list
/// only when it (de)serializes as a serde tuple; anything else is one argument.
#[derive(Debug, Clone)]
struct Args(Vec<Dyn>);

impl Serialize for Args {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut tuple = s.serialize_tuple(self.0.len())?;
        for item in &self.0 {
            tuple.serialize_element(item)?;
        }
        tuple.end()
    }
}

struct ArgsVisitor;

impl<'de> Visitor<'de> for ArgsVisitor {
    type Value = Args;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a socket.io argument list")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Args, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Args(items))
    }
}

impl<'de> Deserialize<'de> for Args {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Args, D::Error> {
        // The length is not known up front; serde_json reads a tuple as a sequence anyway.
        d.deserialize_tuple(usize::MAX, ArgsVisitor)
    }
}

#[derive(Debug)]
struct NotAuthorized;

impl fmt::Display for NotAuthorized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not authorized")
    }
}

impl std::error::Error for NotAuthorized {}

async fn require_token(Data(auth): Data<serde_json::Value>) -> Result<(), NotAuthorized> {
    if auth.get("token").and_then(|t| t.as_str()) == Some("secret") {
        Ok(())
    } else {
        eprintln!("[socketioxide] reject /admin auth={auth}");
        Err(NotAuthorized)
    }
}

async fn on_connect(socket: SocketRef) {
    eprintln!("[socketioxide] connect {} {}", socket.ns(), socket.id);
    socket.on("echo", async |socket: SocketRef, Data(args): Data<Args>| {
        if let Err(e) = socket.emit("echo", &args) {
            eprintln!("[socketioxide] echo failed: {e}");
        }
    });
    socket.on("ack", async |Data(args): Data<Args>, ack: AckSender| {
        if let Err(e) = ack.send(&args) {
            eprintln!("[socketioxide] ack failed: {e}");
        }
    });
    socket.on(
        "request-ack",
        async |socket: SocketRef, Data(args): Data<Args>| {
            let reply = match socket.emit_with_ack::<_, Args>("need-ack", &args) {
                Ok(pending) => pending.await,
                Err(e) => {
                    eprintln!("[socketioxide] need-ack failed: {e}");
                    return;
                }
            };
            match reply {
                Ok(reply) => {
                    if let Err(e) = socket.emit("got-ack", &reply) {
                        eprintln!("[socketioxide] got-ack failed: {e}");
                    }
                }
                Err(e) => eprintln!("[socketioxide] no ack for need-ack: {e}"),
            }
        },
    );
    socket.on(
        "burst",
        async |socket: SocketRef, Data((n, size)): Data<(u64, usize)>| {
            let pad = "x".repeat(size);
            for i in 0..n {
                if !emit_waiting(&socket, "item", &(i, pad.as_str())).await {
                    return;
                }
            }
            emit_waiting(&socket, "burst-done", &n).await;
        },
    );
    socket.on("disconnect-me", async |socket: SocketRef| {
        if let Err(e) = socket.disconnect() {
            eprintln!("[socketioxide] disconnect failed: {e}");
        }
    });
}

/// Emits, waiting while the connection's packet buffer is full (the client reads more slowly
/// than the loop emits); false once the socket is gone or the emit failed otherwise.
async fn emit_waiting<T: serde::Serialize + ?Sized>(
    socket: &SocketRef,
    event: &str,
    data: &T,
) -> bool {
    loop {
        match socket.emit(event, data) {
            Ok(()) => return true,
            Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(e) => {
                eprintln!("[socketioxide] {event} failed: {e}");
                return false;
            }
        }
    }
}

struct Options {
    ping_interval: Option<Duration>,
    ping_timeout: Option<Duration>,
}

fn usage(msg: &str) -> ! {
    eprintln!("socketioxide-server: {msg}");
    eprintln!("usage: socketioxide-server [--ping-interval MS] [--ping-timeout MS]");
    std::process::exit(2);
}

fn parse_args() -> Options {
    let mut opts = Options {
        ping_interval: None,
        ping_timeout: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut millis = || -> Duration {
            let value = args.next().unwrap_or_default();
            match value.parse::<u64>() {
                Ok(ms) => Duration::from_millis(ms),
                Err(_) => usage(&format!(
                    "{flag} needs a non-negative integer, got {value:?}"
                )),
            }
        };
        match flag.as_str() {
            "--ping-interval" => opts.ping_interval = Some(millis()),
            "--ping-timeout" => opts.ping_timeout = Some(millis()),
            _ => usage(&format!("unknown argument {flag}")),
        }
    }
    opts
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let opts = parse_args();

    // The process must not outlive the test that started it.
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        std::process::exit(0);
    });

    let mut builder = SocketIo::builder().max_buffer_size(BUFFER);
    if let Some(d) = opts.ping_interval {
        builder = builder.ping_interval(d);
    }
    if let Some(d) = opts.ping_timeout {
        builder = builder.ping_timeout(d);
    }
    let (svc, io) = builder.build_svc();
    io.ns("/", on_connect);
    io.ns("/admin", on_connect.with(require_token));

    let listener = match TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("[socketioxide] listen failed: {e}");
            std::process::exit(1);
        }
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    eprintln!("[socketioxide] listening on 127.0.0.1:{port}");
    println!("{}", serde_json::json!({ "port": port }));

    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                eprintln!("[socketioxide] accept failed: {e}");
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            eprintln!("[socketioxide] TCP_NODELAY failed: {e}");
        }
        let svc = svc.clone();
        tokio::spawn(async move {
            let conn = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades();
            if let Err(e) = conn.await {
                eprintln!("[socketioxide] connection error: {e}");
            }
        });
    }
}
