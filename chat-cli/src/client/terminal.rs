//! The terminal's modes across job control: what it takes for the line
//! editor to come back whole after the client was stopped.
//!
//! rustyline edits in raw mode and handles the Ctrl-Z key itself: it turns
//! raw mode off, stops the process with `kill(0, SIGTSTP)`, and turns raw
//! mode back on as soon as that call returns. In a process with several
//! threads the kernel may hand the signal to another thread; the reading
//! thread then returns from `kill` and turns raw mode back on *before* the
//! process stops, the shell puts the terminal back in cooked mode while the
//! job is stopped, and after `fg` arrow keys print `^[[D`. So every thread
//! but the reading one blocks SIGTSTP, and the reading thread stops inside
//! `kill` itself.
//!
//! A stop from outside (`kill -STOP`, `kill -TSTP`) while a line is being
//! edited is not seen by rustyline at all, and the shell leaves the
//! terminal cooked after `fg` just the same. So SIGCONT is waited for on a
//! thread of its own (blocked everywhere, taken with `sigwait`: it
//! continues the process all the same), and when the editor is reading and
//! finds the terminal cooked, the editor's raw mode (and bracketed paste)
//! is set again; the line shows again at the next key.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// The terminal's settings, to put back at exit.
#[cfg(unix)]
pub type Saved = nix::sys::termios::Termios;
/// The terminal's settings, to put back at exit.
#[cfg(not(unix))]
pub type Saved = ();

#[cfg(unix)]
mod unix {
    use std::io::Write;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use nix::sys::signal::{SigSet, Signal};
    use nix::sys::termios::{
        ControlFlags, InputFlags, LocalFlags, SetArg, SpecialCharacterIndices, Termios, tcgetattr,
        tcsetattr,
    };

    pub fn save() -> Option<Termios> {
        tcgetattr(std::io::stdin()).ok()
    }

    pub fn restore(saved: Option<Termios>) {
        if let Some(saved) = saved {
            // Best effort: the terminal may be gone.
            let _ = tcsetattr(std::io::stdin(), SetArg::TCSANOW, &saved);
        }
    }

    fn signals(signals: &[Signal]) -> SigSet {
        let mut set = SigSet::empty();
        for signal in signals {
            set.add(*signal);
        }
        set
    }

    pub fn leave_job_control_to_others() {
        if let Err(error) = signals(&[Signal::SIGTSTP, Signal::SIGCONT]).thread_block() {
            tracing::debug!(%error, "cannot block SIGTSTP and SIGCONT");
        }
    }

    pub fn take_stop_signal() {
        if let Err(error) = signals(&[Signal::SIGTSTP]).thread_unblock() {
            tracing::debug!(%error, "cannot unblock SIGTSTP");
        }
    }

    pub fn restore_editor_mode_on_continue(reading: Arc<AtomicBool>) {
        let continued = signals(&[Signal::SIGCONT]);
        std::thread::spawn(move || {
            while continued.wait().is_ok() {
                if reading.load(Ordering::SeqCst) {
                    enter_editor_mode_if_cooked();
                }
            }
        });
    }

    /// What rustyline writes to turn bracketed paste on as it starts reading.
    const BRACKETED_PASTE_ON: &[u8] = b"\x1b[?2004h";

    /// rustyline 19's raw mode (`tty/unix.rs`, `enable_raw_mode`), set
    /// only on a terminal in canonical mode: a shell's doing while the
    /// client was stopped.
    fn enter_editor_mode_if_cooked() {
        let stdin = std::io::stdin();
        let Ok(mut mode) = tcgetattr(&stdin) else {
            return;
        };
        if !mode.local_flags.contains(LocalFlags::ICANON) {
            return;
        }
        mode.input_flags &= !(InputFlags::BRKINT
            | InputFlags::ICRNL
            | InputFlags::INPCK
            | InputFlags::ISTRIP
            | InputFlags::IXON);
        mode.control_flags |= ControlFlags::CS8;
        mode.local_flags &=
            !(LocalFlags::ECHO | LocalFlags::ICANON | LocalFlags::IEXTEN | LocalFlags::ISIG);
        mode.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
        mode.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
        if let Err(error) = tcsetattr(&stdin, SetArg::TCSADRAIN, &mode) {
            tracing::debug!(%error, "cannot set the editor's mode again");
            return;
        }
        // The shell's own editor turned bracketed paste off, which rustyline
        // turns on while it reads. Best effort: the terminal may be gone.
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(BRACKETED_PASTE_ON);
        let _ = stdout.flush();
    }
}

/// The terminal's settings now.
pub fn save() -> Option<Saved> {
    #[cfg(unix)]
    return unix::save();
    #[cfg(not(unix))]
    None
}

/// Puts back settings saved before (raw mode off).
pub fn restore(saved: Option<Saved>) {
    #[cfg(unix)]
    unix::restore(saved);
    #[cfg(not(unix))]
    let _ = saved;
}

/// This thread, and the threads it starts from now on, leave SIGTSTP to
/// the reading thread and SIGCONT to its watcher. Call it before any
/// other thread exists.
pub fn leave_job_control_to_others() {
    #[cfg(unix)]
    unix::leave_job_control_to_others();
}

/// This thread (the reading one) takes SIGTSTP.
pub fn take_stop_signal() {
    #[cfg(unix)]
    unix::take_stop_signal();
}

/// Starts the thread that, after each SIGCONT, sets the editor's raw mode
/// again if the editor is `reading` and the terminal is cooked.
pub fn restore_editor_mode_on_continue(reading: &Arc<AtomicBool>) {
    #[cfg(unix)]
    unix::restore_editor_mode_on_continue(reading.clone());
    #[cfg(not(unix))]
    let _ = reading;
}
