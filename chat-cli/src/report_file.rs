//! `client --transcript FILE` and `server --observe FILE`: what this
//! process saw, appended to a file as JSON lines ([`chat_core::report`]),
//! for the test that runs the real binaries under the simulation's oracle
//! (`chat-cli/tests/real_sim/`). Both options are hidden from `--help`:
//! they are for tests, and without them nothing is written.
//!
//! Each record is stamped here with the wall clock (the drivers never read
//! it) and written with one `write` of one whole line to a file opened for
//! appending, so that a SIGKILL leaves at most a torn last line, which the
//! reader skips. A failed write is reported once on standard error and
//! writing stops; the chat goes on.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use chat_core::report::{Stamped, encode_line};
use serde::Serialize;

/// A report file being appended to, shared by whoever reports (the
/// server's observer runs under the server's lock, a client's input on a
/// task of its own).
#[derive(Clone, Debug)]
pub struct ReportFile {
    shared: Arc<Mutex<Open>>,
}

#[derive(Debug)]
struct Open {
    /// `None` once a write failed.
    file: Option<File>,
    path: PathBuf,
}

impl ReportFile {
    /// Opens (or creates) `path` for appending.
    pub fn open(path: &Path) -> io::Result<ReportFile> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let open = Open {
            file: Some(file),
            path: path.to_owned(),
        };
        Ok(ReportFile {
            shared: Arc::new(Mutex::new(open)),
        })
    }

    /// Appends `record`, stamped with the time now.
    pub fn write<T: Serialize>(&self, record: T) {
        // A panic while writing a record ends the process anyway.
        let mut open = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(file) = open.file.as_mut() else {
            return;
        };
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let line = encode_line(&Stamped { at, record });
        if let Err(error) = file.write_all(&line) {
            eprintln!(
                "Cannot write to {}: {error}; no more records go there.",
                open.path.display()
            );
            open.file = None;
        }
    }
}
