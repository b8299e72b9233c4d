//! Deterministic simulation of the chat over turmoil (scenarios arrive with
//! the simulation work; see ARCHITECTURE.md).

#[cfg(not(tokio_unstable))]
compile_error!(
    "sim-tests needs `--cfg tokio_unstable` (set in .cargo/config.toml) for deterministic runs"
);
