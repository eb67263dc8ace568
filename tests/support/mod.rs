//! Shared machinery for the integration tests: `mod support;` in a test file.
//!
//! Each test binary compiles this module on its own and usually uses only part of it,
//! so unused items are expected rather than a sign of dead code.
#![allow(dead_code, unused_imports)]

pub mod background;
pub mod cpu;
pub mod events;
pub mod fixtures;
pub mod hostile;
pub mod hostile_vectors;
pub mod http;
pub mod matrix;
pub mod middlebox;
pub mod node;
pub mod process;
pub mod proxy;
pub mod raw;
pub mod servers;
pub mod socks;
pub mod sticky;
pub mod tls;

pub use node::{NodeOptions, NodeServer, SioVersion};
pub use proxy::{ConnectProxy, ConnectStats, FaultProxy, ProxyMode, ProxyStats};
pub use servers::{ExternalServer, Heartbeat, ServerKind};
