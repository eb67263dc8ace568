//! cargo-fuzz target `engineio_session`: see `harness::engineio_session` for the input format and invariants.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::engineio_session(data));
