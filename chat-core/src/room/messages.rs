//! Room and private messages: ids, acks, events.
//!
//! Every message gets exactly one answer: an ack with its event's number,
//! or an error naming its id. The event comes before the ack, so a client
//! that has its ack has also seen its own message. A private message is an
//! event of two private streams, the recipient's and the sender's, and only
//! their two connections are ever sent it.

use std::sync::Arc;

use super::ids::{self, IdCheck, IdOutcome, UsedId};
use super::output::{ConnectionId, MemberId, RoomId};
use super::state::Change;
use super::stream::{FrameLine, Kept, StreamKey};
use super::{Refusal, Rooms};
use crate::protocol::{self, ErrorCode, MESSAGE_ID_MAX, ServerFrame, encode, name_key};

/// Why a message id is refused, for people.
fn id_refusal(code: ErrorCode, id: u64) -> Refusal {
    let message = match code {
        ErrorCode::IdInvalid => format!("message id {id} is out of range (1 to {MESSAGE_ID_MAX})"),
        ErrorCode::IdConflict => format!("message id {id} was used for a different message"),
        ErrorCode::IdStale => format!(
            "message id {id} is not above your last one and is not a retry this server remembers"
        ),
        other => format!("message {id} refused ({other})"),
    };
    Refusal::new(code, message).about_id(id)
}

impl Rooms {
    /// Checks a message's id: true if it is a new message to handle;
    /// otherwise it has been answered (a retry acked again, or refused).
    fn fresh_id(
        &mut self,
        connection: ConnectionId,
        member: MemberId,
        id: u64,
        fingerprint: u64,
    ) -> bool {
        match self.state.member(member).ids.check(id, fingerprint) {
            IdCheck::Fresh => true,
            IdCheck::Refused(code) => {
                self.refuse_request(connection, id_refusal(code, id));
                false
            }
            IdCheck::Retry(outcome) => {
                self.stats.dedup_hits += 1;
                self.answer_again(connection, id, outcome);
                false
            }
        }
    }

    /// A retry gets the answer the message got the first time.
    fn answer_again(&mut self, connection: ConnectionId, id: u64, outcome: IdOutcome) {
        let frame = match outcome {
            IdOutcome::Room { room, seq } => ServerFrame::Ack {
                id,
                seq,
                room: Some(room.to_string()),
                to: None,
            },
            IdOutcome::Private { to, seq } => ServerFrame::Ack {
                id,
                seq,
                room: None,
                to: Some(to.to_string()),
            },
            IdOutcome::Refused { code } => {
                return self.refuse_request(connection, id_refusal(code, id));
            }
        };
        self.send(connection, &frame);
    }

    /// Records a fresh id's refusal, and tells the client.
    fn refuse_message(
        &mut self,
        connection: ConnectionId,
        member: MemberId,
        used: (u64, u64),
        refusal: Refusal,
    ) {
        let (id, fingerprint) = used;
        let code = refusal.code;
        self.commit(Change::IdUsed {
            member,
            used: UsedId {
                id,
                fingerprint,
                outcome: IdOutcome::Refused { code },
            },
        });
        self.refuse_request(connection, refusal.about_id(id));
    }

    pub(super) fn handle_send(
        &mut self,
        connection: ConnectionId,
        member: MemberId,
        room_name: &str,
        id: u64,
        text: String,
        action: bool,
    ) {
        let fingerprint = ids::fingerprint(room_name, false, action, &text);
        if !self.fresh_id(connection, member, id, fingerprint) {
            return;
        }
        let joined = self
            .state
            .room_named(room_name)
            .filter(|room| self.state.member(member).rooms.contains_key(room));
        let Some(room) = joined else {
            let refusal = Refusal::new(ErrorCode::NotInRoom, format!("you are not in {room_name}"));
            return self.refuse_message(
                connection,
                member,
                (id, fingerprint),
                refusal.about_room(room_name),
            );
        };
        if let Err(error) = protocol::validate_text(&text, self.config.text_bytes_max) {
            let refusal = Refusal::new(ErrorCode::TextInvalid, error.to_string());
            return self.refuse_message(connection, member, (id, fingerprint), refusal);
        }
        self.accept_message(connection, member, room, (id, fingerprint), text, action);
    }

    fn accept_message(
        &mut self,
        connection: ConnectionId,
        member: MemberId,
        room: RoomId,
        used: (u64, u64),
        text: String,
        action: bool,
    ) {
        let (id, fingerprint) = used;
        let state = self.state.room(room);
        let (name, seq) = (state.name.clone(), state.stream.next_seq());
        self.commit(Change::IdUsed {
            member,
            used: UsedId {
                id,
                fingerprint,
                outcome: IdOutcome::Room {
                    room: name.clone(),
                    seq,
                },
            },
        });
        let event = ServerFrame::Message {
            room: name.to_string(),
            seq,
            nick: self.state.member(member).nick.clone(),
            text,
            action,
        };
        self.broadcast(room, &event, true);
        self.stats.messages += 1;
        let ack = ServerFrame::Ack {
            id,
            seq,
            room: Some(name.to_string()),
            to: None,
        };
        self.send(connection, &ack);
    }

    pub(super) fn handle_private(
        &mut self,
        connection: ConnectionId,
        member: MemberId,
        to: &str,
        id: u64,
        text: String,
        action: bool,
    ) {
        let fingerprint = ids::fingerprint(to, true, action, &text);
        if !self.fresh_id(connection, member, id, fingerprint) {
            return;
        }
        let [case_key, ..] = name_key(to);
        let Some(recipient) = self.state.nicks.get(&case_key).copied() else {
            let refusal =
                Refusal::new(ErrorCode::NoSuchNick, format!("nobody here is called {to}"));
            return self.refuse_message(connection, member, (id, fingerprint), refusal);
        };
        if let Err(error) = protocol::validate_text(&text, self.config.text_bytes_max) {
            let refusal = Refusal::new(ErrorCode::TextInvalid, error.to_string());
            return self.refuse_message(connection, member, (id, fingerprint), refusal);
        }
        let from = self.state.member(member).nick.clone();
        let to: Arc<str> = self.state.member(recipient).nick.as_str().into();
        let copy = |rooms: &mut Rooms, owner: MemberId| {
            let seq = rooms.state.member(owner).private.next_seq();
            let frame = encode(&ServerFrame::Private {
                seq,
                from: from.clone(),
                to: to.to_string(),
                text: text.clone(),
                action,
                sent: owner == member,
            });
            rooms.commit(Change::Appended {
                stream: StreamKey::Private(owner),
                event: Kept {
                    seq,
                    message: true,
                    frame: FrameLine(frame.clone()),
                },
            });
            let connection = rooms.state.member(owner).connection;
            rooms.journal.push(super::Action::Private {
                owner,
                connection,
                frame: frame.clone(),
            });
            (seq, frame)
        };
        let (recipient_seq, recipient_frame) = copy(self, recipient);
        let sender_seq = if recipient == member {
            recipient_seq
        } else {
            copy(self, member).0
        };
        if planted!(PrivateToThird) {
            self.leak_private(member, recipient, recipient_frame);
        }
        self.commit(Change::IdUsed {
            member,
            used: UsedId {
                id,
                fingerprint,
                outcome: IdOutcome::Private {
                    to: to.clone(),
                    seq: sender_seq,
                },
            },
        });
        self.stats.private_messages += 1;
        let ack = ServerFrame::Ack {
            id,
            seq: sender_seq,
            room: None,
            to: Some(to.to_string()),
        };
        self.send(connection, &ack);
    }

    /// The planted bug `PrivateToThird`: a private message is also sent to
    /// some other attached member.
    fn leak_private(&mut self, sender: MemberId, recipient: MemberId, frame: bytes::Bytes) {
        let third = self
            .state
            .members
            .iter()
            .find(|(id, state)| **id != sender && **id != recipient && state.connection.is_some())
            .and_then(|(_, state)| state.connection);
        if let Some(third) = third {
            self.journal.push(super::Action::Send { to: third, frame });
        }
    }
}
