//! Real socket.io servers other than Node's: python-socketio 5 on aiohttp
//! (`tests/python/server.py`, in a venv made from `tests/python/requirements.txt`) and
//! socketioxide (`tests/socketioxide-server`, a standalone crate built here). Both behave like
//! `tests/node/server.js` on "echo", "ack", "request-ack", "disconnect-me" and "/admin", and
//! report their port and exit with their stdin like it (see [`ServerProcess`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::process::ServerProcess;

/// Which server implementation to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerKind {
    /// python-socketio 5 with python-engineio 4 on aiohttp (Engine.IO 4, Socket.IO 5).
    PythonSocketio,
    /// socketioxide 0.18 on hyper 1 (Engine.IO 4, Socket.IO 5).
    Socketioxide,
}

/// `pingInterval` and `pingTimeout` in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// `pingInterval`.
    pub interval_ms: u64,
    /// `pingTimeout`.
    pub timeout_ms: u64,
}

/// A running python-socketio or socketioxide server process. Dropping it kills the process.
pub struct ExternalServer {
    kind: ServerKind,
    port: u16,
    proc: ServerProcess,
}

impl ExternalServer {
    /// Starts a server on an ephemeral port, with the implementation's default heartbeat when
    /// `heartbeat` is `None`. Creates the Python venv or builds the socketioxide server first
    /// when needed (once per test binary). Panics with the reason (missing python3, failed
    /// `pip install` or `cargo build`, the server's stderr) otherwise.
    pub fn start(kind: ServerKind, heartbeat: Option<Heartbeat>) -> ExternalServer {
        let mut cmd = match kind {
            ServerKind::PythonSocketio => {
                let mut cmd = Command::new(python_venv());
                cmd.arg(python_dir().join("server.py"));
                cmd
            }
            ServerKind::Socketioxide => Command::new(socketioxide_binary()),
        };
        if let Some(hb) = heartbeat {
            cmd.args(["--ping-interval", &hb.interval_ms.to_string()])
                .args(["--ping-timeout", &hb.timeout_ms.to_string()]);
        }
        match ServerProcess::spawn(cmd, 0) {
            Ok((proc, port)) => ExternalServer { kind, port, proc },
            Err(msg) => panic!("starting the {kind:?} server failed: {msg}"),
        }
    }

    /// The implementation this handle runs.
    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Everything the server wrote to stderr so far (capped).
    pub fn stderr(&self) -> String {
        self.proc.stderr()
    }
}

impl std::fmt::Debug for ExternalServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalServer")
            .field("kind", &self.kind)
            .field("port", &self.port)
            .field("pid", &self.proc.pid())
            .finish()
    }
}

fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("python")
}

/// The venv's python, after `tests/python/setup-venv.sh` made sure the venv matches
/// requirements.txt (a no-op when it does; .ci/run runs the same script up front).
pub fn python_venv() -> PathBuf {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let made = PYTHON.get_or_init(|| {
        let script = python_dir().join("setup-venv.sh");
        let out = Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("could not run {}: {e}", script.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        match stdout.lines().last() {
            Some(python) if out.status.success() => Ok(PathBuf::from(python)),
            _ => Err(format!(
                "{} failed ({}):\n{stdout}{}",
                script.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )),
        }
    });
    match made {
        Ok(python) => python.clone(),
        Err(msg) => panic!(
            "the python-socketio interop tests need python3 (3.8+, with venv) on PATH and \
             PyPI for tests/python/requirements.txt: {msg}"
        ),
    }
}

/// Builds `tests/socketioxide-server` (debug, `--locked`) into its own directory under the
/// target directory, once per test binary, and returns the binary's path.
pub fn socketioxide_binary() -> PathBuf {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BINARY.get_or_init(|| {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join("socketioxide-server")
            .join("Cargo.toml");
        // CARGO_TARGET_TMPDIR is `<target dir>/tmp`, wherever the target dir was put.
        let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("CARGO_TARGET_TMPDIR has a parent")
            .join("socketioxide-server");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
        let out = Command::new(&cargo)
            .args(["build", "--locked", "--quiet", "--manifest-path"])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&target_dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("could not run {}: {e}", Path::new(&cargo).display()))?;
        if !out.status.success() {
            return Err(format!(
                "`cargo build --locked --manifest-path {}` failed ({}):\n{}{}",
                manifest.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(target_dir.join("debug").join(format!(
            "socketioxide-server{}",
            std::env::consts::EXE_SUFFIX
        )))
    });
    match built {
        Ok(binary) => binary.clone(),
        Err(msg) => panic!("building the socketioxide test server failed: {msg}"),
    }
}
