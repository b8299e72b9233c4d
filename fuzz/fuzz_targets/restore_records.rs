//! Arbitrary bytes as a data directory's snapshot and records: refused
//! with an error, never a panic; see `fuzz_inputs::restore`.
#![no_main]

// The code the targets run, shared with chat-core's replay test.
#[allow(dead_code)]
#[path = "../../chat-core/tests/fuzz_inputs/mod.rs"]
mod fuzz_inputs;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_inputs::restore::restore_records(data));
