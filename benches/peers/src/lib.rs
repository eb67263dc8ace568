//! Nothing: the crate exists for `benches/ack.rs` and `benches/compare.rs` (see Cargo.toml).
