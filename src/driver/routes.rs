//! Reply routing: the core names callers by token and namespaces by name; this is where tokens
//! become oneshot answers, namespaces become event queues, and status changes become the
//! atomics the handles read. It is the only writer of [`SocketStatus`].

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::config::{AsyncAuth, AuthSource};
use crate::event::{AckRoute, AckSender, Event};
use crate::event_queue::EventQueue;
use crate::proto::local_map::LocalMap;
use crate::proto::socketio::client::{Output, Status, Token};
use crate::request::{Request, SocketSinks, SocketStatus, WeakRequestSender};
use crate::{Args, Error};

/// Events one socket holds back before they go into its queue in one lock.
const PENDING_MAX: usize = 64;

/// One namespace as the application sees it.
struct Socket {
    sinks: SocketSinks,
    status: Arc<SocketStatus>,
    /// Where its `AckSender`s send (one per namespace, shared by every event asking for one).
    acks: Arc<dyn AckRoute>,
    auth: AuthSource,
    /// Events for the dispatcher and for `events()` not yet in their queues: a read's events
    /// go in under one lock each (at most [`PENDING_MAX`] wait).
    to_dispatch: Vec<(Event, usize)>,
    to_events: Vec<(Event, usize)>,
    /// Events came since its readers were last woken.
    unwoken: bool,
    /// A push found the dispatcher's queue (`dispatch_full`) or the `events()` queue
    /// (`events_full`) full: checked again (under its lock) only then, so delivering an event
    /// costs one lock, not three.
    dispatch_full: bool,
    events_full: bool,
}

impl Socket {
    /// Through the dispatcher while the socket has listeners, else straight to `events()`.
    /// Readers are woken by [`wake`](Self::wake), after the whole read is delivered.
    fn push(&mut self, event: Event, size: usize) {
        let pending = if self.sinks.listeners.has_incoming() {
            &mut self.to_dispatch
        } else {
            &mut self.to_events
        };
        pending.push((event, size));
        self.unwoken = true;
        if pending.len() >= PENDING_MAX {
            self.hand_over();
        }
    }

    /// Moves the pending events into their queues (readers are not woken yet).
    /// The vectors go with them (taken, not drained): an idle client keeps no batch buffer.
    fn hand_over(&mut self) {
        if !self.to_dispatch.is_empty() {
            let mut batch = std::mem::take(&mut self.to_dispatch);
            self.dispatch_full |= !self.sinks.dispatch.send_all_deferred(&mut batch);
        }
        if !self.to_events.is_empty() {
            let mut batch = std::mem::take(&mut self.to_events);
            self.events_full |= !self.sinks.events.push_all_deferred(&mut batch);
        }
    }

    /// Hands the pending events over and wakes the readers of what came since the last time.
    fn wake(&mut self) {
        if !std::mem::take(&mut self.unwoken) {
            return;
        }
        self.hand_over();
        self.sinks.dispatch.wake();
        self.sinks.events.wake_readers();
    }

    /// Its queue that is full, if one is.
    fn full_queue(&mut self) -> Option<Arc<EventQueue>> {
        if self.dispatch_full {
            self.dispatch_full = !self.sinks.dispatch.has_room();
            if self.dispatch_full {
                return Some(self.sinks.dispatch.0.clone());
            }
        }
        if self.events_full {
            self.events_full = !self.sinks.events.has_room();
            if self.events_full {
                return Some(self.sinks.events.clone());
            }
        }
        None
    }
}

/// Acknowledgements of one namespace, sent back into the driver's request channel.
struct RequestAcks {
    requests: WeakRequestSender,
    namespace: Arc<str>,
}

impl AckRoute for RequestAcks {
    fn namespace(&self) -> &str {
        &self.namespace
    }

    fn send_ack(&self, id: u64, args: Args) -> Result<(), Error> {
        let requests = self.requests.upgrade().ok_or(Error::Closed)?;
        requests
            .send(Box::new(Request::Ack {
                namespace: self.namespace.clone(),
                id,
                args,
            }))
            .map_err(|_| Error::Closed)
    }
}

pub(super) struct Routes {
    requests: WeakRequestSender,
    sockets: LocalMap<Arc<str>, Socket>,
    connects: LocalMap<Token, oneshot::Sender<Result<(), Error>>>,
    acks: LocalMap<Token, oneshot::Sender<Result<Args, Error>>>,
    /// Acknowledgements answered but not yet handed to their callers: they are sent once the
    /// driver's lock is released (see [`take_replies`](Self::take_replies)).
    replies: Vec<AckReply>,
    next_token: u64,
}

/// An acknowledgement's caller and its answer.
pub(super) type AckReply = (oneshot::Sender<Result<Args, Error>>, Result<Args, Error>);

impl Routes {
    /// Callers waiting for an acknowledgement.
    pub(super) fn acks_awaited(&self) -> usize {
        self.acks.len()
    }

    pub(super) fn new(requests: WeakRequestSender) -> Routes {
        Routes {
            requests,
            sockets: LocalMap::default(),
            connects: LocalMap::default(),
            acks: LocalMap::default(),
            replies: Vec::new(),
            next_token: 0,
        }
    }

    fn token(&mut self) -> Token {
        self.next_token = self.next_token.wrapping_add(1);
        Token(self.next_token)
    }

    pub(super) fn has_socket(&self, namespace: &str) -> bool {
        self.sockets.contains_key(namespace)
    }

    /// A namespace's asynchronous auth, when it has one.
    pub(super) fn async_auth(&self, namespace: &str) -> Option<AsyncAuth> {
        match &self.sockets.get(namespace)?.auth {
            AuthSource::Async(auth) => Some(auth.clone()),
            _ => None,
        }
    }

    /// A namespace joins: its queue and status are where its outputs go from now on.
    pub(super) fn add_socket(
        &mut self,
        namespace: Arc<str>,
        auth: AuthSource,
        sinks: SocketSinks,
        status: Arc<SocketStatus>,
        reply: oneshot::Sender<Result<(), Error>>,
    ) -> Token {
        let acks = Arc::new(RequestAcks {
            requests: self.requests.clone(),
            namespace: namespace.clone(),
        });
        self.sockets.insert(
            namespace,
            Socket {
                sinks,
                status,
                acks,
                auth,
                to_dispatch: Vec::new(),
                to_events: Vec::new(),
                unwoken: false,
                dispatch_full: false,
                events_full: false,
            },
        );
        let token = self.token();
        self.connects.insert(token, reply);
        token
    }

    /// A caller waits for an acknowledgement.
    pub(super) fn add_ack(&mut self, reply: oneshot::Sender<Result<Args, Error>>) -> Token {
        let token = self.token();
        self.acks.insert(token, reply);
        token
    }

    /// Delivers one output of the core (not the link ones, which the driver acts on).
    pub(super) fn deliver(&mut self, output: Output) {
        match output {
            Output::ConnectReply { token, result } => {
                if let Some(reply) = self.connects.remove(&token) {
                    let _ = reply.send(result);
                }
            }
            Output::AckReply { token, result } => {
                if let Some(reply) = self.acks.remove(&token) {
                    self.replies.push((reply, result));
                }
            }
            Output::Status { namespace, status } => {
                if let Some(socket) = self.sockets.get(&namespace) {
                    let s = &socket.status;
                    match status {
                        Status::Connected(on) => {
                            if !on {
                                s.set_id(None);
                            }
                            s.connected.store(on, Ordering::Release)
                        }
                        Status::Id(id) => s.set_id(Some(id)),
                        Status::Closed(reason) => s.close(reason),
                        Status::Recovered(on) => s.recovered.store(on, Ordering::Release),
                        Status::Buffered(n) => s.buffered.store(n, Ordering::Release),
                    }
                }
            }
            Output::Event { namespace, event } => {
                if let Some(socket) = self.sockets.get_mut(&namespace) {
                    socket.push(event, 0);
                }
            }
            Output::Message {
                namespace,
                namespace_text,
                event,
                args,
                ack,
                size,
            } => {
                if let Some(socket) = self.sockets.get_mut(&namespace) {
                    let ack = ack.map(|id| AckSender::new(socket.acks.clone(), id));
                    socket.push(
                        Event::Message {
                            namespace: namespace_text,
                            event,
                            args,
                            ack,
                        },
                        size,
                    );
                }
            }
            Output::Forget { namespace } => {
                // Dropping the sink ends the namespace's event stream (after what it holds).
                if let Some(mut socket) = self.sockets.remove(&namespace) {
                    socket.wake();
                }
            }
            Output::OpenLink { .. }
            | Output::DropLink
            | Output::ResolveAuth { .. }
            | Output::Finished { .. } => {}
        }
    }

    /// The queue of the first socket whose application has fallen a whole queue behind.
    pub(super) fn full_queue(&mut self) -> Option<Arc<EventQueue>> {
        self.sockets.values_mut().find_map(Socket::full_queue)
    }

    /// Wakes the readers of every socket that was handed events since the last call: the
    /// driver calls this once per turn of its loop, after a whole read is delivered.
    pub(super) fn wake_readers(&mut self) {
        for socket in self.sockets.values_mut() {
            socket.wake();
        }
    }

    /// Frees what the sockets' empty queues hold (the driver calls it at each heartbeat).
    pub(super) fn release_idle_buffers(&mut self) {
        for socket in self.sockets.values() {
            socket.sinks.dispatch.0.release_if_empty();
            socket.sinks.events.release_if_empty();
        }
        if self.replies.is_empty() {
            self.replies = Vec::new();
        }
    }

    /// Moves the answered acknowledgements into `into`, for sending once the driver's lock is
    /// released: the caller an answer wakes often emits again at once, and then finds the
    /// driver free to take its emit on its own thread instead of through the channel.
    pub(super) fn take_replies(&mut self, into: &mut Vec<AckReply>) {
        into.append(&mut self.replies);
    }

    /// The connection is over: every socket left is closed for its handles.
    pub(super) fn close_all(&mut self) {
        self.wake_readers();
        for socket in self.sockets.values() {
            socket.status.closed.store(true, Ordering::Release);
        }
    }
}
