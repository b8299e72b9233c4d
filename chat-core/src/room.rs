//! The server's state machine: connections, sessions and rooms.
//!
//! [`Rooms`] is sans-I/O. The driver tells it what happened
//! (`handle_connection_opened`, `handle_frame`, `handle_bad_frame`,
//! `handle_connection_closed`, `handle_tick`, `handle_shutdown`), always with
//! the current time, and then carries out the [`Action`]s it takes from
//! [`Rooms::poll_action`]. It reads no clock, touches no socket, and draws
//! randomness (session tokens, the incarnation id) only from the seed it was
//! handed. Maps are `BTreeMap`s, so nothing depends on hash order.
//!
//! Concepts:
//! - A *connection* is one stream, identified by the driver.
//! - A *session* is a member of a room: a nickname, a token, and the
//!   connection it is attached to, if any. It outlives its connection for the
//!   grace period, so that a client can reconnect and resume.
//! - A *room* has a sequence of events (joined, left, message) numbered from
//!   1, a bounded history of them, and its members.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::protocol::{
    self, ClientFrame, ErrorCode, FrameError, PROTOCOL_VERSION, Resume, Seq, ServerFrame,
};

/// Limits and timeouts of the room state machine.
#[derive(Clone, Debug)]
pub struct RoomConfig {
    /// The server sends a heartbeat to every connection this often.
    pub heartbeat_interval: Duration,
    /// A connection from which nothing arrived for this long is dropped.
    pub heartbeat_timeout: Duration,
    /// A session whose connection is gone ends after this long.
    pub session_grace: Duration,
    /// Events kept per room for replay on resume.
    pub history_max: usize,
    /// Largest message text, in bytes.
    pub text_bytes_max: usize,
    /// Most rooms on one server.
    pub rooms_max: usize,
    /// Message ids remembered per session to re-ack retries.
    pub acks_remembered_max: usize,
}

impl Default for RoomConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(5),
            heartbeat_timeout: Duration::from_secs(15),
            session_grace: Duration::from_secs(30),
            history_max: 1024,
            text_bytes_max: protocol::TEXT_BYTES_MAX,
            rooms_max: 1024,
            acks_remembered_max: 1024,
        }
    }
}

/// A connection, as numbered by the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionId(pub u64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "#{}", self.0)
    }
}

/// A room, as numbered by [`Rooms`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RoomId(pub(crate) usize);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct SessionId(u64);

/// Why a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed it, or it broke.
    PeerClosed,
    /// The peer did not read and its outbound queue filled up.
    QueueOverflow,
    /// Nothing arrived within the heartbeat timeout.
    HeartbeatTimeout,
    /// The same session resumed on a newer connection.
    Evicted,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            CloseReason::PeerClosed => "connection closed",
            CloseReason::QueueOverflow => "outbound queue full, the client does not read",
            CloseReason::HeartbeatTimeout => "no heartbeat within the timeout",
            CloseReason::Evicted => "the session resumed on a newer connection",
        })
    }
}

/// What the server console shows (the driver logs these).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// A connection was accepted.
    ConnectionEstablished,
    /// A client joined with this nickname.
    Nickname(String),
    /// A session ended.
    LeftServer(String),
    /// A session resumed on a new connection.
    Resumed {
        /// Whose.
        nick: String,
        /// Events replayed to it.
        replayed: usize,
    },
    /// A client was refused, or misbehaved, and was sent an error.
    Refused {
        /// Which connection.
        connection: ConnectionId,
        /// What it was told.
        message: String,
    },
    /// The server dropped a connection.
    Dropped {
        /// Which connection.
        connection: ConnectionId,
        /// Whose, if it had joined.
        nick: Option<String>,
        /// Why.
        reason: CloseReason,
    },
    /// The server is shutting down.
    ShuttingDown,
}

impl Notice {
    /// Whether this belongs in the console at info level (else debug).
    pub fn is_info(&self) -> bool {
        !matches!(
            self,
            Notice::Dropped {
                reason: CloseReason::PeerClosed | CloseReason::Evicted,
                ..
            }
        )
    }
}

impl fmt::Display for Notice {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::ConnectionEstablished => {
                write!(
                    formatter,
                    "Connection has been established with a new client."
                )
            }
            Notice::Nickname(nick) => write!(formatter, "The nickname of this client is {nick}."),
            Notice::LeftServer(nick) => write!(formatter, "{nick} has left the server."),
            Notice::Resumed { nick, replayed } => {
                write!(
                    formatter,
                    "{nick} resumed their session ({replayed} events replayed)."
                )
            }
            Notice::Refused {
                connection,
                message,
            } => {
                write!(formatter, "Refused client {connection}: {message}")
            }
            Notice::Dropped {
                connection,
                nick: Some(nick),
                reason,
            } => write!(
                formatter,
                "Dropped the connection of {nick} ({connection}): {reason}."
            ),
            Notice::Dropped {
                connection,
                nick: None,
                reason,
            } => write!(formatter, "Dropped connection {connection}: {reason}."),
            Notice::ShuttingDown => write!(formatter, "Server is shutting down."),
        }
    }
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Queue `frame` on one connection.
    Send {
        /// The connection.
        to: ConnectionId,
        /// The encoded frame.
        frame: Bytes,
    },
    /// Queue `frame` on every connection attached to `room`
    /// ([`Rooms::recipients`]).
    Broadcast {
        /// The room.
        room: RoomId,
        /// The encoded frame, shared by all recipients.
        frame: Bytes,
    },
    /// Queue missed events on one connection at once, beyond its live queue
    /// limit (a replay is bounded by the room's history).
    Replay {
        /// The connection.
        to: ConnectionId,
        /// The encoded events, oldest first.
        frames: Vec<Bytes>,
    },
    /// Close a connection: after writing what is queued (`flush`), or at once.
    Close {
        /// The connection.
        connection: ConnectionId,
        /// Write what is queued first.
        flush: bool,
    },
    /// Show a line on the server console.
    Log(Notice),
}

/// Counts of the reliability mechanisms at work, for tests and summaries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Sessions resumed on a new connection.
    pub resumes: u64,
    /// Events replayed to resumed sessions.
    pub replayed_events: u64,
    /// Retried messages recognised and not delivered twice.
    pub dedup_hits: u64,
    /// Gap notices sent.
    pub gap_notices: u64,
    /// Connections dropped because their queue was full.
    pub slow_readers_dropped: u64,
    /// Connections dropped for silence.
    pub dead_connections_dropped: u64,
    /// Older connections evicted by a resume.
    pub evictions: u64,
    /// Sessions ended after the grace period.
    pub sessions_expired: u64,
}

#[derive(Clone, Copy, Debug)]
enum Phase {
    AwaitingHello,
    Joined(SessionId),
}

#[derive(Debug)]
struct Connection {
    phase: Phase,
    last_heard: Duration,
}

#[derive(Debug)]
struct Session {
    nick: String,
    room: RoomId,
    token: u128,
    connection: Option<ConnectionId>,
    detached_since: Duration,
    /// Highest client message id accepted, if any.
    last_id: Option<u64>,
    /// (client id, seq) of recent accepted messages, oldest first.
    acks: VecDeque<(u64, Seq)>,
}

/// How a hello was welcomed.
enum Welcomed {
    /// A fresh join; events after `last_seq` follow.
    Joined { last_seq: Seq },
    /// A resume; `replayed` events after `last_seq` follow.
    Resumed { last_seq: Seq, replayed: usize },
}

#[derive(Debug)]
struct Room {
    name: String,
    last_seq: Seq,
    history: VecDeque<(Seq, Bytes)>,
    members: BTreeMap<String, SessionId>,
    connections: BTreeSet<ConnectionId>,
}

/// The state of every room on one server. See the module docs.
#[derive(Debug)]
pub struct Rooms {
    config: RoomConfig,
    incarnation: String,
    rng: SmallRng,
    rooms: Vec<Room>,
    room_ids: BTreeMap<String, RoomId>,
    connections: BTreeMap<ConnectionId, Connection>,
    sessions: BTreeMap<SessionId, Session>,
    tokens: BTreeMap<u128, SessionId>,
    next_session: u64,
    next_heartbeat: Duration,
    shutting_down: bool,
    stats: Stats,
    actions: VecDeque<Action>,
}

fn random_hex(rng: &mut SmallRng) -> String {
    format!("{:032x}", rng.random::<u128>())
}

/// A session token as the welcome wrote it: 32 hexadecimal digits.
fn parse_token(token: &str) -> Option<u128> {
    if token.len() != 32 {
        return None;
    }
    u128::from_str_radix(token, 16).ok()
}

impl Rooms {
    /// A server with no rooms yet. `seed` decides the incarnation id and the
    /// session tokens: from the OS in production, from the simulation's seed
    /// in tests.
    pub fn new(config: RoomConfig, seed: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let incarnation = random_hex(&mut rng);
        Self {
            next_heartbeat: config.heartbeat_interval,
            config,
            incarnation,
            rng,
            rooms: Vec::new(),
            room_ids: BTreeMap::new(),
            connections: BTreeMap::new(),
            sessions: BTreeMap::new(),
            tokens: BTreeMap::new(),
            next_session: 1,
            shutting_down: false,
            stats: Stats::default(),
            actions: VecDeque::new(),
        }
    }

    /// The next action for the driver, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The connections a broadcast to `room` goes to.
    pub fn recipients(&self, room: RoomId) -> impl Iterator<Item = ConnectionId> + '_ {
        self.rooms[room.0].connections.iter().copied()
    }

    /// True if a broadcast to `room` goes to `connection`.
    pub fn is_recipient(&self, room: RoomId, connection: ConnectionId) -> bool {
        self.rooms[room.0].connections.contains(&connection)
    }

    /// The mechanism counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// This server's incarnation id.
    pub fn incarnation(&self) -> &str {
        &self.incarnation
    }

    /// A connection was accepted.
    pub fn handle_connection_opened(&mut self, connection: ConnectionId, now: Duration) {
        let previous = self.connections.insert(
            connection,
            Connection {
                phase: Phase::AwaitingHello,
                last_heard: now,
            },
        );
        assert!(previous.is_none(), "connection id {connection} reused");
        if self.shutting_down {
            self.send(connection, &ServerFrame::Shutdown);
            self.close(connection, true);
            return;
        }
        self.log(Notice::ConnectionEstablished);
    }

    /// A frame arrived on a connection.
    pub fn handle_frame(&mut self, connection: ConnectionId, frame: ClientFrame, now: Duration) {
        let Some(state) = self.connections.get_mut(&connection) else {
            return; // Already closed by us; the reader had it in flight.
        };
        state.last_heard = now;
        match (state.phase, frame) {
            (
                Phase::AwaitingHello,
                ClientFrame::Hello {
                    version,
                    nick,
                    room,
                    resume,
                },
            ) => {
                self.handle_hello(connection, version, nick, room, resume, now);
            }
            (_, ClientFrame::Heartbeat) => {}
            (Phase::AwaitingHello, ClientFrame::Leave) => {
                self.send(connection, &ServerFrame::Bye);
                self.close(connection, true);
            }
            (Phase::Joined(session), ClientFrame::Send { room, id, text }) => {
                self.handle_send(connection, session, &room, id, text);
            }
            (Phase::Joined(session), ClientFrame::Leave) => {
                self.send(connection, &ServerFrame::Bye);
                self.close(connection, true);
                self.end_session(session);
            }
            (Phase::AwaitingHello, ClientFrame::Send { .. }) => {
                self.refuse(
                    connection,
                    ErrorCode::ProtocolViolation,
                    "send a hello first".into(),
                );
            }
            (Phase::Joined(_), ClientFrame::Hello { .. }) => {
                self.refuse(
                    connection,
                    ErrorCode::ProtocolViolation,
                    "already joined".into(),
                );
            }
        }
    }

    /// A connection sent something that is not a frame: tell it why (if it
    /// can still hear) and close it.
    pub fn handle_bad_frame(
        &mut self,
        connection: ConnectionId,
        error: &FrameError,
        now: Duration,
    ) {
        match error.to_error_frame() {
            Some(ServerFrame::Error { code, message }) => self.refuse(connection, code, message),
            _ => self.handle_connection_closed(connection, CloseReason::PeerClosed, now),
        }
    }

    /// A connection ended (or the driver is ending it: queue overflow).
    pub fn handle_connection_closed(
        &mut self,
        connection: ConnectionId,
        reason: CloseReason,
        now: Duration,
    ) {
        let Some(state) = self.connections.remove(&connection) else {
            return;
        };
        self.actions.push_back(Action::Close {
            connection,
            flush: false,
        });
        let nick = match state.phase {
            Phase::AwaitingHello => None,
            Phase::Joined(session) => {
                let nick = self.detach(session, connection, now);
                if planted!(DoubleLeave) {
                    let room = self.sessions[&session].room;
                    let event = ServerFrame::Left {
                        room: self.rooms[room.0].name.clone(),
                        seq: self.next_seq(room),
                        nick: nick.clone(),
                    };
                    self.append(room, &event);
                }
                Some(nick)
            }
        };
        match reason {
            CloseReason::QueueOverflow => self.stats.slow_readers_dropped += 1,
            CloseReason::HeartbeatTimeout => self.stats.dead_connections_dropped += 1,
            CloseReason::Evicted | CloseReason::PeerClosed => {}
        }
        self.log(Notice::Dropped {
            connection,
            nick,
            reason,
        });
        self.expire_sessions(now);
    }

    /// Time passed: send heartbeats, drop silent connections, end sessions
    /// whose grace period is over.
    pub fn handle_tick(&mut self, now: Duration) {
        let silent: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|(_, state)| {
                now.saturating_sub(state.last_heard) >= self.config.heartbeat_timeout
            })
            .map(|(connection, _)| *connection)
            .collect();
        for connection in silent {
            self.handle_connection_closed(connection, CloseReason::HeartbeatTimeout, now);
        }
        self.expire_sessions(now);
        if now >= self.next_heartbeat {
            self.next_heartbeat = now + self.config.heartbeat_interval;
            let frame = protocol::encode(&ServerFrame::Heartbeat);
            for connection in self.connections.keys() {
                self.actions.push_back(Action::Send {
                    to: *connection,
                    frame: frame.clone(),
                });
            }
        }
    }

    /// The server is stopping: tell every connection, then close each after
    /// its queue is written.
    pub fn handle_shutdown(&mut self) {
        self.shutting_down = true;
        self.log(Notice::ShuttingDown);
        let frame = protocol::encode(&ServerFrame::Shutdown);
        let connections: Vec<ConnectionId> = self.connections.keys().copied().collect();
        for connection in connections {
            self.actions.push_back(Action::Send {
                to: connection,
                frame: frame.clone(),
            });
            self.close(connection, true);
        }
    }

    fn handle_hello(
        &mut self,
        connection: ConnectionId,
        version: u32,
        nick: String,
        room: String,
        resume: Option<Resume>,
        now: Duration,
    ) {
        if version != PROTOCOL_VERSION {
            let message =
                format!("this server speaks protocol version {PROTOCOL_VERSION}, not {version}");
            return self.refuse(connection, ErrorCode::UnsupportedVersion, message);
        }
        if let Err(error) = protocol::validate_nick(&nick) {
            return self.refuse(connection, ErrorCode::NickInvalid, error.to_string());
        }
        if let Err(error) = protocol::validate_room(&room) {
            return self.refuse(connection, ErrorCode::RoomInvalid, error.to_string());
        }
        if let Some(resume) = resume {
            match self.resumable_session(&resume, &nick, &room) {
                Some(session) => return self.resume(connection, session, resume.last_seq, now),
                None => {
                    // Not fatal: the client may send a fresh hello next.
                    self.send_error(
                        connection,
                        ErrorCode::SessionUnknown,
                        "session unknown or expired: join afresh",
                    );
                    return;
                }
            }
        }
        self.join(connection, nick, room);
    }

    fn resumable_session(&self, resume: &Resume, nick: &str, room: &str) -> Option<SessionId> {
        if resume.incarnation != self.incarnation {
            return None;
        }
        let token = parse_token(&resume.token)?;
        let session_id = *self.tokens.get(&token)?;
        let session = &self.sessions[&session_id];
        let same_room = self.rooms[session.room.0].name == room;
        (session.nick == nick && same_room).then_some(session_id)
    }

    fn join(&mut self, connection: ConnectionId, nick: String, room_name: String) {
        let Some(room) = self.room_id(&room_name) else {
            let message = format!("this server holds at most {} rooms", self.config.rooms_max);
            return self.refuse(connection, ErrorCode::RoomInvalid, message);
        };
        if self.rooms[room.0].members.contains_key(&nick) && !planted!(NickUniqueness) {
            let message = format!("the nickname {nick} is already taken in this room");
            return self.refuse(connection, ErrorCode::NickTaken, message);
        }
        let session = SessionId(self.next_session);
        self.next_session += 1;
        let token = self.rng.random::<u128>();
        self.tokens.insert(token, session);
        self.sessions.insert(
            session,
            Session {
                nick: nick.clone(),
                room,
                token,
                connection: None,
                detached_since: Duration::ZERO,
                last_id: None,
                acks: VecDeque::new(),
            },
        );
        self.rooms[room.0].members.insert(nick.clone(), session);
        self.attach(session, connection);
        self.log(Notice::Nickname(nick.clone()));
        let seq = self.next_seq(room);
        self.send_welcome(
            connection,
            room,
            token,
            Welcomed::Joined { last_seq: seq - 1 },
        );
        self.append(
            room,
            &ServerFrame::Joined {
                room: room_name,
                seq,
                nick,
            },
        );
    }

    fn resume(
        &mut self,
        connection: ConnectionId,
        session_id: SessionId,
        last_seq: Seq,
        now: Duration,
    ) {
        let session = &self.sessions[&session_id];
        let (room, token, older) = (session.room, session.token, session.connection);
        if let Some(older) = older {
            if planted!(NoEviction) {
                self.send_error(connection, ErrorCode::SessionUnknown, "session in use");
                return;
            }
            // A one-way partition can leave the older connection half open.
            self.evict(session_id, older, now);
        }
        self.attach(session_id, connection);
        let (last_seq, gap, events) = self.missed_events(room, last_seq);
        let replayed = events.len();
        self.send_welcome(
            connection,
            room,
            token,
            Welcomed::Resumed { last_seq, replayed },
        );
        if let Some(gap) = gap {
            self.stats.gap_notices += 1;
            self.send(connection, &gap);
        }
        if !events.is_empty() {
            self.actions.push_back(Action::Replay {
                to: connection,
                frames: events,
            });
        }
        self.stats.resumes += 1;
        self.stats.replayed_events += replayed as u64;
        let nick = self.sessions[&session_id].nick.clone();
        self.log(Notice::Resumed { nick, replayed });
    }

    /// What a client that saw events up to `last_seq` missed: `last_seq`
    /// itself made sane, a gap notice for the events history no longer
    /// holds, and the encoded events it still holds.
    fn missed_events(&self, room: RoomId, last_seq: Seq) -> (Seq, Option<ServerFrame>, Vec<Bytes>) {
        let state = &self.rooms[room.0];
        // A client cannot have seen events that do not exist yet.
        let last_seq = last_seq.min(state.last_seq);
        let oldest_kept = state
            .history
            .front()
            .map_or(state.last_seq + 1, |(seq, _)| *seq);
        let gap = (last_seq + 1 < oldest_kept).then(|| ServerFrame::Gap {
            room: state.name.clone(),
            from: last_seq + 1,
            to: oldest_kept - 1,
        });
        let events = state
            .history
            .iter()
            .filter(|(seq, _)| *seq > last_seq + u64::from(planted!(ReplayOffByOne)))
            .map(|(_, frame)| frame.clone())
            .collect();
        (last_seq, gap, events)
    }

    fn handle_send(
        &mut self,
        connection: ConnectionId,
        session_id: SessionId,
        room_name: &str,
        id: u64,
        text: String,
    ) {
        let session = &self.sessions[&session_id];
        let room = session.room;
        if self.rooms[room.0].name != room_name {
            let message = format!("you have not joined the room {room_name}");
            return self.refuse(connection, ErrorCode::ProtocolViolation, message);
        }
        if let Err(error) = protocol::validate_text(&text, self.config.text_bytes_max) {
            return self.refuse(connection, ErrorCode::TextInvalid, error.to_string());
        }
        if session.last_id.is_some_and(|last_id| id <= last_id) && !planted!(NoDedup) {
            // A retry of a message already accepted: ack it again, once more
            // with its sequence number, and deliver nothing.
            self.stats.dedup_hits += 1;
            if let Some(&(_, seq)) = session.acks.iter().find(|(acked, _)| *acked == id) {
                let ack = ServerFrame::Ack {
                    room: room_name.to_owned(),
                    id,
                    seq,
                };
                self.send(connection, &ack);
            }
            return;
        }
        let seq = self.next_seq(room);
        let nick = session.nick.clone();
        let session = self.sessions.get_mut(&session_id).expect("looked up above");
        session.last_id = Some(id);
        session.acks.push_back((id, seq));
        if session.acks.len() > self.config.acks_remembered_max {
            session.acks.pop_front();
        }
        let room_name = room_name.to_owned();
        // The event first, then the ack: a client that waits for its acks
        // before leaving has then seen its own messages.
        self.append(
            room,
            &ServerFrame::Message {
                room: room_name.clone(),
                seq,
                nick,
                text,
            },
        );
        self.send(
            connection,
            &ServerFrame::Ack {
                room: room_name,
                id,
                seq,
            },
        );
    }

    /// Closes a session's older connection without ending the session.
    fn evict(&mut self, session_id: SessionId, older: ConnectionId, now: Duration) {
        self.connections.remove(&older);
        self.actions.push_back(Action::Close {
            connection: older,
            flush: false,
        });
        let nick = self.detach(session_id, older, now);
        self.stats.evictions += 1;
        self.log(Notice::Dropped {
            connection: older,
            nick: Some(nick),
            reason: CloseReason::Evicted,
        });
    }

    fn room_id(&mut self, name: &str) -> Option<RoomId> {
        if let Some(room) = self.room_ids.get(name) {
            return Some(*room);
        }
        if self.rooms.len() >= self.config.rooms_max {
            return None;
        }
        let room = RoomId(self.rooms.len());
        self.rooms.push(Room {
            name: name.to_owned(),
            last_seq: 0,
            history: VecDeque::new(),
            members: BTreeMap::new(),
            connections: BTreeSet::new(),
        });
        self.room_ids.insert(name.to_owned(), room);
        Some(room)
    }

    fn next_seq(&self, room: RoomId) -> Seq {
        self.rooms[room.0].last_seq + 1
    }

    /// Records an event in the room's history and broadcasts it.
    fn append(&mut self, room: RoomId, event: &ServerFrame) {
        let seq = event.event_seq().expect("only events are appended");
        let state = &mut self.rooms[room.0];
        assert_eq!(seq, state.last_seq + 1, "events are numbered without gaps");
        state.last_seq = seq;
        let frame = protocol::encode(event);
        state.history.push_back((seq, frame.clone()));
        if state.history.len() > self.config.history_max {
            state.history.pop_front();
        }
        self.actions.push_back(Action::Broadcast { room, frame });
    }

    fn attach(&mut self, session_id: SessionId, connection: ConnectionId) {
        let session = self
            .sessions
            .get_mut(&session_id)
            .expect("attach to a live session");
        assert!(
            session.connection.is_none(),
            "a session has one connection at a time"
        );
        session.connection = Some(connection);
        self.rooms[session.room.0].connections.insert(connection);
        let state = self
            .connections
            .get_mut(&connection)
            .expect("attach a live connection");
        state.phase = Phase::Joined(session_id);
    }

    /// Detaches a session from its closed connection; returns its nickname.
    fn detach(&mut self, session_id: SessionId, connection: ConnectionId, now: Duration) -> String {
        let session = self
            .sessions
            .get_mut(&session_id)
            .expect("joined connections have sessions");
        if session.connection == Some(connection) {
            session.connection = None;
            session.detached_since = now;
            self.rooms[session.room.0].connections.remove(&connection);
        }
        session.nick.clone()
    }

    fn expire_sessions(&mut self, now: Duration) {
        let expired: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, session)| {
                session.connection.is_none()
                    && now.saturating_sub(session.detached_since) >= self.config.session_grace
            })
            .map(|(id, _)| *id)
            .collect();
        for session in expired {
            self.stats.sessions_expired += 1;
            self.end_session(session);
        }
    }

    fn end_session(&mut self, session_id: SessionId) {
        let session = self
            .sessions
            .remove(&session_id)
            .expect("ending a live session");
        self.tokens.remove(&session.token);
        if let Some(connection) = session.connection {
            self.rooms[session.room.0].connections.remove(&connection);
            if let Some(state) = self.connections.get_mut(&connection) {
                state.phase = Phase::AwaitingHello;
            }
        }
        let room = &mut self.rooms[session.room.0];
        room.members.remove(&session.nick);
        let event = ServerFrame::Left {
            room: room.name.clone(),
            seq: room.last_seq + 1,
            nick: session.nick.clone(),
        };
        self.append(session.room, &event);
        self.log(Notice::LeftServer(session.nick));
    }

    fn send_welcome(
        &mut self,
        connection: ConnectionId,
        room: RoomId,
        token: u128,
        welcomed: Welcomed,
    ) {
        let (resumed, last_seq, replayed) = match welcomed {
            Welcomed::Joined { last_seq } => (false, last_seq, 0),
            Welcomed::Resumed { last_seq, replayed } => (true, last_seq, replayed as u64),
        };
        let welcome = ServerFrame::Welcome {
            version: PROTOCOL_VERSION,
            room: self.rooms[room.0].name.clone(),
            token: format!("{token:032x}"),
            incarnation: self.incarnation.clone(),
            resumed,
            last_seq,
            replayed,
            heartbeat_interval_ms: duration_ms(self.config.heartbeat_interval),
            heartbeat_timeout_ms: duration_ms(self.config.heartbeat_timeout),
            text_bytes_max: self.config.text_bytes_max,
        };
        self.send(connection, &welcome);
    }

    fn send(&mut self, connection: ConnectionId, frame: &ServerFrame) {
        let frame = protocol::encode(frame);
        self.actions.push_back(Action::Send {
            to: connection,
            frame,
        });
    }

    fn send_error(&mut self, connection: ConnectionId, code: ErrorCode, message: &str) {
        let message = message.to_owned();
        self.log(Notice::Refused {
            connection,
            message: message.clone(),
        });
        self.send(connection, &ServerFrame::Error { code, message });
    }

    /// Sends an error and closes the connection once it is written. A client
    /// that broke the protocol has no session to come back to: if it had
    /// joined, it has left.
    fn refuse(&mut self, connection: ConnectionId, code: ErrorCode, message: String) {
        self.send_error(connection, code, &message);
        self.close(connection, true);
        if let Some(Connection {
            phase: Phase::Joined(session),
            ..
        }) = self.connections.get(&connection)
        {
            let session = *session;
            self.end_session(session);
        }
    }

    fn close(&mut self, connection: ConnectionId, flush: bool) {
        self.actions.push_back(Action::Close { connection, flush });
    }

    fn log(&mut self, notice: Notice) {
        self.actions.push_back(Action::Log(notice));
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
