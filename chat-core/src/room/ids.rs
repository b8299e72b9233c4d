//! Client message ids: what makes a retry after a reconnect harmless.
//!
//! A client numbers its messages (room and private alike) with ids that
//! increase within its session. The server remembers the outcome of the
//! last ones (`acks_remembered_max`): a retry of a remembered id gets the
//! same answer again and is not delivered twice; an id used for a different
//! message is a conflict; an id below the highest accepted that the server
//! does not remember is stale. Each outcome is an explicit answer, so that
//! no client waits forever for an ack that will not come.

use std::collections::VecDeque;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::protocol::{ErrorCode, MESSAGE_ID_MAX, Seq};

/// What became of a message id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdOutcome {
    /// Accepted as event `seq` of `room`.
    Room {
        /// The room's name.
        room: Arc<str>,
        /// The event's sequence number.
        seq: Seq,
    },
    /// Accepted as event `seq` of the sender's private stream.
    Private {
        /// The recipient's nickname then.
        to: Arc<str>,
        /// The sender's copy's sequence number.
        seq: Seq,
    },
    /// Refused.
    Refused {
        /// Why.
        code: ErrorCode,
    },
}

/// One remembered id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsedId {
    /// The id.
    pub id: u64,
    /// A hash of what the message was (target and text), to tell a retry
    /// from a conflict.
    pub fingerprint: u64,
    /// What became of it.
    pub outcome: IdOutcome,
}

/// How a new id relates to those already used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdCheck {
    /// A new message.
    Fresh,
    /// A retry of a message with this outcome.
    Retry(IdOutcome),
    /// Refused with this code.
    Refused(ErrorCode),
}

/// The ids a member used.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdWindow {
    /// The highest id used (0: none yet).
    pub highest: u64,
    recent: VecDeque<UsedId>,
}

impl IdWindow {
    /// Classifies a message's id.
    pub fn check(&self, id: u64, fingerprint: u64) -> IdCheck {
        if id == 0 || id > MESSAGE_ID_MAX {
            return IdCheck::Refused(ErrorCode::IdInvalid);
        }
        if id > self.highest || planted!(NoDedup) {
            return IdCheck::Fresh;
        }
        match self.recent.iter().rev().find(|used| used.id == id) {
            Some(used) if used.fingerprint == fingerprint => IdCheck::Retry(used.outcome.clone()),
            Some(_) => IdCheck::Refused(ErrorCode::IdConflict),
            None => IdCheck::Refused(ErrorCode::IdStale),
        }
    }

    /// Remembers a fresh id's outcome, forgetting the oldest past `max`.
    pub fn record(&mut self, used: UsedId, max: usize) {
        assert!(
            used.id > self.highest || planted!(NoDedup),
            "ids are recorded in increasing order"
        );
        self.highest = self.highest.max(used.id);
        self.recent.push_back(used);
        self.trim(max);
    }

    /// Forgets the oldest ids past `max` (also after a restart with a
    /// lower limit than the state was written with).
    pub fn trim(&mut self, max: usize) {
        while self.recent.len() > max {
            self.recent.pop_front();
        }
    }

    /// Checks the window's invariants.
    pub fn check_invariants(&self, max: usize) {
        assert!(self.recent.len() <= max, "the id window is bounded");
        if let Err(broken) = self.validate() {
            panic!("an id window does not hold together: {broken}");
        }
    }

    /// Whether the remembered ids increase and end at the highest, whatever
    /// the window's bound.
    pub fn validate(&self) -> Result<(), String> {
        if planted!(NoDedup) {
            return Ok(());
        }
        let increasing = self
            .recent
            .iter()
            .zip(self.recent.iter().skip(1))
            .all(|(a, b)| a.id < b.id);
        if !increasing {
            return Err("remembered ids do not increase".to_owned());
        }
        match self.recent.back() {
            Some(last) if last.id != self.highest => Err(format!(
                "the last id remembered is {}, the highest {}",
                last.id, self.highest
            )),
            _ => Ok(()),
        }
    }
}

/// The fingerprint of a message: FNV-1a over where it goes and what it says.
pub fn fingerprint(target: &str, private: bool, action: bool, text: &str) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let flags = [u8::from(private), u8::from(action), 0xff];
    for byte in target.bytes().chain(flags).chain(text.bytes()) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(PRIME);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(id: u64, text: &str) -> UsedId {
        UsedId {
            id,
            fingerprint: fingerprint("lobby", false, false, text),
            outcome: IdOutcome::Room {
                room: "lobby".into(),
                seq: id + 10,
            },
        }
    }

    #[test]
    fn every_id_gets_an_answer() {
        let mut window = IdWindow::default();
        let hello = fingerprint("lobby", false, false, "hello");
        assert_eq!(
            window.check(0, hello),
            IdCheck::Refused(ErrorCode::IdInvalid)
        );
        assert_eq!(
            window.check(MESSAGE_ID_MAX + 1, hello),
            IdCheck::Refused(ErrorCode::IdInvalid)
        );
        assert_eq!(window.check(5, hello), IdCheck::Fresh);
        window.record(accepted(5, "hello"), 2);
        assert!(matches!(
            window.check(5, hello),
            IdCheck::Retry(IdOutcome::Room { seq: 15, .. })
        ));
        let other = fingerprint("lobby", false, false, "other");
        assert_eq!(
            window.check(5, other),
            IdCheck::Refused(ErrorCode::IdConflict)
        );
        assert_eq!(
            window.check(3, other),
            IdCheck::Refused(ErrorCode::IdStale),
            "never used"
        );
        window.record(accepted(6, "b"), 2);
        window.record(accepted(7, "c"), 2);
        assert_eq!(
            window.check(5, hello),
            IdCheck::Refused(ErrorCode::IdStale),
            "forgotten"
        );
        window.check_invariants(2);
    }

    #[test]
    fn fingerprints_tell_targets_and_kinds_apart() {
        let room = fingerprint("ann", false, false, "hi");
        assert_ne!(room, fingerprint("ann", true, false, "hi"));
        assert_ne!(room, fingerprint("ann", false, true, "hi"));
        assert_ne!(room, fingerprint("an", false, false, "nhi"));
    }
}
