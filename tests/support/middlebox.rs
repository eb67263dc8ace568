//! Real proxies and load balancers from Debian (squid, nginx, haproxy), one process each, in
//! front of the test servers: what users sit behind, where proxy.rs and sticky.rs are fakes.
//!
//! Each launcher writes a generated configuration into a fresh temp dir, starts the binary in
//! the foreground on 127.0.0.1 with an ephemeral port, and returns once the process answers a
//! probe request with a token unique to this instance (so a port someone else grabbed in the
//! meantime is never mistaken for ours; a clash is retried on another port). Logs go to the
//! temp dir and their tails are in every panic message, and in [`Middlebox::logs`].
//!
//! The binary runs under a small `sh` watchdog that holds a pipe from this process: when the
//! handle is dropped, or the test binary dies any way at all, the pipe closes and the watchdog
//! kills the binary. So no squid is ever left behind holding a port.
//!
//! A missing binary fails the test with a message naming the install step; `.ci/run` installs
//! all three with apt-get.

use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// How long a middlebox may take to answer its probe. Generous: CI has two cores shared with
/// compiling test binaries and Node servers starting.
const STARTUP_DEADLINE: Duration = Duration::from_secs(30);

/// Ports tried before giving up when each one turns out to be taken.
const PORT_TRIES: usize = 5;

/// The path every generated configuration answers itself with the instance's token.
const PROBE_PATH: &str = "/__middlebox_probe";

/// Lines of each log file shown in failure messages.
const LOG_TAIL_LINES: usize = 40;

/// Runs `"$@"` with stdin from /dev/null and kills it when this script's stdin closes (the
/// handle dropped it, or the test process is gone). The watcher reads a copy of stdin made
/// before the tool starts: an asynchronous list in a non-interactive shell otherwise reads
/// /dev/null and would fire at once. Once the tool has been reaped the watcher is stopped, so
/// its kill can never hit a recycled pid.
const WATCHDOG: &str = r#"exec 3<&0 </dev/null
"$@" 3<&- &
tool=$!
{ cat <&3 >/dev/null; kill -KILL "$tool" 2>/dev/null; } &
watcher=$!
exec 3<&-
wait "$tool"
status=$?
kill "$watcher" 2>/dev/null
exit "$status"
"#;

/// Which program a [`Middlebox`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// squid, the forward (caching) proxy.
    Squid,
    /// nginx, as a reverse proxy.
    Nginx,
    /// haproxy, the load balancer.
    Haproxy,
}

impl Tool {
    fn binary(self) -> &'static str {
        match self {
            Tool::Squid => "squid",
            Tool::Nginx => "nginx",
            Tool::Haproxy => "haproxy",
        }
    }

    fn package(self) -> &'static str {
        match self {
            Tool::Squid => "squid",
            Tool::Nginx => "nginx-light",
            Tool::Haproxy => "haproxy",
        }
    }
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.binary())
    }
}

/// What a squid forward proxy lets through with `CONNECT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SquidPolicy {
    /// Debian's shipped access rules: `CONNECT` only to port 443 (`http_access deny CONNECT
    /// !SSL_ports`), plain HTTP to any safe port, everything for localhost clients.
    Shipped,
    /// The shipped rules with these ports added to `SSL_ports`, as an administrator does to let
    /// WebSocket tunnels through to them.
    AllowConnectTo(Vec<u16>),
}

/// How an nginx reverse proxy forwards to its upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NginxOptions {
    /// Forward WebSocket upgrades: `proxy_http_version 1.1` and the `Upgrade`/`Connection`
    /// headers set. Without it, plain `proxy_pass` (HTTP/1.0 to the upstream, hop-by-hop
    /// headers dropped), the common misconfiguration.
    pub websocket: bool,
    /// `proxy_read_timeout` in whole seconds (nginx's default: 60 s).
    pub read_timeout_secs: Option<u64>,
}

/// How an haproxy load balancer in HTTP mode spreads requests over its backends (round robin).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HaproxyOptions {
    /// Cookie stickiness: `cookie SERVERID insert indirect nocache`, one cookie value per server.
    pub sticky: bool,
    /// Refuse WebSocket upgrades: `http-request deny deny_status 403 if { hdr(upgrade) -i
    /// websocket }`.
    pub deny_websocket: bool,
}

/// A running proxy or load balancer. Dropping it kills the process and removes its temp dir
/// (kept, with its path printed, when the thread is panicking).
pub struct Middlebox {
    tool: Tool,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    // Held so the watchdog's stdin stays open; closing it kills the tool.
    stdin: Option<ChildStdin>,
}

impl Middlebox {
    /// squid as a forward proxy with Debian's access rules (see [`SquidPolicy`]), no cache.
    /// Its logs: `access.log` (one line per request, a tunnel's when it closes), `cache.log`.
    pub fn squid(policy: &SquidPolicy) -> Middlebox {
        let ssl_ports: Vec<String> = match policy {
            SquidPolicy::Shipped => vec!["443".into()],
            SquidPolicy::AllowConnectTo(extra) => std::iter::once("443".to_string())
                .chain(extra.iter().map(u16::to_string))
                .collect(),
        };
        let ssl_ports = ssl_ports.join(" ");
        launch(Tool::Squid, |port, dir, token| {
            let d = dir.display();
            // The ACL and http_access lines are Debian's squid.conf's (SSL_ports aside), and
            // so is `logfile_rotate 0` (its conf.d/debian.conf).
            // Running as root, squid switches to `cache_effective_user`, so every file it
            // writes is in the (world-writable) temp dir; no cache dir, nothing cached; DNS
            // only ever to loopback (the tests use IP literals).
            format!(
                "\
acl localnet src 0.0.0.1-0.255.255.255
acl localnet src 10.0.0.0/8
acl localnet src 100.64.0.0/10
acl localnet src 169.254.0.0/16
acl localnet src 172.16.0.0/12
acl localnet src 192.168.0.0/16
acl localnet src fc00::/7
acl localnet src fe80::/10
acl SSL_ports port {ssl_ports}
acl Safe_ports port 80
acl Safe_ports port 21
acl Safe_ports port 443
acl Safe_ports port 70
acl Safe_ports port 210
acl Safe_ports port 1025-65535
acl Safe_ports port 280
acl Safe_ports port 488
acl Safe_ports port 591
acl Safe_ports port 777
http_access deny !Safe_ports
http_access deny CONNECT !SSL_ports
http_access allow localhost manager
http_access deny manager
http_access allow localhost
http_access deny all
http_port 127.0.0.1:{port}
visible_hostname {token}
cache_effective_user proxy
pid_filename {d}/squid.pid
cache_log {d}/cache.log
access_log stdio:{d}/access.log
cache_store_log none
coredump_dir {d}
cache deny all
cache_mem 8 MB
netdb_filename none
digest_generation off
pinger_enable off
dns_nameservers 127.0.0.1
logfile_rotate 0
shutdown_lifetime 0 seconds
"
            )
        })
    }

    /// nginx as a reverse proxy in front of `upstream` (a port on 127.0.0.1). Its logs:
    /// `access.log`, `error.log` (at level info, so it names the connections it times out).
    pub fn nginx(upstream: u16, options: &NginxOptions) -> Middlebox {
        let mut proxy = format!("proxy_pass http://127.0.0.1:{upstream};\n");
        if options.websocket {
            proxy.push_str(
                "proxy_http_version 1.1;\n\
                 proxy_set_header Upgrade $http_upgrade;\n\
                 proxy_set_header Connection \"upgrade\";\n",
            );
        }
        if let Some(secs) = options.read_timeout_secs {
            proxy.push_str(&format!("proxy_read_timeout {secs}s;\n"));
        }
        launch(Tool::Nginx, |port, dir, token| {
            let d = dir.display();
            // One process (no master/worker split), so killing it leaves no worker behind.
            format!(
                "\
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
http {{
access_log {d}/access.log;
client_body_temp_path {d}/client_body;
proxy_temp_path {d}/proxy;
fastcgi_temp_path {d}/fastcgi;
uwsgi_temp_path {d}/uwsgi;
scgi_temp_path {d}/scgi;
server {{
listen 127.0.0.1:{port};
location = {PROBE_PATH} {{ return 200 \"{token}\"; }}
location / {{
{proxy}}}
}}
}}
"
            )
        })
    }

    /// haproxy in HTTP mode balancing round robin over `backends` (ports on 127.0.0.1), named
    /// `node0`, `node1`, … in its request log, `stdout.log`.
    pub fn haproxy(backends: &[u16], options: &HaproxyOptions) -> Middlebox {
        assert!(!backends.is_empty(), "haproxy needs at least one backend");
        let deny = if options.deny_websocket {
            "http-request deny deny_status 403 if { hdr(upgrade) -i websocket }\n"
        } else {
            ""
        };
        let mut backend = String::from("balance roundrobin\n");
        if options.sticky {
            backend.push_str("cookie SERVERID insert indirect nocache\n");
        }
        for (i, port) in backends.iter().enumerate() {
            backend.push_str(&format!("server node{i} 127.0.0.1:{port}"));
            if options.sticky {
                backend.push_str(&format!(" cookie node{i}"));
            }
            backend.push('\n');
        }
        launch(Tool::Haproxy, |port, _dir, token| {
            // Logs go to stdout, which is a file in the temp dir.
            format!(
                "\
global
log stdout format raw local0 info
defaults
mode http
log global
option httplog
timeout connect 5s
timeout client 60s
timeout server 60s
timeout tunnel 1h
frontend front
bind 127.0.0.1:{port}
http-request return status 200 content-type text/plain string {token} if {{ path {PROBE_PATH} }}
{deny}default_backend nodes
backend nodes
{backend}"
            )
        })
    }

    /// Which program this is.
    pub fn tool(&self) -> Tool {
        self.tool
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash: the proxy URL for squid, the server
    /// URL for nginx and haproxy.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The temp dir holding the configuration and the logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The tails of every log this instance wrote so far, for assertion messages.
    pub fn logs(&self) -> String {
        log_tails(&self.dir)
    }

    /// Lines of one log file in the temp dir that contain `needle` (e.g. the access log
    /// entries of one kind of request).
    pub fn log_lines(&self, file: &str, needle: &str) -> Vec<String> {
        fs::read_to_string(self.dir.join(file))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }

    fn stop(&mut self) {
        // Closing the watchdog's stdin makes it kill the tool, then exit.
        drop(self.stdin.take());
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        thread::sleep(Duration::from_millis(20))
                    }
                    // The watchdog is our own child: kill it by its handle as a last resort.
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
    }
}

impl Drop for Middlebox {
    fn drop(&mut self) {
        self.stop();
        if thread::panicking() {
            eprintln!("{} logs kept in {}", self.tool, self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

impl fmt::Debug for Middlebox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Middlebox")
            .field("tool", &self.tool)
            .field("port", &self.port)
            .field("dir", &self.dir)
            .finish()
    }
}

/// The binary's path, or a panic telling how to install it. Debian puts all three in
/// /usr/sbin, which a non-root PATH may lack.
fn find_binary(tool: Tool) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(tool.binary()))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{tool} is not installed: .ci/run installs it with apt-get \
                 (apt-get install -y --no-install-recommends {})",
                tool.package()
            )
        })
}

/// A port that was free a moment ago; [`launch`] retries when someone takes it first.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0")
}

fn fresh_dir(tool: Tool) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "sio-middlebox-{}-{}-{n}",
        tool.binary(),
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    // squid (as root) and nginx's helpers write here under another user.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o777));
    }
    dir
}

fn command_line(tool: Tool, binary: &Path, dir: &Path) -> Vec<String> {
    let conf = |name: &str| dir.join(name).display().to_string();
    let binary = binary.display().to_string();
    match tool {
        Tool::Squid => vec![binary, "-N".into(), "-f".into(), conf("squid.conf")],
        Tool::Nginx => vec![
            binary,
            "-p".into(),
            format!("{}/", dir.display()),
            "-c".into(),
            conf("nginx.conf"),
            // The log nginx writes before it has read the configuration.
            "-e".into(),
            conf("error.log"),
            "-g".into(),
            "daemon off;".into(),
        ],
        Tool::Haproxy => vec![binary, "-f".into(), conf("haproxy.cfg"), "-db".into()],
    }
}

fn config_name(tool: Tool) -> &'static str {
    match tool {
        Tool::Squid => "squid.conf",
        Tool::Nginx => "nginx.conf",
        Tool::Haproxy => "haproxy.cfg",
    }
}

enum Startup {
    Ready,
    /// Exited before it was ready; whether its logs blame a taken port.
    Exited {
        port_taken: bool,
        status: String,
    },
    TimedOut,
}

/// Writes the configuration `render(port, dir, token)` and starts the tool until it answers
/// its probe, on another port when the one picked was taken.
fn launch(tool: Tool, render: impl Fn(u16, &Path, &str) -> String) -> Middlebox {
    let binary = find_binary(tool);
    let mut clashes = Vec::new();
    for _ in 0..PORT_TRIES {
        let port = free_port();
        let dir = fresh_dir(tool);
        // Unique per instance and a valid host name (squid's visible_hostname).
        let token = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let config = render(port, &dir, &token);
        fs::write(dir.join(config_name(tool)), &config)
            .unwrap_or_else(|e| panic!("writing the {tool} configuration: {e}"));
        let file = |name: &str| {
            fs::File::create(dir.join(name))
                .unwrap_or_else(|e| panic!("creating {name} in {}: {e}", dir.display()))
        };
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("sh")
            .args(command_line(tool, &binary, &dir))
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(file("stdout.log"))
            .stderr(file("stderr.log"))
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {tool} under sh: {e}"));
        let stdin = child.stdin.take();
        let mut middlebox = Middlebox {
            tool,
            port,
            dir,
            child: Some(child),
            stdin,
        };
        match wait_ready(&mut middlebox, &token) {
            Startup::Ready => return middlebox,
            Startup::Exited {
                port_taken: true, ..
            } => {
                clashes.push(port);
                continue;
            }
            Startup::Exited { status, .. } => panic!(
                "{tool} exited during startup ({status}); configuration:\n{config}\n{}",
                middlebox.logs()
            ),
            Startup::TimedOut => panic!(
                "{tool} did not answer on 127.0.0.1:{port} within {} s; configuration:\n\
                 {config}\n{}",
                STARTUP_DEADLINE.as_secs(),
                middlebox.logs()
            ),
        }
    }
    panic!("{tool}: every port tried was taken before it could bind it: {clashes:?}")
}

fn wait_ready(middlebox: &mut Middlebox, token: &str) -> Startup {
    let deadline = Instant::now() + STARTUP_DEADLINE;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, middlebox.port));
    loop {
        let exited = middlebox
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten());
        if let Some(status) = exited {
            let logs = middlebox.logs();
            return Startup::Exited {
                port_taken: logs.contains("in use"),
                status: status.to_string(),
            };
        }
        if probe(addr, token) {
            return Startup::Ready;
        }
        if Instant::now() >= deadline {
            return Startup::TimedOut;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Whether the process on `addr` is ours: its answer to the probe request carries the token
/// (nginx and haproxy answer the probe path with it, squid names itself with it in `Via`).
fn probe(addr: SocketAddr, token: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET {PROBE_PATH} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.take(64 * 1024).read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).contains(token)
}

/// The last lines of every `*.log` file in `dir`, each under its name.
fn log_tails(dir: &Path) -> String {
    let mut names: Vec<PathBuf> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut out = String::new();
    for path in names {
        let text = fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
        out.push_str(&format!(
            "--- {} (last {} of {} lines) ---\n",
            path.display(),
            tail.len(),
            lines.len()
        ));
        for line in tail {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}
