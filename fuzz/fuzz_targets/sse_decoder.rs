//! cargo-fuzz target `sse_decoder`: see `harness::sse_decoder` for the input format and invariants.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::sse_decoder(data));
