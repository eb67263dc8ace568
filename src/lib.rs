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
//! Layers: `proto` holds every protocol rule with no IO (tested with byte vectors and a
//! virtual clock); `transport` moves Engine.IO packets over WebSocket or polling; one driver
//! task per connection joins them and is the only place where protocol meets IO; the facades
//! only send commands to it and wait on channels, which is why the blocking client works from
//! inside a tokio runtime too.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod async_client;
mod client;
mod config;
mod driver;
mod error;
mod event;
mod event_queue;
#[cfg(feature = "mock-server")]
pub mod mock;
pub mod payload;
pub mod proto;
mod request;
mod runtime;
mod socket;
pub mod transport;

pub use async_client::{AsyncClient, SocketBuilder};
pub use client::{Client, Events};
pub use config::{AnyHandler, ClientBuilder, Handler};
pub use error::{Error, ErrorSource, Result};
pub use event::{AckSender, DisconnectReason, Event};
pub use event_queue::EventOverflow;
pub use payload::Args;
pub use proto::engineio::EngineVersion;
pub use transport::connect::Attempt;
pub use transport::Transport;
