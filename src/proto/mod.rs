//! The sans-IO protocol core: every Engine.IO and Socket.IO rule, no sockets, threads, channels
//! or clocks. Time is passed in as `Instant` arguments; state machines are fed input and polled
//! for output, so everything here is tested with byte vectors and a virtual clock.

pub mod backoff;
pub mod engineio;
mod error;
pub mod socketio;
pub(crate) mod time;

pub use error::ProtocolError;
