//! `chat-cli client`: the terminal client.
//!
//! With a terminal on both stdin and stdout, input is edited with rustyline
//! and incoming lines are printed above the line being typed. Otherwise
//! (piped input, scripts, tests) lines are read and printed plainly; the end
//! of input leaves the chat once everything sent has been acknowledged.

use std::io::{self, BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use chat_core::client::ClientConfig;
use chat_core::protocol::{self, ErrorCode};
use chat_core::session::{EndReason, Line, Outcome, SessionConfig};
use clap::Args;
use rustyline::error::ReadlineError;
use rustyline::{DefaultEditor, ExternalPrinter};
use tokio::sync::mpsc;

const EXIT_CODES: &str = "\
Exit codes:
  0  left the chat, every message delivered
  1  the connection was lost for good (no reconnect within --reconnect-give-up)
  2  bad command line or nickname
  3  the server could not be reached
  4  the server refused the nickname (taken or invalid) or the protocol version
  5  left the chat, but some messages were not delivered (too long, or never acknowledged)";

/// The limits that are not options, from the code's own defaults, and the
/// exit codes.
fn after_help() -> String {
    let session = SessionConfig::new("", "");
    format!(
        "Fixed limits:
  unacknowledged messages  {unacked} at most; reading input waits while that many are in flight
  handshake                {handshake:?} from connecting to the server's welcome
  reconnect pauses         {min:?}, doubling up to {max:?}, each drawn between half and all of it

{EXIT_CODES}",
        unacked = session.unacked_max,
        handshake = session.handshake_timeout,
        min = session.reconnect_backoff_min,
        max = session.reconnect_backoff_max,
    )
}

/// Options of `chat-cli client`.
#[derive(Debug, Args)]
#[command(after_help = after_help())]
pub struct ClientArgs {
    /// Server address (`host:port`).
    #[arg(long, env = "CHAT_SERVER", default_value = "127.0.0.1:9999")]
    server: String,

    /// Nickname (1 to 32 characters, no control characters). Asked for when
    /// not given.
    #[arg(long, env = "CHAT_NICK")]
    nick: Option<String>,

    /// Room to join.
    #[arg(long, env = "CHAT_ROOM", default_value = protocol::DEFAULT_ROOM)]
    room: String,

    /// Longest wait for the connection to open.
    #[arg(long, env = "CHAT_CONNECT_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    connect_timeout: Duration,

    /// Send a heartbeat after this long without sending anything.
    #[arg(long, env = "CHAT_HEARTBEAT_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    heartbeat_interval: Duration,

    /// Consider the server gone after this long without hearing from it.
    #[arg(long, env = "CHAT_HEARTBEAT_TIMEOUT", default_value = "15s", value_parser = humantime::parse_duration)]
    heartbeat_timeout: Duration,

    /// After losing the connection, keep trying to reconnect (with growing
    /// pauses, up to 5 s) for this long before giving up.
    #[arg(long, env = "CHAT_RECONNECT_GIVE_UP", default_value = "2m", value_parser = humantime::parse_duration)]
    reconnect_give_up: Duration,

    #[command(flatten)]
    tls: crate::tls::ClientTlsArgs,
}

/// How long the line editor gets to draw the last lines before exit.
const EDITOR_DRAW_GRACE: Duration = Duration::from_millis(100);

/// Saving and restoring the terminal's settings (raw mode off).
#[cfg(unix)]
mod terminal {
    use nix::sys::termios::{SetArg, Termios, tcgetattr, tcsetattr};

    pub fn save() -> Option<Termios> {
        tcgetattr(std::io::stdin()).ok()
    }

    pub fn restore(saved: Option<Termios>) {
        if let Some(saved) = saved {
            // Best effort: the terminal may be gone.
            let _ = tcsetattr(std::io::stdin(), SetArg::TCSANOW, &saved);
        }
    }
}

#[cfg(not(unix))]
mod terminal {
    pub fn save() -> Option<()> {
        None
    }

    pub fn restore(_saved: Option<()>) {}
}

/// Where incoming lines are printed.
enum Screen {
    /// Above the line being edited.
    Editor(Box<dyn ExternalPrinter + Send>),
    /// Plain standard output.
    Plain,
}

impl Screen {
    fn show(&mut self, line: &str) {
        match self {
            Screen::Editor(printer) => {
                if printer.print(format!("{line}\n")).is_err() {
                    println!("{line}");
                }
            }
            Screen::Plain => println!("{line}"),
        }
    }
}

/// Runs the client until the user leaves or the session ends.
pub fn main(args: ClientArgs) -> ExitCode {
    let network = match args.tls.network() {
        Ok(network) => network,
        Err(error) => {
            eprintln!("Cannot set up TLS: {error}.");
            return ExitCode::from(2);
        }
    };
    let interactive = io::stdin().is_terminal() && io::stdout().is_terminal();
    let mut editor = if interactive {
        DefaultEditor::new().ok()
    } else {
        None
    };
    let nick = match args.nick.clone() {
        Some(nick) => nick,
        None => match ask_nick(editor.as_mut()) {
            Some(nick) => nick,
            None => {
                eprintln!("No nickname given.");
                return ExitCode::from(2);
            }
        },
    };
    if let Err(error) = protocol::validate_nick(&nick) {
        eprintln!("Invalid nickname: {error}.");
        return ExitCode::from(2);
    }
    if let Err(error) = protocol::validate_room(&args.room) {
        eprintln!("Invalid room: {error}.");
        return ExitCode::from(2);
    }
    let (lines, input) = mpsc::channel(1);
    let saved_terminal = terminal::save();
    let mut screen = Screen::Plain;
    match editor.map(|mut editor| (editor.create_external_printer(), editor)) {
        Some((Ok(printer), editor)) => {
            screen = Screen::Editor(Box::new(printer));
            std::thread::spawn(move || read_edited(editor, lines));
        }
        _ => {
            std::thread::spawn(move || read_plain(lines));
        }
    }
    let config = client_config(&args, nick);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("Cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(chat_core::client::run(
        network,
        config,
        input,
        |line: &Line| screen.show(&line.to_string()),
    ));
    if matches!(screen, Screen::Editor(_)) {
        // The line editor draws incoming lines on its own thread, which is
        // blocked reading the keyboard and cannot be stopped: give it a
        // moment to draw the last lines, then undo its raw mode ourselves.
        std::thread::sleep(EDITOR_DRAW_GRACE);
        terminal::restore(saved_terminal);
        // Leave whatever was half typed (and never sent) on its own line.
        println!();
    }
    let _ = io::stdout().flush();
    std::process::exit(exit_code(outcome));
}

fn client_config(args: &ClientArgs, nick: String) -> ClientConfig {
    let mut config = ClientConfig::new(args.server.clone(), nick);
    config.session.room = args.room.clone();
    config.session.heartbeat_interval = args.heartbeat_interval;
    config.session.heartbeat_timeout = args.heartbeat_timeout;
    config.session.reconnect_give_up = args.reconnect_give_up;
    config.session.seed = rand::random();
    config.connect_timeout = args.connect_timeout;
    config
}

fn exit_code(outcome: Outcome) -> i32 {
    match outcome.reason {
        EndReason::Left if outcome.not_delivered == 0 => 0,
        EndReason::Left => 5,
        EndReason::ConnectionLost => 1,
        EndReason::Unreachable => 3,
        EndReason::Refused(
            ErrorCode::NickInvalid | ErrorCode::NickTaken | ErrorCode::UnsupportedVersion,
        ) => 4,
        EndReason::Refused(_) => 4,
    }
}

/// Asks for a nickname with the original's prompt.
fn ask_nick(editor: Option<&mut DefaultEditor>) -> Option<String> {
    const PROMPT: &str = "Choose a nickname: ";
    if let Some(editor) = editor {
        return editor
            .readline(PROMPT)
            .ok()
            .map(|nick| nick.trim().to_owned());
    }
    print!("{PROMPT}");
    let _ = io::stdout().flush();
    let mut nick = String::new();
    match io::stdin().lock().read_line(&mut nick) {
        Ok(0) | Err(_) => {
            println!();
            None
        }
        Ok(_) => {
            let nick = nick.trim().to_owned();
            // Piped input is not echoed: show the answer as a terminal would.
            println!("{nick}");
            Some(nick)
        }
    }
}

fn read_edited(mut editor: DefaultEditor, lines: mpsc::Sender<String>) {
    loop {
        match editor.readline("") {
            Ok(line) => {
                if lines.blocking_send(line).is_err() {
                    return;
                }
            }
            Err(ReadlineError::Interrupted) => {
                let _ = lines.blocking_send(".exit".to_owned());
                return;
            }
            Err(_) => return, // End of input (Ctrl-D) or a broken terminal.
        }
    }
}

fn read_plain(lines: mpsc::Sender<String>) {
    let stdin = io::stdin();
    let mut stdin = stdin.lock();
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        match stdin.read_until(b'\n', &mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let raw = buffer.strip_suffix(b"\n").unwrap_or(&buffer);
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        match std::str::from_utf8(raw) {
            Ok(line) => {
                if lines.blocking_send(line.to_owned()).is_err() {
                    return;
                }
            }
            Err(_) => eprintln!("Not sent: the line is not valid UTF-8."),
        }
    }
}
