//! Choosing and opening the transport of a new session. For now: the configured transports are
//! tried in order and the first that delivers the open packet wins. Racing and per-host memory
//! come with the probe/fallback work; this file is the one seam for that strategy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::polling::{self, HttpSettings, PollingTransport};
use super::url::Endpoint;
use super::websocket::WebSocketTransport;
use super::{Active, Transport};
use crate::config::Config;
use crate::proto::engineio::{Handshake, Packet};
use crate::Error;

/// One transport tried while connecting.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// Transport tried.
    pub transport: Transport,
    /// `Ok(())` if it delivered the open packet, else what went wrong.
    pub outcome: Result<(), String>,
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
    endpoint: Arc<Endpoint>,
) -> Result<HttpSettings, Error> {
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .connect_timeout(config.timeout)
        .build()
        .map_err(|e| Error::Transport {
            transport: Transport::Polling,
            message: e.to_string(),
        })?;
    Ok(HttpSettings {
        http,
        endpoint,
        headers: header_map(&config.headers)?,
        max_response: config.max_receive,
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

/// Opens a WebSocket without a session and waits for the open packet.
async fn open_websocket(
    config: &Config,
    settings: &HttpSettings,
) -> Result<(Active, Handshake, Vec<Packet>), Error> {
    let endpoint = &settings.endpoint;
    let url = endpoint.url(Transport::WebSocket, None, 0);
    let mut ws = WebSocketTransport::connect(
        &url,
        &config.headers,
        endpoint.version(),
        config.max_receive,
        config.timeout,
    )
    .await?;
    let first = tokio::time::timeout(config.timeout, ws.recv()).await;
    let handshake_error = |body: String| Error::Handshake {
        transport: Transport::WebSocket,
        status: Some(101),
        body,
    };
    match first {
        Err(_) => Err(handshake_error("no open packet after the upgrade".into())),
        Ok(Err(e)) => Err(handshake_error(e.to_string())),
        Ok(Ok(None)) => Err(handshake_error("closed before the open packet".into())),
        Ok(Ok(Some(frame))) => match Packet::from_frame(endpoint.version(), frame)? {
            Packet::Open(handshake) => Ok((Active::WebSocket(ws), handshake, Vec::new())),
            other => Err(handshake_error(format!(
                "expected an open packet, got {other:?}"
            ))),
        },
    }
}

/// Opens a long-polling session.
async fn open_polling(settings: &HttpSettings) -> Result<(Active, Handshake, Vec<Packet>), Error> {
    let (handshake, initial) = polling::handshake(settings).await?;
    let transport = PollingTransport::new(settings.clone(), &handshake);
    Ok((Active::Polling(Box::new(transport)), handshake, initial))
}

/// Tries the configured transports in order; the first to deliver the open packet wins.
pub(crate) async fn open(config: &Config, settings: &HttpSettings) -> Result<Opened, Error> {
    let mut attempts = Vec::new();
    let mut last_error = None;
    for &transport in &config.transports {
        let started = Instant::now();
        let result = match transport {
            Transport::WebSocket => open_websocket(config, settings).await,
            Transport::Polling => open_polling(settings).await,
            Transport::Streaming => Err(Error::Handshake {
                transport,
                status: None,
                body: "streaming is not implemented yet".into(),
            }),
        };
        let elapsed = started.elapsed();
        match result {
            Ok((active, handshake, initial)) => {
                attempts.push(Attempt {
                    transport,
                    outcome: Ok(()),
                    elapsed,
                });
                tracing::debug!(%transport, ?elapsed, "transport open");
                return Ok(Opened {
                    transport: active,
                    handshake,
                    initial,
                    attempts,
                });
            }
            Err(e) => {
                tracing::debug!(%transport, error = %e, "transport failed");
                attempts.push(Attempt {
                    transport,
                    outcome: Err(e.to_string()),
                    elapsed,
                });
                last_error = Some(e);
            }
        }
    }
    Err(last_error.unwrap_or(Error::InvalidUrl {
        url: config.url.clone(),
        reason: "no transport configured".into(),
    }))
}
