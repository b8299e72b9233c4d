//! `chat-cli`: the chat server and terminal client.
//!
//! A thin binary: argument parsing (clap), logging, terminal input and output.
//! The chat itself is chat-core, over chat-net's real TCP (with TLS when
//! asked for).

mod bench;
mod client;
mod limits;
mod logging;
mod report_file;
mod server;
mod tls;

/// jemalloc rather than the system allocator: built to return freed pages to
/// the system within about 200 ms, from a background thread
/// (`.cargo/config.toml`), it keeps a server's memory close to what its
/// connections hold after a burst of traffic, where glibc's allocator kept
/// about 2 KB more per idle connection (README, Performance).
#[cfg(all(unix, not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A reliable group chat: run a server, then join it with clients.
#[derive(Debug, Parser)]
#[command(name = "chat-cli", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the chat server (logs go to standard output; RUST_LOG filters them).
    Server(server::ServerArgs),
    /// Join a chat server from the terminal (or from piped input).
    Client(client::ClientArgs),
    /// Measure the server under load, alone or beside ngIRCd and InspIRCd.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Server(args) => server::main(args),
        Command::Client(args) => client::main(args),
        Command::Bench(args) => bench::main(args),
    }
}
