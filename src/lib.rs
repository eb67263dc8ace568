//! sio-client: a socket.io client for Rust that gets through.
//!
//! It speaks to socket.io 4.x and 3.x servers (Engine.IO v4 / Socket.IO v5) and to 2.x servers
//! (Engine.IO v3 / Socket.IO v4, with [`EngineVersion::V3`], or detected with
//! [`EngineVersion::Auto`]), over WebSocket or HTTP long-polling, with one API whatever the
//! transport: [`Client`] blocks, [`AsyncClient`] is for tokio applications. Both are cheap `Clone` handles over one connection task; many clients
//! share one runtime.
//!
//! ```no_run
//! use std::time::Duration;
//! use sio_client::{Client, Event};
//!
//! # fn main() -> Result<(), sio_client::Error> {
//! let client = Client::builder("http://localhost:3000")
//!     .auth(serde_json::json!({ "token": "abc" }))
//!     .on("news", |args, _ack| println!("news: {:?}", args.values()))
//!     .connect()?;
//! println!("connected over {}", client.transport());
//! client.emit("chat", serde_json::json!({ "text": "hi" }))?;          // one argument
//! client.emit("move", (10, 20))?;                                      // a tuple: two arguments
//! let reply = client.emit_with_ack("ping", (), Duration::from_secs(5))?;
//! println!("ack: {:?}", reply.values());
//! for event in client.events() {
//!     if let Event::Disconnected { reason, .. } = event {
//!         println!("gone: {reason}");
//!         break;
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # Layers
//!
//! ```text
//!   Client / AsyncClient / Events            handles: send requests, read status and events
//!        │ request (channel, or  ▲ event queues, oneshot answers, status atomics
//!        │ on the caller's thread while the driver is idle)
//!        ▼                     │
//!   driver  ─ one task per connection: a poll loop that feeds the core and flushes it
//!   │  routes (token → answer), link (session + transport + decoder), upgrade (IO half), open
//!   │
//!   ├── proto::socketio::client   the client state machine (sans-IO): namespaces, acks,
//!   │                             at-least-once queue, send buffer, recovery, reconnection
//!   ├── proto::engineio           Engine.IO session, heartbeat, packets, payloads (sans-IO)
//!   ├── proto::socketio           Socket.IO packets, binary attachments, event encoding
//!   └── transport                 WebSocket, polling, streaming; the transport race;
//!                                 proxies, TLS, cookies (the only code that touches sockets)
//!   payload (Args), error, event, config: plain types every layer above may use
//!   mock                          a socket.io server for tests (feature `mock-server`)
//! ```
//!
//! Nothing in `proto` does IO, reads the clock or draws random numbers: time and seeds are
//! arguments, so every protocol rule is tested with byte vectors and a virtual clock. The
//! driver makes no protocol decision; the handles only send requests and wait, which is why the
//! blocking client works from inside a tokio runtime too.
//!
//! [`proto`] is public on purpose, for server authors, fuzzers and custom transports: it is a
//! documented part of the API and follows the crate's semver like everything else. Its enums
//! and the structs with public fields are `#[non_exhaustive]`, so that a protocol detail it
//! learns later (a packet field, a session event) is not a breaking change.
//!
//! Crate features: `ring` (default) or `aws-lc-rs` pick rustls' crypto provider;
//! `native-roots` (default) adds the operating system's certificate store; `pkcs12` adds
//! PKCS#12 client identities (`ClientBuilder::tls_client_pkcs12`, read in pure Rust);
//! `mock-server` adds the `mock` module; `cli` builds the `sio` command. TLS is rustls on
//! every transport, without OpenSSL. The README's "Crate features and dependencies" says why
//! ring is the default.
//!
//! # In scope
//!
//! - Socket.IO clients for servers speaking Engine.IO 4 / Socket.IO 5 (socket.io 3 and 4,
//!   python-socketio 5, socketioxide) and Engine.IO 3 / Socket.IO 4 (socket.io 2).
//! - WebSocket, HTTP long-polling and HTTP streaming, chosen and raced automatically, with
//!   upgrades; proxies (environment or explicit), TLS (rustls), cookies.
//! - Namespaces, acknowledgements, binary attachments, reconnection with the JS client's
//!   backoff, at-least-once emits, the offline send buffer, connection-state recovery.
//! - Bounded memory and back-pressure against fast or hostile servers.
//! - A mock socket.io server for integration tests (`mock`, and the `sio mock` program).
//!
//! # Out of scope
//!
//! - Being a server (use socketioxide or the mock for tests).
//! - Browsers and WebAssembly; the WebTransport transport.
//! - Message persistence across process restarts (the send buffer lives in memory).
//! - Socket.IO 1.x and Engine.IO 2 and older.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

mod ack_handle;
mod async_client;
mod client;
mod config;
mod driver;
mod error;
mod event;
mod event_queue;
mod listeners;
#[cfg(feature = "mock-server")]
#[cfg_attr(docsrs, doc(cfg(feature = "mock-server")))]
pub mod mock;
pub mod payload;
pub mod proto;
mod reason;
mod request;
mod runtime;
mod socket;
pub mod transport;

pub use ack_handle::AckHandle;
pub use async_client::{AsyncClient, SocketBuilder};
pub use client::{Client, Events, WeakClient};
pub use config::{AnyHandler, ClientBuilder, Handler};
pub use error::{ConnectFailure, Error, ErrorSource, Result};
pub use event::{AckSender, Event};
pub use event_queue::EventOverflow;
pub use listeners::{ListenerId, OutgoingHandler};
pub use payload::Args;
pub use proto::engineio::EngineVersion;
pub use reason::DisconnectReason;
pub use transport::report::{Attempt, Hint};
pub use transport::Transport;
