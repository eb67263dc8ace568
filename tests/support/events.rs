//! What the behaviour tests make of one event or one result, the same for the blocking and the
//! async client: only how the next event is awaited differs between them, so each wait is a
//! loop around one of these steps. Self-contained (no other support module), so that a test
//! binary can take it alone with `#[path = "support/events.rs"]`.
// A binary that takes this file alone uses only part of it.
#![allow(dead_code)]

use std::fmt::Debug;

use serde_json::Value;
use sio_client::{AckSender, Args, DisconnectReason, Error, Event, Transport};

/// One step of the wait for the upgrade to WebSocket: `true` once it happened, `false` for a
/// `Connected` to skip; panics on anything else.
pub fn upgrade_step(event: Option<Event>) -> bool {
    match event {
        Some(Event::TransportChanged { from, to }) => {
            assert_eq!((from, to), (Transport::Polling, Transport::WebSocket));
            true
        }
        Some(Event::Connected { .. }) => false,
        other => panic!("expected an upgrade, got {other:?}"),
    }
}

/// One step of the wait for the message `name`: its arguments and ack sender, `None` for a
/// connection-state event to skip; panics on anything else, saying `what` was waiting.
pub fn message_step(
    event: Option<Event>,
    name: &str,
    what: &str,
) -> Option<(Args, Option<AckSender>)> {
    match event {
        Some(Event::Message {
            event, args, ack, ..
        }) if event == name => Some((args, ack)),
        Some(Event::Connected { .. } | Event::TransportChanged { .. }) => None,
        other => panic!("{what}: waiting for {name:?}, got {other:?}"),
    }
}

/// One step of the wait for a disconnect: its reason, `None` for an error or a
/// connection-state event to skip; panics on anything else.
pub fn disconnect_step(event: Option<Event>) -> Option<DisconnectReason> {
    match event {
        Some(Event::Disconnected { reason, .. }) => Some(reason),
        Some(Event::Error(_) | Event::Connected { .. } | Event::TransportChanged { .. }) => None,
        other => panic!("waiting for a disconnect, got {other:?}"),
    }
}

/// Asserts that joining `/admin` was refused with "not authorized" and `data` (the test
/// servers' guard refuses a wrong token so).
pub fn assert_admin_refused<T: Debug>(joined: Result<T, Error>, data: Option<Value>) {
    match joined {
        Err(Error::ConnectRefused {
            namespace,
            message,
            data: refused_data,
        }) => {
            assert_eq!(namespace, "/admin");
            assert_eq!(message, "not authorized");
            assert_eq!(refused_data, data);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}
