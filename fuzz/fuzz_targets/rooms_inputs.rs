//! The room state machine fed arbitrary input sequences, its invariants
//! checked after each and its log restored at the end; see
//! `fuzz_inputs::rooms`.
#![no_main]

// The code the targets run, shared with chat-core's replay test.
#[allow(dead_code)]
#[path = "../../chat-core/tests/fuzz_inputs/mod.rs"]
mod fuzz_inputs;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_inputs::rooms::rooms_inputs_target(data));
