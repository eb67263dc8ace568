//! Choosing and opening the transport of a new session: the one seam for the "getting through"
//! strategy.
//!
//! Transports are tried in the configured order (default WebSocket, streaming, polling), with
//! the one that last worked for the host moved to the front. A failure starts the next one at
//! once; a hang is raced rather than waited out: when the running attempts have not delivered
//! the open packet within the head start (default 300 ms), the next transport starts beside
//! them, happy-eyeballs style. The first open packet wins. Attempts still running then are not
//! cancelled mid-request (a handshake GET cancelled in flight may still open a session on the
//! server); they finish in the background and whatever they opened is closed cleanly, so no
//! orphan session is left on the server.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::diagnosis;
use super::http::HttpSettings;
use super::memory;
use super::net::Net;
use super::polling::{self, PollingTransport};
use super::report::Attempt;
use super::websocket::WebSocketTransport;
use super::{Active, Transport};
use crate::error::ConnectFailure;
use crate::proto::engineio::{detect, EngineVersion, Handshake, Packet};
use crate::Error;

/// What opening a session needs of the user's options (the transport layer does not see the
/// rest of them).
#[derive(Debug, Clone)]
pub(crate) struct ConnectOptions {
    /// The URL as the user gave it (for errors).
    pub(crate) url: String,
    /// Transports to try, in order.
    pub(crate) transports: Vec<Transport>,
    /// Extra headers of every request.
    pub(crate) headers: Vec<(String, String)>,
    /// Bound of every handshake (and of attempts finishing in the background).
    pub(crate) timeout: Duration,
    /// How long a transport may take to deliver the open packet before it counts as held.
    pub(crate) probe_timeout: Duration,
    /// How long the running attempts lead before the next transport starts beside them.
    pub(crate) head_start: Duration,
    /// Whether the transport that worked is tried first next time.
    pub(crate) remember_transport: bool,
    /// Largest message (and response body) accepted.
    pub(crate) max_receive: usize,
}

/// A session opened on some transport.
pub(crate) struct Opened {
    pub(crate) transport: Active,
    pub(crate) handshake: Handshake,
    /// Packets that arrived together with the open packet.
    pub(crate) initial: Vec<Packet>,
    pub(crate) attempts: Vec<Attempt>,
}

/// The HTTP client and settings shared by every request of one connection.
pub(crate) fn http_settings(
    options: &ConnectOptions,
    endpoint: Arc<super::url::Endpoint>,
    net: Arc<Net>,
) -> Result<HttpSettings, Error> {
    let http = net.http_client(options.timeout)?;
    Ok(HttpSettings {
        http,
        net,
        endpoint,
        headers: header_map(&options.headers)?,
        max_response: options.max_receive,
        connect_timeout: options.timeout,
    })
}

/// The user's extra headers, validated.
pub(crate) fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, Error> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Error::InvalidHeader(name.clone()))?;
        let value =
            HeaderValue::from_str(value).map_err(|_| Error::InvalidHeader(name.to_string()))?;
        map.append(name, value);
    }
    Ok(map)
}

type Outcome = Result<(Active, Handshake, Vec<Packet>), Error>;

/// Opens a WebSocket without a session and waits for the open packet.
async fn open_websocket(options: Arc<ConnectOptions>, settings: HttpSettings) -> Outcome {
    let endpoint = &settings.endpoint;
    let url = endpoint.url(Transport::WebSocket, None, 0);
    let mut ws = WebSocketTransport::connect(
        &url,
        &settings.net,
        &options.headers,
        endpoint.version(),
        options.max_receive,
        options.timeout,
    )
    .await?;
    let first = tokio::time::timeout(options.probe_timeout, ws.recv()).await;
    let handshake_error = |body: String| Error::handshake(Transport::WebSocket, Some(101), body);
    let outcome = match first {
        Err(_) => Err(handshake_error(format!(
            "no open packet within {:?} after the upgrade (a middlebox holding the connection?)",
            options.probe_timeout
        ))),
        Ok(Err(e @ Error::Protocol(_))) => Err(e),
        Ok(Err(e)) => Err(Error::Handshake {
            transport: Transport::WebSocket,
            status: Some(101),
            body: e.to_string(),
            source: Some(std::sync::Arc::new(e)),
        }),
        Ok(Ok(None)) => Err(handshake_error("closed before the open packet".into())),
        Ok(Ok(Some(Packet::Open(handshake)))) => {
            return Ok((Active::WebSocket(ws), handshake, Vec::new()))
        }
        Ok(Ok(Some(other))) => Err(handshake_error(format!(
            "expected an open packet, got {other:?}"
        ))),
    };
    ws.close().await;
    outcome
}

/// Opens a long-polling session.
async fn open_polling(settings: HttpSettings) -> Outcome {
    let (handshake, initial) = polling::handshake(&settings).await?;
    let transport = PollingTransport::new(settings, &handshake);
    Ok((Active::Polling(Box::new(transport)), handshake, initial))
}

/// Opens a streaming session; a buffering middlebox shows as no open packet in time.
async fn open_streaming(options: Arc<ConnectOptions>, settings: HttpSettings) -> Outcome {
    let opened = tokio::time::timeout(
        options.probe_timeout,
        polling::handshake_streaming(&settings),
    );
    match opened.await {
        Err(_) => Err(Error::handshake(
            Transport::Streaming,
            None,
            format!(
                "no open packet within {:?} (a proxy buffering the stream?)",
                options.probe_timeout
            ),
        )),
        Ok(Err(e)) => Err(e),
        Ok(Ok((handshake, initial, stream))) => {
            let transport = PollingTransport::streaming(settings, &handshake, stream);
            Ok((Active::Polling(Box::new(transport)), handshake, initial))
        }
    }
}

type AttemptFuture = Pin<Box<dyn Future<Output = (usize, Outcome)> + Send>>;

fn attempt(
    index: usize,
    transport: Transport,
    options: &Arc<ConnectOptions>,
    settings: &HttpSettings,
) -> AttemptFuture {
    let (options, settings) = (options.clone(), settings.clone());
    Box::pin(async move {
        let outcome = match transport {
            Transport::WebSocket => open_websocket(options, settings).await,
            Transport::Streaming => open_streaming(options, settings).await,
            Transport::Polling => open_polling(settings).await,
        };
        (index, outcome)
    })
}

fn status_of(error: &Error) -> Option<u16> {
    match error {
        Error::Handshake { status, .. } => *status,
        _ => None,
    }
}

/// Opens a session on the best transport that works, within `options.timeout`; see the
/// module docs. A failure is [`Error::ConnectFailed`]: every attempt, with hints.
pub(crate) async fn open(
    options: &Arc<ConnectOptions>,
    settings: &HttpSettings,
) -> Result<Opened, Error> {
    let host = settings.endpoint.host_key();
    let configured: Vec<Transport> = options
        .transports
        .iter()
        .copied()
        // Streaming is an Engine.IO v4 extension; socket.io 2 servers never speak it.
        .filter(|&t| {
            !(t == Transport::Streaming && settings.endpoint.version() == EngineVersion::V3)
        })
        .collect();
    let order = if options.remember_transport {
        memory::order(&configured, memory::recall(&host, Instant::now()))
    } else {
        configured
    };
    let start = Instant::now();
    let deadline = tokio::time::sleep(options.timeout);
    tokio::pin!(deadline);
    let mut started: Vec<Instant> = Vec::new();
    let mut records: Vec<Option<Attempt>> = Vec::new();
    let mut failures: Vec<Error> = Vec::new();
    let mut running = FuturesUnordered::new();
    let mut last_error = None;
    let mut winner = None;

    while winner.is_none() {
        if running.is_empty() && started.len() < order.len() {
            let i = started.len();
            started.push(Instant::now());
            records.push(None);
            running.push(attempt(i, order[i], options, settings));
        }
        if running.is_empty() {
            break;
        }
        let more_to_start = started.len() < order.len();
        let head_start = async {
            if more_to_start {
                tokio::time::sleep(options.head_start).await
            } else {
                std::future::pending().await
            }
        };
        tokio::select! {
            Some((i, outcome)) = running.next() => {
                let elapsed = started[i].elapsed();
                let transport = order[i];
                match outcome {
                    Ok(opened) => {
                        tracing::debug!(%transport, ?elapsed, "transport open");
                        records[i] = Some(Attempt {
                            transport,
                            outcome: Ok(()),
                            status: None,
                            started_after: started[i] - start,
                            elapsed,
                        });
                        winner = Some(opened);
                    }
                    Err(error) => {
                        tracing::debug!(%transport, %error, "transport failed");
                        records[i] = Some(Attempt {
                            transport,
                            outcome: Err(error.to_string()),
                            status: status_of(&error),
                            started_after: started[i] - start,
                            elapsed,
                        });
                        failures.push(error.clone());
                        let server_is_socketio2 = matches!(
                            &error,
                            Error::Protocol(e) if detect::is_socketio2_server(e)
                        );
                        last_error = Some(error);
                        if server_is_socketio2 {
                            // A fact about the server, not the transport: every other
                            // transport would reach the same socket.io 2 server.
                            break;
                        }
                        // A fast failure moves on at once, without waiting for the head start.
                        if started.len() < order.len() {
                            let i = started.len();
                            started.push(Instant::now());
                            records.push(None);
                            running.push(attempt(i, order[i], options, settings));
                        }
                    }
                }
            }
            () = head_start => {
                let i = started.len();
                tracing::debug!(next = %order[i], "no open packet yet: racing the next transport");
                started.push(Instant::now());
                records.push(None);
                running.push(attempt(i, order[i], options, settings));
            }
            () = &mut deadline => {
                let timeout = Error::ConnectTimeout(options.timeout);
                failures.push(timeout.clone());
                last_error = Some(timeout);
                break;
            }
        }
    }

    let Some((transport, handshake, initial)) = winner else {
        let attempts = records
            .into_iter()
            .enumerate()
            .map(|(i, record)| {
                record.unwrap_or_else(|| Attempt {
                    transport: order[i],
                    outcome: Err(format!("no answer within {:?}", options.timeout)),
                    status: None,
                    started_after: started[i] - start,
                    elapsed: started[i].elapsed(),
                })
            })
            .collect();
        finish_in_background(running, options.timeout);
        let Some(error) = last_error else {
            return Err(Error::InvalidUrl {
                url: options.url.clone(),
                reason: "no usable transport configured".into(),
            });
        };
        if matches!(&error, Error::Protocol(e) if detect::is_socketio2_server(e)) {
            // Not a failure to get through: the core answers it by switching to Engine.IO v3.
            return Err(error);
        }
        return Err(failed(options, settings, error, attempts, &failures));
    };
    let won = transport.kind();
    if options.remember_transport {
        memory::remember(&host, won, Instant::now());
    }
    let attempts = records
        .into_iter()
        .enumerate()
        .map(|(i, record)| {
            record.unwrap_or_else(|| Attempt {
                transport: order[i],
                outcome: Err(format!("abandoned: {won} connected first")),
                status: None,
                started_after: started[i] - start,
                elapsed: started[i].elapsed(),
            })
        })
        .collect();
    finish_in_background(running, options.timeout);
    Ok(Opened {
        transport,
        handshake,
        initial,
        attempts,
    })
}

/// The report of a connect that got through nowhere.
fn failed(
    options: &ConnectOptions,
    settings: &HttpSettings,
    error: Error,
    attempts: Vec<Attempt>,
    failures: &[Error],
) -> Error {
    let endpoint = &settings.endpoint;
    let proxy = settings
        .net
        .proxy_for(&endpoint.url(Transport::Polling, None, 0))
        .ok()
        .flatten()
        .map(|proxy| {
            // The proxy's address only: its credentials stay out of error messages.
            let host = proxy.host_str().unwrap_or_default();
            match proxy.port_or_known_default() {
                Some(port) => format!("{}://{host}:{port}", proxy.scheme()),
                None => format!("{}://{host}", proxy.scheme()),
            }
        });
    let context = diagnosis::Context {
        path: endpoint.path(),
        host: endpoint.host(),
        address: endpoint.host_key(),
        tls: endpoint.is_tls(),
        proxy,
    };
    let failures: Vec<&Error> = failures.iter().collect();
    let hints = diagnosis::hints(&context, &failures);
    Error::ConnectFailed(Box::new(ConnectFailure {
        url: options.url.clone(),
        error,
        attempts,
        hints,
    }))
}

/// Lets attempts still running finish in the background, closing whatever session they open.
fn finish_in_background(mut running: FuturesUnordered<AttemptFuture>, limit: Duration) {
    if running.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let _ = tokio::time::timeout(limit, async move {
            while let Some((_, outcome)) = running.next().await {
                if let Ok((active, _, _)) = outcome {
                    active.close().await;
                }
            }
        })
        .await;
    });
}
