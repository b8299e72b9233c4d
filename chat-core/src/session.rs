//! The client's state machine: one user's session with a server.
//!
//! [`Session`] is sans-I/O, like [`crate::room::Rooms`]. The driver reports
//! what happened (`handle_connected`, `handle_connect_failed`,
//! `handle_frame`, `handle_user_line`, `handle_input_closed`, `handle_tick`,
//! `handle_disconnected`) with the current time and carries out the
//! [`SessionAction`]s it polls: connect, frames to send, [`Line`]s to show the
//! user, disconnect, exit.
//!
//! It keeps what a resume needs: the session token and server incarnation
//! from the welcome, the last sequence number shown, and the outbox of
//! messages the server has not acknowledged yet, each with the id the client
//! chose for it. When the connection is lost after the first welcome, it
//! reconnects with exponential backoff and seeded jitter, resumes, and re-sends
//! the outbox (the server drops retries it already accepted).

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::protocol::{self, ClientFrame, ErrorCode, PROTOCOL_VERSION, Resume, Seq, ServerFrame};

/// Limits and timeouts of a client session.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// The nickname.
    pub nick: String,
    /// The room to join.
    pub room: String,
    /// Send a heartbeat after this long without sending anything.
    pub heartbeat_interval: Duration,
    /// Consider the server gone after this long without hearing from it.
    pub heartbeat_timeout: Duration,
    /// Longest wait for the welcome after the connection opened.
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
    /// Seed of the reconnect jitter: from the OS in production, from the
    /// simulation's seed in tests.
    pub seed: u64,
}

impl SessionConfig {
    /// Defaults for `nick` in `room`.
    pub fn new(nick: impl Into<String>, room: impl Into<String>) -> Self {
        Self {
            nick: nick.into(),
            room: room.into(),
            heartbeat_interval: Duration::from_secs(5),
            heartbeat_timeout: Duration::from_secs(15),
            handshake_timeout: Duration::from_secs(5),
            reconnect_backoff_min: Duration::from_millis(250),
            reconnect_backoff_max: Duration::from_secs(5),
            reconnect_give_up: Duration::from_secs(120),
            unacked_max: 256,
            text_bytes_max: protocol::TEXT_BYTES_MAX,
            seed: 0,
        }
    }
}

/// A line shown to the user. `Display` gives the exact text; the sequence
/// numbers of room events are carried along for observers and not shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// `X has connected to the chatroom.`
    Joined {
        /// Who joined.
        nick: String,
        /// The event's sequence number.
        seq: Seq,
    },
    /// `You are now connected to the chatroom.`
    YouAreConnected,
    /// `X: text`
    Message {
        /// Who said it.
        nick: String,
        /// What was said.
        text: String,
        /// The event's sequence number.
        seq: Seq,
    },
    /// `X has left the chatroom.`
    Left {
        /// Who left.
        nick: String,
        /// The event's sequence number.
        seq: Seq,
    },
    /// `Disconnecting from server...`
    Disconnecting,
    /// The server is shutting down.
    ServerShutdown,
    /// The server refused us.
    Refused(String),
    /// The server reported an error.
    ServerError(String),
    /// The connection was lost and will not be retried.
    ConnectionLost(String),
    /// The connection was lost; reconnecting.
    Reconnecting(String),
    /// Reconnected and resumed; this many missed events follow.
    Resumed(u64),
    /// The server no longer knows the session: joining afresh.
    Rejoining,
    /// No connection for too long.
    GaveUp(Duration),
    /// The server could not be reached.
    Unreachable(String),
    /// Events the user will never see.
    Gap(u64),
    /// A line typed was not sent.
    NotSent(String),
    /// Messages sent but never acknowledged.
    Undelivered(usize),
    /// Lines typed but never read by the session, because it had ended.
    Unsent(usize),
}

fn plural(count: u64, one: &str, many: &str) -> String {
    if count == 1 {
        format!("1 {one}")
    } else {
        format!("{count} {many}")
    }
}

impl fmt::Display for Line {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Line::Joined { nick, .. } => write!(formatter, "{nick} has connected to the chatroom."),
            Line::YouAreConnected => write!(formatter, "You are now connected to the chatroom."),
            Line::Message { nick, text, .. } => write!(formatter, "{nick}: {text}"),
            Line::Left { nick, .. } => write!(formatter, "{nick} has left the chatroom."),
            Line::Disconnecting => write!(formatter, "Disconnecting from server..."),
            Line::ServerShutdown => write!(formatter, "The server is shutting down."),
            Line::Refused(reason) => {
                write!(formatter, "The server refused to let you in: {reason}.")
            }
            Line::ServerError(reason) => {
                write!(formatter, "The server reported an error: {reason}.")
            }
            Line::ConnectionLost(reason) => {
                write!(formatter, "Connection to the server lost: {reason}.")
            }
            Line::Reconnecting(reason) => {
                write!(
                    formatter,
                    "Connection to the server lost ({reason}); reconnecting..."
                )
            }
            Line::Resumed(0) => write!(formatter, "Reconnected; nothing was missed."),
            Line::Resumed(missed) => {
                let missed = plural(*missed, "missed message follows", "missed messages follow");
                write!(formatter, "Reconnected; {missed}.")
            }
            Line::Rejoining => write!(
                formatter,
                "The server no longer knows this session; joining the chatroom again \
                 (what was said meanwhile is not shown)."
            ),
            Line::GaveUp(after) => write!(
                formatter,
                "Could not reconnect for {} s; giving up.",
                after.as_secs()
            ),
            Line::Unreachable(reason) => write!(formatter, "Cannot reach the server: {reason}."),
            Line::Gap(1) => write!(
                formatter,
                "(1 message is no longer available and was skipped.)"
            ),
            Line::Gap(count) => write!(
                formatter,
                "({count} messages are no longer available and were skipped.)"
            ),
            Line::NotSent(reason) => write!(formatter, "Not sent: {reason}."),
            Line::Unsent(count) => {
                let count = plural(*count as u64, "typed line was", "typed lines were");
                write!(formatter, "{count} not sent: the session had ended.")
            }
            Line::Undelivered(count) => {
                let count = plural(*count as u64, "message", "messages");
                write!(formatter, "{count} could not be confirmed as delivered.")
            }
        }
    }
}

/// How a session ended; the command line turns it into an exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// The user left (`.exit` or end of input).
    Left,
    /// The server could not be reached.
    Unreachable,
    /// The server refused the hello.
    Refused(ErrorCode),
    /// The connection was lost for good (before the first welcome, or for
    /// longer than the give-up time).
    ConnectionLost,
}

/// The end of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Why it ended.
    pub reason: EndReason,
    /// Lines the user typed that were not delivered (refused locally, or
    /// never acknowledged).
    pub not_delivered: usize,
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
    /// Close the connection (the driver then calls `handle_disconnected`).
    Disconnect,
    /// The session is over.
    Exit(Outcome),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Connecting,
    AwaitingWelcome,
    Joined,
    Leaving,
    /// Connection lost; waiting for the time to reconnect.
    Waiting,
    Done,
}

/// A message typed and not acknowledged yet.
#[derive(Clone, Debug)]
struct Pending {
    /// The id the client chose for it.
    id: u64,
    text: String,
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
    phase: Phase,
    /// Present once welcomed; what a resume presents.
    ticket: Option<Ticket>,
    /// The last event sequence number shown.
    last_seq: Seq,
    /// True until our own join event has been shown.
    awaiting_own_join: bool,
    next_id: u64,
    /// Messages typed and not acknowledged, oldest first.
    unacked: VecDeque<Pending>,
    /// The sequence number of our own join event, once the welcome told it.
    own_join_seq: Option<Seq>,
    not_delivered: usize,
    input_closed: bool,
    connected_at: Duration,
    last_heard: Duration,
    last_sent: Duration,
    /// When the current outage began.
    offline_since: Option<Duration>,
    backoff: Duration,
    reconnect_at: Duration,
    rng: SmallRng,
    actions: VecDeque<SessionAction>,
}

impl Session {
    /// A session that starts by connecting.
    pub fn new(config: SessionConfig) -> Self {
        let mut actions = VecDeque::new();
        actions.push_back(SessionAction::Connect);
        Self {
            backoff: config.reconnect_backoff_min,
            rng: SmallRng::seed_from_u64(config.seed),
            config,
            phase: Phase::Connecting,
            ticket: None,
            last_seq: 0,
            awaiting_own_join: true,
            next_id: 1,
            unacked: VecDeque::new(),
            own_join_seq: None,
            not_delivered: 0,
            input_closed: false,
            connected_at: Duration::ZERO,
            last_heard: Duration::ZERO,
            last_sent: Duration::ZERO,
            offline_since: None,
            reconnect_at: Duration::ZERO,
            actions,
        }
    }

    /// The next action for the driver, if any.
    pub fn poll_action(&mut self) -> Option<SessionAction> {
        self.actions.pop_front()
    }

    /// Whether the driver may hand over another typed line (the outbox has
    /// room and the user has not left).
    pub fn wants_input(&self) -> bool {
        !self.input_closed
            && !matches!(self.phase, Phase::Leaving | Phase::Done)
            && self.unacked.len() < self.config.unacked_max
    }

    /// Messages waiting for an ack.
    pub fn unacked_count(&self) -> usize {
        self.unacked.len()
    }

    /// The last sequence number shown.
    pub fn last_seq(&self) -> Seq {
        self.last_seq
    }

    /// The connection is open: say hello (resuming, if there is a session).
    pub fn handle_connected(&mut self, now: Duration) {
        if self.phase == Phase::Done {
            self.actions.push_back(SessionAction::Disconnect);
            return;
        }
        assert_eq!(
            self.phase,
            Phase::Connecting,
            "connected while not connecting"
        );
        self.phase = Phase::AwaitingWelcome;
        self.connected_at = now;
        self.last_heard = now;
        let resume = self.ticket.as_ref().map(|ticket| Resume {
            token: ticket.token.clone(),
            incarnation: ticket.incarnation.clone(),
            last_seq: self.last_seq,
        });
        self.send_hello(resume, now);
    }

    /// The connection could not be opened.
    pub fn handle_connect_failed(&mut self, reason: &str, now: Duration) {
        if self.phase == Phase::Done {
            return;
        }
        assert_eq!(
            self.phase,
            Phase::Connecting,
            "connect failed while not connecting"
        );
        if self.ticket.is_none() && self.offline_since.is_none() {
            self.show(Line::Unreachable(reason.to_owned()));
            return self.finish(EndReason::Unreachable);
        }
        self.schedule_reconnect(now);
        self.leave_when_done(now);
    }

    /// A frame arrived from the server.
    pub fn handle_frame(&mut self, frame: ServerFrame, now: Duration) {
        self.last_heard = now;
        match frame {
            ServerFrame::Welcome {
                token,
                incarnation,
                resumed,
                last_seq,
                replayed,
                text_bytes_max,
                ..
            } => {
                self.config.text_bytes_max = text_bytes_max;
                self.handle_welcome(
                    Ticket { token, incarnation },
                    resumed,
                    last_seq,
                    replayed,
                    now,
                );
            }
            ServerFrame::Joined { seq, nick, .. } => {
                self.handle_event(Line::Joined { nick, seq }, now)
            }
            ServerFrame::Left { seq, nick, .. } => self.handle_event(Line::Left { nick, seq }, now),
            ServerFrame::Message {
                seq, nick, text, ..
            } => self.handle_event(Line::Message { nick, text, seq }, now),
            ServerFrame::Ack { id, .. } => self.handle_ack(id, now),
            ServerFrame::Gap { from, to, .. } => self.handle_gap(from, to, now),
            ServerFrame::Heartbeat => {}
            ServerFrame::Bye => self.actions.push_back(SessionAction::Disconnect),
            ServerFrame::Shutdown => {
                self.show(Line::ServerShutdown);
                self.actions.push_back(SessionAction::Disconnect);
                self.lose_connection("the server shut down", now);
            }
            ServerFrame::Error { code, message } => self.handle_error(code, message, now),
        }
    }

    /// The user typed a line.
    pub fn handle_user_line(&mut self, line: String, now: Duration) {
        if line.trim() == ".exit" {
            // Like the end of input: leave once what was typed is delivered.
            self.handle_input_closed(now);
            return;
        }
        if let Err(error) = protocol::validate_text(&line, self.config.text_bytes_max) {
            self.not_delivered += 1;
            self.show(Line::NotSent(error.to_string()));
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        let sent = self.phase == Phase::Joined;
        if sent {
            self.send(self.send_frame(id, &line), now);
        }
        self.unacked.push_back(Pending {
            id,
            text: line,
            sent,
        });
    }

    /// The user's input ended (end of file): leave once everything sent is
    /// acknowledged.
    pub fn handle_input_closed(&mut self, now: Duration) {
        self.input_closed = true;
        self.leave_when_done(now);
    }

    /// Time passed: reconnect when due, send a heartbeat when due, give up on
    /// a silent server.
    pub fn handle_tick(&mut self, now: Duration) {
        match self.phase {
            Phase::Waiting if now >= self.reconnect_at => {
                self.phase = Phase::Connecting;
                self.actions.push_back(SessionAction::Connect);
            }
            Phase::AwaitingWelcome
                if now.saturating_sub(self.connected_at) >= self.config.handshake_timeout =>
            {
                self.actions.push_back(SessionAction::Disconnect);
                self.lose_connection("no welcome from the server", now);
            }
            Phase::AwaitingWelcome | Phase::Joined | Phase::Leaving => {
                if now.saturating_sub(self.last_heard) >= self.config.heartbeat_timeout {
                    self.actions.push_back(SessionAction::Disconnect);
                    self.lose_connection("the server stopped answering", now);
                } else if now.saturating_sub(self.last_sent) >= self.config.heartbeat_interval {
                    self.send(ClientFrame::Heartbeat, now);
                }
            }
            Phase::Waiting | Phase::Connecting | Phase::Done => {}
        }
    }

    /// The connection closed.
    pub fn handle_disconnected(&mut self, now: Duration) {
        match self.phase {
            Phase::Leaving => self.finish(EndReason::Left),
            Phase::AwaitingWelcome | Phase::Joined => {
                self.lose_connection("the server closed the connection", now)
            }
            Phase::Waiting | Phase::Connecting | Phase::Done => {}
        }
    }

    fn handle_welcome(
        &mut self,
        ticket: Ticket,
        resumed: bool,
        last_seq: Seq,
        replayed: u64,
        now: Duration,
    ) {
        if self.phase != Phase::AwaitingWelcome {
            return;
        }
        self.phase = Phase::Joined;
        self.ticket = Some(ticket);
        self.offline_since = None;
        self.backoff = self.config.reconnect_backoff_min;
        if resumed {
            self.show(Line::Resumed(replayed));
        } else {
            self.last_seq = last_seq;
            self.own_join_seq = Some(last_seq + 1);
        }
        let pending: Vec<ClientFrame> = self
            .unacked
            .iter()
            .map(|pending| self.send_frame(pending.id, &pending.text))
            .collect();
        for pending in &mut self.unacked {
            pending.sent = true;
        }
        for frame in pending {
            self.send(frame, now);
        }
        self.leave_when_done(now);
    }

    fn handle_event(&mut self, line: Line, now: Duration) {
        let (Line::Joined { seq, .. } | Line::Left { seq, .. } | Line::Message { seq, .. }) = line
        else {
            unreachable!("only room events are handled here");
        };
        if seq <= self.last_seq {
            return; // Already shown (a replay overlapping what we saw).
        }
        if seq > self.last_seq + 1 {
            // The server promises a gap notice first; show one regardless.
            self.show(Line::Gap(seq - self.last_seq - 1));
        }
        self.last_seq = seq;
        self.show(line);
        self.passed_own_join(now);
    }

    /// Once the events shown (or skipped by a gap) reach our own join, the
    /// user is in the room.
    fn passed_own_join(&mut self, now: Duration) {
        if self.awaiting_own_join && self.own_join_seq.is_some_and(|own| self.last_seq >= own) {
            self.awaiting_own_join = false;
            self.show(Line::YouAreConnected);
            self.leave_when_done(now);
        }
    }

    fn handle_gap(&mut self, from: Seq, to: Seq, now: Duration) {
        let first_missing = from.max(self.last_seq.saturating_add(1));
        if to >= first_missing {
            self.show(Line::Gap(to - first_missing + 1));
            self.last_seq = to;
            self.passed_own_join(now);
        }
    }

    fn handle_ack(&mut self, id: u64, now: Duration) {
        if let Some(position) = self.unacked.iter().position(|pending| pending.id == id) {
            // Acks come in order; anything older was acked already.
            self.unacked.drain(..=position);
        }
        self.leave_when_done(now);
    }

    fn handle_error(&mut self, code: ErrorCode, message: String, now: Duration) {
        match code {
            ErrorCode::SessionUnknown if self.phase == Phase::AwaitingWelcome => self.rejoin(now),
            ErrorCode::NickInvalid
            | ErrorCode::NickTaken
            | ErrorCode::RoomInvalid
            | ErrorCode::UnsupportedVersion
                if self.phase == Phase::AwaitingWelcome =>
            {
                self.show(Line::Refused(message));
                self.actions.push_back(SessionAction::Disconnect);
                self.finish(EndReason::Refused(code));
            }
            _ => self.show(Line::ServerError(message)),
        }
    }

    /// The server forgot the session (expired, or the server restarted):
    /// join afresh on the same connection.
    fn rejoin(&mut self, now: Duration) {
        self.show(Line::Rejoining);
        self.report_sent_unacked();
        self.ticket = None;
        self.last_seq = 0;
        self.own_join_seq = None;
        self.awaiting_own_join = true;
        self.send_hello(None, now);
    }

    /// Leaves once the user is done (`.exit` or end of input), everything
    /// typed is acknowledged, and the user has seen themselves join.
    fn leave_when_done(&mut self, now: Duration) {
        if self.input_closed && self.unacked.is_empty() && !self.awaiting_own_join {
            self.leave(now);
        }
    }

    fn leave(&mut self, now: Duration) {
        match self.phase {
            Phase::Joined => {
                self.show(Line::Disconnecting);
                self.send(ClientFrame::Leave, now);
                self.phase = Phase::Leaving;
            }
            Phase::Waiting => {
                // Offline: the server ends the session after its grace period.
                self.show(Line::Disconnecting);
                self.finish(EndReason::Left);
            }
            // Not in yet: the welcome (or the refusal) decides what happens.
            Phase::Connecting | Phase::AwaitingWelcome => {}
            Phase::Leaving | Phase::Done => {}
        }
    }

    fn lose_connection(&mut self, reason: &str, now: Duration) {
        match self.phase {
            Phase::Done | Phase::Waiting => return,
            Phase::Leaving => return self.finish(EndReason::Left),
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
        self.phase = Phase::Waiting;
    }

    fn finish(&mut self, reason: EndReason) {
        if self.phase == Phase::Done {
            return;
        }
        self.phase = Phase::Done;
        self.report_unacked();
        let outcome = Outcome {
            reason,
            not_delivered: self.not_delivered,
        };
        self.actions.push_back(SessionAction::Exit(outcome));
    }

    /// Tells the user about messages never acknowledged, and forgets them.
    fn report_unacked(&mut self) {
        let unacked = self.unacked.len();
        if unacked > 0 {
            self.show(Line::Undelivered(unacked));
            self.not_delivered += unacked;
            self.unacked.clear();
        }
    }

    /// On a rejoin: messages that went out may have reached the room, and
    /// sending them again could duplicate them, so they are reported and
    /// forgotten; those never sent are kept, to go out on the new session.
    fn report_sent_unacked(&mut self) {
        let before = self.unacked.len();
        self.unacked.retain(|pending| !pending.sent);
        let dropped = before - self.unacked.len();
        if dropped > 0 {
            self.show(Line::Undelivered(dropped));
            self.not_delivered += dropped;
        }
    }

    fn send_hello(&mut self, resume: Option<Resume>, now: Duration) {
        let hello = ClientFrame::Hello {
            version: PROTOCOL_VERSION,
            nick: self.config.nick.clone(),
            room: self.config.room.clone(),
            resume,
        };
        self.send(hello, now);
    }

    fn send_frame(&self, id: u64, text: &str) -> ClientFrame {
        ClientFrame::Send {
            room: self.config.room.clone(),
            id,
            text: text.to_owned(),
        }
    }

    fn send(&mut self, frame: ClientFrame, now: Duration) {
        self.last_sent = now;
        self.actions.push_back(SessionAction::Send(frame));
    }

    fn show(&mut self, line: Line) {
        self.actions.push_back(SessionAction::Show(line));
    }
}

#[cfg(test)]
mod tests;
