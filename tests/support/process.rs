//! A test server in a child process that reports its port as one JSON line `{"port":N}` on
//! stdout and exits when its stdin closes (tests/node/server.js, tests/python/server.py,
//! tests/socketioxide-server).
//!
//! [`ServerProcess`] keeps that stdin open for as long as it lives, so a test binary that dies
//! any way at all (panic, abort, SIGKILL) never leaves a server behind; dropping the handle
//! kills the process outright.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// How long a server may take to print its port. Generous because CI has two cores and
/// several test binaries may be compiling or starting servers at the same time.
const STARTUP_DEADLINE: Duration = Duration::from_secs(20);

/// The server's stderr is kept for failure messages; a runaway log must not eat memory.
const STDERR_CAP: usize = 1 << 20;

/// A running server process. Dropping it kills the process.
pub struct ServerProcess {
    child: Child,
    // Held only so the server's stdin stays open; the server exits when it closes.
    _stdin: ChildStdin,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl ServerProcess {
    /// Spawns `cmd` (its stdio is taken over here) and waits up to 20 s for the port line.
    /// With `port` 0 any port is accepted; otherwise the server must report that one. The
    /// error carries the server's stderr.
    pub fn spawn(mut cmd: Command, port: u16) -> Result<(ServerProcess, u16), String> {
        let program = cmd.get_program().to_string_lossy().into_owned();
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("could not spawn {program}: {e}"))?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err("child pipes were not set up".to_owned());
        };

        // Both pipes are drained for the whole life of the process: a full pipe would block
        // the server's writes and stall it in the middle of a test.
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr_thread = {
            let log = Arc::clone(&log);
            thread::spawn(move || drain_stderr(stderr, &log))
        };
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = match lines.next() {
                Some(Ok(line)) => Ok(line),
                Some(Err(e)) => Err(format!("reading stdout failed: {e}")),
                None => Err("the server closed stdout without reporting a port".to_owned()),
            };
            let _ = tx.send(first);
            for _ in lines.by_ref() {}
        });

        let outcome = match rx.recv_timeout(STARTUP_DEADLINE) {
            Ok(Ok(line)) => parse_port(&line),
            Ok(Err(msg)) => Err(msg),
            Err(_) => Err(format!(
                "no port reported within {} s",
                STARTUP_DEADLINE.as_secs()
            )),
        };
        match outcome {
            Ok(actual) if port == 0 || actual == port => Ok((
                ServerProcess {
                    child,
                    _stdin: stdin,
                    stderr: log,
                },
                actual,
            )),
            other => {
                let reason = match other {
                    Ok(actual) => format!("asked for port {port}, server reported {actual}"),
                    Err(msg) => msg,
                };
                let _ = child.kill();
                let status = child.wait();
                // The process is gone, so stderr hits EOF and the reader finishes.
                let _ = stderr_thread.join();
                Err(format!(
                    "{reason} (exit: {status:?})\n--- server stderr ---\n{}",
                    snapshot(&log)
                ))
            }
        }
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote to stderr so far (capped).
    pub fn stderr(&self) -> String {
        snapshot(&self.stderr)
    }

    /// Kills the process with SIGKILL and reaps it, so that its port no longer accepts
    /// connections; returns its stderr.
    pub fn kill(mut self) -> String {
        self.kill_and_reap();
        self.stderr()
    }

    fn kill_and_reap(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill_and_reap();
    }
}

fn snapshot(buf: &Arc<Mutex<Vec<u8>>>) -> String {
    let bytes = buf.lock().map(|b| b.clone()).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn parse_port(line: &str) -> Result<u16, String> {
    serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v.get("port")?.as_u64())
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("expected a line like {{\"port\":N}} on stdout, got {line:?}"))
}

fn drain_stderr(mut stderr: impl Read, log: &Mutex<Vec<u8>>) {
    let mut chunk = [0u8; 4096];
    loop {
        match stderr.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if let Ok(mut buf) = log.lock() {
                    let room = STDERR_CAP.saturating_sub(buf.len());
                    buf.extend_from_slice(&chunk[..n.min(room)]);
                }
            }
        }
    }
}
