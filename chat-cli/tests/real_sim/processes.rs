//! The real processes of a run: `chat-cli server` under a supervisor that
//! kills it with SIGKILL and starts it again on the same data directory
//! when the plan says (and after any exit of its own, as a supervisor
//! would), and each client host's runs of `chat-cli client`, one after the
//! other, with the script's lines typed on standard input at their times.
//!
//! Every wait is for an event (a line of output, an exit, a scheduled
//! time), and waiting for a server to listen is bounded.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow};
use sim_tests::scenario::{ClientScript, RunScript};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::plan;

/// The longest a server may take from its start to listening.
const LISTEN_WAIT: Duration = Duration::from_secs(20);

/// How long the supervisor waits before it starts a server that exited by
/// itself (as the simulation's supervisor does, scaled).
const RESTART_DELAY: Duration = Duration::from_millis(100);

/// The `chat-cli` binary under test.
fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_chat-cli")
}

/// The run's time line: real time since the run began, which is also what
/// the processes' wall-clock stamps are turned into.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
    /// The wall clock at `start`, since the Unix epoch.
    epoch: Duration,
}

impl Clock {
    /// The run begins now.
    pub fn start() -> Clock {
        Clock {
            start: Instant::now(),
            epoch: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
        }
    }

    /// Time since the run began.
    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// The instant `at` after the run began.
    pub fn instant(&self, at: Duration) -> Instant {
        self.start + at
    }

    /// A process's wall-clock stamp on the run's time line (before the run
    /// began: its start).
    pub fn relative(&self, stamp: Duration) -> Duration {
        stamp.saturating_sub(self.epoch)
    }
}

/// Where a run keeps its files.
#[derive(Clone, Debug)]
pub struct Files {
    directory: PathBuf,
}

impl Files {
    /// Files under `directory`.
    pub fn new(directory: &Path) -> Files {
        Files {
            directory: directory.to_owned(),
        }
    }

    /// The server's data directory, the same across its restarts.
    pub fn data(&self) -> PathBuf {
        self.directory.join("data")
    }

    /// What every server process observed, appended in turn.
    pub fn server_reports(&self) -> PathBuf {
        self.directory.join("server.jsonl")
    }

    fn server_console(&self, start: usize) -> PathBuf {
        self.directory.join(format!("server-{start}.log"))
    }

    /// What one client run showed.
    pub fn transcript(&self, host: &str, run: usize) -> PathBuf {
        self.directory.join(format!("{host}-run{run}.jsonl"))
    }

    fn client_console(&self, host: &str, run: usize) -> PathBuf {
        self.directory.join(format!("{host}-run{run}.log"))
    }
}

/// A server process that is starting: it says where it listens on its
/// console.
struct Starting {
    child: Child,
    listening: oneshot::Receiver<SocketAddr>,
    since: Instant,
}

fn spawn_server(files: &Files, start: usize) -> anyhow::Result<Starting> {
    let reports = files.server_reports();
    let data = files.data();
    let mut child = Command::new(binary())
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .arg("--observe")
        .arg(&reports)
        .args(plan::server_options())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("start chat-cli server")?;
    let stdout = child.stdout.take().context("the server's piped stdout")?;
    let stderr = child.stderr.take().context("the server's piped stderr")?;
    let console = std::fs::File::create(files.server_console(start))?;
    let (listening, heard) = oneshot::channel();
    tokio::spawn(copy_console(stdout, stderr, console, listening));
    Ok(Starting {
        child,
        listening: heard,
        since: Instant::now(),
    })
}

/// Copies the server's console to its file and tells where it listens.
async fn copy_console(
    stdout: tokio::process::ChildStdout,
    stderr: tokio::process::ChildStderr,
    mut console: std::fs::File,
    listening: oneshot::Sender<SocketAddr>,
) {
    use std::io::Write;
    let mut listening = Some(listening);
    let mut out = BufReader::new(stdout).lines();
    let mut errors = BufReader::new(stderr).lines();
    let (mut out_open, mut errors_open) = (true, true);
    while out_open || errors_open {
        let line = tokio::select! {
            line = out.next_line(), if out_open => match line {
                Ok(Some(line)) => line,
                _ => {
                    out_open = false;
                    continue;
                }
            },
            line = errors.next_line(), if errors_open => match line {
                Ok(Some(line)) => line,
                _ => {
                    errors_open = false;
                    continue;
                }
            },
        };
        let _ = writeln!(console, "{line}");
        let address = line
            .split("Listening on ")
            .nth(1)
            .and_then(|rest| rest.trim_end_matches('.').parse().ok());
        if let Some(address) = address
            && let Some(sender) = listening.take()
        {
            let _ = sender.send(address);
        }
    }
}

/// What the supervisor is asked to do.
#[derive(Debug)]
pub enum ServerCommand {
    /// Kill the server with SIGKILL; start it again after `down`.
    Crash {
        /// How long it stays down.
        down: Duration,
    },
}

/// What happened to the server, besides what it reported.
#[derive(Debug, Default)]
pub struct ServerLog {
    /// When it was killed.
    pub crashes: Vec<Duration>,
    /// Exits of its own, with when and how.
    pub exits: Vec<(Duration, String)>,
}

/// The server under its supervisor.
pub struct Supervisor {
    commands: mpsc::UnboundedSender<ServerCommand>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<ServerLog>>,
}

impl Supervisor {
    /// Starts the server, waits (bounded) until it listens, and keeps it
    /// running; `upstream` always says where it listens (`None` while it
    /// is down). The run's clock starts once it listens.
    pub async fn start(
        files: &Files,
        upstream: watch::Sender<Option<SocketAddr>>,
    ) -> anyhow::Result<(Supervisor, Clock)> {
        let mut first = spawn_server(files, 0)?;
        let address = tokio::time::timeout(LISTEN_WAIT, &mut first.listening)
            .await
            .map_err(|_| anyhow!("the server did not listen within {LISTEN_WAIT:?}"))?
            .map_err(|_| anyhow!("the server ended before it listened"))?;
        upstream.send_replace(Some(address));
        let clock = Clock::start();
        let (commands, received) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel();
        let supervising = Supervising {
            files: files.clone(),
            clock,
            upstream,
            log: ServerLog::default(),
            starts: 1,
        };
        let running = Running {
            child: first.child,
            listening: None,
        };
        let task = tokio::spawn(supervising.run(running, received, stopped));
        let supervisor = Supervisor {
            commands,
            stop,
            task,
        };
        Ok((supervisor, clock))
    }

    /// Passes on a command.
    pub fn command(&self, command: ServerCommand) {
        // The supervisor ends only when stopped, after the schedule.
        let _ = self.commands.send(command);
    }

    /// Kills the server and returns what happened to it.
    pub async fn stop(self) -> anyhow::Result<ServerLog> {
        let _ = self.stop.send(());
        self.task.await.context("the supervisor panicked")?
    }
}

/// A server process that is up, or starting.
struct Running {
    child: Child,
    /// Until it listens: where it will say it does, and since when it was
    /// started.
    listening: Option<(oneshot::Receiver<SocketAddr>, Instant)>,
}

/// The supervisor's state.
struct Supervising {
    files: Files,
    clock: Clock,
    upstream: watch::Sender<Option<SocketAddr>>,
    log: ServerLog,
    starts: usize,
}

/// Where the server is.
enum Phase {
    Up(Running),
    Down { until: Instant },
}

impl Supervising {
    async fn run(
        mut self,
        running: Running,
        mut commands: mpsc::UnboundedReceiver<ServerCommand>,
        mut stop: oneshot::Receiver<()>,
    ) -> anyhow::Result<ServerLog> {
        let mut phase = Phase::Up(running);
        loop {
            phase = match phase {
                Phase::Up(mut running) => tokio::select! {
                    _ = &mut stop => {
                        kill(&mut running.child).await;
                        return Ok(self.log);
                    }
                    command = commands.recv() => self.crash(running, command).await,
                    address = listened(&mut running.listening) => {
                        self.upstream.send_replace(Some(address?));
                        running.listening = None;
                        Phase::Up(running)
                    }
                    status = running.child.wait() => self.exited(status),
                },
                Phase::Down { until } => tokio::select! {
                    _ = &mut stop => return Ok(self.log),
                    command = commands.recv() => match command {
                        Some(ServerCommand::Crash { down }) => Phase::Down {
                            until: until.max(Instant::now() + down),
                        },
                        None => Phase::Down { until },
                    },
                    () = tokio::time::sleep_until(until) => self.restart()?,
                },
            };
        }
    }

    async fn crash(&mut self, mut running: Running, command: Option<ServerCommand>) -> Phase {
        let Some(ServerCommand::Crash { down }) = command else {
            return Phase::Up(running);
        };
        kill(&mut running.child).await;
        self.upstream.send_replace(None);
        self.log.crashes.push(self.clock.now());
        Phase::Down {
            until: Instant::now() + down,
        }
    }

    fn exited(&mut self, status: std::io::Result<ExitStatus>) -> Phase {
        self.upstream.send_replace(None);
        let how = match status {
            Ok(status) => status.to_string(),
            Err(error) => format!("cannot tell: {error}"),
        };
        self.log.exits.push((self.clock.now(), how));
        Phase::Down {
            until: Instant::now() + RESTART_DELAY,
        }
    }

    fn restart(&mut self) -> anyhow::Result<Phase> {
        let starting = spawn_server(&self.files, self.starts)?;
        self.starts += 1;
        Ok(Phase::Up(Running {
            child: starting.child,
            listening: Some((starting.listening, starting.since)),
        }))
    }
}

/// Completes with where a starting server listens; never while it is not
/// starting, or once it ended without saying (its exit is seen instead).
async fn listened(
    listening: &mut Option<(oneshot::Receiver<SocketAddr>, Instant)>,
) -> anyhow::Result<SocketAddr> {
    let Some((heard, since)) = listening else {
        return std::future::pending().await;
    };
    match tokio::time::timeout_at(*since + LISTEN_WAIT, heard).await {
        Ok(Ok(address)) => Ok(address),
        Ok(Err(_)) => std::future::pending().await,
        Err(_) => Err(anyhow!(
            "a restarted server did not listen within {LISTEN_WAIT:?}"
        )),
    }
}

/// SIGKILL, then the exit.
async fn kill(child: &mut Child) {
    let _ = child.start_kill();
    let _ = child.wait().await;
}

/// One client run, as started.
#[derive(Clone, Debug)]
pub struct RunStarted {
    /// The nickname.
    pub nick: String,
    /// When the process was started.
    pub started: Duration,
    /// Its transcript.
    pub transcript: PathBuf,
}

/// What one client host did, besides what its runs reported.
#[derive(Clone, Debug, Default)]
pub struct HostLog {
    /// Its runs, in order.
    pub runs: Vec<RunStarted>,
    /// When it was crashed, if it was.
    pub crashed_at: Option<Duration>,
}

/// How a client run ended, for the host.
enum RunEnd {
    Exited,
    Crashed,
    RunOver,
}

/// What a client host needs.
pub struct Host {
    /// The script.
    pub script: ClientScript,
    /// Its proxy's address.
    pub proxy: SocketAddr,
    /// Set when the plan crashes the host.
    pub crash: watch::Receiver<bool>,
    /// The run's clock.
    pub clock: Clock,
    /// When the run ends.
    pub end: Duration,
    /// Where files go.
    pub files: Files,
}

impl Host {
    /// Runs the host's client runs one after the other, until the run ends
    /// or the host is crashed.
    pub async fn run(mut self) -> anyhow::Result<HostLog> {
        let mut log = HostLog::default();
        let end = self.clock.instant(self.end);
        let runs = self.script.runs.clone();
        for (number, run) in runs.iter().enumerate() {
            tokio::select! {
                biased;
                () = crashed(&mut self.crash) => {
                    log.crashed_at = Some(self.clock.now());
                    return Ok(log);
                }
                () = tokio::time::sleep_until(end) => return Ok(log),
                () = tokio::time::sleep_until(self.clock.instant(run.start)) => {}
            }
            match self.client_run(number, run, &mut log).await? {
                RunEnd::Exited => {}
                RunEnd::Crashed => {
                    log.crashed_at = Some(self.clock.now());
                    return Ok(log);
                }
                RunEnd::RunOver => return Ok(log),
            }
        }
        // A host with no client running can still be crashed.
        tokio::select! {
            () = crashed(&mut self.crash) => log.crashed_at = Some(self.clock.now()),
            () = tokio::time::sleep_until(end) => {}
        }
        Ok(log)
    }

    async fn client_run(
        &mut self,
        number: usize,
        run: &RunScript,
        log: &mut HostLog,
    ) -> anyhow::Result<RunEnd> {
        let host = self.script.host.clone();
        let transcript = self.files.transcript(&host, number);
        let console = std::fs::File::create(self.files.client_console(&host, number))?;
        let mut child = Command::new(binary())
            .args([
                "client",
                "--server",
                &self.proxy.to_string(),
                "--nick",
                &run.nick,
            ])
            .arg("--transcript")
            .arg(&transcript)
            .args(plan::client_options())
            .stdin(Stdio::piped())
            .stdout(console.try_clone()?)
            .stderr(console)
            .kill_on_drop(true)
            .spawn()
            .context("start chat-cli client")?;
        log.runs.push(RunStarted {
            nick: run.nick.clone(),
            started: self.clock.now(),
            transcript,
        });
        let stdin = child.stdin.take().context("the client's piped stdin")?;
        let (lines, to_type) = mpsc::unbounded_channel();
        let typist = tokio::spawn(type_lines(stdin, to_type));
        let ended = self.drive(&mut child, run, &lines).await;
        typist.abort();
        if !matches!(ended, RunEnd::Exited) {
            kill(&mut child).await;
        }
        Ok(ended)
    }

    /// Types the run's lines at their times, until the client exits, the
    /// host is crashed, or the run is over.
    async fn drive(
        &mut self,
        child: &mut Child,
        run: &RunScript,
        lines: &mpsc::UnboundedSender<String>,
    ) -> RunEnd {
        let end = self.clock.instant(self.end);
        for (at, action) in &run.actions {
            tokio::select! {
                biased;
                () = crashed(&mut self.crash) => return RunEnd::Crashed,
                _ = child.wait() => return RunEnd::Exited,
                () = tokio::time::sleep_until(end) => return RunEnd::RunOver,
                () = tokio::time::sleep_until(self.clock.instant(*at)) => {}
            }
            match plan::typed_line(action) {
                // The typist ends only if the client closed its input.
                Some(line) => drop(lines.send(line.to_owned())),
                None => terminate(child),
            }
        }
        tokio::select! {
            biased;
            () = crashed(&mut self.crash) => RunEnd::Crashed,
            _ = child.wait() => RunEnd::Exited,
            () = tokio::time::sleep_until(end) => RunEnd::RunOver,
        }
    }
}

/// Writes lines to the client's input as they come (a client that waits
/// for acknowledgements reads them later; the pipe holds them meanwhile).
async fn type_lines(mut stdin: ChildStdin, mut lines: mpsc::UnboundedReceiver<String>) {
    while let Some(line) = lines.recv().await {
        let typed = format!("{line}\n");
        if stdin.write_all(typed.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Sends SIGTERM, as a user's Ctrl-C or closed terminal would a signal (the
/// client may have exited already).
fn terminate(child: &Child) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
}

/// Completes once the host is crashed.
async fn crashed(crash: &mut watch::Receiver<bool>) {
    if crash.wait_for(|crashed| *crashed).await.is_err() {
        std::future::pending::<()>().await;
    }
}
