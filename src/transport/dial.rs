//! The WebSocket's TCP dial, the Happy Eyeballs way (RFC 8305): addresses interleaved by
//! family and raced with a stagger, so that a half-broken IPv6 costs 250 ms, not a timeout.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};

/// How long an attempt on one address runs alone before the next address starts beside it
/// (RFC 8305's recommended Connection Attempt Delay).
pub(crate) const HAPPY_EYEBALLS_STAGGER: Duration = Duration::from_millis(250);

/// Opens a TCP connection to `host:port` the Happy Eyeballs way (RFC 8305): the resolved
/// addresses interleaved by family, each attempt given a 250 ms head start before the next
/// one starts beside it, a failure starting the next at once, and the first connection wins.
/// A host with broken IPv6 (an address that never answers) then costs 250 ms, not a timeout.
/// `resolved` replaces DNS when given (`ClientBuilder::resolve`).
pub(crate) async fn dial(
    host: &str,
    port: u16,
    resolved: Option<Vec<SocketAddr>>,
) -> io::Result<tokio::net::TcpStream> {
    let addrs: Vec<SocketAddr> = match resolved {
        Some(addrs) => addrs,
        None => tokio::net::lookup_host((host, port)).await?.collect(),
    };
    race_addresses(
        interleave_families(addrs),
        HAPPY_EYEBALLS_STAGGER,
        tokio::net::TcpStream::connect,
    )
    .await
}

/// RFC 8305 section 4: alternate address families, starting with the resolver's first
/// preference, keeping the resolver's order within a family.
pub(crate) fn interleave_families(addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let Some(first) = addrs.first() else {
        return addrs;
    };
    let first_is_v6 = first.is_ipv6();
    let (mut preferred, mut other): (Vec<_>, Vec<_>) =
        addrs.into_iter().partition(|a| a.is_ipv6() == first_is_v6);
    let mut out = Vec::with_capacity(preferred.len() + other.len());
    preferred.reverse();
    other.reverse();
    loop {
        match (preferred.pop(), other.pop()) {
            (None, None) => return out,
            (a, b) => out.extend(a.into_iter().chain(b)),
        }
    }
}

/// Races connection attempts to `addrs` in order with `stagger` between starts (a failed
/// attempt starts the next at once); the first to connect wins and the others are dropped.
/// Fails with the last error when every address failed.
pub(crate) async fn race_addresses<C, F, T>(
    addrs: Vec<SocketAddr>,
    stagger: Duration,
    connect: C,
) -> io::Result<T>
where
    C: Fn(SocketAddr) -> F,
    F: Future<Output = io::Result<T>>,
{
    let mut waiting = addrs.into_iter();
    let mut running = FuturesUnordered::new();
    let mut last_error = None;
    loop {
        if running.is_empty() {
            match waiting.next() {
                Some(addr) => running.push(connect(addr)),
                None => {
                    return Err(last_error.unwrap_or_else(|| {
                        io::Error::new(io::ErrorKind::NotFound, "the host resolved to no address")
                    }))
                }
            }
        }
        let more_waiting = waiting.len() > 0;
        tokio::select! {
            Some(outcome) = running.next() => match outcome {
                Ok(stream) => return Ok(stream),
                Err(error) => {
                    last_error = Some(error);
                    if let Some(addr) = waiting.next() {
                        running.push(connect(addr));
                    }
                }
            },
            () = tokio::time::sleep(stagger), if more_waiting => {
                if let Some(addr) = waiting.next() {
                    running.push(connect(addr));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const WAIT: Duration = Duration::from_secs(30);

    #[test]
    fn families_alternate_from_the_first_preference() {
        let v6a: SocketAddr = "[2001:db8::1]:80".parse().unwrap();
        let v6b: SocketAddr = "[2001:db8::2]:80".parse().unwrap();
        let v4a: SocketAddr = "192.0.2.1:80".parse().unwrap();
        let v4b: SocketAddr = "192.0.2.2:80".parse().unwrap();
        let v4c: SocketAddr = "192.0.2.3:80".parse().unwrap();
        assert_eq!(
            interleave_families(vec![v6a, v6b, v4a, v4b, v4c]),
            vec![v6a, v4a, v6b, v4b, v4c]
        );
        assert_eq!(
            interleave_families(vec![v4a, v4b, v6a]),
            vec![v4a, v6a, v4b]
        );
        assert!(interleave_families(Vec::new()).is_empty());
    }

    /// The first address never answers (a blackholed IPv6 route, say): the second, a real
    /// listener on 127.0.0.1, is tried after the stagger and wins, while a plain sequential
    /// dial would wait on the first forever.
    #[tokio::test]
    async fn an_address_that_never_answers_does_not_stall_the_dial() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let reachable = listener.local_addr().unwrap();
        // Documentation prefix (RFC 3849): never dialled, the connector below stands in for
        // a route that drops every SYN.
        let unreachable: SocketAddr = "[2001:db8::dead]:9".parse().unwrap();
        let attempted = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = attempted.clone();
        let dial = race_addresses(
            interleave_families(vec![unreachable, reachable]),
            HAPPY_EYEBALLS_STAGGER,
            move |addr| {
                log.lock().unwrap().push(addr);
                async move {
                    if addr == unreachable {
                        std::future::pending::<()>().await;
                    }
                    tokio::net::TcpStream::connect(addr).await
                }
            },
        );
        let stream = tokio::time::timeout(WAIT, dial)
            .await
            .expect("the reachable address won within the deadline")
            .expect("connected");
        assert_eq!(stream.peer_addr().unwrap(), reachable);
        let (_accepted, from) = tokio::time::timeout(WAIT, listener.accept())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(from, stream.local_addr().unwrap());
        assert_eq!(*attempted.lock().unwrap(), vec![unreachable, reachable]);
    }

    /// A listener on 127.0.0.1 whose accept queue is full: the kernel drops further SYNs, so
    /// a connection attempt to it hangs like one to a blackholed route, without any traffic
    /// leaving the machine. Returned with the connections that fill it, which must live as long
    /// as the black hole is used.
    async fn black_hole() -> (
        tokio::net::TcpListener,
        Vec<tokio::net::TcpStream>,
        SocketAddr,
    ) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut fillers = Vec::new();
        // Connect until one attempt hangs: the queue is full from then on.
        for _ in 0..64 {
            // A loopback connect with room in the queue completes in the kernel at once.
            match tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr))
                .await
            {
                Ok(Ok(stream)) => fillers.push(stream),
                Ok(Err(e)) => panic!("connecting to the listener: {e}"),
                Err(_) => return (listener, fillers, addr),
            }
        }
        panic!("64 connections never filled a listener with backlog 0");
    }

    /// The same with the kernel's own black hole and real connects: the second address wins.
    #[tokio::test]
    async fn a_blackholed_address_first_loses_to_the_second() {
        let (_blocked, _fillers, unreachable) = black_hole().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let reachable = listener.local_addr().unwrap();
        let stream = tokio::time::timeout(
            WAIT,
            race_addresses(
                vec![unreachable, reachable],
                HAPPY_EYEBALLS_STAGGER,
                tokio::net::TcpStream::connect,
            ),
        )
        .await
        .expect("the reachable address won within the deadline")
        .expect("connected");
        assert_eq!(stream.peer_addr().unwrap(), reachable);
    }

    /// A refused address moves on to the next at once, and the error of the last address is
    /// what a dial where every address fails reports.
    #[tokio::test]
    async fn refused_addresses_fall_through_and_the_last_error_is_kept() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let reachable = listener.local_addr().unwrap();
        // A port that was just listening and is closed now: refused at once on loopback.
        let closed = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap()
        };
        // A stagger longer than the deadline: only the fast failure can start the second.
        let long = Duration::from_secs(3600);
        let stream = tokio::time::timeout(
            WAIT,
            race_addresses(
                vec![closed, reachable],
                long,
                tokio::net::TcpStream::connect,
            ),
        )
        .await
        .expect("the refusal started the next address without waiting for the stagger")
        .expect("connected");
        assert_eq!(stream.peer_addr().unwrap(), reachable);

        let error = race_addresses(vec![closed], long, tokio::net::TcpStream::connect)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
        let error = race_addresses(Vec::new(), long, tokio::net::TcpStream::connect)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
    }
}
