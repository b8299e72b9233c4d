//! The client's state machine: one user's session with a server.
//!
//! [`Session`] is sans-I/O, like [`crate::room::Rooms`]. The driver reports
//! what happened (`handle_connected`, `handle_frame`, `handle_user_line`,
//! `handle_input_closed`, `handle_tick`, `handle_disconnected`) with the
//! current time and carries out the [`SessionAction`]s it polls: frames to
//! send, [`Line`]s to show the user, connect and disconnect, exit.
//!
//! It keeps the outbox of messages the server has not acknowledged yet (each
//! with the id the client chose for it) and the last sequence number shown,
//! which is what a resume needs.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use crate::protocol::{self, ClientFrame, ErrorCode, PROTOCOL_VERSION, Seq, ServerFrame};

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
    /// Most messages waiting for an ack; input waits while it is full.
    pub unacked_max: usize,
    /// Largest message text before the welcome says otherwise.
    pub text_bytes_max: usize,
}

impl SessionConfig {
    /// Defaults for `nick` in `room`.
    pub fn new(nick: impl Into<String>, room: impl Into<String>) -> Self {
        Self {
            nick: nick.into(),
            room: room.into(),
            heartbeat_interval: Duration::from_secs(5),
            heartbeat_timeout: Duration::from_secs(15),
            unacked_max: 256,
            text_bytes_max: protocol::TEXT_BYTES_MAX,
        }
    }
}

/// A line shown to the user. `Display` gives the exact text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// `X has connected to the chatroom.`
    Joined(String),
    /// `You are now connected to the chatroom.`
    YouAreConnected,
    /// `X: text`
    Message {
        /// Who said it.
        nick: String,
        /// What was said.
        text: String,
    },
    /// `X has left the chatroom.`
    Left(String),
    /// `Disconnecting from server...`
    Disconnecting,
    /// The server is shutting down.
    ServerShutdown,
    /// The server refused us.
    Refused(String),
    /// The server reported an error.
    ServerError(String),
    /// The connection was lost.
    ConnectionLost(String),
    /// The server could not be reached.
    Unreachable(String),
    /// Events the user will never see.
    Gap(u64),
    /// A line typed was not sent.
    NotSent(String),
    /// Messages sent but never acknowledged.
    Undelivered(usize),
}

impl fmt::Display for Line {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Line::Joined(nick) => write!(formatter, "{nick} has connected to the chatroom."),
            Line::YouAreConnected => write!(formatter, "You are now connected to the chatroom."),
            Line::Message { nick, text } => write!(formatter, "{nick}: {text}"),
            Line::Left(nick) => write!(formatter, "{nick} has left the chatroom."),
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
            Line::Undelivered(1) => write!(formatter, "1 message could not be delivered."),
            Line::Undelivered(count) => {
                write!(formatter, "{count} messages could not be delivered.")
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
    /// The connection was lost, or the server shut down.
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
    Done,
}

/// One user's session. See the module docs.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    phase: Phase,
    /// The last event sequence number shown.
    last_seq: Seq,
    /// True until our own join event has been shown.
    awaiting_own_join: bool,
    next_id: u64,
    /// Messages sent (or waiting to be) and not acknowledged, oldest first.
    unacked: VecDeque<(u64, String)>,
    not_delivered: usize,
    input_closed: bool,
    last_heard: Duration,
    last_sent: Duration,
    actions: VecDeque<SessionAction>,
}

impl Session {
    /// A session that starts by connecting.
    pub fn new(config: SessionConfig) -> Self {
        let mut actions = VecDeque::new();
        actions.push_back(SessionAction::Connect);
        Self {
            config,
            phase: Phase::Connecting,
            last_seq: 0,
            awaiting_own_join: true,
            next_id: 1,
            unacked: VecDeque::new(),
            not_delivered: 0,
            input_closed: false,
            last_heard: Duration::ZERO,
            last_sent: Duration::ZERO,
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
            && matches!(
                self.phase,
                Phase::Connecting | Phase::AwaitingWelcome | Phase::Joined
            )
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

    /// The connection is open: say hello.
    pub fn handle_connected(&mut self, now: Duration) {
        assert_eq!(
            self.phase,
            Phase::Connecting,
            "connected while not connecting"
        );
        self.phase = Phase::AwaitingWelcome;
        self.last_heard = now;
        let hello = ClientFrame::Hello {
            version: PROTOCOL_VERSION,
            nick: self.config.nick.clone(),
            room: self.config.room.clone(),
            resume: None,
        };
        self.send(hello, now);
    }

    /// The connection could not be opened.
    pub fn handle_connect_failed(&mut self, reason: &str, _now: Duration) {
        assert_eq!(
            self.phase,
            Phase::Connecting,
            "connect failed while not connecting"
        );
        self.show(Line::Unreachable(reason.to_owned()));
        self.finish(EndReason::Unreachable);
    }

    /// A frame arrived from the server.
    pub fn handle_frame(&mut self, frame: ServerFrame, now: Duration) {
        self.last_heard = now;
        match frame {
            ServerFrame::Welcome { text_bytes_max, .. } => self.handle_welcome(text_bytes_max, now),
            ServerFrame::Joined { seq, nick, .. } => {
                self.handle_event(seq, Line::Joined(nick), now)
            }
            ServerFrame::Left { seq, nick, .. } => self.handle_event(seq, Line::Left(nick), now),
            ServerFrame::Message {
                seq, nick, text, ..
            } => self.handle_event(seq, Line::Message { nick, text }, now),
            ServerFrame::Ack { id, .. } => self.handle_ack(id, now),
            ServerFrame::Gap { from, to, .. } => self.handle_gap(from, to),
            ServerFrame::Heartbeat => {}
            ServerFrame::Bye => {
                self.actions.push_back(SessionAction::Disconnect);
            }
            ServerFrame::Shutdown => {
                self.show(Line::ServerShutdown);
                self.lose_connection(None);
            }
            ServerFrame::Error { code, message } => self.handle_error(code, message),
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
        if self.phase == Phase::Joined {
            let frame = ClientFrame::Send {
                room: self.config.room.clone(),
                id,
                text: line.clone(),
            };
            self.send(frame, now);
        }
        self.unacked.push_back((id, line));
    }

    /// The user's input ended (end of file): leave once everything sent is
    /// acknowledged.
    pub fn handle_input_closed(&mut self, now: Duration) {
        self.input_closed = true;
        self.leave_when_done(now);
    }

    /// Time passed: send a heartbeat if due, give up on a silent server.
    pub fn handle_tick(&mut self, now: Duration) {
        if !matches!(
            self.phase,
            Phase::AwaitingWelcome | Phase::Joined | Phase::Leaving
        ) {
            return;
        }
        if now.saturating_sub(self.last_heard) >= self.config.heartbeat_timeout {
            self.actions.push_back(SessionAction::Disconnect);
            self.lose_connection(Some("the server stopped answering"));
            return;
        }
        if now.saturating_sub(self.last_sent) >= self.config.heartbeat_interval {
            self.send(ClientFrame::Heartbeat, now);
        }
    }

    /// The connection closed.
    pub fn handle_disconnected(&mut self, _now: Duration) {
        match self.phase {
            Phase::Leaving => self.finish(EndReason::Left),
            Phase::Done => {}
            _ => self.lose_connection(Some("the server closed the connection")),
        }
    }

    fn handle_welcome(&mut self, text_bytes_max: usize, now: Duration) {
        if self.phase != Phase::AwaitingWelcome {
            return;
        }
        self.phase = Phase::Joined;
        self.config.text_bytes_max = text_bytes_max;
        let pending: Vec<ClientFrame> = self
            .unacked
            .iter()
            .map(|(id, text)| ClientFrame::Send {
                room: self.config.room.clone(),
                id: *id,
                text: text.clone(),
            })
            .collect();
        for frame in pending {
            self.send(frame, now);
        }
        self.leave_when_done(now);
    }

    fn handle_event(&mut self, seq: Seq, line: Line, now: Duration) {
        if seq <= self.last_seq {
            return; // Already shown (a replay overlapping what we saw).
        }
        if self.last_seq != 0 && seq > self.last_seq + 1 {
            // The server promises a gap notice first; show one regardless.
            self.show(Line::Gap(seq - self.last_seq - 1));
        }
        self.last_seq = seq;
        let own_join = self.awaiting_own_join && line == Line::Joined(self.config.nick.clone());
        self.show(line);
        if own_join {
            self.awaiting_own_join = false;
            self.show(Line::YouAreConnected);
            self.leave_when_done(now);
        }
    }

    fn handle_gap(&mut self, from: Seq, to: Seq) {
        let first_missing = from.max(self.last_seq.saturating_add(1));
        if to >= first_missing {
            self.show(Line::Gap(to - first_missing + 1));
            self.last_seq = to;
        }
    }

    fn handle_ack(&mut self, id: u64, now: Duration) {
        if let Some(position) = self.unacked.iter().position(|(unacked, _)| *unacked == id) {
            // Acks come in order; anything older was acked already.
            self.unacked.drain(..=position);
        }
        self.leave_when_done(now);
    }

    fn handle_error(&mut self, code: ErrorCode, message: String) {
        match code {
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
            // Not in yet: the welcome (or the refusal) decides what happens.
            Phase::Connecting | Phase::AwaitingWelcome => {}
            Phase::Leaving | Phase::Done => {}
        }
    }

    fn lose_connection(&mut self, reason: Option<&str>) {
        if matches!(self.phase, Phase::Done) {
            return;
        }
        if self.phase == Phase::Leaving {
            return self.finish(EndReason::Left);
        }
        if let Some(reason) = reason {
            self.show(Line::ConnectionLost(reason.to_owned()));
        }
        self.finish(EndReason::ConnectionLost);
    }

    fn finish(&mut self, reason: EndReason) {
        if self.phase == Phase::Done {
            return;
        }
        self.phase = Phase::Done;
        let unacked = self.unacked.len();
        if unacked > 0 {
            self.show(Line::Undelivered(unacked));
        }
        let outcome = Outcome {
            reason,
            not_delivered: self.not_delivered + unacked,
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
}

#[cfg(test)]
mod tests;
