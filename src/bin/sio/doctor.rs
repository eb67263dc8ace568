//! `sio doctor`: why does my socket.io connection not work? Tries each transport on its own,
//! then the full fallback, and prints what happened. With `--ack-event NAME`, each working
//! transport also times one `emit_with_ack(NAME)` round trip (the server must acknowledge that
//! event). Exits 0 when the fallback connects, 1 when nothing does, 2 on bad arguments.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use sio_client::{Client, ClientBuilder, Transport};

use crate::net::NetOptions;

/// `sio doctor`'s command line.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Server URL, e.g. https://example.com
    pub url: String,
    /// An event the server acknowledges, to time one round trip per working transport.
    #[arg(long, value_name = "NAME")]
    pub ack_event: Option<String>,
    #[command(flatten)]
    pub net: NetOptions,
}

fn builder(options: &DoctorArgs, transports: &[Transport]) -> Result<ClientBuilder, String> {
    Ok(options
        .net
        .builder(&options.url, Duration::from_secs(10))?
        .transports(transports.iter().copied())
        .remember_transport(false)
        .upgrade(false))
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
    /// What the failure suggests (`sio_client::Hint`s, as text).
    hints: Vec<String>,
}

fn try_one(options: &DoctorArgs, transports: &[Transport], label: &str) -> (Row, Option<Client>) {
    let started = Instant::now();
    let result = builder(options, transports)
        .map_err(|message| (message, Vec::new()))
        .and_then(|b| {
            b.connect().map_err(|e| {
                let hints = match &e {
                    sio_client::Error::ConnectFailed(failure) => {
                        failure.hints.iter().map(ToString::to_string).collect()
                    }
                    _ => Vec::new(),
                };
                (error_detail(&e), hints)
            })
        });
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
                hints: Vec::new(),
            };
            (row, Some(client))
        }
        Err((error, hints)) => {
            let detail = first_line(&error);
            let row = Row {
                transport: label.to_string(),
                ok: false,
                detail,
                open: "-".into(),
                ack: "-".into(),
                hints,
            };
            (row, None)
        }
    }
}

/// What went wrong, in one line: the HTTP status and body of a refused handshake.
fn error_detail(error: &sio_client::Error) -> String {
    match error.last_failure() {
        sio_client::Error::Handshake {
            status: Some(status),
            body,
            ..
        } => format!("HTTP {status}: {}", first_line(body)),
        other => first_line(&other.to_string()),
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

/// Runs `sio doctor`.
pub fn run(options: DoctorArgs) -> ExitCode {
    let candidates = match options.net.transports() {
        Ok(transports) => transports,
        Err(message) => return crate::usage_error("doctor", &message),
    };
    if let Err(message) = builder(&options, &candidates) {
        return crate::usage_error("doctor", &message);
    }
    println!("sio-client doctor: {}", options.url);
    let mut rows = Vec::new();
    let mut working = Vec::new();
    for &transport in &candidates {
        let (row, client) = try_one(&options, &[transport], transport.as_str());
        if row.ok {
            working.push(transport);
        }
        if let Some(client) = client {
            client.disconnect();
        }
        rows.push(row);
    }
    let (row, client) = try_one(&options, &candidates, "fallback");
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
    let mut hints: Vec<&String> = Vec::new();
    for hint in rows.iter().flat_map(|row| &row.hints) {
        if !hints.contains(&hint) {
            hints.push(hint);
        }
    }
    if !hints.is_empty() {
        println!();
        println!("hints:");
        for hint in hints {
            println!("  - {hint}");
        }
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
