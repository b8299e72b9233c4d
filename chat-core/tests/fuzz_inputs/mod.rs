//! What the fuzz targets run, in one copy shared by `fuzz/` (cargo-fuzz,
//! which includes this folder by path) and `tests/fuzz_corpus.rs` (which
//! replays every seed and every saved crash in a plain `cargo test`), so
//! that a replayed input runs exactly the code the fuzzer ran.
//!
//! Each target turns arbitrary bytes into inputs and checks properties as it
//! goes; a broken property panics, which libFuzzer saves as a crash and the
//! replay test reports as a failure. It uses only chat-core's public
//! interface: nothing in chat-core exists for fuzzing's sake.
//!
//! - [`frames`]: `decode_frames`, the frame decoder and reader.
//! - [`rooms`]: `rooms_inputs`, the room state machine.
//! - [`restore`]: `restore_records`, rebuilding state from a data directory.
//! - [`seeds`]: the meaningful inputs checked in as the seed corpus.

pub mod cursor;
pub mod frames;
pub mod restore;
pub mod rooms;
pub mod seeds;

/// A fuzz target: it panics if its input breaks a property.
pub type Target = fn(&[u8]);

/// Every fuzz target, by the name of its folder under `fuzz/corpus/` and
/// `fuzz/artifacts/`.
pub const TARGETS: [(&str, Target); 3] = [
    ("decode_frames", frames::decode_frames),
    ("rooms_inputs", rooms::rooms_inputs_target),
    ("restore_records", restore::restore_records),
];
