//! The IO half of the polling → WebSocket upgrade: dial the WebSocket beside the running HTTP
//! transport, run the probe (`proto::engineio::UpgradeProbe` decides), pause polling, and swap
//! transports once the HTTP side has nothing in flight. A failure at any step leaves the link
//! on HTTP.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::proto::engineio::{EngineVersion, Packet as EnginePacket, ProbeState, UpgradeProbe};
use crate::transport::net::Net;
use crate::transport::websocket::WebSocketTransport;
use crate::transport::{Active, Outgoing, Transport};
use crate::Error;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

pub(super) enum Upgrade {
    Connecting(BoxFuture<Result<WebSocketTransport, Error>>),
    Probing {
        ws: WebSocketTransport,
        probe: UpgradeProbe,
    },
}

pub(super) enum UpgradeStep {
    Connected(Result<WebSocketTransport, Error>),
    Frame(Result<Option<EnginePacket>, Error>),
}

/// The upgrade's next step: the WebSocket dialled, or a frame of the probe (pending while
/// there is no upgrade).
pub(super) fn poll_upgrade_step(
    upgrade: &mut Option<Upgrade>,
    cx: &mut Context<'_>,
) -> Poll<UpgradeStep> {
    match upgrade {
        None => Poll::Pending,
        Some(Upgrade::Connecting(fut)) => fut.as_mut().poll(cx).map(UpgradeStep::Connected),
        Some(Upgrade::Probing { ws, .. }) => ws.poll_io(cx, true).map(UpgradeStep::Frame),
    }
}

/// What the WebSocket dial needs.
pub(super) struct UpgradeOptions {
    pub(super) headers: Vec<(String, String)>,
    pub(super) net: Arc<Net>,
    pub(super) version: EngineVersion,
    pub(super) max_receive: usize,
    pub(super) timeout: Duration,
}

/// How a step of the upgrade went.
pub(super) enum Progress {
    Going,
    /// The upgrade failed (why); the link stays on HTTP.
    Failed(String),
    /// The WebSocket carries the session now; it came from this transport.
    Done(Transport),
}

/// The parts of a link an upgrade works on.
pub(super) struct Parts<'a> {
    pub(super) upgrade: &'a mut Option<Upgrade>,
    pub(super) transport: &'a mut Active,
    /// Where the packets that must go first on the WebSocket are put.
    pub(super) preface: &'a mut Vec<EnginePacket>,
}

/// Starts dialling the WebSocket `url` of a session.
pub(super) fn start(upgrade: &mut Option<Upgrade>, url: url::Url, options: UpgradeOptions) {
    tracing::debug!("probing WebSocket for an upgrade");
    *upgrade = Some(Upgrade::Connecting(Box::pin(async move {
        let UpgradeOptions {
            headers,
            net,
            version,
            max_receive,
            timeout,
        } = options;
        WebSocketTransport::connect(&url, &net, &headers, version, max_receive, timeout).await
    })));
}

impl Parts<'_> {
    /// Gives up the upgrade: polling resumes; the WebSocket, if any, is returned for closing.
    pub(super) fn fail(self, why: &str) -> Option<Active> {
        tracing::debug!(why, "WebSocket upgrade failed; staying on HTTP");
        let ws = match self.upgrade.take() {
            Some(Upgrade::Probing { ws, .. }) => Some(Active::WebSocket(ws)),
            _ => None,
        };
        if let Active::Polling(polling) = self.transport {
            polling.resume();
        }
        ws
    }

    pub(super) fn on_step(
        self,
        now: Instant,
        step: UpgradeStep,
        probe_timeout: Duration,
        outgoing: &Outgoing,
    ) -> Progress {
        match step {
            UpgradeStep::Connected(Ok(ws)) => {
                let probe = UpgradeProbe::new(now, probe_timeout);
                *self.upgrade = Some(Upgrade::Probing { ws, probe });
                Progress::Going
            }
            UpgradeStep::Connected(Err(error)) => Progress::Failed(error.to_string()),
            UpgradeStep::Frame(Ok(Some(packet))) => {
                let Some(Upgrade::Probing { probe, .. }) = self.upgrade else {
                    return Progress::Going;
                };
                let result = probe.handle_packet(now, packet);
                if let Err(error) = result {
                    return Progress::Failed(error.to_string());
                }
                if probe.state() == ProbeState::AwaitingPause {
                    if let Active::Polling(polling) = self.transport {
                        polling.pause();
                    }
                    return self.check_ready(outgoing);
                }
                Progress::Going
            }
            UpgradeStep::Frame(Ok(None)) => {
                Progress::Failed("WebSocket closed during the probe".into())
            }
            UpgradeStep::Frame(Err(error)) => Progress::Failed(error.to_string()),
        }
    }

    /// The probe's deadline passed (maybe).
    pub(super) fn on_timeout(self, now: Instant) -> Progress {
        if let Some(Upgrade::Probing { probe, .. }) = self.upgrade {
            probe.handle_timeout(now);
            if probe.state() == ProbeState::Failed {
                return Progress::Failed("probe timed out".into());
            }
        }
        Progress::Going
    }

    /// Completes an upgrade once the probe succeeded and the HTTP transport has nothing in
    /// flight.
    pub(super) fn check_ready(self, outgoing: &Outgoing) -> Progress {
        let ready = match (&*self.upgrade, &*self.transport) {
            (Some(Upgrade::Probing { probe, .. }), Active::Polling(polling)) => {
                probe.state() == ProbeState::AwaitingPause && polling.is_idle()
            }
            _ => false,
        };
        if !ready {
            return Progress::Going;
        }
        let Some(Upgrade::Probing { mut ws, mut probe }) = self.upgrade.take() else {
            return Progress::Going;
        };
        probe.polling_paused();
        let mut first = Vec::new();
        while let Some(packet) = probe.poll_transmit() {
            first.push(packet);
        }
        ws.share_outgoing(outgoing.clone());
        let old = std::mem::replace(self.transport, Active::WebSocket(ws));
        let from = old.kind();
        if let Active::Polling(mut polling) = old {
            first.extend(polling.take_queue());
        }
        // The upgrade packet and what the HTTP transport still held go first, in order.
        *self.preface = first;
        tracing::debug!(%from, "upgraded to WebSocket");
        Progress::Done(from)
    }
}
