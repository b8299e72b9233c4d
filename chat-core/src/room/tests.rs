//! Unit tests of the room state machine (no runtime, no I/O).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::protocol::{MESSAGE_ID_MAX, Resume, Seq, decode_line};

mod durability;
mod hostile;
mod rooms_and_names;

pub(super) const LOBBY: &str = "lobby";
pub(super) const A: ConnectionId = ConnectionId(1);
pub(super) const B: ConnectionId = ConnectionId(2);
pub(super) const C: ConnectionId = ConnectionId(3);
pub(super) const D: ConnectionId = ConnectionId(4);

pub(super) fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

pub(super) fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

pub(super) fn address(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

/// One action, with its frames decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Out {
    /// A frame for one connection (sends, replays, private events).
    Send(ConnectionId, ServerFrame),
    /// An event for its recipients, as fixed when it was emitted.
    Broadcast(Vec<ConnectionId>, ServerFrame),
    /// A private event for a member's stream, and where it went.
    Private(Option<ConnectionId>, ServerFrame),
    Close(ConnectionId, bool),
    Throttle(ConnectionId, bool),
    Log(Notice),
}

pub(super) fn decode(frame: &Bytes) -> ServerFrame {
    let line = frame
        .strip_suffix(b"\n")
        .expect("every frame ends with a newline");
    decode_line::<ServerFrame>(line).expect("the room encodes valid frames")
}

/// A `Rooms` and a driver that carries out nothing, only records.
pub(super) struct Harness {
    pub rooms: Rooms,
    /// Per connection, the token its welcome carried.
    pub tokens: BTreeMap<ConnectionId, String>,
    /// Every record written (when persistent).
    pub log: Vec<Record>,
    /// Leave records unwritten, so that their actions stay held.
    pub hold: bool,
}

pub(super) fn seed(byte: u8) -> [u8; 32] {
    [byte; 32]
}

impl Harness {
    pub fn new() -> Self {
        Self::with_config(RoomConfig::default())
    }

    pub fn with_config(config: RoomConfig) -> Self {
        Self::from_rooms(Rooms::new(config, "incarnation-1".into(), seed(7), false))
    }

    pub fn from_rooms(rooms: Rooms) -> Self {
        Self {
            rooms,
            tokens: BTreeMap::new(),
            log: Vec::new(),
            hold: false,
        }
    }

    /// Writes every record made so far and tells the journal.
    pub fn write_records(&mut self) {
        while let Some(record) = self.rooms.poll_record() {
            self.rooms.handle_durable(record.lsn);
            self.log.push(record);
        }
    }

    pub fn drain(&mut self) -> Vec<Out> {
        if !self.hold {
            self.write_records();
        }
        let mut outs = Vec::new();
        while let Some(action) = self.rooms.poll_action() {
            match action {
                Action::Replay { to, frames } => {
                    outs.extend(frames.iter().map(|frame| Out::Send(to, decode(frame))));
                }
                Action::Send { to, frame } => {
                    let frame = decode(&frame);
                    if let ServerFrame::Welcome { token, .. } = &frame {
                        self.tokens.insert(to, token.clone());
                    }
                    outs.push(Out::Send(to, frame));
                }
                Action::Broadcast {
                    recipients, frame, ..
                } => {
                    outs.push(Out::Broadcast(recipients.iter().collect(), decode(&frame)));
                }
                Action::Private {
                    connection, frame, ..
                } => outs.push(Out::Private(connection, decode(&frame))),
                Action::Close { connection, flush } => outs.push(Out::Close(connection, flush)),
                Action::Throttle { connection, paused } => {
                    outs.push(Out::Throttle(connection, paused))
                }
                Action::Log(notice) => outs.push(Out::Log(notice)),
            }
        }
        outs
    }

    pub fn open(&mut self, connection: ConnectionId, now: Duration) -> Vec<Out> {
        self.open_from(connection, address(1), now)
    }

    pub fn open_from(&mut self, connection: ConnectionId, peer: IpAddr, now: Duration) -> Vec<Out> {
        self.rooms.handle_connection_opened(connection, peer, now);
        self.drain()
    }

    pub fn frame(
        &mut self,
        connection: ConnectionId,
        frame: ClientFrame,
        now: Duration,
    ) -> Vec<Out> {
        self.rooms.handle_frame(connection, frame, now);
        self.drain()
    }

    /// Several frames handled one after the other, as one read delivers
    /// them; their actions together.
    pub fn frames(
        &mut self,
        connection: ConnectionId,
        frames: Vec<ClientFrame>,
        now: Duration,
    ) -> Vec<Out> {
        for frame in frames {
            self.rooms.handle_frame(connection, frame, now);
        }
        self.drain()
    }

    pub fn tick(&mut self, now: Duration) -> Vec<Out> {
        self.rooms.handle_tick(now);
        self.drain()
    }

    pub fn closed(
        &mut self,
        connection: ConnectionId,
        reason: CloseReason,
        now: Duration,
    ) -> Vec<Out> {
        self.rooms.handle_connection_closed(connection, reason, now);
        self.drain()
    }

    /// Opens `connection`, says hello as `nick` and joins the lobby.
    pub fn member(&mut self, connection: ConnectionId, nick: &str, now: Duration) -> Vec<Out> {
        let mut outs = self.open(connection, now);
        outs.extend(self.frame(connection, hello(nick), now));
        outs.extend(self.frame(connection, join(LOBBY), now));
        outs
    }

    /// A resume hello for the session first welcomed on `welcomed_on`.
    pub fn resume(
        &self,
        welcomed_on: ConnectionId,
        nick: &str,
        rooms: &[(&str, Seq)],
    ) -> ClientFrame {
        ClientFrame::Hello {
            version: crate::protocol::PROTOCOL_VERSION,
            nick: nick.to_owned(),
            resume: Some(Resume {
                token: self.tokens[&welcomed_on].clone(),
                incarnation: self.rooms.incarnation().to_owned(),
                rooms: rooms
                    .iter()
                    .map(|(room, seq)| ((*room).to_owned(), *seq))
                    .collect(),
                private_seq: 0,
            }),
        }
    }
}

pub(super) fn hello(nick: &str) -> ClientFrame {
    ClientFrame::Hello {
        version: crate::protocol::PROTOCOL_VERSION,
        nick: nick.to_owned(),
        resume: None,
    }
}

pub(super) fn join(room: &str) -> ClientFrame {
    ClientFrame::Join {
        room: room.to_owned(),
    }
}

pub(super) fn say(room: &str, id: u64, text: &str) -> ClientFrame {
    ClientFrame::Send {
        room: room.to_owned(),
        id,
        text: text.to_owned(),
        action: false,
    }
}

pub(super) fn private(to: &str, id: u64, text: &str) -> ClientFrame {
    ClientFrame::Private {
        to: to.to_owned(),
        id,
        text: text.to_owned(),
        action: false,
    }
}

/// Every frame `connection` gets, in order, broadcasts included.
pub(super) fn received(outs: &[Out], connection: ConnectionId) -> Vec<ServerFrame> {
    outs.iter()
        .filter_map(|out| match out {
            Out::Send(to, frame) if *to == connection => Some(frame.clone()),
            Out::Broadcast(recipients, frame) if recipients.contains(&connection) => {
                Some(frame.clone())
            }
            Out::Private(Some(to), frame) if *to == connection => Some(frame.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn broadcasts(outs: &[Out]) -> Vec<(Vec<ConnectionId>, ServerFrame)> {
    outs.iter()
        .filter_map(|out| match out {
            Out::Broadcast(recipients, frame) => Some((recipients.clone(), frame.clone())),
            _ => None,
        })
        .collect()
}

pub(super) fn closes(outs: &[Out]) -> Vec<(ConnectionId, bool)> {
    outs.iter()
        .filter_map(|out| match out {
            Out::Close(connection, flush) => Some((*connection, *flush)),
            _ => None,
        })
        .collect()
}

pub(super) fn logs(outs: &[Out]) -> Vec<String> {
    outs.iter()
        .filter_map(|out| match out {
            Out::Log(notice) => Some(notice.to_string()),
            _ => None,
        })
        .collect()
}

pub(super) fn error_codes(frames: &[ServerFrame]) -> Vec<ErrorCode> {
    frames
        .iter()
        .filter_map(|frame| match frame {
            ServerFrame::Error { code, .. } => Some(*code),
            _ => None,
        })
        .collect()
}

pub(super) fn event_seqs(frames: &[ServerFrame]) -> Vec<Seq> {
    frames.iter().filter_map(ServerFrame::event_seq).collect()
}

pub(super) fn joined(room: &str, seq: Seq, nick: &str) -> ServerFrame {
    ServerFrame::Joined {
        room: room.into(),
        seq,
        nick: nick.into(),
    }
}

pub(super) fn left(room: &str, seq: Seq, nick: &str) -> ServerFrame {
    ServerFrame::Left {
        room: room.into(),
        seq,
        nick: nick.into(),
    }
}

pub(super) fn message(room: &str, seq: Seq, nick: &str, text: &str) -> ServerFrame {
    ServerFrame::Message {
        room: room.into(),
        seq,
        nick: nick.into(),
        text: text.into(),
        action: false,
    }
}

pub(super) fn ack(room: &str, id: u64, seq: Seq) -> ServerFrame {
    ServerFrame::Ack {
        id,
        seq,
        room: Some(room.into()),
        to: None,
    }
}

#[test]
fn a_hello_is_welcomed_and_a_join_answered_then_broadcast() {
    let mut harness = Harness::new();
    let opened = harness.open(A, ms(0));
    assert_eq!(
        logs(&opened),
        ["Connection has been established with a new client."]
    );
    let welcomed = harness.frame(A, hello("Joshua"), ms(1));
    let frames = received(&welcomed, A);
    let ServerFrame::Welcome {
        nick,
        token,
        resumed,
        rooms,
        ..
    } = &frames[0]
    else {
        panic!("a welcome first: {frames:?}");
    };
    assert_eq!((nick.as_str(), *resumed, rooms.len()), ("Joshua", false, 0));
    assert_eq!(token.len(), 32, "a 128-bit token in hex");
    assert_eq!(logs(&welcomed), ["The nickname of this client is Joshua."]);
    let entered = harness.frame(A, join(LOBBY), ms(2));
    assert_eq!(
        received(&entered, A),
        [
            ServerFrame::Entered {
                room: LOBBY.into(),
                seq: 1,
                history: 0
            },
            joined(LOBBY, 1, "Joshua")
        ]
    );
}

#[test]
fn a_message_reaches_everyone_and_its_ack_follows_the_event() {
    let mut harness = Harness::new();
    harness.member(A, "Joshua", ms(0));
    let outs = harness.member(B, "John", ms(1));
    assert_eq!(broadcasts(&outs), [(vec![A, B], joined(LOBBY, 2, "John"))]);
    let outs = harness.frame(B, say(LOBBY, 1, "Hello there"), ms(2));
    assert_eq!(
        broadcasts(&outs),
        [(vec![A, B], message(LOBBY, 3, "John", "Hello there"))]
    );
    assert_eq!(
        received(&outs, B),
        [message(LOBBY, 3, "John", "Hello there"), ack(LOBBY, 1, 3)]
    );
}

#[test]
fn a_retry_is_acked_again_and_never_delivered_twice() {
    let mut harness = Harness::new();
    harness.member(A, "Joshua", ms(0));
    harness.frame(A, say(LOBBY, 1, "once"), ms(1));
    let retried = harness.frame(A, say(LOBBY, 1, "once"), ms(2));
    assert_eq!(received(&retried, A), [ack(LOBBY, 1, 2)]);
    assert_eq!(harness.rooms.stats().dedup_hits, 1);
}

#[test]
fn every_message_id_gets_an_answer() {
    let mut harness = Harness::new();
    harness.member(A, "Joshua", ms(0));
    harness.frame(A, say(LOBBY, 5, "five"), ms(1));
    let answers =
        |harness: &mut Harness, frame| error_codes(&received(&harness.frame(A, frame, ms(2)), A));
    assert_eq!(
        answers(&mut harness, say(LOBBY, 5, "not five")),
        [ErrorCode::IdConflict]
    );
    assert_eq!(
        answers(&mut harness, say(LOBBY, 3, "never sent")),
        [ErrorCode::IdStale]
    );
    assert_eq!(
        answers(&mut harness, say(LOBBY, 0, "zero")),
        [ErrorCode::IdInvalid]
    );
    assert_eq!(
        answers(&mut harness, say(LOBBY, MESSAGE_ID_MAX + 1, "huge")),
        [ErrorCode::IdInvalid]
    );
    assert_eq!(
        answers(&mut harness, say(LOBBY, 6, "bell\u{7}")),
        [ErrorCode::TextInvalid]
    );
    assert_eq!(
        answers(&mut harness, say(LOBBY, 6, "bell\u{7}")),
        [ErrorCode::TextInvalid],
        "a retry of a refusal"
    );
    assert_eq!(
        answers(&mut harness, say("elsewhere", 7, "hi")),
        [ErrorCode::NotInRoom]
    );
    let fine = harness.frame(A, say(LOBBY, 8, "still here"), ms(3));
    assert_eq!(
        received(&fine, A).last(),
        Some(&ack(LOBBY, 8, 3)),
        "the connection stays"
    );
}

#[test]
fn quitting_says_bye_and_the_others_see_the_leave_once() {
    let mut harness = Harness::new();
    harness.member(A, "Joshua", ms(0));
    harness.member(B, "John", ms(1));
    let outs = harness.frame(B, ClientFrame::Quit, ms(2));
    assert_eq!(received(&outs, B), [ServerFrame::Bye]);
    assert_eq!(broadcasts(&outs), [(vec![A], left(LOBBY, 3, "John"))]);
    assert_eq!(closes(&outs), [(B, true)]);
    assert!(logs(&outs).contains(&"John has left the server.".to_owned()));
    let after = harness.closed(B, CloseReason::PeerClosed, ms(3));
    assert!(broadcasts(&after).is_empty());
}

#[test]
fn a_silent_connection_is_dropped_and_its_member_leaves_once_after_the_grace() {
    let config = RoomConfig::default();
    let mut harness = Harness::new();
    harness.member(A, "Joshua", ms(0));
    harness.member(B, "John", ms(0));
    harness.frame(
        A,
        ClientFrame::Heartbeat,
        config.heartbeat_timeout - ms(100),
    );
    let dropped = harness.tick(config.heartbeat_timeout);
    assert_eq!(closes(&dropped), [(B, false)]);
    assert!(
        broadcasts(&dropped).is_empty(),
        "no leave yet: the grace period"
    );
    harness.frame(
        A,
        ClientFrame::Heartbeat,
        config.heartbeat_timeout + config.session_grace - secs(1),
    );
    let expired = harness.tick(config.heartbeat_timeout + config.session_grace);
    assert_eq!(broadcasts(&expired), [(vec![A], left(LOBBY, 3, "John"))]);
    let later = harness.tick(config.heartbeat_timeout + config.session_grace + secs(1));
    assert!(broadcasts(&later).is_empty(), "once");
}

#[test]
fn heartbeats_go_to_every_served_connection() {
    let config = RoomConfig::default();
    let mut harness = Harness::new();
    harness.member(A, "Joshua", ms(0));
    harness.open(B, ms(0));
    let outs = harness.tick(config.heartbeat_interval);
    assert_eq!(received(&outs, A), [ServerFrame::Heartbeat]);
    assert_eq!(received(&outs, B), [ServerFrame::Heartbeat]);
}

#[test]
fn a_resume_is_silent_replays_each_room_and_evicts_the_older_connection() {
    let mut harness = Harness::new();
    harness.member(A, "Joshua", ms(0));
    harness.member(B, "John", ms(1));
    harness.frame(B, join("dev"), ms(2));
    harness.frame(A, say(LOBBY, 1, "missed one"), ms(3));
    harness.open(C, ms(4));
    let resume = harness.resume(B, "John", &[(LOBBY, 2), ("dev", 1)]);
    let outs = harness.frame(C, resume, ms(5));
    assert!(broadcasts(&outs).is_empty(), "no leave or join");
    assert_eq!(
        closes(&outs),
        [(B, false)],
        "the older connection is evicted"
    );
    let frames = received(&outs, C);
    let ServerFrame::Welcome {
        resumed,
        rooms,
        replayed,
        ..
    } = &frames[0]
    else {
        panic!("a welcome first: {frames:?}");
    };
    assert!(*resumed);
    assert_eq!(rooms.len(), 2);
    assert_eq!(*replayed, 1);
    assert_eq!(frames[1], message(LOBBY, 3, "Joshua", "missed one"));
    let next = harness.frame(A, say(LOBBY, 2, "live"), ms(6));
    assert_eq!(
        broadcasts(&next)[0].0,
        vec![A, C],
        "the new connection gets broadcasts"
    );
}

#[test]
fn a_resume_with_a_wrong_token_or_nickname_is_refused_and_logged_as_a_rejoin() {
    let mut harness = Harness::new();
    harness.member(A, "Joshua", ms(0));
    harness.open(B, ms(1));
    let mut guess = harness.resume(A, "Joshua", &[(LOBBY, 1)]);
    if let ClientFrame::Hello {
        resume: Some(resume),
        ..
    } = &mut guess
    {
        resume.token = "0".repeat(32);
    }
    let outs = harness.frame(B, guess, ms(2));
    assert_eq!(
        error_codes(&received(&outs, B)),
        [ErrorCode::SessionUnknown]
    );
    assert_eq!(
        logs(&outs),
        ["Joshua came back after their session ended; they join afresh."]
    );
    let mut expired = harness.resume(A, "Joshua", &[(LOBBY, 1)]);
    if let ClientFrame::Hello {
        resume: Some(resume),
        ..
    } = &mut expired
    {
        resume.incarnation = "another-incarnation".into();
    }
    let outs = harness.frame(B, expired, ms(3));
    assert_eq!(
        error_codes(&received(&outs, B)),
        [ErrorCode::SessionUnknown],
        "another incarnation"
    );
    let fresh = harness.frame(B, hello("John"), ms(4));
    assert!(matches!(
        received(&fresh, B)[0],
        ServerFrame::Welcome { resumed: false, .. }
    ));
}

#[test]
fn a_resume_with_a_stale_nickname_still_resumes_and_the_welcome_names_the_session() {
    let mut harness = Harness::new();
    harness.member(A, "Joshua", ms(0));
    harness.frame(
        A,
        ClientFrame::Nick {
            nick: "Josh".into(),
        },
        ms(1),
    );
    harness.closed(A, CloseReason::PeerClosed, ms(2));
    harness.open(B, ms(3));
    let resume = harness.resume(A, "Joshua", &[(LOBBY, 2)]);
    let frames = received(&harness.frame(B, resume, ms(4)), B);
    assert!(
        matches!(&frames[0], ServerFrame::Welcome { resumed: true, nick, .. } if nick == "Josh"),
        "{frames:?}"
    );
}

#[test]
fn a_resume_after_history_was_trimmed_gets_a_gap_then_what_is_kept() {
    let config = RoomConfig {
        history_max: 3,
        ..RoomConfig::default()
    };
    let mut harness = Harness::with_config(config);
    harness.member(A, "Joshua", ms(0));
    harness.member(B, "John", ms(1));
    harness.closed(B, CloseReason::PeerClosed, ms(2));
    for id in 1..=5 {
        harness.frame(A, say(LOBBY, id, "x"), ms(3));
    }
    harness.open(C, ms(4));
    let resume = harness.resume(B, "John", &[(LOBBY, 2)]);
    let frames = received(&harness.frame(C, resume, ms(5)), C);
    assert_eq!(
        frames[1],
        ServerFrame::Gap {
            room: Some(LOBBY.into()),
            from: 3,
            to: 4
        }
    );
    assert_eq!(event_seqs(&frames[2..]), [5, 6, 7]);
}

#[test]
fn shutdown_tells_every_connection_and_keeps_the_sessions() {
    let mut harness = Harness::new();
    harness.member(A, "Joshua", ms(0));
    harness.open(B, ms(0));
    harness.rooms.handle_shutdown(ms(1));
    let outs = harness.drain();
    assert_eq!(received(&outs, A), [ServerFrame::Shutdown]);
    assert_eq!(received(&outs, B), [ServerFrame::Shutdown]);
    assert_eq!(closes(&outs), [(A, true), (B, true)]);
    assert!(broadcasts(&outs).is_empty(), "nobody is announced as left");
    assert_eq!(harness.rooms.member_count(), 1);
}

#[test]
fn queue_overflow_drops_the_connection_and_the_member_can_resume() {
    let mut harness = Harness::new();
    harness.member(A, "Joshua", ms(0));
    let outs = harness.closed(A, CloseReason::QueueOverflow, ms(1));
    assert_eq!(
        logs(&outs),
        ["Dropped the connection of Joshua: outbound queue full, the client does not read."]
    );
    assert_eq!(harness.rooms.stats().slow_readers_dropped, 1);
    harness.open(B, ms(2));
    let resume = harness.resume(A, "Joshua", &[(LOBBY, 1)]);
    assert!(matches!(
        received(&harness.frame(B, resume, ms(3)), B)[0],
        ServerFrame::Welcome { resumed: true, .. }
    ));
}

#[test]
fn tokens_come_from_their_seed_and_nothing_shown_derives_from_them() {
    let token = |seed_byte: u8| {
        let mut harness = Harness::from_rooms(Rooms::new(
            RoomConfig::default(),
            "same".into(),
            seed(seed_byte),
            false,
        ));
        harness.member(A, "Joshua", ms(0));
        harness.tokens[&A].clone()
    };
    assert_eq!(token(1), token(1));
    assert_ne!(token(1), token(2));
    assert!(!token(1).contains("same"));
}
