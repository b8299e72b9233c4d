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
use std::time::{SystemTime, UNIX_EPOCH};

use chat_core::report::{Stamped, encode_line};
use serde::Serialize;

/// A report file being appended to.
#[derive(Debug)]
pub struct ReportFile {
    file: Option<File>,
    path: PathBuf,
}

impl ReportFile {
    /// Opens (or creates) `path` for appending.
    pub fn open(path: &Path) -> io::Result<ReportFile> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(ReportFile {
            file: Some(file),
            path: path.to_owned(),
        })
    }

    /// Appends `record`, stamped with the time now.
    pub fn write<T: Serialize>(&mut self, record: T) {
        let Some(file) = self.file.as_mut() else {
            return;
        };
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let line = encode_line(&Stamped { at, record });
        if let Err(error) = file.write_all(&line) {
            eprintln!(
                "Cannot write to {}: {error}; no more records go there.",
                self.path.display()
            );
            self.file = None;
        }
    }
}
