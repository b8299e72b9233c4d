//! Unit tests of the room state machine (no runtime, no I/O).
use super::*;
