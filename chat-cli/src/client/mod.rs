//! `chat-cli client`: the terminal client.
//!
//! With a terminal on both stdin and stdout, input is edited with rustyline
//! (history with the arrow keys, Ctrl-Z and `fg`) and incoming lines are
//! printed above the line being typed. Otherwise (piped input, scripts,
//! tests) lines are read and printed plainly; the end of input leaves the
//! chat once everything sent has been acknowledged. It connects first and
//! then asks for a nickname (unless `--nick` gives one), so an unreachable
//! server is reported before anyone types a name.
//!
//! Submodules: `input` (reading typed lines on their own thread, each after
//! the session asks for it), `render` (timestamps and colours), `terminal`
//! (the terminal's modes across Ctrl-Z, `kill -STOP` and `fg`).

mod above;
mod input;
mod render;
mod terminal;

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chat_core::client::{ClientConfig, Ui};
use chat_core::protocol;
use chat_core::report::ClientReport;
use chat_core::session::{EndReason, Line, Outcome, SessionConfig};
use clap::Args;
use tokio::sync::mpsc;

use input::Keyboard;
use render::Style;

use crate::report_file::ReportFile;

const EXIT_CODES: &str = "\
Exit codes:
  0  left the chat; every message typed was delivered (or refused, and told so)
  1  the connection was lost for good (no reconnect within --reconnect-give-up)
  2  bad command line or nickname
  3  the server could not be reached
  4  the server refused to let you in (nickname from --nick, protocol version, server full)
  5  left the chat, but some messages could not be confirmed as delivered";

/// The limits that are not options, from the code's own defaults, the
/// commands, and the exit codes.
fn after_help() -> String {
    let session = SessionConfig::asking("");
    let commands = chat_core::command::HELP.join("\n");
    format!(
        "{commands}

Fixed limits:
  unacknowledged messages  {unacked} at most; reading input waits while that many are in flight
  handshake                {handshake:?} from the hello to the server's welcome
  reconnect pauses         {min:?}, doubling up to {max:?}, each drawn between half and all of it
  leaving                  after Ctrl-C, Ctrl-D, SIGTERM or SIGHUP, at most {leave:?} for the last acks

{EXIT_CODES}",
        unacked = session.unacked_max,
        handshake = session.handshake_timeout,
        min = session.reconnect_backoff_min,
        max = session.reconnect_backoff_max,
        leave = chat_core::client::LEAVE_GRACE,
    )
}

/// Options of `chat-cli client`.
#[derive(Debug, Args)]
#[command(after_help = after_help())]
pub struct ClientArgs {
    /// Server address (`host:port`).
    #[arg(long, env = "CHAT_SERVER", default_value = "127.0.0.1:9999")]
    server: String,

    /// Nickname (1 to 32 letters, digits or `-_.'`^|[]{}`). Asked for once
    /// connected when not given; a refused one is then asked again.
    #[arg(long, env = "CHAT_NICK")]
    nick: Option<String>,

    /// Room to join first.
    #[arg(long, env = "CHAT_ROOM", default_value = protocol::DEFAULT_ROOM)]
    room: String,

    /// Show the time before each message.
    #[arg(long, env = "CHAT_TIMESTAMPS")]
    timestamps: bool,

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

    /// Append every line shown, and how the session ended, to this file as
    /// JSON lines (for the test that judges the real binaries with the
    /// simulation's oracle).
    #[arg(long, hide = true)]
    transcript: Option<PathBuf>,

    #[command(flatten)]
    tls: crate::tls::ClientTlsArgs,
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
    if let Some(nick) = &args.nick
        && let Err(error) = protocol::validate_nick(nick)
    {
        eprintln!("Invalid nickname: {error}.");
        return ExitCode::from(2);
    }
    if let Err(error) = protocol::validate_room(&args.room) {
        eprintln!("Invalid room: {error}.");
        return ExitCode::from(2);
    }
    let transcript = match args.transcript.as_deref().map(ReportFile::open).transpose() {
        Ok(transcript) => transcript,
        Err(error) => {
            eprintln!("Cannot open the transcript file: {error}.");
            return ExitCode::from(2);
        }
    };
    let Some(outcome) = run_session(&args, network, transcript.as_ref()) else {
        return ExitCode::FAILURE;
    };
    if let Some(transcript) = &transcript {
        transcript.write(ClientReport::Ended(outcome));
    }
    let _ = io::stdout().flush();
    std::process::exit(exit_code(outcome));
}

/// Runs the session with the keyboard and the screen; `None` when the
/// async runtime cannot start (said on standard error).
fn run_session(
    args: &ClientArgs,
    network: chat_net::TokioNetwork,
    transcript: Option<&ReportFile>,
) -> Option<Outcome> {
    let interactive = io::stdin().is_terminal() && io::stdout().is_terminal();
    let style = Style::for_stdout(args.timestamps);
    let (mut keyboard, lines, leave_request) = Keyboard::start(interactive);
    let config = client_config(args);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("Cannot start the async runtime: {error}");
            return None;
        }
    };
    let outcome = runtime.block_on(async {
        let lines = match transcript {
            Some(transcript) => tap(lines, transcript.clone()),
            None => lines,
        };
        let leave = input::leave_signal(leave_request);
        chat_core::client::run(network, config, lines, leave, |ui| match ui {
            Ui::Show(line) => {
                if let Some(transcript) = transcript {
                    transcript.write(ClientReport::Shown(line.clone()));
                }
                keyboard.show(&style.render(line));
                // A refusal is followed by the nickname question.
                if !matches!(line, Line::NickRefused(_)) {
                    keyboard.start_held_read();
                }
            }
            Ui::Ready(prompt) => keyboard.read_next(prompt),
            Ui::Prompt(prompt) => keyboard.prompt_changed(prompt),
        })
        .await
    });
    keyboard.finish();
    Some(outcome)
}

/// `--transcript`: every line read from the input is reported as typed on
/// its way to the session. A line is read only when the session asks for
/// one, so this adds no read-ahead.
fn tap(mut lines: mpsc::Receiver<String>, transcript: ReportFile) -> mpsc::Receiver<String> {
    let (sender, tapped) = mpsc::channel(1);
    tokio::spawn(async move {
        while let Some(line) = lines.recv().await {
            transcript.write(ClientReport::Typed(line.clone()));
            if sender.send(line).await.is_err() {
                return;
            }
        }
    });
    tapped
}

fn client_config(args: &ClientArgs) -> ClientConfig {
    let mut session = match &args.nick {
        Some(nick) => SessionConfig::new(nick.clone(), args.room.clone()),
        None => SessionConfig::asking(args.room.clone()),
    };
    session.heartbeat_interval = args.heartbeat_interval;
    session.heartbeat_timeout = args.heartbeat_timeout;
    session.reconnect_give_up = args.reconnect_give_up;
    session.seed = rand::random();
    let mut config = ClientConfig::with_session(args.server.clone(), session);
    config.connect_timeout = args.connect_timeout;
    config
}

fn exit_code(outcome: Outcome) -> i32 {
    match outcome.reason {
        EndReason::Left if outcome.tally.unconfirmed == 0 => 0,
        EndReason::Left => 5,
        EndReason::ConnectionLost => 1,
        EndReason::Unreachable => 3,
        EndReason::Refused(_) => 4,
    }
}
