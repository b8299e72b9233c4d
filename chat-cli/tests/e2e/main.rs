//! End-to-end tests of the real `chat-cli` binary over loopback TCP.
//!
//! They time real processes, so nextest runs them one at a time in their own
//! test group (`.config/nextest.toml`).

mod harness;
#[cfg(unix)]
mod pty;

mod bad_input;
mod bench;
mod demo;
mod durability;
mod failures;
mod limits;
mod reports;
mod slow_reader;
mod soak;
#[cfg(unix)]
mod terminal;
mod tls;
