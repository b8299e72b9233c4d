//! What the state machine produced, held back until it is durable.
//!
//! "Acked means on disk, and nothing shown can un-happen": when the server
//! keeps its data, every input's durable changes become one log record,
//! numbered by a log sequence number (LSN), and every action the input
//! produced waits until that record (or, for an input that changed nothing
//! durable, every earlier record) is on disk. So no client is told of an
//! event, or acked, before a crash could no longer take it back. Actions
//! keep their order: they are released strictly first in, first out.
//!
//! Without persistence nothing is held and no record is made.

use std::collections::VecDeque;

use bytes::Bytes;
use serde::Serialize;

use super::output::Action;
use super::state::Change;

/// A log sequence number: the number of a record, from 1.
pub type Lsn = u64;

/// What the driver writes to the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Its number.
    pub lsn: Lsn,
    /// The encoded record.
    pub bytes: Bytes,
    /// True for a snapshot of the whole state (the log's older records may
    /// then be removed), false for one input's changes.
    pub snapshot: bool,
}

/// One input's durable changes, as logged.
#[derive(Serialize)]
struct CommitRef<'a> {
    changes: &'a [Change],
}

/// The held actions and the records to write; see the module docs.
#[derive(Debug)]
pub struct Journal {
    persistent: bool,
    actions: VecDeque<(Lsn, Action)>,
    records: VecDeque<Record>,
    /// The changes of the input being handled.
    changes: Vec<Change>,
    /// Where the current input's actions start in `actions`.
    input_start: usize,
    /// The number the next record gets.
    next_lsn: Lsn,
    /// Every record up to this one is durable.
    durable: Lsn,
    /// Bytes of records since the last snapshot.
    bytes_since_snapshot: usize,
}

impl Journal {
    /// A journal that makes records (`persistent`) or releases at once.
    pub fn new(persistent: bool) -> Self {
        Self {
            persistent,
            actions: VecDeque::new(),
            records: VecDeque::new(),
            changes: Vec::new(),
            input_start: 0,
            next_lsn: 1,
            durable: 0,
            bytes_since_snapshot: 0,
        }
    }

    /// Whether records are made.
    pub fn is_persistent(&self) -> bool {
        self.persistent
    }

    /// An input begins.
    pub fn begin(&mut self) {
        debug_assert!(
            self.changes.is_empty(),
            "an input ended before the next began"
        );
        self.input_start = self.actions.len();
    }

    /// Queues an action of the current input.
    pub fn push(&mut self, action: Action) {
        self.actions.push_back((Lsn::MAX, action));
    }

    /// Notes a durable change of the current input (already applied).
    pub fn record(&mut self, change: Change) {
        if self.persistent {
            self.changes.push(change);
        }
    }

    /// The input ended: its changes become a record, and its actions wait
    /// for it (or for the last record, when it changed nothing durable).
    /// Returns the bytes logged since the last snapshot.
    pub fn end(&mut self) -> usize {
        let barrier = if self.changes.is_empty() {
            self.next_lsn - 1
        } else {
            let commit = CommitRef {
                changes: &self.changes,
            };
            // Invariant: changes are plain data with string keys.
            let bytes = Bytes::from(serde_json::to_vec(&commit).expect("changes serialize"));
            self.changes.clear();
            self.bytes_since_snapshot += bytes.len();
            self.push_record(bytes, false)
        };
        let barrier = if self.persistent && !planted!(AckBeforeDurable) {
            barrier
        } else {
            0
        };
        for (lsn, _) in self.actions.iter_mut().skip(self.input_start) {
            *lsn = barrier;
        }
        self.input_start = self.actions.len();
        self.bytes_since_snapshot
    }

    /// Queues a snapshot of the whole state, after every record so far.
    pub fn snapshot(&mut self, bytes: Bytes) {
        self.bytes_since_snapshot = 0;
        self.push_record(bytes, true);
    }

    fn push_record(&mut self, bytes: Bytes, snapshot: bool) -> Lsn {
        let lsn = self.next_lsn;
        self.next_lsn += 1;
        self.records.push_back(Record {
            lsn,
            bytes,
            snapshot,
        });
        lsn
    }

    /// Every record up to `lsn` is on disk.
    pub fn durable(&mut self, lsn: Lsn) {
        assert!(lsn < self.next_lsn, "only records made can be durable");
        self.durable = self.durable.max(lsn);
    }

    /// The next action whose record is durable.
    pub fn poll_action(&mut self) -> Option<Action> {
        match self.actions.front() {
            Some((lsn, _)) if *lsn <= self.durable => {
                self.actions.pop_front().map(|(_, action)| action)
            }
            _ => None,
        }
    }

    /// The next record to write.
    pub fn poll_record(&mut self) -> Option<Record> {
        self.records.pop_front()
    }

    /// Whether records wait to be written.
    pub fn has_records(&self) -> bool {
        !self.records.is_empty()
    }

    /// Actions waiting for their records.
    pub fn held(&self) -> usize {
        self.actions.len()
    }

    /// Checks the journal's invariants between inputs.
    pub fn check(&self) {
        assert!(self.changes.is_empty(), "no change is left unrecorded");
        let ordered = self
            .actions
            .iter()
            .zip(self.actions.iter().skip(1))
            .all(|((a, _), (b, _))| a <= b);
        assert!(ordered, "held actions wait for records in order");
        assert!(self.durable < self.next_lsn, "durable records were made");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::output::{ConnectionId, RoomId};

    fn send(to: u64) -> Action {
        Action::Send {
            to: ConnectionId(to),
            frame: Bytes::from_static(b"x\n"),
        }
    }

    fn change() -> Change {
        Change::RoomClosed { room: RoomId(1) }
    }

    #[test]
    fn actions_wait_for_their_record_and_keep_their_order() {
        let mut journal = Journal::new(true);
        journal.begin();
        journal.push(send(1));
        journal.record(change());
        journal.end();
        journal.begin();
        journal.push(send(2)); // changed nothing: waits for record 1 only
        journal.end();
        journal.begin();
        journal.push(send(3));
        journal.record(change());
        journal.end();
        assert_eq!(journal.poll_action(), None, "nothing is durable yet");
        let first = journal.poll_record().expect("a record");
        assert_eq!((first.lsn, first.snapshot), (1, false));
        journal.durable(1);
        assert_eq!(journal.poll_action(), Some(send(1)));
        assert_eq!(journal.poll_action(), Some(send(2)));
        assert_eq!(journal.poll_action(), None, "record 2 is not durable");
        journal.durable(2);
        assert_eq!(journal.poll_action(), Some(send(3)));
        journal.check();
    }

    #[test]
    fn without_persistence_nothing_waits_and_nothing_is_logged() {
        let mut journal = Journal::new(false);
        journal.begin();
        journal.push(send(1));
        journal.record(change());
        journal.end();
        assert_eq!(journal.poll_action(), Some(send(1)));
        assert_eq!(journal.poll_record(), None);
    }

    #[test]
    fn a_record_holds_the_input_changes_as_json() {
        let mut journal = Journal::new(true);
        journal.begin();
        journal.record(change());
        journal.end();
        let record = journal.poll_record().expect("a record");
        assert_eq!(
            &record.bytes[..],
            br#"{"changes":[{"change":"room_closed","room":1}]}"#
        );
    }
}
