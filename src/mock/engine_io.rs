//! The plain Engine.IO mode ([`MockServerBuilder::engine_io`](super::MockServerBuilder::engine_io)):
//! sessions without a Socket.IO layer, as a bare Node `engine.io` server. Every message goes to
//! the message hook and into [`MockServer::received`](super::MockServer::received).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use super::close_cause::CloseCause;
use super::engine::{message, Engine, Layer};
use super::ReceivedEvent;
use crate::payload::Args;
use crate::proto::engineio::Data;
use crate::proto::socketio::placeholder;
use crate::Transport;

/// The event name plain Engine.IO messages are recorded under in
/// [`MockServer::received`](super::MockServer::received).
pub const ENGINE_MESSAGE_EVENT: &str = "message";

/// The layer of a plain Engine.IO session: hands every message to the hook.
pub(crate) struct EngineIoLayer;

impl Layer for EngineIoLayer {
    fn on_open(&self, _engine: &Arc<Engine>) {}

    fn on_message(&self, engine: &Arc<Engine>, data: Data, transport: Transport) {
        let Some(server) = engine.server() else {
            return;
        };
        let args = match &data {
            Data::Text(text) => Args::from_wire(vec![Value::String(text.clone())], Vec::new()),
            Data::Binary(bytes) => Args::from_wire(vec![placeholder(0)], vec![bytes.clone()]),
        };
        server.record(ReceivedEvent {
            connection_id: engine.sid.clone(),
            socket_id: engine.sid.clone(),
            namespace: String::new(),
            event: ENGINE_MESSAGE_EVENT.to_owned(),
            args,
            ack_id: None,
            transport,
        });
        if let Some(hook) = server.config.engine_message_handler.clone() {
            let connection = MockConnection {
                engine: engine.clone(),
            };
            server.run_user("Engine.IO message hook", || hook(&connection, data));
        }
    }

    fn on_close(&self, _engine: &Arc<Engine>, _cause: CloseCause) {}
}

/// One Engine.IO session of a plain Engine.IO server, as the message hook sees it. Cheap to
/// clone.
#[derive(Clone)]
pub struct MockConnection {
    engine: Arc<Engine>,
}

impl fmt::Debug for MockConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockConnection")
            .field("id", &self.engine.sid)
            .field("open", &self.engine.is_open())
            .finish()
    }
}

impl MockConnection {
    pub(crate) fn new(engine: Arc<Engine>) -> MockConnection {
        MockConnection { engine }
    }

    /// The session id (`sid` of the handshake).
    pub fn id(&self) -> &str {
        &self.engine.sid
    }

    /// The transport the session uses now.
    pub fn transport(&self) -> Transport {
        self.engine.transport()
    }

    /// Whether the session is still open.
    pub fn is_open(&self) -> bool {
        self.engine.is_open()
    }

    /// Sends a message (`4…`, or a binary message).
    pub fn send(&self, data: Data) {
        self.engine.send(message(data));
    }

    /// Sends a text message.
    pub fn send_text(&self, text: &str) {
        self.send(Data::Text(text.to_owned()));
    }

    /// Sends a binary message.
    pub fn send_binary(&self, bytes: impl Into<Bytes>) {
        self.send(Data::Binary(bytes.into()));
    }

    /// Closes the session as Node's `socket.close()`: what is queued and a close packet go
    /// out first.
    pub fn close(&self) {
        self.engine.close(CloseCause::ServerClose, true);
    }

    /// The headers of the request that opened the session, names lowercased.
    pub fn headers(&self) -> &[(String, String)] {
        &self.engine.headers
    }

    /// The query of the request that opened the session.
    pub fn query(&self) -> &HashMap<String, String> {
        &self.engine.query
    }
}
