//! `chat-cli server`: the real server over tokio TCP, optionally with TLS.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chat_core::report::ServerReport;
use chat_core::room::RoomConfig;
use chat_core::server::{Keeping, ServerConfig, ServerError, ServerHandle, Start};
use chat_net::{Network, TokioNetwork, TokioStorage};
use clap::Args;
use tokio::task::JoinHandle;

use crate::report_file::ReportFile;
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
  message ids          1 to {ids}; the last {acks} per session are remembered to answer retries
  refused hellos       {hellos} per connection
  clock tick           {tick:?} (heartbeats, timeouts and grace periods are checked this often)
  accept backoff       {backoff:?} after a failed accept (for example, out of file descriptors)
  lingering close      {linger:?} of draining a refused client's input before closing",
        frame = chat_core::protocol::FRAME_BYTES_MAX,
        text = chat_core::protocol::TEXT_BYTES_MAX,
        nick = chat_core::protocol::NICK_CHARS_MAX,
        ids = chat_core::protocol::MESSAGE_ID_MAX,
        acks = room.acks_remembered_max,
        hellos = room.hello_attempts_max,
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

    /// Where the server keeps its state: rooms, history, sessions. An
    /// acknowledged message is on disk there, and a restart (even after
    /// kill -9) resumes every session.
    #[arg(
        long,
        env = "CHAT_DATA_DIR",
        default_value = "chat-data",
        conflicts_with = "in_memory"
    )]
    data_dir: PathBuf,

    /// Keep nothing on disk: a restart loses every message and session.
    #[arg(long, env = "CHAT_IN_MEMORY", value_parser = clap::builder::BoolishValueParser::new())]
    in_memory: bool,

    /// Worker threads of the async runtime (0: one per CPU core).
    #[arg(long, env = "CHAT_THREADS", default_value_t = 0)]
    threads: usize,

    /// How long shutdown waits for clients to take their last messages.
    #[arg(long, env = "CHAT_SHUTDOWN_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    shutdown_timeout: Duration,

    /// How often the console shows a summary of the server's state (0s:
    /// never).
    #[arg(long, env = "CHAT_SUMMARY_INTERVAL", default_value = "60s", value_parser = humantime::parse_duration)]
    summary_interval: Duration,

    /// Append every event released, every console notice, and what each
    /// start recovered to this file as JSON lines (for the test that judges
    /// the real binaries with the simulation's oracle).
    #[arg(long, hide = true)]
    observe: Option<PathBuf>,

    #[command(flatten)]
    timing: TimingArgs,

    #[command(flatten)]
    limits: LimitArgs,

    #[command(flatten)]
    tls: ServerTlsArgs,
}

/// Heartbeats, deadlines and grace periods.
#[derive(Debug, Args)]
#[command(next_help_heading = "Timing")]
struct TimingArgs {
    /// How often the server sends each client a heartbeat.
    #[arg(long, env = "CHAT_HEARTBEAT_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    heartbeat_interval: Duration,

    /// A client silent for this long is disconnected (bytes of an
    /// unfinished frame count as life).
    #[arg(long, env = "CHAT_HEARTBEAT_TIMEOUT", default_value = "15s", value_parser = humantime::parse_duration)]
    heartbeat_timeout: Duration,

    /// A connection must have its hello accepted within this long (however
    /// slowly its bytes trickle in).
    #[arg(long, env = "CHAT_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    handshake_timeout: Duration,

    /// How long a disconnected client's session waits for it to come back
    /// before it is announced as left.
    #[arg(long, env = "CHAT_SESSION_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    session_grace: Duration,
}

/// What one client, or all of them, may take.
#[derive(Debug, Args)]
#[command(next_help_heading = "Limits")]
struct LimitArgs {
    /// Most bytes queued for one client; a client that does not read is
    /// disconnected when its queue would pass this.
    #[arg(long, env = "CHAT_QUEUE_BYTES_MAX", default_value_t = 1024 * 1024)]
    queue_bytes_max: usize,

    /// Messages per second one connection may send on average (0: no limit);
    /// a faster one is throttled.
    #[arg(long, env = "CHAT_MESSAGE_RATE", default_value_t = RoomConfig::default().message_rate)]
    message_rate: u32,

    /// Messages one connection may send at once above the rate.
    #[arg(long, env = "CHAT_MESSAGE_BURST", default_value_t = RoomConfig::default().message_burst)]
    message_burst: u32,

    /// A connection that stays throttled this long is closed for flooding.
    #[arg(long, env = "CHAT_FLOOD_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    flood_timeout: Duration,

    /// Most connections open at once.
    #[arg(long, env = "CHAT_CONNECTIONS_MAX", default_value_t = RoomConfig::default().connections_max)]
    connections_max: usize,

    /// Most connections open at once from one IP address.
    #[arg(long, env = "CHAT_CONNECTIONS_PER_ADDRESS_MAX", default_value_t = RoomConfig::default().connections_per_address_max)]
    connections_per_address_max: usize,

    /// Most sessions (online, or waiting out their grace period).
    #[arg(long, env = "CHAT_SESSIONS_MAX", default_value_t = RoomConfig::default().sessions_max)]
    sessions_max: usize,

    /// Most rooms; a room is freed when its last member leaves.
    #[arg(long, env = "CHAT_ROOMS_MAX", default_value_t = RoomConfig::default().rooms_max)]
    rooms_max: usize,

    /// Most members of one room.
    #[arg(long, env = "CHAT_ROOM_MEMBERS_MAX", default_value_t = RoomConfig::default().room_members_max)]
    room_members_max: usize,

    /// Most rooms one session is in.
    #[arg(long, env = "CHAT_ROOMS_PER_SESSION_MAX", default_value_t = RoomConfig::default().rooms_per_session_max)]
    rooms_per_session_max: usize,

    /// Events kept per room, for clients that reconnect.
    #[arg(long, env = "CHAT_HISTORY_MAX", default_value_t = RoomConfig::default().history_max)]
    history_max: usize,

    /// Bytes of events kept per room.
    #[arg(long, env = "CHAT_HISTORY_BYTES_MAX", default_value_t = RoomConfig::default().history_bytes_max)]
    history_bytes_max: usize,

    /// Private messages kept per session.
    #[arg(long, env = "CHAT_PRIVATE_HISTORY_MAX", default_value_t = RoomConfig::default().private_history_max)]
    private_history_max: usize,

    /// Bytes of history kept by the whole server; past it the longest
    /// history loses its oldest events first.
    #[arg(long, env = "CHAT_HISTORY_BYTES_TOTAL_MAX", default_value_t = RoomConfig::default().history_bytes_total_max)]
    history_bytes_total_max: usize,

    /// Recent messages a new member of a room is shown.
    #[arg(long, env = "CHAT_HISTORY_ON_JOIN", default_value_t = RoomConfig::default().history_on_join)]
    history_on_join: usize,
}

impl ServerArgs {
    fn config(&self) -> ServerConfig {
        let (timing, limits) = (&self.timing, &self.limits);
        ServerConfig {
            room: RoomConfig {
                heartbeat_interval: timing.heartbeat_interval,
                heartbeat_timeout: timing.heartbeat_timeout,
                handshake_timeout: timing.handshake_timeout,
                session_grace: timing.session_grace,
                history_max: limits.history_max,
                history_bytes_max: limits.history_bytes_max,
                private_history_max: limits.private_history_max,
                history_bytes_total_max: limits.history_bytes_total_max,
                history_on_join: limits.history_on_join,
                rooms_max: limits.rooms_max,
                room_members_max: limits.room_members_max,
                rooms_per_session_max: limits.rooms_per_session_max,
                sessions_max: limits.sessions_max,
                connections_max: limits.connections_max,
                connections_per_address_max: limits.connections_per_address_max,
                message_rate: limits.message_rate,
                message_burst: limits.message_burst,
                flood_timeout: limits.flood_timeout,
                summary_interval: self.summary_interval,
                ..RoomConfig::default()
            },
            queue_bytes_max: limits.queue_bytes_max,
            shutdown_flush_timeout: self.shutdown_timeout,
            ..ServerConfig::default()
        }
    }
}

/// Runs the server until SIGTERM or Ctrl-C (SIGHUP reloads the TLS
/// certificate).
pub fn main(args: ServerArgs) -> ExitCode {
    let mut console = crate::logging::start();
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
    let served = runtime.block_on(serve(args, &mut console));
    console.report_dropped();
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The error's own text says what failed and why, once (its
            // sources are already in it).
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServerArgs, console: &mut crate::logging::Console) -> anyhow::Result<()> {
    let observer = match &args.observe {
        Some(path) => Some(Observer::open(path)?),
        None => None,
    };
    let report = |record: ServerReport| {
        if let Some(observer) = &observer {
            observer.write(record);
        }
    };
    report(ServerReport::Starting);
    match crate::limits::raise_open_files() {
        Ok(limit) => tracing::debug!("open-file limit: {limit}"),
        Err(error) => tracing::warn!("Cannot raise the open-file limit: {error}."),
    }
    let config = args.config();
    let start = match open(&args, &config).await {
        Ok(start) => start,
        Err(error) => {
            report(ServerReport::Failed(error.to_string()));
            return Err(error.into());
        }
    };
    report(ServerReport::recovered(&start.rooms, start.recovered));
    let tls = args.tls.load()?;
    let listener = crate::tls::server_network(tls.as_ref())
        .bind(&args.listen)
        .await?;
    // Before the server says it listens: from then on SIGHUP must not kill it.
    let reloading = crate::tls::reload_on_hangup(tls);
    let mut peaks = None;
    let served = {
        let running = chat_core::server::run::<TokioNetwork, TokioStorage>(
            listener,
            config,
            start,
            shutdown_signal(),
            |handle| peaks = observer.as_ref().map(|observer| observer.watch(handle)),
        );
        tokio::pin!(running);
        let mut reports = tokio::time::interval(Duration::from_secs(10));
        loop {
            tokio::select! {
                served = &mut running => break served,
                _ = reports.tick() => console.report_dropped(),
            }
        }
    };
    for task in [reloading, peaks].into_iter().flatten() {
        task.abort();
    }
    if let Err(error) = &served {
        report(ServerReport::Stopped(error.to_string()));
    }
    served?;
    tracing::info!("Server stopped.");
    Ok(())
}

/// The server's state: recovered from the data directory, or new.
async fn open(
    args: &ServerArgs,
    config: &ServerConfig,
) -> Result<Start<TokioStorage>, ServerError> {
    let keeping = if args.in_memory {
        Keeping::InMemory
    } else {
        Keeping::Durable {
            storage: TokioStorage,
            dir: args.data_dir.clone(),
        }
    };
    let incarnation = || format!("{:032x}", rand::random::<u128>());
    chat_core::server::open(keeping, &config.room, rand::random(), incarnation).await
}

/// `--observe`: the report file, shared by the server's observer (called
/// under the server's lock), the watcher of the queue peak, and the start.
#[derive(Clone)]
struct Observer {
    file: ReportFile,
}

impl Observer {
    fn open(path: &std::path::Path) -> anyhow::Result<Observer> {
        let file = ReportFile::open(path)
            .map_err(|error| anyhow::anyhow!("cannot open {}: {error}", path.display()))?;
        Ok(Observer { file })
    }

    fn write(&self, record: ServerReport) {
        self.file.write(record);
    }

    /// Reports every event and notice of the running server, and, each
    /// clock tick, the queue peak when it grew (the peak is a counter, not
    /// an event: one that grew in the last tick before a SIGKILL is lost).
    fn watch(&self, handle: ServerHandle) -> JoinHandle<()> {
        let observer = self.clone();
        handle.set_observer(move |observed| observer.write(ServerReport::observed(observed)));
        let observer = self.clone();
        let tick = ServerConfig::default().tick;
        tokio::spawn(async move {
            let mut reported = 0;
            let mut ticks = tokio::time::interval(tick);
            loop {
                ticks.tick().await;
                let peak = handle.queued_bytes_peak();
                if peak > reported {
                    observer.write(ServerReport::QueuePeak(peak));
                    reported = peak;
                }
            }
        })
    }
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
