//! Runs the real `chat-cli` binary: a server on port 0, piped clients, and
//! raw TCP peers that speak the protocol by hand.
//!
//! Every wait is for an event (a line of output, an exit), bounded by
//! [`WAIT`]; a test that times out panics with everything seen so far.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use chat_core::protocol::{self, ClientFrame, ServerFrame};

/// The longest any single wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// The `chat-cli` binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_chat-cli")
}

/// The lines a child process printed, read by a background thread.
struct Lines {
    receiver: Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    fn spawn(output: impl Read + Send + 'static) -> Self {
        let (sender, receiver) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(output).lines() {
                let Ok(line) = line else { return };
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        Self {
            receiver,
            seen: Vec::new(),
        }
    }

    /// Waits for a line for which `wanted` holds; returns it.
    fn wait_for(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        if let Some(line) = self.seen.iter().find(|line| wanted(line)) {
            return line.clone();
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.receiver.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "timed out waiting for {what}; seen so far:\n{}",
                        self.abridged()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("output ended before {what}; seen:\n{}", self.abridged())
                }
            }
        }
    }

    /// Waits for one more line.
    fn wait_next(&mut self, what: &str) {
        match self.receiver.recv_timeout(WAIT) {
            Ok(line) => self.seen.push(line),
            Err(_) => panic!(
                "no more output while waiting for {what}; seen:\n{}",
                self.abridged()
            ),
        }
    }

    /// The lines seen, each cut to a readable length.
    fn abridged(&self) -> String {
        let cut: Vec<String> = self
            .seen
            .iter()
            .map(|line| line.chars().take(120).collect())
            .collect();
        cut.join("\n")
    }

    fn count(&mut self, wanted: impl Fn(&str) -> bool) -> usize {
        while let Ok(line) = self.receiver.try_recv() {
            self.seen.push(line);
        }
        self.seen.iter().filter(|line| wanted(line)).count()
    }
}

/// Waits for a child to exit: first for the end of its output (the event),
/// bounded by [`WAIT`], then for its status.
fn wait_exit(child: &mut Child, lines: &mut Lines, what: &str) -> ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.receiver.recv_timeout(left) {
            Ok(line) => lines.seen.push(line),
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                panic!("{what} did not exit in time; output:\n{}", lines.abridged())
            }
        }
    }
    child.wait().expect("child exit status")
}

/// A `chat-cli server` process on a free port.
pub struct Server {
    child: Child,
    lines: Lines,
    /// `127.0.0.1:port`.
    pub addr: String,
    /// Its own data directory, unless the test chose one (kept until the
    /// server is dropped).
    _data: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts a server with extra command-line options and waits until it
    /// listens.
    pub fn start(extra: &[&str]) -> Self {
        Self::start_on("127.0.0.1:0", extra)
    }

    /// Starts a server listening on `addr`.
    pub fn start_on(addr: &str, extra: &[&str]) -> Self {
        Self::spawn(
            Command::new(binary()).args(["server", "--listen", addr]),
            extra,
        )
    }

    /// Starts a server that may hold at most `files` file descriptors
    /// (through prlimit(1)).
    pub fn start_with_file_limit(files: u32, extra: &[&str]) -> Self {
        let limit = format!("--nofile={files}:{files}");
        Self::spawn(
            Command::new("prlimit").args([
                limit.as_str(),
                binary(),
                "server",
                "--listen",
                "127.0.0.1:0",
            ]),
            extra,
        )
    }

    /// Starts a server that must fail to start; returns its exit status and
    /// console messages.
    pub fn fail_to_start(extra: &[&str]) -> (ExitStatus, Vec<String>) {
        let mut command = Command::new(binary());
        command.args(["server", "--listen", "127.0.0.1:0"]);
        let (mut child, mut lines, _data) = Self::spawn_child(&mut command, extra);
        let status = wait_exit(&mut child, &mut lines, "the failing server");
        let messages = lines
            .seen
            .iter()
            .map(|line| console_message(line))
            .collect();
        (status, messages)
    }

    fn spawn_child(
        command: &mut Command,
        extra: &[&str],
    ) -> (Child, Lines, Option<tempfile::TempDir>) {
        // Every server gets a data directory of its own, unless the test
        // gives one (or none): tests must not share sessions.
        let chosen = extra
            .iter()
            .any(|arg| *arg == "--data-dir" || *arg == "--in-memory");
        let data = (!chosen).then(|| tempfile::tempdir().expect("a temporary data directory"));
        if let Some(data) = &data {
            command.arg("--data-dir").arg(data.path());
        }
        let mut child = command
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start chat-cli server");
        let lines = Lines::spawn(child.stdout.take().expect("piped stdout"));
        (child, lines, data)
    }

    fn spawn(command: &mut Command, extra: &[&str]) -> Self {
        let (child, mut lines, data) = Self::spawn_child(command, extra);
        let listening = lines.wait_for("the listening address", |line| {
            line.contains("Listening on ")
        });
        let addr = listening
            .split("Listening on ")
            .nth(1)
            .expect("address after the words")
            .trim_end_matches('.')
            .to_owned();
        Self {
            child,
            lines,
            addr,
            _data: data,
        }
    }

    /// Waits for a console message containing `text`.
    pub fn wait_for_log(&mut self, text: &str) -> String {
        self.lines.wait_for(text, |line| line.contains(text))
    }

    /// Waits until `times` console lines contain `text`.
    pub fn wait_for_log_count(&mut self, text: &str, times: usize) {
        let what = format!("{text:?} logged {times} times");
        while self.lines.count(|line| line.contains(text)) < times {
            self.lines.wait_next(&what);
        }
    }

    /// How many console lines so far contain `text`.
    pub fn count_log(&mut self, text: &str) -> usize {
        self.lines.count(|line| line.contains(text))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process with SIGKILL (no shutdown, no flush) and waits for
    /// it to be gone.
    pub fn kill(mut self) {
        signal(self.child.id(), "KILL");
        let status = wait_exit(&mut self.child, &mut self.lines, "the killed server");
        assert!(!status.success(), "a killed server does not exit cleanly");
    }

    /// Sends SIGTERM, waits for the exit, and returns the status and the
    /// console messages (level and timestamp removed).
    pub fn terminate(mut self) -> (ExitStatus, Vec<String>) {
        signal(self.child.id(), "TERM");
        let status = wait_exit(&mut self.child, &mut self.lines, "the server");
        let lines = self.lines.seen.clone();
        let messages = lines.iter().map(|line| console_message(line)).collect();
        (status, messages)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends the signal `name` to process `pid` with kill(1).
pub fn signal(pid: u32, name: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -{name} {pid} failed");
}

/// The message of a log line: `2026-...Z  INFO message` gives `message`.
fn console_message(line: &str) -> String {
    let message = ["  INFO ", "  WARN ", " ERROR ", " DEBUG "]
        .iter()
        .find_map(|level| line.split_once(level).map(|(_, message)| message))
        .unwrap_or(line);
    if message.starts_with("Listening on ") {
        return "Listening on [address].".to_owned();
    }
    if message.starts_with("Keeping data in ") {
        return "Keeping data in [directory].".to_owned();
    }
    // What changes from run to run: ports, and how long a recovery took.
    let message = match message.split_once(" peer=127.0.0.1:") {
        Some((before, _)) => format!("{before} peer=127.0.0.1:[port]"),
        None => message.to_owned(),
    };
    match message.rsplit_once(" in ") {
        Some((before, took)) if message.starts_with("Recovered ") && took.ends_with(" ms.") => {
            format!("{before} in [time].")
        }
        _ => message,
    }
}

/// A `chat-cli client` process with piped standard input and output.
pub struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines,
}

impl Client {
    /// Starts a client of `server` with extra options.
    pub fn start(server: &str, extra: &[&str]) -> Self {
        Self::start_with_env(server, extra, &[])
    }

    /// Starts a client of `server` with extra options and environment
    /// variables.
    pub fn start_with_env(server: &str, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(binary())
            .args(["client", "--server", server])
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chat-cli client");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (sender, receiver) = channel();
        for output in [Box::new(stdout) as Box<dyn Read + Send>, Box::new(stderr)] {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(output).lines() {
                    let Ok(line) = line else { return };
                    if sender.send(line).is_err() {
                        return;
                    }
                }
            });
        }
        let lines = Lines {
            receiver,
            seen: Vec::new(),
        };
        Self {
            child,
            stdin,
            lines,
        }
    }

    /// Starts a client that joins as `nick` (given with `--nick`).
    pub fn join(server: &str, nick: &str) -> Self {
        let mut client = Self::start(server, &["--nick", nick]);
        client.wait_for("You are now connected to the chatroom.");
        client
    }

    /// Sends a signal (`KILL`, `STOP`, `CONT`, ...) to the process.
    pub fn signal(&self, name: &str) {
        signal(self.child.id(), name);
    }

    /// Waits until the client shows a line starting with `prefix`; returns it.
    pub fn wait_for_prefix(&mut self, prefix: &str) -> String {
        self.lines.wait_for(prefix, |seen| seen.starts_with(prefix))
    }

    /// Types a line.
    pub fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{line}").expect("write to the client");
        stdin.flush().expect("flush to the client");
    }

    /// Writes raw bytes to standard input.
    pub fn type_bytes(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(bytes).expect("write to the client");
        stdin.flush().expect("flush to the client");
    }

    /// Waits until the client shows exactly `line`.
    pub fn wait_for(&mut self, line: &str) {
        self.lines.wait_for(line, |seen| seen == line);
    }

    /// Waits until the client has shown exactly `line` `times` times.
    pub fn wait_for_count(&mut self, line: &str, times: usize) {
        let what = format!("{line:?} shown {times} times");
        while self.count(line) < times {
            self.lines.wait_next(&what);
        }
    }

    /// How many shown lines so far are exactly `line`.
    pub fn count(&mut self, line: &str) -> usize {
        self.lines.count(|seen| seen == line)
    }

    /// Closes standard input (end of input).
    pub fn close_input(&mut self) {
        self.stdin = None;
    }

    /// Waits for the exit; returns its code and every line shown.
    pub fn finish(mut self) -> (Option<i32>, Vec<String>) {
        self.stdin = None;
        let status = wait_exit(&mut self.child, &mut self.lines, "the client");
        (status.code(), self.lines.seen.clone())
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A hand-driven protocol peer over a plain TCP socket.
pub struct RawPeer {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl RawPeer {
    /// Connects to the server.
    pub fn connect(addr: &str) -> Self {
        let stream = TcpStream::connect(addr).expect("connect to the server");
        stream
            .set_read_timeout(Some(WAIT))
            .expect("set read timeout");
        let reader = BufReader::new(stream.try_clone().expect("clone the socket"));
        Self { stream, reader }
    }

    /// Connects and joins the default room as `nick`.
    pub fn join(addr: &str, nick: &str) -> Self {
        let mut peer = Self::connect(addr);
        peer.send(&ClientFrame::Hello {
            version: protocol::PROTOCOL_VERSION,
            nick: nick.to_owned(),
            resume: None,
        });
        let welcome = peer.read_frame().expect("a welcome");
        assert!(
            matches!(welcome, ServerFrame::Welcome { .. }),
            "got {welcome:?}"
        );
        peer.send(&ClientFrame::Join {
            room: protocol::DEFAULT_ROOM.to_owned(),
        });
        let entered = peer.read_frame().expect("the join's answer");
        assert!(
            matches!(entered, ServerFrame::Entered { .. }),
            "got {entered:?}"
        );
        peer
    }

    /// Sends a frame.
    pub fn send(&mut self, frame: &ClientFrame) {
        self.send_bytes(&protocol::encode(frame));
    }

    /// Sends raw bytes.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to the server");
    }

    /// Sends raw bytes; false if the server has closed the connection.
    pub fn send_bytes_tolerant(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok()
    }

    /// Reads the next frame; `None` at end of stream.
    pub fn read_frame(&mut self) -> Option<ServerFrame> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(
                protocol::decode_line(line.trim_end().as_bytes())
                    .expect("the server sends valid frames"),
            ),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => None,
            Err(error) => panic!("reading from the server: {error}"),
        }
    }

    /// Reads until the server closes the connection; returns the frames.
    pub fn read_to_close(&mut self) -> Vec<ServerFrame> {
        let mut frames = Vec::new();
        while let Some(frame) = self.read_frame() {
            frames.push(frame);
        }
        frames
    }

    /// Closes the connection.
    pub fn close(self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// Compares `transcript` with `snapshots/<name>.snap` (the one place tests
/// take snapshots).
pub fn assert_transcript(name: &str, transcript: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(snapshot_dir());
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| insta::assert_snapshot!(name, transcript));
}

fn snapshot_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("snapshots")
}

/// Resident memory of a process, in KiB, from /proc.
pub fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc status")
}
