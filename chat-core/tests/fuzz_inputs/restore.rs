//! `restore_records`: arbitrary bytes as the log records of a data
//! directory, rebuilt by `Rooms::restore`. Records this code did not write
//! (another version's, or damaged past their checksums) must be refused
//! with an error that says so, never a panic: `Durable::fits` guards every
//! change before it is applied.
//!
//! Input layout: lines, each a record (records are one line of JSON each,
//! so a mutated seed stays readable). A state that restores must pass
//! `check_invariants` (restore runs it).
//!
//! Snapshots are not fuzzed yet: `Durable::restore` does not validate a
//! snapshot, so one that parses but does not hold together (a stream whose
//! `last_seq` is not its last event, two members with one nickname, a
//! member in a room that does not exist) panics in `check_invariants`
//! within seconds of fuzzing. Once snapshots are validated, give this
//! target an optional snapshot line.

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

/// What restoring the records of an input gives.
pub fn restore_lines(data: &[u8]) -> Result<Rooms, RestoreError> {
    let records: Vec<&[u8]> = data
        .split(|byte| *byte == b'\n')
        .take(RECORDS_MAX)
        .collect();
    Rooms::restore(
        RoomConfig::default(),
        "incarnation-fuzz".to_owned(),
        [7; 32],
        None,
        records,
        Duration::from_secs(1_000),
    )
}

/// The input [`restore_records`] reads for these records.
pub fn restore_input(records: &[&[u8]]) -> Vec<u8> {
    records.join(&b'\n')
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
