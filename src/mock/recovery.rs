//! Connection-state recovery as socket.io 4.6+'s in-memory `SessionAwareAdapter`: every event
//! without ack gets an offset (appended as its last argument) and is kept for the longest
//! disconnection recovered; a socket that loses its connection for a recoverable reason leaves
//! its session (`pid`, id, rooms) behind, and a CONNECT carrying `{pid, offset}` in time gets
//! the same id and rooms back and the events it missed replayed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::time::Instant;

use crate::proto::socketio::Packet;

/// Most events kept for replay, whatever their age: a long-running `sio mock` must not grow
/// without bound when events are emitted faster than they age out.
const MAX_KEPT_EVENTS: usize = 10_000;

/// Whom an emit is for, as Node's `BroadcastOptions`: the namespace, the rooms (none: every
/// socket) and the rooms left out (a socket's own id leaves out that socket).
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) nsp: String,
    pub(crate) rooms: Vec<String>,
    pub(crate) except: Vec<String>,
}

impl Target {
    /// Every socket of `nsp` in `room` (a socket id names the room of that one socket).
    pub(crate) fn room(nsp: &str, room: &str) -> Target {
        Target {
            nsp: nsp.to_owned(),
            rooms: vec![room.to_owned()],
            except: Vec::new(),
        }
    }

    /// Whether a socket in `rooms` gets the emit (`shouldIncludePacket`).
    pub(crate) fn includes(&self, rooms: &HashSet<String>) -> bool {
        let included = self.rooms.is_empty() || self.rooms.iter().any(|r| rooms.contains(r));
        included && !self.except.iter().any(|r| rooms.contains(r))
    }
}

struct KeptEvent {
    offset: String,
    target: Target,
    /// The EVENT's data array, offset included.
    data: Value,
    attachments: Vec<Bytes>,
    at: Instant,
}

struct SavedSession {
    sid: String,
    rooms: HashSet<String>,
    disconnected_at: Instant,
}

/// A session given back to a reconnecting client.
pub(crate) struct Restored {
    pub(crate) sid: String,
    pub(crate) pid: String,
    pub(crate) rooms: HashSet<String>,
    /// The missed EVENT packets, in order, offsets included.
    pub(crate) missed: Vec<Packet>,
}

/// The server's recovery state.
pub(crate) struct RecoveryStore {
    max_disconnection: Duration,
    /// By namespace and pid.
    sessions: HashMap<(String, String), SavedSession>,
    events: VecDeque<KeptEvent>,
    next_offset: u64,
}

impl RecoveryStore {
    pub(crate) fn new(max_disconnection: Duration) -> RecoveryStore {
        RecoveryStore {
            max_disconnection,
            sessions: HashMap::new(),
            events: VecDeque::new(),
            next_offset: 0,
        }
    }

    /// Forgets everything (a restarted server knows no session).
    pub(crate) fn clear(&mut self) {
        self.sessions.clear();
        self.events.clear();
    }

    /// Keeps an event for replay and returns its offset, to append to its arguments.
    pub(crate) fn record(
        &mut self,
        target: &Target,
        mut data: Value,
        attachments: Vec<Bytes>,
    ) -> String {
        let now = Instant::now();
        self.purge(now);
        self.next_offset = self.next_offset.wrapping_add(1);
        // Opaque to clients, as Node's `yeast()` ids; unique for the server's life (a restart
        // clears the store but not the counter). A pid, not an offset, names a session.
        let offset = format!("{:x}", self.next_offset);
        if let Value::Array(items) = &mut data {
            items.push(Value::String(offset.clone()));
        }
        self.events.push_back(KeptEvent {
            offset: offset.clone(),
            target: target.clone(),
            data,
            attachments,
            at: now,
        });
        while self.events.len() > MAX_KEPT_EVENTS {
            self.events.pop_front();
        }
        offset
    }

    /// A socket lost its connection for a recoverable reason: its session waits for it.
    pub(crate) fn persist(&mut self, nsp: &str, pid: &str, sid: &str, rooms: HashSet<String>) {
        self.sessions.insert(
            (nsp.to_owned(), pid.to_owned()),
            SavedSession {
                sid: sid.to_owned(),
                rooms,
                disconnected_at: Instant::now(),
            },
        );
    }

    /// The session of `pid` with the events after `offset`, if it disconnected less than
    /// maxDisconnectionDuration ago and `offset` is still known (Node's `restoreSession`).
    pub(crate) fn restore(&mut self, nsp: &str, pid: &str, offset: &str) -> Option<Restored> {
        let now = Instant::now();
        self.purge(now);
        let key = (nsp.to_owned(), pid.to_owned());
        let session = self.sessions.get(&key)?;
        if session.disconnected_at + self.max_disconnection < now {
            self.sessions.remove(&key);
            return None;
        }
        let index = self.events.iter().position(|e| e.offset == offset)?;
        let missed = self
            .events
            .iter()
            .skip(index.saturating_add(1))
            .filter(|e| e.target.nsp == nsp && e.target.includes(&session.rooms))
            .map(|e| Packet::event(nsp, e.data.clone(), e.attachments.clone(), None))
            .collect();
        Some(Restored {
            sid: session.sid.clone(),
            pid: pid.to_owned(),
            rooms: session.rooms.clone(),
            missed,
        })
    }

    /// Drops events and sessions older than maxDisconnectionDuration.
    fn purge(&mut self, now: Instant) {
        let max = self.max_disconnection;
        while self.events.front().is_some_and(|e| e.at + max < now) {
            self.events.pop_front();
        }
        self.sessions.retain(|_, s| s.disconnected_at + max >= now);
    }
}
