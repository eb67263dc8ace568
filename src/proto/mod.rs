//! The sans-IO protocol core: every Engine.IO and Socket.IO rule, no sockets, threads, channels
//! or clocks. Time is passed in as `Instant` arguments; state machines are fed input and polled
//! for output, so everything here is tested with byte vectors and a virtual clock.
//!
//! A public, documented layer covered by the crate's semver, for whoever needs the protocol
//! without this crate's IO (a server, a fuzzer, another transport). Its enums and its structs
//! with public fields are `#[non_exhaustive]`: match them with a wildcard arm and build the
//! structs with their constructors or parsers.

pub mod backoff;
pub mod engineio;
mod error;
pub(crate) mod local_map;
pub mod socketio;
pub(crate) mod time;

pub use error::ProtocolError;
