//! A real terminal for the client: a pseudo-terminal, and a terminal
//! emulator (vt100) that renders what the client wrote into a screen of
//! text.
//!
//! A piped client cannot show what the terminal user gets: the line editor
//! (rustyline needs a terminal on both ends), job control (Ctrl-Z needs a
//! controlling terminal and a shell), colours (only on a terminal), lines
//! arriving above a half-typed one, and a terminal that goes away (its
//! window closed: a hang-up). Here each program runs in a new session with
//! the pseudo-terminal as its controlling terminal (`setsid --ctty`), and
//! the pseudo-terminal is our own (nix's `openpty`) so that closing its
//! master side is a real hang-up; portable-pty keeps a reading duplicate of
//! the master and types Ctrl-D when its writer is dropped, which would hide
//! exactly that. They need `setsid` (util-linux) and, for job control,
//! `bash`.
//!
//! Tests wait for what the screen shows, each wait bounded by [`WAIT`]. A
//! line editor reading a line turns bracketed paste on (`ESC [?2004h`);
//! counting those tells when the next line may be typed, so that keys reach
//! the editor rather than the terminal's own echo between two reads.

use std::fs::File;
use std::io::{Read, Write};
use std::num::NonZeroU16;
use std::os::fd::AsFd;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::Instant;

use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::pty::{Winsize, openpty};

use crate::harness::{WAIT, assert_transcript, binary, signal};

/// The size of every test terminal.
const ROWS: NonZeroU16 = NonZeroU16::new(30).expect("rows");
const COLUMNS: NonZeroU16 = NonZeroU16::new(100).expect("columns");

/// How often the output thread looks whether it should stop (only when
/// the terminal is being closed; output is read as soon as it comes).
const STOP_CHECK_MILLISECONDS: u16 = 50;

/// What a line editor writes when it starts reading a line.
const READING: &[u8] = b"\x1b[?2004h";

/// A program on a terminal of its own.
pub struct Terminal {
    name: String,
    parser: vt100::Parser,
    output: Receiver<Vec<u8>>,
    output_ended: bool,
    /// The master side; `None` once the terminal was closed.
    master: Option<Arc<File>>,
    stop_reading: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    child: Option<Child>,
    /// How many times a line editor started reading a line.
    reads_started: usize,
    /// How many of those reads were used up by a typed line or key.
    reads_used: usize,
    /// The last bytes of output, for a [`READING`] split between reads.
    tail: Vec<u8>,
}

impl Terminal {
    /// `chat-cli client --server ADDR ARGS...` on a terminal, with extra
    /// environment variables.
    pub fn client(name: &str, server: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut all = vec!["client", "--server", server];
        all.extend(args);
        Self::spawn(name, binary(), &all, env)
    }

    /// An interactive bash (no startup files, prompt `$ `, no history
    /// file) in which `chat-cli` is on the path and `CHAT_SERVER` is
    /// `server`: job control as a user has it.
    pub fn shell(name: &str, server: &str) -> Self {
        let binary_dir = std::path::Path::new(binary())
            .parent()
            .expect("the binary is in a directory");
        let path = format!(
            "{}:{}",
            binary_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let env = [
            ("PS1", "$ "),
            ("PATH", path.as_str()),
            ("CHAT_SERVER", server),
            ("HISTFILE", "/dev/null"),
            ("INPUTRC", "/dev/null"),
        ];
        Self::spawn(name, "bash", &["--norc", "--noprofile", "-i"], &env)
    }

    fn spawn(name: &str, program: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let size = Winsize {
            ws_row: ROWS.get(),
            ws_col: COLUMNS.get(),
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = openpty(&size, None).expect("open a pseudo-terminal");
        // openpty's descriptors are inherited by default: another child
        // (the server, another terminal's program) holding the master
        // would keep this terminal open after it is closed here.
        for fd in [pty.master.as_fd(), pty.slave.as_fd()] {
            fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).expect("set close-on-exec");
        }
        let slave = File::from(pty.slave);
        let stdio = || Stdio::from(slave.try_clone().expect("duplicate the terminal"));
        let child = Command::new("setsid")
            .arg("--ctty")
            .arg(program)
            .args(args)
            .env("TERM", "xterm")
            .env_remove("NO_COLOR")
            .envs(env.iter().copied())
            .stdin(stdio())
            .stdout(stdio())
            .stderr(stdio())
            .spawn()
            .expect("start a program on the terminal");
        // Only the program holds the terminal now: its output ends when
        // it (and whatever it started) exits.
        drop(slave);
        let master = Arc::new(File::from(pty.master));
        let stop_reading = Arc::new(AtomicBool::new(false));
        let (sender, output) = channel();
        let reader = {
            let master = master.clone();
            let stop = stop_reading.clone();
            std::thread::spawn(move || read_output(&master, &stop, &sender))
        };
        Self {
            name: name.to_owned(),
            parser: vt100::Parser::new(ROWS, COLUMNS, 0),
            output,
            output_ended: false,
            master: Some(master),
            stop_reading,
            reader: Some(reader),
            child: Some(child),
            reads_started: 0,
            reads_used: 0,
            tail: Vec::new(),
        }
    }

    /// The rendered screen.
    pub fn screen(&self) -> &vt100::Screen {
        self.parser.screen()
    }

    /// The screen's rows, trailing blanks removed, and without the empty
    /// rows below the last one written.
    pub fn text(&self) -> String {
        let rows: Vec<String> = self
            .screen()
            .rows(0, COLUMNS.get())
            .map(|row| row.trim_end().to_owned())
            .collect();
        let used = rows
            .iter()
            .rposition(|row| !row.is_empty())
            .map_or(0, |last| last + 1);
        rows[..used].join("\n")
    }

    /// The row the cursor is on, trailing blanks removed.
    pub fn cursor_row(&self) -> String {
        let (row, _) = self.screen().cursor_position();
        self.screen()
            .rows(0, COLUMNS.get())
            .nth(usize::from(row))
            .unwrap_or_default()
            .trim_end()
            .to_owned()
    }

    /// The row just above the cursor's.
    pub fn row_above_cursor(&self) -> String {
        let (row, _) = self.screen().cursor_position();
        let Some(above) = row.checked_sub(1) else {
            return String::new();
        };
        self.screen()
            .rows(0, COLUMNS.get())
            .nth(usize::from(above))
            .unwrap_or_default()
            .trim_end()
            .to_owned()
    }

    /// Waits until `wanted` holds, reading output meanwhile; panics with
    /// the screen after [`WAIT`].
    pub fn wait_until(&mut self, what: &str, wanted: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !wanted(self) {
            if self.output_ended {
                panic!(
                    "{}: the terminal closed before {what}; screen:\n{}",
                    self.name,
                    self.text()
                );
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(bytes) => self.absorb(&bytes),
                Err(RecvTimeoutError::Disconnected) => self.output_ended = true,
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{}: timed out waiting for {what}; screen:\n{}",
                    self.name,
                    self.text()
                ),
            }
        }
    }

    /// Waits until the screen shows `text` somewhere.
    pub fn wait_for_text(&mut self, text: &str) {
        self.wait_until(&format!("{text:?}"), |terminal| {
            terminal.text().contains(text)
        });
    }

    /// Waits until the cursor's row reads `row` (trailing blanks aside).
    pub fn wait_for_cursor_row(&mut self, row: &str) {
        let row = row.trim_end();
        self.wait_until(&format!("the cursor on {row:?}"), |terminal| {
            terminal.cursor_row() == row
        });
    }

    fn absorb(&mut self, bytes: &[u8]) {
        self.parser.process(bytes);
        self.tail.extend_from_slice(bytes);
        self.reads_started += self
            .tail
            .windows(READING.len())
            .filter(|window| *window == READING)
            .count();
        let keep = self.tail.len().min(READING.len() - 1);
        self.tail.drain(..self.tail.len() - keep);
    }

    fn wait_for_reading(&mut self) {
        self.wait_until("a line editor reading", |terminal| {
            terminal.reads_started > terminal.reads_used
        });
    }

    /// Types keys into the line being edited (waiting for a read first).
    pub fn type_keys(&mut self, keys: &str) {
        self.wait_for_reading();
        let master = self.master.as_ref().expect("the terminal is open");
        master
            .as_ref()
            .write_all(keys.as_bytes())
            .expect("type into the terminal");
    }

    /// Types keys that end the read under way (Enter, Ctrl-C, Ctrl-D,
    /// Ctrl-Z): the next keys wait for the next read.
    pub fn end_read_with(&mut self, keys: &str) {
        self.type_keys(keys);
        self.reads_used = self.reads_started;
    }

    /// Types a line and Enter.
    pub fn type_line(&mut self, line: &str) {
        self.type_keys(line);
        self.end_read_with("\r");
    }

    /// The key sequence of an arrow key (`'A'` up, `'B'` down, `'C'`
    /// right, `'D'` left), as the terminal's cursor-key mode has it.
    pub fn arrow(&self, direction: char) -> String {
        if self.screen().application_cursor() {
            format!("\x1bO{direction}")
        } else {
            format!("\x1b[{direction}")
        }
    }

    /// Sends a signal (`STOP`, `CONT`, `TERM`, ...) to the program.
    pub fn signal(&self, name: &str) {
        let child = self.child.as_ref().expect("the program was started");
        signal(child.id(), name);
    }

    /// The process ids of the program's children (a shell's jobs).
    pub fn children(&self) -> Vec<u32> {
        let pid = self.child.as_ref().expect("the program was started").id();
        let listed = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .expect("read the children from /proc");
        listed
            .split_whitespace()
            .map(|child| child.parse().expect("a process id"))
            .collect()
    }

    /// Closes the terminal, as closing its window does: the program gets
    /// SIGHUP, and its terminal is gone.
    pub fn hang_up(&mut self) {
        self.stop_reading.store(true, Ordering::SeqCst);
        if let Some(reader) = self.reader.take() {
            reader.join().expect("the output thread ends");
        }
        self.master = None;
        self.output_ended = true;
    }

    /// Waits for the program to exit (its output ends first, unless the
    /// terminal was closed); returns its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        if self.master.is_some() {
            self.wait_until("the program's exit", |terminal| terminal.output_ended);
        }
        let mut child = self.child.take().expect("the program was started");
        let pid = child.id();
        let (sender, exited) = channel();
        std::thread::spawn(move || {
            let _ = sender.send(child.wait().map(|status| status.code()));
        });
        match exited.recv_timeout(WAIT) {
            Ok(Ok(code)) => code,
            Ok(Err(error)) => panic!("{}: waiting for the exit: {error}", self.name),
            Err(_) => {
                signal(pid, "KILL");
                panic!(
                    "{}: did not exit in time; screen:\n{}",
                    self.name,
                    self.text()
                )
            }
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.hang_up();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Copies the terminal's output to the channel until the program is gone
/// (the master reads EIO) or the terminal is being closed.
fn read_output(master: &File, stop: &AtomicBool, output: &Sender<Vec<u8>>) {
    let mut buffer = [0; 4096];
    while !stop.load(Ordering::SeqCst) {
        let mut watched = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        match poll(&mut watched, PollTimeout::from(STOP_CHECK_MILLISECONDS)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(_) => return,
        }
        let mut reading = master;
        match reading.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(read) => {
                if output.send(buffer[..read].to_vec()).is_err() {
                    return;
                }
            }
        }
    }
}

/// Snapshots screens, each under its title, as `snapshots/<name>.snap`,
/// with what changes from run to run replaced: clock times (`[12:34]`)
/// and how long a pause lasted.
pub fn assert_screens(name: &str, screens: &[(&str, &Terminal)]) {
    let mut transcript = String::new();
    for (title, terminal) in screens {
        transcript.push_str(&format!(
            "--- {title}\n{}\n\n",
            normalised(&terminal.text())
        ));
    }
    assert_transcript(name, transcript.trim_end());
}

fn normalised(text: &str) -> String {
    text.lines()
        .map(|line| {
            let line = normalise_clock(line);
            match line.split_once("This client was paused for ") {
                Some((before, after)) => match after.split_once(" s;") {
                    Some((_, rest)) => format!("{before}This client was paused for [N] s;{rest}"),
                    None => line,
                },
                None => line,
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `[12:34] text` becomes `[hh:mm] text`.
fn normalise_clock(line: &str) -> String {
    let bytes = line.as_bytes();
    let is_clock = bytes.len() >= 7
        && bytes[0] == b'['
        && bytes[3] == b':'
        && bytes[6] == b']'
        && [1, 2, 4, 5].iter().all(|&at| bytes[at].is_ascii_digit());
    if is_clock {
        format!("[hh:mm]{}", &line[7..])
    } else {
        line.to_owned()
    }
}
