//! sio-client: a socket.io client.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
#[cfg(feature = "mock-server")]
pub mod mock;
pub mod payload;
pub mod proto;
pub mod transport;

pub use error::{Error, Result};
pub use payload::Args;
pub use transport::Transport;
