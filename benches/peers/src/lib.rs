//! Nothing: the crate exists for `benches/ack.rs` (see Cargo.toml).
