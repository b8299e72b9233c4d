//! The client's state machine: one user's session with a server.
//!
//! [`Session`] is sans-I/O, like [`crate::room::Rooms`]. The driver reports
//! what happened (`handle_connected`, `handle_connect_failed`,
//! `handle_frame`, `handle_user_line`, `handle_input_closed`, `handle_tick`,
//! `handle_disconnected`) with the current time and carries out the
//! [`SessionAction`]s it polls: connect, frames to send, [`Line`]s to show,
//! the prompt, disconnect, exit.
//!
//! It connects before it asks for a nickname (so that an unreachable server
//! is reported before the user types one), asks again when the server
//! refuses it, and keeps what a resume needs: the token and incarnation, the
//! last sequence number shown of each room and of the private stream, and
//! the messages not acknowledged yet with the ids the client chose. When
//! the connection is lost after a welcome, it reconnects with exponential
//! backoff and seeded jitter, resumes, and re-sends what is unacknowledged.
//!
//! Submodules: `lines` (what the user sees), `rooms` (the rooms the user is
//! in and their events), `typing` (what typed lines do).

mod invariants;
mod lines;
mod rooms;
mod typing;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use lines::{EndReason, Line, Outcome, Tally};

use crate::protocol::{self, ClientFrame, ErrorCode, PROTOCOL_VERSION, Resume, Seq, ServerFrame};
use rooms::{RoomStatus, RoomView};

/// The prompt while the session waits for a nickname.
pub const NICK_PROMPT: &str = "Choose a nickname: ";

/// Limits and timeouts of a client session.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// The nickname; `None` to ask the user once connected.
    pub nick: Option<String>,
    /// The room to join first.
    pub room: String,
    /// Send a heartbeat after this long without sending anything.
    pub heartbeat_interval: Duration,
    /// Consider the server gone after this long without hearing from it.
    pub heartbeat_timeout: Duration,
    /// Longest wait for the welcome after the hello.
    pub handshake_timeout: Duration,
    /// First pause before reconnecting; it doubles after each failure.
    pub reconnect_backoff_min: Duration,
    /// Longest pause between reconnect attempts.
    pub reconnect_backoff_max: Duration,
    /// Give up after this long without a connection.
    pub reconnect_give_up: Duration,
    /// Most messages waiting for an ack; input waits while it is full.
    pub unacked_max: usize,
    /// Largest message text before the welcome says otherwise.
    pub text_bytes_max: usize,
    /// A gap this long between two ticks means this process was stopped.
    pub pause_threshold: Duration,
    /// Seed of the reconnect jitter: from the OS in production, from the
    /// simulation's seed in tests.
    pub seed: u64,
}

impl SessionConfig {
    /// Defaults for `nick` in `room`.
    pub fn new(nick: impl Into<String>, room: impl Into<String>) -> Self {
        Self {
            nick: Some(nick.into()),
            ..Self::asking(room)
        }
    }

    /// Defaults for a user who is asked for a nickname, joining `room`.
    pub fn asking(room: impl Into<String>) -> Self {
        Self {
            nick: None,
            room: room.into(),
            heartbeat_interval: Duration::from_secs(5),
            heartbeat_timeout: Duration::from_secs(15),
            handshake_timeout: Duration::from_secs(5),
            reconnect_backoff_min: Duration::from_millis(250),
            reconnect_backoff_max: Duration::from_secs(5),
            reconnect_give_up: Duration::from_secs(120),
            unacked_max: 256,
            text_bytes_max: protocol::TEXT_BYTES_MAX,
            pause_threshold: Duration::from_secs(3),
            seed: 0,
        }
    }
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionAction {
    /// Open a connection to the server, then call `handle_connected` or
    /// `handle_connect_failed`.
    Connect,
    /// Send a frame.
    Send(ClientFrame),
    /// Show a line to the user.
    Show(Line),
    /// The prompt before the next typed line is now this.
    Prompt(String),
    /// Close the connection (the driver then calls `handle_disconnected`).
    Disconnect,
    /// The session is over: close the connection, if one is open, once
    /// what was sent is written (within a bound).
    Exit(Outcome),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SessionPhase {
    Connecting,
    /// Connected (or not, if the server gave up waiting): the next typed
    /// line is the nickname.
    AwaitingNick {
        connected: bool,
    },
    AwaitingWelcome,
    Online,
    Leaving,
    /// Connection lost; waiting for the time to reconnect.
    Waiting,
    Done,
}

/// Where a message goes.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    Room(String),
    Private(String),
}

/// A message typed and not acknowledged yet.
#[derive(Clone, Debug)]
struct Pending {
    /// The id the client chose for it.
    id: u64,
    target: Target,
    text: String,
    action: bool,
    /// Whether it went out on some connection (and so may have arrived).
    sent: bool,
}

/// The server's name for this session.
#[derive(Clone, Debug)]
struct Ticket {
    token: String,
    incarnation: String,
}

/// One user's session. See the module docs.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    phase: SessionPhase,
    /// Present once welcomed; what a resume presents.
    ticket: Option<Ticket>,
    /// The nickname, once chosen (the server's, once welcomed).
    nick: Option<String>,
    rooms: BTreeMap<String, RoomView>,
    /// The room typed lines go to.
    current: Option<String>,
    /// The last private event shown.
    private_seq: Seq,
    /// Whether "You are now connected to the chatroom." was shown for this
    /// session's first room.
    first_join_shown: bool,
    next_id: u64,
    /// Messages typed and not acknowledged, oldest first.
    unacked: VecDeque<Pending>,
    tally: Tally,
    input_closed: bool,
    hello_at: Duration,
    last_heard: Duration,
    last_sent: Duration,
    last_tick: Option<Duration>,
    /// When the current outage began.
    offline_since: Option<Duration>,
    backoff: Duration,
    reconnect_at: Duration,
    rng: ChaCha8Rng,
    prompt: String,
    actions: VecDeque<SessionAction>,
}

impl Session {
    /// A session that starts by connecting.
    pub fn new(config: SessionConfig) -> Self {
        let mut actions = VecDeque::new();
        actions.push_back(SessionAction::Connect);
        Self {
            // Lines typed before the first join go to the first room: they
            // are sent after the join, on the same connection.
            current: Some(config.room.clone()),
            backoff: config.reconnect_backoff_min,
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            nick: config.nick.clone(),
            config,
            phase: SessionPhase::Connecting,
            ticket: None,
            rooms: BTreeMap::new(),
            private_seq: 0,
            first_join_shown: false,
            next_id: 1,
            unacked: VecDeque::new(),
            tally: Tally::default(),
            input_closed: false,
            hello_at: Duration::ZERO,
            last_heard: Duration::ZERO,
            last_sent: Duration::ZERO,
            last_tick: None,
            offline_since: None,
            reconnect_at: Duration::ZERO,
            prompt: String::new(),
            actions,
        }
    }

    /// The connection is open: say hello (resuming, if there is a session),
    /// or ask for a nickname first.
    pub fn handle_connected(&mut self, now: Duration) {
        self.input(|session| session.on_connected(now));
    }

    /// The connection could not be opened.
    pub fn handle_connect_failed(&mut self, reason: &str, now: Duration) {
        self.input(|session| session.on_connect_failed(reason, now));
    }

    /// A frame arrived from the server.
    pub fn handle_frame(&mut self, frame: ServerFrame, now: Duration) {
        self.input(|session| session.on_frame(frame, now));
    }

    /// The user typed a line.
    pub fn handle_user_line(&mut self, line: String, now: Duration) {
        self.input(|session| session.on_user_line(line, now));
    }

    /// The user's input ended (end of file, Ctrl-D, a signal): leave once
    /// everything sent is acknowledged.
    pub fn handle_input_closed(&mut self, now: Duration) {
        self.input(|session| session.on_input_closed(now));
    }

    /// The user asked to leave a while ago and the server has not said
    /// goodbye (or acknowledged what was sent): leave now.
    pub fn handle_abandon(&mut self, now: Duration) {
        self.input(|session| session.on_abandon(now));
    }

    /// Time passed: notice that this process was stopped, reconnect when
    /// due, send a heartbeat when due, give up on a silent server.
    pub fn handle_tick(&mut self, now: Duration) {
        self.input(|session| session.on_tick(now));
    }

    /// The connection closed.
    pub fn handle_disconnected(&mut self, now: Duration) {
        self.input(|session| session.on_disconnected(now));
    }

    /// Runs one input, then checks the invariants (in debug and simulation
    /// builds).
    fn input(&mut self, handle: impl FnOnce(&mut Self)) {
        handle(self);
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
    }

    /// The next action for the driver, if any.
    pub fn poll_action(&mut self) -> Option<SessionAction> {
        self.actions.pop_front()
    }

    /// Whether the driver may hand over another typed line: the user has
    /// not left, the outbox has room, and (before the nickname is known)
    /// the server was reached.
    pub fn wants_input(&self) -> bool {
        match self.phase {
            SessionPhase::Leaving | SessionPhase::Done => false,
            SessionPhase::AwaitingNick { .. } => true,
            SessionPhase::Connecting if self.nick.is_none() => false,
            _ => !self.input_closed && self.unacked.len() < self.config.unacked_max,
        }
    }

    /// Messages waiting for an ack.
    pub fn unacked_count(&self) -> usize {
        self.unacked.len()
    }

    /// The room typed lines go to.
    pub fn current_room(&self) -> Option<&str> {
        self.current.as_deref()
    }

    /// The prompt before the next typed line.
    pub fn prompt(&self) -> &str {
        &self.prompt
    }

    fn on_connected(&mut self, now: Duration) {
        if self.phase == SessionPhase::Done {
            self.actions.push_back(SessionAction::Disconnect);
            return;
        }
        assert_eq!(
            self.phase,
            SessionPhase::Connecting,
            "connected while not connecting"
        );
        self.last_heard = now;
        if self.nick.is_none() {
            self.phase = SessionPhase::AwaitingNick { connected: true };
            self.update_prompt();
            return;
        }
        self.say_hello(now);
    }

    fn on_connect_failed(&mut self, reason: &str, now: Duration) {
        if self.phase == SessionPhase::Done {
            return;
        }
        assert_eq!(
            self.phase,
            SessionPhase::Connecting,
            "connect failed while not connecting"
        );
        if self.ticket.is_none() && self.offline_since.is_none() {
            self.show(Line::Unreachable(reason.to_owned()));
            return self.finish(EndReason::Unreachable);
        }
        self.schedule_reconnect(now);
        self.leave_when_done(now);
    }

    fn on_frame(&mut self, frame: ServerFrame, now: Duration) {
        self.last_heard = now;
        match frame {
            ServerFrame::Welcome {
                nick,
                token,
                incarnation,
                resumed,
                rooms,
                private_seq,
                replayed,
                text_bytes_max,
                ..
            } => {
                if self.phase != SessionPhase::AwaitingWelcome {
                    return;
                }
                self.config.text_bytes_max = text_bytes_max;
                if resumed && self.nick.as_deref().is_some_and(|known| known != nick) {
                    // Renamed while the answer was lost on the way.
                    self.show(Line::NickChanged(nick.clone()));
                }
                self.nick = Some(nick);
                self.ticket = Some(Ticket { token, incarnation });
                self.handle_welcome(resumed, rooms, private_seq, replayed, now);
            }
            ServerFrame::Heartbeat => {}
            ServerFrame::Bye => self.actions.push_back(SessionAction::Disconnect),
            ServerFrame::Shutdown => {
                self.show(Line::ServerShutdown);
                self.actions.push_back(SessionAction::Disconnect);
                self.lose_connection("the server shut down", now);
            }
            ServerFrame::Ack { id, .. } => self.handle_ack(id, now),
            ServerFrame::Error {
                code,
                message,
                id,
                room,
                ..
            } => self.handle_error(code, message, id, room, now),
            other => self.handle_stream_frame(other, now),
        }
    }

    fn on_user_line(&mut self, line: String, now: Duration) {
        if let SessionPhase::AwaitingNick { connected } = self.phase {
            return self.choose_nick(line, connected, now);
        }
        self.handle_input(crate::command::parse(&line), now);
    }

    fn on_input_closed(&mut self, now: Duration) {
        self.input_closed = true;
        if matches!(self.phase, SessionPhase::AwaitingNick { .. }) {
            self.actions.push_back(SessionAction::Disconnect);
            return self.finish(EndReason::Left);
        }
        self.leave_when_done(now);
    }

    fn on_abandon(&mut self, now: Duration) {
        if self.phase == SessionPhase::Online {
            self.show(Line::Disconnecting);
            self.send(ClientFrame::Quit, now);
        }
        // No Disconnect: the connection closes with the exit, after the
        // quit is written, so that the server frees the nickname at once.
        self.finish(EndReason::Left);
    }

    fn on_tick(&mut self, now: Duration) {
        let paused = self.last_tick.map(|last| now.saturating_sub(last));
        self.last_tick = Some(now);
        if let Some(paused) = paused.filter(|paused| *paused >= self.config.pause_threshold)
            && self.is_connected()
        {
            return self.handle_pause(paused, now);
        }
        match self.phase {
            SessionPhase::Waiting if now >= self.reconnect_at => {
                self.phase = SessionPhase::Connecting;
                self.actions.push_back(SessionAction::Connect);
            }
            SessionPhase::AwaitingWelcome
                if now.saturating_sub(self.hello_at) >= self.config.handshake_timeout =>
            {
                self.actions.push_back(SessionAction::Disconnect);
                self.lose_connection("no welcome from the server", now);
            }
            SessionPhase::AwaitingWelcome | SessionPhase::Online | SessionPhase::Leaving => {
                if now.saturating_sub(self.last_heard) >= self.config.heartbeat_timeout {
                    self.actions.push_back(SessionAction::Disconnect);
                    self.lose_connection("the server stopped answering", now);
                } else if now.saturating_sub(self.last_sent) >= self.config.heartbeat_interval {
                    self.send(ClientFrame::Heartbeat, now);
                }
            }
            _ => {}
        }
    }

    fn on_disconnected(&mut self, now: Duration) {
        match self.phase {
            SessionPhase::Leaving => self.finish(EndReason::Left),
            SessionPhase::AwaitingNick { .. } => {
                // The server stopped waiting for the nickname: connect again
                // once the user has typed one.
                self.phase = SessionPhase::AwaitingNick { connected: false };
            }
            SessionPhase::AwaitingWelcome | SessionPhase::Online => {
                self.lose_connection("the server closed the connection", now);
            }
            SessionPhase::Waiting | SessionPhase::Connecting | SessionPhase::Done => {}
        }
    }

    fn is_connected(&self) -> bool {
        matches!(
            self.phase,
            SessionPhase::AwaitingWelcome | SessionPhase::Online | SessionPhase::Leaving
        )
    }

    /// This process did not run for `paused` (stopped with Ctrl-Z, a laptop
    /// asleep): that is not the server's silence. Past the server's timeout
    /// the connection is surely gone, so reconnect at once.
    fn handle_pause(&mut self, paused: Duration, now: Duration) {
        self.show(Line::Paused(paused));
        self.last_heard = now;
        if paused >= self.config.heartbeat_timeout {
            self.actions.push_back(SessionAction::Disconnect);
            self.lose_connection("this client was paused", now);
        } else {
            self.send(ClientFrame::Heartbeat, now);
        }
    }

    fn choose_nick(&mut self, line: String, connected: bool, now: Duration) {
        let nick = line.trim().to_owned();
        if let Err(error) = protocol::validate_nick(&nick) {
            self.show(Line::NickRefused(error.to_string()));
            return self.update_prompt();
        }
        self.nick = Some(nick);
        if connected {
            self.say_hello(now);
        } else {
            self.phase = SessionPhase::Connecting;
            self.actions.push_back(SessionAction::Connect);
        }
        self.update_prompt();
    }

    fn say_hello(&mut self, now: Duration) {
        self.phase = SessionPhase::AwaitingWelcome;
        self.hello_at = now;
        let resume = self.ticket.as_ref().map(|ticket| Resume {
            token: ticket.token.clone(),
            incarnation: ticket.incarnation.clone(),
            rooms: self.resume_points(),
            private_seq: self.private_seq,
        });
        let nick = self.nick.clone().expect("a hello has a nickname");
        let hello = ClientFrame::Hello {
            version: PROTOCOL_VERSION,
            nick,
            resume,
        };
        self.send(hello, now);
    }

    fn handle_welcome(
        &mut self,
        resumed: bool,
        rooms: Vec<protocol::RoomStart>,
        private_seq: Seq,
        replayed: u64,
        now: Duration,
    ) {
        self.phase = SessionPhase::Online;
        self.offline_since = None;
        self.backoff = self.config.reconnect_backoff_min;
        if resumed {
            self.show(Line::Resumed(replayed));
            self.private_seq = private_seq;
            self.reconcile_rooms(rooms, now);
        } else {
            self.private_seq = 0;
            self.join_afresh(now);
        }
        self.resend_unacked(now);
        self.update_prompt();
        self.leave_when_done(now);
    }

    fn resend_unacked(&mut self, now: Duration) {
        let frames: Vec<ClientFrame> = self.unacked.iter().map(Pending::frame).collect();
        for pending in &mut self.unacked {
            pending.sent = true;
        }
        for frame in frames {
            self.send(frame, now);
        }
    }

    fn handle_error(
        &mut self,
        code: ErrorCode,
        message: String,
        id: Option<u64>,
        room: Option<String>,
        now: Duration,
    ) {
        if let Some(id) = id {
            return self.message_refused(id, message, now);
        }
        if let Some(room) = room {
            return self.room_request_refused(&room, message, now);
        }
        match code {
            ErrorCode::SessionUnknown if self.phase == SessionPhase::AwaitingWelcome => {
                self.rejoin(now)
            }
            ErrorCode::NickInvalid | ErrorCode::NickTaken
                if self.phase == SessionPhase::AwaitingWelcome =>
            {
                self.nick_refused(code, message);
            }
            ErrorCode::UnsupportedVersion
            | ErrorCode::TooManyConnections
            | ErrorCode::TooManyAttempts
                if self.phase == SessionPhase::AwaitingWelcome =>
            {
                self.show(Line::Refused(message));
                self.actions.push_back(SessionAction::Disconnect);
                self.finish(EndReason::Refused(code));
            }
            _ => self.show(Line::ServerError(message)),
        }
    }

    /// The hello's nickname was refused: an interactive user is asked
    /// again, on the same connection; a nickname from the command line ends
    /// the session.
    fn nick_refused(&mut self, code: ErrorCode, message: String) {
        if self.config.nick.is_some() {
            self.show(Line::Refused(message));
            self.actions.push_back(SessionAction::Disconnect);
            return self.finish(EndReason::Refused(code));
        }
        self.show(Line::NickRefused(message));
        self.nick = None;
        self.phase = SessionPhase::AwaitingNick { connected: true };
        self.update_prompt();
    }

    /// The server forgot the session (expired, or the server lost its
    /// state): join afresh on the same connection.
    fn rejoin(&mut self, now: Duration) {
        self.show(Line::Rejoining);
        self.report_sent_unacked();
        self.ticket = None;
        self.first_join_shown = false;
        for view in self.rooms.values_mut() {
            *view = RoomView::new(RoomStatus::Joining);
        }
        self.say_hello(now);
    }

    /// Leaves once the user is done (`.exit`, end of input), everything
    /// typed is acknowledged, and no join is under way.
    fn leave_when_done(&mut self, now: Duration) {
        let joining = self.rooms.values().any(RoomView::is_joining);
        if self.input_closed && self.unacked.is_empty() && !joining {
            self.leave(now);
        }
    }

    fn leave(&mut self, now: Duration) {
        match self.phase {
            SessionPhase::Online => {
                self.show(Line::Disconnecting);
                self.send(ClientFrame::Quit, now);
                self.phase = SessionPhase::Leaving;
            }
            SessionPhase::Waiting => {
                // Offline: the server ends the session after its grace period.
                self.show(Line::Disconnecting);
                self.finish(EndReason::Left);
            }
            // Not in yet: the welcome (or the refusal) decides what happens.
            _ => {}
        }
    }

    fn lose_connection(&mut self, reason: &str, now: Duration) {
        match self.phase {
            SessionPhase::Done | SessionPhase::Waiting => return,
            SessionPhase::Leaving => return self.finish(EndReason::Left),
            _ => {}
        }
        if self.ticket.is_none() && self.offline_since.is_none() {
            // Never got in: nothing to resume.
            self.show(Line::ConnectionLost(reason.to_owned()));
            return self.finish(EndReason::ConnectionLost);
        }
        if self.input_closed && self.unacked.is_empty() {
            self.show(Line::Disconnecting);
            return self.finish(EndReason::Left);
        }
        if self.offline_since.is_none() {
            self.show(Line::Reconnecting(reason.to_owned()));
            self.offline_since = Some(now);
        }
        self.schedule_reconnect(now);
    }

    /// Waits a backoff with jitter before the next attempt, or gives up.
    fn schedule_reconnect(&mut self, now: Duration) {
        let since = *self.offline_since.get_or_insert(now);
        if now.saturating_sub(since) >= self.config.reconnect_give_up {
            self.show(Line::GaveUp(self.config.reconnect_give_up));
            return self.finish(EndReason::ConnectionLost);
        }
        let backoff = self.backoff;
        let jittered = backoff / 2 + backoff.mul_f64(self.rng.random::<f64>() / 2.0);
        self.reconnect_at = now + jittered;
        self.backoff = (backoff * 2).min(self.config.reconnect_backoff_max);
        self.phase = SessionPhase::Waiting;
    }

    fn finish(&mut self, reason: EndReason) {
        if self.phase == SessionPhase::Done {
            return;
        }
        self.phase = SessionPhase::Done;
        self.report_unacked();
        if self.tally.unconfirmed > 0 || self.tally.refused > 0 {
            self.show(Line::Summary(self.tally));
        }
        let outcome = Outcome {
            reason,
            tally: self.tally,
        };
        self.actions.push_back(SessionAction::Exit(outcome));
    }

    fn send(&mut self, frame: ClientFrame, now: Duration) {
        self.last_sent = now;
        self.actions.push_back(SessionAction::Send(frame));
    }

    fn show(&mut self, line: Line) {
        self.actions.push_back(SessionAction::Show(line));
    }

    /// Tells the driver the prompt, when it changed: the nickname question,
    /// or the current room's name once the user has more than the first.
    fn update_prompt(&mut self) {
        let prompt = match (&self.phase, &self.current) {
            (SessionPhase::AwaitingNick { .. }, _) => NICK_PROMPT.to_owned(),
            (_, Some(room)) if *room == self.config.room && self.rooms.len() <= 1 => String::new(),
            (_, Some(room)) => format!("[{room}] "),
            (_, None) if self.rooms.is_empty() && self.phase == SessionPhase::Online => {
                "[no room] ".to_owned()
            }
            (_, None) => String::new(),
        };
        if prompt != self.prompt {
            self.prompt = prompt.clone();
            self.actions.push_back(SessionAction::Prompt(prompt));
        }
    }
}

impl Pending {
    fn frame(&self) -> ClientFrame {
        match &self.target {
            Target::Room(room) => ClientFrame::Send {
                room: room.clone(),
                id: self.id,
                text: self.text.clone(),
                action: self.action,
            },
            Target::Private(to) => ClientFrame::Private {
                to: to.clone(),
                id: self.id,
                text: self.text.clone(),
                action: self.action,
            },
        }
    }
}

#[cfg(test)]
mod tests;
