//! Deterministic simulation of the chat over turmoil.
//!
//! A [`scenario::Scenario`] (drawn from a seed, or written by hand) says what
//! the users do and which faults happen; [`world::run`] runs the real server
//! and client code of chat-core on turmoil hosts and records what everyone
//! saw; [`oracle::check`] judges that record against named properties;
//! [`transcript`] renders what each user's terminal showed; [`sweep`] runs
//! many seeds and summarises them (the `sim` binary, `just sim`).

#[cfg(not(tokio_unstable))]
compile_error!(
    "sim-tests needs `--cfg tokio_unstable` (set in .cargo/config.toml): without it, unbiased `select!` is random per run"
);

pub mod adversary;
pub mod named;
pub mod net;
pub mod oracle;
pub mod report;
pub mod scenario;
pub mod seeds;
pub mod svg;
pub mod sweep;
pub mod timeline;
pub mod trace;
pub mod transcript;
pub mod world;
