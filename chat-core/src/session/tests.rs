//! Unit tests of the client session state machine (no runtime, no I/O).
use super::*;
