//! Unit tests of the room state machine (no runtime, no I/O).
use super::*;

use crate::protocol::{TEXT_BYTES_MAX, decode_line};

const LOBBY: &str = "lobby";
const A: ConnectionId = ConnectionId(1);
const B: ConnectionId = ConnectionId(2);
const C: ConnectionId = ConnectionId(3);
const D: ConnectionId = ConnectionId(4);

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

/// One action, with its frame decoded and a broadcast resolved to its
/// recipients the way the driver resolves it: right after the call.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Out {
    Send(ConnectionId, ServerFrame),
    Broadcast(Vec<ConnectionId>, ServerFrame),
    Close(ConnectionId, bool),
    Log(Notice),
}

/// What a welcome told the client, to resume with.
struct Welcomed {
    token: String,
    incarnation: String,
}

fn decode(frame: &Bytes) -> ServerFrame {
    let line = frame
        .strip_suffix(b"\n")
        .expect("every frame ends with a newline");
    decode_line::<ServerFrame>(line).expect("the room encodes valid frames")
}

/// A `Rooms` and a driver that carries out nothing, only records.
struct Harness {
    rooms: Rooms,
    room_ids: BTreeMap<String, RoomId>,
}

impl Harness {
    fn new() -> Self {
        Self::with_config(RoomConfig::default())
    }

    fn with_config(config: RoomConfig) -> Self {
        Self {
            rooms: Rooms::new(config, 7),
            room_ids: BTreeMap::new(),
        }
    }

    fn drain(&mut self) -> Vec<Out> {
        let mut outs = Vec::new();
        while let Some(action) = self.rooms.poll_action() {
            if let Action::Replay { to, frames } = &action {
                // The driver queues a replay's frames in order, like sends.
                outs.extend(frames.iter().map(|frame| Out::Send(*to, decode(frame))));
                continue;
            }
            outs.push(match action {
                Action::Send { to, frame } => Out::Send(to, decode(&frame)),
                Action::Broadcast { room, frame } => {
                    let frame = decode(&frame);
                    if let Some(name) = room_of(&frame) {
                        self.room_ids.insert(name.to_owned(), room);
                    }
                    Out::Broadcast(self.rooms.recipients(room).collect(), frame)
                }
                Action::Close { connection, flush } => Out::Close(connection, flush),
                Action::Log(notice) => Out::Log(notice),
                Action::Replay { .. } => unreachable!("handled above"),
            });
        }
        outs
    }

    /// The id of a room that has had a broadcast.
    fn room_id(&self, name: &str) -> RoomId {
        *self
            .room_ids
            .get(name)
            .expect("the room has had a broadcast")
    }

    fn recipients(&self, room: &str) -> Vec<ConnectionId> {
        self.rooms.recipients(self.room_id(room)).collect()
    }

    fn open(&mut self, connection: ConnectionId, now: Duration) -> Vec<Out> {
        self.rooms.handle_connection_opened(connection, now);
        self.drain()
    }

    fn frame(&mut self, connection: ConnectionId, frame: ClientFrame, now: Duration) -> Vec<Out> {
        self.rooms.handle_frame(connection, frame, now);
        self.drain()
    }

    fn hello(&mut self, connection: ConnectionId, nick: &str, now: Duration) -> Vec<Out> {
        self.frame(connection, hello(nick, LOBBY), now)
    }

    /// Opens `connection` and says hello with `frame` on it.
    fn open_with(
        &mut self,
        connection: ConnectionId,
        frame: ClientFrame,
        now: Duration,
    ) -> Vec<Out> {
        let mut outs = self.open(connection, now);
        outs.extend(self.frame(connection, frame, now));
        outs
    }

    /// Opens `connection` and joins the lobby as `nick`.
    fn join(&mut self, connection: ConnectionId, nick: &str, now: Duration) -> Welcomed {
        let outs = self.open_with(connection, hello(nick, LOBBY), now);
        let frames = received(&outs, connection);
        match frames.first() {
            Some(ServerFrame::Welcome {
                token,
                incarnation,
                resumed: false,
                ..
            }) => Welcomed {
                token: token.clone(),
                incarnation: incarnation.clone(),
            },
            other => panic!("{nick} was not welcomed: {other:?}"),
        }
    }

    fn say(&mut self, connection: ConnectionId, id: u64, text: &str, now: Duration) -> Vec<Out> {
        let send = ClientFrame::Send {
            room: LOBBY.into(),
            id,
            text: text.into(),
        };
        self.frame(connection, send, now)
    }

    fn tick(&mut self, now: Duration) -> Vec<Out> {
        self.rooms.handle_tick(now);
        self.drain()
    }

    fn closed(&mut self, connection: ConnectionId, reason: CloseReason, now: Duration) -> Vec<Out> {
        self.rooms.handle_connection_closed(connection, reason, now);
        self.drain()
    }
}

fn room_of(frame: &ServerFrame) -> Option<&str> {
    match frame {
        ServerFrame::Joined { room, .. }
        | ServerFrame::Left { room, .. }
        | ServerFrame::Message { room, .. } => Some(room),
        _ => None,
    }
}

fn hello(nick: &str, room: &str) -> ClientFrame {
    ClientFrame::Hello {
        version: PROTOCOL_VERSION,
        nick: nick.into(),
        room: room.into(),
        resume: None,
    }
}

fn resume_hello(nick: &str, welcomed: &Welcomed, last_seq: Seq) -> ClientFrame {
    resume_with(nick, &welcomed.token, &welcomed.incarnation, last_seq)
}

fn resume_with(nick: &str, token: &str, incarnation: &str, last_seq: Seq) -> ClientFrame {
    ClientFrame::Hello {
        version: PROTOCOL_VERSION,
        nick: nick.into(),
        room: LOBBY.into(),
        resume: Some(Resume {
            token: token.into(),
            incarnation: incarnation.into(),
            last_seq,
        }),
    }
}

fn joined(seq: Seq, nick: &str) -> ServerFrame {
    ServerFrame::Joined {
        room: LOBBY.into(),
        seq,
        nick: nick.into(),
    }
}

fn left(seq: Seq, nick: &str) -> ServerFrame {
    ServerFrame::Left {
        room: LOBBY.into(),
        seq,
        nick: nick.into(),
    }
}

fn message(seq: Seq, nick: &str, text: &str) -> ServerFrame {
    ServerFrame::Message {
        room: LOBBY.into(),
        seq,
        nick: nick.into(),
        text: text.into(),
    }
}

fn ack(id: u64, seq: Seq) -> ServerFrame {
    ServerFrame::Ack {
        room: LOBBY.into(),
        id,
        seq,
    }
}

/// The frames `connection` is given, in order, directly or by broadcast.
fn received(outs: &[Out], connection: ConnectionId) -> Vec<ServerFrame> {
    outs.iter()
        .filter_map(|out| match out {
            Out::Send(to, frame) if *to == connection => Some(frame.clone()),
            Out::Broadcast(recipients, frame) if recipients.contains(&connection) => {
                Some(frame.clone())
            }
            _ => None,
        })
        .collect()
}

fn broadcasts(outs: &[Out]) -> Vec<(Vec<ConnectionId>, ServerFrame)> {
    outs.iter()
        .filter_map(|out| match out {
            Out::Broadcast(recipients, frame) => Some((recipients.clone(), frame.clone())),
            _ => None,
        })
        .collect()
}

fn closes(outs: &[Out]) -> Vec<(ConnectionId, bool)> {
    outs.iter()
        .filter_map(|out| match out {
            Out::Close(connection, flush) => Some((*connection, *flush)),
            _ => None,
        })
        .collect()
}

fn logs(outs: &[Out]) -> Vec<String> {
    outs.iter()
        .filter_map(|out| match out {
            Out::Log(notice) => Some(notice.to_string()),
            _ => None,
        })
        .collect()
}

fn error_codes(frames: &[ServerFrame]) -> Vec<ErrorCode> {
    frames
        .iter()
        .filter_map(|frame| match frame {
            ServerFrame::Error { code, .. } => Some(*code),
            _ => None,
        })
        .collect()
}

/// What a welcome says about the events that follow it:
/// (resumed, last_seq, replayed).
fn welcome_says(frame: Option<&ServerFrame>) -> (bool, Seq, u64) {
    match frame {
        Some(ServerFrame::Welcome {
            resumed,
            last_seq,
            replayed,
            ..
        }) => (*resumed, *last_seq, *replayed),
        other => panic!("expected a welcome, got {other:?}"),
    }
}

/// The sequence numbers of the events among `frames`, in order.
fn event_seqs(frames: &[ServerFrame]) -> Vec<Seq> {
    frames.iter().filter_map(ServerFrame::event_seq).collect()
}

fn position(outs: &[Out], wanted: &Out) -> usize {
    outs.iter()
        .position(|out| out == wanted)
        .unwrap_or_else(|| panic!("{wanted:?} not in {outs:?}"))
}

#[test]
fn a_join_welcomes_the_joiner_and_broadcasts_joined_with_seq_1() {
    let mut harness = Harness::new();
    let opened = harness.open(A, ms(0));
    assert_eq!(
        opened,
        [Out::Log(Notice::ConnectionEstablished)],
        "a connection only logs until it says hello"
    );
    assert_eq!(
        logs(&opened),
        ["Connection has been established with a new client."]
    );

    let outs = harness.hello(A, "John", ms(10));
    assert_eq!(logs(&outs), ["The nickname of this client is John."]);
    assert!(closes(&outs).is_empty());
    let frames = received(&outs, A);
    assert_eq!(frames.len(), 2, "a welcome and the join event: {frames:?}");
    let config = RoomConfig::default();
    match &frames[0] {
        ServerFrame::Welcome {
            version,
            room,
            token,
            incarnation,
            resumed,
            last_seq,
            replayed,
            heartbeat_interval_ms,
            heartbeat_timeout_ms,
            text_bytes_max,
        } => {
            assert_eq!(*version, PROTOCOL_VERSION);
            assert_eq!(*last_seq, 0, "the room had no event before the join");
            assert_eq!(*replayed, 0, "a fresh join replays nothing");
            assert_eq!(room, LOBBY);
            assert_eq!(token.len(), 32, "a token of 128 random bits in hex");
            assert_eq!(incarnation, harness.rooms.incarnation());
            assert_ne!(token, incarnation);
            assert!(!resumed);
            assert_eq!(
                *heartbeat_interval_ms,
                duration_ms(config.heartbeat_interval)
            );
            assert_eq!(*heartbeat_timeout_ms, duration_ms(config.heartbeat_timeout));
            assert_eq!(*text_bytes_max, TEXT_BYTES_MAX);
        }
        other => panic!("expected a welcome first, got {other:?}"),
    }
    assert_eq!(frames[1], joined(1, "John"));
    assert_eq!(broadcasts(&outs), [(vec![A], joined(1, "John"))]);
}

#[test]
fn a_second_member_is_announced_to_everyone_with_the_next_seq() {
    let mut harness = Harness::new();
    harness.join(A, "John", ms(0));
    let outs = harness.open_with(B, hello("Mary", LOBBY), ms(1));
    assert_eq!(broadcasts(&outs), [(vec![A, B], joined(2, "Mary"))]);
    assert_eq!(received(&outs, A), [joined(2, "Mary")]);
    assert!(matches!(
        received(&outs, B).as_slice(),
        [
            ServerFrame::Welcome { .. },
            ServerFrame::Joined { seq: 2, .. }
        ]
    ));
    assert_eq!(
        logs(&outs),
        [
            "Connection has been established with a new client.",
            "The nickname of this client is Mary."
        ]
    );
}

#[test]
fn messages_get_increasing_seqs_and_the_ack_follows_the_broadcast() {
    let mut harness = Harness::new();
    harness.join(A, "John", ms(0));
    harness.join(B, "Mary", ms(0));

    let outs = harness.say(A, 1, "Hello there", ms(1));
    assert_eq!(
        outs,
        [
            Out::Broadcast(vec![A, B], message(3, "John", "Hello there")),
            Out::Send(A, ack(1, 3)),
        ]
    );
    let outs = harness.say(B, 1, "Hi John, ça va ? 李", ms(2));
    assert_eq!(
        outs,
        [
            Out::Broadcast(vec![A, B], message(4, "Mary", "Hi John, ça va ? 李")),
            Out::Send(B, ack(1, 4)),
        ]
    );
    let outs = harness.say(A, 2, "Fine", ms(3));
    assert_eq!(
        outs,
        [
            Out::Broadcast(vec![A, B], message(5, "John", "Fine")),
            Out::Send(A, ack(2, 5)),
        ]
    );
    assert_eq!(harness.rooms.stats(), Stats::default());
}

#[test]
fn a_taken_nickname_is_refused_and_the_first_member_is_unaffected() {
    let mut harness = Harness::new();
    harness.join(A, "John", ms(0));
    let outs = harness.open_with(B, hello("John", LOBBY), ms(1));
    let frames = received(&outs, B);
    assert_eq!(error_codes(&frames), [ErrorCode::NickTaken]);
    assert_eq!(frames.len(), 1, "nothing but the error: {frames:?}");
    assert_eq!(
        closes(&outs),
        [(B, true)],
        "closed after the error is written"
    );
    assert!(broadcasts(&outs).is_empty());
    assert!(received(&outs, A).is_empty());
    assert!(
        logs(&outs)
            .iter()
            .any(|line| line.starts_with("Refused client #2:")),
        "{outs:?}"
    );
    assert_eq!(harness.recipients(LOBBY), [A]);

    let outs = harness.say(A, 1, "still here", ms(2));
    assert_eq!(
        outs,
        [
            Out::Broadcast(vec![A], message(2, "John", "still here")),
            Out::Send(A, ack(1, 2)),
        ]
    );
}

#[test]
fn the_same_nickname_in_another_room_is_fine() {
    let mut harness = Harness::new();
    harness.join(A, "John", ms(0));
    let outs = harness.open_with(B, hello("John", "kitchen"), ms(1));
    assert!(error_codes(&received(&outs, B)).is_empty(), "{outs:?}");
    assert_eq!(
        broadcasts(&outs),
        [(
            vec![B],
            ServerFrame::Joined {
                room: "kitchen".into(),
                seq: 1,
                nick: "John".into()
            }
        )],
        "each room numbers its own events from 1"
    );
    assert_eq!(harness.recipients(LOBBY), [A]);
    assert_eq!(harness.recipients("kitchen"), [B]);
    let outs = harness.say(A, 1, "lobby only", ms(2));
    assert!(received(&outs, B).is_empty());
}

#[test]
fn an_invalid_nickname_is_refused() {
    let long = "x".repeat(protocol::NICK_CHARS_MAX + 1);
    let nicks = [
        "",
        "   ",
        " John",
        "John ",
        "a\u{7}b",
        "a\nb",
        long.as_str(),
    ];
    let mut harness = Harness::new();
    for (number, nick) in (10..).zip(nicks) {
        let connection = ConnectionId(number);
        let outs = harness.open_with(connection, hello(nick, LOBBY), ms(0));
        let frames = received(&outs, connection);
        assert_eq!(error_codes(&frames), [ErrorCode::NickInvalid], "{nick:?}");
        assert_eq!(frames.len(), 1, "no welcome for {nick:?}: {frames:?}");
        assert_eq!(closes(&outs), [(connection, true)], "{nick:?}");
        assert!(broadcasts(&outs).is_empty(), "{nick:?}");
    }
    // The longest nickname allowed is fine.
    harness.join(A, &"x".repeat(protocol::NICK_CHARS_MAX), ms(1));
}

#[test]
fn an_invalid_room_name_is_refused() {
    let mut harness = Harness::new();
    let outs = harness.open_with(A, hello("John", " lobby"), ms(0));
    assert_eq!(error_codes(&received(&outs, A)), [ErrorCode::RoomInvalid]);
    assert_eq!(closes(&outs), [(A, true)]);
}

#[test]
fn an_unsupported_version_is_refused() {
    let mut harness = Harness::new();
    let hello = ClientFrame::Hello {
        version: PROTOCOL_VERSION + 1,
        nick: "John".into(),
        room: LOBBY.into(),
        resume: None,
    };
    let outs = harness.open_with(A, hello, ms(0));
    let frames = received(&outs, A);
    assert_eq!(error_codes(&frames), [ErrorCode::UnsupportedVersion]);
    assert_eq!(frames.len(), 1, "{frames:?}");
    match &frames[0] {
        ServerFrame::Error { message, .. } => {
            assert!(message.contains('1') && message.contains('2'), "{message}");
        }
        other => panic!("expected an error, got {other:?}"),
    }
    assert_eq!(closes(&outs), [(A, true)]);
    assert!(broadcasts(&outs).is_empty());
}

#[test]
fn a_send_before_hello_is_a_protocol_violation() {
    let mut harness = Harness::new();
    harness.join(A, "John", ms(0));
    harness.open(B, ms(1));
    let outs = harness.say(B, 1, "sneaky", ms(2));
    assert_eq!(
        error_codes(&received(&outs, B)),
        [ErrorCode::ProtocolViolation]
    );
    assert_eq!(closes(&outs), [(B, true)]);
    assert!(broadcasts(&outs).is_empty());
    let outs = harness.say(A, 1, "next", ms(3));
    assert_eq!(
        broadcasts(&outs),
        [(vec![A], message(2, "John", "next"))],
        "the refused message took no seq"
    );
}

#[test]
fn a_second_hello_or_a_send_to_another_room_is_a_protocol_violation_that_ends_the_session() {
    let mut harness = Harness::new();
    harness.join(A, "John", ms(0));
    harness.join(B, "Mary", ms(0));
    let outs = harness.hello(A, "John", ms(1));
    assert_eq!(
        error_codes(&received(&outs, A)),
        [ErrorCode::ProtocolViolation]
    );
    assert_eq!(closes(&outs), [(A, true)]);
    assert_eq!(broadcasts(&outs), [(vec![B], left(3, "John"))]);
    assert_eq!(
        logs(&outs).last().map(String::as_str),
        Some("John has left the server.")
    );

    harness.join(C, "Paul", ms(2));
    let send = ClientFrame::Send {
        room: "kitchen".into(),
        id: 1,
        text: "hi".into(),
    };
    let outs = harness.frame(C, send, ms(3));
    assert_eq!(
        error_codes(&received(&outs, C)),
        [ErrorCode::ProtocolViolation]
    );
    assert_eq!(closes(&outs), [(C, true)]);
    assert_eq!(broadcasts(&outs), [(vec![B], left(5, "Paul"))]);
}

#[test]
fn an_invalid_text_is_refused_not_broadcast_and_ends_the_session() {
    let config = RoomConfig {
        text_bytes_max: 10,
        ..RoomConfig::default()
    };
    let mut harness = Harness::with_config(config);
    harness.join(A, "Observer", ms(0));
    let texts = ["", "   ", "bell\u{7}", "\u{1b}[2J", "eleven byte", "ééééé!"];
    let mut last_seq = 1;
    for (number, text) in (10..).zip(texts) {
        let connection = ConnectionId(number);
        let nick = format!("user{number}");
        harness.join(connection, &nick, ms(1));
        let outs = harness.say(connection, 1, text, ms(2));
        let frames = received(&outs, connection);
        assert_eq!(error_codes(&frames), [ErrorCode::TextInvalid], "{text:?}");
        assert_eq!(frames.len(), 1, "no ack for {text:?}: {frames:?}");
        assert_eq!(closes(&outs), [(connection, true)], "{text:?}");
        assert_eq!(
            broadcasts(&outs),
            [(vec![A], left(last_seq + 2, &nick))],
            "only the left event, to the others: {text:?}"
        );
        last_seq += 2;
    }
    // Exactly the limit, and a tab, are fine; no seq was used by a refusal.
    let outs = harness.say(A, 1, "ten\tbytes!", ms(3));
    assert_eq!(
        outs,
        [
            Out::Broadcast(vec![A], message(last_seq + 1, "Observer", "ten\tbytes!")),
            Out::Send(A, ack(1, last_seq + 1)),
        ]
    );
}

#[test]
fn a_bad_frame_gets_an_error_and_a_close() {
    let mut harness = Harness::new();
    harness.join(A, "John", ms(0));
    harness.rooms.handle_bad_frame(
        A,
        &FrameError::TooLarge {
            limit: protocol::FRAME_BYTES_MAX,
        },
        ms(1),
    );
    let outs = harness.drain();
    assert_eq!(error_codes(&received(&outs, A)), [ErrorCode::FrameTooLarge]);
    assert_eq!(closes(&outs), [(A, true)]);
    assert_eq!(
        logs(&outs).last().map(String::as_str),
        Some("John has left the server.")
    );
    // The connection closing afterwards ends nothing twice.
    let outs = harness.closed(A, CloseReason::PeerClosed, ms(1));
    assert!(broadcasts(&outs).is_empty(), "{outs:?}");

    // A truncated frame means the peer is gone: nobody to tell.
    harness.join(B, "Mary", ms(2));
    harness
        .rooms
        .handle_bad_frame(B, &FrameError::Truncated, ms(3));
    let outs = harness.drain();
    assert!(received(&outs, B).is_empty(), "{outs:?}");
    assert_eq!(closes(&outs), [(B, false)]);
}

#[test]
fn exit_says_bye_closes_and_tells_only_the_others() {
    let mut harness = Harness::new();
    harness.join(A, "John", ms(0));
    harness.join(B, "Mary", ms(0));
    let outs = harness.frame(A, ClientFrame::Leave, ms(1));
    assert_eq!(received(&outs, A), [ServerFrame::Bye]);
    assert_eq!(received(&outs, B), [left(3, "John")]);
    assert_eq!(broadcasts(&outs), [(vec![B], left(3, "John"))]);
    assert_eq!(closes(&outs), [(A, true)]);
    assert!(
        position(&outs, &Out::Send(A, ServerFrame::Bye)) < position(&outs, &Out::Close(A, true)),
        "bye before the close: {outs:?}"
    );
    assert_eq!(logs(&outs), ["John has left the server."]);
    assert_eq!(harness.recipients(LOBBY), [B]);

    // The connection closing afterwards announces nothing more.
    let outs = harness.closed(A, CloseReason::PeerClosed, ms(2));
    assert!(broadcasts(&outs).is_empty(), "{outs:?}");
    harness.frame(B, ClientFrame::Heartbeat, secs(10));
    let outs = harness.tick(secs(14));
    assert!(broadcasts(&outs).is_empty(), "no second left: {outs:?}");

    // The nickname is free again, and the events go on from there.
    let outs = harness.open_with(C, hello("John", LOBBY), secs(14));
    assert_eq!(broadcasts(&outs), [(vec![B, C], joined(4, "John"))]);
}

#[test]
fn a_session_that_left_cannot_be_resumed() {
    let mut harness = Harness::new();
    let john = harness.join(A, "John", ms(0));
    harness.frame(A, ClientFrame::Leave, ms(1));
    harness.closed(A, CloseReason::PeerClosed, ms(2));
    let outs = harness.open_with(B, resume_hello("John", &john, 1), ms(3));
    assert_eq!(
        error_codes(&received(&outs, B)),
        [ErrorCode::SessionUnknown]
    );
    assert_eq!(harness.rooms.stats().resumes, 0);
}

#[test]
fn a_retried_message_is_acked_again_with_its_seq_and_not_broadcast_twice() {
    let mut harness = Harness::new();
    harness.join(A, "John", ms(0));
    harness.join(B, "Mary", ms(0));
    harness.say(A, 1, "first", ms(1));
    harness.say(A, 2, "second", ms(2));

    let outs = harness.say(A, 2, "second", ms(3));
    assert_eq!(outs, [Out::Send(A, ack(2, 4))]);
    let outs = harness.say(A, 1, "first", ms(4));
    assert_eq!(outs, [Out::Send(A, ack(1, 3))]);
    assert_eq!(harness.rooms.stats().dedup_hits, 2);

    let outs = harness.say(A, 3, "third", ms(5));
    assert_eq!(
        outs,
        [
            Out::Broadcast(vec![A, B], message(5, "John", "third")),
            Out::Send(A, ack(3, 5)),
        ]
    );
    assert_eq!(harness.rooms.stats().dedup_hits, 2);
}

#[test]
fn a_retry_on_a_resumed_connection_is_deduplicated() {
    let mut harness = Harness::new();
    let john = harness.join(A, "John", ms(0));
    harness.join(B, "Mary", ms(0));
    harness.say(A, 1, "lost ack", ms(1));
    harness.closed(A, CloseReason::PeerClosed, ms(2));
    harness.open_with(C, resume_hello("John", &john, 3), ms(3));
    let outs = harness.say(C, 1, "lost ack", ms(4));
    assert_eq!(outs, [Out::Send(C, ack(1, 3))]);
    assert_eq!(harness.rooms.stats().dedup_hits, 1);
}

#[test]
fn heartbeats_go_to_every_connection_every_interval() {
    let mut harness = Harness::new();
    harness.join(A, "John", ms(0));
    harness.open(B, ms(0)); // Not joined yet: it gets heartbeats too.
    assert!(harness.tick(ms(4_999)).is_empty());
    let beat = ServerFrame::Heartbeat;
    assert_eq!(
        harness.tick(secs(5)),
        [Out::Send(A, beat.clone()), Out::Send(B, beat.clone())]
    );
    assert!(harness.tick(ms(5_001)).is_empty());
    assert!(harness.tick(ms(9_999)).is_empty());
    assert_eq!(
        harness.tick(secs(10)),
        [Out::Send(A, beat.clone()), Out::Send(B, beat)]
    );
}

#[test]
fn a_connection_that_keeps_talking_is_not_dropped() {
    let mut harness = Harness::new();
    harness.join(A, "John", ms(0));
    for second in (10..=100).step_by(10) {
        harness.frame(A, ClientFrame::Heartbeat, secs(second));
        let outs = harness.tick(secs(second + 5));
        assert!(closes(&outs).is_empty(), "at {second}s: {outs:?}");
    }
    assert_eq!(harness.rooms.stats().dead_connections_dropped, 0);
}

#[test]
fn a_silent_connection_is_dropped_and_its_session_ends_once_after_the_grace() {
    let mut harness = Harness::new();
    harness.join(A, "John", ms(0));
    harness.join(B, "Mary", ms(0));
    harness.frame(B, ClientFrame::Heartbeat, secs(10));
    let outs = harness.tick(ms(14_999));
    assert!(closes(&outs).is_empty(), "{outs:?}");

    let outs = harness.tick(secs(15));
    assert_eq!(closes(&outs), [(A, false)]);
    assert!(received(&outs, A).is_empty(), "{outs:?}");
    assert!(outs.contains(&Out::Log(Notice::Dropped {
        connection: A,
        nick: Some("John".into()),
        reason: CloseReason::HeartbeatTimeout,
    })));
    assert!(broadcasts(&outs).is_empty(), "no left yet: {outs:?}");
    assert_eq!(harness.recipients(LOBBY), [B]);
    assert_eq!(harness.rooms.stats().dead_connections_dropped, 1);

    // The driver reporting the close it was told to do changes nothing.
    assert!(
        harness
            .closed(A, CloseReason::PeerClosed, secs(15))
            .is_empty()
    );

    let grace = RoomConfig::default().session_grace;
    harness.frame(B, ClientFrame::Heartbeat, secs(20));
    harness.frame(B, ClientFrame::Heartbeat, secs(30));
    harness.frame(B, ClientFrame::Heartbeat, secs(40));
    let outs = harness.tick(secs(15) + grace - ms(1));
    assert!(broadcasts(&outs).is_empty(), "still in grace: {outs:?}");

    let outs = harness.tick(secs(15) + grace);
    assert_eq!(broadcasts(&outs), [(vec![B], left(3, "John"))]);
    assert_eq!(logs(&outs), ["John has left the server."]);
    assert_eq!(harness.rooms.stats().sessions_expired, 1);

    for second in [46, 50, 55] {
        harness.frame(B, ClientFrame::Heartbeat, secs(second));
        let outs = harness.tick(secs(second));
        assert!(broadcasts(&outs).is_empty(), "left twice: {outs:?}");
    }
    assert_eq!(harness.rooms.stats().sessions_expired, 1);
}

#[test]
fn a_resume_within_the_grace_is_silent_and_replays_what_was_missed() {
    let mut harness = Harness::new();
    let john = harness.join(A, "John", ms(0));
    harness.join(B, "Mary", ms(0));
    harness.closed(A, CloseReason::PeerClosed, secs(1));
    harness.say(B, 1, "one", secs(2));
    harness.say(B, 2, "two", secs(3));

    let outs = harness.open_with(C, resume_hello("John", &john, 2), secs(20));
    let frames = received(&outs, C);
    assert_eq!(frames.len(), 3, "{frames:?}");
    match &frames[0] {
        ServerFrame::Welcome {
            token,
            incarnation,
            resumed,
            ..
        } => {
            assert!(resumed);
            assert_eq!(welcome_says(frames.first()), (true, 2, 2));
            assert_eq!(token, &john.token);
            assert_eq!(incarnation, &john.incarnation);
        }
        other => panic!("expected a welcome first, got {other:?}"),
    }
    assert_eq!(
        frames[1..],
        [message(3, "Mary", "one"), message(4, "Mary", "two")]
    );
    assert!(broadcasts(&outs).is_empty(), "no joined event: {outs:?}");
    assert!(received(&outs, B).is_empty());
    assert!(closes(&outs).is_empty());
    assert!(logs(&outs).contains(&"John resumed their session (2 events replayed).".to_string()));
    let stats = harness.rooms.stats();
    assert_eq!((stats.resumes, stats.replayed_events), (1, 2));
    assert_eq!(harness.recipients(LOBBY), [B, C]);

    // The grace period of the old connection no longer applies.
    for second in [25, 32, 40] {
        harness.frame(B, ClientFrame::Heartbeat, secs(second));
        harness.frame(C, ClientFrame::Heartbeat, secs(second));
        let outs = harness.tick(secs(second));
        assert!(broadcasts(&outs).is_empty(), "no left: {outs:?}");
    }
    let outs = harness.say(B, 3, "welcome back", secs(41));
    assert_eq!(received(&outs, C), [message(5, "Mary", "welcome back")]);
}

#[test]
fn a_resume_evicts_the_older_connection_at_once() {
    let mut harness = Harness::new();
    let john = harness.join(A, "John", ms(0));
    harness.join(B, "Mary", ms(0));

    let outs = harness.open_with(C, resume_hello("John", &john, 2), secs(1));
    assert_eq!(closes(&outs), [(A, false)], "closed without flush");
    assert!(received(&outs, A).is_empty());
    assert!(matches!(
        received(&outs, C).as_slice(),
        [ServerFrame::Welcome { resumed: true, .. }]
    ));
    assert!(broadcasts(&outs).is_empty(), "no left or joined: {outs:?}");
    assert!(
        logs(&outs).contains(
            &"Dropped the connection of John (#1): the session resumed on a newer connection."
                .to_string()
        )
    );
    let stats = harness.rooms.stats();
    assert_eq!((stats.resumes, stats.evictions), (1, 1));
    assert_eq!(harness.recipients(LOBBY), [B, C]);

    // A frame still in flight on the old connection is ignored, and its
    // close is no news.
    assert!(harness.say(A, 1, "stale", secs(2)).is_empty());
    assert!(
        harness
            .closed(A, CloseReason::PeerClosed, secs(2))
            .is_empty()
    );

    let outs = harness.say(C, 1, "from the new one", secs(3));
    assert_eq!(
        outs,
        [
            Out::Broadcast(vec![B, C], message(3, "John", "from the new one")),
            Out::Send(C, ack(1, 3)),
        ]
    );
}

#[test]
fn a_resume_after_history_was_trimmed_starts_with_a_gap() {
    let config = RoomConfig {
        history_max: 2,
        ..RoomConfig::default()
    };
    let mut harness = Harness::with_config(config);
    let john = harness.join(A, "John", ms(0));
    harness.closed(A, CloseReason::PeerClosed, ms(1));
    harness.join(B, "Mary", ms(2));
    for id in 1..=3 {
        harness.say(B, id, &format!("message {id}"), ms(3));
    }
    // History holds seqs 4 and 5; John saw 1.
    let outs = harness.open_with(C, resume_hello("John", &john, 1), ms(4));
    let frames = received(&outs, C);
    assert_eq!(welcome_says(frames.first()), (true, 1, 2));
    assert_eq!(
        frames[1..],
        [
            ServerFrame::Gap {
                room: LOBBY.into(),
                from: 2,
                to: 3
            },
            message(4, "Mary", "message 2"),
            message(5, "Mary", "message 3"),
        ]
    );
    let stats = harness.rooms.stats();
    assert_eq!((stats.gap_notices, stats.replayed_events), (1, 2));

    // Nothing missed: no gap, nothing replayed.
    harness.closed(C, CloseReason::PeerClosed, ms(5));
    let outs = harness.open_with(D, resume_hello("John", &john, 5), ms(6));
    let frames = received(&outs, D);
    assert_eq!(welcome_says(frames.first()), (true, 5, 0));
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(harness.rooms.stats().gap_notices, 1);
}

#[test]
fn a_fresh_welcome_carries_the_rooms_last_seq_before_the_join() {
    let mut harness = Harness::new();
    let outs = harness.open_with(A, hello("John", LOBBY), ms(0));
    let frames = received(&outs, A);
    assert_eq!(welcome_says(frames.first()), (false, 0, 0));
    assert_eq!(frames[1..], [joined(1, "John")]);

    let outs = harness.open_with(B, hello("Mary", LOBBY), ms(1));
    let frames = received(&outs, B);
    assert_eq!(welcome_says(frames.first()), (false, 1, 0));
    assert_eq!(frames[1..], [joined(2, "Mary")]);
    let welcome_at = outs
        .iter()
        .position(|out| matches!(out, Out::Send(to, ServerFrame::Welcome { .. }) if *to == B))
        .expect("a welcome");
    assert!(
        welcome_at < position(&outs, &Out::Broadcast(vec![A, B], joined(2, "Mary"))),
        "the welcome comes before the join event it announces: {outs:?}"
    );

    harness.say(A, 1, "one", ms(2));
    harness.say(B, 1, "two", ms(3));
    harness.frame(B, ClientFrame::Leave, ms(4));
    let outs = harness.open_with(C, hello("Paul", LOBBY), ms(5));
    let frames = received(&outs, C);
    assert_eq!(
        welcome_says(frames.first()),
        (false, 5, 0),
        "messages and leaves count: {frames:?}"
    );
    assert_eq!(frames[1..], [joined(6, "Paul")]);

    // Each room numbers its own events.
    let outs = harness.open_with(D, hello("Anna", "kitchen"), ms(6));
    assert_eq!(welcome_says(received(&outs, D).first()), (false, 0, 0));
}

#[test]
fn a_fresh_welcome_after_history_was_trimmed_has_no_gap() {
    let config = RoomConfig {
        history_max: 2,
        ..RoomConfig::default()
    };
    let mut harness = Harness::with_config(config);
    harness.join(A, "John", ms(0));
    for id in 1..=4 {
        harness.say(A, id, "hi", ms(1));
    }
    let outs = harness.open_with(B, hello("Mary", LOBBY), ms(2));
    let frames = received(&outs, B);
    assert_eq!(
        welcome_says(frames.first()),
        (false, 5, 0),
        "the room's last seq, not history's oldest: {frames:?}"
    );
    assert_eq!(frames[1..], [joined(6, "Mary")], "no gap, no replay");
    assert_eq!(harness.rooms.stats().gap_notices, 0);
}

#[test]
fn a_fresh_hello_after_session_unknown_is_welcomed_at_the_rooms_last_seq() {
    let mut harness = Harness::new();
    let john = harness.join(A, "John", ms(0));
    harness.join(B, "Mary", ms(0));
    harness.closed(A, CloseReason::PeerClosed, secs(1));
    let grace = RoomConfig::default().session_grace;
    for second in [10, 20, 30] {
        harness.frame(B, ClientFrame::Heartbeat, secs(second));
    }
    let outs = harness.tick(secs(1) + grace);
    assert_eq!(broadcasts(&outs), [(vec![B], left(3, "John"))]);

    let outs = harness.open_with(C, resume_hello("John", &john, 2), secs(32));
    assert_eq!(
        error_codes(&received(&outs, C)),
        [ErrorCode::SessionUnknown]
    );
    let outs = harness.hello(C, "John", secs(32));
    let frames = received(&outs, C);
    assert_eq!(welcome_says(frames.first()), (false, 3, 0), "{frames:?}");
    assert_eq!(frames[1..], [joined(4, "John")]);
}

#[test]
fn a_resume_welcome_carries_the_clients_last_seq_and_how_many_events_follow() {
    let mut harness = Harness::new();
    let john = harness.join(A, "John", ms(0));
    harness.join(B, "Mary", ms(0));
    harness.say(B, 1, "seen", ms(1));
    harness.closed(A, CloseReason::PeerClosed, ms(2));
    harness.say(B, 2, "missed 1", ms(3));
    harness.frame(B, ClientFrame::Leave, ms(4));
    harness.join(D, "Paul", ms(5));

    let outs = harness.open_with(C, resume_hello("John", &john, 3), ms(6));
    let frames = received(&outs, C);
    assert_eq!(welcome_says(frames.first()), (true, 3, 3), "{frames:?}");
    assert_eq!(
        frames[1..],
        [
            message(4, "Mary", "missed 1"),
            left(5, "Mary"),
            joined(6, "Paul")
        ],
        "exactly `replayed` events follow, in order, from last_seq + 1"
    );
    assert!(logs(&outs).contains(&"John resumed their session (3 events replayed).".to_string()));
    assert_eq!(harness.rooms.stats().replayed_events, 3);

    // Resumed again with everything seen: nothing follows.
    harness.closed(C, CloseReason::PeerClosed, ms(7));
    let outs = harness.open_with(ConnectionId(5), resume_hello("John", &john, 6), ms(8));
    let frames = received(&outs, ConnectionId(5));
    assert_eq!(welcome_says(frames.first()), (true, 6, 0));
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(harness.rooms.stats().replayed_events, 3);
}

#[test]
fn a_resume_before_ones_own_join_was_seen_replays_it() {
    // A client that lost its connection right after the welcome has the
    // welcome's last seq, and gets its own join replayed.
    let mut harness = Harness::new();
    harness.join(A, "Mary", ms(0));
    let outs = harness.open_with(B, hello("John", LOBBY), ms(1));
    let frames = received(&outs, B);
    let (_, welcome_seq, _) = welcome_says(frames.first());
    let ServerFrame::Welcome {
        token, incarnation, ..
    } = &frames[0]
    else {
        unreachable!("checked above");
    };
    let (token, incarnation) = (token.clone(), incarnation.clone());
    harness.closed(B, CloseReason::PeerClosed, ms(2));
    harness.say(A, 1, "where is John?", ms(3));

    let resume = resume_with("John", &token, &incarnation, welcome_seq);
    let outs = harness.open_with(C, resume, ms(4));
    let frames = received(&outs, C);
    assert_eq!(welcome_says(frames.first()), (true, 1, 2));
    assert_eq!(
        frames[1..],
        [joined(2, "John"), message(3, "Mary", "where is John?")]
    );
}

#[test]
fn a_resume_past_trimmed_history_gets_the_welcome_then_the_gap_then_the_events_in_order() {
    let config = RoomConfig {
        history_max: 3,
        ..RoomConfig::default()
    };
    let mut harness = Harness::with_config(config);
    let john = harness.join(A, "John", ms(0));
    harness.join(B, "Mary", ms(0));
    harness.closed(A, CloseReason::PeerClosed, ms(1));
    for id in 1..=6 {
        harness.say(B, id, &format!("m{id}"), ms(2));
    }
    // Seqs 3..=8 are messages; history holds 6, 7 and 8; John saw 2.
    let outs = harness.open_with(C, resume_hello("John", &john, 2), ms(3));
    let frames = received(&outs, C);
    assert_eq!(
        welcome_says(frames.first()),
        (true, 2, 3),
        "replayed counts the events only, not the gap: {frames:?}"
    );
    assert_eq!(
        frames[1],
        ServerFrame::Gap {
            room: LOBBY.into(),
            from: 3,
            to: 5
        }
    );
    assert_eq!(event_seqs(&frames[2..]), [6, 7, 8]);
    assert_eq!(frames.len(), 5, "{frames:?}");
    assert!(logs(&outs).contains(&"John resumed their session (3 events replayed).".to_string()));
    let stats = harness.rooms.stats();
    assert_eq!((stats.gap_notices, stats.replayed_events), (1, 3));

    // What comes next follows the replay without a hole.
    let outs = harness.say(B, 7, "live", ms(4));
    assert_eq!(received(&outs, C), [message(9, "Mary", "live")]);
}

#[test]
fn a_resume_with_an_unknown_session_is_refused_without_closing() {
    let mut harness = Harness::new();
    let john = harness.join(A, "John", ms(0));
    harness.open(B, ms(1));
    let incarnation = harness.rooms.incarnation().to_owned();
    let attempts = [
        resume_with("John", "not a token", &incarnation, 1),
        resume_with("John", &john.token, "another incarnation", 1),
        resume_with("Mary", &john.token, &incarnation, 1),
    ];
    for attempt in attempts {
        let outs = harness.frame(B, attempt.clone(), ms(2));
        let frames = received(&outs, B);
        assert_eq!(
            error_codes(&frames),
            [ErrorCode::SessionUnknown],
            "{attempt:?}"
        );
        assert_eq!(frames.len(), 1, "{frames:?}");
        assert!(closes(&outs).is_empty(), "{attempt:?}: {outs:?}");
        assert!(broadcasts(&outs).is_empty());
    }
    assert_eq!(harness.rooms.stats().resumes, 0);
    assert_eq!(harness.recipients(LOBBY), [A], "John was not evicted");

    // A fresh hello on the same connection works.
    let outs = harness.hello(B, "Mary", ms(3));
    assert!(matches!(
        received(&outs, B).as_slice(),
        [
            ServerFrame::Welcome { resumed: false, .. },
            ServerFrame::Joined { seq: 2, .. }
        ]
    ));
}

#[test]
fn a_queue_overflow_drops_a_slow_reader_who_can_resume() {
    let mut harness = Harness::new();
    let john = harness.join(A, "John", ms(0));
    harness.join(B, "Mary", ms(0));
    let outs = harness.closed(A, CloseReason::QueueOverflow, ms(1));
    assert_eq!(closes(&outs), [(A, false)]);
    assert!(outs.contains(&Out::Log(Notice::Dropped {
        connection: A,
        nick: Some("John".into()),
        reason: CloseReason::QueueOverflow,
    })));
    assert!(broadcasts(&outs).is_empty());
    let stats = harness.rooms.stats();
    assert_eq!(
        (stats.slow_readers_dropped, stats.dead_connections_dropped),
        (1, 0)
    );
    assert_eq!(harness.recipients(LOBBY), [B]);

    harness.say(B, 1, "while you were away", ms(2));
    let outs = harness.open_with(C, resume_hello("John", &john, 2), ms(3));
    assert_eq!(
        received(&outs, C)[1..],
        [message(3, "Mary", "while you were away")]
    );
}

#[test]
fn shutdown_tells_every_connection_and_closes_it_with_flush() {
    let mut harness = Harness::new();
    harness.join(A, "John", ms(0));
    harness.join(B, "Mary", ms(0));
    harness.open(C, ms(0));
    harness.rooms.handle_shutdown();
    let outs = harness.drain();
    assert_eq!(
        outs,
        [
            Out::Log(Notice::ShuttingDown),
            Out::Send(A, ServerFrame::Shutdown),
            Out::Close(A, true),
            Out::Send(B, ServerFrame::Shutdown),
            Out::Close(B, true),
            Out::Send(C, ServerFrame::Shutdown),
            Out::Close(C, true),
        ]
    );
    assert_eq!(logs(&outs), ["Server is shutting down."]);

    let outs = harness.open(D, ms(1));
    assert_eq!(
        outs,
        [Out::Send(D, ServerFrame::Shutdown), Out::Close(D, true)]
    );
}

#[test]
fn recipients_are_only_attached_connections() {
    let mut harness = Harness::new();
    harness.join(A, "John", ms(0));
    harness.open(B, ms(0));
    harness.join(C, "Mary", ms(0));
    harness.open_with(D, hello("Paul", "kitchen"), ms(0));
    assert_eq!(harness.recipients(LOBBY), [A, C]);
    assert_eq!(harness.recipients("kitchen"), [D]);
    harness.closed(A, CloseReason::PeerClosed, ms(1));
    assert_eq!(
        harness.recipients(LOBBY),
        [C],
        "a detached session hears nothing"
    );
    harness.frame(C, ClientFrame::Leave, ms(2));
    assert!(
        harness.recipients(LOBBY).is_empty(),
        "a leaver hears nothing"
    );
}

#[test]
fn the_seed_decides_the_incarnation_and_the_tokens() {
    fn tokens(seed: u64) -> (String, Vec<String>) {
        let mut harness = Harness {
            rooms: Rooms::new(RoomConfig::default(), seed),
            room_ids: BTreeMap::new(),
        };
        let tokens = [(A, "John"), (B, "Mary")]
            .into_iter()
            .map(|(connection, nick)| harness.join(connection, nick, ms(0)).token)
            .collect();
        (harness.rooms.incarnation().to_owned(), tokens)
    }
    let (incarnation, session_tokens) = tokens(42);
    assert_eq!(tokens(42), (incarnation.clone(), session_tokens.clone()));
    assert_ne!(session_tokens[0], session_tokens[1]);
    let (other_incarnation, other_tokens) = tokens(43);
    assert_ne!(incarnation, other_incarnation);
    assert_ne!(session_tokens[0], other_tokens[0]);
    assert_ne!(session_tokens[1], other_tokens[1]);
}

#[test]
fn a_retry_of_an_id_no_longer_remembered_is_neither_delivered_nor_acked() {
    let config = RoomConfig {
        acks_remembered_max: 2,
        ..RoomConfig::default()
    };
    let mut harness = Harness::with_config(config);
    harness.join(A, "John", ms(0));
    for id in 1..=3 {
        harness.say(A, id, "hi", ms(1));
    }
    assert!(
        harness.say(A, 1, "hi", ms(2)).is_empty(),
        "forgotten: no ack"
    );
    assert_eq!(harness.say(A, 2, "hi", ms(3)), [Out::Send(A, ack(2, 3))]);
    assert_eq!(harness.rooms.stats().dedup_hits, 2);
}

#[test]
fn rooms_beyond_the_limit_are_refused() {
    let config = RoomConfig {
        rooms_max: 1,
        ..RoomConfig::default()
    };
    let mut harness = Harness::with_config(config);
    harness.join(A, "John", ms(0));
    let outs = harness.open_with(B, hello("Mary", "kitchen"), ms(1));
    assert_eq!(error_codes(&received(&outs, B)), [ErrorCode::RoomInvalid]);
    assert_eq!(closes(&outs), [(B, true)]);
    harness.join(C, "Mary", ms(2)); // The existing room is still open.
}

#[test]
fn dropped_connections_log_at_info_unless_closed_or_evicted() {
    let dropped = |reason| Notice::Dropped {
        connection: A,
        nick: None,
        reason,
    };
    assert!(!dropped(CloseReason::PeerClosed).is_info());
    assert!(!dropped(CloseReason::Evicted).is_info());
    assert!(dropped(CloseReason::HeartbeatTimeout).is_info());
    assert!(dropped(CloseReason::QueueOverflow).is_info());
    assert!(Notice::LeftServer("John".into()).is_info());
    assert_eq!(
        dropped(CloseReason::HeartbeatTimeout).to_string(),
        "Dropped connection #1: no heartbeat within the timeout."
    );
}

// Bugs found while writing the first version of these tests, fixed since:
// each test below failed before its fix.

/// The protocol asks only for ids that increase within a session, so 0 is a
/// valid first id, and PROTOCOL.md promises that a send is either delivered
/// or, as a retry, acked again. `handle_send` takes any id <= `last_id` (0
/// for a new session) for a retry, finds no remembered ack for it, and drops
/// the message without an ack or an error: the client waits forever.
#[test]
fn a_first_message_with_id_zero_is_not_silently_dropped() {
    let mut harness = Harness::new();
    harness.join(A, "John", ms(0));
    let outs = harness.say(A, 0, "hello", ms(1));
    let frames = received(&outs, A);
    let answered = frames.iter().any(|frame| {
        matches!(
            frame,
            ServerFrame::Ack { id: 0, .. } | ServerFrame::Error { .. }
        )
    });
    assert!(
        answered,
        "the sender got neither an ack nor an error: {outs:?}"
    );
}

/// A client resuming with a `last_seq` of `u64::MAX` (its own token, any
/// value on the wire) makes `replay` compute `last_seq + 1`: an overflow
/// panic in debug and sim builds, a gap notice "from 0" in release. A peer
/// must never panic the server.
#[test]
fn a_resume_claiming_a_seq_beyond_the_room_does_not_panic() {
    let mut harness = Harness::new();
    let john = harness.join(A, "John", ms(0));
    harness.closed(A, CloseReason::PeerClosed, ms(1));
    let outs = harness.open_with(B, resume_hello("John", &john, u64::MAX), ms(2));
    let frames = received(&outs, B);
    assert!(
        !frames
            .iter()
            .any(|frame| matches!(frame, ServerFrame::Gap { .. })),
        "{frames:?}"
    );
    assert_eq!(
        welcome_says(frames.first()),
        (true, 1, 0),
        "the welcome's last seq is the room's, not the claim: {frames:?}"
    );
    assert_eq!(frames.len(), 1, "nothing to replay: {frames:?}");
}
