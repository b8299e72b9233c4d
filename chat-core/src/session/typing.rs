//! What typed lines do: messages join the outbox with the next id,
//! commands become requests, and mistakes get a hint instead of being sent.

use std::time::Duration;

use super::rooms::{RoomStatus, RoomView};
use super::{Line, Pending, Session, SessionPhase, Target};
use crate::command::{HELP, Input};
use crate::protocol::{self, ClientFrame};

impl Session {
    pub(super) fn handle_input(&mut self, input: Input, now: Duration) {
        match input {
            Input::Nothing => {}
            Input::Quit => self.on_input_closed(now),
            Input::Help => {
                for line in HELP {
                    self.show(Line::Hint((*line).to_owned()));
                }
            }
            Input::Usage(usage) => self.show(Line::Hint(format!("Usage: {usage}"))),
            Input::Unknown(word) => self.show(Line::Hint(format!(
                "Unknown command {word}: /help lists the commands, and //text sends a line that starts with /."
            ))),
            Input::Say(text) => self.queue_room_message(text, false, now),
            Input::Me(text) => self.queue_room_message(text, true, now),
            Input::Msg { to, text } => self.queue(Target::Private(to), text, false, now),
            Input::Join(room) => self.request_join(room, now),
            Input::Leave(room) => self.request_leave(room, now),
            Input::Rooms => self.request(ClientFrame::ListRooms, now),
            Input::Who(room) => match room.or_else(|| self.current.clone()) {
                Some(room) => {
                    let room = self.find_room(&room).unwrap_or(room);
                    self.request(ClientFrame::Who { room }, now);
                }
                None => self.show(Line::Hint("You are in no room.".to_owned())),
            },
            Input::Nick(nick) => match protocol::validate_nick(&nick) {
                Ok(()) => self.request(ClientFrame::Nick { nick }, now),
                Err(error) => self.show(Line::Hint(format!("Not a nickname: {error}."))),
            },
        }
    }

    fn queue_room_message(&mut self, text: String, action: bool, now: Duration) {
        match self.current.clone() {
            Some(room) => self.queue(Target::Room(room), text, action, now),
            None => {
                self.tally.refused += 1;
                self.show(Line::NotSent(
                    "you are in no room; /join one first".to_owned(),
                ));
            }
        }
    }

    /// A message joins the outbox with the next id, and goes out at once if
    /// the session is online (else after the next welcome).
    fn queue(&mut self, target: Target, text: String, action: bool, now: Duration) {
        if let Err(error) = protocol::validate_text(&text, self.config.text_bytes_max) {
            self.tally.refused += 1;
            return self.show(Line::NotSent(error.to_string()));
        }
        let pending = Pending {
            id: self.next_id,
            target,
            text,
            action,
            sent: self.phase == SessionPhase::Online,
        };
        self.next_id += 1;
        if pending.sent {
            self.send(pending.frame(), now);
        }
        self.unacked.push_back(pending);
    }

    /// Sends a request, if there is a connection to send it on.
    fn request(&mut self, frame: ClientFrame, now: Duration) {
        if self.phase == SessionPhase::Online {
            self.send(frame, now);
        } else {
            self.show(Line::Hint(
                "Not connected right now; try again once reconnected.".to_owned(),
            ));
        }
    }

    fn request_join(&mut self, room: String, now: Duration) {
        if let Err(error) = protocol::validate_room(&room) {
            return self.show(Line::Hint(format!("Not a room name: {error}.")));
        }
        if let Some(known) = self.find_room(&room) {
            let status = self.rooms[&known].status;
            let hint = match status {
                RoomStatus::In if self.current.as_deref() == Some(known.as_str()) => {
                    format!("You are in {known} already.")
                }
                RoomStatus::In => {
                    self.current = Some(known.clone());
                    self.show(Line::Talking(known));
                    return self.update_prompt();
                }
                _ => format!("Still waiting for the server about {known}."),
            };
            return self.show(Line::Hint(hint));
        }
        if self.phase != SessionPhase::Online {
            return self.request(ClientFrame::Join { room }, now);
        }
        let mut view = RoomView::new(RoomStatus::Joining);
        view.switch_to = true;
        self.rooms.insert(room.clone(), view);
        // Lines typed from now on go to the new room (they follow the join
        // on the connection, so the server has it by then).
        self.current = Some(room.clone());
        self.update_prompt();
        self.send(ClientFrame::Join { room }, now);
    }

    fn request_leave(&mut self, room: Option<String>, now: Duration) {
        let Some(room) = room.or_else(|| self.current.clone()) else {
            return self.show(Line::Hint("You are in no room.".to_owned()));
        };
        let Some(known) = self.find_room(&room) else {
            return self.show(Line::Hint(format!("You are not in {room}.")));
        };
        if self.phase != SessionPhase::Online {
            return self.request(ClientFrame::Leave { room: known }, now);
        }
        if let Some(view) = self.rooms.get_mut(&known) {
            view.status = RoomStatus::Parting;
        }
        if self.current.as_deref() == Some(known.as_str()) {
            self.current = self.other_room(&known);
            if let Some(current) = self.current.clone() {
                self.show(Line::Talking(current));
            }
            self.update_prompt();
        }
        self.send(ClientFrame::Leave { room: known }, now);
    }

    pub(super) fn handle_ack(&mut self, id: u64, now: Duration) {
        if let Some(position) = self.unacked.iter().position(|pending| pending.id == id) {
            // Acks come in order; anything older was answered already.
            self.tally.delivered += position + 1;
            self.unacked.drain(..=position);
        }
        self.leave_when_done(now);
    }

    /// The server refused one message: the user is told, and it is not
    /// sent again.
    pub(super) fn message_refused(&mut self, id: u64, message: String, now: Duration) {
        if let Some(position) = self.unacked.iter().position(|pending| pending.id == id) {
            self.unacked.remove(position);
            self.tally.refused += 1;
            self.show(Line::NotSent(message));
        }
        self.leave_when_done(now);
    }

    /// Tells the user about messages never acknowledged, and forgets them.
    pub(super) fn report_unacked(&mut self) {
        let unacked = self.unacked.len();
        if unacked > 0 {
            self.show(Line::Undelivered(unacked));
            self.tally.unconfirmed += unacked;
            self.unacked.clear();
        }
    }

    /// On a rejoin: messages that went out may have reached the room, and
    /// sending them again could duplicate them, so they are reported and
    /// forgotten; those never sent are kept, to go out on the new session.
    pub(super) fn report_sent_unacked(&mut self) {
        let before = self.unacked.len();
        self.unacked.retain(|pending| !pending.sent);
        let dropped = before - self.unacked.len();
        if dropped > 0 {
            self.show(Line::Undelivered(dropped));
            self.tally.unconfirmed += dropped;
        }
    }
}
