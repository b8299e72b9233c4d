//! The rooms a user is in, and the events of each room and of the private
//! stream: shown once each, in order, with every skip announced.

use std::time::Duration;

use super::{Line, Session};
use crate::protocol::{ClientFrame, RoomStart, Seq, ServerFrame, name_key};

/// Where a room is for this session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RoomStatus {
    /// A join was sent; no answer yet.
    Joining,
    /// The server said our join is event `join_seq`; not shown yet.
    Entered {
        /// Our own `joined` event.
        join_seq: Seq,
    },
    /// In the room.
    In,
    /// A leave was sent; no answer yet.
    Parting,
}

/// One room as this session knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct RoomView {
    pub status: RoomStatus,
    /// The last event shown.
    pub last_seq: Seq,
    /// History frames still to come after the join's answer.
    pub history_left: u64,
    /// Typed lines go here once the user is in.
    pub switch_to: bool,
}

impl RoomView {
    pub(super) fn new(status: RoomStatus) -> Self {
        Self {
            status,
            last_seq: 0,
            history_left: 0,
            switch_to: false,
        }
    }

    /// A join that has not been shown yet.
    pub(super) fn is_joining(&self) -> bool {
        matches!(
            self.status,
            RoomStatus::Joining | RoomStatus::Entered { .. }
        )
    }
}

impl Session {
    /// The name under which this session knows the room `name` (room names
    /// are matched ignoring case, as the server does).
    pub(super) fn find_room(&self, name: &str) -> Option<String> {
        if self.rooms.contains_key(name) {
            return Some(name.to_owned());
        }
        let [key, ..] = name_key(name);
        self.rooms
            .keys()
            .find(|known| name_key(known)[0] == key)
            .cloned()
    }

    /// Whether a room's event is shown with the room's name: it is not
    /// the current room (before there is one, nothing is tagged).
    fn tagged(&self, room: &str) -> bool {
        self.current
            .as_deref()
            .is_some_and(|current| current != room)
    }

    pub(super) fn handle_stream_frame(&mut self, frame: ServerFrame, now: Duration) {
        match frame {
            ServerFrame::Entered { room, seq, history } => self.entered(room, seq, history),
            ServerFrame::History {
                room,
                seq,
                nick,
                text,
                action,
            } => {
                self.history(
                    &room,
                    Line::History {
                        room: room.clone(),
                        nick,
                        text,
                        action,
                        seq,
                    },
                );
            }
            ServerFrame::Parted { room } => self.parted(&room),
            ServerFrame::Joined { room, seq, nick } => {
                let tagged = self.tagged(&room);
                self.room_event(
                    Line::Joined {
                        room,
                        nick,
                        seq,
                        tagged,
                    },
                    now,
                );
            }
            ServerFrame::Left { room, seq, nick } => {
                let tagged = self.tagged(&room);
                self.room_event(
                    Line::Left {
                        room,
                        nick,
                        seq,
                        tagged,
                    },
                    now,
                );
            }
            ServerFrame::Message {
                room,
                seq,
                nick,
                text,
                action,
            } => {
                let tagged = self.tagged(&room);
                self.room_event(
                    Line::Message {
                        room,
                        nick,
                        text,
                        action,
                        seq,
                        tagged,
                    },
                    now,
                );
            }
            ServerFrame::Renamed {
                room,
                seq,
                from,
                to,
            } => {
                let tagged = self.tagged(&room);
                self.room_event(
                    Line::Renamed {
                        room,
                        from,
                        to,
                        seq,
                        tagged,
                    },
                    now,
                );
            }
            ServerFrame::Private {
                seq,
                from,
                to,
                text,
                action,
                sent,
            } => {
                self.private_event(Line::Private {
                    outgoing: sent,
                    seq,
                    from,
                    to,
                    text,
                    action,
                });
            }
            ServerFrame::Gap { room, from, to } => self.gap(room, from, to, now),
            ServerFrame::NickChanged { nick } => {
                self.nick = Some(nick.clone());
                self.show(Line::NickChanged(nick));
            }
            ServerFrame::RoomList { rooms, total } => self.show(Line::RoomList { rooms, total }),
            ServerFrame::Members { room, nicks, total } => {
                self.show(Line::Members { room, nicks, total })
            }
            ServerFrame::Welcome { .. }
            | ServerFrame::Heartbeat
            | ServerFrame::Bye
            | ServerFrame::Shutdown
            | ServerFrame::Ack { .. }
            | ServerFrame::Error { .. } => unreachable!("handled by handle_frame"),
        }
    }

    /// The answer to our join: our join is event `seq`, `history` recent
    /// messages come first.
    fn entered(&mut self, room: String, seq: Seq, history: u64) {
        let view = self
            .find_room(&room)
            .and_then(|known| self.rooms.remove(&known));
        let mut view = view.unwrap_or_else(|| RoomView::new(RoomStatus::Joining));
        view.status = RoomStatus::Entered { join_seq: seq };
        view.last_seq = seq.saturating_sub(1);
        view.history_left = history;
        self.rooms.insert(room.clone(), view);
        if history > 0 {
            self.show(Line::HistoryStart {
                room,
                count: history,
            });
        }
    }

    fn history(&mut self, room: &str, line: Line) {
        let Some(view) = self
            .find_room(room)
            .and_then(|known| self.rooms.get_mut(&known))
        else {
            return;
        };
        if view.history_left == 0 {
            return;
        }
        view.history_left -= 1;
        let done = view.history_left == 0;
        self.show(line);
        if done {
            self.show(Line::HistoryEnd {
                room: room.to_owned(),
            });
        }
    }

    fn parted(&mut self, room: &str) {
        let Some(known) = self.find_room(room) else {
            return;
        };
        self.rooms.remove(&known);
        self.show(Line::Parted(known.clone()));
        if self.current.as_deref() == Some(known.as_str()) {
            self.current = self.other_room(&known);
            if let Some(current) = self.current.clone() {
                self.show(Line::Talking(current));
            }
        }
        self.update_prompt();
    }

    /// A room the user is in (or joining: lines typed follow the join on
    /// the connection), other than `room`, to talk in instead.
    pub(super) fn other_room(&self, room: &str) -> Option<String> {
        self.rooms
            .iter()
            .find(|(name, view)| name.as_str() != room && view.status != RoomStatus::Parting)
            .map(|(name, _)| name.clone())
    }

    /// A room event: shown once, in order, after a gap notice if some were
    /// skipped without one.
    fn room_event(&mut self, line: Line, now: Duration) {
        let (Line::Joined { room, seq, .. }
        | Line::Left { room, seq, .. }
        | Line::Message { room, seq, .. }
        | Line::Renamed { room, seq, .. }) = &line
        else {
            unreachable!("only room events are handled here");
        };
        let (seq, room) = (*seq, room.clone());
        let Some(known) = self.find_room(&room) else {
            return; // A room we left; its last events may still arrive.
        };
        let view = self.rooms.get_mut(&known).expect("found above");
        if seq <= view.last_seq {
            return; // Already shown (a replay overlapping what we saw).
        }
        let skipped = seq - view.last_seq - 1;
        view.last_seq = seq;
        if skipped > 0 {
            // The server promises a gap notice first; show one regardless.
            self.show(Line::Gap {
                room: Some(known.clone()),
                count: skipped,
            });
        }
        self.show(line);
        self.passed_own_join(&known, now);
    }

    /// Once the events shown (or skipped by a gap) reach our own join, the
    /// user is in the room.
    fn passed_own_join(&mut self, room: &str, now: Duration) {
        let Some(view) = self.rooms.get_mut(room) else {
            return;
        };
        let RoomStatus::Entered { join_seq } = view.status else {
            return;
        };
        if view.last_seq < join_seq {
            return;
        }
        view.status = RoomStatus::In;
        let switch = std::mem::take(&mut view.switch_to) || self.current.is_none();
        let first = !self.first_join_shown;
        self.first_join_shown = true;
        self.show(Line::YouAreIn {
            room: room.to_owned(),
            first,
        });
        if switch {
            self.current = Some(room.to_owned());
        }
        self.update_prompt();
        self.leave_when_done(now);
    }

    fn private_event(&mut self, line: Line) {
        let Line::Private { seq, .. } = line else {
            unreachable!("only private events are handled here");
        };
        if seq <= self.private_seq {
            return;
        }
        let skipped = seq - self.private_seq - 1;
        self.private_seq = seq;
        if skipped > 0 {
            self.show(Line::Gap {
                room: None,
                count: skipped,
            });
        }
        self.show(line);
    }

    fn gap(&mut self, room: Option<String>, from: Seq, to: Seq, now: Duration) {
        let Some(room) = room else {
            let first_missing = from.max(self.private_seq + 1);
            if to >= first_missing {
                self.show(Line::Gap {
                    room: None,
                    count: to - first_missing + 1,
                });
                self.private_seq = to;
            }
            return;
        };
        let Some(known) = self.find_room(&room) else {
            return;
        };
        let view = self.rooms.get_mut(&known).expect("found above");
        let first_missing = from.max(view.last_seq + 1);
        if to >= first_missing {
            view.last_seq = to;
            self.show(Line::Gap {
                room: Some(known.clone()),
                count: to - first_missing + 1,
            });
            self.passed_own_join(&known, now);
        }
    }

    /// Per room: the last event shown, for a resume. Rooms still being
    /// joined are left out: the server tells where their events start.
    pub(super) fn resume_points(&self) -> std::collections::BTreeMap<String, Seq> {
        self.rooms
            .iter()
            .filter(|(_, view)| view.status != RoomStatus::Joining)
            .map(|(room, view)| (room.clone(), view.last_seq))
            .collect()
    }

    /// After a resume, the server's list of our rooms is the truth: a join
    /// it did not get is sent again, a leave it did is done.
    pub(super) fn reconcile_rooms(&mut self, starts: Vec<RoomStart>, now: Duration) {
        let mut known = std::mem::take(&mut self.rooms);
        for start in starts {
            let view = match self.find_in(&known, &start.room) {
                Some(name) => known.remove(&name),
                None => None,
            };
            let mut view = view.unwrap_or_else(|| RoomView::new(RoomStatus::In));
            view.status = match view.status {
                RoomStatus::Joining => RoomStatus::Entered {
                    join_seq: start.last_seq + 1,
                },
                RoomStatus::Parting => {
                    self.send(
                        ClientFrame::Leave {
                            room: start.room.clone(),
                        },
                        now,
                    );
                    RoomStatus::Parting
                }
                other => other,
            };
            view.last_seq = start.last_seq;
            self.rooms.insert(start.room, view);
        }
        for (room, view) in known {
            match view.status {
                RoomStatus::Joining => {
                    self.send(ClientFrame::Join { room: room.clone() }, now);
                    self.rooms.insert(room, view);
                }
                _ => self.show(Line::Parted(room)),
            }
        }
        if self
            .current
            .as_ref()
            .is_none_or(|current| !self.rooms.contains_key(current))
        {
            self.current = self.rooms.keys().next().cloned();
        }
    }

    fn find_in(
        &self,
        rooms: &std::collections::BTreeMap<String, RoomView>,
        name: &str,
    ) -> Option<String> {
        let [key, ..] = name_key(name);
        rooms
            .keys()
            .find(|known| name_key(known)[0] == key)
            .cloned()
    }

    /// A fresh session (the first, or after the server forgot ours) joins
    /// the rooms: the configured one at first, those it was in after.
    pub(super) fn join_afresh(&mut self, now: Duration) {
        if self.rooms.is_empty() {
            let mut view = RoomView::new(RoomStatus::Joining);
            view.switch_to = true;
            self.rooms.insert(self.config.room.clone(), view);
        }
        let rooms: Vec<String> = self.rooms.keys().cloned().collect();
        for room in rooms {
            self.send(ClientFrame::Join { room }, now);
        }
    }

    /// A join, leave or who was refused.
    ///
    /// A refused join that had switched typed lines to its room switches
    /// them back, and says so: the line being edited still shows the prompt
    /// of the room it did not get into.
    pub(super) fn room_request_refused(&mut self, room: &str, message: String, now: Duration) {
        let mut switched_back = false;
        if let Some(known) = self.find_room(room) {
            let view = self.rooms.get_mut(&known).expect("found above");
            match view.status {
                RoomStatus::Joining => {
                    self.rooms.remove(&known);
                    if self.current.as_deref() == Some(known.as_str()) {
                        self.current = self.other_room(&known);
                        switched_back = true;
                    }
                }
                RoomStatus::Parting => view.status = RoomStatus::In,
                _ => {}
            }
        }
        self.show(Line::ServerError(message));
        if switched_back {
            match self.current.clone() {
                Some(current) => self.show(Line::Talking(current)),
                None => self.show(Line::Hint("You are in no room.".to_owned())),
            }
        }
        self.update_prompt();
        self.leave_when_done(now);
    }
}
