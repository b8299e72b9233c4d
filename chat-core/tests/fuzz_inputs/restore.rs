//! `restore_records`: arbitrary bytes as a data directory's snapshot and
//! log records, rebuilt by `Rooms::restore`. A directory this code did not
//! write (another version's, or damaged past its checksums) must be refused
//! with an error that says so, never a panic.
//!
//! Input layout: one byte of flags (bit 0: the first line is a snapshot),
//! then lines, each a record (records are one line of JSON each, so a
//! mutated seed stays readable). A state that restores must pass
//! `check_invariants` (restore runs it).

use std::time::Duration;

use chat_core::room::{Record, RestoreError, RoomConfig, Rooms};

use super::cursor::Cursor;

/// Most records one input holds.
const RECORDS_MAX: usize = 64;

/// The target: see the module docs.
pub fn restore_records(data: &[u8]) {
    let mut cursor = Cursor::new(data);
    let has_snapshot = cursor.byte() & 1 != 0;
    let mut lines = cursor.rest().split(|byte| *byte == b'\n');
    let snapshot = if has_snapshot { lines.next() } else { None };
    let records: Vec<&[u8]> = lines.take(RECORDS_MAX).collect();
    let restored = Rooms::restore(
        RoomConfig::default(),
        "incarnation-fuzz".to_owned(),
        [7; 32],
        snapshot,
        records,
        Duration::from_secs(1_000),
    );
    if let Ok(rooms) = restored {
        rooms.check_invariants();
    }
}

/// The input [`restore_records`] reads for this snapshot and records.
pub fn restore_input(snapshot: Option<&[u8]>, records: &[&[u8]]) -> Vec<u8> {
    let mut input = vec![u8::from(snapshot.is_some())];
    let lines: Vec<&[u8]> = snapshot
        .into_iter()
        .chain(records.iter().copied())
        .collect();
    input.extend(lines.join(&b'\n'));
    input
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
