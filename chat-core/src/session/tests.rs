//! Unit tests of the client session state machine (no runtime, no I/O).
use super::*;

use crate::protocol::TEXT_BYTES_MAX;

const NICK: &str = "John";
const ROOM: &str = "lobby";

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const INCARNATION: &str = "fedcba9876543210fedcba9876543210";

/// The most ticks `tick_until_connect` waits: a bound on every loop.
const TICKS_MAX: u32 = 100_000;

/// A session and a driver that carries out nothing, only records.
struct Harness {
    session: Session,
}

impl Harness {
    fn new() -> Self {
        Self::with_config(SessionConfig::new(NICK, ROOM))
    }

    /// A session that has been asked to connect (that action drained).
    fn with_config(config: SessionConfig) -> Self {
        let mut harness = Self {
            session: Session::new(config),
        };
        assert_eq!(harness.drain(), [SessionAction::Connect]);
        harness
    }

    /// Connected at 0, welcomed, and its own join (seq 1) shown, all drained.
    fn joined() -> Self {
        Self::joined_with(SessionConfig::new(NICK, ROOM))
    }

    fn joined_with(config: SessionConfig) -> Self {
        let mut harness = Self::with_config(config);
        harness.session.handle_connected(ms(0));
        harness.frame(welcome(0), ms(0));
        let actions = harness.frame(joined(1, NICK), ms(0));
        assert_eq!(
            lines(&actions),
            [
                "John has connected to the chatroom.",
                "You are now connected to the chatroom."
            ]
        );
        harness.drain();
        harness
    }

    fn drain(&mut self) -> Vec<SessionAction> {
        std::iter::from_fn(|| self.session.poll_action()).collect()
    }

    fn frame(&mut self, frame: ServerFrame, now: Duration) -> Vec<SessionAction> {
        self.session.handle_frame(frame, now);
        self.drain()
    }

    fn type_line(&mut self, line: &str, now: Duration) -> Vec<SessionAction> {
        self.session.handle_user_line(line.to_owned(), now);
        self.drain()
    }

    fn tick(&mut self, now: Duration) -> Vec<SessionAction> {
        self.session.handle_tick(now);
        self.drain()
    }

    fn connected(&mut self, now: Duration) -> Vec<SessionAction> {
        self.session.handle_connected(now);
        self.drain()
    }

    fn disconnected(&mut self, now: Duration) -> Vec<SessionAction> {
        self.session.handle_disconnected(now);
        self.drain()
    }

    fn connect_failed(&mut self, now: Duration) -> Vec<SessionAction> {
        self.session
            .handle_connect_failed("connection refused", now);
        self.drain()
    }

    /// Ticks every millisecond from `from` until the session asks to
    /// connect, and returns when; nothing else may happen on the way.
    fn tick_until_connect(&mut self, from: Duration) -> Duration {
        let mut now = from;
        for _ in 0..TICKS_MAX {
            let actions = self.tick(now);
            if !actions.is_empty() {
                assert_eq!(actions, [SessionAction::Connect], "at {now:?}");
                return now;
            }
            now += ms(1);
        }
        panic!("no connect within {TICKS_MAX} ticks from {from:?}");
    }

    /// After a lost connection: waits for the reconnect, connects, and
    /// returns when, with the hello sent.
    fn reconnect(&mut self, lost_at: Duration) -> (Duration, ClientFrame) {
        let at = self.tick_until_connect(lost_at);
        match self.connected(at).as_slice() {
            [SessionAction::Send(hello @ ClientFrame::Hello { .. })] => (at, hello.clone()),
            other => panic!("expected a hello, got {other:?}"),
        }
    }
}

/// A fresh welcome: events after `last_seq` follow.
fn welcome(last_seq: Seq) -> ServerFrame {
    welcome_with(last_seq, TEXT_BYTES_MAX)
}

fn welcome_with(last_seq: Seq, text_bytes_max: usize) -> ServerFrame {
    let mut welcome = any_welcome(TOKEN, INCARNATION, false, last_seq, 0);
    if let ServerFrame::Welcome {
        text_bytes_max: limit,
        ..
    } = &mut welcome
    {
        *limit = text_bytes_max;
    }
    welcome
}

/// A welcome that resumes the session: `replayed` events after `last_seq`
/// follow.
fn resumed_welcome(last_seq: Seq, replayed: u64) -> ServerFrame {
    any_welcome(TOKEN, INCARNATION, true, last_seq, replayed)
}

fn any_welcome(
    token: &str,
    incarnation: &str,
    resumed: bool,
    last_seq: Seq,
    replayed: u64,
) -> ServerFrame {
    ServerFrame::Welcome {
        version: PROTOCOL_VERSION,
        room: ROOM.into(),
        token: token.into(),
        incarnation: incarnation.into(),
        resumed,
        last_seq,
        replayed,
        heartbeat_interval_ms: 5_000,
        heartbeat_timeout_ms: 15_000,
        text_bytes_max: TEXT_BYTES_MAX,
    }
}

fn hello(resume: Option<Resume>) -> ClientFrame {
    ClientFrame::Hello {
        version: PROTOCOL_VERSION,
        nick: NICK.into(),
        room: ROOM.into(),
        resume,
    }
}

fn hello_fresh() -> ClientFrame {
    hello(None)
}

fn resume_hello(last_seq: Seq) -> ClientFrame {
    hello(Some(Resume {
        token: TOKEN.into(),
        incarnation: INCARNATION.into(),
        last_seq,
    }))
}

fn joined(seq: Seq, nick: &str) -> ServerFrame {
    ServerFrame::Joined {
        room: ROOM.into(),
        seq,
        nick: nick.into(),
    }
}

fn left(seq: Seq, nick: &str) -> ServerFrame {
    ServerFrame::Left {
        room: ROOM.into(),
        seq,
        nick: nick.into(),
    }
}

fn message(seq: Seq, nick: &str, text: &str) -> ServerFrame {
    ServerFrame::Message {
        room: ROOM.into(),
        seq,
        nick: nick.into(),
        text: text.into(),
    }
}

fn ack(id: u64, seq: Seq) -> ServerFrame {
    ServerFrame::Ack {
        room: ROOM.into(),
        id,
        seq,
    }
}

fn gap(from: Seq, to: Seq) -> ServerFrame {
    ServerFrame::Gap {
        room: ROOM.into(),
        from,
        to,
    }
}

fn send(id: u64, text: &str) -> ClientFrame {
    ClientFrame::Send {
        room: ROOM.into(),
        id,
        text: text.into(),
    }
}

/// The texts shown to the user, in order.
fn lines(actions: &[SessionAction]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|action| match action {
            SessionAction::Show(line) => Some(line.to_string()),
            _ => None,
        })
        .collect()
}

/// The frames sent, in order.
fn sent(actions: &[SessionAction]) -> Vec<ClientFrame> {
    actions
        .iter()
        .filter_map(|action| match action {
            SessionAction::Send(frame) => Some(frame.clone()),
            _ => None,
        })
        .collect()
}

fn show(line: Line) -> SessionAction {
    SessionAction::Show(line)
}

fn reconnecting(reason: &str) -> SessionAction {
    show(Line::Reconnecting(reason.into()))
}

fn session_unknown() -> ServerFrame {
    ServerFrame::Error {
        code: ErrorCode::SessionUnknown,
        message: "session unknown or expired: join afresh".into(),
    }
}

/// A config whose reconnect pauses are easy to bound.
fn backoff_config(min: Duration, max: Duration, seed: u64) -> SessionConfig {
    SessionConfig {
        reconnect_backoff_min: min,
        reconnect_backoff_max: max,
        seed,
        ..SessionConfig::new(NICK, ROOM)
    }
}

/// The pauses before `attempts` reconnects that all fail, the connection
/// having been lost at 1 s: each from the loss or the previous failure to
/// the tick that asks to connect.
fn reconnect_pauses(config: SessionConfig, attempts: usize) -> Vec<Duration> {
    let mut harness = Harness::joined_with(config);
    let mut since = secs(1);
    harness.disconnected(since);
    let mut pauses = Vec::new();
    for _ in 0..attempts {
        let at = harness.tick_until_connect(since);
        pauses.push(at - since);
        assert!(harness.connect_failed(at).is_empty(), "retries quietly");
        since = at;
    }
    pauses
}

fn exit(reason: EndReason, not_delivered: usize) -> SessionAction {
    SessionAction::Exit(Outcome {
        reason,
        not_delivered,
    })
}

#[test]
fn a_new_session_first_asks_to_connect() {
    let mut session = Session::new(SessionConfig::new(NICK, ROOM));
    assert_eq!(session.poll_action(), Some(SessionAction::Connect));
    assert_eq!(session.poll_action(), None);
    assert!(session.wants_input());
    assert_eq!((session.unacked_count(), session.last_seq()), (0, 0));
}

#[test]
fn once_connected_it_says_hello_with_its_nick_and_room() {
    let mut harness = Harness::with_config(SessionConfig::new("Mary", "kitchen"));
    harness.session.handle_connected(ms(3));
    assert_eq!(
        harness.drain(),
        [SessionAction::Send(ClientFrame::Hello {
            version: PROTOCOL_VERSION,
            nick: "Mary".into(),
            room: "kitchen".into(),
            resume: None,
        })]
    );
}

#[test]
fn the_welcome_then_its_own_join_show_the_connected_lines() {
    let mut harness = Harness::new();
    harness.session.handle_connected(ms(0));
    harness.drain();
    assert!(
        harness.frame(welcome(6), ms(1)).is_empty(),
        "the welcome alone shows nothing"
    );
    assert_eq!(harness.session.last_seq(), 6, "taken from the welcome");
    let actions = harness.frame(joined(7, NICK), ms(2));
    assert_eq!(
        actions,
        [
            show(Line::Joined {
                nick: NICK.into(),
                seq: 7
            }),
            show(Line::YouAreConnected),
        ],
        "no gap for what happened before we joined"
    );
    assert_eq!(
        lines(&actions),
        [
            "John has connected to the chatroom.",
            "You are now connected to the chatroom."
        ]
    );
    assert_eq!(harness.session.last_seq(), 7);
    let actions = harness.frame(joined(8, "Mary"), ms(3));
    assert_eq!(lines(&actions), ["Mary has connected to the chatroom."]);
}

#[test]
fn messages_and_leaves_show_as_the_original_did() {
    let mut harness = Harness::joined();
    let actions = harness.frame(message(2, "Mary", "Hello there"), ms(1));
    assert_eq!(
        actions,
        [show(Line::Message {
            nick: "Mary".into(),
            text: "Hello there".into(),
            seq: 2
        })],
        "the line carries the event's seq"
    );
    assert_eq!(lines(&actions), ["Mary: Hello there"]);
    let actions = harness.frame(message(3, NICK, "Hi Mary, ça va ? 李"), ms(2));
    assert_eq!(lines(&actions), ["John: Hi Mary, ça va ? 李"]);
    let actions = harness.frame(left(4, "Mary"), ms(3));
    assert_eq!(
        actions,
        [show(Line::Left {
            nick: "Mary".into(),
            seq: 4
        })]
    );
    assert_eq!(lines(&actions), ["Mary has left the chatroom."]);
    assert_eq!(harness.session.last_seq(), 4);
}

#[test]
fn every_line_displays_its_exact_text() {
    let cases = [
        (
            Line::Joined {
                nick: "X".into(),
                seq: 1,
            },
            "X has connected to the chatroom.",
        ),
        (
            Line::YouAreConnected,
            "You are now connected to the chatroom.",
        ),
        (
            Line::Message {
                nick: "X".into(),
                text: "Hello there".into(),
                seq: 2,
            },
            "X: Hello there",
        ),
        (
            Line::Left {
                nick: "X".into(),
                seq: 3,
            },
            "X has left the chatroom.",
        ),
        (Line::Disconnecting, "Disconnecting from server..."),
        (Line::ServerShutdown, "The server is shutting down."),
        (
            Line::Refused("no".into()),
            "The server refused to let you in: no.",
        ),
        (
            Line::ServerError("oops".into()),
            "The server reported an error: oops.",
        ),
        (
            Line::ConnectionLost("gone".into()),
            "Connection to the server lost: gone.",
        ),
        (
            Line::Reconnecting("gone".into()),
            "Connection to the server lost (gone); reconnecting...",
        ),
        (Line::Resumed(0), "Reconnected; nothing was missed."),
        (Line::Resumed(1), "Reconnected; 1 missed message follows."),
        (Line::Resumed(4), "Reconnected; 4 missed messages follow."),
        (
            Line::Rejoining,
            "The server no longer knows this session; joining the chatroom again \
             (what was said meanwhile is not shown).",
        ),
        (
            Line::GaveUp(secs(120)),
            "Could not reconnect for 120 s; giving up.",
        ),
        (
            Line::Unreachable("refused".into()),
            "Cannot reach the server: refused.",
        ),
        (
            Line::Gap(1),
            "(1 message is no longer available and was skipped.)",
        ),
        (
            Line::Gap(2),
            "(2 messages are no longer available and were skipped.)",
        ),
        (Line::NotSent("too long".into()), "Not sent: too long."),
        (
            Line::Undelivered(1),
            "1 message could not be confirmed as delivered.",
        ),
        (
            Line::Undelivered(3),
            "3 messages could not be confirmed as delivered.",
        ),
    ];
    for (line, text) in cases {
        assert_eq!(line.to_string(), text);
    }
}

#[test]
fn the_seq_of_an_event_line_is_not_shown() {
    let early = Line::Message {
        nick: "X".into(),
        text: "hi".into(),
        seq: 1,
    };
    let late = Line::Message {
        nick: "X".into(),
        text: "hi".into(),
        seq: 99,
    };
    assert_ne!(early, late);
    assert_eq!(early.to_string(), late.to_string());
    let joined = |seq| Line::Joined {
        nick: "X".into(),
        seq,
    };
    assert_eq!(joined(1).to_string(), joined(2).to_string());
    let left = |seq| Line::Left {
        nick: "X".into(),
        seq,
    };
    assert_eq!(left(1).to_string(), left(2).to_string());
}

#[test]
fn lines_typed_before_the_welcome_are_sent_after_it_in_order() {
    let mut harness = Harness::new();
    assert!(
        harness.type_line("one", ms(0)).is_empty(),
        "not connected yet"
    );
    harness.session.handle_connected(ms(1));
    let actions = harness.drain();
    assert!(matches!(
        actions.as_slice(),
        [SessionAction::Send(ClientFrame::Hello { .. })]
    ));
    assert!(
        harness.type_line("two", ms(2)).is_empty(),
        "not welcomed yet"
    );
    assert_eq!(harness.session.unacked_count(), 2);

    let actions = harness.frame(welcome(0), ms(3));
    assert_eq!(sent(&actions), [send(1, "one"), send(2, "two")]);
    assert_eq!(
        harness.type_line("three", ms(4)),
        [SessionAction::Send(send(3, "three"))]
    );
    assert_eq!(harness.session.unacked_count(), 3);
}

#[test]
fn acks_remove_messages_from_the_outbox() {
    let mut harness = Harness::joined();
    for (text, id) in [("a", 1), ("b", 2), ("c", 3), ("d", 4)] {
        assert_eq!(
            harness.type_line(text, ms(1)),
            [SessionAction::Send(send(id, text))]
        );
    }
    assert_eq!(harness.session.unacked_count(), 4);
    assert!(harness.frame(ack(1, 2), ms(2)).is_empty());
    assert_eq!(harness.session.unacked_count(), 3);
    harness.frame(ack(99, 3), ms(3));
    assert_eq!(
        harness.session.unacked_count(),
        3,
        "an unknown id acks nothing"
    );
    harness.frame(ack(3, 4), ms(4));
    assert_eq!(
        harness.session.unacked_count(),
        1,
        "acks come in order: an ack covers the older ids too"
    );
    harness.frame(ack(4, 5), ms(5));
    assert_eq!(harness.session.unacked_count(), 0);
}

#[test]
fn exit_waits_for_outstanding_acks_then_leaves() {
    let mut harness = Harness::joined();
    harness.type_line("last words", ms(1));
    assert!(
        harness.type_line(".exit", ms(2)).is_empty(),
        "waits for the ack"
    );
    assert!(!harness.session.wants_input());
    let actions = harness.frame(message(2, NICK, "last words"), ms(3));
    assert_eq!(lines(&actions), ["John: last words"]);
    let actions = harness.frame(ack(1, 2), ms(4));
    assert_eq!(
        actions,
        [
            SessionAction::Show(Line::Disconnecting),
            SessionAction::Send(ClientFrame::Leave),
        ]
    );
    assert_eq!(lines(&actions), ["Disconnecting from server..."]);
}

#[test]
fn end_of_input_waits_for_outstanding_acks_then_leaves() {
    let mut harness = Harness::joined();
    harness.type_line("one", ms(1));
    harness.type_line("two", ms(1));
    harness.session.handle_input_closed(ms(2));
    assert!(harness.drain().is_empty(), "waits for the acks");
    assert!(!harness.session.wants_input());
    assert!(harness.frame(ack(1, 2), ms(3)).is_empty(), "one ack to go");
    assert_eq!(
        harness.frame(ack(2, 3), ms(4)),
        [
            SessionAction::Show(Line::Disconnecting),
            SessionAction::Send(ClientFrame::Leave),
        ]
    );
}

#[test]
fn exit_with_nothing_outstanding_leaves_at_once() {
    let mut harness = Harness::joined();
    assert_eq!(
        harness.type_line("  .exit ", ms(1)),
        [
            SessionAction::Show(Line::Disconnecting),
            SessionAction::Send(ClientFrame::Leave),
        ]
    );
    assert!(!harness.session.wants_input());
    assert!(
        harness.type_line(".exit", ms(2)).is_empty(),
        "leaves only once"
    );
}

#[test]
fn end_of_input_before_the_welcome_leaves_once_welcomed() {
    let mut harness = Harness::new();
    harness.session.handle_input_closed(ms(0));
    assert!(harness.drain().is_empty(), "not in yet");
    assert!(!harness.session.wants_input());
    harness.session.handle_connected(ms(1));
    assert!(matches!(
        harness.drain().as_slice(),
        [SessionAction::Send(ClientFrame::Hello { .. })]
    ));
    let actions = harness.frame(welcome(0), ms(2));
    assert!(sent(&actions).is_empty(), "waits to see itself join");
    let actions = harness.frame(joined(1, NICK), ms(2));
    assert!(actions.contains(&SessionAction::Show(Line::Disconnecting)));
    assert_eq!(sent(&actions), [ClientFrame::Leave]);
    harness.frame(ServerFrame::Bye, ms(3));
    harness.session.handle_disconnected(ms(4));
    assert_eq!(harness.drain(), [exit(EndReason::Left, 0)]);
}

#[test]
fn exit_before_the_welcome_waits_for_what_was_typed() {
    let mut harness = Harness::new();
    harness.type_line("early", ms(0));
    harness.type_line(".exit", ms(0));
    harness.session.handle_connected(ms(1));
    harness.drain();
    let actions = harness.frame(welcome(0), ms(2));
    assert_eq!(sent(&actions), [send(1, "early")], "no leave yet");
    harness.frame(joined(1, NICK), ms(3));
    harness.frame(message(2, NICK, "early"), ms(3));
    let actions = harness.frame(ack(1, 2), ms(4));
    assert_eq!(
        actions,
        [
            SessionAction::Show(Line::Disconnecting),
            SessionAction::Send(ClientFrame::Leave),
        ]
    );
}

#[test]
fn end_of_input_while_connecting_then_a_connect_failure_is_unreachable() {
    let mut harness = Harness::new();
    harness.session.handle_input_closed(ms(0));
    harness
        .session
        .handle_connect_failed("connection refused", ms(1));
    assert_eq!(
        harness.drain(),
        [
            SessionAction::Show(Line::Unreachable("connection refused".into())),
            exit(EndReason::Unreachable, 0),
        ]
    );
}

#[test]
fn bye_leads_to_disconnect_then_a_clean_exit() {
    let mut harness = Harness::joined();
    harness.type_line(".exit", ms(1));
    assert_eq!(
        harness.frame(ServerFrame::Bye, ms(2)),
        [SessionAction::Disconnect]
    );
    harness.session.handle_disconnected(ms(3));
    assert_eq!(harness.drain(), [exit(EndReason::Left, 0)]);
    harness.session.handle_disconnected(ms(4));
    assert!(harness.drain().is_empty(), "it exits once");
}

#[test]
fn the_server_closing_after_leave_is_a_clean_exit() {
    let mut harness = Harness::joined();
    harness.type_line(".exit", ms(1));
    harness.session.handle_disconnected(ms(2));
    assert_eq!(harness.drain(), [exit(EndReason::Left, 0)]);
}

#[test]
fn a_line_too_long_is_not_sent_and_counts_as_not_delivered() {
    let mut harness = Harness::with_config(SessionConfig::new(NICK, ROOM));
    harness.session.handle_connected(ms(0));
    harness.frame(welcome_with(0, 10), ms(0));
    harness.frame(joined(1, NICK), ms(0));
    harness.drain();

    let actions = harness.type_line("eleven byte", ms(1));
    assert_eq!(
        lines(&actions),
        ["Not sent: message is too long (11 bytes; the limit is 10)."]
    );
    assert!(sent(&actions).is_empty());
    assert_eq!(harness.session.unacked_count(), 0);
    assert_eq!(
        harness.type_line("ten bytes!", ms(2)),
        [SessionAction::Send(send(1, "ten bytes!"))],
        "the limit itself is fine"
    );
    harness.frame(ack(1, 2), ms(3));

    harness.type_line(".exit", ms(4));
    harness.frame(ServerFrame::Bye, ms(5));
    harness.session.handle_disconnected(ms(6));
    assert_eq!(harness.drain(), [exit(EndReason::Left, 1)]);
}

#[test]
fn a_line_with_a_control_character_is_not_sent() {
    let mut harness = Harness::joined();
    for line in ["bell\u{7}", "\u{1b}[2J clear", "carriage\rreturn"] {
        let actions = harness.type_line(line, ms(1));
        assert_eq!(
            actions,
            [SessionAction::Show(Line::NotSent(
                "message contains a control character".into()
            ))],
            "{line:?}"
        );
    }
    assert_eq!(
        harness.type_line("a\ttab", ms(2)),
        [SessionAction::Send(send(1, "a\ttab"))]
    );
    harness.frame(ack(1, 2), ms(3));
    harness.type_line(".exit", ms(4));
    harness.frame(ServerFrame::Bye, ms(5));
    assert_eq!(
        harness.disconnected(ms(6)),
        [exit(EndReason::Left, 3)],
        "the three lines not sent count as not delivered"
    );
}

#[test]
fn a_taken_nickname_ends_the_session_as_refused() {
    let mut harness = Harness::new();
    harness.type_line("typed early", ms(0));
    harness.session.handle_connected(ms(0));
    harness.drain();
    let refusal = ServerFrame::Error {
        code: ErrorCode::NickTaken,
        message: "the nickname John is already taken in this room".into(),
    };
    let actions = harness.frame(refusal, ms(1));
    assert_eq!(
        actions,
        [
            SessionAction::Show(Line::Refused(
                "the nickname John is already taken in this room".into()
            )),
            SessionAction::Disconnect,
            SessionAction::Show(Line::Undelivered(1)),
            exit(EndReason::Refused(ErrorCode::NickTaken), 1),
        ]
    );
    assert_eq!(
        lines(&actions)[0],
        "The server refused to let you in: the nickname John is already taken in this room."
    );
    assert!(!harness.session.wants_input());
    harness.session.handle_disconnected(ms(2));
    assert!(harness.drain().is_empty(), "it exits once");
}

#[test]
fn an_error_after_the_welcome_is_shown_without_ending_the_session() {
    let mut harness = Harness::joined();
    let error = ServerFrame::Error {
        code: ErrorCode::NickTaken,
        message: "odd".into(),
    };
    assert_eq!(
        harness.frame(error, ms(1)),
        [SessionAction::Show(Line::ServerError("odd".into()))]
    );
    assert!(harness.session.wants_input());
}

#[test]
fn replayed_events_are_not_shown_twice() {
    let mut harness = Harness::joined();
    harness.frame(message(2, "Mary", "one"), ms(1));
    harness.frame(message(3, "Mary", "two"), ms(1));
    for old in [
        joined(1, NICK),
        message(2, "Mary", "one"),
        message(3, "Mary", "two"),
    ] {
        assert!(harness.frame(old, ms(2)).is_empty());
    }
    assert_eq!(harness.session.last_seq(), 3);
    let actions = harness.frame(message(4, "Mary", "three"), ms(3));
    assert_eq!(lines(&actions), ["Mary: three"]);
}

#[test]
fn a_jump_in_seqs_shows_a_gap() {
    let mut harness = Harness::joined();
    let actions = harness.frame(message(5, "Mary", "hi"), ms(1));
    assert_eq!(
        lines(&actions),
        [
            "(3 messages are no longer available and were skipped.)",
            "Mary: hi"
        ]
    );
    let actions = harness.frame(left(7, "Mary"), ms(2));
    assert_eq!(
        lines(&actions),
        [
            "(1 message is no longer available and was skipped.)",
            "Mary has left the chatroom."
        ]
    );
    assert_eq!(harness.session.last_seq(), 7);
}

#[test]
fn a_gap_frame_shows_how_many_were_skipped() {
    let mut harness = Harness::joined();
    let actions = harness.frame(gap(2, 4), ms(1));
    assert_eq!(actions, [SessionAction::Show(Line::Gap(3))]);
    assert_eq!(harness.session.last_seq(), 4);
    let actions = harness.frame(message(5, "Mary", "after the gap"), ms(2));
    assert_eq!(lines(&actions), ["Mary: after the gap"], "no second gap");
    // Overlapping what was shown: only the unseen part counts.
    assert_eq!(
        harness.frame(gap(3, 7), ms(3)),
        [SessionAction::Show(Line::Gap(2))]
    );
    assert!(
        harness.frame(gap(2, 6), ms(4)).is_empty(),
        "nothing unseen is missing"
    );
    assert_eq!(harness.session.last_seq(), 7);
}

#[test]
fn a_heartbeat_is_sent_after_an_interval_without_sending() {
    let mut harness = Harness::joined(); // Last sent (the hello) at 0.
    assert!(harness.tick(ms(4_999)).is_empty());
    assert_eq!(
        harness.tick(secs(5)),
        [SessionAction::Send(ClientFrame::Heartbeat)]
    );
    harness.frame(ServerFrame::Heartbeat, secs(6));
    assert!(harness.tick(ms(9_999)).is_empty());
    harness.type_line("talking counts", secs(10));
    harness.frame(ServerFrame::Heartbeat, secs(11));
    assert!(harness.tick(ms(14_999)).is_empty(), "sent a message at 10s");
    assert_eq!(
        harness.tick(secs(15)),
        [SessionAction::Send(ClientFrame::Heartbeat)]
    );
}

#[test]
fn no_heartbeat_or_timeout_before_connecting() {
    let mut harness = Harness::new();
    assert!(harness.tick(secs(100)).is_empty());
}

#[test]
fn a_silent_server_is_dropped_after_the_timeout_and_reconnected_to() {
    let mut harness = Harness::joined(); // Last heard at 0.
    harness.type_line("never acked", ms(1));
    harness.frame(ServerFrame::Heartbeat, secs(5));
    let actions = harness.tick(ms(19_999));
    assert!(
        !actions.contains(&SessionAction::Disconnect),
        "heard at 5s: {actions:?}"
    );
    let actions = harness.tick(secs(20));
    assert_eq!(
        actions,
        [
            SessionAction::Disconnect,
            reconnecting("the server stopped answering"),
        ]
    );
    assert_eq!(
        lines(&actions),
        ["Connection to the server lost (the server stopped answering); reconnecting..."]
    );
    assert!(
        harness.disconnected(secs(20)).is_empty(),
        "the close it asked for is no news"
    );
    assert_eq!(harness.session.unacked_count(), 1, "kept to re-send");
    let (_, hello) = harness.reconnect(secs(20));
    assert_eq!(hello, resume_hello(1));
}

#[test]
fn a_server_that_never_welcomes_is_given_up_after_the_handshake_timeout() {
    let mut harness = Harness::new();
    harness.connected(secs(1));
    assert!(harness.tick(ms(5_999)).is_empty(), "not yet");
    assert_eq!(
        harness.tick(secs(6)),
        [
            SessionAction::Disconnect,
            show(Line::ConnectionLost("no welcome from the server".into())),
            exit(EndReason::ConnectionLost, 0),
        ],
        "never welcomed: nothing to resume"
    );
    assert!(harness.disconnected(secs(6)).is_empty(), "it exits once");
    assert!(harness.tick(secs(60)).is_empty());
}

#[test]
fn the_handshake_timeout_follows_the_config() {
    let config = SessionConfig {
        handshake_timeout: secs(2),
        ..SessionConfig::new(NICK, ROOM)
    };
    let mut harness = Harness::with_config(config);
    harness.connected(ms(0));
    assert!(harness.tick(ms(1_999)).is_empty());
    assert_eq!(
        harness.tick(secs(2)).first(),
        Some(&SessionAction::Disconnect)
    );
}

#[test]
fn a_closed_connection_after_the_welcome_is_reconnected_to() {
    let mut harness = Harness::joined();
    assert_eq!(
        harness.disconnected(ms(1)),
        [reconnecting("the server closed the connection")],
        "no exit"
    );
    assert!(harness.session.wants_input());
}

#[test]
fn a_connection_lost_before_the_first_welcome_ends_the_session() {
    let mut harness = Harness::new();
    harness.type_line("typed early", ms(0));
    harness.connected(ms(1));
    assert_eq!(
        harness.disconnected(ms(2)),
        [
            show(Line::ConnectionLost(
                "the server closed the connection".into()
            )),
            show(Line::Undelivered(1)),
            exit(EndReason::ConnectionLost, 1),
        ]
    );
    assert!(!harness.session.wants_input());
    assert!(harness.tick(secs(10)).is_empty(), "no reconnect");
}

#[test]
fn input_waits_while_the_outbox_is_full() {
    let config = SessionConfig {
        unacked_max: 2,
        ..SessionConfig::new(NICK, ROOM)
    };
    let mut harness = Harness::with_config(config);
    harness.type_line("before the welcome", ms(0));
    assert!(harness.session.wants_input());
    harness.session.handle_connected(ms(0));
    harness.frame(welcome(0), ms(0));
    harness.type_line("second", ms(1));
    assert!(!harness.session.wants_input(), "2 unacked of 2");
    harness.frame(ack(1, 2), ms(2));
    assert!(harness.session.wants_input());
}

#[test]
fn a_connect_failure_exits_as_unreachable() {
    let mut harness = Harness::new();
    harness.type_line("typed while connecting", ms(0));
    harness
        .session
        .handle_connect_failed("connection refused", ms(1));
    let actions = harness.drain();
    assert_eq!(
        actions,
        [
            SessionAction::Show(Line::Unreachable("connection refused".into())),
            SessionAction::Show(Line::Undelivered(1)),
            exit(EndReason::Unreachable, 1),
        ]
    );
    assert_eq!(
        lines(&actions),
        [
            "Cannot reach the server: connection refused.",
            "1 message could not be confirmed as delivered."
        ]
    );
    assert!(!harness.session.wants_input());
}

#[test]
fn a_shutdown_shows_its_line_then_reconnects_keeping_what_was_not_acked() {
    let mut harness = Harness::joined();
    harness.type_line("acked", ms(1));
    harness.type_line("not acked", ms(1));
    harness.type_line("nor this", ms(1));
    harness.frame(ack(1, 2), ms(2));
    let actions = harness.frame(ServerFrame::Shutdown, ms(3));
    assert_eq!(
        actions,
        [
            show(Line::ServerShutdown),
            SessionAction::Disconnect,
            reconnecting("the server shut down"),
        ]
    );
    assert_eq!(
        lines(&actions),
        [
            "The server is shutting down.",
            "Connection to the server lost (the server shut down); reconnecting..."
        ]
    );
    assert!(harness.disconnected(ms(4)).is_empty());
    assert_eq!(harness.session.unacked_count(), 2);

    // The server is down for a while, then back (the same incarnation here).
    let at = harness.tick_until_connect(ms(4));
    assert!(harness.connect_failed(at).is_empty());
    let (at, hello) = harness.reconnect(at);
    assert_eq!(hello, resume_hello(1));
    assert_eq!(
        harness.frame(resumed_welcome(1, 0), at),
        [
            show(Line::Resumed(0)),
            SessionAction::Send(send(2, "not acked")),
            SessionAction::Send(send(3, "nor this")),
        ]
    );
}

#[test]
fn a_fresh_welcome_sets_the_last_seq_so_a_hole_before_the_own_join_is_a_gap() {
    let mut harness = Harness::new();
    harness.connected(ms(0));
    harness.frame(welcome(5), ms(1));
    assert_eq!(harness.session.last_seq(), 5);
    let actions = harness.frame(joined(7, NICK), ms(2));
    assert_eq!(
        lines(&actions),
        [
            "(1 message is no longer available and was skipped.)",
            "John has connected to the chatroom.",
            "You are now connected to the chatroom."
        ]
    );
}

#[test]
fn a_lost_connection_shows_reconnecting_once_and_connects_after_the_backoff() {
    let mut harness = Harness::joined(); // Default backoff: 250 ms at first.
    let lost_at = secs(10);
    let actions = harness.disconnected(lost_at);
    assert_eq!(actions, [reconnecting("the server closed the connection")]);
    assert_eq!(
        lines(&actions),
        ["Connection to the server lost (the server closed the connection); reconnecting..."]
    );
    // Ticks before the jittered backoff ask for nothing; then one connect.
    let at = harness.tick_until_connect(lost_at);
    let pause = at - lost_at;
    assert!((ms(125)..=ms(250)).contains(&pause), "{pause:?}");
    assert!(harness.tick(at).is_empty(), "one connect per attempt");

    // Nothing more is shown during the same outage: a connect failure, a
    // connection closed before the welcome, a handshake timeout.
    assert!(harness.connect_failed(at).is_empty());
    let (at, _) = harness.reconnect(at);
    assert!(harness.disconnected(at + ms(1)).is_empty());
    let (at, _) = harness.reconnect(at + ms(1));
    assert!(harness.tick(at + ms(4_999)).is_empty());
    assert_eq!(harness.tick(at + secs(5)), [SessionAction::Disconnect]);
    assert!(harness.disconnected(at + secs(5)).is_empty());
    let (at, _) = harness.reconnect(at + secs(5));
    assert_eq!(
        harness.frame(resumed_welcome(1, 0), at),
        [show(Line::Resumed(0))]
    );

    // A new outage gets its own line.
    assert_eq!(
        harness.disconnected(at + secs(1)),
        [reconnecting("the server closed the connection")]
    );
}

#[test]
fn the_backoff_doubles_after_each_failure_up_to_the_cap() {
    let pauses = reconnect_pauses(backoff_config(ms(100), ms(800), 3), 7);
    let backoffs = [100, 200, 400, 800, 800, 800, 800].map(ms);
    for (attempt, (pause, backoff)) in pauses.iter().zip(backoffs).enumerate() {
        assert!(
            (backoff / 2..=backoff).contains(pause),
            "attempt {attempt}: paused {pause:?}, backoff {backoff:?}: {pauses:?}"
        );
    }
}

#[test]
fn the_backoff_starts_over_after_a_welcome() {
    let mut harness = Harness::joined_with(backoff_config(ms(100), ms(800), 5));
    harness.disconnected(secs(1));
    let mut at = secs(1);
    for _ in 0..4 {
        at = harness.tick_until_connect(at);
        harness.connect_failed(at);
    }
    let (at, _) = harness.reconnect(at);
    harness.frame(resumed_welcome(1, 0), at);
    let lost_at = at + secs(1);
    harness.disconnected(lost_at);
    let pause = harness.tick_until_connect(lost_at) - lost_at;
    assert!(
        (ms(50)..=ms(100)).contains(&pause),
        "the first backoff again, not 800 ms: {pause:?}"
    );
}

#[test]
fn the_jitter_stays_within_half_to_all_of_the_backoff() {
    let mut all = Vec::new();
    for seed in 0..20 {
        let pauses = reconnect_pauses(backoff_config(secs(1), secs(1), seed), 5);
        for pause in &pauses {
            assert!(
                (ms(500)..=secs(1)).contains(pause),
                "seed {seed}: {pauses:?}"
            );
        }
        all.extend(pauses);
    }
    let shortest = all.iter().min().expect("100 pauses");
    let longest = all.iter().max().expect("100 pauses");
    assert!(
        *longest - *shortest >= ms(250),
        "the jitter spreads attempts: {shortest:?}..{longest:?}"
    );
}

#[test]
fn the_same_seed_gives_the_same_schedule_and_another_seed_another() {
    let schedule = |seed| reconnect_pauses(backoff_config(ms(100), ms(800), seed), 6);
    assert_eq!(schedule(1), schedule(1));
    assert_eq!(schedule(42), schedule(42));
    assert_ne!(schedule(1), schedule(2));
    assert_ne!(schedule(1), schedule(42));
}

#[test]
fn the_resume_hello_carries_the_token_incarnation_and_last_seq_shown() {
    let mut harness = Harness::joined();
    harness.frame(message(2, "Mary", "one"), ms(1));
    harness.frame(gap(3, 5), ms(2));
    harness.frame(left(6, "Mary"), ms(3));
    assert_eq!(harness.session.last_seq(), 6);
    harness.disconnected(secs(1));
    let (_, hello) = harness.reconnect(secs(1));
    assert_eq!(
        hello,
        ClientFrame::Hello {
            version: PROTOCOL_VERSION,
            nick: NICK.into(),
            room: ROOM.into(),
            resume: Some(Resume {
                token: TOKEN.into(),
                incarnation: INCARNATION.into(),
                last_seq: 6,
            }),
        }
    );
}

#[test]
fn a_connection_lost_before_the_own_join_resumes_from_the_welcome_and_shows_it_then() {
    let mut harness = Harness::new();
    harness.connected(ms(0));
    harness.frame(welcome(4), ms(1));
    assert_eq!(
        harness.disconnected(ms(2)),
        [reconnecting("the server closed the connection")],
        "welcomed: there is a session to resume"
    );
    let (at, hello) = harness.reconnect(ms(2));
    assert_eq!(hello, resume_hello(4));
    harness.frame(resumed_welcome(4, 2), at);
    let mut actions = harness.frame(joined(5, NICK), at);
    actions.extend(harness.frame(message(6, "Mary", "hi John"), at));
    assert_eq!(
        lines(&actions),
        [
            "John has connected to the chatroom.",
            "You are now connected to the chatroom.",
            "Mary: hi John"
        ]
    );
}

#[test]
fn unacked_messages_are_re_sent_after_a_resumed_welcome_with_their_original_ids() {
    let mut harness = Harness::joined();
    for (id, text) in [(1, "one"), (2, "two"), (3, "three")] {
        assert_eq!(
            harness.type_line(text, ms(1)),
            [SessionAction::Send(send(id, text))]
        );
    }
    harness.frame(message(2, NICK, "one"), ms(2));
    harness.frame(ack(1, 2), ms(2));
    harness.disconnected(secs(1));
    assert!(
        harness.type_line("four", ms(1_001)).is_empty(),
        "offline: kept, not sent"
    );
    assert_eq!(harness.session.unacked_count(), 3);
    let (at, _) = harness.reconnect(secs(1));
    assert!(
        harness.type_line("five", at).is_empty(),
        "not welcomed yet: kept, not sent"
    );

    let actions = harness.frame(resumed_welcome(2, 0), at);
    assert_eq!(
        actions,
        [
            show(Line::Resumed(0)),
            SessionAction::Send(send(2, "two")),
            SessionAction::Send(send(3, "three")),
            SessionAction::Send(send(4, "four")),
            SessionAction::Send(send(5, "five")),
        ],
        "in order, with their ids: the server drops those it had"
    );
    assert_eq!(
        harness.type_line("six", at + ms(1)),
        [SessionAction::Send(send(6, "six"))]
    );
    harness.frame(ack(5, 5), at + ms(2));
    assert_eq!(harness.session.unacked_count(), 1);
}

#[test]
fn a_resumed_welcome_says_how_many_missed_events_follow() {
    let mut harness = Harness::joined();
    harness.disconnected(secs(1));
    let (at, _) = harness.reconnect(secs(1));
    let actions = harness.frame(resumed_welcome(1, 2), at);
    assert_eq!(actions, [show(Line::Resumed(2))]);
    assert_eq!(lines(&actions), ["Reconnected; 2 missed messages follow."]);
    assert_eq!(
        harness.session.last_seq(),
        1,
        "a resume keeps what was shown"
    );
    let mut actions = harness.frame(message(2, "Mary", "missed"), at);
    actions.extend(harness.frame(left(3, "Mary"), at));
    assert_eq!(
        lines(&actions),
        ["Mary: missed", "Mary has left the chatroom."],
        "no gap"
    );
}

#[test]
fn replayed_events_overlapping_what_was_seen_are_not_shown_twice_after_a_resume() {
    let mut harness = Harness::joined();
    harness.frame(message(2, "Mary", "one"), ms(1));
    harness.frame(message(3, "Mary", "two"), ms(1));
    harness.disconnected(secs(1));
    let (at, hello) = harness.reconnect(secs(1));
    assert_eq!(hello, resume_hello(3));
    harness.frame(resumed_welcome(3, 3), at);
    let mut actions = Vec::new();
    for event in [
        message(2, "Mary", "one"),
        message(3, "Mary", "two"),
        message(4, "Mary", "three"),
        message(3, "Mary", "two"),
        left(5, "Mary"),
    ] {
        actions.extend(harness.frame(event, at));
    }
    assert_eq!(
        lines(&actions),
        ["Mary: three", "Mary has left the chatroom."]
    );
    assert_eq!(harness.session.last_seq(), 5);
}

#[test]
fn an_unknown_session_rejoins_afresh_and_reports_what_was_not_acked() {
    let mut harness = Harness::joined();
    harness.frame(message(2, "Mary", "before"), ms(1));
    harness.type_line("maybe delivered", ms(2));
    harness.disconnected(secs(1));
    harness.type_line("typed offline", ms(1_001));
    let (at, hello) = harness.reconnect(secs(1));
    assert_eq!(hello, resume_hello(2));

    let actions = harness.frame(session_unknown(), at);
    assert_eq!(
        actions,
        [
            show(Line::Rejoining),
            show(Line::Undelivered(1)),
            SessionAction::Send(hello_fresh()),
        ],
        "the message that went out is not re-sent (it could be a duplicate); \
         a fresh hello on the same connection"
    );
    assert_eq!(
        lines(&actions),
        [
            "The server no longer knows this session; joining the chatroom again \
             (what was said meanwhile is not shown).",
            "1 message could not be confirmed as delivered."
        ]
    );
    assert_eq!(
        harness.session.unacked_count(),
        1,
        "the line typed offline never went out"
    );
    assert!(harness.session.wants_input());

    // The session had expired: the room went on meanwhile.
    let fresh = any_welcome("another token", INCARNATION, false, 9, 0);
    let actions = harness.frame(fresh, at);
    assert_eq!(
        sent(&actions),
        [send(2, "typed offline")],
        "sent on the new session"
    );
    harness.frame(ack(2, 11), at);
    let actions = harness.frame(joined(10, NICK), at);
    assert_eq!(
        lines(&actions),
        [
            "John has connected to the chatroom.",
            "You are now connected to the chatroom."
        ],
        "its own join again, without a gap"
    );

    // The next resume presents the new session.
    harness.disconnected(at + secs(1));
    let (_, hello) = harness.reconnect(at + secs(1));
    assert_eq!(
        hello,
        self::hello(Some(Resume {
            token: "another token".into(),
            incarnation: INCARNATION.into(),
            last_seq: 10,
        }))
    );
    harness.frame(resumed_welcome(10, 0), at + secs(2));
    harness.type_line(".exit", at + secs(3));
    harness.frame(ServerFrame::Bye, at + secs(3));
    assert_eq!(
        harness.disconnected(at + secs(3)),
        [exit(EndReason::Left, 1)],
        "the one reported counts as not delivered"
    );
}

#[test]
fn a_connection_lost_while_rejoining_reconnects_with_a_fresh_hello() {
    let mut harness = Harness::joined();
    harness.disconnected(secs(1));
    let (at, _) = harness.reconnect(secs(1));
    harness.frame(session_unknown(), at);
    assert!(
        harness.disconnected(at + ms(1)).is_empty(),
        "the same outage: no line, no exit"
    );
    let (at, hello) = harness.reconnect(at + ms(1));
    assert_eq!(hello, hello_fresh(), "the old token is dead");
    harness.frame(welcome(3), at);
    let actions = harness.frame(joined(4, NICK), at);
    assert_eq!(
        lines(&actions),
        [
            "John has connected to the chatroom.",
            "You are now connected to the chatroom."
        ]
    );
}

#[test]
fn rejoining_with_a_nickname_taken_meanwhile_ends_as_refused() {
    let mut harness = Harness::joined();
    harness.disconnected(secs(1));
    let (at, _) = harness.reconnect(secs(1));
    harness.frame(session_unknown(), at);
    let refusal = ServerFrame::Error {
        code: ErrorCode::NickTaken,
        message: "the nickname John is already taken in this room".into(),
    };
    assert_eq!(
        harness.frame(refusal, at),
        [
            show(Line::Refused(
                "the nickname John is already taken in this room".into()
            )),
            SessionAction::Disconnect,
            exit(EndReason::Refused(ErrorCode::NickTaken), 0),
        ]
    );
}

#[test]
fn an_unknown_session_after_a_server_restart_starts_the_numbering_again() {
    let mut harness = Harness::joined();
    for seq in 2..=20 {
        harness.frame(message(seq, "Mary", "old"), ms(1));
    }
    harness.frame(ServerFrame::Shutdown, secs(1));
    harness.disconnected(secs(1));
    let (at, _) = harness.reconnect(secs(1));
    harness.frame(session_unknown(), at);
    let restarted = any_welcome(TOKEN, "a new incarnation", false, 0, 0);
    harness.frame(restarted, at);
    assert_eq!(harness.session.last_seq(), 0);
    let mut actions = harness.frame(joined(1, NICK), at);
    actions.extend(harness.frame(message(2, "Mary", "new"), at));
    assert_eq!(
        lines(&actions),
        [
            "John has connected to the chatroom.",
            "You are now connected to the chatroom.",
            "Mary: new"
        ],
        "seqs already seen on the old server are new here"
    );
}

#[test]
fn a_handshake_timeout_while_reconnecting_retries() {
    let mut harness = Harness::joined();
    harness.disconnected(secs(1));
    let (at, _) = harness.reconnect(secs(1));
    assert!(harness.tick(at + ms(4_999)).is_empty());
    let timed_out = at + secs(5);
    assert_eq!(
        harness.tick(timed_out),
        [SessionAction::Disconnect],
        "no exit, and no second line"
    );
    assert!(harness.disconnected(timed_out).is_empty());
    let (at, hello) = harness.reconnect(timed_out);
    assert_eq!(hello, resume_hello(1));
    let pause = at - timed_out;
    assert!(
        (ms(250)..=ms(500)).contains(&pause),
        "the second backoff: {pause:?}"
    );
}

#[test]
fn it_gives_up_after_reconnect_give_up_and_counts_the_unacked_as_not_delivered() {
    let config = SessionConfig {
        reconnect_give_up: secs(10),
        ..backoff_config(secs(1), secs(2), 9)
    };
    let mut harness = Harness::joined_with(config);
    harness.type_line("one", ms(500));
    harness.type_line("two", ms(500));
    harness.disconnected(secs(1));
    let mut failures = Vec::new();
    let mut at = secs(1);
    let last = loop {
        assert!(failures.len() < 20, "never gave up: {failures:?}");
        at = harness.tick_until_connect(at);
        let actions = harness.connect_failed(at);
        if !actions.is_empty() {
            break actions;
        }
        failures.push(at);
    };
    assert!(at >= secs(11), "gave up early, at {at:?}");
    assert!(
        failures.last().is_some_and(|before| *before < secs(11)),
        "gave up late: {failures:?}, then {at:?}"
    );
    assert_eq!(
        last,
        [
            show(Line::GaveUp(secs(10))),
            show(Line::Undelivered(2)),
            exit(EndReason::ConnectionLost, 2),
        ]
    );
    assert_eq!(
        lines(&last),
        [
            "Could not reconnect for 10 s; giving up.",
            "2 messages could not be confirmed as delivered."
        ]
    );
    assert!(!harness.session.wants_input());
    assert!(harness.tick(secs(60)).is_empty(), "no more attempts");
}

#[test]
fn handshake_timeouts_count_toward_giving_up_too() {
    let config = SessionConfig {
        reconnect_give_up: secs(10),
        handshake_timeout: secs(1),
        ..backoff_config(secs(1), secs(2), 11)
    };
    let mut harness = Harness::joined_with(config);
    harness.disconnected(secs(1));
    let mut at = secs(1);
    for _ in 0..20 {
        let (connected_at, _) = harness.reconnect(at);
        at = connected_at + secs(1);
        let actions = harness.tick(at);
        if actions != [SessionAction::Disconnect] {
            assert!(at >= secs(11), "gave up early, at {at:?}");
            assert_eq!(
                actions,
                [
                    SessionAction::Disconnect,
                    show(Line::GaveUp(secs(10))),
                    exit(EndReason::ConnectionLost, 0),
                ]
            );
            return;
        }
        assert!(harness.disconnected(at).is_empty());
    }
    panic!("never gave up");
}

#[test]
fn a_connect_failure_while_reconnecting_keeps_retrying() {
    let mut harness = Harness::joined();
    harness.disconnected(secs(1));
    let mut at = secs(1);
    for _ in 0..5 {
        at = harness.tick_until_connect(at);
        assert!(
            harness.connect_failed(at).is_empty(),
            "no line, no exit: unlike before the first welcome"
        );
        assert!(harness.session.wants_input());
    }
    let (at, _) = harness.reconnect(at);
    assert_eq!(
        harness.frame(resumed_welcome(1, 0), at),
        [show(Line::Resumed(0))]
    );
}

#[test]
fn exit_while_offline_leaves_at_once() {
    let mut harness = Harness::joined();
    harness.disconnected(secs(1));
    let actions = harness.type_line(".exit", ms(1_010));
    assert_eq!(
        actions,
        [show(Line::Disconnecting), exit(EndReason::Left, 0)],
        "no reconnect to say leave: the server's grace period ends the session"
    );
    assert!(!harness.session.wants_input());
    assert!(harness.tick(secs(30)).is_empty(), "no more attempts");
}

#[test]
fn end_of_input_while_offline_leaves_at_once() {
    let mut harness = Harness::joined();
    harness.frame(ServerFrame::Shutdown, secs(1));
    harness.disconnected(secs(1));
    harness.session.handle_input_closed(ms(1_010));
    assert_eq!(
        harness.drain(),
        [show(Line::Disconnecting), exit(EndReason::Left, 0)]
    );
}

#[test]
fn exit_while_offline_with_unacked_messages_reconnects_to_deliver_them_first() {
    let mut harness = Harness::joined();
    harness.type_line("important", ms(1));
    harness.disconnected(secs(1));
    assert!(harness.type_line(".exit", ms(1_010)).is_empty(), "waits");
    assert!(!harness.session.wants_input());
    let (at, _) = harness.reconnect(secs(1));
    assert_eq!(
        harness.frame(resumed_welcome(1, 0), at),
        [
            show(Line::Resumed(0)),
            SessionAction::Send(send(1, "important"))
        ]
    );
    harness.frame(message(2, NICK, "important"), at);
    assert_eq!(
        harness.frame(ack(1, 2), at),
        [
            show(Line::Disconnecting),
            SessionAction::Send(ClientFrame::Leave)
        ]
    );
}

#[test]
fn input_is_wanted_while_offline() {
    let config = SessionConfig {
        unacked_max: 2,
        ..SessionConfig::new(NICK, ROOM)
    };
    let mut harness = Harness::joined_with(config);
    harness.type_line("one", ms(1));
    harness.disconnected(secs(1));
    assert!(harness.session.wants_input(), "waiting to reconnect");
    let at = harness.tick_until_connect(secs(1));
    assert!(harness.session.wants_input(), "connecting");
    harness.connected(at);
    assert!(harness.session.wants_input(), "awaiting the welcome");
    harness.type_line("two", at);
    assert!(!harness.session.wants_input(), "but the outbox limit holds");
    harness.frame(resumed_welcome(1, 0), at);
    harness.frame(ack(2, 3), at);
    assert!(harness.session.wants_input());
}

// Bugs in session.rs found while writing these tests: each test below fails
// until its bug is fixed.

/// `.exit` typed while offline leaves at once when the session is waiting for
/// its next attempt (`leave` in `Phase::Waiting`), but not while an attempt
/// is under way (`Phase::Connecting`: `leave` does nothing, rightly waiting
/// for the outcome). When that attempt then fails, `handle_connect_failed`
/// calls `schedule_reconnect` and never checks `leave_when_done`: the session
/// keeps reconnecting with input closed until it connects (then leaves) or
/// gives up after `reconnect_give_up` (120 s by default), ending with
/// "Could not reconnect..." and `EndReason::ConnectionLost` instead of
/// "Disconnecting from server..." and `EndReason::Left`.
#[test]
fn exit_during_a_reconnect_attempt_that_fails_leaves_at_once() {
    let mut harness = Harness::joined();
    harness.disconnected(secs(1));
    let at = harness.tick_until_connect(secs(1));
    let mut actions = harness.type_line(".exit", at);
    actions.extend(harness.connect_failed(at + ms(100)));
    assert_eq!(
        actions,
        [show(Line::Disconnecting), exit(EndReason::Left, 0)]
    );
}

/// A client that lost its connection between the welcome and its own join
/// event resumes from the welcome's `last_seq`; if history no longer holds
/// its join, the server sends a gap that covers it. `handle_gap` (and
/// `handle_event`, for a jump) moves `last_seq` past the join but leaves
/// `awaiting_own_join` set, so `leave_when_done` never leaves: `.exit` (or
/// the end of piped input) does nothing while connected, for ever, and
/// "You are now connected to the chatroom." is never shown. Once an event
/// after its own join (welcome's `last_seq` + 1) has been passed, the client
/// should count itself as joined.
#[test]
fn a_gap_covering_the_own_join_does_not_block_exit() {
    let mut harness = Harness::new();
    harness.connected(ms(0));
    harness.frame(welcome(4), ms(1)); // Its own join will be 5.
    harness.disconnected(ms(2));
    let (at, hello) = harness.reconnect(ms(2));
    assert_eq!(hello, resume_hello(4));
    harness.frame(resumed_welcome(4, 1), at);
    assert_eq!(
        harness.frame(gap(5, 20), at),
        [show(Line::Gap(16)), show(Line::YouAreConnected)],
        "its own join is among the events no longer held"
    );
    harness.frame(message(21, "Mary", "busy room"), at);
    let actions = harness.type_line(".exit", at + ms(1));
    assert_eq!(
        actions,
        [
            show(Line::Disconnecting),
            SessionAction::Send(ClientFrame::Leave)
        ]
    );
}

// Bugs found while writing the first version of these tests, fixed since:
// each test below failed before its fix.

/// With `.exit` typed (or input ended) before the welcome and nothing to
/// deliver, `handle_welcome` leaves at once: "Disconnecting from server..."
/// comes before the user's own join lines, which arrive right after the
/// welcome. The leaver's terminal should end with "Disconnecting from
/// server...", as in the original demo.
#[test]
fn exit_before_the_welcome_shows_disconnecting_after_the_connected_lines() {
    let mut harness = Harness::new();
    harness.session.handle_connected(ms(0));
    harness.drain();
    harness.type_line(".exit", ms(1));
    let mut actions = harness.frame(welcome(0), ms(2));
    actions.extend(harness.frame(joined(1, NICK), ms(2)));
    assert_eq!(
        lines(&actions),
        [
            "John has connected to the chatroom.",
            "You are now connected to the chatroom.",
            "Disconnecting from server..."
        ]
    );
    assert_eq!(sent(&actions), [ClientFrame::Leave]);
}

/// `handle_frame` computes a gap frame's count as `to + 1 - max(from,
/// last_seq + 1)`; a server's gap frame with `from > to` makes that
/// underflow, which panics the client (debug and sim builds). A malformed
/// frame from the peer should not crash the client.
#[test]
fn a_gap_frame_with_from_after_to_does_not_panic() {
    let mut harness = Harness::joined();
    harness.frame(gap(10, 5), ms(1));
    let last_seq = harness.session.last_seq();
    assert!(matches!(last_seq, 1 | 5), "last seq {last_seq}");
}
