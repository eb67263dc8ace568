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

use super::http::HttpSettings;
use super::memory;
use super::net::Net;
use super::polling::{self, PollingTransport};
use super::websocket::WebSocketTransport;
use super::{Active, Transport};
use crate::config::Config;
use crate::proto::engineio::{detect, EngineVersion, Handshake, Packet};
use crate::Error;

/// One transport tried while connecting.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// Transport tried.
    pub transport: Transport,
    /// `Ok(())` if it delivered the open packet first, else what went wrong (or that another
    /// transport won while it was still running).
    pub outcome: Result<(), String>,
    /// HTTP status of the failure, when there was one.
    pub status: Option<u16>,
    /// Time from the start of connecting to the start of this attempt.
    pub started_after: Duration,
    /// Time from the start of the attempt to its outcome.
    pub elapsed: Duration,
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
    config: &Config,
    endpoint: Arc<super::url::Endpoint>,
    net: Arc<Net>,
) -> Result<HttpSettings, Error> {
    let http = net.http_client(config.timeout)?;
    Ok(HttpSettings {
        http,
        net,
        endpoint,
        headers: header_map(&config.headers)?,
        max_response: config.max_receive,
        connect_timeout: config.timeout,
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
async fn open_websocket(config: Arc<Config>, settings: HttpSettings) -> Outcome {
    let endpoint = &settings.endpoint;
    let url = endpoint.url(Transport::WebSocket, None, 0);
    let mut ws = WebSocketTransport::connect(
        &url,
        &settings.net,
        &config.headers,
        endpoint.version(),
        config.max_receive,
        config.timeout,
    )
    .await?;
    let first = tokio::time::timeout(config.probe_timeout, ws.recv()).await;
    let handshake_error = |body: String| Error::handshake(Transport::WebSocket, Some(101), body);
    let outcome = match first {
        Err(_) => Err(handshake_error(format!(
            "no open packet within {:?} after the upgrade (a middlebox holding the connection?)",
            config.probe_timeout
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
async fn open_streaming(config: Arc<Config>, settings: HttpSettings) -> Outcome {
    let opened = tokio::time::timeout(
        config.probe_timeout,
        polling::handshake_streaming(&settings),
    );
    match opened.await {
        Err(_) => Err(Error::handshake(
            Transport::Streaming,
            None,
            format!(
                "no open packet within {:?} (a proxy buffering the stream?)",
                config.probe_timeout
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
    config: &Arc<Config>,
    settings: &HttpSettings,
) -> AttemptFuture {
    let (config, settings) = (config.clone(), settings.clone());
    Box::pin(async move {
        let outcome = match transport {
            Transport::WebSocket => open_websocket(config, settings).await,
            Transport::Streaming => open_streaming(config, settings).await,
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

/// Opens a session on the best transport that works; see the module docs.
pub(crate) async fn open(config: &Arc<Config>, settings: &HttpSettings) -> Result<Opened, Error> {
    let host = settings.endpoint.host_key();
    let configured: Vec<Transport> = config
        .transports
        .iter()
        .copied()
        // Streaming is an Engine.IO v4 extension; socket.io 2 servers never speak it.
        .filter(|&t| {
            !(t == Transport::Streaming && settings.endpoint.version() == EngineVersion::V3)
        })
        .collect();
    let order = if config.remember_transport {
        memory::order(&configured, memory::recall(&host, Instant::now()))
    } else {
        configured
    };
    let start = Instant::now();
    let mut started: Vec<Instant> = Vec::new();
    let mut records: Vec<Option<Attempt>> = Vec::new();
    let mut running = FuturesUnordered::new();
    let mut last_error = None;
    let mut winner = None;

    while winner.is_none() {
        if running.is_empty() && started.len() < order.len() {
            let i = started.len();
            started.push(Instant::now());
            records.push(None);
            running.push(attempt(i, order[i], config, settings));
        }
        if running.is_empty() {
            break;
        }
        let more_to_start = started.len() < order.len();
        let head_start = async {
            if more_to_start {
                tokio::time::sleep(config.head_start).await
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
                            running.push(attempt(i, order[i], config, settings));
                        }
                    }
                }
            }
            () = head_start => {
                let i = started.len();
                tracing::debug!(next = %order[i], "no open packet yet: racing the next transport");
                started.push(Instant::now());
                records.push(None);
                running.push(attempt(i, order[i], config, settings));
            }
        }
    }

    let Some((transport, handshake, initial)) = winner else {
        finish_in_background(running, config.timeout);
        return Err(last_error.unwrap_or(Error::InvalidUrl {
            url: config.url.clone(),
            reason: "no usable transport configured".into(),
        }));
    };
    let won = transport.kind();
    if config.remember_transport {
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
    finish_in_background(running, config.timeout);
    Ok(Opened {
        transport,
        handshake,
        initial,
        attempts,
    })
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
