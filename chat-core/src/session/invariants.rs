//! The client state machine's invariants, checked after every input in
//! debug and simulation builds, as the server's are (release builds skip
//! them).
//!
//! They say what the rest of the session's code relies on without checking:
//! the outbox of unacknowledged messages is bounded and in id order, every
//! message typed is counted once (acknowledged, reported or still waiting),
//! and a session that is over holds nothing that could still be sent.

use super::{Session, SessionPhase};
use crate::session::rooms::RoomStatus;

impl Session {
    /// Panics if any invariant is broken.
    pub fn check_invariants(&self) {
        assert!(self.next_id >= 1, "ids start at 1");
        assert!(
            self.unacked.len() <= self.config.unacked_max,
            "the outbox holds at most unacked_max messages"
        );
        let mut previous = 0;
        for pending in &self.unacked {
            assert!(pending.id > previous, "the outbox is in id order");
            assert!(pending.id < self.next_id, "an outbox id was given out");
            previous = pending.id;
        }
        let given_out = usize::try_from(self.next_id - 1).unwrap_or(usize::MAX);
        let counted = self.tally.delivered + self.tally.unconfirmed + self.unacked.len();
        assert!(
            counted <= given_out,
            "no message is counted twice ({counted} counted, {given_out} ids given out)"
        );
        assert!(
            self.ticket.is_none() || self.nick.is_some(),
            "a welcomed session knows its nickname"
        );
        match self.phase {
            SessionPhase::Online | SessionPhase::Leaving => {
                assert!(self.ticket.is_some(), "an online session was welcomed");
            }
            SessionPhase::Done => {
                assert!(
                    self.unacked.is_empty(),
                    "an ended session has reported its outbox"
                );
            }
            _ => {}
        }
        for (room, view) in &self.rooms {
            assert!(
                !(view.status == RoomStatus::Joining && view.last_seq > 0),
                "nothing of {room} is shown before its join is answered"
            );
        }
    }
}
