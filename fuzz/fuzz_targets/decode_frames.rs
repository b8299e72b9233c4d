//! Arbitrary bytes, split into arbitrary reads, through the frame decoder
//! and the frame reader; see `fuzz_inputs::frames`.
#![no_main]

// The code the targets run, shared with chat-core's replay test.
#[allow(dead_code)]
#[path = "../../chat-core/tests/fuzz_inputs/mod.rs"]
mod fuzz_inputs;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_inputs::frames::decode_frames(data));
