//! `sio`: a socket.io client, a connection doctor and a mock socket.io server, on the command
//! line. Install with `cargo install sio-client --features cli`.
//!
//! Exit codes: 0 ok, 1 cannot connect (or the mock server cannot start), 2 bad arguments.
//! Logs go to stderr: `-v` for debug, `-vv` for trace, or a `RUST_LOG` filter.

#![forbid(unsafe_code)]
// The doc comments of the argument types are clap's `--help` text, where `[JSON]` is usage
// syntax, not a rustdoc link, and URLs are shown as typed.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::bare_urls)]

mod connect;
mod control;
mod doctor;
mod json;
mod mock;
mod net;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand};

/// A socket.io client, connection doctor and mock server.
#[derive(Debug, Parser)]
#[command(name = "sio", version, after_help = EXIT_CODES)]
struct Cli {
    /// More logging on stderr: -v debug, -vv trace (RUST_LOG, when set, wins; errors only
    /// without either).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

const EXIT_CODES: &str = "Exit codes: 0 ok, 1 cannot connect, 2 bad arguments.";

#[derive(Debug, Subcommand)]
enum Command {
    /// Connect and exchange events: commands on stdin (emit EVENT [JSON], ack EVENT [JSON],
    /// reply ID [JSON], quit), one JSON object per line on stdout.
    #[command(after_help = EXIT_CODES)]
    Connect(connect::ConnectArgs),
    /// Try each transport, then the fallback, and say what works.
    #[command(after_help = EXIT_CODES)]
    Doctor(doctor::DoctorArgs),
    /// Run a mock socket.io server with a JSON-over-HTTP control API; prints one JSON line
    /// {"url":...,"control":...} when ready, runs until stdin closes or SIGTERM/SIGINT.
    #[command(after_help = mock::AFTER_HELP)]
    Mock(mock::MockArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return parse_error(&error),
    };
    init_logging(cli.verbose);
    match cli.command {
        Command::Connect(args) => connect::run(args),
        Command::Doctor(args) => doctor::run(args),
        Command::Mock(args) => mock::run(args),
    }
}

/// clap's message, plus a usage line where clap leaves it out (an invalid value), and exit
/// code 2 for every real error.
fn parse_error(error: &clap::Error) -> ExitCode {
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        error.exit();
    }
    let _ = error.print();
    let rendered = error.render().to_string();
    if !rendered.contains("Usage:") {
        let command = Cli::command();
        let sub = std::env::args()
            .skip(1)
            .find(|arg| !arg.starts_with('-'))
            .filter(|arg| command.find_subcommand(arg).is_some());
        match sub {
            Some(sub) => eprintln!("usage: sio {sub} --help"),
            None => eprintln!("usage: sio --help"),
        }
    }
    ExitCode::from(2)
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(filter) if !filter.is_empty() => EnvFilter::new(filter),
        _ => EnvFilter::new(match verbose {
            // Connection failures are reported by the commands themselves; the library's
            // warnings about each attempt would only repeat them.
            0 => "error",
            1 => "sio_client=debug,sio=debug",
            _ => "sio_client=trace,sio=trace",
        }),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// A bad argument found after parsing: the message, a usage hint and exit code 2, as clap's
/// own errors.
fn usage_error(command: &str, message: &str) -> ExitCode {
    eprintln!("sio {command}: {message}");
    eprintln!("usage: sio {command} --help");
    ExitCode::from(2)
}
