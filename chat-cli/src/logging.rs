//! The server's console: log lines that never stop the server.
//!
//! Logging runs under the state lock, so a console that does not read (a
//! stopped pager, a full pipe) must not block it, and a closed one (the
//! terminal went away) must not end it. Lines go through a bounded queue to
//! a writer thread (tracing-appender's non-blocking writer); when the queue
//! is full, lines are dropped and counted, and the count is reported once
//! the console reads again. Write errors are ignored by that thread.

use std::io::IsTerminal;

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Lines that may wait for the console.
const LINES_QUEUED_MAX: usize = 64 * 1024;

/// The running console: keep it alive for as long as lines should appear.
pub struct Console {
    _guard: WorkerGuard,
    dropped: ErrorCounter,
    reported: usize,
}

impl Console {
    /// Reports lines dropped since the last report, if any.
    pub fn report_dropped(&mut self) {
        let dropped = self.dropped.dropped_lines();
        if dropped > self.reported {
            tracing::warn!(
                "The console did not keep up: {} log lines were dropped.",
                dropped - self.reported
            );
            self.reported = dropped;
        }
    }
}

/// The filter RUST_LOG asks for; an invalid one is reported (on standard
/// error, before logging starts) and `info` used instead.
fn filter() -> EnvFilter {
    match std::env::var("RUST_LOG") {
        Err(_) => EnvFilter::new("info"),
        Ok(directives) => match EnvFilter::try_new(&directives) {
            Ok(filter) => filter,
            Err(error) => {
                eprintln!(
                    "chat-cli: RUST_LOG={directives:?} is not a valid filter ({error}); logging at info."
                );
                EnvFilter::new("info")
            }
        },
    }
}

/// Starts logging to standard output.
pub fn start() -> Console {
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(LINES_QUEUED_MAX)
        .finish(std::io::stdout());
    let dropped = writer.error_counter();
    tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_target(false)
        .with_ansi(std::io::stdout().is_terminal())
        .with_writer(writer)
        .init();
    Console {
        _guard: guard,
        dropped,
        reported: 0,
    }
}
