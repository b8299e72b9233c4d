//! Sessions start and resume: the hello, the welcome, and replay.
//!
//! A fresh hello creates a member with a new token: 128 bits from a
//! cryptographically secure generator that nothing the server shows comes
//! from. Only the token's SHA-256 is kept, and a resume is looked up by that
//! hash, so comparing tokens takes no time that depends on how much of a
//! guess was right. A resume needs the token and the incarnation (not the
//! nickname: a rename the client never heard of must not lose its session;
//! the welcome says the session's nickname); it evicts the member's older connection (a
//! one-way partition can leave it half open) and replays, per room and for
//! the private stream, what the client missed.

use std::time::Duration;

use bytes::Bytes;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::connections::ConnectionPhase;
use super::output::{CloseReason, ConnectionId, MemberId, Notice};
use super::state::{Change, TokenHash};
use super::{Refusal, Rooms, duration_ms};
use crate::protocol::{
    self, ErrorCode, PROTOCOL_VERSION, Resume, RoomStart, Seq, ServerFrame, encode,
};

/// Bytes of a session token (128 bits).
const TOKEN_BYTES: usize = 16;

/// The hash under which a token is kept, if `token` has a token's form
/// (32 hexadecimal digits).
pub fn token_hash(token: &str) -> Option<TokenHash> {
    if token.len() != TOKEN_BYTES * 2 || !token.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    let digest: [u8; 32] = Sha256::digest(token.to_ascii_lowercase().as_bytes()).into();
    Some(TokenHash(digest))
}

impl Rooms {
    pub(super) fn handle_hello(
        &mut self,
        connection: ConnectionId,
        attempts: u32,
        version: u32,
        nick: String,
        resume: Option<Resume>,
        now: Duration,
    ) {
        if version != PROTOCOL_VERSION {
            let message =
                format!("this server speaks protocol version {PROTOCOL_VERSION}, not {version}");
            return self.refuse(
                connection,
                Refusal::new(ErrorCode::UnsupportedVersion, message),
                now,
            );
        }
        let attempts = attempts + 1;
        if let Some(state) = self.connections.get_mut(&connection) {
            state.phase = ConnectionPhase::Greeting { attempts };
        }
        if attempts > self.config.hello_attempts_max {
            let message = format!(
                "{} hellos refused on one connection",
                self.config.hello_attempts_max
            );
            return self.refuse(
                connection,
                Refusal::new(ErrorCode::TooManyAttempts, message),
                now,
            );
        }
        if let Err(error) = protocol::validate_nick(&nick) {
            return self.refuse(
                connection,
                Refusal::new(ErrorCode::NickInvalid, error.to_string()),
                now,
            );
        }
        match resume {
            Some(resume) => match self.resumable(&resume, &nick) {
                Some(member) => self.resume(connection, member, &resume, now),
                None => {
                    self.stats.resumes_refused += 1;
                    self.log(Notice::SessionGone { connection, nick });
                    let frame = ServerFrame::error(
                        ErrorCode::SessionUnknown,
                        "session unknown or expired: send a fresh hello",
                    );
                    self.send(connection, &frame);
                }
            },
            None => self.start_member(connection, nick, now),
        }
    }

    /// The member a resume names, if its token and incarnation match.
    fn resumable(&self, resume: &Resume, nick: &str) -> Option<MemberId> {
        if planted!(ResumeWithoutToken) {
            return self.state.nick_holder(nick);
        }
        if resume.incarnation != self.incarnation {
            return None;
        }
        self.state.tokens.get(&token_hash(&resume.token)?).copied()
    }

    /// How a hello for a nickname someone holds is refused.
    pub(super) fn nick_taken_refusal(
        &self,
        holder: MemberId,
        nick: &str,
        now: Duration,
    ) -> Refusal {
        let held = self.state.member(holder);
        let looks = if held.nick == nick {
            String::new()
        } else {
            format!(" (it looks like {}, who is here)", held.nick)
        };
        match held.connection {
            Some(_) => Refusal::new(
                ErrorCode::NickTaken,
                format!("the nickname {nick} is already taken{looks}"),
            ),
            None => {
                let left = self
                    .config
                    .session_grace
                    .saturating_sub(now.saturating_sub(held.detached_since));
                let mut refusal = Refusal::new(
                    ErrorCode::NickTaken,
                    format!(
                        "the nickname {nick} is held by a session that lost its connection{looks}; \
                         it is free in {} s unless that session comes back",
                        left.as_secs().max(1)
                    ),
                );
                refusal.retry_after = Some(left);
                refusal
            }
        }
    }

    fn start_member(&mut self, connection: ConnectionId, nick: String, now: Duration) {
        if let Some(holder) = self.state.nick_holder(&nick)
            && !planted!(NickUniqueness)
        {
            let refusal = self.nick_taken_refusal(holder, &nick, now);
            return self.refuse(connection, refusal, now);
        }
        if self.state.members.len() >= self.config.sessions_max {
            let message = format!(
                "the server has {} sessions, as many as it allows",
                self.config.sessions_max
            );
            return self.refuse(
                connection,
                Refusal::new(ErrorCode::TooManyConnections, message),
                now,
            );
        }
        let mut secret = [0u8; TOKEN_BYTES];
        self.token_rng.fill_bytes(&mut secret);
        let token: String = secret.iter().map(|byte| format!("{byte:02x}")).collect();
        let hash = token_hash(&token).expect("a generated token has a token's form");
        let member = MemberId(self.state.next_member);
        self.commit(Change::MemberOpened {
            member,
            nick: nick.clone(),
            token: hash,
        });
        self.attach(member, connection);
        let welcome = self.welcome(member, token, false, Vec::new(), 0, 0);
        self.send(connection, &welcome);
        self.log(Notice::Nickname { connection, nick });
    }

    fn resume(
        &mut self,
        connection: ConnectionId,
        member: MemberId,
        resume: &Resume,
        now: Duration,
    ) {
        if let Some(older) = self.state.member(member).connection {
            if planted!(NoEviction) {
                let frame = ServerFrame::error(ErrorCode::SessionUnknown, "session in use");
                return self.send(connection, &frame);
            }
            self.evict(member, older, now);
        }
        self.attach(member, connection);
        let (starts, private_seq, frames) = self.missed(member, resume);
        let replayed = frames.iter().filter(|(event, _)| *event).count() as u64;
        let welcome = self.welcome(
            member,
            resume.token.clone(),
            true,
            starts,
            private_seq,
            replayed,
        );
        self.send(connection, &welcome);
        if !frames.is_empty() {
            let frames = frames.into_iter().map(|(_, frame)| frame).collect();
            self.journal.push(super::Action::Replay {
                to: connection,
                frames,
            });
        }
        self.stats.resumes += 1;
        self.stats.replayed_events += replayed;
        let nick = self.state.member(member).nick.clone();
        let replayed = usize::try_from(replayed).unwrap_or(usize::MAX);
        self.log(Notice::Resumed {
            connection,
            nick,
            replayed,
        });
    }

    /// What a resuming client missed: where each room's events start, where
    /// the private stream's start, and the frames to replay (gap notices
    /// and events, the latter marked `true`).
    fn missed(
        &mut self,
        member: MemberId,
        resume: &Resume,
    ) -> (Vec<RoomStart>, Seq, Vec<(bool, Bytes)>) {
        let mut starts = Vec::new();
        let mut frames = Vec::new();
        let rooms: Vec<_> = self
            .state
            .member(member)
            .rooms
            .iter()
            .map(|(id, seq)| (*id, *seq))
            .collect();
        for (room_id, joined_seq) in rooms {
            let room = self.state.room(room_id);
            let seen = resume.rooms.get(&*room.name).copied().unwrap_or(0);
            let (last_seq, gap, events) = room.stream.missed(seen.max(joined_seq - 1));
            let name = room.name.to_string();
            if let Some((from, to)) = gap {
                self.stats.gap_notices += 1;
                frames.push((
                    false,
                    encode(&ServerFrame::Gap {
                        room: Some(name.clone()),
                        from,
                        to,
                    }),
                ));
            }
            frames.extend(events.into_iter().map(|event| (true, event)));
            starts.push(RoomStart {
                room: name,
                last_seq,
            });
        }
        let private = &self.state.member(member).private;
        let (private_seq, gap, events) = private.missed(resume.private_seq);
        if let Some((from, to)) = gap {
            self.stats.gap_notices += 1;
            frames.push((
                false,
                encode(&ServerFrame::Gap {
                    room: None,
                    from,
                    to,
                }),
            ));
        }
        frames.extend(events.into_iter().map(|event| (true, event)));
        (starts, private_seq, frames)
    }

    fn welcome(
        &self,
        member: MemberId,
        token: String,
        resumed: bool,
        rooms: Vec<RoomStart>,
        private_seq: Seq,
        replayed: u64,
    ) -> ServerFrame {
        ServerFrame::Welcome {
            version: PROTOCOL_VERSION,
            nick: self.state.member(member).nick.clone(),
            token,
            incarnation: self.incarnation.clone(),
            resumed,
            rooms,
            private_seq,
            replayed,
            heartbeat_interval_ms: duration_ms(self.config.heartbeat_interval),
            heartbeat_timeout_ms: duration_ms(self.config.heartbeat_timeout),
            text_bytes_max: self.config.text_bytes_max,
        }
    }

    /// Attaches a member to a connection: it is the member's, and it gets
    /// the broadcasts of every room the member is in.
    pub(super) fn attach(&mut self, member: MemberId, connection: ConnectionId) {
        let state = self.state.member_mut(member);
        assert!(
            state.connection.is_none(),
            "a member has one connection at a time"
        );
        state.connection = Some(connection);
        let rooms: Vec<_> = state.rooms.keys().copied().collect();
        for room in rooms {
            let room = self.state.room_mut(room);
            room.connections.insert(connection);
            room.recipients = None;
        }
        let state = self
            .connections
            .get_mut(&connection)
            .expect("attach a live connection");
        state.phase = ConnectionPhase::Member(member);
    }

    /// Detaches a member from `connection`, if it is attached to it.
    pub(super) fn detach(&mut self, member: MemberId, connection: ConnectionId, now: Duration) {
        let Some(state) = self.state.members.get_mut(&member) else {
            return;
        };
        if state.connection != Some(connection) {
            return;
        }
        state.connection = None;
        state.detached_since = now;
        let rooms: Vec<_> = state.rooms.keys().copied().collect();
        for room in rooms {
            let room = self.state.room_mut(room);
            room.connections.remove(&connection);
            room.recipients = None;
        }
    }

    /// Closes a member's older connection without ending its session.
    fn evict(&mut self, member: MemberId, older: ConnectionId, now: Duration) {
        self.stop_serving(older, false, now);
        self.stats.evictions += 1;
        let nick = Some(self.state.member(member).nick.clone());
        self.log(Notice::Dropped {
            connection: older,
            nick,
            reason: CloseReason::Evicted,
        });
    }
}
