//! A SOCKS5 proxy (RFC 1928, `CONNECT` only) with optional username/password authentication
//! (RFC 1929), for testing `socks5://` and `socks5h://` proxies on every transport.
//!
//! [`Socks5Server`] listens on 127.0.0.1 with an ephemeral port and records every `CONNECT`
//! target as the client sent it: an address ([`SocksHost::Ip`], what `socks5://` sends after
//! resolving the name itself) or a name ([`SocksHost::Name`], what `socks5h://` sends for the
//! proxy to resolve). It resolves names itself, first from names given to
//! [`Socks5Server::add_name`] (names only the proxy knows, as `.onion` names behind Tor), and
//! pipes bytes both ways. Its tasks live in a [`Background`] that the handle drops.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::background::{Background, Tasks};

/// The target of one `CONNECT`, as the client named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocksHost {
    /// An address (address types 1 and 4): the client resolved the name.
    Ip(IpAddr),
    /// A name (address type 3) for the proxy to resolve.
    Name(String),
}

/// One `CONNECT` request the server saw (authenticated ones only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocksRequest {
    pub host: SocksHost,
    pub port: u16,
}

/// Counters of a [`Socks5Server`], a snapshot taken by [`Socks5Server::stats`]; each is
/// updated before the answer that goes with it is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocksStats {
    /// TCP connections accepted.
    pub connections: u64,
    /// Username/password checks that succeeded.
    pub auth_ok: u64,
    /// Username/password checks that failed, or clients that offered no acceptable method.
    pub auth_rejected: u64,
    /// Tunnels established (success reply sent).
    pub tunnels: u64,
}

/// A SOCKS5 proxy; see the [module docs](self). Dropping it stops every task and closes every
/// connection it holds.
pub struct Socks5Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    background: Background,
}

impl fmt::Debug for Socks5Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socks5Server")
            .field("addr", &self.addr)
            .field("auth", &self.shared.credentials.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    auth_ok: AtomicU64,
    auth_rejected: AtomicU64,
    tunnels: AtomicU64,
}

struct Shared {
    credentials: Option<(String, String)>,
    counters: Counters,
    requests: Mutex<Vec<SocksRequest>>,
    names: Mutex<HashMap<String, SocketAddr>>,
    tasks: Arc<Tasks>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Socks5Server {
    /// Starts a server on the current tokio runtime. With `credentials` (`(user, password)`)
    /// only the username/password method is accepted, and only with these.
    pub async fn start(credentials: Option<(String, String)>) -> Socks5Server {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("listener address");
        let background = Background::on_current_runtime();
        let shared = Arc::new(Shared {
            credentials,
            counters: Counters::default(),
            requests: Mutex::new(Vec::new()),
            names: Mutex::new(HashMap::new()),
            tasks: background.tasks(),
        });
        background.spawn(accept_loop(listener, shared.clone()));
        Socks5Server {
            addr,
            shared,
            background,
        }
    }

    /// Starts a server on a small runtime of its own, for tests without async code.
    pub fn start_background(credentials: Option<(String, String)>) -> Socks5Server {
        Background::start_on_own_runtime(
            "socks5-proxy",
            Socks5Server::start(credentials),
            |server: &mut Socks5Server| &mut server.background,
        )
    }

    /// `SCHEME://[user:password@]127.0.0.1:PORT` with the credentials percent-encoded as URL
    /// userinfo, for `scheme` `socks5` or `socks5h`.
    pub fn url(&self, scheme: &str) -> String {
        let mut url = url::Url::parse(&format!("{scheme}://{}", self.addr)).expect("proxy URL");
        if let Some((user, pass)) = &self.shared.credentials {
            url.set_username(user).expect("URL takes a username");
            url.set_password(Some(pass)).expect("URL takes a password");
        }
        url.as_str().trim_end_matches('/').to_owned()
    }

    /// The same URL without credentials.
    pub fn url_without_credentials(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.addr)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Makes the proxy resolve `name` (any port) to `addr`'s IP: a name the client itself
    /// cannot resolve, so only `socks5h://` reaches it.
    pub fn add_name(&self, name: &str, addr: SocketAddr) {
        lock(&self.shared.names).insert(name.to_ascii_lowercase(), addr);
    }

    /// Every authenticated `CONNECT` target so far, in order.
    pub fn requests(&self) -> Vec<SocksRequest> {
        lock(&self.shared.requests).clone()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> SocksStats {
        let c = &self.shared.counters;
        SocksStats {
            connections: c.connections.load(Ordering::SeqCst),
            auth_ok: c.auth_ok.load(Ordering::SeqCst),
            auth_rejected: c.auth_rejected.load(Ordering::SeqCst),
            tunnels: c.tunnels.load(Ordering::SeqCst),
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of descriptors or similar: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        shared.counters.connections.fetch_add(1, Ordering::SeqCst);
        let conn_shared = shared.clone();
        shared.tasks.spawn(async move {
            let _ = serve(stream, conn_shared).await;
        });
    }
}

const NO_AUTH: u8 = 0x00;
const USER_PASS: u8 = 0x02;
const NO_ACCEPTABLE: u8 = 0xff;

fn protocol_error(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// Reply with a failure code and the all-zero IPv4 bound address.
async fn refuse(client: &mut TcpStream, code: u8) -> io::Result<()> {
    client.write_all(&[5, code, 0, 1, 0, 0, 0, 0, 0, 0]).await
}

async fn serve(mut client: TcpStream, shared: Arc<Shared>) -> io::Result<()> {
    let mut head = [0u8; 2];
    client.read_exact(&mut head).await?;
    if head[0] != 5 {
        return Err(protocol_error("not SOCKS5"));
    }
    let mut methods = vec![0u8; usize::from(head[1])];
    client.read_exact(&mut methods).await?;
    let wanted = if shared.credentials.is_some() {
        USER_PASS
    } else {
        NO_AUTH
    };
    if !methods.contains(&wanted) {
        shared.counters.auth_rejected.fetch_add(1, Ordering::SeqCst);
        client.write_all(&[5, NO_ACCEPTABLE]).await?;
        return Ok(());
    }
    client.write_all(&[5, wanted]).await?;
    if let Some((user, pass)) = &shared.credentials {
        // RFC 1929: VER=1, ULEN, UNAME, PLEN, PASSWD.
        let version = client.read_u8().await?;
        if version != 1 {
            return Err(protocol_error("username/password version"));
        }
        let mut got_user = vec![0u8; usize::from(client.read_u8().await?)];
        client.read_exact(&mut got_user).await?;
        let mut got_pass = vec![0u8; usize::from(client.read_u8().await?)];
        client.read_exact(&mut got_pass).await?;
        if got_user != user.as_bytes() || got_pass != pass.as_bytes() {
            shared.counters.auth_rejected.fetch_add(1, Ordering::SeqCst);
            client.write_all(&[1, 1]).await?;
            return Ok(());
        }
        shared.counters.auth_ok.fetch_add(1, Ordering::SeqCst);
        client.write_all(&[1, 0]).await?;
    }
    let mut request = [0u8; 4];
    client.read_exact(&mut request).await?;
    if request[0] != 5 {
        return Err(protocol_error("request version"));
    }
    let host = match request[3] {
        1 => {
            let mut octets = [0u8; 4];
            client.read_exact(&mut octets).await?;
            SocksHost::Ip(IpAddr::V4(Ipv4Addr::from(octets)))
        }
        4 => {
            let mut octets = [0u8; 16];
            client.read_exact(&mut octets).await?;
            SocksHost::Ip(IpAddr::V6(Ipv6Addr::from(octets)))
        }
        3 => {
            let mut name = vec![0u8; usize::from(client.read_u8().await?)];
            client.read_exact(&mut name).await?;
            SocksHost::Name(String::from_utf8_lossy(&name).into_owned())
        }
        _ => {
            refuse(&mut client, 8).await?;
            return Ok(());
        }
    };
    let port = client.read_u16().await?;
    if request[1] != 1 {
        refuse(&mut client, 7).await?;
        return Ok(());
    }
    lock(&shared.requests).push(SocksRequest {
        host: host.clone(),
        port,
    });
    let known = match &host {
        SocksHost::Name(name) => lock(&shared.names)
            .get(&name.to_ascii_lowercase())
            .map(|addr| SocketAddr::new(addr.ip(), port)),
        SocksHost::Ip(_) => None,
    };
    let candidates: Vec<SocketAddr> = match &host {
        _ if known.is_some() => known.into_iter().collect(),
        SocksHost::Ip(ip) => vec![SocketAddr::new(*ip, port)],
        SocksHost::Name(name) => match tokio::net::lookup_host((name.as_str(), port)).await {
            Ok(addrs) => addrs.collect(),
            Err(_) => {
                refuse(&mut client, 4).await?;
                return Ok(());
            }
        },
    };
    let mut upstream = None;
    for addr in candidates {
        if let Ok(stream) = TcpStream::connect(addr).await {
            upstream = Some(stream);
            break;
        }
    }
    let Some(mut upstream) = upstream else {
        refuse(&mut client, 5).await?;
        return Ok(());
    };
    let _ = upstream.set_nodelay(true);
    let bound = upstream.local_addr()?;
    let mut reply = vec![5, 0, 0];
    match bound.ip() {
        IpAddr::V4(ip) => {
            reply.push(1);
            reply.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            reply.push(4);
            reply.extend_from_slice(&ip.octets());
        }
    }
    reply.extend_from_slice(&bound.port().to_be_bytes());
    shared.counters.tunnels.fetch_add(1, Ordering::SeqCst);
    client.write_all(&reply).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}
