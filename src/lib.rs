//! sio-client: a socket.io client for Rust.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod async_client;
mod client;
mod config;
mod driver;
mod error;
mod event;
mod event_queue;
pub mod payload;
pub mod proto;
mod runtime;
mod socket;
pub mod transport;

pub use async_client::{AsyncClient, SocketBuilder};
pub use client::{Client, Events};
pub use config::{AnyHandler, ClientBuilder, Handler};
pub use error::{Error, Result};
pub use event::{AckSender, DisconnectReason, Event};
pub use payload::Args;
pub use proto::engineio::EngineVersion;
pub use transport::connect::Attempt;
pub use transport::Transport;
