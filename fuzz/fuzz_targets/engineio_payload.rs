//! cargo-fuzz target `engineio_payload`: see `harness::engineio_payload` for the input format and invariants.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::engineio_payload(data));
