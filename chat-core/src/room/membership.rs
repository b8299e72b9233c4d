//! Rooms and nicknames: joining, leaving, renaming, listing, and the end of
//! a session.
//!
//! A broadcast's recipients are fixed when its event is emitted: a member
//! who leaves right after speaking still gets its own message, and one who
//! joins gets nothing from before its own join but the recent history it is
//! shown, marked as such. A room is freed when its last member leaves,
//! unless its history holds messages a later member would be shown; such an
//! empty room is freed as soon as the room limit needs its place, so that
//! rooms visited once never lock new rooms out.

use std::time::Duration;

use super::output::{Action, CloseReason, ConnectionId, MemberId, Notice, RoomId};
use super::state::Change;
use super::stream::{FrameLine, Kept, StreamKey};
use super::{Refusal, Rooms};
use crate::protocol::{self, ErrorCode, RoomCount, ServerFrame, encode, name_key};

/// Most rooms listed in one `room_list` frame (the largest first), and most
/// nicknames in one `members` frame: either must fit in a frame even when
/// every name is 32 four-byte characters (128 bytes; 200 such nicknames
/// made a 26 KB frame that clients refuse as too large).
pub const LISTED_MAX: usize = 90;

impl Rooms {
    /// Appends an event to a room's stream and broadcasts it to the room's
    /// connections as they are now.
    pub(super) fn broadcast(&mut self, room: RoomId, event: &ServerFrame, message: bool) {
        let seq = event.event_seq().expect("only events are broadcast");
        let frame = encode(event);
        self.commit(Change::Appended {
            stream: StreamKey::Room(room),
            event: Kept {
                seq,
                message,
                frame: FrameLine(frame.clone()),
            },
        });
        let recipients = self.state.room_mut(room).recipients();
        self.journal.push(Action::Broadcast {
            room,
            recipients,
            frame,
        });
    }

    /// The room a member names, if the member is in it.
    fn joined_room(&self, member: MemberId, name: &str) -> Option<RoomId> {
        let room = self.state.room_named(name)?;
        self.state
            .member(member)
            .rooms
            .contains_key(&room)
            .then_some(room)
    }

    pub(super) fn handle_join(&mut self, connection: ConnectionId, member: MemberId, name: String) {
        let refuse = |code, message: String| Refusal::new(code, message).about_room(&name);
        let refusal = if let Err(error) = protocol::validate_room(&name) {
            Some(refuse(ErrorCode::RoomInvalid, error.to_string()))
        } else if self.joined_room(member, &name).is_some() {
            Some(refuse(
                ErrorCode::AlreadyInRoom,
                format!("you are in {name} already"),
            ))
        } else if self.state.member(member).rooms.len() >= self.config.rooms_per_session_max {
            let limit = self.config.rooms_per_session_max;
            Some(refuse(
                ErrorCode::RoomLimit,
                format!("you are in {limit} rooms, as many as one may be"),
            ))
        } else {
            None
        };
        if let Some(refusal) = refusal {
            return self.refuse_request(connection, refusal);
        }
        match self.room_for_join(&name) {
            Ok(room) => self.enter(connection, member, room),
            Err(refusal) => self.refuse_request(connection, refusal.about_room(&name)),
        }
    }

    /// The room a join enters, created if nobody is in one of that name.
    fn room_for_join(&mut self, name: &str) -> Result<RoomId, Refusal> {
        if let Some(room) = self.state.room_named(name) {
            let existing = self.state.room(room);
            if name_key(&existing.name)[0] != name_key(name)[0] {
                let message = format!("{name} looks like the existing room {}", existing.name);
                return Err(Refusal::new(ErrorCode::RoomInvalid, message));
            }
            if existing.members.len() >= self.config.room_members_max {
                let message = format!(
                    "{} has {} members, as many as it allows",
                    existing.name,
                    existing.members.len()
                );
                return Err(Refusal::new(ErrorCode::RoomFull, message));
            }
            return Ok(room);
        }
        if self.state.rooms.len() >= self.config.rooms_max && !self.free_an_empty_room() {
            let message = format!(
                "the server has {} rooms, as many as it allows",
                self.config.rooms_max
            );
            return Err(Refusal::new(ErrorCode::TooManyRooms, message));
        }
        let room = RoomId(self.state.next_room);
        self.commit(Change::RoomOpened {
            room,
            name: name.to_owned(),
        });
        Ok(room)
    }

    /// A member enters a room: it is told its join's number and shown the
    /// room's recent messages, then everyone (itself included) sees it join.
    fn enter(&mut self, connection: ConnectionId, member: MemberId, room: RoomId) {
        let seq = self.state.room(room).stream.next_seq();
        self.commit(Change::RoomJoined { room, member, seq });
        let name = self.state.room(room).name.to_string();
        let history: Vec<ServerFrame> = self
            .state
            .room(room)
            .stream
            .recent_messages(self.config.history_on_join)
            .into_iter()
            .filter_map(|kept| history_frame(&kept.frame))
            .collect();
        let entered = ServerFrame::Entered {
            room: name.clone(),
            seq,
            history: history.len() as u64,
        };
        self.send(connection, &entered);
        self.stats.history_sent += history.len() as u64;
        if !history.is_empty() {
            // A burst the client asked for: beyond the live queue's limit
            // (history_on_join bounds it), like a resume's replay.
            let frames = history.iter().map(protocol::encode).collect();
            self.journal.push(super::Action::Replay {
                to: connection,
                frames,
            });
        }
        let state = self.state.room_mut(room);
        state.connections.insert(connection);
        state.recipients = None;
        let nick = self.state.member(member).nick.clone();
        self.broadcast(
            room,
            &ServerFrame::Joined {
                room: name,
                seq,
                nick,
            },
            false,
        );
    }

    pub(super) fn handle_leave(&mut self, connection: ConnectionId, member: MemberId, name: &str) {
        let Some(room) = self.joined_room(member, name) else {
            let refusal = Refusal::new(ErrorCode::NotInRoom, format!("you are not in {name}"))
                .about_room(name);
            return self.refuse_request(connection, refusal);
        };
        let name = self.state.room(room).name.to_string();
        self.part(member, room);
        self.send(connection, &ServerFrame::Parted { room: name });
    }

    /// A member leaves a room: the others see it leave, and the room is
    /// freed if it was the last.
    fn part(&mut self, member: MemberId, room: RoomId) {
        if let Some(connection) = self.state.member(member).connection {
            let state = self.state.room_mut(room);
            state.connections.remove(&connection);
            state.recipients = None;
        }
        self.commit(Change::RoomParted { room, member });
        let state = self.state.room(room);
        let event = ServerFrame::Left {
            room: state.name.to_string(),
            seq: state.stream.next_seq(),
            nick: self.state.member(member).nick.clone(),
        };
        self.broadcast(room, &event, false);
        let state = self.state.room(room);
        if state.members.is_empty() && state.stream.recent_messages(1).is_empty() {
            self.commit(Change::RoomClosed { room });
            self.stats.rooms_freed += 1;
        }
    }

    /// Frees the empty room that has been empty longest (the oldest, by
    /// id, among those kept for their history); false if none is empty.
    fn free_an_empty_room(&mut self) -> bool {
        let empty = self
            .state
            .rooms
            .iter()
            .find(|(_, room)| room.members.is_empty())
            .map(|(id, _)| *id);
        let Some(room) = empty else {
            return false;
        };
        self.commit(Change::RoomClosed { room });
        self.stats.rooms_freed += 1;
        true
    }

    /// Ends a member's session: it leaves every room, its nickname is free.
    pub(super) fn end_member(&mut self, member: MemberId) {
        let rooms: Vec<RoomId> = self.state.member(member).rooms.keys().copied().collect();
        for room in rooms {
            self.part(member, room);
            if planted!(DoubleLeave) && self.state.rooms.contains_key(&room) {
                let state = self.state.room(room);
                let event = ServerFrame::Left {
                    room: state.name.to_string(),
                    seq: state.stream.next_seq(),
                    nick: self.state.member(member).nick.clone(),
                };
                self.broadcast(room, &event, false);
            }
        }
        assert!(
            self.state.member(member).connection.is_none(),
            "a member is detached before its session ends"
        );
        let nick = self.state.member(member).nick.clone();
        self.commit(Change::MemberClosed { member });
        self.log(Notice::LeftServer(nick));
    }

    pub(super) fn handle_nick(
        &mut self,
        connection: ConnectionId,
        member: MemberId,
        nick: String,
        now: Duration,
    ) {
        if let Err(error) = protocol::validate_nick(&nick) {
            return self.refuse_request(
                connection,
                Refusal::new(ErrorCode::NickInvalid, error.to_string()),
            );
        }
        let old = self.state.member(member).nick.clone();
        if old == nick {
            return self.send(connection, &ServerFrame::NickChanged { nick });
        }
        if let Some(holder) = self
            .state
            .nick_holder(&nick)
            .filter(|holder| *holder != member)
        {
            let refusal = self.nick_taken_refusal(holder, &nick, now);
            return self.refuse_request(connection, refusal);
        }
        self.commit(Change::MemberRenamed {
            member,
            nick: nick.clone(),
        });
        self.stats.renames += 1;
        let rooms: Vec<RoomId> = self.state.member(member).rooms.keys().copied().collect();
        for (index, room) in rooms.into_iter().enumerate() {
            if index == 1 && planted!(RenameSkipsRoom) {
                continue;
            }
            let state = self.state.room(room);
            let event = ServerFrame::Renamed {
                room: state.name.to_string(),
                seq: state.stream.next_seq(),
                from: old.clone(),
                to: nick.clone(),
            };
            self.broadcast(room, &event, false);
        }
        self.send(connection, &ServerFrame::NickChanged { nick: nick.clone() });
        self.log(Notice::Renamed {
            from: old,
            to: nick,
        });
    }

    pub(super) fn handle_list_rooms(&mut self, connection: ConnectionId) {
        let mut rooms: Vec<RoomCount> = self
            .state
            .rooms
            .values()
            .map(|room| RoomCount {
                room: room.name.to_string(),
                members: room.members.len() as u64,
            })
            .collect();
        rooms.sort_by(|a, b| b.members.cmp(&a.members).then_with(|| a.room.cmp(&b.room)));
        let total = rooms.len() as u64;
        rooms.truncate(LISTED_MAX);
        self.send(connection, &ServerFrame::RoomList { rooms, total });
    }

    pub(super) fn handle_who(&mut self, connection: ConnectionId, member: MemberId, name: &str) {
        let Some(room) = self.joined_room(member, name) else {
            let refusal = Refusal::new(ErrorCode::NotInRoom, format!("you are not in {name}"))
                .about_room(name);
            return self.refuse_request(connection, refusal);
        };
        let state = self.state.room(room);
        let mut nicks: Vec<String> = state
            .members
            .iter()
            .map(|member| self.state.member(*member).nick.clone())
            .collect();
        nicks.sort();
        let total = nicks.len() as u64;
        nicks.truncate(LISTED_MAX);
        let room = state.name.to_string();
        self.send(connection, &ServerFrame::Members { room, nicks, total });
    }

    /// Refuses one request (not fatal): the connection stays.
    pub(super) fn refuse_request(&mut self, connection: ConnectionId, refusal: Refusal) {
        debug_assert!(
            !refusal.code.is_fatal(),
            "a request's refusal leaves the connection open"
        );
        self.log(Notice::Refused {
            connection,
            code: refusal.code,
            message: refusal.message.clone(),
        });
        self.send(connection, &refusal.into_frame());
    }

    /// A connection ended: its member (if any) is detached and waits out
    /// the grace period.
    pub(super) fn close_connection(
        &mut self,
        connection: ConnectionId,
        reason: CloseReason,
        now: Duration,
    ) {
        let Some(state) = self.connections.remove(&connection) else {
            return;
        };
        let from_peer = self
            .per_address
            .get_mut(&state.peer)
            .expect("every connection is counted");
        *from_peer -= 1;
        if *from_peer == 0 {
            self.per_address.remove(&state.peer);
        }
        self.journal.push(Action::Close {
            connection,
            flush: false,
        });
        let nick = state.member().map(|member| {
            self.detach(member, connection, now);
            self.state.member(member).nick.clone()
        });
        match reason {
            CloseReason::QueueOverflow => self.stats.slow_readers_dropped += 1,
            CloseReason::HeartbeatTimeout => self.stats.dead_connections_dropped += 1,
            CloseReason::Evicted | CloseReason::PeerClosed => {}
        }
        if state.is_served() || reason != CloseReason::PeerClosed {
            self.log(Notice::Dropped {
                connection,
                nick,
                reason,
            });
        }
    }
}

/// The history frame for a kept message event.
fn history_frame(frame: &FrameLine) -> Option<ServerFrame> {
    let line = frame.0.strip_suffix(b"\n").unwrap_or(&frame.0);
    match protocol::decode_line::<ServerFrame>(line).ok()? {
        ServerFrame::Message {
            room,
            seq,
            nick,
            text,
            action,
        } => Some(ServerFrame::History {
            room,
            seq,
            nick,
            text,
            action,
        }),
        _ => None,
    }
}
