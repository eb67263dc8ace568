//! cargo-fuzz target `socketio_decoder`: see `harness::socketio_decoder` for the input format and invariants.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::socketio_decoder(data));
