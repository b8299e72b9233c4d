//! `chat-cli server`: the real server over tokio TCP, optionally with TLS.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use chat_core::room::RoomConfig;
use chat_core::server::ServerConfig;
use chat_net::{Network, TokioNetwork};
use clap::Args;
use tracing_subscriber::EnvFilter;

use crate::tls::ServerTlsArgs;

/// The limits that are not options, from the code's own constants.
fn fixed_limits() -> String {
    let room = RoomConfig::default();
    let server = ServerConfig::default();
    format!(
        "Fixed limits (see PROTOCOL.md):
  frame                {frame} bytes, newline included; longer lines are refused before buffering
  message text         {text} bytes of UTF-8, no control characters but tab
  nickname, room name  1 to {nick} characters
  rooms per server     {rooms}
  retried ids          the last {acks} per session are remembered for deduplication
  clock tick           {tick:?} (heartbeats, timeouts and grace periods are checked this often)
  accept backoff       {backoff:?} after a failed accept (for example, out of file descriptors)
  lingering close      {linger:?} of draining a refused client's input before closing",
        frame = chat_core::protocol::FRAME_BYTES_MAX,
        text = chat_core::protocol::TEXT_BYTES_MAX,
        nick = chat_core::protocol::NICK_CHARS_MAX,
        rooms = room.rooms_max,
        acks = room.acks_remembered_max,
        tick = server.tick,
        backoff = server.accept_backoff,
        linger = chat_core::server::LINGER,
    )
}

/// Options of `chat-cli server`.
#[derive(Debug, Args)]
#[command(after_help = fixed_limits())]
pub struct ServerArgs {
    /// Address to listen on (`host:port`; port 0 picks a free port, and the
    /// log says which).
    #[arg(long, env = "CHAT_LISTEN", default_value = "127.0.0.1:9999")]
    listen: String,

    /// Most bytes queued for one client; a client that does not read is
    /// disconnected when its queue would pass this.
    #[arg(long, env = "CHAT_QUEUE_BYTES_MAX", default_value_t = 1024 * 1024)]
    queue_bytes_max: usize,

    /// How often the server sends each client a heartbeat.
    #[arg(long, env = "CHAT_HEARTBEAT_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    heartbeat_interval: Duration,

    /// A client silent for this long is disconnected.
    #[arg(long, env = "CHAT_HEARTBEAT_TIMEOUT", default_value = "15s", value_parser = humantime::parse_duration)]
    heartbeat_timeout: Duration,

    /// How long a disconnected client's session waits for it to come back
    /// before it is announced as left.
    #[arg(long, env = "CHAT_SESSION_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    session_grace: Duration,

    /// Events kept per room for clients that reconnect.
    #[arg(long, env = "CHAT_HISTORY_MAX", default_value_t = 1024)]
    history_max: usize,

    /// Worker threads of the async runtime (0: one per CPU core).
    #[arg(long, env = "CHAT_THREADS", default_value_t = 0)]
    threads: usize,

    /// How long shutdown waits for clients to take their last messages.
    #[arg(long, env = "CHAT_SHUTDOWN_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    shutdown_timeout: Duration,

    #[command(flatten)]
    tls: ServerTlsArgs,
}

impl ServerArgs {
    fn config(&self) -> ServerConfig {
        ServerConfig {
            room: RoomConfig {
                heartbeat_interval: self.heartbeat_interval,
                heartbeat_timeout: self.heartbeat_timeout,
                session_grace: self.session_grace,
                history_max: self.history_max,
                ..RoomConfig::default()
            },
            queue_bytes_max: self.queue_bytes_max,
            shutdown_flush_timeout: self.shutdown_timeout,
            ..ServerConfig::default()
        }
    }
}

/// Runs the server until SIGTERM or Ctrl-C (SIGHUP reloads the TLS
/// certificate).
pub fn main(args: ServerArgs) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_target(false)
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if args.threads > 0 {
        builder.worker_threads(args.threads);
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("chat-cli server: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServerArgs) -> anyhow::Result<()> {
    match crate::limits::raise_open_files() {
        Ok(limit) => tracing::debug!("open-file limit: {limit}"),
        Err(error) => tracing::warn!("Cannot raise the open-file limit: {error}."),
    }
    let config = args.config();
    let tls = args.tls.load()?;
    let listener = crate::tls::server_network(tls.as_ref())
        .bind(&args.listen)
        .await?;
    // Before the server says it listens: from then on SIGHUP must not kill it.
    let reloading = crate::tls::reload_on_hangup(tls);
    let seed = rand::random::<u64>();
    let served =
        chat_core::server::run::<TokioNetwork>(listener, config, seed, shutdown_signal(), |_| {})
            .await;
    if let Some(reloading) = reloading {
        reloading.abort();
    }
    served?;
    tracing::info!("Server stopped.");
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(error) => {
                    tracing::warn!(
                        "Cannot watch for SIGTERM ({error}); only Ctrl-C stops the server."
                    );
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
