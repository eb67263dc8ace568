//! One namespace (socket) of the client: where it stands, what it owes, and the packets that
//! join it: CONNECT in its three dialects (v5 auth with recovery pid/offset, socket.io 2's
//! query-string auth, none at all for socket.io 2's `/`) and CONNECT_ERROR read back.

use serde_json::Value;

use super::acks::Acks;
use super::interface::Token;
use crate::config::AuthSource;
use crate::proto::engineio::EngineVersion;
use crate::proto::socketio::Packet;
use crate::transport::Held;
use crate::Error;

/// Where a namespace stands (see the diagram in the module docs above).
#[derive(Debug)]
pub(super) enum Phase {
    /// No link, or a link not yet asked: CONNECT goes out when one opens.
    Waiting {
        reply: Option<Token>,
    },
    /// Joining on the current link: CONNECT sent, or (`sent` false) waiting for its
    /// asynchronous auth.
    Connecting {
        reply: Option<Token>,
        /// The reconnection attempt this is, when it is one.
        attempt: Option<u32>,
        sent: bool,
    },
    Connected,
}

pub(super) struct Namespace {
    pub(super) phase: Phase,
    pub(super) auth: AuthSource,
    pub(super) acks: Acks,
    /// Emits made while not connected, sent in order once connected, each with its bytes
    /// (counted against `max_send_queue` until it goes out).
    pub(super) buffer: Vec<(Packet, Held)>,
    /// Connection-state recovery: the server's private session id and the last offset seen.
    pub(super) pid: Option<String>,
    pub(super) offset: Option<String>,
}

impl Namespace {
    pub(super) fn new(auth: AuthSource, reply: Token) -> Namespace {
        Namespace {
            phase: Phase::Waiting { reply: Some(reply) },
            auth,
            acks: Acks::default(),
            buffer: Vec::new(),
            pid: None,
            offset: None,
        }
    }

    pub(super) fn is_connected(&self) -> bool {
        matches!(self.phase, Phase::Connected)
    }

    /// The caller of a first connect still waiting for its answer.
    pub(super) fn take_reply(&mut self) -> Option<Token> {
        match &mut self.phase {
            Phase::Waiting { reply } | Phase::Connecting { reply, .. } => reply.take(),
            Phase::Connected => None,
        }
    }

    /// Whether a first connect is still waiting for its answer.
    pub(super) fn has_reply(&self) -> bool {
        matches!(
            self.phase,
            Phase::Waiting { reply: Some(_) } | Phase::Connecting { reply: Some(_), .. }
        )
    }

    /// The CONNECT that joins `name` under `version` with `auth` (none: socket.io 2 joins
    /// `/` by itself).
    pub(super) fn connect_packet(
        &self,
        name: &str,
        version: EngineVersion,
        auth: Option<Value>,
    ) -> Option<Packet> {
        match version {
            EngineVersion::V4 | EngineVersion::Auto => {
                // Connection-state recovery: the session id and last offset ride along.
                let data = match (&self.pid, auth) {
                    (Some(pid), auth) => {
                        let mut map = match auth {
                            Some(Value::Object(map)) => map,
                            _ => serde_json::Map::new(),
                        };
                        map.insert("pid".into(), Value::String(pid.clone()));
                        if let Some(offset) = &self.offset {
                            map.insert("offset".into(), Value::String(offset.clone()));
                        }
                        Some(Value::Object(map))
                    }
                    (None, auth) => auth,
                };
                Some(Packet::connect(name, data))
            }
            EngineVersion::V3 if name == "/" => None,
            // Other namespaces of socket.io 2 carry their auth as a query string in the
            // namespace field.
            EngineVersion::V3 => {
                let mut nsp = name.to_string();
                if let Some(Value::Object(auth)) = &auth {
                    let query: Vec<String> = auth
                        .iter()
                        .map(|(k, v)| {
                            url::form_urlencoded::Serializer::new(String::new())
                                .append_pair(k, &query_value(v))
                                .finish()
                        })
                        .collect();
                    if !query.is_empty() {
                        nsp = format!("{nsp}?{}", query.join("&"));
                    }
                }
                Some(Packet::connect(&nsp, None))
            }
        }
    }

    /// Takes the recovery session id of a CONNECT reply: whether the server restored the
    /// session (the same pid as before), forgetting the offset of one it did not restore.
    pub(super) fn accept_pid(&mut self, data: Option<&Value>) -> bool {
        let new_pid = data
            .and_then(|d| d.get("pid"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let recovered = new_pid.is_some() && new_pid == self.pid;
        if !recovered {
            self.offset = None;
        }
        self.pid = new_pid;
        recovered
    }
}

/// A JSON value as a query-string value (strings unquoted).
pub(crate) fn query_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The error a CONNECT_ERROR stands for: `{message, data}` (v5) or a bare string (v4).
pub(super) fn refusal(namespace: &str, data: Option<Value>) -> Error {
    let (message, data) = match data {
        Some(Value::String(message)) => (message, None),
        Some(Value::Object(mut map)) => {
            let message = match map.remove("message") {
                Some(Value::String(m)) => m,
                Some(other) => other.to_string(),
                None => String::new(),
            };
            (message, map.remove("data"))
        }
        Some(other) => (other.to_string(), None),
        None => (String::new(), None),
    };
    Error::ConnectRefused {
        namespace: namespace.to_string(),
        message,
        data,
    }
}
