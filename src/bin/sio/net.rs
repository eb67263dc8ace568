//! The network options `sio connect` and `sio doctor` share, applied to a [`ClientBuilder`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Args as ClapArgs;
use serde_json::Value;
use sio_client::{ClientBuilder, EngineVersion, Transport};

/// Options of the connection itself.
#[derive(Debug, ClapArgs)]
pub struct NetOptions {
    /// Namespace to join.
    #[arg(short = 'n', long, default_value = "/")]
    pub namespace: String,
    /// Request path of the server (the client's default is /socket.io/).
    #[arg(long)]
    pub path: Option<String>,
    /// Query parameter added to every request, K=V (repeatable).
    #[arg(long = "query", value_name = "K=V", value_parser = parse_query)]
    pub query: Vec<(String, String)>,
    /// HTTP header sent with every request, K:V (repeatable).
    #[arg(short = 'H', long = "header", value_name = "K:V", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// CONNECT auth payload, as JSON.
    #[arg(long, value_name = "JSON", value_parser = parse_json)]
    pub auth: Option<Value>,
    /// HTTP(S) proxy URL.
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,
    /// Extra trusted root certificate(s), a PEM file.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Accept any TLS certificate (testing only).
    #[arg(long)]
    pub insecure: bool,
    /// Engine.IO protocol: 4 (socket.io 3/4), 3 (socket.io 2) or auto (detects a socket.io 2
    /// server and switches to 3).
    #[arg(long, value_name = "3|4|auto", default_value = "4", value_parser = parse_eio)]
    pub eio: EngineVersion,
    /// Transports to try in order: websocket, streaming, polling, upgrade (polling then
    /// WebSocket, as the JS client) or auto (all three). Repeatable or a comma list.
    #[arg(
        short = 't',
        long = "transport",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub transports: Vec<String>,
    /// Connection timeout in seconds.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub timeout: Option<Duration>,
}

fn parse_query(text: &str) -> Result<(String, String), String> {
    let (k, v) = text
        .split_once('=')
        .ok_or(format!("--query needs K=V, got {text:?}"))?;
    Ok((k.to_owned(), v.to_owned()))
}

fn parse_header(text: &str) -> Result<(String, String), String> {
    let (k, v) = text
        .split_once(':')
        .ok_or(format!("--header needs NAME:VALUE, got {text:?}"))?;
    Ok((k.trim().to_owned(), v.trim().to_owned()))
}

/// Any JSON value, for `--auth` and the like.
pub fn parse_json(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("not JSON ({e}): {text}"))
}

fn parse_eio(text: &str) -> Result<EngineVersion, String> {
    match text {
        "4" => Ok(EngineVersion::V4),
        "3" => Ok(EngineVersion::V3),
        "auto" => Ok(EngineVersion::Auto),
        other => Err(format!("must be 3, 4 or auto, got {other:?}")),
    }
}

fn parse_secs(text: &str) -> Result<Duration, String> {
    text.parse()
        .ok()
        .filter(|s: &f64| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64)
        .ok_or(format!("needs a positive number of seconds, got {text:?}"))
}

/// Every transport in the client's default order.
pub const ALL_TRANSPORTS: [Transport; 3] = [
    Transport::WebSocket,
    Transport::Streaming,
    Transport::Polling,
];

impl NetOptions {
    /// The transports asked for, the client's default order when none.
    pub fn transports(&self) -> Result<Vec<Transport>, String> {
        if self.transports.is_empty() {
            return Ok(ALL_TRANSPORTS.to_vec());
        }
        let mut out = Vec::new();
        for name in &self.transports {
            let more: &[Transport] = match name.trim() {
                "websocket" => &[Transport::WebSocket],
                "polling" => &[Transport::Polling],
                "streaming" => &[Transport::Streaming],
                "upgrade" => &[Transport::Polling, Transport::WebSocket],
                "auto" => &ALL_TRANSPORTS,
                other => return Err(format!("unknown transport {other:?}")),
            };
            for transport in more {
                if !out.contains(transport) {
                    out.push(*transport);
                }
            }
        }
        Ok(out)
    }

    /// A builder for `url` with every option applied but the transports.
    pub fn builder(&self, url: &str, default_timeout: Duration) -> Result<ClientBuilder, String> {
        let mut builder = ClientBuilder::new(url)
            .namespace(self.namespace.clone())
            .protocol_version(self.eio)
            .timeout(self.timeout.unwrap_or(default_timeout))
            .danger_accept_invalid_certs(self.insecure);
        if let Some(path) = &self.path {
            builder = builder.path(path.clone());
        }
        for (k, v) in &self.query {
            builder = builder.query(k.clone(), v.clone());
        }
        for (k, v) in &self.headers {
            builder = builder.extra_header(k.clone(), v.clone());
        }
        if let Some(auth) = &self.auth {
            builder = builder.auth(auth);
        }
        if let Some(proxy) = &self.proxy {
            builder = builder.proxy(proxy.clone());
        }
        if let Some(ca) = &self.ca {
            let pem = std::fs::read(ca).map_err(|e| format!("--ca {}: {e}", ca.display()))?;
            builder = builder.add_root_certificate(pem);
        }
        Ok(builder)
    }
}
