//! `doctor`: why does my socket.io connection not work? Tries each transport on its own, then
//! the full fallback, and prints what happened.
//!
//! ```text
//! cargo run --example doctor -- https://example.com [--eio 3|4] [--path /socket.io/]
//!     [--namespace /ns] [--header K:V]... [--proxy URL] [--insecure] [--ack-event NAME]
//! ```
//! With `--ack-event NAME`, each working transport also times one `emit_with_ack(NAME)` round
//! trip (the server must acknowledge that event).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use sio_client::{Client, ClientBuilder, EngineVersion, Transport};

struct Options {
    url: String,
    eio: EngineVersion,
    path: Option<String>,
    namespace: Option<String>,
    headers: Vec<(String, String)>,
    proxy: Option<String>,
    insecure: bool,
    ack_event: Option<String>,
}

fn parse() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let mut options = Options {
        url: String::new(),
        eio: EngineVersion::V4,
        path: None,
        namespace: None,
        headers: Vec::new(),
        proxy: None,
        insecure: false,
        ack_event: None,
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--eio" => {
                options.eio = match value("--eio")?.as_str() {
                    "3" => EngineVersion::V3,
                    "4" => EngineVersion::V4,
                    other => return Err(format!("--eio takes 3 or 4, not {other}")),
                }
            }
            "--path" => options.path = Some(value("--path")?),
            "--namespace" => options.namespace = Some(value("--namespace")?),
            "--header" => {
                let header = value("--header")?;
                let (k, v) = header
                    .split_once(':')
                    .ok_or(format!("--header takes K:V, not {header}"))?;
                options.headers.push((k.trim().into(), v.trim().into()));
            }
            "--proxy" => options.proxy = Some(value("--proxy")?),
            "--insecure" => options.insecure = true,
            "--ack-event" => options.ack_event = Some(value("--ack-event")?),
            "-h" | "--help" => return Err(String::new()),
            url if options.url.is_empty() && !url.starts_with('-') => options.url = url.into(),
            other => return Err(format!("unexpected argument {other}")),
        }
    }
    if options.url.is_empty() {
        return Err("a URL is required".into());
    }
    Ok(options)
}

fn builder(options: &Options, transports: &[Transport]) -> ClientBuilder {
    let mut builder = Client::builder(options.url.clone())
        .protocol_version(options.eio)
        .transports(transports.iter().copied())
        .remember_transport(false)
        .upgrade(false)
        .timeout(Duration::from_secs(10));
    if let Some(path) = &options.path {
        builder = builder.path(path.clone());
    }
    if let Some(namespace) = &options.namespace {
        builder = builder.namespace(namespace.clone());
    }
    for (k, v) in &options.headers {
        builder = builder.extra_header(k.clone(), v.clone());
    }
    if let Some(proxy) = &options.proxy {
        builder = builder.proxy(proxy.clone());
    }
    builder.danger_accept_invalid_certs(options.insecure)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// One row of the report.
struct Row {
    transport: String,
    ok: bool,
    detail: String,
    open: String,
    ack: String,
}

fn try_one(options: &Options, transports: &[Transport], label: &str) -> (Row, Option<Client>) {
    let started = Instant::now();
    let result = builder(options, transports).connect();
    let elapsed = started.elapsed();
    match result {
        Ok(client) => {
            let report = client.connect_report();
            let open = report
                .iter()
                .find(|a| a.outcome.is_ok())
                .map(|a| ms(a.started_after + a.elapsed))
                .unwrap_or_else(|| ms(elapsed));
            let ack = match &options.ack_event {
                None => "n/a (--ack-event)".to_string(),
                Some(event) => {
                    let t = Instant::now();
                    match client.emit_with_ack(event, (), Duration::from_secs(5)) {
                        Ok(_) => ms(t.elapsed()),
                        Err(e) => format!("failed: {e}"),
                    }
                }
            };
            let row = Row {
                transport: label.to_string(),
                ok: true,
                detail: format!("connected over {} in {}", client.transport(), ms(elapsed)),
                open,
                ack,
            };
            (row, Some(client))
        }
        Err(error) => {
            let detail = match &error {
                sio_client::Error::Handshake {
                    status: Some(status),
                    body,
                    ..
                } => format!("HTTP {status}: {}", first_line(body)),
                other => first_line(&other.to_string()),
            };
            let row = Row {
                transport: label.to_string(),
                ok: false,
                detail,
                open: "-".into(),
                ack: "-".into(),
            };
            (row, None)
        }
    }
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() > 70 {
        let cut: String = line.chars().take(67).collect();
        format!("{cut}...")
    } else {
        line.to_string()
    }
}

fn main() -> ExitCode {
    let options = match parse() {
        Ok(options) => options,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("doctor: {message}");
            }
            eprintln!("usage: doctor URL [--eio 3|4] [--path P] [--namespace NS] [--header K:V]... [--proxy URL] [--insecure] [--ack-event NAME]");
            return ExitCode::from(2);
        }
    };
    println!("sio-client doctor: {}", options.url);
    let mut rows = Vec::new();
    let mut working = Vec::new();
    for transport in [
        Transport::WebSocket,
        Transport::Streaming,
        Transport::Polling,
    ] {
        let (row, client) = try_one(&options, &[transport], transport.as_str());
        if row.ok {
            working.push(transport);
        }
        if let Some(client) = client {
            client.disconnect();
        }
        rows.push(row);
    }
    let all = [
        Transport::WebSocket,
        Transport::Streaming,
        Transport::Polling,
    ];
    let (row, client) = try_one(&options, &all, "fallback");
    let fallback_ok = row.ok;
    rows.push(row);

    println!();
    println!(
        "{:<10} {:<6} {:<60} {:>12} {:>12}",
        "transport", "result", "details", "open packet", "ack rtt"
    );
    for row in &rows {
        let result = if row.ok { "ok" } else { "FAILED" };
        println!(
            "{:<10} {:<6} {:<60} {:>12} {:>12}",
            row.transport, result, row.detail, row.open, row.ack
        );
    }
    if let Some(client) = &client {
        println!();
        println!("fallback attempts:");
        for attempt in client.connect_report() {
            let outcome = match &attempt.outcome {
                Ok(()) => "won".to_string(),
                Err(e) => first_line(e),
            };
            println!(
                "  +{:<10} {:<10} {:>10}  {}",
                ms(attempt.started_after),
                attempt.transport.as_str(),
                ms(attempt.elapsed),
                outcome
            );
        }
        client.disconnect();
    }
    println!();
    let verdict = match (fallback_ok, working.as_slice()) {
        (false, _) => "verdict: cannot connect with any transport; check the URL, path, proxy and TLS settings above".to_string(),
        (true, [Transport::WebSocket, ..]) => "verdict: healthy; WebSocket works".to_string(),
        (true, ws) => format!(
            "verdict: connected, but WebSocket is blocked on this network; {} carries the connection",
            ws.first().map(|t| t.as_str()).unwrap_or("fallback")
        ),
    };
    println!("{verdict}");
    if fallback_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
