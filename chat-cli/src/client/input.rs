//! Typed lines, read on their own thread, one each time the session asks.
//!
//! The session asks for the next line with its prompt ([`Ui::Ready`]), so
//! the prompt always names the room that line goes to (`/join` switches at
//! once). On a terminal, rustyline edits the line and prints incoming lines
//! above it, in the order they came (`above` says what that takes); it owns Ctrl-Z (the terminal is restored while the client is
//! stopped and raw mode comes back after `fg`) and keeps the history the
//! arrow keys walk. Ctrl-C and Ctrl-D leave the chat as a signal does (the
//! session waits a few seconds at most for the last acks, where `.exit`
//! waits for all of them); at the nickname question they leave before
//! joining rather than becoming a nickname. Otherwise lines are read
//! plainly, and only the nickname question is shown as a prompt.
//!
//! What it takes for the editor to come back whole after Ctrl-Z (or any
//! stop) and `fg` is in `terminal`.
//!
//! A line being edited keeps the prompt it started with (rustyline cannot
//! change it), so after the nickname is typed the next read waits for the
//! server's verdict: a refused nickname is then asked again after `Choose a
//! nickname: `, not after the empty prompt of the room it did not get into.
//!
//! [`Ui::Ready`]: chat_core::client::Ui::Ready

use std::io::{self, BufRead, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc as std_mpsc};
use std::time::Duration;

use chat_core::session::NICK_PROMPT;
use rustyline::Editor;
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use tokio::sync::{mpsc, oneshot};

use super::above::{Above, Hooks};
use super::terminal;

/// The line editor, with the hooks that keep incoming lines in order.
type LineEditor = Editor<Hooks, DefaultHistory>;

/// How long the line editor gets to draw the last lines before exit.
const EDITOR_DRAW_GRACE: Duration = Duration::from_millis(100);

/// Where incoming lines are printed.
enum Screen {
    /// Above the line being edited, while one is (see `above`).
    Editor {
        above: Arc<Above>,
        reading: Arc<AtomicBool>,
    },
    /// Plain standard output.
    Plain,
}

/// The keyboard and the screen of the client.
pub struct Keyboard {
    screen: Screen,
    prompts: std_mpsc::Sender<String>,
    saved_terminal: Option<terminal::Saved>,
    /// The prompt of the last read asked for.
    last_prompt: String,
    /// A read held until the server answers the nickname, with the prompt
    /// it will have.
    held: Option<String>,
}

impl Keyboard {
    /// Starts the reading thread; typed lines arrive on the receiver, and
    /// [`leave_signal`] takes the editor's request to leave.
    pub fn start(interactive: bool) -> (Keyboard, mpsc::Receiver<String>, LeaveRequest) {
        let (lines, received) = mpsc::channel(1);
        let (leave, leave_requested) = oneshot::channel();
        let (prompts, asked) = std_mpsc::channel();
        let saved_terminal = terminal::save();
        let editor = interactive.then(|| LineEditor::new().ok()).flatten();
        let screen = match editor.map(|mut editor| (editor.create_external_printer(), editor)) {
            Some((Ok(printer), mut editor)) => {
                let reading = Arc::new(AtomicBool::new(false));
                let flag = reading.clone();
                // Before any other thread exists (the async runtime starts
                // later, and its threads inherit the mask).
                terminal::leave_job_control_to_others();
                let above = Above::start(Box::new(printer));
                editor.set_helper(Some(Hooks(above.clone())));
                terminal::restore_editor_mode_on_continue(&reading);
                std::thread::spawn(move || {
                    terminal::take_stop_signal();
                    read_edited(editor, &asked, &lines, &flag, leave);
                });
                Screen::Editor { above, reading }
            }
            _ => {
                std::thread::spawn(move || read_plain(&asked, &lines));
                Screen::Plain
            }
        };
        let keyboard = Keyboard {
            screen,
            prompts,
            saved_terminal,
            last_prompt: String::new(),
            held: None,
        };
        (keyboard, received, LeaveRequest(leave_requested))
    }

    /// Shows a line above whatever is being typed.
    pub fn show(&mut self, text: &str) {
        match &self.screen {
            Screen::Editor { above, .. } => above.show(format!("{text}\n")),
            Screen::Plain => write_out(format_args!("{text}\n")),
        }
    }

    /// Reads the next line after `prompt`; right after the nickname was
    /// typed, once the server has answered it.
    pub fn read_next(&mut self, prompt: &str) {
        if self.last_prompt == NICK_PROMPT && prompt != NICK_PROMPT {
            self.held = Some(prompt.to_owned());
        } else {
            self.ask(prompt);
        }
    }

    /// The prompt changed: a held read gets the new one, and starts at once
    /// when the nickname is asked again.
    pub fn prompt_changed(&mut self, prompt: &str) {
        if self.held.is_none() {
            return;
        }
        if prompt == NICK_PROMPT {
            self.held = None;
            self.ask(prompt);
        } else {
            self.held = Some(prompt.to_owned());
        }
    }

    /// The server answered the nickname other than by refusing it (it let
    /// the user in, or the session ends): start the held read, if any.
    pub fn start_held_read(&mut self) {
        if let Some(prompt) = self.held.take() {
            self.ask(&prompt);
        }
    }

    fn ask(&mut self, prompt: &str) {
        self.last_prompt = prompt.to_owned();
        // The thread is gone only once input ended, which the session knows.
        let _ = self.prompts.send(prompt.to_owned());
    }

    /// The session is over: give the editor a moment to draw the last lines,
    /// then undo its raw mode (its thread is blocked reading the keyboard).
    pub fn finish(self) {
        if let Screen::Editor { above, reading } = self.screen {
            let unprinted = above.finish(EDITOR_DRAW_GRACE);
            std::thread::sleep(EDITOR_DRAW_GRACE);
            terminal::restore(self.saved_terminal);
            // Leave whatever was half typed (and never sent) on its own
            // line. A read that ended (Enter, Ctrl-C, Ctrl-D) has moved to
            // a new line already, and the screen ends as the original
            // program's did, with `Disconnecting from server...`.
            if reading.load(Ordering::SeqCst) {
                write_out(format_args!("\n"));
            }
            // Bounded: by what `Above` keeps waiting.
            for text in unprinted {
                write_out(format_args!("{text}"));
            }
        }
    }
}

/// Writes to standard output and ignores failure: once the terminal is
/// gone (its window closed, SIGHUP) every write fails, and the client must
/// still say goodbye to the server, which a panicking `println!` would
/// prevent (the nickname would then stay taken for the grace period).
pub(super) fn write_out(text: std::fmt::Arguments<'_>) {
    let mut stdout = io::stdout().lock();
    let _ = stdout.write_fmt(text);
    let _ = stdout.flush();
}

fn read_edited(
    mut editor: LineEditor,
    prompts: &std_mpsc::Receiver<String>,
    lines: &mpsc::Sender<String>,
    reading: &AtomicBool,
    leave: oneshot::Sender<()>,
) {
    while let Ok(prompt) = prompts.recv() {
        reading.store(true, Ordering::SeqCst);
        let read = editor.readline(&prompt);
        reading.store(false, Ordering::SeqCst);
        if let Some(Hooks(above)) = editor.helper() {
            // Accepting a line said so already; Ctrl-C and Ctrl-D do not.
            above.editing_ended();
        }
        let line = match read {
            Ok(line) => {
                if !line.trim().is_empty() && prompt != NICK_PROMPT {
                    let _ = editor.add_history_entry(line.as_str());
                }
                line
            }
            // Ctrl-C, Ctrl-D, or a terminal that went away.
            Err(error) => {
                if !matches!(error, ReadlineError::Interrupted | ReadlineError::Eof) {
                    tracing::debug!(%error, "the line editor stopped");
                }
                // The session may be over already, and then nobody listens.
                let _ = leave.send(());
                return;
            }
        };
        if lines.blocking_send(line).is_err() {
            return;
        }
    }
}

fn read_plain(prompts: &std_mpsc::Receiver<String>, lines: &mpsc::Sender<String>) {
    let stdin = io::stdin();
    let mut stdin = stdin.lock();
    let mut buffer = Vec::new();
    while let Ok(prompt) = prompts.recv() {
        let asking_nick = prompt == NICK_PROMPT;
        if asking_nick {
            write_out(format_args!("{prompt}"));
        }
        let Some(line) = read_valid_line(&mut stdin, &mut buffer) else {
            if asking_nick {
                write_out(format_args!("\n"));
            }
            return;
        };
        if asking_nick && !io::stdin().is_terminal() {
            // Piped input is not echoed: show the answer as a terminal would.
            write_out(format_args!("{}\n", line.trim()));
        }
        if lines.blocking_send(line).is_err() {
            return;
        }
    }
}

/// The next line of valid UTF-8; lines that are not are reported and
/// skipped. `None` at the end of input.
fn read_valid_line(stdin: &mut impl BufRead, buffer: &mut Vec<u8>) -> Option<String> {
    loop {
        buffer.clear();
        match stdin.read_until(b'\n', buffer) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        let raw = buffer.strip_suffix(b"\n").unwrap_or(buffer);
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        match std::str::from_utf8(raw) {
            Ok(line) => return Some(line.to_owned()),
            Err(_) => {
                let _ = writeln!(io::stderr(), "Not sent: the line is not valid UTF-8.");
            }
        }
    }
}

/// The line editor's request to leave (Ctrl-C, Ctrl-D).
pub struct LeaveRequest(oneshot::Receiver<()>);

impl LeaveRequest {
    async fn requested(self) {
        if self.0.await.is_err() {
            // Input read plainly, or the editor ended with the session:
            // no request will come.
            std::future::pending::<()>().await;
        }
    }
}

/// Completes when the user asks the client to leave other than by
/// `.exit`: Ctrl-C or Ctrl-D in the line editor, Ctrl-C outside it,
/// SIGTERM, or SIGHUP (the terminal was closed).
pub async fn leave_signal(editor: LeaveRequest) {
    let editor = editor.requested();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        async fn on(kind: SignalKind) {
            match signal(kind) {
                Ok(mut watching) => {
                    watching.recv().await;
                }
                Err(error) => {
                    tracing::debug!(%error, "cannot watch a signal");
                    std::future::pending::<()>().await;
                }
            }
        }
        tokio::select! {
            () = editor => {}
            () = on(SignalKind::interrupt()) => {}
            () = on(SignalKind::terminate()) => {}
            () = on(SignalKind::hangup()) => {}
        }
    }
    #[cfg(not(unix))]
    {
        tokio::select! {
            () = editor => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
}
