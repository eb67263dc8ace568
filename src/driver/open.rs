//! Opening a link: the endpoint for the Engine.IO revision the core asked for, the HTTP
//! settings of the connection, and the transport race of `transport::connect`, bounded by the
//! connect timeout. A future the driver polls beside its requests, so a `disconnect()` during
//! the handshake ends it at once.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use serde_json::Value;

use crate::config::{AsyncAuth, Config, PairsFn};
use crate::proto::engineio::EngineVersion;
use crate::proto::socketio::client::query_value;
use crate::transport::connect::{self, ConnectOptions, Opened};
use crate::transport::http::HttpSettings;
use crate::transport::net::Net;
use crate::transport::url::Endpoint;
use crate::Error;

/// A link opened: its HTTP settings, the session, and the headers it was opened with (the
/// upgrade's WebSocket sends the same).
pub(super) struct OpenedLink {
    pub(super) settings: HttpSettings,
    pub(super) opened: Opened,
    pub(super) headers: Vec<(String, String)>,
}

pub(super) type Opening = Pin<Box<dyn Future<Output = Result<OpenedLink, Error>> + Send>>;

/// The outcome of the link being opened, if any (pending while there is none).
pub(super) fn poll_opened(
    opening: &mut Option<(Opening, EngineVersion)>,
    cx: &mut Context<'_>,
) -> Poll<(Result<OpenedLink, Error>, EngineVersion)> {
    match opening {
        Some((future, version)) => {
            let version = *version;
            future.as_mut().poll(cx).map(|opened| (opened, version))
        }
        None => Poll::Pending,
    }
}

/// Opens a session speaking `version`; `query_auth` (socket.io 2) joins the query string.
pub(super) fn open_link(
    config: Arc<Config>,
    net: Arc<Net>,
    version: EngineVersion,
    query_auth: Option<Value>,
    query_async: Option<AsyncAuth>,
) -> Opening {
    Box::pin(async move {
        let query_auth = match query_async {
            Some(auth) => Some(auth().await),
            None => query_auth,
        };
        // Computed now: a token refreshed while the connection was down is the one sent.
        let mut query = PairsFn::extend(&config.query_fn, &config.query);
        let headers = PairsFn::extend(&config.headers_fn, &config.headers);
        if let Some(Value::Object(auth)) = query_auth {
            query.extend(auth.iter().map(|(k, v)| (k.clone(), query_value(v))));
        }
        let endpoint = Arc::new(Endpoint::new(&config.url, &config.path, &query, version)?);
        let options = Arc::new(connect_options(&config, headers.clone()));
        let settings = connect::http_settings(&options, endpoint, net)?;
        // Bounded by the connect timeout inside, so that a timeout reports the attempts too.
        let opened = connect::open(&options, &settings).await?;
        Ok(OpenedLink {
            settings,
            opened,
            headers,
        })
    })
}

/// The part of the user's options the transports act on.
fn connect_options(config: &Config, headers: Vec<(String, String)>) -> ConnectOptions {
    ConnectOptions {
        url: config.url.clone(),
        transports: config.transports.clone(),
        headers,
        timeout: config.timeout,
        probe_timeout: config.probe_timeout,
        head_start: config.head_start,
        remember_transport: config.remember_transport,
        max_receive: config.max_receive,
    }
}
