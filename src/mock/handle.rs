//! Handles on a running server for handlers and tests: every socket, rooms, broadcasts.

use super::*;

/// A cheap, clonable handle on a running server, reachable from handlers through
/// [`MockSocket::server`]. It does not keep the server alive: once the [`MockServer`] is dropped
/// it sees no sockets.
#[derive(Debug, Clone)]
pub struct MockServerHandle {
    pub(super) inner: Weak<Inner>,
}

impl MockServerHandle {
    /// Sockets connected now, on every namespace, in connection order.
    pub fn sockets(&self) -> Vec<MockSocket> {
        self.inner
            .upgrade()
            .map(|inner| lock(&inner.sockets).clone())
            .unwrap_or_default()
    }

    /// Sends an event to every socket connected to `nsp`.
    pub fn emit_all(&self, nsp: &str, event: &str, args: Args) {
        self.to_target(Target {
            nsp: nsp.to_owned(),
            rooms: Vec::new(),
            except: Vec::new(),
        })
        .emit(event, args);
    }

    /// Targets the sockets of `nsp` in `room`.
    pub fn to_room(&self, nsp: &str, room: &str) -> RoomEmitter {
        self.to_target(Target::room(nsp, room))
    }

    /// The open sessions of a plain Engine.IO server (see
    /// [`MockServerBuilder::engine_io`]), in no particular order; empty otherwise.
    pub fn connections(&self) -> Vec<MockConnection> {
        let Some(inner) = self.inner.upgrade() else {
            return Vec::new();
        };
        if !inner.config.engine_io_only {
            return Vec::new();
        }
        let sessions: Vec<_> = lock(&inner.sessions).values().cloned().collect();
        sessions.into_iter().map(MockConnection::new).collect()
    }

    pub(crate) fn to_target(&self, target: Target) -> RoomEmitter {
        let sockets = match self.inner.upgrade() {
            Some(inner) => inner
                .sockets_of(&target.nsp)
                .into_iter()
                .filter(|s| target.includes(&s.rooms()))
                .collect(),
            None => Vec::new(),
        };
        RoomEmitter {
            server: self.inner.clone(),
            target,
            sockets,
        }
    }
}

/// Sends to a set of sockets: the ones of a room ([`MockServer::to_room`], [`MockSocket::to`])
/// or all but one ([`MockSocket::broadcast`]).
#[derive(Debug)]
pub struct RoomEmitter {
    server: Weak<Inner>,
    target: Target,
    sockets: Vec<MockSocket>,
}

impl RoomEmitter {
    /// Sends an event to every socket in the room. With connection-state recovery on, it is
    /// one event with one offset for all of them, kept for the ones that are disconnected
    /// now and recover later, as Node's adapter does.
    pub fn emit(&self, event: &str, args: Args) {
        let offset = self.server.upgrade().and_then(|server| {
            server.config.recovery?;
            let (values, attachments) = args.clone().into_wire();
            let mut data = vec![Value::String(event.to_owned())];
            data.extend(values);
            Some(lock(&server.recovery).record(&self.target, Value::Array(data), attachments))
        });
        for socket in &self.sockets {
            socket.send_with_offset(event, args.clone(), offset.clone());
        }
    }

    /// The sockets targeted.
    pub fn sockets(&self) -> &[MockSocket] {
        &self.sockets
    }
}
