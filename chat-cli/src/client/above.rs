//! Incoming lines above the line being edited, in the order they came.
//!
//! rustyline prints text from another thread (its `ExternalPrinter`) in one
//! of two ways: while it edits a line, it hands the text over a channel of
//! one place and draws it above the line when it next waits for a key;
//! between two reads it writes the text at once. It prefers keys to text,
//! so while it works through lines typed ahead or pasted, the text waits,
//! possibly past the end of the read, and a line written at once between
//! two reads overtook it: the screen showed the server's events out of
//! order (`/rooms`' answer above `/who`'s, after typing both ahead). And a
//! full channel blocks whoever prints until rustyline waits for a key.
//!
//! So lines go through a queue of ours to a thread of their own, which may
//! block. Once any text has gone to rustyline, the thread hands it lines
//! only while a line is being edited: lines shown between two reads wait,
//! in order, behind whatever rustyline still holds. rustyline has no event
//! for "a read started" or "a line was accepted" within its raw mode, so
//! the editor's helper stands in for both: its hint is asked for at every
//! drawing of the line, from the first one on (raw mode on), and its
//! validation when Enter accepts the line. One window is left: a line
//! handed over just as the read ends is written at once by rustyline, and
//! can overtake the one line its channel holds.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustyline::completion::Completer;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, ExternalPrinter, Helper};

use super::input::write_out;

/// Lines waiting at most; past it the oldest is written at once, so that a
/// read that never comes cannot make the client hold the conversation.
const WAITING_LINES_MAX: usize = 4096;

/// Where lines go while the line editor is in use.
pub struct Above {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// From the first drawing of a line until it is accepted.
    editing: bool,
    /// Text has gone to rustyline, which may still hold it.
    handed: bool,
    /// Lines not yet printed, oldest first.
    waiting: VecDeque<String>,
    /// The printing thread is printing a line.
    printing: bool,
    /// The session is over: the printing thread stops.
    finished: bool,
}

impl Above {
    /// Starts the printing thread.
    pub fn start(printer: Box<dyn ExternalPrinter + Send>) -> Arc<Self> {
        let above = Arc::new(Self {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let printing = above.clone();
        std::thread::spawn(move || printing.print_lines(printer));
        above
    }

    /// Shows one line (with its newline).
    pub fn show(&self, text: String) {
        let mut state = self.lock();
        if state.waiting.len() >= WAITING_LINES_MAX
            && let Some(oldest) = state.waiting.pop_front()
        {
            write_out(format_args!("{oldest}"));
        }
        state.waiting.push_back(text);
        self.changed.notify_all();
    }

    /// A read ended (its line accepted, or the editor stopped).
    pub fn editing_ended(&self) {
        self.lock().editing = false;
    }

    /// The session is over: gives the printing thread up to `grace` to
    /// print what waits, stops it, and returns what it did not print.
    pub fn finish(&self, grace: Duration) -> VecDeque<String> {
        let deadline = Instant::now() + grace;
        let mut state = self.lock();
        while (state.printing || !state.waiting.is_empty()) && (state.editing || !state.handed) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        state.finished = true;
        self.changed.notify_all();
        std::mem::take(&mut state.waiting)
    }

    fn editing_started(&self) {
        let mut state = self.lock();
        if !state.editing {
            state.editing = true;
            self.changed.notify_all();
        }
    }

    /// The printing thread: hands each line to rustyline while a line is
    /// edited, writes it at once while none is and nothing was handed over.
    fn print_lines(&self, mut printer: Box<dyn ExternalPrinter + Send>) {
        let mut state = self.lock();
        // Bounded: one line printed per turn, until the session is over.
        loop {
            if state.finished {
                return;
            }
            let may_print = state.editing || !state.handed;
            let Some(text) = may_print.then(|| state.waiting.pop_front()).flatten() else {
                state = self.wait(state);
                continue;
            };
            let hand_over = state.editing;
            state.handed |= hand_over;
            state.printing = true;
            drop(state);
            if !hand_over || printer.print(text.clone()).is_err() {
                write_out(format_args!("{text}"));
            }
            state = self.lock();
            state.printing = false;
            self.changed.notify_all();
        }
    }

    fn wait<'a>(&self, state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed
            .wait(state)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding it leaves nothing half done worth refusing.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The line editor's helper: completes nothing, hints nothing, highlights
/// nothing, accepts every line; its hint and validation tell [`Above`]
/// when a read starts and ends.
pub struct Hooks(pub Arc<Above>);

impl Helper for Hooks {}

impl Completer for Hooks {
    type Candidate = String;
}

impl Highlighter for Hooks {}

impl Hinter for Hooks {
    type Hint = String;

    fn hint(&self, _line: &str, _position: usize, _context: &Context<'_>) -> Option<String> {
        self.0.editing_started();
        None
    }
}

impl Validator for Hooks {
    fn validate(
        &self,
        _context: &mut ValidationContext<'_>,
    ) -> rustyline::Result<ValidationResult> {
        self.0.editing_ended();
        Ok(ValidationResult::Valid(None))
    }
}
