//! Gathering a room's consecutive broadcasts into one shared buffer.
//!
//! Handling one busy sender's batch of frames makes the state machine
//! broadcast many events to the same room in a row. Pushing each event to
//! each recipient costs a queue lock and a reference count per event and per
//! recipient; a [`Run`] instead copies the events into one buffer, and each
//! recipient gets that buffer (or slices of it) in one push. Frames for single
//! connections that arrive in between (a sender's acks) are slotted in at
//! their place, so every connection sees exactly the order the state machine
//! produced.

use bytes::{Bytes, BytesMut};

use crate::room::{ConnectionId, Recipients};

/// Consecutive broadcasts to the same recipients, and the frames for single
/// recipients that came between them.
#[derive(Debug)]
pub(crate) struct Run {
    recipients: Recipients,
    /// The run's only frame, until a second one comes (no copy is made for a
    /// single broadcast).
    first: Bytes,
    /// All the run's frames, once there are two or more.
    frames: BytesMut,
    /// Frames for single members: the member, and how many bytes of the run
    /// came before the frame.
    interleaved: Vec<(ConnectionId, usize, Bytes)>,
}

impl Run {
    /// A run that starts with `frame`, broadcast to `recipients`.
    pub(crate) fn new(recipients: Recipients, frame: Bytes) -> Self {
        Self {
            recipients,
            first: frame,
            frames: BytesMut::new(),
            interleaved: Vec::new(),
        }
    }

    /// Who the run goes to.
    pub(crate) fn recipients(&self) -> &Recipients {
        &self.recipients
    }

    fn len(&self) -> usize {
        if self.frames.is_empty() {
            self.first.len()
        } else {
            self.frames.len()
        }
    }

    /// Adds the next broadcast to the same recipients.
    pub(crate) fn extend(&mut self, frame: &Bytes) {
        if self.frames.is_empty() {
            self.frames.reserve(4 * (self.first.len() + frame.len()));
            self.frames.extend_from_slice(&self.first);
        }
        self.frames.extend_from_slice(frame);
    }

    /// Adds a frame for one of the run's recipients, after what the run
    /// holds so far.
    pub(crate) fn interleave(&mut self, to: ConnectionId, frame: Bytes) {
        let at = self.len();
        self.interleaved.push((to, at, frame));
    }

    /// Hands each recipient its frames, in order: `deliver` is called with
    /// one or more pieces per recipient.
    pub(crate) fn finish(mut self, mut deliver: impl FnMut(ConnectionId, Bytes)) {
        let all = if self.frames.is_empty() {
            self.first
        } else {
            self.frames.freeze()
        };
        // Stable: each member's frames stay in the order they came.
        self.interleaved.sort_by_key(|(to, _, _)| *to);
        let mut interleaved = self.interleaved.into_iter().peekable();
        for to in self.recipients.iter() {
            let mut done = 0;
            while let Some((_, at, frame)) = interleaved.next_if(|(member, _, _)| *member == to) {
                if at > done {
                    deliver(to, all.slice(done..at));
                    done = at;
                }
                deliver(to, frame);
            }
            if done < all.len() {
                deliver(to, all.slice(done..));
            }
        }
        assert!(
            interleaved.next().is_none(),
            "frames interleaved in a run go to its recipients"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(text: &str) -> Bytes {
        Bytes::copy_from_slice(text.as_bytes())
    }

    fn to(ids: &[u64]) -> Recipients {
        Recipients(ids.iter().map(|&id| ConnectionId(id)).collect())
    }

    /// What each recipient is handed, piece by piece; never an empty piece
    /// (it would cost a queue push and a write for nothing).
    fn deliveries(run: Run) -> Vec<(u64, String)> {
        let mut delivered = Vec::new();
        run.finish(|to, piece| {
            assert!(!piece.is_empty(), "an empty piece for {to:?}");
            delivered.push((to.0, String::from_utf8_lossy(&piece).into_owned()))
        });
        delivered
    }

    #[test]
    fn a_single_broadcast_is_shared_without_copying() {
        let frame = bytes("e1\n");
        let run = Run::new(to(&[1, 2]), frame.clone());
        let mut pieces = Vec::new();
        run.finish(|_, piece| pieces.push(piece));
        assert_eq!(pieces.len(), 2);
        assert!(pieces.iter().all(|piece| piece.as_ptr() == frame.as_ptr()));
    }

    #[test]
    fn each_recipient_gets_the_whole_run_in_one_piece() {
        let mut run = Run::new(to(&[1, 2]), bytes("e1\n"));
        run.extend(&bytes("e2\n"));
        run.extend(&bytes("e3\n"));
        assert_eq!(
            deliveries(run),
            vec![
                (1, "e1\ne2\ne3\n".to_owned()),
                (2, "e1\ne2\ne3\n".to_owned())
            ]
        );
    }

    #[test]
    fn frames_for_one_member_keep_their_place_between_broadcasts() {
        let mut run = Run::new(to(&[1, 2, 3]), bytes("e1\n"));
        run.interleave(ConnectionId(2), bytes("ack1\n"));
        run.extend(&bytes("e2\n"));
        run.interleave(ConnectionId(2), bytes("ack2\n"));
        run.interleave(ConnectionId(1), bytes("x\n"));
        run.extend(&bytes("e3\n"));
        assert_eq!(
            deliveries(run),
            vec![
                (1, "e1\ne2\n".to_owned()),
                (1, "x\n".to_owned()),
                (1, "e3\n".to_owned()),
                (2, "e1\n".to_owned()),
                (2, "ack1\n".to_owned()),
                (2, "e2\n".to_owned()),
                (2, "ack2\n".to_owned()),
                (2, "e3\n".to_owned()),
                (3, "e1\ne2\ne3\n".to_owned()),
            ]
        );
    }

    #[test]
    fn a_frame_after_the_last_broadcast_ends_its_member_s_pieces() {
        let mut run = Run::new(to(&[1, 2]), bytes("e1\n"));
        run.extend(&bytes("e2\n"));
        run.interleave(ConnectionId(1), bytes("ack\n"));
        assert_eq!(
            deliveries(run),
            vec![
                (1, "e1\ne2\n".to_owned()),
                (1, "ack\n".to_owned()),
                (2, "e1\ne2\n".to_owned()),
            ]
        );
    }

    #[test]
    fn two_frames_for_one_member_in_a_row_come_in_order_with_nothing_between() {
        let mut run = Run::new(to(&[1, 2]), bytes("e1\n"));
        run.interleave(ConnectionId(1), bytes("ack1\n"));
        run.interleave(ConnectionId(1), bytes("ack2\n"));
        run.extend(&bytes("e2\n"));
        assert_eq!(
            deliveries(run),
            vec![
                (1, "e1\n".to_owned()),
                (1, "ack1\n".to_owned()),
                (1, "ack2\n".to_owned()),
                (1, "e2\n".to_owned()),
                (2, "e1\ne2\n".to_owned()),
            ]
        );
    }

    #[test]
    #[should_panic(expected = "go to its recipients")]
    fn a_frame_for_a_non_recipient_is_a_bug() {
        let mut run = Run::new(to(&[1, 2]), bytes("e1\n"));
        run.interleave(ConnectionId(9), bytes("ack\n"));
        deliveries(run);
    }
}
