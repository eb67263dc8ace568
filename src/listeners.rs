//! Event listeners as in the JS client: any number per event, called in registration order;
//! `once`; removal by the [`ListenerId`] `on` returned, or all of an event's; `on_any`
//! listeners that see every incoming event (before the event's own listeners, as in the JS
//! client), `prepend_any`, and `on_any_outgoing` listeners that see every emit. Listeners can
//! be added and removed at any time, connected or not, from any thread.
//!
//! How this relates to `events()`: an incoming event with no `on`/`once` listener of its own
//! goes to the `events()` queue (whether or not `on_any` listeners saw it); state changes
//! (connected, disconnected, ...) always do. Several `events()` readers share that queue:
//! each event goes to one of them, as with a work queue (a broadcast to every reader would
//! have to hold each event until the slowest reader took it).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::proto::local_map::LocalMap;
use crate::{AckSender, Args};

/// A handler for one event: gets the arguments and, when the server asked for one, an ack sender.
pub type Handler = Arc<dyn Fn(Args, Option<AckSender>) + Send + Sync>;
/// A handler for every event: also gets the event name.
pub type AnyHandler = Arc<dyn Fn(&str, Args, Option<AckSender>) + Send + Sync>;

/// A listener for every emit of a socket: the event name and its arguments, before they go out.
pub type OutgoingHandler = Arc<dyn Fn(&str, &Args) + Send + Sync>;

/// A listener whose arguments are read into a type first: `Err` when they do not fit (the
/// dispatcher reports it to `events()`).
pub(crate) type TypedHandler =
    Arc<dyn Fn(Args, Option<crate::AckSender>) -> Result<(), crate::Error> + Send + Sync>;

/// One event's listener, plain or typed.
#[derive(Clone)]
pub(crate) enum Listener {
    Plain(Handler),
    Typed(TypedHandler),
}

impl Listener {
    /// Calls it; the error of a typed one whose arguments did not fit.
    pub(crate) fn call(&self, args: Args, ack: Option<crate::AckSender>) -> Option<crate::Error> {
        match self {
            Listener::Plain(handler) => {
                handler(args, ack);
                None
            }
            Listener::Typed(handler) => handler(args, ack).err(),
        }
    }
}

/// The typed listener for `event`: the arguments read as one `T` (a lone argument as itself,
/// several as a tuple or sequence), an error naming the event when they do not fit.
pub(crate) fn typed<T, F>(event: &str, handler: F) -> TypedHandler
where
    T: serde::de::DeserializeOwned,
    F: Fn(T, Option<crate::AckSender>) + Send + Sync + 'static,
{
    let event = event.to_string();
    Arc::new(move |args: Args, ack| {
        let value = args.parse_data::<T>().map_err(|e| match e {
            crate::Error::Deserialize(why) => {
                crate::Error::Deserialize(format!("event {event:?}: {why}"))
            }
            other => other,
        })?;
        handler(value, ack);
        Ok(())
    })
}

/// Names one listener, to remove it with `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(u64);

pub(crate) struct Entry<H> {
    id: u64,
    pub(crate) handler: H,
    once: bool,
}

impl<H: Clone> Clone for Entry<H> {
    fn clone(&self) -> Self {
        Entry {
            id: self.id,
            handler: self.handler.clone(),
            once: self.once,
        }
    }
}

/// The listeners of one socket.
///
/// Each event's list, and the `on_any` list, is shared (`Arc`) with the [`Calls`] taken from
/// it and copied only when it changes while a call still holds it: an incoming event costs
/// two reference counts, not two vectors and a reference count per listener (a burst's
/// events each take their calls). The map is keyed by the application's event names; a
/// server only looks names up, which a [`LocalMap`] allows.
#[derive(Clone, Default)]
pub(crate) struct Table {
    by_event: LocalMap<String, Arc<Vec<Entry<Listener>>>>,
    any: Arc<Vec<Entry<AnyHandler>>>,
    outgoing: Vec<Entry<OutgoingHandler>>,
    next_id: u64,
}

impl Table {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub(crate) fn on(&mut self, event: String, handler: Listener, once: bool) -> ListenerId {
        let id = self.id();
        Arc::make_mut(self.by_event.entry(event).or_default()).push(Entry { id, handler, once });
        ListenerId(id)
    }

    pub(crate) fn on_any(&mut self, handler: AnyHandler, prepend: bool) -> ListenerId {
        let id = self.id();
        let entry = Entry {
            id,
            handler,
            once: false,
        };
        let any = Arc::make_mut(&mut self.any);
        if prepend {
            any.insert(0, entry);
        } else {
            any.push(entry);
        }
        ListenerId(id)
    }

    pub(crate) fn on_any_outgoing(&mut self, handler: OutgoingHandler) -> ListenerId {
        let id = self.id();
        self.outgoing.push(Entry {
            id,
            handler,
            once: false,
        });
        ListenerId(id)
    }

    pub(crate) fn has_incoming(&self) -> bool {
        !self.any.is_empty() || self.by_event.values().any(|l| !l.is_empty())
    }
}

/// What one incoming event calls, in order: the `on_any` listeners, then the event's own.
pub(crate) struct Calls {
    pub(crate) any: Arc<Vec<Entry<AnyHandler>>>,
    pub(crate) event: Option<Arc<Vec<Entry<Listener>>>>,
}

/// A socket's listeners, shared by its handles (which add and remove them) and its dispatcher
/// (which calls them).
#[derive(Default)]
pub(crate) struct Listeners {
    table: Mutex<Table>,
    /// Whether any incoming listener exists: the driver routes events through the dispatcher
    /// only then (an `events()`-only socket pays nothing for listeners).
    incoming: AtomicBool,
    /// Whether any outgoing listener exists (checked on every emit without locking).
    outgoing: AtomicBool,
    /// Counts the table's changes (bumped under its lock): a dispatcher's [`CallsCache`] is
    /// good while this has not moved.
    version: AtomicU64,
}

/// The calls of the last event a dispatcher ran, kept while the listeners do not change: a
/// burst of one event takes the table's lock for its first event only. An `on`, `off` or
/// `once` made inside a listener changes the version, so it still holds from the very next
/// event on.
#[derive(Default)]
pub(crate) struct CallsCache {
    version: u64,
    event: String,
    calls: Option<Calls>,
    /// False for calls that removed a `once` listener: they are for their one event only.
    reusable: bool,
}

impl Listeners {
    pub(crate) fn new(table: Table) -> Listeners {
        let listeners = Listeners::default();
        *listeners.lock() = table;
        listeners.refresh();
        listeners
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn refresh(&self) {
        let table = self.lock();
        self.incoming.store(table.has_incoming(), Ordering::Release);
        self.outgoing
            .store(!table.outgoing.is_empty(), Ordering::Release);
    }

    /// Changes the table and refreshes the flags.
    pub(crate) fn edit<T>(&self, change: impl FnOnce(&mut Table) -> T) -> T {
        let out = {
            let mut table = self.lock();
            let out = change(&mut table);
            self.version.fetch_add(1, Ordering::Release);
            out
        };
        self.refresh();
        out
    }

    pub(crate) fn has_incoming(&self) -> bool {
        self.incoming.load(Ordering::Acquire)
    }

    /// Removes one listener of any kind; whether it existed.
    pub(crate) fn off(&self, id: ListenerId) -> bool {
        self.edit(|table| {
            let mut found = false;
            for listeners in table.by_event.values_mut() {
                if listeners.iter().any(|e| e.id == id.0) {
                    Arc::make_mut(listeners).retain(|e| e.id != id.0);
                    found = true;
                }
            }
            table.by_event.retain(|_, l| !l.is_empty());
            let before = table.any.len() + table.outgoing.len();
            if table.any.iter().any(|e| e.id == id.0) {
                Arc::make_mut(&mut table.any).retain(|e| e.id != id.0);
            }
            table.outgoing.retain(|e| e.id != id.0);
            found || table.any.len() + table.outgoing.len() != before
        })
    }

    /// Removes every listener of `event`.
    pub(crate) fn off_event(&self, event: &str) {
        self.edit(|table| {
            table.by_event.remove(event);
        });
    }

    pub(crate) fn off_any(&self) {
        self.edit(|table| table.any = Arc::default());
    }

    pub(crate) fn off_any_outgoing(&self) {
        self.edit(|table| table.outgoing.clear());
    }

    /// The listeners one incoming `event` calls, from `cache` when nothing changed since it
    /// was filled for the same event, else taken from the table (see [`take_calls`](Self::take_calls)).
    pub(crate) fn calls<'c>(&self, cache: &'c mut CallsCache, event: &str) -> &'c Calls {
        let current = cache.reusable
            && cache.version == self.version.load(Ordering::Acquire)
            && cache.event == event;
        if !current || cache.calls.is_none() {
            let (version, calls, removed_once) = self.take_calls(event);
            cache.version = version;
            cache.event.clear();
            cache.event.push_str(event);
            cache.reusable = !removed_once;
            return cache.calls.insert(calls);
        }
        cache.calls.as_ref().expect("checked above")
    }

    /// The listeners one incoming `event` calls, `once` ones removed as they are taken (so a
    /// `once` listener runs once even when events arrive back to back), with the table's
    /// version after that and whether a `once` listener was removed.
    fn take_calls(&self, event: &str) -> (u64, Calls, bool) {
        let (version, calls, removed_once) = {
            let mut table = self.lock();
            let any = table.any.clone();
            let mut removed_once = false;
            let event_calls = table.by_event.get_mut(event).map(|listeners| {
                let calls = listeners.clone();
                if listeners.iter().any(|e| e.once) {
                    Arc::make_mut(listeners).retain(|e| !e.once);
                    removed_once = true;
                }
                calls
            });
            if removed_once {
                table.by_event.retain(|_, l| !l.is_empty());
                self.version.fetch_add(1, Ordering::Release);
            }
            let calls = Calls {
                any,
                event: event_calls,
            };
            (self.version.load(Ordering::Acquire), calls, removed_once)
        };
        if removed_once {
            self.refresh();
        }
        (version, calls, removed_once)
    }

    /// Calls the outgoing listeners with an emit about to go out.
    pub(crate) fn emitting(&self, event: &str, args: &Args) {
        if !self.outgoing.load(Ordering::Acquire) {
            return;
        }
        let handlers: Vec<OutgoingHandler> = self
            .lock()
            .outgoing
            .iter()
            .map(|e| e.handler.clone())
            .collect();
        for handler in handlers {
            handler(event, args);
        }
    }
}

/// The listener methods of `Client` and `AsyncClient` (both hold a `core: Arc<SocketCore>`).
macro_rules! listener_methods {
    () => {
        /// Adds a listener for `event` to the connected socket; it receives the events that
        /// arrive from now on, after the listeners added before it (the JS client's
        /// `socket.on`). Returns the id [`off`](Self::off) takes.
        pub fn on<F>(&self, event: impl Into<String>, handler: F) -> crate::ListenerId
        where
            F: Fn(crate::Args, Option<crate::AckSender>) + Send + Sync + 'static,
        {
            let listener = crate::listeners::Listener::Plain(std::sync::Arc::new(handler));
            self.core
                .listeners
                .edit(|t| t.on(event.into(), listener, false))
        }

        /// Adds a listener that receives the arguments read into `T`: a lone argument as
        /// itself (a struct, say), several as a tuple. `Bytes` fields receive binary
        /// attachments. Arguments that do not fit reach `events()` as an
        /// [`Event::Error`](crate::Event::Error) with an [`Error::Deserialize`](crate::Error)
        /// naming the event and the argument.
        pub fn on_typed<T, F>(&self, event: impl Into<String>, handler: F) -> crate::ListenerId
        where
            T: serde::de::DeserializeOwned + 'static,
            F: Fn(T, Option<crate::AckSender>) + Send + Sync + 'static,
        {
            let event = event.into();
            let listener =
                crate::listeners::Listener::Typed(crate::listeners::typed(&event, handler));
            self.core.listeners.edit(|t| t.on(event, listener, false))
        }

        /// Adds a listener for the next `event` only (the JS client's `socket.once`).
        pub fn once<F>(&self, event: impl Into<String>, handler: F) -> crate::ListenerId
        where
            F: Fn(crate::Args, Option<crate::AckSender>) + Send + Sync + 'static,
        {
            let listener = crate::listeners::Listener::Plain(std::sync::Arc::new(handler));
            self.core
                .listeners
                .edit(|t| t.on(event.into(), listener, true))
        }

        /// Adds a listener for every incoming event, called before the event's own listeners
        /// (the JS client's `socket.onAny`).
        pub fn on_any<F>(&self, handler: F) -> crate::ListenerId
        where
            F: Fn(&str, crate::Args, Option<crate::AckSender>) + Send + Sync + 'static,
        {
            self.core
                .listeners
                .edit(|t| t.on_any(std::sync::Arc::new(handler), false))
        }

        /// Like [`on_any`](Self::on_any), before the `on_any` listeners there are (the JS
        /// client's `socket.prependAny`).
        pub fn prepend_any<F>(&self, handler: F) -> crate::ListenerId
        where
            F: Fn(&str, crate::Args, Option<crate::AckSender>) + Send + Sync + 'static,
        {
            self.core
                .listeners
                .edit(|t| t.on_any(std::sync::Arc::new(handler), true))
        }

        /// Adds a listener for every emit of this socket (the JS client's
        /// `socket.onAnyOutgoing`).
        pub fn on_any_outgoing<F>(&self, handler: F) -> crate::ListenerId
        where
            F: Fn(&str, &crate::Args) + Send + Sync + 'static,
        {
            self.core
                .listeners
                .edit(|t| t.on_any_outgoing(std::sync::Arc::new(handler)))
        }

        /// Removes the listener `id` (of any kind); whether it was there. An event whose last
        /// listener is gone goes to `events()` again.
        pub fn off(&self, id: crate::ListenerId) -> bool {
            self.core.listeners.off(id)
        }

        /// Removes every listener of `event` (the JS client's `socket.off(event)`).
        pub fn off_event(&self, event: &str) {
            self.core.listeners.off_event(event)
        }

        /// Removes every `on_any` listener (the JS client's `socket.offAny()`).
        pub fn off_any(&self) {
            self.core.listeners.off_any()
        }

        /// Removes every `on_any_outgoing` listener (`socket.offAnyOutgoing()`).
        pub fn off_any_outgoing(&self) {
            self.core.listeners.off_any_outgoing()
        }
    };
}
pub(crate) use listener_methods;
