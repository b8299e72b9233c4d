//! The server's state machine: connections, members, rooms and their
//! numbered streams of events.
//!
//! [`Rooms`] is sans-I/O. The driver tells it what happened
//! (`handle_connection_opened`, `handle_frame`, `handle_bad_frame`,
//! `handle_progress`, `handle_connection_closed`, `handle_tick`,
//! `handle_shutdown`, `handle_durable`), always with the current time, and
//! then carries out the [`Action`]s from [`Rooms::poll_action`] and writes
//! the [`Record`]s from [`Rooms::poll_record`]. It reads no clock, touches
//! no socket or file, and draws session tokens only from the generator it
//! was handed. Maps are `BTreeMap`s, so nothing depends on hash order.
//!
//! Concepts:
//! - A *connection* is one stream, identified by the driver, with a phase
//!   ([`connections`]): greeting, attached to a member, or closing.
//! - A *member* is the server's side of a client session: a nickname, a
//!   token (kept only as a hash), the rooms it is in, its private stream and
//!   the message ids it used. It outlives its connection for the grace
//!   period, so that a client can reconnect and resume.
//! - A *room* has a numbered stream of events (joined, left, message,
//!   renamed), a bounded history of them, and its members. It is freed when
//!   its last member leaves.
//! - Every durable decision is a [`state::Change`]; with persistence on,
//!   the [`journal`] turns each input's changes into one log record and
//!   holds that input's actions until the record is on disk.
//!
//! Submodules, one concern each: `config` (limits), `output` (actions,
//! notices, counters), `connections` (phases and rates), `state` (the
//! durable part and its changes), `stream` (numbered history), `ids`
//! (message ids), `journal` (records and held actions), and the handlers:
//! `hello` (sessions start and resume), `membership` (rooms, nicknames,
//! ending sessions), `messages` (room and private messages), `timers`
//! (ticks, deadlines, throttling), `invariants`.

mod config;
mod connections;
mod hello;
mod ids;
mod invariants;
mod journal;
mod membership;
mod messages;
mod output;
mod state;
mod stream;
mod timers;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

pub use config::RoomConfig;
pub use journal::{Lsn, Record};
pub use output::{
    Action, CloseReason, ConnectionId, MemberId, Notice, Recipients, RoomId, Stats, Summary,
};
pub use stream::StreamKey;

use crate::protocol::{self, ClientFrame, ErrorCode, FrameError, ServerFrame};
use connections::{ConnectionPhase, ConnectionState, RateLimiter};
use journal::Journal;
use state::{Change, Durable, Limits};
use stream::HistoryLimits;

/// Why a data directory's state could not be rebuilt.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The snapshot does not parse.
    #[error(
        "the snapshot cannot be read ({0}); the data directory was written by another version or is damaged"
    )]
    Snapshot(String),
    /// A record does not parse, or does not fit the state before it.
    #[error(
        "log record {index} after the snapshot cannot be applied ({reason}); the data directory was written by another version or is damaged"
    )]
    Record {
        /// Its position after the snapshot, from 1.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// The state of every room on one server. See the module docs.
#[derive(Debug)]
pub struct Rooms {
    config: RoomConfig,
    incarnation: String,
    token_rng: ChaCha20Rng,
    state: Durable,
    connections: BTreeMap<ConnectionId, ConnectionState>,
    per_address: BTreeMap<IpAddr, usize>,
    next_heartbeat: Duration,
    next_summary: Duration,
    /// Messages accepted and resumes, as counted at the last summary.
    summarized: (u64, u64),
    shutting_down: bool,
    stats: Stats,
    journal: Journal,
    /// What a restore found beyond the count limits (a restart with lower
    /// limits than the state was written under): kept, and never grown.
    restored_over: CountsOver,
}

/// Counts a restored state held, for the invariants' bounds: rooms,
/// sessions, and the members of the fullest room.
#[derive(Clone, Copy, Debug, Default)]
struct CountsOver {
    rooms: usize,
    sessions: usize,
    room_members: usize,
}

fn limits(config: &RoomConfig) -> Limits {
    Limits {
        room: HistoryLimits {
            events: config.history_max,
            bytes: config.history_bytes_max,
        },
        private: HistoryLimits {
            events: config.private_history_max,
            bytes: config.private_history_bytes_max,
        },
        total_bytes: config.history_bytes_total_max,
        ids: config.acks_remembered_max,
    }
}

impl Rooms {
    /// A server with no rooms yet. `incarnation` names its state (shown in
    /// every welcome); `token_seed` seeds the cryptographically secure
    /// generator of session tokens (from the OS in production, from the
    /// simulation's seed in tests), which nothing else draws from. With
    /// `persistent`, every input's durable changes become a [`Record`] and
    /// its actions wait for [`Rooms::handle_durable`].
    pub fn new(
        config: RoomConfig,
        incarnation: String,
        token_seed: [u8; 32],
        persistent: bool,
    ) -> Self {
        let state = Durable::new(limits(&config));
        Self {
            next_heartbeat: config.heartbeat_interval,
            next_summary: config.summary_interval,
            config,
            incarnation,
            token_rng: ChaCha20Rng::from_seed(token_seed),
            state,
            connections: BTreeMap::new(),
            per_address: BTreeMap::new(),
            summarized: (0, 0),
            shutting_down: false,
            stats: Stats::default(),
            journal: Journal::new(persistent),
            restored_over: CountsOver::default(),
        }
    }

    /// A persistent server rebuilt from its last snapshot and the records
    /// after it, at time `now`: every member is detached, with a fresh grace
    /// period from `now`.
    pub fn restore<'a>(
        config: RoomConfig,
        incarnation: String,
        token_seed: [u8; 32],
        snapshot: Option<&[u8]>,
        records: impl IntoIterator<Item = &'a [u8]>,
        now: Duration,
    ) -> Result<Self, RestoreError> {
        let mut rooms = Rooms::new(config, incarnation, token_seed, true);
        if let Some(snapshot) = snapshot {
            rooms.state = Durable::restore(snapshot, limits(&rooms.config))
                .map_err(RestoreError::Snapshot)?;
        }
        for (index, record) in records.into_iter().enumerate() {
            let fail = |reason: String| RestoreError::Record {
                index: index + 1,
                reason,
            };
            let changes = state::decode_commit(record).map_err(|error| fail(error.to_string()))?;
            for change in &changes {
                rooms.state.fits(change).map_err(fail)?;
                rooms.state.apply(change);
            }
        }
        for member in rooms.state.members.values_mut() {
            member.detached_since = now;
        }
        // Limits may have been lowered since the state was written: history
        // is trimmed to them; rooms, sessions and members beyond them stay,
        // and no new one is admitted until the counts are below the limits.
        rooms.state.trim_to_limits();
        rooms.restored_over = CountsOver {
            rooms: rooms.state.rooms.len(),
            sessions: rooms.state.members.len(),
            room_members: rooms
                .state
                .rooms
                .values()
                .map(|room| room.members.len())
                .max()
                .unwrap_or(0),
        };
        rooms.next_heartbeat = now + rooms.config.heartbeat_interval;
        rooms.next_summary = now + rooms.config.summary_interval;
        rooms.check_invariants();
        Ok(rooms)
    }

    /// The next action whose effects are durable, for the driver.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.journal.poll_action()
    }

    /// The next record for the log.
    pub fn poll_record(&mut self) -> Option<Record> {
        self.journal.poll_record()
    }

    /// Whether records wait to be written.
    pub fn has_records(&self) -> bool {
        self.journal.has_records()
    }

    /// Whether the state machine makes records (the server keeps its data).
    pub fn is_persistent(&self) -> bool {
        self.journal.is_persistent()
    }

    /// Each room: its id, name, last sequence number and the events its
    /// history keeps (for observers: what a recovery rebuilt).
    pub fn room_histories(&self) -> Vec<(RoomId, String, crate::protocol::Seq, Vec<Bytes>)> {
        self.state
            .rooms
            .iter()
            .map(|(id, room)| {
                let (_, _, kept) = room.stream.missed(0);
                (*id, room.name.to_string(), room.stream.last_seq, kept)
            })
            .collect()
    }

    /// Every member's nickname.
    pub fn member_nicks(&self) -> Vec<String> {
        self.state
            .members
            .values()
            .map(|member| member.nick.clone())
            .collect()
    }

    /// Each member's private stream: the events its history keeps (for
    /// observers: what a recovery rebuilt).
    pub fn private_histories(&self) -> Vec<(MemberId, Vec<Bytes>)> {
        self.state
            .members
            .iter()
            .map(|(id, member)| (*id, member.private.missed(0).2))
            .collect()
    }

    /// Every record up to `lsn` is on disk: release what waited for them.
    pub fn handle_durable(&mut self, lsn: Lsn) {
        self.journal.durable(lsn);
    }

    /// Actions waiting for their records to be durable.
    pub fn held_actions(&self) -> usize {
        self.journal.held()
    }

    /// The mechanism counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// This server's incarnation id.
    pub fn incarnation(&self) -> &str {
        &self.incarnation
    }

    /// Bytes of history kept, all streams together.
    pub fn history_bytes(&self) -> usize {
        self.state.history_bytes()
    }

    /// The rooms, by name.
    pub fn room_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .state
            .rooms
            .values()
            .map(|room| room.name.to_string())
            .collect();
        names.sort();
        names
    }

    /// How many members (sessions) there are.
    pub fn member_count(&self) -> usize {
        self.state.members.len()
    }

    /// How many connections are open.
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// A connection was accepted from `peer`.
    pub fn handle_connection_opened(
        &mut self,
        connection: ConnectionId,
        peer: IpAddr,
        now: Duration,
    ) {
        self.input(|rooms| rooms.open_connection(connection, peer, now));
    }

    /// A frame arrived on a connection.
    pub fn handle_frame(&mut self, connection: ConnectionId, frame: ClientFrame, now: Duration) {
        self.input(|rooms| rooms.receive(connection, frame, now));
    }

    /// A connection sent something that is not a frame: tell it why (if it
    /// can still hear) and stop serving it.
    pub fn handle_bad_frame(
        &mut self,
        connection: ConnectionId,
        error: &FrameError,
        now: Duration,
    ) {
        self.input(|rooms| {
            if !rooms.is_served(connection) {
                return;
            }
            match error.to_error_frame() {
                Some(ServerFrame::Error { code, message, .. }) => {
                    rooms.refuse(connection, Refusal::new(code, message), now);
                }
                _ => rooms.close_connection(connection, CloseReason::PeerClosed, now),
            }
        });
    }

    /// Bytes arrived on a connection without completing a frame yet: the
    /// peer is alive (a slow link sending a large frame).
    pub fn handle_progress(&mut self, connection: ConnectionId, now: Duration) {
        if let Some(state) = self.connections.get_mut(&connection) {
            state.last_heard = state.last_heard.max(now);
        }
    }

    /// A connection ended (or the driver is ending it: queue overflow).
    pub fn handle_connection_closed(
        &mut self,
        connection: ConnectionId,
        reason: CloseReason,
        now: Duration,
    ) {
        self.input(|rooms| rooms.close_connection(connection, reason, now));
    }

    /// Time passed: heartbeats, deadlines, throttled connections, expired
    /// sessions, the console summary.
    pub fn handle_tick(&mut self, now: Duration) {
        self.input(|rooms| rooms.tick(now));
    }

    /// The server is stopping: tell every connection, then close each after
    /// its queue is written.
    pub fn handle_shutdown(&mut self, now: Duration) {
        self.input(|rooms| rooms.shut_down(now));
    }

    /// Runs one input: its changes become one record, its actions wait for
    /// it; then the invariants are checked (in debug and simulation builds).
    fn input(&mut self, handle: impl FnOnce(&mut Self)) {
        self.journal.begin();
        handle(self);
        let logged = self.journal.end();
        if self.journal.is_persistent() && logged > self.config.snapshot_after_bytes {
            self.journal.snapshot(Bytes::from(self.state.snapshot()));
        }
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
    }

    fn open_connection(&mut self, connection: ConnectionId, peer: IpAddr, now: Duration) {
        let rate = RateLimiter::new(self.config.message_rate, self.config.message_burst, now);
        let previous = self
            .connections
            .insert(connection, ConnectionState::new(peer, rate, now));
        assert!(previous.is_none(), "connection id {connection} reused");
        let from_peer = self.per_address.entry(peer).or_insert(0);
        *from_peer += 1;
        let from_peer = *from_peer;
        if self.shutting_down {
            self.send(connection, &ServerFrame::Shutdown);
            return self.stop_serving(connection, true, now);
        }
        self.log(Notice::ConnectionEstablished { connection, peer });
        let refusal = if self.connections.len() > self.config.connections_max {
            Some(format!(
                "the server has {} connections, as many as it allows",
                self.config.connections_max
            ))
        } else if from_peer > self.config.connections_per_address_max {
            Some(format!(
                "{peer} has {} connections open, as many as one address may",
                self.config.connections_per_address_max
            ))
        } else {
            None
        };
        if let Some(message) = refusal {
            self.stats.connections_refused += 1;
            self.refuse(
                connection,
                Refusal::new(ErrorCode::TooManyConnections, message),
                now,
            );
        }
    }

    /// Hands a frame to its handler, unless the connection is throttled
    /// (then it waits) or no longer served (then it has no effect).
    fn receive(&mut self, connection: ConnectionId, frame: ClientFrame, now: Duration) {
        let Some(state) = self.connections.get_mut(&connection) else {
            self.stats.frames_ignored += 1;
            return;
        };
        if !state.is_served() {
            self.stats.frames_ignored += 1;
            return;
        }
        state.last_heard = state.last_heard.max(now);
        if state.throttled_since.is_some()
            || (connections::is_rated(&frame) && !state.rate.take(now))
        {
            return self.throttle(connection, frame, now);
        }
        self.dispatch(connection, frame, now);
    }

    /// Handles a frame that the rate allows.
    fn dispatch(&mut self, connection: ConnectionId, frame: ClientFrame, now: Duration) {
        let Some(phase) = self.connections.get(&connection).map(|state| state.phase) else {
            return;
        };
        match (phase, frame) {
            (ConnectionPhase::Closing { .. }, _) => self.stats.frames_ignored += 1,
            (_, ClientFrame::Heartbeat) => {}
            (
                ConnectionPhase::Greeting { attempts },
                ClientFrame::Hello {
                    version,
                    nick,
                    resume,
                },
            ) => {
                self.handle_hello(connection, attempts, version, nick, resume, now);
            }
            (ConnectionPhase::Greeting { .. }, ClientFrame::Quit) => {
                self.send(connection, &ServerFrame::Bye);
                self.stop_serving(connection, true, now);
            }
            (ConnectionPhase::Greeting { .. }, _) => {
                let refusal = Refusal::new(ErrorCode::ProtocolViolation, "send a hello first");
                self.refuse(connection, refusal, now);
            }
            (ConnectionPhase::Member(_), ClientFrame::Hello { .. }) => {
                let refusal = Refusal::new(
                    ErrorCode::ProtocolViolation,
                    "already welcomed: one hello per connection",
                );
                self.refuse(connection, refusal, now);
            }
            (ConnectionPhase::Member(member), frame) => {
                self.handle_member_frame(connection, member, frame, now)
            }
        }
    }

    fn handle_member_frame(
        &mut self,
        connection: ConnectionId,
        member: MemberId,
        frame: ClientFrame,
        now: Duration,
    ) {
        match frame {
            ClientFrame::Join { room } => self.handle_join(connection, member, room),
            ClientFrame::Leave { room } => self.handle_leave(connection, member, &room),
            ClientFrame::Send {
                room,
                id,
                text,
                action,
            } => {
                self.handle_send(connection, member, &room, id, text, action);
            }
            ClientFrame::Private {
                to,
                id,
                text,
                action,
            } => {
                self.handle_private(connection, member, &to, id, text, action);
            }
            ClientFrame::Nick { nick } => self.handle_nick(connection, member, nick, now),
            ClientFrame::ListRooms => self.handle_list_rooms(connection),
            ClientFrame::Who { room } => self.handle_who(connection, member, &room),
            ClientFrame::Quit => {
                self.send(connection, &ServerFrame::Bye);
                self.stop_serving(connection, true, now);
                self.end_member(member);
            }
            ClientFrame::Heartbeat | ClientFrame::Hello { .. } => {
                unreachable!("handled by dispatch")
            }
        }
    }

    fn is_served(&self, connection: ConnectionId) -> bool {
        self.connections
            .get(&connection)
            .is_some_and(ConnectionState::is_served)
    }

    /// Applies a durable change and records it for the log.
    fn commit(&mut self, change: Change) {
        self.state.apply(&change);
        self.journal.record(change);
    }

    /// Queues `frame` on one connection.
    fn send(&mut self, to: ConnectionId, frame: &ServerFrame) {
        self.journal.push(Action::Send {
            to,
            frame: protocol::encode(frame),
        });
    }

    fn log(&mut self, notice: Notice) {
        self.journal.push(Action::Log(notice));
    }

    /// Tells a connection why something was refused. A fatal refusal stops
    /// serving the connection, and a client that broke the protocol has no
    /// session to come back to: if it had one, it has left.
    fn refuse(&mut self, connection: ConnectionId, refusal: Refusal, now: Duration) {
        let code = refusal.code;
        self.log(Notice::Refused {
            connection,
            code,
            message: refusal.message.clone(),
        });
        self.send(connection, &refusal.into_frame());
        if !code.is_fatal() {
            return;
        }
        let member = self
            .connections
            .get(&connection)
            .and_then(ConnectionState::member);
        self.stop_serving(connection, true, now);
        if let Some(member) = member {
            self.end_member(member);
        }
    }

    /// The connection is no longer served: it is detached from its member
    /// (if any) and closed, after its queue is written if `flush`.
    fn stop_serving(&mut self, connection: ConnectionId, flush: bool, now: Duration) {
        let Some(state) = self.connections.get_mut(&connection) else {
            return;
        };
        let member = state.member();
        if planted!(FramesAfterRefusal) && member.is_none() {
            // The bug: the connection stays greeting, so a pipelined hello
            // after the refusal still joins.
            self.journal.push(Action::Close { connection, flush });
            return;
        }
        state.phase = ConnectionPhase::Closing { since: now };
        state.backlog.clear();
        if let Some(member) = member {
            self.detach(member, connection, now);
        }
        self.journal.push(Action::Close { connection, flush });
    }
}

/// A refusal to tell a client: an error frame's fields.
#[derive(Clone, Debug)]
struct Refusal {
    code: ErrorCode,
    message: String,
    id: Option<u64>,
    room: Option<String>,
    retry_after: Option<Duration>,
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            id: None,
            room: None,
            retry_after: None,
        }
    }

    fn about_id(mut self, id: u64) -> Self {
        self.id = Some(id);
        self
    }

    fn about_room(mut self, room: &str) -> Self {
        self.room = Some(room.to_owned());
        self
    }

    fn into_frame(self) -> ServerFrame {
        ServerFrame::Error {
            code: self.code,
            message: self.message,
            id: self.id,
            room: self.room,
            retry_after_ms: self.retry_after.map(duration_ms),
        }
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
