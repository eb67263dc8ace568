//! Real socket.io servers from npm (`tests/node/server.js`), one Node process each.
//!
//! The server listens on 127.0.0.1 with an ephemeral port, reports it as one JSON line on
//! stdout, and exits when its stdin closes (see [`ServerProcess`]); dropping the handle kills
//! the process outright.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::process::ServerProcess;

const NEED_NODE: &str =
    "the interop tests start real socket.io servers and need Node.js 18+ and npm on PATH";

/// Which socket.io server major version to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SioVersion {
    /// socket.io 4.8.x (Engine.IO protocol 4, Socket.IO protocol 5).
    V4,
    /// socket.io 2.5.x (Engine.IO protocol 3, Socket.IO protocol 4).
    V2,
}

impl SioVersion {
    /// The `EIO` query value this server speaks.
    pub fn eio(self) -> u8 {
        match self {
            SioVersion::V4 => 4,
            SioVersion::V2 => 3,
        }
    }

    fn flag(self) -> &'static str {
        match self {
            SioVersion::V4 => "4",
            SioVersion::V2 => "2",
        }
    }
}

/// Server settings; `None` keeps socket.io's own default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeOptions {
    /// `pingInterval` in milliseconds.
    pub ping_interval_ms: Option<u64>,
    /// `pingTimeout` in milliseconds.
    pub ping_timeout_ms: Option<u64>,
    /// `maxHttpBufferSize` in bytes.
    pub max_payload: Option<u64>,
    /// `connectionStateRecovery` (v4 only; server.js refuses it for v2).
    pub recovery: bool,
}

/// A running socket.io server process. Dropping it kills the process.
pub struct NodeServer {
    version: SioVersion,
    options: NodeOptions,
    port: u16,
    proc: Option<ServerProcess>,
    /// Logs of processes this handle ran before (see [`NodeServer::restart`]).
    old_stderr: String,
}

impl NodeServer {
    /// Starts a server on an ephemeral port. Panics (with the server's stderr) if Node.js
    /// is missing, `npm ci` fails, or the server does not report its port within 20 s.
    pub fn start(version: SioVersion, options: NodeOptions) -> NodeServer {
        ensure_node_deps();
        match spawn(version, &options, 0) {
            Ok((proc, port)) => NodeServer {
                version,
                options,
                port,
                proc: Some(proc),
                old_stderr: String::new(),
            },
            Err(msg) => panic!("starting the socket.io {version:?} server failed: {msg}"),
        }
    }

    /// [`NodeServer::start`] with socket.io's default settings.
    pub fn start_default(version: SioVersion) -> NodeServer {
        NodeServer::start(version, NodeOptions::default())
    }

    /// The TCP port on 127.0.0.1; stays the same across [`NodeServer::restart`].
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server version this handle runs.
    pub fn version(&self) -> SioVersion {
        self.version
    }

    /// The options this handle was started with.
    pub fn options(&self) -> &NodeOptions {
        &self.options
    }

    /// The OS process id, or `None` after [`NodeServer::kill`].
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(ServerProcess::pid)
    }

    /// Whether a process is currently running (not killed through this handle).
    pub fn is_running(&self) -> bool {
        self.proc.is_some()
    }

    /// Everything the server processes of this handle wrote to stderr so far (capped).
    pub fn stderr(&self) -> String {
        let mut out = self.old_stderr.clone();
        if let Some(p) = &self.proc {
            out.push_str(&p.stderr());
        }
        out
    }

    /// Kills the process with SIGKILL and reaps it: when this returns the port no longer
    /// accepts connections. Existing connections are cut without a close frame, as in a
    /// server crash. Idempotent.
    pub fn kill(&mut self) {
        if let Some(p) = self.proc.take() {
            self.old_stderr.push_str(&p.kill());
        }
    }

    /// Kills the current process (if any) and starts a fresh one with the same version and
    /// options on the SAME port, for reconnection tests. The new server shares no state with
    /// the old one (new session ids, no recovery data).
    pub fn restart(&mut self) {
        self.kill();
        match spawn(self.version, &self.options, self.port) {
            Ok((proc, port)) => {
                debug_assert_eq!(port, self.port);
                self.proc = Some(proc);
            }
            Err(msg) => panic!(
                "restarting the socket.io {:?} server on port {} failed: {msg}\n--- earlier stderr ---\n{}",
                self.version, self.port, self.old_stderr
            ),
        }
    }
}

impl NodeServer {
    /// [`NodeServer::restart`] with another socket.io version on the same port: a server
    /// upgraded (or downgraded) in place.
    pub fn restart_as(&mut self, version: SioVersion) {
        self.kill();
        self.version = version;
        self.restart();
    }
}

impl Drop for NodeServer {
    fn drop(&mut self) {
        self.kill();
    }
}

impl std::fmt::Debug for NodeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeServer")
            .field("version", &self.version)
            .field("port", &self.port)
            .field("pid", &self.pid())
            .finish()
    }
}

/// The directory holding `server.js`, `package.json` and `node_modules`. `SIO_CLIENT_ROOT` is
/// for crates outside the checkout's root that reuse this file (benches/peers sets it).
pub fn node_dir() -> PathBuf {
    Path::new(option_env!("SIO_CLIENT_ROOT").unwrap_or(env!("CARGO_MANIFEST_DIR")))
        .join("tests")
        .join("node")
}

/// Checks for Node.js once per test binary and installs the npm packages if they are
/// missing. Panics with a readable explanation otherwise. [`NodeServer::start`] calls it;
/// only tests that run `server.js` by hand need it.
pub fn ensure_node_deps() {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(msg) = READY.get_or_init(prepare) {
        panic!("{NEED_NODE}: {msg}");
    }
}

fn prepare() -> Result<(), String> {
    let out = Command::new("node")
        .arg("--version")
        .output()
        .map_err(|e| format!("could not run `node --version`: {e}"))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let major = version
        .strip_prefix('v')
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse::<u32>().ok());
    match major {
        Some(m) if m >= 18 => {}
        _ => return Err(format!("`node --version` printed {version:?}")),
    }

    let dir = node_dir();
    let modules = dir.join("node_modules");
    let present = |pkg: &str| modules.join(pkg).join("package.json").is_file();
    // socket.io 2 brings a socket.io-client 2 of its own: mock_client.js needs the 4.x one
    // from package.json, so an older node_modules is installed again.
    let client_4 = std::fs::read_to_string(modules.join("socket.io-client").join("package.json"))
        .is_ok_and(|json| json.contains("\"version\": \"4."));
    let installed = present("socket.io") && present("socket.io-v2") && client_4;
    if installed {
        return Ok(());
    }
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("could not run `npm ci` in {}: {e}", dir.display()))?;
    if !out.status.success() {
        return Err(format!(
            "`npm ci --no-audit --no-fund` in {} failed ({}):\n{}{}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

fn spawn(
    version: SioVersion,
    options: &NodeOptions,
    port: u16,
) -> Result<(ServerProcess, u16), String> {
    let dir = node_dir();
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("server.js"))
        .args(["--sio", version.flag()])
        .current_dir(&dir);
    if port != 0 {
        cmd.args(["--port", &port.to_string()]);
    }
    if let Some(ms) = options.ping_interval_ms {
        cmd.args(["--ping-interval", &ms.to_string()]);
    }
    if let Some(ms) = options.ping_timeout_ms {
        cmd.args(["--ping-timeout", &ms.to_string()]);
    }
    if let Some(bytes) = options.max_payload {
        cmd.args(["--max-payload", &bytes.to_string()]);
    }
    if options.recovery {
        cmd.arg("--recovery");
    }
    ServerProcess::spawn(cmd, port)
}
