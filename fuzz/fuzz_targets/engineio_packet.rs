//! cargo-fuzz target `engineio_packet`: see `harness::engineio_packet` for the input format and invariants.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::engineio_packet(data));
