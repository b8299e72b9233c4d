//! `restore_records`: arbitrary bytes as the log records of a data
//! directory, rebuilt by `Rooms::restore`. Records this code did not write
//! (another version's, or damaged past their checksums) must be refused
//! with an error that says so, never a panic: `Durable::fits` guards every
//! change before it is applied.
//!
//! Input layout: lines, each a record (records are one line of JSON each,
//! so a mutated seed stays readable); a first line that starts with
//! `snapshot ` is the snapshot the records follow. A state that restores
//! must pass `check_invariants` (restore runs it). A snapshot that parses
//! but does not hold together (a stream whose `last_seq` is not its last
//! event, two members with one nickname, a member in a room that does not
//! exist) panicked within seconds of fuzzing before snapshots were
//! validated; now it is refused like a record that does not fit.

use std::time::Duration;

use chat_core::room::{Record, RestoreError, RoomConfig, Rooms};

/// Most records one input holds.
const RECORDS_MAX: usize = 64;

/// The target: see the module docs.
pub fn restore_records(data: &[u8]) {
    if let Ok(rooms) = restore_lines(data) {
        rooms.check_invariants();
    }
}

/// What restoring the snapshot and records of an input gives.
pub fn restore_lines(data: &[u8]) -> Result<Rooms, RestoreError> {
    let mut lines = data.split(|byte| *byte == b'\n').peekable();
    let snapshot = lines
        .next_if(|line| line.starts_with(SNAPSHOT_PREFIX))
        .map(|line| &line[SNAPSHOT_PREFIX.len()..]);
    let records: Vec<&[u8]> = lines.take(RECORDS_MAX).collect();
    Rooms::restore(
        RoomConfig::default(),
        "incarnation-fuzz".to_owned(),
        [7; 32],
        snapshot,
        records,
        Duration::from_secs(1_000),
    )
}

/// What starts a first line that holds a snapshot.
const SNAPSHOT_PREFIX: &[u8] = b"snapshot ";

/// The input [`restore_records`] reads for this snapshot and these records.
pub fn restore_input_with(snapshot: Option<&[u8]>, records: &[&[u8]]) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    if let Some(snapshot) = snapshot {
        lines.push([SNAPSHOT_PREFIX, snapshot].concat());
    }
    lines.extend(records.iter().map(|record| record.to_vec()));
    lines.join(&b'\n')
}

/// The input [`restore_records`] reads for these records.
pub fn restore_input(records: &[&[u8]]) -> Vec<u8> {
    restore_input_with(None, records)
}

/// Restores a log as the server does: from its last snapshot and the
/// records after it.
pub fn restore_log(
    config: &RoomConfig,
    records: &[Record],
    now: Duration,
) -> Result<Rooms, RestoreError> {
    let snapshot = records.iter().rposition(|record| record.snapshot);
    let after = snapshot.map_or(0, |index| index + 1);
    Rooms::restore(
        config.clone(),
        "incarnation-fuzz".to_owned(),
        [8; 32],
        snapshot.map(|index| &records[index].bytes[..]),
        records[after..].iter().map(|record| &record.bytes[..]),
        now,
    )
}
