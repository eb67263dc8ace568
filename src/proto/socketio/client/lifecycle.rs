//! How namespaces end and how the connection gives up or starts over: closing a namespace
//! (its callers answered, its stream ended), the reconnection schedule and its limit, the
//! switch to Engine.IO 3 for a socket.io 2 server, and the end of the connection.

use std::sync::Arc;
use std::time::Instant;

use super::namespace::Phase;
use super::timers::TimerTable;
use super::{ClientCore, Output, Status, Timer};
use crate::event::Event;
use crate::proto::engineio::EngineVersion;
use crate::proto::time::deadline_after;
use crate::reason::DisconnectReason;
use crate::Error;

impl ClientCore {
    /// With `EngineVersion::Auto`, a v4 link reached a socket.io 2 server: the link (if any)
    /// is dropped, its namespaces wait again with their callers, and the next link, opened at
    /// once, speaks v3. `false` when that does not apply (not `Auto`, already v3, or a
    /// namespace already connected on the link, which a socket.io 2 server never allows).
    pub(super) fn switch_to_v3(&mut self, now: Instant) -> bool {
        let connected = self.namespaces.values().any(|n| n.is_connected());
        if !self.detect_version || self.version == EngineVersion::V3 || connected {
            return false;
        }
        self.version = EngineVersion::V3;
        if self.is_linked() {
            self.transmit.clear();
            self.outputs.push_back(Output::DropLink);
        }
        for socket in self.namespaces.values_mut() {
            let reply = socket.take_reply();
            socket.phase = Phase::Waiting { reply };
        }
        self.open_link(now);
        true
    }

    /// Plans the next reconnection attempt, or gives up after the configured attempts.
    pub(super) fn schedule_reconnect(&mut self, now: Instant) {
        if !self.config.reconnection && self.ever_connected {
            self.finish(DisconnectReason::TransportClose);
            return;
        }
        let attempt = self.backoff.attempts().saturating_add(1);
        if self
            .config
            .reconnection_attempts
            .is_some_and(|max| attempt > max)
        {
            let error = self
                .last_error
                .clone()
                .unwrap_or(Error::Disconnected(DisconnectReason::TransportClose));
            let names: Vec<Arc<str>> = self.namespaces.keys().cloned().collect();
            for namespace in names {
                let socket = self.namespaces.get(&namespace).expect("present");
                if socket.has_reply() {
                    self.close_namespace(
                        &namespace,
                        DisconnectReason::TransportClose,
                        Some(&error),
                    );
                } else {
                    self.status(&namespace, Status::Closed(DisconnectReason::TransportClose));
                    self.event(&namespace, Event::ReconnectFailed);
                    self.drop_namespace(&namespace, &error);
                }
            }
            self.finish(DisconnectReason::TransportClose);
            return;
        }
        let delay = self.backoff.next_delay(self.random.next_f64());
        self.timers
            .set(Timer::Reconnect, deadline_after(now, delay));
        self.announce_to_reconnecting(Event::Reconnecting { attempt, delay });
    }

    /// Tells `event` to every namespace that is reconnecting (was connected, now waits for a
    /// link); a first connect in progress hears of its outcome through its caller instead.
    pub(super) fn announce_to_reconnecting(&mut self, event: Event) {
        let reconnecting: Vec<Arc<str>> = self
            .namespaces
            .iter()
            .filter(|(_, s)| matches!(s.phase, Phase::Waiting { reply: None }))
            .map(|(n, _)| n.clone())
            .collect();
        for namespace in reconnecting {
            self.event(&namespace, event.clone());
        }
    }

    /// Ends one namespace for good: its callers fail, the application hears why (when it was
    /// connected), its event stream ends.
    pub(super) fn close_namespace(
        &mut self,
        namespace: &Arc<str>,
        reason: DisconnectReason,
        error: Option<&Error>,
    ) {
        let Some(socket) = self.namespaces.get_mut(namespace) else {
            return;
        };
        self.last_reason = Some(reason.clone());
        let gone = Error::Disconnected(reason.clone());
        let was_connected = socket.is_connected();
        let reply = socket.take_reply();
        self.status(namespace, Status::Closed(reason.clone()));
        self.status(namespace, Status::Connected(false));
        if let Some(token) = reply {
            self.outputs.push_back(Output::ConnectReply {
                token,
                result: Err(error.cloned().unwrap_or_else(|| gone.clone())),
            });
        } else if was_connected {
            if let Some(error) = error {
                self.event(namespace, Event::Error(Arc::new(error.clone())));
            }
            self.event(
                namespace,
                Event::Disconnected {
                    namespace: namespace.to_string(),
                    reason,
                },
            );
        }
        // Reconnecting (no caller, not connected): the disconnect was announced when the
        // link was lost; ending the event stream says the rest.
        self.drop_namespace(namespace, error.unwrap_or(&gone));
    }

    /// Removes a namespace: its acks and queued emits fail with `error`, its timers go.
    pub(super) fn drop_namespace(&mut self, namespace: &Arc<str>, error: &Error) {
        let Some(mut socket) = self.namespaces.remove(namespace) else {
            return;
        };
        for token in socket.acks.take_all() {
            self.outputs.push_back(Output::AckReply {
                token,
                result: Err(error.clone()),
            });
        }
        if let Some(token) = socket.take_reply() {
            self.outputs.push_back(Output::ConnectReply {
                token,
                result: Err(error.clone()),
            });
        }
        self.timers.cancel(&Timer::Connect(namespace.clone()));
        self.timers.cancel(&Timer::Retry(namespace.clone()));
        self.overdue.retain(|overdue| overdue != namespace);
        // Ack timers of the namespace are skipped when they fire (no caller left).
        self.outputs.push_back(Output::Forget {
            namespace: namespace.clone(),
        });
    }

    pub(super) fn finish(&mut self, reason: DisconnectReason) {
        if self.finished {
            return;
        }
        self.finished = true;
        let names: Vec<Arc<str>> = self.namespaces.keys().cloned().collect();
        let error = self
            .last_error
            .clone()
            .unwrap_or_else(|| Error::Disconnected(reason.clone()));
        for namespace in names {
            self.status(&namespace, Status::Closed(reason.clone()));
            self.drop_namespace(&namespace, &error);
        }
        self.timers = TimerTable::default();
        self.outputs.push_back(Output::Finished {
            reason,
            error: self.last_error.clone(),
        });
    }
}
